// SPDX-License-Identifier: GPL-2.0
/*
 * profile_tcprtt: a log2 histogram of TCP smoothed round-trip times (srtt), in microseconds
 * (milliseconds with --milliseconds), from tcp:tcp_probe, which fires for every segment an
 * established connection receives and carries the socket's srtt at that moment. One histogram
 * overall, or one per remote address (--by-remote-addr) and/or local address
 * (--by-local-addr).
 *
 * Segments are received in softirq context, where the current task is not the socket's owner:
 * the container and --pid/--comm/... filters apply to the owner instead, learned from
 * sock:inet_sock_set_state or the runner's sockets map (gadget/tcp_owner.h).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/bits.bpf.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/tcp_owner.h>
#include <gadget/types.h>

#define MAX_SLOTS 27
#define AF_INET 2
#define AF_INET6 10

struct hist_key {
	struct gadget_l3endpoint_t local;
	struct gadget_l3endpoint_t remote;
};

struct hist_value {
	gadget_histogram_slot__u32 srtt[MAX_SLOTS];
};

const volatile bool targ_by_laddr = false;
const volatile bool targ_by_raddr = false;
const volatile bool targ_ms = false;
GADGET_PARAM(targ_by_laddr);
GADGET_PARAM(targ_by_raddr);
GADGET_PARAM(targ_ms);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct hist_key);
	__type(value, struct hist_value);
} hists SEC(".maps");

GADGET_MAPITER(tcprtt, hists);

GADGET_TCP_OWNER_PROGRAM()

/* The address of a sockaddr_in / sockaddr_in6 as the tracepoint stored it. */
static __always_inline void read_addr(struct gadget_l3endpoint_t *ep, const __u8 *sa,
				      __u16 family)
{
	if (family == AF_INET) {
		bpf_probe_read_kernel(&ep->addr_raw.v4, 4, sa + 4); /* sin_addr */
		ep->version = 4;
	} else {
		bpf_probe_read_kernel(ep->addr_raw.v6, 16, sa + 8); /* sin6_addr */
		ep->version = 6;
	}
}

SEC("tracepoint/tcp/tcp_probe")
int profile_tcprtt_probe(struct trace_event_raw_tcp_probe *ctx)
{
	struct hist_key key = {};
	struct hist_value zero = {}, *h;
	struct gadget_process owner = {};
	__u16 family = ctx->family;
	__u64 srtt = ctx->srtt, slot;

	if (!srtt) /* no round trip measured on this connection yet */
		return 0;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	gadget_tcp_owner_fill(ctx->skaddr, &owner);
	if (gadget_tcp_owner_discard(&owner))
		return 0;
	if (targ_by_laddr)
		read_addr(&key.local, ctx->saddr, family);
	if (targ_by_raddr)
		read_addr(&key.remote, ctx->daddr, family);
	if (targ_ms)
		srtt /= 1000;
	slot = log2l(srtt);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	h = bpf_map_lookup_elem(&hists, &key);
	if (!h) {
		bpf_map_update_elem(&hists, &key, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &key);
		if (!h)
			return 0;
	}
	__sync_fetch_and_add(&h->srtt[slot], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
