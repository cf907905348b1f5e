// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "uprobe_malloc": `uprobe/libc:malloc` and `uretprobe/libc:malloc`, the library
 * named the short way IG gadgets name it. Reports calls of at least `min_size` bytes made by
 * the target containers (the container filter is checked first).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

const volatile __u64 min_size = 0;
GADGET_PARAM(min_size);

struct malloc_event {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
	__u64 size;
	__u64 ret;
	__u8 is_return;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} sizes SEC(".maps");

GADGET_TRACER_MAP(events, 1 << 16);
GADGET_TRACER(mallocs, events, malloc_event);

static __always_inline void emit(void *ctx, __u64 size, __u64 ret, __u8 is_return)
{
	struct malloc_event *e = gadget_reserve_buf(events, sizeof(*e));

	if (!e)
		return;
	e->mntns_id = gadget_get_current_mntns_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->size = size;
	e->ret = ret;
	e->is_return = is_return;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
}

SEC("uprobe/libc:malloc")
int BPF_KPROBE(malloc_enter, size_t size)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (gadget_should_discard_mntns_id(gadget_get_current_mntns_id()) || size < min_size)
		return 0;
	bpf_map_update_elem(&sizes, &id, &size, BPF_ANY);
	emit(ctx, size, 0, 0);
	return 0;
}

SEC("uretprobe/libc:malloc")
int BPF_KRETPROBE(malloc_exit, void *ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *size = bpf_map_lookup_elem(&sizes, &id);

	if (!size)
		return 0;
	emit(ctx, *size, (__u64)ret, 1);
	bpf_map_delete_elem(&sizes, &id);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
