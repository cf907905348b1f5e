// SPDX-License-Identifier: GPL-2.0
/*
 * trace_tcpdrop: one record per TCP packet the kernel drops, from skb:kfree_skb, with the
 * drop reason (enum skb_drop_reason, printed by name), the packet's endpoints and TCP flags,
 * and the socket it belonged to (state, owner) when the kernel had found one.
 *
 * The headers are read from the packet itself (skb->head + network/transport header offsets),
 * so drops that happen before any socket is known (no listener, bad checksum, a full backlog)
 * are reported too. Owners are learned from sock:inet_sock_set_state, or from the runner's
 * sockets map (gadget/tcp_owner.h); a packet without a known owner gets an empty process.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include <gadget/buffer.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/tcp.h>
#include <gadget/tcp_owner.h>
#include <gadget/types.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define GADGET_AF_INET6 10
#define NO_HEADER 0xffff

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	gadget_netns_id netns_id;
	enum gadget_tcp_state state;
	enum gadget_tcp_flags_set tcpflags_raw;
	enum skb_drop_reason reason;
};

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(tcpdrop, events, event);

GADGET_TCP_OWNER_PROGRAM()

/* Fill the endpoints from the IP and TCP headers; false when the packet is not TCP. */
static __always_inline bool read_headers(const struct sk_buff *skb, __u16 protocol,
					 struct event *event)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u8 ip[40], tcp[14];
	__u16 family;

	if (nh == NO_HEADER)
		return false;
	if (protocol == ETH_P_IP) {
		if (bpf_probe_read_kernel(ip, 20, head + nh) || ip[9] != IPPROTO_TCP)
			return false;
		if (th == NO_HEADER || th <= nh)
			th = nh + (ip[0] & 0x0f) * 4;
		family = GADGET_AF_INET;
	} else {
		/* IPv6 with TCP right after the fixed header (no extension headers) */
		if (bpf_probe_read_kernel(ip, 40, head + nh) || ip[6] != IPPROTO_TCP)
			return false;
		if (th == NO_HEADER || th <= nh)
			th = nh + 40;
		family = GADGET_AF_INET6;
	}
	if (bpf_probe_read_kernel(tcp, sizeof(tcp), head + th))
		return false;
	gadget_tcp_endpoint(&event->src, family, &ip[12], &ip[8], (tcp[0] << 8) | tcp[1]);
	gadget_tcp_endpoint(&event->dst, family, &ip[16], &ip[24], (tcp[2] << 8) | tcp[3]);
	event->tcpflags_raw = tcp[13];
	return true;
}

SEC("tracepoint/skb/kfree_skb")
int trace_kfree_skb(struct trace_event_raw_kfree_skb *ctx)
{
	const struct sk_buff *skb = ctx->skbaddr;
	__u16 protocol = ctx->protocol;
	struct event *event;
	struct sock *sk;

	if (protocol != ETH_P_IP && protocol != ETH_P_IPV6)
		return 0;
	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(event, 0, sizeof(*event));
	if (!read_headers(skb, protocol, event))
		goto discard;
	sk = BPF_CORE_READ(skb, sk);
	if (!sk && bpf_core_field_exists(ctx->rx_sk))
		sk = ctx->rx_sk; /* the socket an incoming packet was for (kernel 6.12 and later) */
	if (sk) {
		gadget_tcp_owner_fill(sk, &event->proc);
		event->state = BPF_CORE_READ(sk, __sk_common.skc_state);
		event->netns_id = gadget_sock_netns(sk);
	} else {
		event->netns_id = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	}
	if (gadget_tcp_owner_discard(&event->proc))
		goto discard;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	event->reason = ctx->reason;
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
discard:
	gadget_discard_buf(event);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
