// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: three snapshots (GADGET_ITER).
 * - tasks: one row per process (iter/task), skipped in-kernel when its mount namespace is
 *   filtered out;
 * - socks: TCP and UDP sockets from two iterators (iter/tcp, iter/udp) merged into one array;
 * - filtered: the elements of the runner's own container-filter map (iter/bpf_map_elem with a
 *   target map), so a test can see what the runner put there.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define AF_INET 2
#define AF_INET6 10

struct task_row {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_ppid ppid;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
};

struct sock_row {
	gadget_netns_id netns_id;
	__u16 proto;
	__u16 port;
	__u32 family;
};

struct filter_row {
	gadget_mntns_id mntns_id;
};

GADGET_ITER(tasks, task_row, snap_tasks);
/* IG's older spelling of GADGET_ITER: gadgets written with it run unchanged */
GADGET_SNAPSHOTTER(socks, sock_row, snap_tcp, snap_udp);
GADGET_ITER(filtered, filter_row, snap_filter);
GADGET_ITER_TARGET_MAP(snap_filter, gadget_mntns_filter_map);

SEC("iter/task")
int snap_tasks(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct task_row row = {};

	if (!task || task->pid != task->tgid)
		return 0;
	row.mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	if (gadget_should_discard_mntns_id(row.mntns_id))
		return 0;
	row.pid = task->tgid;
	row.ppid = BPF_CORE_READ(task, real_parent, tgid);
	bpf_probe_read_kernel_str(row.comm, sizeof(row.comm), task->comm);
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

/* skc is read as a plain address (probe reads only): the iterator hands a maybe-NULL trusted
 * pointer, on which the verifier refuses the member arithmetic CO-RE reads need. */
static __always_inline void sock_out(struct seq_file *seq, void *const *slot, __u16 proto)
{
	struct sock_common *skc = NULL;
	struct sock_row row = {};

	bpf_probe_read_kernel(&skc, sizeof(skc), slot);
	if (!skc)
		return;

	row.family = BPF_CORE_READ(skc, skc_family);
	if (row.family != AF_INET && row.family != AF_INET6)
		return;
	row.netns_id = BPF_CORE_READ(skc, skc_net.net, ns.inum);
	row.proto = proto;
	row.port = BPF_CORE_READ(skc, skc_num);
	bpf_seq_write(seq, &row, sizeof(row));
}

SEC("iter/tcp")
int snap_tcp(struct bpf_iter__tcp *ctx)
{
	sock_out(ctx->meta->seq, (void *const *)&ctx->sk_common, 6);
	return 0;
}

SEC("iter/udp")
int snap_udp(struct bpf_iter__udp *ctx)
{
	/* __sk_common is the first member of struct udp_sock (through inet.sk) */
	sock_out(ctx->meta->seq, (void *const *)&ctx->udp_sk, 17);
	return 0;
}

SEC("iter/bpf_map_elem")
int snap_filter(struct bpf_iter__bpf_map_elem *ctx)
{
	struct filter_row row = {};
	__u64 *key = ctx->key;

	if (!key)
		return 0;
	row.mntns_id = *key;
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
