// SPDX-License-Identifier: GPL-2.0
/*
 * The filter-cost baseline of `make bench`: programs on trace_open's six hooks that do
 * nothing, so the slowdown they cause is the cost of running any program there at all.
 * The tracer (never written) only lets the runner announce that it is attached.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>

struct event {
	__u32 pid;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(open, events, event);

/* The record type must be in BTF even though nothing emits it. */
const struct event *unused_event __attribute__((unused));

SEC("tracepoint/syscalls/sys_enter_open")
int empty_enter_open(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_openat")
int empty_enter_openat(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_openat2")
int empty_enter_openat2(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_open")
int empty_exit_open(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_openat")
int empty_exit_openat(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_openat2")
int empty_exit_openat2(void *ctx) { return 0; }

char LICENSE[] SEC("license") = "GPL";
