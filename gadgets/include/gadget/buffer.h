/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The record buffer of a tracer and its lost-sample counter.
 *
 * A full ring buffer must never lose records silently: when a reserve fails, the program bumps
 * the per-CPU counter <map>_lost_samples, which the runner reads (and zeroes) every second and
 * reports as a `lost` record.
 */
#ifndef __GADGET_BUFFER_H
#define __GADGET_BUFFER_H

/* Kernel types from vmlinux.h, unless the program already has them (vmlinux.h, or the UAPI
 * headers <linux/bpf.h>, <linux/types.h> of a socket filter: both at once would clash). */
#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#include <vmlinux.h>
#endif
#include <bpf/bpf_helpers.h>

/*
 * A tracer's ring buffer <name> and its per-CPU lost-sample counter <name>_lost_samples. Two
 * small accessors come along, so that the helpers below take the map either as Inspektor
 * Gadget's gadget writes it (`&events`) or bare (`events`): pasting a suffix to the argument's
 * last token names a function, and a function and its address call the same way.
 */
#define GADGET_TRACER_MAP(name, size)                                              \
	struct {                                                                   \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                                \
		__uint(max_entries, size);                                         \
	} name SEC(".maps");                                                       \
	struct {                                                                   \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                           \
		__uint(max_entries, 1);                                            \
		__type(key, __u32);                                                \
		__type(value, __u64);                                              \
	} name##_lost_samples SEC(".maps");                                        \
	static __always_inline void *name##__gadget_ring(void) { return &name; }   \
	static __always_inline void *name##__gadget_lost(void)                     \
	{                                                                          \
		return &name##_lost_samples;                                       \
	}                                                                          \
	_Static_assert(sizeof(name##_lost_samples) > 0, "tracer map " #name)

static __always_inline void __gadget_count_lost(void *lost_map)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(lost_map, &zero);

	if (lost)
		__sync_fetch_and_add(lost, 1);
}

/*
 * Reserve a record of `size` bytes in the tracer map `map` (`&events` or `events`, declared
 * with GADGET_TRACER_MAP); when the buffer is full, count a lost sample (map##_lost_samples)
 * and return NULL.
 */
#define gadget_reserve_buf(map, size) \
	__gadget_reserve_buf((map##__gadget_ring)(), (map##__gadget_lost)(), (size))

static __always_inline void *__gadget_reserve_buf(void *map, void *lost_map, __u64 size)
{
	void *buf = bpf_ringbuf_reserve(map, size, 0);

	if (!buf)
		__gadget_count_lost(lost_map);
	return buf;
}

/*
 * Copy `size` bytes at `buf` into the tracer map `map` in one call (no reserve); a record the
 * buffer has no room for is counted as lost. Returns 0 or a negative errno.
 */
#define gadget_output_buf(ctx, map, buf, size) \
	__gadget_output_buf((map##__gadget_ring)(), (map##__gadget_lost)(), (buf), (size))

static __always_inline long __gadget_output_buf(void *map, void *lost_map, void *buf, __u64 size)
{
	long err = bpf_ringbuf_output(map, buf, size, 0);

	if (err)
		__gadget_count_lost(lost_map);
	return err;
}

static __always_inline long gadget_submit_buf(void *ctx, void *map, void *buf, __u64 size)
{
	bpf_ringbuf_submit(buf, 0);
	return 0;
}

static __always_inline void gadget_discard_buf(void *buf)
{
	bpf_ringbuf_discard(buf, 0);
}

#endif /* __GADGET_BUFFER_H */
