/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The IP header of an Ethernet frame, for socket filter programs (struct __sk_buff, data read
 * with bpf_skb_load_bytes()): gadget_packet_ip() reads the IPv4 or IPv6 header and says where
 * the transport header starts; gadget_packet_endpoints() copies its addresses into the L4
 * endpoints of a record (the ports, from the transport header, are the caller's);
 * gadget_packet_loopback_sent() tells the copy of a loopback packet to skip. IPv6 extension
 * headers are not walked: the transport header is taken to follow the fixed header.
 */
#ifndef __GADGET_PACKET_H
#define __GADGET_PACKET_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include <gadget/types.h>

#define GADGET_PACKET_ETH_HLEN 14
#define GADGET_PACKET_ETH_P_IP 0x0800
#define GADGET_PACKET_ETH_P_IPV6 0x86DD

/*
 * On loopback a packet socket sees every packet twice, sent then received: true for the sent
 * copy, which a gadget skips to report each packet once (as libpcap does).
 */
static __always_inline bool gadget_packet_loopback_sent(const struct __sk_buff *skb)
{
	return skb->pkt_type == 4 /* PACKET_OUTGOING */ && skb->ifindex == 1 /* lo */;
}

struct gadget_packet_ip {
	__u8 hdr[40]; /* the IPv4 header's first 20 bytes, or the IPv6 fixed header */
	__u16 family; /* 2 (AF_INET) or 10 (AF_INET6) */
	__u8 proto;   /* the transport protocol (IPPROTO_TCP, ...) */
	__u32 l4;     /* offset of the transport header in the frame */
};

/* Read the IP header of the frame in `skb` into `ip`; false when it is not IPv4 or IPv6. */
static __always_inline bool gadget_packet_ip(struct __sk_buff *skb, struct gadget_packet_ip *ip)
{
	__u16 eth_proto;

	if (bpf_skb_load_bytes(skb, 12, &eth_proto, sizeof(eth_proto)) < 0)
		return false;
	if (eth_proto == bpf_htons(GADGET_PACKET_ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, GADGET_PACKET_ETH_HLEN, ip->hdr, 20) < 0)
			return false;
		ip->proto = ip->hdr[9];
		ip->l4 = GADGET_PACKET_ETH_HLEN + (ip->hdr[0] & 0x0f) * 4;
		ip->family = 2;
	} else if (eth_proto == bpf_htons(GADGET_PACKET_ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, GADGET_PACKET_ETH_HLEN, ip->hdr, 40) < 0)
			return false;
		ip->proto = ip->hdr[6];
		ip->l4 = GADGET_PACKET_ETH_HLEN + 40;
		ip->family = 10;
	} else {
		return false;
	}
	return true;
}

/* Set the addresses, IP version and protocol of the packet's source and destination. */
static __always_inline void gadget_packet_endpoints(const struct gadget_packet_ip *ip,
						   struct gadget_l4endpoint_t *src,
						   struct gadget_l4endpoint_t *dst)
{
	if (ip->family == 2) {
		__builtin_memcpy(src->addr_raw.v6, &ip->hdr[12], 4);
		__builtin_memcpy(dst->addr_raw.v6, &ip->hdr[16], 4);
		src->version = dst->version = 4;
	} else {
		__builtin_memcpy(src->addr_raw.v6, &ip->hdr[8], 16);
		__builtin_memcpy(dst->addr_raw.v6, &ip->hdr[24], 16);
		src->version = dst->version = 6;
	}
	src->proto_raw = dst->proto_raw = ip->proto;
}

#endif /* __GADGET_PACKET_H */
