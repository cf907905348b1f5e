/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Map helpers shared by gadgets (the names are those of bcc's libbpf-tools header, which
 * Inspektor Gadget's gadgets include).
 *
 * bpf_map_lookup_or_try_init() returns the value of `key`, inserting `init` first when the key
 * is absent. Two CPUs may insert the same key at once: BPF_NOEXIST makes one of them fail with
 * -EEXIST, which is not an error (the value it then finds is the other one's). NULL means the
 * map is full.
 */
#ifndef __GADGET_MAPS_BPF_H
#define __GADGET_MAPS_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#define GADGET_EEXIST 17

static __always_inline void *bpf_map_lookup_or_try_init(void *map, const void *key,
							const void *init)
{
	void *value = bpf_map_lookup_elem(map, key);
	long err;

	if (value)
		return value;
	err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (err && err != -GADGET_EEXIST)
		return 0;
	return bpf_map_lookup_elem(map, key);
}

#endif /* __GADGET_MAPS_BPF_H */
