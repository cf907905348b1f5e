// SPDX-License-Identifier: GPL-2.0
/*
 * tcpdump: the packets of the targets' network namespaces, from a socket filter on a packet
 * socket the runner opens in each of them (on loopback, where a packet passes twice, only its
 * received copy). One record per packet: the first `snaplen` bytes of
 * the frame (Ethernet header included), its length, interface, direction, the TCP/UDP
 * endpoints when there are some, and the owner of the local end (the runner's sockets map).
 * `kubectl gadget run tcpdump -o pcap` writes them as a pcap file for Wireshark or tcpdump -r.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GADGET_TYPE_NETWORKING
#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/packet.h>
#include <gadget/types.h>
#include <gadget/sockets-map.h>
#include <gadget/socket_owner.h>

#define SNAPLEN_MAX 2048

/* Values of skb->pkt_type (PACKET_HOST, ...) */
enum gadget_pkt_type {
	HOST = 0,
	BROADCAST = 1,
	MULTICAST = 2,
	OTHERHOST = 3,
	OUTGOING = 4,
};

/*
 * One byte of the frame. To the decoder an array of structs is an opaque byte range, which it
 * sends as one hex string: far cheaper to encode and parse than a JSON array of 2048 numbers.
 */
struct gadget_packet_byte {
	__u8 b;
};

struct event {
	gadget_timestamp timestamp_raw;
	gadget_netns_id netns_id;
	struct gadget_process proc;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	__u32 ifindex;
	enum gadget_pkt_type pkt_type_raw;
	__u32 len;
	__u32 caplen;
	struct gadget_packet_byte packet[SNAPLEN_MAX];
};

const volatile __u32 targ_snaplen = 128;
GADGET_PARAM(targ_snaplen);

GADGET_TRACER_MAP(events, 8 * 1024 * 1024);
GADGET_TRACER(packets, events, event);

/* The TCP or UDP endpoints of the frame, when it carries IPv4 or IPv6 (no extension headers). */
static __always_inline void read_endpoints(struct __sk_buff *skb, struct event *e)
{
	struct gadget_packet_ip ip;
	__u16 ports[2];

	if (!gadget_packet_ip(skb, &ip))
		return;
	gadget_packet_endpoints(&ip, &e->src, &e->dst);
	if ((ip.proto == SE_IPPROTO_TCP || ip.proto == SE_IPPROTO_UDP) &&
	    !bpf_skb_load_bytes(skb, ip.l4, ports, sizeof(ports))) {
		e->src.port = bpf_ntohs(ports[0]);
		e->dst.port = bpf_ntohs(ports[1]);
	}
}

SEC("socket1")
int tcpdump_packet(struct __sk_buff *skb)
{
	struct sockets_value *owner;
	struct event *event;
	__u64 caplen;

	if (gadget_packet_loopback_sent(skb))
		return 0;
	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(event, 0, offsetof(struct event, packet));
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	event->netns_id = skb->cb[0];
	event->ifindex = skb->ifindex;
	event->pkt_type_raw = skb->pkt_type;
	event->len = skb->len;
	caplen = skb->len < targ_snaplen ? skb->len : targ_snaplen;
	asm volatile("%[caplen] &= 0xfff" : [caplen] "+r"(caplen)); /* bound the register passed */
	if (caplen > SNAPLEN_MAX)
		caplen = SNAPLEN_MAX;
	if (caplen && bpf_skb_load_bytes(skb, 0, event->packet, caplen) < 0)
		caplen = 0;
	event->caplen = caplen;
	read_endpoints(skb, event);
	owner = gadget_socket_lookup(skb);
	if (owner)
		gadget_socket_owner(&event->proc, owner);
	gadget_submit_buf(skb, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
