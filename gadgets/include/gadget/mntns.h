/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mount namespace id of the current task: what the container filter (mntns_filter.h) and
 * enrichment key on. gadget_get_mntns_id() is the same function under the older name that
 * Inspektor Gadget's gadgets still call.
 */
#ifndef __GADGET_MNTNS_H
#define __GADGET_MNTNS_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/types.h>

/*
 * The current task's mount namespace id. Where the kernel has bpf_get_current_task_btf()
 * (5.11+), the task is a BTF pointer and task->nsproxy->mnt_ns->ns.inum are three plain
 * loads; elsewhere, three bpf_probe_read_kernel() calls (each a helper call and a fault-safe
 * copy, several times the cost of the plain loads).
 */
static __always_inline gadget_mntns_id gadget_get_current_mntns_id(void)
{
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)) {
		struct task_struct *task = bpf_get_current_task_btf();

		return task->nsproxy->mnt_ns->ns.inum;
	}
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
}

static __always_inline gadget_mntns_id gadget_get_mntns_id(void)
{
	return gadget_get_current_mntns_id();
}

#endif /* __GADGET_MNTNS_H */
