/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libbpf's tracing macros (BPF_KPROBE, BPF_KRETPROBE, BPF_PROG, PT_REGS_*), plus the uprobe
 * spellings that libbpf 1.1 (Debian 12's libbpf-dev) lacks and Inspektor Gadget's gadgets use:
 * BPF_UPROBE and BPF_URETPROBE take a user function's arguments (return value) exactly as
 * BPF_KPROBE and BPF_KRETPROBE take a kernel function's. Newer libbpf headers define them
 * themselves and win.
 */
#ifndef __GADGET_TRACING_H
#define __GADGET_TRACING_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#ifndef BPF_UPROBE
#define BPF_UPROBE(name, args...) BPF_KPROBE(name, ##args)
#endif
#ifndef BPF_URETPROBE
#define BPF_URETPROBE(name, args...) BPF_KRETPROBE(name, ##args)
#endif

#endif /* __GADGET_TRACING_H */
