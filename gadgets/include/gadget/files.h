/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A task's open files: the struct file behind a file descriptor, and a file's type as an enum
 * whose enumerators are the S_IFMT bits of the inode's mode (a record member of type
 * `enum file_type` prints FIFO, REGULAR, SOCKET, ...). Including this header defines those
 * enumerator names.
 */
#ifndef __GADGET_FILES_H
#define __GADGET_FILES_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define GADGET_S_IFMT 00170000

/* The file type (the S_IFMT bits of the inode's mode). */
enum file_type {
	UNKNOWN = 0,
	FIFO = 0010000,
	CHARACTER_DEVICE = 0020000,
	DIRECTORY = 0040000,
	BLOCK_DEVICE = 0060000,
	REGULAR = 0100000,
	SYMLINK = 0120000,
	SOCKET = 0140000,
};

/* The type of an open file (an enum file_type value). */
static __always_inline __u32 gadget_file_type(const struct file *file)
{
	return BPF_CORE_READ(file, f_inode, i_mode) & GADGET_S_IFMT;
}

/* The file behind descriptor `fd` of `task`, or NULL when the descriptor is not open. */
static __always_inline struct file *gadget_task_fd_file(struct task_struct *task, __u32 fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;

	if (fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

#endif /* __GADGET_FILES_H */
