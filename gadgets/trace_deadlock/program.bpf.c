// SPDX-License-Identifier: GPL-2.0
/*
 * trace_deadlock: lock-order inversions of pthread mutexes, the pattern of a potential deadlock.
 * A thread that locks mutex B while it holds mutex A makes the edge A -> B of its process's
 * lock-order graph; when some thread of the same process later locks A while holding B (the
 * edge B -> A), the two threads take the pair in opposite orders and can deadlock one day,
 * even if they did not this time. One record per inverted pair and process, the first time two
 * different threads are seen taking it in opposite orders (one thread taking a pair both ways
 * cannot deadlock with itself, and interpreters do it all the time).
 *
 * Uprobes on the C library's pthread_mutex_lock and pthread_mutex_unlock (entries only: the
 * order of the attempts is what matters, and a thread blocked in lock(A) while holding B is
 * the deadlock itself). Each thread's held mutexes are kept in a small array (the most recent
 * MAX_HELD; unlocks remove from it, whatever the order); each edge is kept in an LRU hash with
 * the thread that made it first. Only cycles of two mutexes are found; a longer cycle
 * (A -> B -> C -> A) needs a graph search the kernel side does not do.
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

#define MAX_HELD 8 /* a power of two */

struct held_locks {
	__u64 addr[MAX_HELD];
	__u32 n; /* locks taken, the last MAX_HELD kept */
};

struct edge_key {
	__u32 pid;
	__u32 __pad;
	__u64 from; /* held */
	__u64 to;   /* then locked */
};

struct edge {
	gadget_timestamp timestamp;
	gadget_tid tid;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	__u64 mutex_held;   /* held by this thread ... */
	__u64 mutex_wanted; /* ... while it locks this one */
	gadget_tid other_tid; /* the thread that locked them in the other order */
	gadget_comm other_comm[GADGET_TASK_COMM_LEN];
	__u32 __pad;
	gadget_timestamp other_timestamp_raw;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct held_locks);
} held SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct edge_key);
	__type(value, struct edge);
} edges SEC(".maps");

/* Inversions already reported: key {pid, lower address, higher address}. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct edge_key);
	__type(value, __u8);
} reported SEC(".maps");

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(deadlock, events, event);

static __always_inline void report(void *ctx, __u64 held_addr, __u64 wanted, struct edge *other)
{
	struct event *event = gadget_reserve_buf(events, sizeof(*event));

	if (!event)
		return;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->mutex_held = held_addr;
	event->mutex_wanted = wanted;
	event->other_tid = other->tid;
	__builtin_memcpy(event->other_comm, other->comm, sizeof(event->other_comm));
	event->__pad = 0;
	event->other_timestamp_raw = other->timestamp;
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
}

/* The edge held_addr -> wanted; reports it if wanted -> held_addr is known. */
static __always_inline void add_edge(void *ctx, __u32 pid, __u64 held_addr, __u64 wanted)
{
	struct edge_key key = {.pid = pid, .from = held_addr, .to = wanted};
	struct edge_key back = {.pid = pid, .from = wanted, .to = held_addr};
	struct edge_key pair = {.pid = pid};
	struct edge *other, mine = {};
	__u8 one = 1;

	if (held_addr == wanted)
		return; /* a recursive mutex taken again */
	if (!bpf_map_lookup_elem(&edges, &key)) {
		mine.timestamp = bpf_ktime_get_boot_ns();
		mine.tid = (__u32)bpf_get_current_pid_tgid();
		bpf_get_current_comm(mine.comm, sizeof(mine.comm));
		bpf_map_update_elem(&edges, &key, &mine, BPF_NOEXIST);
	}
	other = bpf_map_lookup_elem(&edges, &back);
	/* One thread taking a pair in both orders cannot deadlock with itself. */
	if (!other || other->tid == (__u32)bpf_get_current_pid_tgid())
		return;
	pair.from = held_addr < wanted ? held_addr : wanted;
	pair.to = held_addr < wanted ? wanted : held_addr;
	if (bpf_map_update_elem(&reported, &pair, &one, BPF_NOEXIST))
		return; /* reported before */
	report(ctx, held_addr, wanted, other);
}

SEC("uprobe/libc:pthread_mutex_lock")
int BPF_KPROBE(trace_mutex_lock, void *mutex)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), addr = (__u64)mutex;
	__u32 tid = (__u32)pid_tgid, pid = pid_tgid >> 32;
	struct held_locks *h, fresh = {};
	__u32 n;

	if (gadget_should_discard_data_current())
		return 0;
	h = bpf_map_lookup_elem(&held, &tid);
	if (!h) {
		fresh.addr[0] = addr;
		fresh.n = 1;
		bpf_map_update_elem(&held, &tid, &fresh, BPF_ANY);
		return 0;
	}
	n = h->n;
#pragma unroll
	for (int i = 0; i < MAX_HELD; i++)
		if (i < n && h->addr[i])
			add_edge(ctx, pid, h->addr[i], addr);
	/* Keep it in the first free slot, else over the oldest. */
#pragma unroll
	for (int i = 0; i < MAX_HELD; i++) {
		if (i >= n || !h->addr[i]) {
			h->addr[i] = addr;
			if (i >= n)
				h->n = i + 1;
			return 0;
		}
	}
	h->addr[n & (MAX_HELD - 1)] = addr;
	return 0;
}

SEC("uprobe/libc:pthread_mutex_unlock")
int BPF_KPROBE(trace_mutex_unlock, void *mutex)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct held_locks *h = bpf_map_lookup_elem(&held, &tid);
	__u64 addr = (__u64)mutex;

	if (!h)
		return 0;
#pragma unroll
	for (int i = 0; i < MAX_HELD; i++) {
		if (h->addr[i] == addr) {
			h->addr[i] = 0;
			break;
		}
	}
	/* Drop the empty slots at the end. */
#pragma unroll
	for (int i = MAX_HELD - 1; i >= 0; i--) {
		if (h->n == i + 1 && !h->addr[i])
			h->n = i;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
