// SPDX-License-Identifier: GPL-2.0
/*
 * trace_signal: signals sent, from signal:signal_generate, which fires in the sender's context
 * whenever the kernel queues (or drops) a signal for a task: kill(2) and friends, but also the
 * kernel's own SIGSEGV, SIGCHLD, SIGPIPE, SIGKILL of the OOM killer. `result` says what became
 * of it. A kill(2)/tkill(2)/tgkill(2) that fails before any signal is generated (EPERM, ESRCH)
 * never reaches that tracepoint, so the syscalls are traced too and their failures reported
 * with `result` NOT_SENT and the errno.
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

/* The kernel's TRACE_SIGNAL_* results, and one of ours for a kill that failed. */
enum signal_result {
	DELIVERED = 0,
	IGNORED = 1,
	ALREADY_PENDING = 2,
	OVERFLOW_FAIL = 3,
	LOSE_INFO = 4,
	NOT_SENT = 5,
};

/* si_code values that say who sent a signal (uapi asm-generic/siginfo.h); positive codes are
 * per-signal (SEGV_MAPERR, CLD_EXITED, ...) and print as numbers. */
enum signal_code {
	SI_USER = 0,
	SI_KERNEL = 0x80,
	SI_QUEUE = -1,
	SI_TIMER = -2,
	SI_MESGQ = -3,
	SI_ASYNCIO = -4,
	SI_SIGIO = -5,
	SI_TKILL = -6,
	SI_DETHREAD = -7,
	SI_ASYNCNL = -60,
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	gadget_pid tpid;
	gadget_comm tcomm[GADGET_TASK_COMM_LEN];
	gadget_signal sig_raw;
	enum signal_code code_raw;
	enum signal_result result_raw;
	gadget_errno error_raw;
	bool group;
};

struct kill_args {
	__u32 tpid;
	__u32 sig;
};

const volatile __u32 targ_signal = 0;
const volatile bool targ_failed = false;

GADGET_PARAM(targ_signal);
GADGET_PARAM(targ_failed);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct kill_args);
} kills SEC(".maps");

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(signal, events, event);

static __always_inline struct event *new_event(__u32 sig, __u32 tpid)
{
	struct event *event = gadget_reserve_buf(events, sizeof(*event));

	if (!event)
		return NULL;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->tpid = tpid;
	event->tcomm[0] = '\0';
	event->sig_raw = sig;
	event->code_raw = SI_USER;
	event->result_raw = DELIVERED;
	event->error_raw = 0;
	event->group = false;
	return event;
}

SEC("tracepoint/signal/signal_generate")
int trace_signal_generate(struct trace_event_raw_signal_generate *ctx)
{
	struct event *event;
	int result = ctx->result;

	if (targ_signal && ctx->sig != targ_signal)
		return 0;
	if (targ_failed && result == DELIVERED)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	event = new_event(ctx->sig, ctx->pid);
	if (!event)
		return 0;
	bpf_probe_read_kernel_str(event->tcomm, sizeof(event->tcomm), ctx->comm);
	event->code_raw = ctx->code;
	event->result_raw = result;
	event->group = ctx->group != 0;
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

static __always_inline int kill_enter(__u32 tpid, __u32 sig)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct kill_args args = {.tpid = tpid, .sig = sig};

	if (!sig || (targ_signal && sig != targ_signal))
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	bpf_map_update_elem(&kills, &tid, &args, BPF_ANY);
	return 0;
}

static __always_inline int kill_exit(struct trace_event_raw_sys_exit *ctx, enum signal_code code)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct kill_args *args = bpf_map_lookup_elem(&kills, &tid);
	struct event *event;
	long ret = ctx->ret;

	if (!args)
		return 0;
	if (ret < 0) {
		event = new_event(args->sig, args->tpid);
		if (event) {
			event->code_raw = code;
			event->result_raw = NOT_SENT;
			event->error_raw = -ret;
			event->group = code == SI_USER;
			gadget_submit_buf(ctx, &events, event, sizeof(*event));
		}
	}
	bpf_map_delete_elem(&kills, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_kill")
int trace_enter_kill(struct trace_event_raw_sys_enter *ctx)
{
	return kill_enter(ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_kill")
int trace_exit_kill(struct trace_event_raw_sys_exit *ctx)
{
	return kill_exit(ctx, SI_USER);
}

SEC("tracepoint/syscalls/sys_enter_tkill")
int trace_enter_tkill(struct trace_event_raw_sys_enter *ctx)
{
	return kill_enter(ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_tkill")
int trace_exit_tkill(struct trace_event_raw_sys_exit *ctx)
{
	return kill_exit(ctx, SI_TKILL);
}

SEC("tracepoint/syscalls/sys_enter_tgkill")
int trace_enter_tgkill(struct trace_event_raw_sys_enter *ctx)
{
	return kill_enter(ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_tgkill")
int trace_exit_tgkill(struct trace_event_raw_sys_exit *ctx)
{
	return kill_exit(ctx, SI_TKILL);
}

char LICENSE[] SEC("license") = "GPL";
