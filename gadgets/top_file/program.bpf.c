// SPDX-License-Identifier: GPL-2.0
/*
 * top_file: reads and writes per file and process, per interval, from the read(2), write(2),
 * pread64(2), pwrite64(2), readv(2), writev(2), preadv(2), pwritev(2), preadv2(2) and
 * pwritev2(2) syscall tracepoints. The fd is remembered at
 * entry; at exit the bytes the call returned are added to the (process, file) row of a map the
 * runner reads and empties every interval (GADGET_MAPITER). The file is found through the
 * task's fd table, and its path is rebuilt from the dentries (gadget/filesystem.h) only when a
 * row is created, so a busy file costs one map lookup per call. Only regular files are counted
 * unless all_files is set.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/common.h>
#include <gadget/files.h>
#include <gadget/filesystem.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define MAX_ROWS 10240
#define MAX_IN_FLIGHT 10240

struct file_key {
	__u32 __tgid;
	__u32 __dev;
	__u64 __ino;
};

struct file_stats {
	struct gadget_process proc;
	gadget_counter__u64 reads;
	gadget_counter__u64 writes;
	gadget_counter__u64 rbytes;
	gadget_counter__u64 wbytes;
	enum file_type type_raw;
	__u32 dev;
	__u64 ino;
	char path[GADGET_PATH_BUF];
};

struct call {
	__u32 fd;
	__u32 write;
};

const volatile bool all_files = false;
GADGET_PARAM(all_files);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ROWS);
	__type(key, struct file_key);
	__type(value, struct file_stats);
} files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_IN_FLIGHT);
	__type(key, __u32);
	__type(value, struct call);
} calls SEC(".maps");

GADGET_PATH_SCRATCH_MAP(path_scratch);

/* A zeroed row to start from: too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct file_stats);
} new_row SEC(".maps");

GADGET_MAPITER(files, files);

static __always_inline int enter(__u64 fd, __u32 write)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call call = {.fd = (__u32)fd, .write = write};

	if (gadget_should_discard_data_current())
		return 0;
	bpf_map_update_elem(&calls, &tid, &call, BPF_ANY);
	return 0;
}

static __always_inline struct file_stats *row_of(struct task_struct *task, struct file *file,
						 struct file_key *key, __u32 type)
{
	struct gadget_path_scratch *scratch;
	struct file_stats *row;
	__u32 zero = 0;

	row = bpf_map_lookup_elem(&files, key);
	if (row)
		return row;
	row = bpf_map_lookup_elem(&new_row, &zero);
	scratch = bpf_map_lookup_elem(&path_scratch, &zero);
	if (!row || !scratch)
		return NULL;
	gadget_process_populate(&row->proc);
	row->reads = row->writes = row->rbytes = row->wbytes = 0;
	row->type_raw = type;
	row->dev = key->__dev;
	row->ino = key->__ino;
	row->path[0] = '\0';
	gadget_task_file_path(task, file, row->path, scratch);
	bpf_map_update_elem(&files, key, row, BPF_NOEXIST);
	return bpf_map_lookup_elem(&files, key);
}

static __always_inline int leave(struct trace_event_raw_sys_exit *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct task_struct *task;
	struct file_stats *row;
	struct file_key key = {};
	struct call *call;
	struct file *file;
	long ret = ctx->ret;
	__u32 type;

	call = bpf_map_lookup_elem(&calls, &tid);
	if (!call)
		return 0;
	if (ret < 0)
		goto cleanup;
	task = (struct task_struct *)bpf_get_current_task();
	file = gadget_task_fd_file(task, call->fd);
	if (!file)
		goto cleanup;
	type = gadget_file_type(file);
	if (!all_files && type != REGULAR)
		goto cleanup;
	key.__tgid = pid_tgid >> 32;
	key.__dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	key.__ino = BPF_CORE_READ(file, f_inode, i_ino);
	row = row_of(task, file, &key, type);
	if (!row)
		goto cleanup;
	if (call->write) {
		__sync_fetch_and_add(&row->writes, 1);
		__sync_fetch_and_add(&row->wbytes, ret);
	} else {
		__sync_fetch_and_add(&row->reads, 1);
		__sync_fetch_and_add(&row->rbytes, ret);
	}
cleanup:
	bpf_map_delete_elem(&calls, &tid);
	return 0;
}

#define TRACE_CALL(name, write)                                           \
	SEC("tracepoint/syscalls/sys_enter_" #name)                       \
	int trace_enter_##name(struct trace_event_raw_sys_enter *ctx)     \
	{                                                                 \
		return enter(ctx->args[0], write);                        \
	}                                                                 \
	SEC("tracepoint/syscalls/sys_exit_" #name)                        \
	int trace_exit_##name(struct trace_event_raw_sys_exit *ctx)       \
	{                                                                 \
		return leave(ctx);                                        \
	}

TRACE_CALL(read, 0)
TRACE_CALL(write, 1)
TRACE_CALL(pread64, 0)
TRACE_CALL(pwrite64, 1)
TRACE_CALL(readv, 0)
TRACE_CALL(writev, 1)
TRACE_CALL(preadv, 0)
TRACE_CALL(pwritev, 1)
TRACE_CALL(preadv2, 0)
TRACE_CALL(pwritev2, 1)

char LICENSE[] SEC("license") = "GPL";
