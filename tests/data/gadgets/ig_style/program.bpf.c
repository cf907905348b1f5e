// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "ig_style": written the way Inspektor Gadget's own gadgets use the gadget
 * headers, so that their sources build and run here unchanged. It uses IG's spellings on
 * purpose: the tracer map passed by address (`gadget_reserve_buf(&events, ...)`,
 * `gadget_output_buf(ctx, &events, ...)`), gadget_get_mntns_id(),
 * gadget_fill_current_process(), gadget_should_discard_data() with values the program has,
 * BPF_PROG() without including bpf_tracing.h itself, get_path_str() of filesystem.h,
 * get_task_state() of core_fixes.bpf.h, bpf_map_lookup_or_try_init() of maps.bpf.h,
 * BPF_URETPROBE() (which libbpf 1.1 lacks) and the parent's tid (`proc.parent.tid`).
 *
 * getppid(2) of a traced process gives a record of kind RESERVED (reserve + submit) with the
 * thread's count of getppid calls so far in `calls`; the return of libc's getppid() one of
 * kind UPROBE with its value in `ret`; renaming a thread (raw tracepoint task_rename) one of
 * kind OUTPUT (gadget_output_buf from a per-CPU copy), with the new name in `newcomm`.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/core_fixes.bpf.h>
#include <gadget/filesystem.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/maps.bpf.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define CWD_LEN 256

enum record_kind {
	RESERVED = 1,
	OUTPUT = 2,
	UPROBE = 3,
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	gadget_mntns_id mntns_id;
	__s64 state;
	enum record_kind kind_raw;
	__u64 calls;
	__s64 ret;
	char newcomm[TASK_COMM_LEN];
	char cwd[CWD_LEN];
};

const volatile bool with_cwd = false;
GADGET_PARAM(with_cwd);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 64);
GADGET_TRACER(ig, events, event);

/* The filters of filter.h, fed with the current task's values one by one. */
static __always_inline bool skip_current(void)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	char comm[TASK_COMM_LEN];

	bpf_get_current_comm(comm, sizeof(comm));
	return gadget_should_discard_data(gadget_get_mntns_id(), pid_tgid >> 32, (__u32)pid_tgid,
					  comm, (__u32)uid_gid, uid_gid >> 32);
}

static __always_inline void fill(struct event *e, enum record_kind kind)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	e->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_fill_current_process(&e->proc);
	e->mntns_id = gadget_get_mntns_id();
	e->state = get_task_state(task);
	e->kind_raw = kind;
	e->calls = 0;
	e->ret = 0;
	e->newcomm[0] = '\0';
	e->cwd[0] = '\0';
	if (with_cwd) {
		struct fs_struct *fs = BPF_CORE_READ(task, fs);
		char *cwd = get_path_str(&fs->pwd);

		bpf_probe_read_kernel_str(e->cwd, sizeof(e->cwd), cwd);
	}
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int ig_getppid(void *ctx)
{
	struct event *e;

	if (skip_current())
		return 0;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	fill(e, RESERVED);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 zero = 0, *n = bpf_map_lookup_or_try_init(&calls, &tid, &zero);

	if (n)
		e->calls = __sync_add_and_fetch(n, 1);
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

SEC("uretprobe/libc:getppid")
int BPF_URETPROBE(ig_getppid_ret, int ret)
{
	struct event *e;

	if (skip_current())
		return 0;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	fill(e, UPROBE);
	e->ret = ret;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

SEC("raw_tp/task_rename")
int BPF_PROG(ig_rename, struct task_struct *task, const char *comm)
{
	__u32 zero = 0;
	struct event *e;

	if (skip_current())
		return 0;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	fill(e, OUTPUT);
	bpf_probe_read_kernel_str(e->newcomm, sizeof(e->newcomm), comm);
	gadget_output_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
