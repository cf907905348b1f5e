/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-kernel container filter. The runner puts the mount namespace ids of the target containers
 * in gadget_mntns_filter_map and sets gadget_filter_by_mntns before attaching; programs call
 * gadget_should_discard_current_mntns() (or gadget_should_discard_mntns_id() with an id they
 * have) first thing, so events of other containers cost three loads and one map lookup and
 * never reach the ring buffer.
 */
#ifndef __GADGET_MNTNS_FILTER_H
#define __GADGET_MNTNS_FILTER_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
/* Inspektor Gadget's header brings the tracing macros (BPF_KPROBE, BPF_PROG) along, and
 * gadgets written for it rely on that. */
#include <gadget/tracing.h>

#include <gadget/types.h>
#include <gadget/mntns.h>

#define GADGET_MNTNS_FILTER_MAP_ENTRIES 1024

const volatile bool gadget_filter_by_mntns = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GADGET_MNTNS_FILTER_MAP_ENTRIES);
	__type(key, gadget_mntns_id);
	__type(value, __u32);
} gadget_mntns_filter_map SEC(".maps");

static __always_inline bool gadget_should_discard_mntns_id(gadget_mntns_id mntns_id)
{
	return gadget_filter_by_mntns &&
	       !bpf_map_lookup_elem(&gadget_mntns_filter_map, &mntns_id);
}

/* The same for the current task; reads its mount namespace only when the filter is set. */
static __always_inline bool gadget_should_discard_current_mntns(void)
{
	return gadget_filter_by_mntns &&
	       gadget_should_discard_mntns_id(gadget_get_current_mntns_id());
}

#endif /* __GADGET_MNTNS_FILTER_H */
