// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "tc_packets": tc programs in IG's section names (`classifier/ingress/...`,
 * `classifier/egress/...`) reporting IPv4 UDP packets of port `port` with the interface, the
 * direction and the network namespace the runner's dispatcher put in cb[0]. Packets always
 * pass (TC_ACT_UNSPEC: the qdisc's default).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define TC_ACT_UNSPEC -1

const volatile __u16 port = 0;
GADGET_PARAM(port);

struct tc_event {
	gadget_netns_id netns_id;
	__u32 ifindex;
	__u16 sport;
	__u16 dport;
	__u8 ingress;
};

GADGET_TRACER_MAP(events, 1 << 16);
GADGET_TRACER(packets, events, tc_event);

static __always_inline int report(struct __sk_buff *skb, __u8 ingress)
{
	struct tc_event *e;
	__u16 eth_proto, ports[2];
	__u8 ihl, proto;

	if (bpf_skb_load_bytes(skb, 12, &eth_proto, 2) < 0 || eth_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + 9, &proto, 1) < 0 || proto != 17 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN, &ihl, 1) < 0 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + (ihl & 0xf) * 4, ports, 4) < 0)
		return TC_ACT_UNSPEC;
	if (port && bpf_ntohs(ports[0]) != port && bpf_ntohs(ports[1]) != port)
		return TC_ACT_UNSPEC;
	e = gadget_reserve_buf(events, sizeof(*e));
	if (!e)
		return TC_ACT_UNSPEC;
	e->netns_id = skb->cb[0];
	e->ifindex = skb->ifindex;
	e->sport = bpf_ntohs(ports[0]);
	e->dport = bpf_ntohs(ports[1]);
	e->ingress = ingress;
	gadget_submit_buf(skb, &events, e, sizeof(*e));
	return TC_ACT_UNSPEC;
}

SEC("classifier/ingress/packets")
int tc_ingress(struct __sk_buff *skb)
{
	return report(skb, 1);
}

SEC("classifier/egress/packets")
int tc_egress(struct __sk_buff *skb)
{
	return report(skb, 0);
}

char LICENSE[] SEC("license") = "GPL";
