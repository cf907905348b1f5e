// SPDX-License-Identifier: GPL-2.0
/*
 * profile_blockio: a log2 histogram of block I/O latency per device, in microseconds, from
 * the moment a request is issued to the device (block:block_rq_issue) to its completion
 * (block:block_rq_complete); with --queued, from the moment it was started
 * (block:block_io_start), so the time spent queued counts too.
 *
 * Issue and completion often run in kernel threads and interrupts, not in the process that
 * wanted the I/O. With a container filter, a request counts only if block_io_start (which runs
 * in the submitting process) saw it come from a selected container.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/bits.bpf.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define MAX_SLOTS 27
#define MINORBITS 20
#define MINORMASK ((1U << MINORBITS) - 1)

struct hist_key {
	__u32 major;
	__u32 minor;
};

struct hist_value {
	gadget_histogram_slot__u32 latency[MAX_SLOTS];
};

struct req_key {
	__u32 dev;
	__u32 __pad;
	__u64 sector;
};

struct req_times {
	__u64 start_ns;
	__u64 issue_ns;
};

const volatile bool targ_queued = false;
GADGET_PARAM(targ_queued);

/* LRU: a request whose completion is never seen (a passthrough or failed request) ages out
 * instead of filling the map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct req_key);
	__type(value, struct req_times);
} requests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct hist_key);
	__type(value, struct hist_value);
} hists SEC(".maps");

GADGET_MAPITER(blockio, hists);

SEC("tracepoint/block/block_io_start")
int profile_blockio_start(struct trace_event_raw_block_rq *ctx)
{
	struct req_key key = {.dev = ctx->dev, .sector = ctx->sector};
	struct req_times t = {};

	if (gadget_should_discard_mntns_id(gadget_get_current_mntns_id()))
		return 0;
	t.start_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&requests, &key, &t, BPF_ANY);
	return 0;
}

SEC("tracepoint/block/block_rq_issue")
int profile_blockio_issue(struct trace_event_raw_block_rq *ctx)
{
	struct req_key key = {.dev = ctx->dev, .sector = ctx->sector};
	struct req_times *t, fresh = {};
	__u64 now = bpf_ktime_get_ns();

	t = bpf_map_lookup_elem(&requests, &key);
	if (t) {
		t->issue_ns = now;
		return 0;
	}
	/* not seen starting: started before the gadget, or by an unselected process */
	if (gadget_filter_by_mntns || targ_queued)
		return 0;
	fresh.start_ns = fresh.issue_ns = now;
	bpf_map_update_elem(&requests, &key, &fresh, BPF_ANY);
	return 0;
}

SEC("tracepoint/block/block_rq_complete")
int profile_blockio_complete(struct trace_event_raw_block_rq_completion *ctx)
{
	struct req_key key = {.dev = ctx->dev, .sector = ctx->sector};
	struct hist_key hkey = {.major = ctx->dev >> MINORBITS, .minor = ctx->dev & MINORMASK};
	struct hist_value zero = {}, *h;
	struct req_times *t;
	__u64 from, slot;

	t = bpf_map_lookup_elem(&requests, &key);
	if (!t)
		return 0;
	from = targ_queued ? t->start_ns : t->issue_ns;
	bpf_map_delete_elem(&requests, &key);
	if (!from)
		return 0; /* completed without being issued (a merged or failed request) */
	slot = log2l((bpf_ktime_get_ns() - from) / 1000);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	h = bpf_map_lookup_elem(&hists, &hkey);
	if (!h) {
		bpf_map_update_elem(&hists, &hkey, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &hkey);
		if (!h)
			return 0;
	}
	__sync_fetch_and_add(&h->latency[slot], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
