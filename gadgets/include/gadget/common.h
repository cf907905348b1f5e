/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Filling `struct gadget_process` (types.h), the process part of a record that shows up as
 * `proc.comm`, `proc.pid`, `proc.tid`, `proc.mntns_id`, `proc.creds.uid`, `proc.creds.gid`,
 * `proc.parent.comm`, `proc.parent.pid` and `proc.parent.tid`.
 *
 * gadget_process_populate() describes the current task; gadget_process_populate_from_task()
 * any task the program holds a pointer to (the victim of an OOM kill, the target of a signal).
 * Every read goes through CO-RE, so one object works on every kernel with BTF. Credentials are
 * the task's (subjective) `cred`, as bpf_get_current_uid_gid() reports them: ids of the initial
 * user namespace, not of the container's. The parent is `real_parent` (the process that forked it, or the reaper that adopted it).
 */
#ifndef __GADGET_COMMON_H
#define __GADGET_COMMON_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/types.h>

static __always_inline void gadget_process_populate_from_task(struct task_struct *task,
							     struct gadget_process *p)
{
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);

	BPF_CORE_READ_STR_INTO(&p->comm, task, comm);
	p->pid = BPF_CORE_READ(task, tgid);
	p->tid = BPF_CORE_READ(task, pid);
	p->mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	p->creds.uid = BPF_CORE_READ(task, cred, uid.val);
	p->creds.gid = BPF_CORE_READ(task, cred, gid.val);
	if (parent) {
		BPF_CORE_READ_STR_INTO(&p->parent.comm, parent, comm);
		p->parent.pid = BPF_CORE_READ(parent, tgid);
		p->parent.tid = BPF_CORE_READ(parent, pid);
	} else {
		p->parent.comm[0] = '\0';
		p->parent.pid = 0;
		p->parent.tid = 0;
	}
}

/* The current task: ids, credentials and comm from the helpers, the rest through CO-RE. */
static __always_inline void gadget_process_populate(struct gadget_process *p)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	bpf_get_current_comm(p->comm, sizeof(p->comm));
	p->pid = pid_tgid >> 32;
	p->tid = (__u32)pid_tgid;
	p->mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	p->creds.uid = (__u32)uid_gid;
	p->creds.gid = uid_gid >> 32;
	if (parent) {
		BPF_CORE_READ_STR_INTO(&p->parent.comm, parent, comm);
		p->parent.pid = BPF_CORE_READ(parent, tgid);
		p->parent.tid = BPF_CORE_READ(parent, pid);
	} else {
		p->parent.comm[0] = '\0';
		p->parent.pid = 0;
		p->parent.tid = 0;
	}
}

/* The older name of gadget_process_populate(), still used by Inspektor Gadget's gadgets. */
static __always_inline void gadget_fill_current_process(struct gadget_process *p)
{
	gadget_process_populate(p);
}

#endif /* __GADGET_COMMON_H */
