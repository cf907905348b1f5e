// SPDX-License-Identifier: GPL-2.0
/*
 * trace_mount: mount(2), umount2(2) and move_mount(2) calls with their result, from the
 * syscall tracepoints. The arguments are copied from the caller's memory at entry (into a
 * per-thread slot, the record is too big for the BPF stack), the record is sent at exit with
 * the return value and the call's latency. move_mount is the last step of the new mount API
 * (fsopen/fsconfig/fsmount) and of `mount --move`: it shows where something was attached.
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

#define PATH_LEN 256
#define FS_LEN 32
#define DATA_LEN 128
#define MAX_IN_FLIGHT 10240

enum mount_op {
	MOUNT = 0,
	UMOUNT = 1,
	MOVE_MOUNT = 2,
};

/* mount(2) flags (uapi linux/mount.h), printed as NAME|NAME. */
enum mount_flags_set {
	MS_RDONLY = 1,
	MS_NOSUID = 2,
	MS_NODEV = 4,
	MS_NOEXEC = 8,
	MS_SYNCHRONOUS = 16,
	MS_REMOUNT = 32,
	MS_MANDLOCK = 64,
	MS_DIRSYNC = 128,
	MS_NOSYMFOLLOW = 256,
	MS_NOATIME = 1024,
	MS_NODIRATIME = 2048,
	MS_BIND = 4096,
	MS_MOVE = 8192,
	MS_REC = 16384,
	MS_SILENT = 32768,
	MS_POSIXACL = 1 << 16,
	MS_UNBINDABLE = 1 << 17,
	MS_PRIVATE = 1 << 18,
	MS_SLAVE = 1 << 19,
	MS_SHARED = 1 << 20,
	MS_RELATIME = 1 << 21,
	MS_KERNMOUNT = 1 << 22,
	MS_I_VERSION = 1 << 23,
	MS_STRICTATIME = 1 << 24,
	MS_LAZYTIME = 1 << 25,
};

/* umount2(2) flags and move_mount(2) flags, printed as NAME|NAME. */
enum umount_flags_set {
	MNT_FORCE = 1,
	MNT_DETACH = 2,
	MNT_EXPIRE = 4,
	UMOUNT_NOFOLLOW = 8,
};

enum move_mount_flags_set {
	MOVE_MOUNT_F_SYMLINKS = 0x01,
	MOVE_MOUNT_F_AUTOMOUNTS = 0x02,
	MOVE_MOUNT_F_EMPTY_PATH = 0x04,
	MOVE_MOUNT_T_SYMLINKS = 0x10,
	MOVE_MOUNT_T_AUTOMOUNTS = 0x20,
	MOVE_MOUNT_T_EMPTY_PATH = 0x40,
	MOVE_MOUNT_SET_GROUP = 0x100,
	MOVE_MOUNT_BENEATH = 0x200,
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	enum mount_op op_raw;
	__s32 ret;
	gadget_errno error_raw;
	enum mount_flags_set flags_raw;
	enum umount_flags_set umount_flags_raw;
	enum move_mount_flags_set move_flags_raw;
	gadget_duration latency;
	char fs[FS_LEN];
	char source[PATH_LEN];
	char target[PATH_LEN];
	char data[DATA_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_IN_FLIGHT);
	__type(key, __u32);
	__type(value, struct event);
} calls SEC(".maps");

/* A zeroed record to start from. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} empty_event SEC(".maps");

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(mount, events, event);

/* A zeroed per-thread slot for a call that is starting, or NULL when it is filtered out. */
static __always_inline struct event *begin(enum mount_op op)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), zero = 0;
	struct event *event;

	if (gadget_should_discard_data_current())
		return NULL;
	event = bpf_map_lookup_elem(&empty_event, &zero);
	if (!event || bpf_map_update_elem(&calls, &tid, event, BPF_ANY))
		return NULL;
	event = bpf_map_lookup_elem(&calls, &tid);
	if (!event)
		return NULL;
	event->op_raw = op;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	return event;
}

static __always_inline int finish(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *args, *event;
	long ret = ctx->ret;

	args = bpf_map_lookup_elem(&calls, &tid);
	if (!args)
		return 0;
	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		goto cleanup;
	bpf_probe_read_kernel(event, sizeof(*event), args);
	gadget_process_populate(&event->proc);
	event->ret = (__s32)ret;
	event->error_raw = ret < 0 ? (__u32)-ret : 0;
	event->latency = bpf_ktime_get_boot_ns() - args->timestamp_raw;
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&calls, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_mount")
int trace_enter_mount(struct trace_event_raw_sys_enter *ctx)
{
	struct event *event = begin(MOUNT);
	__u64 flags = ctx->args[3];

	if (!event)
		return 0;
	/* Old callers put a magic number in the upper 16 bits; the kernel drops it too. */
	if ((flags & 0xffff0000) == 0xc0ed0000)
		flags &= 0xffff;
	event->flags_raw = (__u32)flags;
	bpf_probe_read_user_str(event->source, sizeof(event->source), (void *)ctx->args[0]);
	bpf_probe_read_user_str(event->target, sizeof(event->target), (void *)ctx->args[1]);
	bpf_probe_read_user_str(event->fs, sizeof(event->fs), (void *)ctx->args[2]);
	bpf_probe_read_user_str(event->data, sizeof(event->data), (void *)ctx->args[4]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_mount")
int trace_exit_mount(struct trace_event_raw_sys_exit *ctx)
{
	return finish(ctx);
}

SEC("tracepoint/syscalls/sys_enter_umount")
int trace_enter_umount(struct trace_event_raw_sys_enter *ctx)
{
	struct event *event = begin(UMOUNT);

	if (!event)
		return 0;
	event->umount_flags_raw = (__u32)ctx->args[1];
	bpf_probe_read_user_str(event->target, sizeof(event->target), (void *)ctx->args[0]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_umount")
int trace_exit_umount(struct trace_event_raw_sys_exit *ctx)
{
	return finish(ctx);
}

SEC("tracepoint/syscalls/sys_enter_move_mount")
int trace_enter_move_mount(struct trace_event_raw_sys_enter *ctx)
{
	struct event *event = begin(MOVE_MOUNT);

	if (!event)
		return 0;
	event->move_flags_raw = (__u32)ctx->args[4];
	bpf_probe_read_user_str(event->source, sizeof(event->source), (void *)ctx->args[1]);
	bpf_probe_read_user_str(event->target, sizeof(event->target), (void *)ctx->args[3]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_move_mount")
int trace_exit_move_mount(struct trace_event_raw_sys_exit *ctx)
{
	return finish(ctx);
}

char LICENSE[] SEC("license") = "GPL";
