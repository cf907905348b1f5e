// SPDX-License-Identifier: GPL-2.0
/*
 * profile_cpu: samples what every CPU runs at a fixed frequency (a perf_event program on each
 * online CPU) and counts the samples per process, kernel stack and user stack. The runner reads
 * the counts every interval (GADGET_MAPITER) and names the frames.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/common.h>
#include <gadget/kernel_stack_map.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/sample_counts.h>
#include <gadget/types.h>
#include <gadget/user_stack_map.h>

#define NO_STACK ((__u32)-1)

struct sample_key {
	struct gadget_process proc;
	gadget_kernel_stack kernel_stack;
	struct gadget_user_stack user_stack;
};

const volatile bool user_stacks_only = false;
const volatile bool kernel_stacks_only = false;
GADGET_PARAM(user_stacks_only);
GADGET_PARAM(kernel_stacks_only);

GADGET_SAMPLE_COUNTS(samples, sample_key, 10240);

SEC("perf_event")
int profile_sample(struct bpf_perf_event_data *ctx)
{
	struct sample_key key = {};
	__u64 mntns_id;
	long kstack;

	if (!(__u32)bpf_get_current_pid_tgid())
		return 0; /* the idle task */
	mntns_id = gadget_get_current_mntns_id();
	if (gadget_should_discard_mntns_id(mntns_id))
		return 0;
	gadget_process_populate(&key.proc);
	key.kernel_stack = NO_STACK;
	key.user_stack.stack_id = NO_STACK;
	if (!user_stacks_only) {
		kstack = gadget_get_kernel_stack(ctx);
		key.kernel_stack = kstack < 0 ? NO_STACK : (__u32)kstack;
	}
	if (!kernel_stacks_only)
		gadget_get_user_stack(ctx, &key.user_stack);

	gadget_count_sample(&samples, &key);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
