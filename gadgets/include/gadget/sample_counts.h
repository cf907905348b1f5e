/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sample counts per key for profilers: GADGET_SAMPLE_COUNTS(name, key_struct, entries) declares
 * a hash map `name` from `struct key_struct` to a `samples` counter and makes it the array
 * datasource `name` (GADGET_MAPITER: the runner reads and empties it every interval);
 * gadget_count_sample() counts one sample at a key. An entry another CPU creates at the same
 * instant keeps its own first count: that one sample is lost, not counted twice.
 */
#ifndef __GADGET_SAMPLE_COUNTS_H
#define __GADGET_SAMPLE_COUNTS_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/macros.h>
#include <gadget/types.h>

struct gadget_sample_count {
	gadget_counter__u64 samples;
};

#define GADGET_SAMPLE_COUNTS(name, key_struct, entries)          \
	struct {                                                 \
		__uint(type, BPF_MAP_TYPE_HASH);                 \
		__uint(max_entries, entries);                    \
		__type(key, struct key_struct);                  \
		__type(value, struct gadget_sample_count);              \
	} name SEC(".maps");                                     \
	GADGET_MAPITER(name, name)

/* Count one sample at `key` in a map declared with GADGET_SAMPLE_COUNTS. */
static __always_inline void gadget_count_sample(void *map, const void *key)
{
	struct gadget_sample_count one = {1}, *v;

	v = bpf_map_lookup_elem(map, key);
	if (v)
		__sync_fetch_and_add(&v->samples, 1);
	else
		bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
}

#endif /* __GADGET_SAMPLE_COUNTS_H */
