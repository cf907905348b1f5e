/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Paths of kernel `struct path`s (a process's working directory, its executable, an open
 * file) as text, for tracepoint programs, where bpf_d_path() is not allowed.
 *
 * gadget_path_str() walks from the dentry up to the process's root directory (so a chrooted or
 * pivoted process sees its own paths), crossing mount points through `struct mount`, and
 * writes "/a/b/c" into a buffer of GADGET_PATH_BUF bytes (512 unless the program defines it,
 * a power of two, before including this header). Two bpf_loop() passes (Linux 5.17+; the
 * verifier checks each callback once instead of every unrolled step) do it: the first
 * collects at most GADGET_PATH_DEPTH name pointers from the leaf up, the second appends them
 * root first into a scratch buffer twice the path size (so a masked offset plus one component
 * always fits, whatever the verifier knows of the offset), which is then copied into the
 * record. A path deeper than GADGET_PATH_DEPTH components keeps its last components and starts
 * with "..."; a path longer than the buffer is cut at the end. The scratch (1.3 KiB for 512
 * bytes) does not fit on the BPF stack: callers pass a `struct gadget_path_scratch` from a
 * per-CPU array map, declared with GADGET_PATH_SCRATCH_MAP(name). Needs bpf_probe_read_kernel()
 * and bpf_loop() only, so it also runs in cgroup socket programs (bpf_d_path() is for LSM,
 * iterators and a list of fentry hooks). gadget_task_file_path() is the path of a task's open
 * file as that task sees it.
 */
#ifndef __GADGET_FILESYSTEM_H
#define __GADGET_FILESYSTEM_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef GADGET_PATH_BUF /* a program may ask for more (IG's sockets map holds 4096) */
#define GADGET_PATH_BUF 512 /* a power of two: offsets are masked with GADGET_PATH_BUF - 1 */
#endif
#define GADGET_PATH_DEPTH 32 /* a power of two: indexes are masked */
#define GADGET_NAME_CHUNK 128 /* longest component copied */

struct gadget_path_scratch {
	const unsigned char *name[GADGET_PATH_DEPTH];
	char buf[GADGET_PATH_BUF * 2];
};

/* A per-CPU array map `name` of one struct gadget_path_scratch (key 0). */
#define GADGET_PATH_SCRATCH_MAP(name)                          \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);       \
		__uint(max_entries, 1);                        \
		__type(key, __u32);                            \
		__type(value, struct gadget_path_scratch);     \
	} name SEC(".maps")

struct gadget_path_walk {
	struct gadget_path_scratch *scratch;
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	int n;     /* names collected */
	int state; /* 0: walking, 1: reached the root, -1: deeper than GADGET_PATH_DEPTH */
	__u32 off; /* bytes written to scratch->buf */
};

/* off & (GADGET_PATH_BUF - 1), masked in the program itself: the compiler would drop a mask it
 * can prove useless, and the verifier, which tracks less than the compiler, then refuses. */
static __always_inline __u32 gadget_path_pos(__u32 off)
{
	asm volatile("" : "+r"(off));
	return off & (GADGET_PATH_BUF - 1);
}

/* One step up from walk->dentry; returns 1 (stop) once the root is reached. */
static long gadget_path_up(__u32 index, void *ctx)
{
	/* Locals only inside BPF_CORE_READ: it would relocate `walk->...` as a kernel access. */
	struct gadget_path_walk *walk = ctx;
	struct dentry *dentry = walk->dentry, *parent;
	struct vfsmount *vfsmnt = walk->vfsmnt;
	struct mount *mnt, *mnt_parent;

	if (dentry == walk->root_dentry && vfsmnt == walk->root_mnt)
		goto root;
	if (dentry == BPF_CORE_READ(vfsmnt, mnt_root)) {
		/* The root of a mount: continue from where it is mounted. */
		mnt = container_of(vfsmnt, struct mount, mnt);
		mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		if (mnt_parent == mnt)
			goto root;
		walk->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		walk->vfsmnt = &mnt_parent->mnt;
		return 0;
	}
	parent = BPF_CORE_READ(dentry, d_parent);
	if (parent == dentry)
		goto root;
	if (walk->n >= GADGET_PATH_DEPTH) {
		walk->state = -1;
		return 1;
	}
	walk->scratch->name[walk->n & (GADGET_PATH_DEPTH - 1)] = BPF_CORE_READ(dentry, d_name.name);
	walk->n++;
	walk->dentry = parent;
	return 0;
root:
	walk->state = 1;
	return 1;
}

