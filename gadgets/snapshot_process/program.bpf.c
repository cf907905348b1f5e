// SPDX-License-Identifier: GPL-2.0
/*
 * snapshot_process: the processes running now, one row each (every thread with `threads`),
 * from a task iterator (iter/task) run once. A process of a container the run does not target
 * is skipped in the kernel, by its mount namespace.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define PF_KTHREAD 0x00200000

struct process_entry {
	struct gadget_process proc;
	__u32 threads;
	bool kernel_thread;
	__u8 __pad[3];
	gadget_duration age;
};

const volatile bool threads = false;
GADGET_PARAM(threads);

GADGET_ITER(processes, process_entry, snapshot_processes);

SEC("iter/task")
int snapshot_processes(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct process_entry row = {};

	if (!task || (!threads && task->pid != task->tgid))
		return 0;
	if (gadget_should_discard_mntns_id(BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum)))
		return 0;
	gadget_process_populate_from_task(task, &row.proc);
	if ((targ_pid && row.proc.pid != targ_pid) ||
	    (targ_uid != GADGET_INVALID_ID && row.proc.creds.uid != targ_uid) ||
	    (targ_gid != GADGET_INVALID_ID && row.proc.creds.gid != targ_gid) ||
	    !gadget_comm_matches(row.proc.comm))
		return 0;
	row.threads = BPF_CORE_READ(task, signal, nr_threads);
	row.kernel_thread = (BPF_CORE_READ(task, flags) & PF_KTHREAD) != 0;
	row.age = bpf_ktime_get_ns() - BPF_CORE_READ(task, group_leader, start_time);
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
