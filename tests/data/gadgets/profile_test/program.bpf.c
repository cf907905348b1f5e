// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: a CPU profile. A perf_event program runs at the sampling frequency on every
 * CPU and counts samples per (process, kernel stack, user stack) in a hash map read as an
 * array datasource (GADGET_MAPITER).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/kernel_stack_map.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/sample_counts.h>
#include <gadget/types.h>
#include <gadget/user_stack_map.h>

struct sample_key {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
	gadget_kernel_stack kernel_stack;
	struct gadget_user_stack ustack;
};

GADGET_SAMPLE_COUNTS(samples, sample_key, 10240);

SEC("perf_event")
int sample(struct bpf_perf_event_data *ctx)
{
	struct sample_key key = {};
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	long kstack;

	if (!(__u32)pid_tgid)
		return 0; /* idle */
	key.mntns_id = gadget_get_current_mntns_id();
	if (gadget_should_discard_mntns_id(key.mntns_id))
		return 0;
	key.pid = pid_tgid >> 32;
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	kstack = gadget_get_kernel_stack(ctx);
	key.kernel_stack = kstack < 0 ? (__u32)-1 : (__u32)kstack;
	gadget_get_user_stack(ctx, &key.ustack);
	gadget_count_sample(&samples, &key);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
