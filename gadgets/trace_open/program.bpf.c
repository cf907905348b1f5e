// SPDX-License-Identifier: GPL-2.0
/*
 * trace_open: one record per open(2), openat(2) and openat2(2), emitted at syscall exit so the
 * record carries the result (fd or errno). The arguments are remembered at entry, in the
 * thread's task storage, because the path pointer is only meaningful while the call is in
 * flight. Task storage (not a hash map keyed by thread id) because every open of every process
 * runs the exit program: for a thread that never had a call traced, finding nothing there is
 * a pointer check, where a hash map would be hashed and searched.
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

#define NAME_LEN 256

struct args_t {
	const char *fname;
	__u32 flags;
	__u32 mode;
	__u32 in_flight; /* set at entry, cleared at exit: the storage stays with the thread */
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	__s32 fd;
	gadget_errno error_raw;
	gadget_file_flags flags_raw;
	gadget_file_mode mode_raw;
	char fname[NAME_LEN];
};

const volatile bool targ_failed = false;
GADGET_PARAM(targ_failed);

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct args_t);
} start SEC(".maps");

GADGET_TRACER_MAP(events, 4 * 1024 * 1024);
GADGET_TRACER(open, events, event);

static __always_inline int enter(const char *fname, __u64 flags, __u64 mode)
{
	struct args_t *args;

	if (gadget_should_discard_data_current())
		return 0;
	args = bpf_task_storage_get(&start, bpf_get_current_task_btf(), NULL,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!args)
		return 0;
	args->fname = fname;
	args->flags = (__u32)flags;
	args->mode = (__u32)mode;
	args->in_flight = 1;
	return 0;
}

static __always_inline int leave(struct trace_event_raw_sys_exit *ctx)
{
	struct args_t *args;
	struct event *event;
	long ret = ctx->ret;

	args = bpf_task_storage_get(&start, bpf_get_current_task_btf(), NULL, 0);
	if (!args || !args->in_flight)
		return 0;
	if (targ_failed && ret >= 0)
		goto cleanup;

	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		goto cleanup;

	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->fd = ret >= 0 ? (__s32)ret : -1;
	event->error_raw = ret >= 0 ? 0 : (__u32)-ret;
	event->flags_raw = args->flags;
	event->mode_raw = args->mode;
	bpf_probe_read_user_str(event->fname, sizeof(event->fname), args->fname);
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
cleanup:
	args->in_flight = 0;
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int trace_enter_open(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[0], ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int trace_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[1], ctx->args[2], ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int trace_enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how how = {};

	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return enter((const char *)ctx->args[1], how.flags, how.mode);
}

SEC("tracepoint/syscalls/sys_exit_open")
int trace_exit_open(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int trace_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int trace_exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx);
}

char LICENSE[] SEC("license") = "GPL";
