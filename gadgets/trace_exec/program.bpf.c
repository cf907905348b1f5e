// SPDX-License-Identifier: GPL-2.0
/*
 * trace_exec: one record per execve(2)/execveat(2), emitted at syscall exit with the result.
 * The file name and the arguments are copied at entry, while the caller's memory still holds
 * them (a successful exec replaces it). Arguments are joined with spaces into a bounded buffer:
 * at most MAX_ARGS arguments and ARGS_LEN bytes in all; `args_count` says how many were copied
 * and `args_truncated` is 1 when some were left out.
 *
 * Failed execs are left out unless ignore_failed is off. With `paths` on, the working directory
 * and the path of the executable the process runs after the call are added (a walk of the
 * dentries at exit, the cost of which is only paid when asked for).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filesystem.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define FILE_LEN 256
#define ARGS_LEN 1024 /* a power of two: offsets are masked with ARGS_LEN - 1 */
#define ARG_LEN 256
#define MAX_ARGS 20
#define MAX_IN_FLIGHT 10240

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	__s32 retval;
	gadget_errno error_raw;
	__u32 args_count;
	__u8 args_truncated;
	__u8 __pad[3];
	char file[FILE_LEN];
	char cwd[GADGET_PATH_BUF];
	char exepath[GADGET_PATH_BUF];
	char args[ARGS_LEN];
};

const volatile bool ignore_failed = true;
const volatile bool paths = false;

GADGET_PARAM(ignore_failed);
GADGET_PARAM(paths);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_IN_FLIGHT);
	__type(key, __u32);
	__type(value, struct event);
} execs SEC(".maps");

/* A zeroed record to start from: struct event is too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} empty_event SEC(".maps");

/* Scratch for the dentry walks of `paths`. */
GADGET_PATH_SCRATCH_MAP(path_names);

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(exec, events, event);

static __always_inline int enter(const char *filename, const char *const *argv)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32, zero = 0;
	__u32 off = 0;
	struct event *event;
	const char *argp;
	int i;
	long n;

	if (gadget_should_discard_data_current())
		return 0;
	event = bpf_map_lookup_elem(&empty_event, &zero);
	if (!event)
		return 0;
	if (bpf_map_update_elem(&execs, &pid, event, BPF_ANY))
		return 0;
	event = bpf_map_lookup_elem(&execs, &pid);
	if (!event)
		return 0;

	bpf_probe_read_user_str(event->file, sizeof(event->file), filename);
	for (i = 0; i < MAX_ARGS; i++) {
		if (bpf_probe_read_user(&argp, sizeof(argp), &argv[i]) || !argp)
			return 0;
		if (off > ARGS_LEN - ARG_LEN) {
			event->args_truncated = 1;
			return 0;
		}
		n = bpf_probe_read_user_str(&event->args[off & (ARGS_LEN - 1)], ARG_LEN, argp);
		if (n <= 0)
			return 0;
		/* The NUL that ended the previous argument becomes a space; the last one stays. */
		if (off > 0)
			event->args[(off - 1) & (ARGS_LEN - 1)] = ' ';
		event->args_count++;
		off += n;
	}
	if (bpf_probe_read_user(&argp, sizeof(argp), &argv[MAX_ARGS]) == 0 && argp)
		event->args_truncated = 1;
	return 0;
}

static __always_inline void fill_paths(struct event *event)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	struct gadget_path_scratch *names;
	__u32 zero = 0;

	names = bpf_map_lookup_elem(&path_names, &zero);
	if (!names || !fs)
		return;
	gadget_path_str(&fs->pwd, &fs->root, event->cwd, names);
	if (exe)
		gadget_path_str(&exe->f_path, &fs->root, event->exepath, names);
}

static __always_inline int leave(struct trace_event_raw_sys_exit *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *args, *event;
	long ret = ctx->ret;

	args = bpf_map_lookup_elem(&execs, &pid);
	if (!args)
		return 0;
	if (ignore_failed && ret < 0)
		goto cleanup;
	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		goto cleanup;
	bpf_probe_read_kernel(event, sizeof(*event), args);

	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->retval = (__s32)ret;
	event->error_raw = ret >= 0 ? 0 : (__u32)-ret;
	if (paths)
		fill_paths(event);
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&execs, &pid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int trace_enter_execve(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[0], (const char *const *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int trace_enter_execveat(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[1], (const char *const *)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_execve")
int trace_exit_execve(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int trace_exit_execveat(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx);
}

char LICENSE[] SEC("license") = "GPL";
