// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "kprobe": a kprobe, which kernels built without kprobes refuse. The runner must
 * report "not supported on this kernel", naming the program and the attach type.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct kprobe_event {
	gadget_pid pid;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(opens, events, kprobe_event);

SEC("kprobe/do_sys_openat2")
int BPF_KPROBE(kprobe_openat2)
{
	struct kprobe_event *e = gadget_reserve_buf(events, sizeof(*e));

	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