/* Append "/<name>" for the index-th component from the root; returns 1 (stop) when full. */
static long gadget_path_append(__u32 index, void *ctx)
{
	struct gadget_path_walk *walk = ctx;
	char *buf = walk->scratch->buf;
	__u32 off = walk->off;
	long len;

	if (off > GADGET_PATH_BUF - GADGET_NAME_CHUNK - 1)
		return 1;
	buf[gadget_path_pos(off)] = '/';
	off++;
	len = bpf_probe_read_kernel_str(&buf[gadget_path_pos(off)], GADGET_NAME_CHUNK,
					walk->scratch->name[(walk->n - 1 - index) & (GADGET_PATH_DEPTH - 1)]);
	if (len <= 0)
		return 1;
	walk->off = off + len - 1;
	return 0;
}

/* Write `path` (relative to `root`) into dst[GADGET_PATH_BUF]; returns the length. */
static __always_inline __u32 gadget_path_str(const struct path *path, const struct path *root,
					     char *dst, struct gadget_path_scratch *scratch)
{
	struct gadget_path_walk walk = {
		.scratch = scratch,
		.dentry = BPF_CORE_READ(path, dentry),
		.vfsmnt = BPF_CORE_READ(path, mnt),
		.root_dentry = BPF_CORE_READ(root, dentry),
		.root_mnt = BPF_CORE_READ(root, mnt),
	};
	char *buf = scratch->buf;

	/* Crossing a mount costs a step without a name: twice the depth bounds the walk. */
	bpf_loop(GADGET_PATH_DEPTH * 2, gadget_path_up, &walk, 0);
	if (walk.state == 0)
		walk.state = -1;
	if (walk.state < 0) {
		/* Too deep: mark the cut, keep the components nearest the leaf. */
		buf[0] = buf[1] = buf[2] = '.';
		walk.off = 3;
	}
	if (walk.n == 0 && walk.state > 0) {
		buf[0] = '/';
		walk.off = 1;
	}
	bpf_loop(walk.n, gadget_path_append, &walk, 0);
	buf[gadget_path_pos(walk.off)] = '\0';
	bpf_probe_read_kernel(dst, GADGET_PATH_BUF, buf);
	return walk.off;
}

/* Write the path of `task`'s open `file`, relative to the task's root, into
 * dst[GADGET_PATH_BUF]; dst is left as it is when the task has no fs (it is exiting). */
static __always_inline void gadget_task_file_path(struct task_struct *task, struct file *file,
						  char *dst, struct gadget_path_scratch *scratch)
{
	struct fs_struct *fs = BPF_CORE_READ(task, fs);

	if (fs)
		gadget_path_str(&file->f_path, &fs->root, dst, scratch);
}

/*
 * Inspektor Gadget's names for the same job: get_path_str() returns the path of `path` (as
 * the current task sees it) in a per-CPU buffer of GADGET_PATH_BUF bytes that stays valid
 * until the next call on this CPU, or NULL; callers copy it out with
 * bpf_probe_read_kernel_str(). The `size` of get_path_str_with_size() only caps the result.
 */
#ifndef MAX_STRING_SIZE
#define MAX_STRING_SIZE 4096
#endif

struct gadget_path_str_buf {
	char buf[GADGET_PATH_BUF];
	struct gadget_path_scratch scratch;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gadget_path_str_buf);
} gadget_path_str_heap SEC(".maps");

static __always_inline char *get_path_str_with_size(struct path *path, __u32 size)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	struct gadget_path_str_buf *b;
	__u32 zero = 0;

	b = bpf_map_lookup_elem(&gadget_path_str_heap, &zero);
	if (!b)
		return NULL;
	b->buf[0] = '\0';
	if (fs && path)
		gadget_path_str(path, &fs->root, b->buf, &b->scratch);
	if (size && size < GADGET_PATH_BUF)
		b->buf[size - 1] = '\0';
	return b->buf;
}

static __always_inline char *get_path_str(struct path *path)
{
	return get_path_str_with_size(path, GADGET_PATH_BUF);
}

#endif /* __GADGET_FILESYSTEM_H */
