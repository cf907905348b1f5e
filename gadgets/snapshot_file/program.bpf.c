// SPDX-License-Identifier: GPL-2.0
/*
 * snapshot_file: the files processes have open now, one row per file descriptor, from a
 * task_file iterator (iter/task_file) run once. The path is rebuilt from the file's dentries up
 * to the process's root directory (gadget/filesystem.h); sockets and pipes, which have no path,
 * are named the way /proc/PID/fd shows them: "socket:[inode]", "pipe:[inode]".
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

struct file_entry {
	struct gadget_process proc;
	__s32 fd;
	enum file_type type_raw;
	gadget_file_flags flags_raw;
	__u32 __pad;
	__u64 ino;
	__s64 pos;
	char path[GADGET_PATH_BUF];
};

GADGET_PATH_SCRATCH_MAP(path_scratch);

/* The row being built: too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct file_entry);
} row_scratch SEC(".maps");

GADGET_ITER(files, file_entry, snapshot_files);

SEC("iter/task_file")
int snapshot_files(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct gadget_path_scratch *scratch;
	struct file_entry *row;
	__u32 zero = 0;

	if (!task || !file)
		return 0;
	if (gadget_should_discard_mntns_id(BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum)))
		return 0;
	row = bpf_map_lookup_elem(&row_scratch, &zero);
	scratch = bpf_map_lookup_elem(&path_scratch, &zero);
	if (!row || !scratch)
		return 0;
	gadget_process_populate_from_task(task, &row->proc);
	if ((targ_pid && row->proc.pid != targ_pid) ||
	    (targ_tid && row->proc.tid != targ_tid) ||
	    (targ_uid != GADGET_INVALID_ID && row->proc.creds.uid != targ_uid) ||
	    (targ_gid != GADGET_INVALID_ID && row->proc.creds.gid != targ_gid) ||
	    !gadget_comm_matches(row->proc.comm))
		return 0;
	row->fd = ctx->fd;
	row->type_raw = gadget_file_type(file);
	row->flags_raw = BPF_CORE_READ(file, f_flags);
	row->ino = BPF_CORE_READ(file, f_inode, i_ino);
	row->pos = BPF_CORE_READ(file, f_pos);
	row->path[0] = '\0';
	if (row->type_raw == SOCKET) {
		BPF_SNPRINTF(row->path, sizeof(row->path), "socket:[%lu]", row->ino);
	} else if (row->type_raw == FIFO && !BPF_CORE_READ(file, f_path.dentry, d_parent, d_name.len)) {
		/* an anonymous pipe: its dentry hangs off the pipefs root */
		BPF_SNPRINTF(row->path, sizeof(row->path), "pipe:[%lu]", row->ino);
	} else {
		gadget_task_file_path(task, file, row->path, scratch);
	}
	bpf_seq_write(ctx->meta->seq, row, sizeof(*row));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
