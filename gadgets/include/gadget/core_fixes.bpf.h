/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel types that changed shape across versions, read one way on every kernel (CO-RE).
 *
 * Each helper declares the old and the new layout as "flavors" (a `___suffix` that libbpf
 * strips when it matches types against the running kernel's BTF) and asks
 * bpf_core_field_exists() which one the kernel has; the branch of the other layout is
 * removed at load time. The names are those of bcc's libbpf-tools header of the same name,
 * which Inspektor Gadget's block I/O and scheduler gadgets include.
 */
#ifndef __GADGET_CORE_FIXES_BPF_H
#define __GADGET_CORE_FIXES_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/*
 * A call the verifier refuses with libbpf's "bad CO-RE relocation" marker (0xbad2310): put it
 * on a path that only a kernel without any of the expected layouts reaches, so such a kernel
 * refuses the program instead of running it with wrong offsets.
 */
static void (*bpf_core_unreachable)(void) = (void *)0xbad2310;

/* task_struct::state became task_struct::__state (an unsigned int) in Linux 5.14. */
struct task_struct___pre514 {
	volatile long state;
} __attribute__((preserve_access_index));

struct task_struct___514 {
	unsigned int __state;
} __attribute__((preserve_access_index));

static __always_inline __s64 get_task_state(void *task)
{
	struct task_struct___514 *now = task;

	if (bpf_core_field_exists(now->__state))
		return BPF_CORE_READ(now, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)task, state);
}

/* bio::bi_disk was replaced by bio::bi_bdev (whose bd_disk is the disk) in Linux 5.12. */
struct bio___pre512 {
	struct gendisk *bi_disk;
} __attribute__((preserve_access_index));

struct bio___512 {
	struct block_device *bi_bdev;
} __attribute__((preserve_access_index));

static __always_inline struct gendisk *get_gendisk(void *bio)
{
	struct bio___512 *now = bio;

	if (bpf_core_field_exists(now->bi_bdev))
		return BPF_CORE_READ(now, bi_bdev, bd_disk);
	return BPF_CORE_READ((struct bio___pre512 *)bio, bi_disk);
}

/* block_rq_complete's record became struct trace_event_raw_block_rq_completion in Linux
 * 5.19, when block_rq_error came to share it. */
struct trace_event_raw_block_rq_completion___519 {
	dev_t dev;
} __attribute__((preserve_access_index));

static __always_inline bool has_block_rq_completion(void)
{
	return bpf_core_type_exists(struct trace_event_raw_block_rq_completion___519);
}

/* request::rq_disk was removed in Linux 5.17; the disk is then request->q->disk. */
struct request_queue___517 {
	struct gendisk *disk;
} __attribute__((preserve_access_index));

struct request___any {
	struct request_queue___517 *q;
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

static __always_inline struct gendisk *get_disk(void *request)
{
	struct request___any *rq = request;

	if (bpf_core_field_exists(rq->rq_disk))
		return BPF_CORE_READ(rq, rq_disk);
	return BPF_CORE_READ(rq, q, disk);
}

/* Linux 5.12 (idmapped mounts) added a user namespace as first argument of vfs_create() and
 * vfs_unlink(); struct renamedata gained old_mnt_userns in the same change. */
struct renamedata___512 {
	struct user_namespace *old_mnt_userns;
} __attribute__((preserve_access_index));

static __always_inline bool renamedata_has_old_mnt_userns_field(void)
{
	return bpf_core_field_exists(struct renamedata___512, old_mnt_userns);
}

/* Linux 5.19 split kmem_free's record into kfree's and kmem_cache_free's. */
struct trace_event_raw_kfree___519 {
	const void *ptr;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmem_cache_free___519 {
	const void *ptr;
} __attribute__((preserve_access_index));

static __always_inline bool has_kfree(void)
{
	return bpf_core_type_exists(struct trace_event_raw_kfree___519);
}

static __always_inline bool has_kmem_cache_free(void)
{
	return bpf_core_type_exists(struct trace_event_raw_kmem_cache_free___519);
}

#endif /* __GADGET_CORE_FIXES_BPF_H */
