// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "verifier": compiles, but reads past the end of a map value, which the verifier
 * rejects ("invalid access to map value"). The runner must give a one-line reason, and the
 * verifier's log only with --verbose.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct small_value {
	__u32 words[4];
};

struct verifier_event {
	gadget_pid pid;
	__u32 value;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct small_value);
} values SEC(".maps");

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(reads, events, verifier_event);

SEC("tracepoint/syscalls/sys_enter_getppid")
int out_of_bounds(struct trace_event_raw_sys_enter *ctx)
{
	struct verifier_event *e;
	struct small_value *v;
	__u32 zero = 0;

	v = bpf_map_lookup_elem(&values, &zero);
	if (!v)
		return 0;
	e = gadget_reserve_buf(events, sizeof(*e));
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	/* 64 bytes into a 16-byte value */
	e->value = ((volatile __u32 *)v->words)[16];
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
