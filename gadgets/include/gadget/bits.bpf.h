/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Integer log2 for histogram slots (gadget_histogram_slot__u32/u64 arrays). log2() and log2l()
 * are floor(log2(v)) (0 for 0 and 1), the slot index bcc's libbpf-tools use; get_slot_idx() is
 * the variant some Inspektor Gadget gadgets use (0 for 0, else floor(log2(v)) + 1).
 */
#ifndef __GADGET_BITS_BPF_H
#define __GADGET_BITS_BPF_H

#include <vmlinux.h>

static __always_inline __u64 log2(__u32 v)
{
	__u64 r = 0;

	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	return r + (v >> 1);
}

static __always_inline __u64 log2l(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? log2(hi) + 32 : log2((__u32)v);
}

static __always_inline __u64 get_slot_idx(__u64 v)
{
	return v ? log2l(v) + 1 : 0;
}

#endif /* __GADGET_BITS_BPF_H */
