/* SPDX-License-Identifier: Apache-2.0 */
/*
 * User stacks: the addresses go into the ig_ustack stack-trace map, and a struct
 * gadget_user_stack member says which process they belong to (its pid as seen from the initial
 * pid namespace and from the next one), so the runner can open that process's own files
 * (/proc/PID/maps, /proc/PID/root) to name them.
 */
#ifndef __GADGET_USER_STACK_MAP_H
#define __GADGET_USER_STACK_MAP_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/types.h>

#define GADGET_USER_MAX_STACK_DEPTH 127
#define GADGET_USER_STACK_MAP_ENTRIES 10000

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, GADGET_USER_MAX_STACK_DEPTH * sizeof(__u64));
	__uint(max_entries, GADGET_USER_STACK_MAP_ENTRIES);
} ig_ustack SEC(".maps");

static __always_inline void gadget_get_user_stack(void *ctx, struct gadget_user_stack *ustack)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct pid *thread_pid = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(thread_pid, level);
	long id = bpf_get_stackid(ctx, &ig_ustack, BPF_F_USER_STACK);

	/* A failed lookup keeps an id no stack has: the runner shows the frames as unknown. */
	ustack->stack_id = id < 0 ? (__u32)-1 : (__u32)id;
	ustack->exe_inode = BPF_CORE_READ(task, mm, exe_file, f_inode, i_ino);
	ustack->mtime_sec = 0;
	ustack->mtime_nsec = 0;
	ustack->pid_level0 = BPF_CORE_READ(thread_pid, numbers[0].nr);
	ustack->pidns_level0 = BPF_CORE_READ(thread_pid, numbers[0].ns, ns.inum);
	ustack->pid_level1 = 0;
	ustack->pidns_level1 = 0;
	if (level >= 1) {
		ustack->pid_level1 = BPF_CORE_READ(thread_pid, numbers[1].nr);
		ustack->pidns_level1 = BPF_CORE_READ(thread_pid, numbers[1].ns, ns.inum);
	}
}

#endif /* __GADGET_USER_STACK_MAP_H */
