// SPDX-License-Identifier: GPL-2.0
/*
 * trace_malloc: the C library's heap and mapping calls (malloc, free, calloc, realloc, mmap,
 * munmap) from uprobes on `libc`. One record per call: the operation, the address (the block
 * returned, or the block given back) and the size asked for.
 *
 * Calls that return an address are recorded at return: the entry probe keeps the arguments,
 * keyed by thread and operation (a thread is in one call of each at most; keying by operation
 * too keeps realloc(NULL, n), which glibc serves by calling malloc, from overwriting its own
 * state), and the return probe completes the record. free and munmap are recorded at entry.
 * The container filter and the --pid/--comm/... filters run at entry, so other processes'
 * calls cost one map lookup at most.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define MAX_IN_FLIGHT 16384

enum memop {
	malloc = 0,
	free = 1,
	calloc = 2,
	realloc = 3,
	mmap = 4,
	munmap = 5,
};

struct call_key {
	__u32 tid;
	__u32 op;
};

struct call_t {
	__u64 size;
	__u64 prev_addr;
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	enum memop operation_raw;
	__u64 addr;
	gadget_bytes size;
	__u64 prev_addr;
};

/* Record free(NULL) (a no-op that some programs call a lot) only when asked for. */
const volatile bool targ_null_frees = false;
GADGET_PARAM(targ_null_frees);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_IN_FLIGHT);
	__type(key, struct call_key);
	__type(value, struct call_t);
} calls SEC(".maps");

GADGET_TRACER_MAP(events, 4 * 1024 * 1024);
GADGET_TRACER(malloc, events, event);

static __always_inline void emit(void *ctx, enum memop op, __u64 addr, __u64 size,
				 __u64 prev_addr)
{
	struct event *event = gadget_reserve_buf(events, sizeof(*event));

	if (!event)
		return;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->operation_raw = op;
	event->addr = addr;
	event->size = size;
	event->prev_addr = prev_addr;
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
}

static __always_inline int enter(enum memop op, __u64 size, __u64 prev_addr)
{
	struct call_key key = {.tid = (__u32)bpf_get_current_pid_tgid(), .op = op};
	struct call_t call = {.size = size, .prev_addr = prev_addr};

	if (gadget_should_discard_data_current())
		return 0;
	bpf_map_update_elem(&calls, &key, &call, BPF_ANY);
	return 0;
}

static __always_inline int leave(void *ctx, enum memop op, __u64 addr)
{
	struct call_key key = {.tid = (__u32)bpf_get_current_pid_tgid(), .op = op};
	struct call_t *call = bpf_map_lookup_elem(&calls, &key);

	if (!call)
		return 0;
	emit(ctx, op, addr, call->size, call->prev_addr);
	bpf_map_delete_elem(&calls, &key);
	return 0;
}

static __always_inline int release(void *ctx, enum memop op, __u64 addr, __u64 size)
{
	if (!addr && !targ_null_frees)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	emit(ctx, op, addr, size, 0);
	return 0;
}

SEC("uprobe/libc:malloc")
int BPF_KPROBE(trace_malloc, size_t size)
{
	return enter(malloc, size, 0);
}

SEC("uretprobe/libc:malloc")
int BPF_KRETPROBE(trace_malloc_ret, void *ret)
{
	return leave(ctx, malloc, (__u64)ret);
}

SEC("uprobe/libc:free")
int BPF_KPROBE(trace_free, void *ptr)
{
	return release(ctx, free, (__u64)ptr, 0);
}

SEC("uprobe/libc:calloc")
int BPF_KPROBE(trace_calloc, size_t nmemb, size_t size)
{
	return enter(calloc, (__u64)nmemb * size, 0);
}

SEC("uretprobe/libc:calloc")
int BPF_KRETPROBE(trace_calloc_ret, void *ret)
{
	return leave(ctx, calloc, (__u64)ret);
}

SEC("uprobe/libc:realloc")
int BPF_KPROBE(trace_realloc, void *ptr, size_t size)
{
	return enter(realloc, size, (__u64)ptr);
}

SEC("uretprobe/libc:realloc")
int BPF_KRETPROBE(trace_realloc_ret, void *ret)
{
	return leave(ctx, realloc, (__u64)ret);
}

SEC("uprobe/libc:mmap")
int BPF_KPROBE(trace_mmap, void *addr, size_t length)
{
	return enter(mmap, length, 0);
}

SEC("uretprobe/libc:mmap")
int BPF_KRETPROBE(trace_mmap_ret, void *ret)
{
	return leave(ctx, mmap, (__u64)ret);
}

SEC("uprobe/libc:munmap")
int BPF_KPROBE(trace_munmap, void *addr, size_t length)
{
	return release(ctx, munmap, (__u64)addr, length);
}

char LICENSE[] SEC("license") = "GPL";
