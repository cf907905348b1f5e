/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel stacks for profiles and tracers: a program stores the stack of the current task in
 * the ig_kstack stack-trace map and records the id in a gadget_kernel_stack member; the runner
 * reads the addresses by that id and names them from /proc/kallsyms.
 */
#ifndef __GADGET_KERNEL_STACK_MAP_H
#define __GADGET_KERNEL_STACK_MAP_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/types.h>

#ifndef PERF_MAX_STACK_DEPTH
#define PERF_MAX_STACK_DEPTH 127
#endif
#define GADGET_KERNEL_STACK_MAP_ENTRIES 10000

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, PERF_MAX_STACK_DEPTH * sizeof(__u64));
	__uint(max_entries, GADGET_KERNEL_STACK_MAP_ENTRIES);
} ig_kstack SEC(".maps");

/* The stack id (>= 0), or a negative errno when the stack could not be stored. */
static __always_inline long gadget_get_kernel_stack(void *ctx)
{
	return bpf_get_stackid(ctx, &ig_kstack, 0);
}

#endif /* __GADGET_KERNEL_STACK_MAP_H */
