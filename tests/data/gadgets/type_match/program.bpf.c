// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "type_match": picks a raw tracepoint's argument layout with
 * bpf_core_type_matches() (a CO-RE type-match relocation, which clang 14 cannot emit), the way
 * Inspektor Gadget's profile_blockio tells the two block_rq_* prototypes apart, and refuses to
 * load through bpf_core_unreachable() on a kernel where neither layout matches. A fork gives
 * one record with the parent and the child read from the matched arguments.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/core_fixes.bpf.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct task_struct___empty {};

/* sched_process_fork(parent, child) as it is; the other layout is one no kernel has. (No
 * `char` in them: the kernel is built with unsigned chars, a BPF object with signed ones, and
 * a type match compares signedness.) */
typedef void (*btf_trace_sched_process_fork___now)(void *, struct task_struct___empty *,
						   struct task_struct___empty *);
typedef void (*btf_trace_sched_process_fork___never)(void *, struct task_struct___empty *, long,
						     long);

struct event {
	gadget_pid parent;
	gadget_pid child;
};

GADGET_TRACER_MAP(events, 4096 * 4);
GADGET_TRACER(forks, events, event);

static __always_inline int emit(void *ctx, struct task_struct *parent, struct task_struct *child)
{
	struct event *e = gadget_reserve_buf(&events, sizeof(*e));

	if (!e)
		return 0;
	e->parent = BPF_CORE_READ(parent, tgid);
	e->child = BPF_CORE_READ(child, tgid);
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

SEC("raw_tp/sched_process_fork")
int type_match_fork(__u64 *ctx)
{
	if (gadget_should_discard_data_current())
		return 0;
	/* Each branch reads its own context slots: the verifier refuses a load through a context
	 * pointer the branches would have merged. */
	if (bpf_core_type_matches(btf_trace_sched_process_fork___now))
		return emit(ctx, (void *)ctx[0], (void *)ctx[1]);
	if (bpf_core_type_matches(btf_trace_sched_process_fork___never))
		return emit(ctx, (void *)ctx[0], (void *)ctx[2]);
	bpf_core_unreachable();
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
