// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "perf_array": a tracer whose map is a perf event array (as IG's buffer falls
 * back to before 5.8), written through a map-in-map: an array of perf buffers whose inner
 * template leaves max_entries to the loader (one slot per CPU). On getsid(), it writes
 * `burst` records of 4 KiB each: a burst larger than the per-CPU buffer must be counted as
 * lost, never dropped silently.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/macros.h>
#include <gadget/types.h>

const volatile __u32 burst = 1;
GADGET_PARAM(burst);

struct getsid_event {
	gadget_pid pid;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
	__u32 seq;
	__u32 burst;
	char payload[4000];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

struct perf_template {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct perf_template);
} buffers SEC(".maps") = {
	.values = { [0] = &events },
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct getsid_event);
} scratch SEC(".maps");

GADGET_TRACER(getsid, events, getsid_event);

SEC("tracepoint/syscalls/sys_enter_getsid")
int trace_getsid(void *ctx)
{
	__u32 zero = 0;
	struct getsid_event *e = bpf_map_lookup_elem(&scratch, &zero);
	void *buf = bpf_map_lookup_elem(&buffers, &zero);

	if (!e || !buf)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->burst = burst;
	for (__u32 i = 0; i < burst && i < 256; i++) {
		e->seq = i;
		bpf_perf_event_output(ctx, buf, BPF_F_CURRENT_CPU, e, sizeof(*e));
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
