/* SPDX-License-Identifier: Apache-2.0 */
/*
 * System calls seen from the raw tracepoints raw_tp/sys_enter and raw_tp/sys_exit, whose
 * arguments are the caller's saved registers (and the syscall number, or the return value).
 *
 * A program on the raw tracepoint runs straight from the tracepoint call; one on
 * tracepoint/raw_syscalls/... first has the kernel fill a trace record (all six arguments
 * copied, a per-CPU buffer taken), which on every system call of the node is most of a
 * gadget's cost when it keeps only a few calls. The registers are read through CO-RE with
 * libbpf's syscall register macros (x86_64 passes the fourth argument in r10, arm64 keeps the
 * first in orig_x0), so the object needs the architecture it is built for (__TARGET_ARCH_*).
 */
#ifndef __GADGET_SYSCALL_REGS_H
#define __GADGET_SYSCALL_REGS_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

/* ctx of raw_tp/sys_enter: args[0] the registers, args[1] the syscall number. */
static __always_inline struct pt_regs *gadget_syscall_regs(struct bpf_raw_tracepoint_args *ctx)
{
	return (struct pt_regs *)ctx->args[0];
}

/* The number of the system call a task is in (valid at sys_exit too). */
static __always_inline long gadget_syscall_nr(struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return BPF_CORE_READ(regs, orig_ax);
#elif defined(__TARGET_ARCH_arm64)
	return BPF_CORE_READ(regs, syscallno);
#else
#error "gadget/syscall_regs.h: unknown architecture"
#endif
}

/* The sixth argument (older libbpf headers have no PT_REGS_PARM6_CORE_SYSCALL). */
static __always_inline __u64 gadget_syscall_arg6(struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return BPF_CORE_READ(regs, r9);
#elif defined(__TARGET_ARCH_arm64)
	return BPF_CORE_READ(regs, regs[5]);
#endif
}

/* The six arguments of the system call. */
static __always_inline void gadget_syscall_args(struct pt_regs *regs, __u64 args[6])
{
	args[0] = PT_REGS_PARM1_CORE_SYSCALL(regs);
	args[1] = PT_REGS_PARM2_CORE_SYSCALL(regs);
	args[2] = PT_REGS_PARM3_CORE_SYSCALL(regs);
	args[3] = PT_REGS_PARM4_CORE_SYSCALL(regs);
	args[4] = PT_REGS_PARM5_CORE_SYSCALL(regs);
	args[5] = gadget_syscall_arg6(regs);
}

#endif /* __GADGET_SYSCALL_REGS_H */
