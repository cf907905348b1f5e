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
#include <gadget/types.h>
#include <gadget/user_stack_map.h>

struct sample_key {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
	gadget_kernel_stack kernel_stack;
	struct gadget_user_stack ustack;
};

struct sample_value {
	gadget_counter__u64 samples;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct sample_key);
	__type(value, struct sample_value);
} samples SEC(".maps");

GADGET_MAPITER(samples, samples);

SEC("perf_event")
int sample(struct bpf_perf_event_data *ctx)
{
	struct sample_key key = {};
	struct sample_value one = {1}, *v;
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
	v = bpf_map_lookup_elem(&samples, &key);
	if (v)
		__sync_fetch_and_add(&v->samples, 1);
	else
		bpf_map_update_elem(&samples, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
