// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "clash": its record has a typed `fd_raw` (an errno, whose readable companion
 * would be named `fd`) next to a real member `fd`. The spec must refuse it (exit 3) unless
 * gadget.yaml names the companion otherwise. Never loaded.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct clash_event {
	gadget_errno fd_raw;
	__s32 fd;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(clash, events, clash_event);

SEC("tracepoint/syscalls/sys_enter_getppid")
int clash_getppid(void *ctx)
{
	struct clash_event *e = gadget_reserve_buf(events, sizeof(*e));

	if (!e)
		return 0;
	e->fd_raw = 0;
	e->fd = 1;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
