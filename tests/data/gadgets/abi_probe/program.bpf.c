// SPDX-License-Identifier: GPL-2.0
/*
 * Test object "abi_probe": uses every header of gadgets/include/gadget/ and every marker macro,
 * with one record member per semantic typedef, so tests/unit/test_constants.py can read the
 * names the headers really produce from BTF and compare them with node_runner/constants.py.
 * Never loaded.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

struct probe_event {
	gadget_mntns_id mntns_id;
	gadget_netns_id netns_id;
	gadget_timestamp timestamp_raw;
	gadget_pid pid;
	gadget_ppid ppid;
	gadget_tid tid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
	gadget_errno error_raw;
	gadget_signal sig_raw;
	gadget_syscall syscall;
	gadget_bytes bytes;
	gadget_duration duration;
	gadget_file_mode mode_raw;
	gadget_file_flags flags_raw;
	gadget_kernel_stack kstack;
	struct gadget_process proc;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 0);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

const volatile __u32 counts_max_entries = 128;

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(probe, events, probe_event);
GADGET_MAPITER(counters, counts);
GADGET_ITER(snapshot, probe_event, snap_prog);

SEC("tracepoint/syscalls/sys_enter_getppid")
int probe_getppid(void *ctx)
{
	struct probe_event *e;

	if (gadget_should_discard_data_current())
		return 0;
	e = gadget_reserve_buf(events, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->mntns_id = counts_max_entries;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
