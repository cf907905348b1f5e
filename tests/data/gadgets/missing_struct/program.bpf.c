// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "missing_struct": GADGET_TRACER names a struct that is never defined, so the
 * object's BTF has only a forward declaration of it. The runner must refuse the gadget
 * (gadget_invalid) naming the struct, before loading anything.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct present_event {
	gadget_pid pid;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(ghost, events, no_such_event);

SEC("tracepoint/syscalls/sys_enter_getppid")
int ghost_getppid(struct trace_event_raw_sys_enter *ctx)
{
	struct present_event *e = gadget_reserve_buf(events, sizeof(*e));

	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
