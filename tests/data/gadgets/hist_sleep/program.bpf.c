// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: a log2 histogram of clock_nanosleep(2) durations in microseconds, per mount
 * namespace (GADGET_MAPITER over a hash map whose value is an array of histogram slots).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/bits.bpf.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define MAX_SLOTS 27

struct hist_key {
	gadget_mntns_id mntns_id;
};

struct hist_value {
	gadget_histogram_slot__u32 usecs[MAX_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct hist_key);
	__type(value, struct hist_value);
} hists SEC(".maps");

GADGET_MAPITER(sleeps, hists);

SEC("tracepoint/syscalls/sys_enter_clock_nanosleep")
int sleep_enter(void *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_ns();

	if (gadget_should_discard_mntns_id(gadget_get_current_mntns_id()))
		return 0;
	bpf_map_update_elem(&start, &tid, &now, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_clock_nanosleep")
int sleep_exit(void *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct hist_key key = {};
	struct hist_value zero = {}, *h;
	__u64 *t0;
	__u32 slot;

	t0 = bpf_map_lookup_elem(&start, &tid);
	if (!t0)
		return 0;
	slot = log2l((bpf_ktime_get_ns() - *t0) / 1000);
	bpf_map_delete_elem(&start, &tid);
	key.mntns_id = gadget_get_current_mntns_id();
	h = bpf_map_lookup_elem(&hists, &key);
	if (!h) {
		bpf_map_update_elem(&hists, &key, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &key);
		if (!h)
			return 0;
	}
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	__sync_fetch_and_add(&h->usecs[slot], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
