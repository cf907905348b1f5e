// SPDX-License-Identifier: GPL-2.0
/*
 * trace_exit: one record per process exit, from sched:sched_process_exit. The tracepoint fires
 * in the exiting thread for every thread; by default a record is made only when the last thread
 * of the process goes (`group_dead`), so one process gives one record whatever its threads.
 *
 * The kernel has stored the exit status in task->exit_code by then, in wait(2)'s encoding: the
 * code given to exit() in bits 8-15, or the fatal signal in bits 0-6 and 0x80 when a core was
 * dumped. The namespaces are still attached, so the container filter and the mount namespace
 * id work as for a living process. The age is the time since the process (its thread group
 * leader) started, in the kernel's monotonic clock like task->start_time.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	__s32 exit_code;
	gadget_signal signal_raw;
	bool core_dumped;
	bool thread_exit;
	__u8 __pad[6];
	gadget_duration age;
};

const volatile bool targ_threads = false;
const volatile bool targ_failed = false;

GADGET_PARAM(targ_threads);
GADGET_PARAM(targ_failed);

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(exit, events, event);

SEC("tracepoint/sched/sched_process_exit")
int trace_sched_process_exit(struct trace_event_raw_sched_process_exit *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 status, sig;
	struct event *event;
	bool last = true;

	if (bpf_core_field_exists(ctx->group_dead))
		last = ctx->group_dead;
	else
		last = BPF_CORE_READ(task, signal, live.counter) == 0;
	if (!last && !targ_threads)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	status = BPF_CORE_READ(task, exit_code);
	sig = status & 0x7f;
	if (targ_failed && status == 0)
		return 0;

	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		return 0;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->exit_code = sig ? 0 : (status >> 8) & 0xff;
	event->signal_raw = sig;
	event->core_dumped = sig && (status & 0x80);
	event->thread_exit = !last;
	event->age = bpf_ktime_get_ns() - BPF_CORE_READ(task, group_leader, start_time);
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
