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

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#define GADGET_TRACER_MAP(name, size)                          \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_RINGBUF);            \
		__uint(max_entries, size);                     \
	} name SEC(".maps");                                   \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);       \
		__uint(max_entries, 1);                        \
		__type(key, __u32);                            \
		__type(value, __u64);                          \
	} name##_lost_samples SEC(".maps")

/* Reserve a record of `size` bytes in ring buffer `map`; counts a lost sample when full. */
/* `map` is the map variable itself (not its address): its counter is map##_lost_samples. */
#define gadget_reserve_buf(map, size) __gadget_reserve_buf((void *)&(map), (void *)&(map##_lost_samples), (size))

static __always_inline void *__gadget_reserve_buf(void *map, void *lost_map, __u64 size)
{
	void *buf = bpf_ringbuf_reserve(map, size, 0);

	if (!buf) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(lost_map, &zero);

		if (lost)
			__sync_fetch_and_add(lost, 1);
	}
	return buf;
}

static __always_inline void gadget_submit_buf(void *ctx, void *map, void *buf, __u64 size)
{
	bpf_ringbuf_submit(buf, 0);
}

static __always_inline void gadget_discard_buf(void *buf)
{
	bpf_ringbuf_discard(buf, 0);
}

#endif /* __GADGET_BUFFER_H */
