// SPDX-License-Identifier: GPL-2.0
/*
 * profile_qdisc_latency: a log2 histogram per network interface of the time packets spend in
 * its root queueing discipline, in microseconds, from qdisc:qdisc_enqueue (the packet is
 * queued) to qdisc:qdisc_dequeue (the qdisc hands it to the driver). Packets are matched by
 * their sk_buff address; a bulk dequeue reports its first packet, and the others follow it on
 * skb->next. Packets sent directly when a qdisc is empty and allows it (pfifo_fast, pfifo)
 * pass neither tracepoint and are not counted.
 *
 * Without a container selection every packet counts. With one, a packet counts only if it
 * was queued in the context of a selected container's process (as a send from a socket is);
 * packets queued in softirq context (forwarded, most TCP acks and retransmissions) are then
 * attributed to whatever task was interrupted, so they mostly do not count. Interfaces are
 * told apart by network namespace and ifindex (every pod has an eth0 with the same ifindex).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/bits.bpf.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define MAX_SLOTS 27
#define MAX_BULK 16
#define IFNAMSIZ 16

struct hist_key {
	gadget_netns_id netns_id;
	__u32 ifindex;
};

struct hist_value {
	char ifname[IFNAMSIZ];
	gadget_histogram_slot__u32 latency[MAX_SLOTS];
};

/* LRU: a packet dropped or purged inside the qdisc is never dequeued; its entry ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} queued SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct hist_key);
	__type(value, struct hist_value);
} hists SEC(".maps");

GADGET_MAPITER(qdisc, hists);

SEC("tracepoint/qdisc/qdisc_enqueue")
int profile_qdisc_enqueue(struct trace_event_raw_qdisc_enqueue *ctx)
{
	__u64 skb = (__u64)ctx->skbaddr;
	__u64 now = bpf_ktime_get_ns();

	if (!skb || gadget_should_discard_current_mntns())
		return 0;
	bpf_map_update_elem(&queued, &skb, &now, BPF_ANY);
	return 0;
}

static __always_inline struct hist_value *hist_of(struct trace_event_raw_qdisc_dequeue *ctx)
{
	struct net_device *dev = BPF_CORE_READ(ctx->txq, dev);
	struct hist_key key = {.ifindex = ctx->ifindex};
	struct hist_value *h;

	key.netns_id = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	h = bpf_map_lookup_elem(&hists, &key);
	if (h)
		return h;
	{
		struct hist_value zero = {};

		bpf_probe_read_kernel_str(zero.ifname, sizeof(zero.ifname), dev->name);
		bpf_map_update_elem(&hists, &key, &zero, BPF_NOEXIST);
	}
	return bpf_map_lookup_elem(&hists, &key);
}

SEC("tracepoint/qdisc/qdisc_dequeue")
int profile_qdisc_dequeue(struct trace_event_raw_qdisc_dequeue *ctx)
{
	struct sk_buff *skb = ctx->skbaddr;
	struct hist_value *h = NULL;
	__u64 now = bpf_ktime_get_ns();
	int packets = ctx->packets;

	for (int i = 0; i < MAX_BULK && i < packets && skb; i++) {
		__u64 addr = (__u64)skb, *start, slot;

		start = bpf_map_lookup_elem(&queued, &addr);
		if (start) {
			slot = log2l((now - *start) / 1000);
			bpf_map_delete_elem(&queued, &addr);
			if (slot >= MAX_SLOTS)
				slot = MAX_SLOTS - 1;
			if (!h)
				h = hist_of(ctx);
			if (h)
				__sync_fetch_and_add(&h->latency[slot], 1);
		}
		skb = BPF_CORE_READ(skb, next);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
