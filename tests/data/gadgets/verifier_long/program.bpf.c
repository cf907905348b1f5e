// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "verifier_long": a long straight-line program (an unrolled loop) that ends in a
 * read past a map value. Its verifier log is far longer than libbpf's printed copy keeps, so
 * the runner must read the log from its own buffer to give the reason and the whole log.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct small_value {
	__u32 words[4];
};

struct long_event {
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
GADGET_TRACER(reads, events, long_event);

SEC("tracepoint/syscalls/sys_enter_getppid")
int long_then_out_of_bounds(struct trace_event_raw_sys_enter *ctx)
{
	struct long_event *e;
	struct small_value *v;
	__u32 zero = 0, acc = 0;

	v = bpf_map_lookup_elem(&values, &zero);
	if (!v)
		return 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < 200; i++)
		v->words[i & 3] += bpf_get_prandom_u32();
	e = gadget_reserve_buf(events, sizeof(*e));
	if (!e)
		return 0;
	e->pid = acc + v->words[0];
	/* 64 bytes into a 16-byte value */
	e->value = ((volatile __u32 *)v->words)[16];
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
