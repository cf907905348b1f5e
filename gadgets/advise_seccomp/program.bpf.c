// SPDX-License-Identifier: GPL-2.0
/*
 * advise_seccomp: which system calls each container makes, as the allow list of a seccomp
 * profile needs it. Every syscall entry (raw_syscalls:sys_enter) of a selected container
 * counts in the row of (mount namespace, syscall number) of a per-CPU hash the runner reads
 * and empties every interval (GADGET_MAPITER), and once more when the run stops. The
 * container filter runs first, so other containers' syscalls cost one map lookup; a known
 * pair costs one more lookup and an add on this CPU's copy (no shared cache line).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define MAX_ROWS 16384

struct syscall_key {
	gadget_mntns_id mntns_id;
	gadget_syscall syscall_raw;
};

struct syscall_calls {
	gadget_counter__u64 calls;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_ROWS);
	__type(key, struct syscall_key);
	__type(value, struct syscall_calls);
} syscalls SEC(".maps");

GADGET_MAPITER(syscalls, syscalls);

SEC("tracepoint/raw_syscalls/sys_enter")
int advise_seccomp_sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct syscall_key key = {};
	struct syscall_calls one = {.calls = 1};
	struct syscall_calls *row;

	key.mntns_id = gadget_get_current_mntns_id();
	if (gadget_should_discard_mntns_id(key.mntns_id))
		return 0;
	/* -1: a syscall number the tracer or ptrace changed; not a real call. */
	if (ctx->id < 0)
		return 0;
	key.syscall_raw = ctx->id;
	row = bpf_map_lookup_elem(&syscalls, &key);
	if (row) {
		row->calls++;
		return 0;
	}
	bpf_map_update_elem(&syscalls, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
