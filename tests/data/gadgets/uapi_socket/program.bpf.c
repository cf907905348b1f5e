// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "uapi_socket": a socket filter written against the kernel's UAPI headers and
 * glibc's <sys/socket.h> instead of vmlinux.h, as some of Inspektor Gadget's network gadgets
 * are, with the gadget headers included after them (buffer.h and types.h then take the kernel
 * types from those headers). It reports each IPv4 UDP packet to port `port` of loopback with
 * its length, its source port and the network namespace the dispatcher put in cb[0].
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/types.h>
#include <linux/udp.h>
#include <sys/socket.h>

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

const volatile __u16 port = 0;
GADGET_PARAM(port);

struct packet {
	gadget_netns_id netns_id;
	__u32 len;
	__u16 sport;
	__u16 family; /* AF_INET from <sys/socket.h>: the header was usable */
};

GADGET_TRACER_MAP(events, 4096 * 16);
GADGET_TRACER(packets, events, packet);

SEC("socket1")
int uapi_socket_filter(struct __sk_buff *skb)
{
	struct udphdr udp;
	struct packet *p;
	__u16 eth_proto;
	__u8 ihl, proto;

	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &eth_proto, 2) < 0 ||
	    eth_proto != bpf_htons(ETH_P_IP))
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, protocol), &proto, 1) < 0 ||
	    proto != IPPROTO_UDP || bpf_skb_load_bytes(skb, ETH_HLEN, &ihl, 1) < 0)
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + (ihl & 0xf) * 4, &udp, sizeof(udp)) < 0 ||
	    udp.dest != bpf_htons(port))
		return 0;
	p = gadget_reserve_buf(&events, sizeof(*p));
	if (!p)
		return 0;
	p->netns_id = skb->cb[0];
	p->len = skb->len;
	p->sport = bpf_ntohs(udp.source);
	p->family = AF_INET;
	gadget_submit_buf(skb, &events, p, sizeof(*p));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
