// SPDX-License-Identifier: GPL-2.0
/*
 * trace_sni: the server name (SNI) of every TLS ClientHello sent over TCP, from a socket
 * filter attached in each target network namespace, with the connection's endpoints and the
 * client process (the owner of the packet's source port, from the runner's sockets map).
 *
 * The ClientHello must start in the segment's payload (it does: it is the first thing a TLS
 * client sends); extensions are walked with bpf_loop(). On loopback every packet passes a
 * packet socket twice (sent, then received): only the received copy is used there.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GADGET_TYPE_NETWORKING
#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/packet.h>
#include <gadget/types.h>
#include <gadget/sockets-map.h>
#include <gadget/socket_owner.h>

#define NAME_LEN 256
#define MAX_EXTENSIONS 64
#define TLS_HANDSHAKE 0x16
#define TLS_CLIENT_HELLO 0x01
#define EXT_SERVER_NAME 0x0000

struct event {
	gadget_timestamp timestamp_raw;
	gadget_netns_id netns_id;
	struct gadget_process proc;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	char name[NAME_LEN];
};

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(sni, events, event);

struct ext_walk {
	struct __sk_buff *skb;
	__u32 off;   /* the next extension */
	__u32 end;   /* end of the extensions */
	__u32 name;  /* offset of the host name, once found */
	__u32 len;   /* its length */
};

/* One extension, as a bpf_loop() callback; returns 1 to stop. */
static long read_extension(__u32 index, struct ext_walk *w)
{
	__u8 hdr[9];
	__u16 type, len;

	if (w->off + 4 > w->end || bpf_skb_load_bytes(w->skb, w->off, hdr, 4) < 0)
		return 1;
	type = (hdr[0] << 8) | hdr[1];
	len = (hdr[2] << 8) | hdr[3];
	if (type == EXT_SERVER_NAME) {
		/* server_name_list length (2), name type (1, 0 = host_name), name length (2) */
		if (bpf_skb_load_bytes(w->skb, w->off + 4, hdr, 5) < 0 || hdr[2] != 0)
			return 1;
		w->name = w->off + 9;
		w->len = (hdr[3] << 8) | hdr[4];
		return 1;
	}
	w->off += 4 + len;
	return 0;
}

/* Offset of the extensions of a ClientHello whose record starts at `off`, or 0. */
static __always_inline __u32 extensions_of(struct __sk_buff *skb, __u32 off, __u32 *end)
{
	__u8 rec[6];
	__u8 len8;
	__u16 len16;

	/* record: type, version (2), length (2); handshake: type, length (3) */
	if (bpf_skb_load_bytes(skb, off, rec, sizeof(rec)) < 0 || rec[0] != TLS_HANDSHAKE ||
	    rec[1] != 0x03 || rec[5] != TLS_CLIENT_HELLO)
		return 0;
	*end = off + 5 + ((rec[3] << 8) | rec[4]);
	off += 5 + 4 + 2 + 32; /* headers, client version, random */
	if (bpf_skb_load_bytes(skb, off, &len8, 1) < 0) /* session id */
		return 0;
	off += 1 + len8;
	if (bpf_skb_load_bytes(skb, off, &len16, 2) < 0) /* cipher suites */
		return 0;
	off += 2 + bpf_ntohs(len16);
	if (bpf_skb_load_bytes(skb, off, &len8, 1) < 0) /* compression methods */
		return 0;
	off += 1 + len8;
	if (bpf_skb_load_bytes(skb, off, &len16, 2) < 0) /* extensions length */
		return 0;
	if (off + 2 + bpf_ntohs(len16) < *end)
		*end = off + 2 + bpf_ntohs(len16);
	return off + 2;
}

SEC("socket1")
int trace_sni_packet(struct __sk_buff *skb)
{
	struct ext_walk w = {};
	struct event *event;
	struct gadget_packet_ip ip;
	__u16 ports[2];
	__u8 doff;
	__u32 off, end = 0;
	__u64 len;

	if (gadget_packet_loopback_sent(skb))
		return 0;
	if (!gadget_packet_ip(skb, &ip) || ip.proto != SE_IPPROTO_TCP)
		return 0;
	if (bpf_skb_load_bytes(skb, ip.l4, ports, sizeof(ports)) < 0 ||
	    bpf_skb_load_bytes(skb, ip.l4 + 12, &doff, 1) < 0)
		return 0;
	off = extensions_of(skb, ip.l4 + (doff >> 4) * 4, &end);
	if (!off)
		return 0;
	w.skb = skb;
	w.off = off;
	w.end = end;
	bpf_loop(MAX_EXTENSIONS, read_extension, &w, 0);
	if (!w.name || !w.len)
		return 0;

	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(event, 0, sizeof(*event));
	len = w.len < NAME_LEN - 1 ? w.len : NAME_LEN - 1;
	asm volatile("%[len] &= 0xff" : [len] "+r"(len)); /* bound the register passed */
	if (len < 1 || bpf_skb_load_bytes(skb, w.name, event->name, len) < 0) {
		gadget_discard_buf(event);
		return 0;
	}
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	event->netns_id = skb->cb[0];
	gadget_packet_endpoints(&ip, &event->src, &event->dst);
	event->src.port = bpf_ntohs(ports[0]);
	event->dst.port = bpf_ntohs(ports[1]);

	/* the ClientHello comes from the client: the owner of its source port */
	gadget_socket_owner_of(&event->proc, skb->cb[0], ip.family, SE_IPPROTO_TCP,
			       event->src.port);
	/* Containers of a pod share its namespace: the container filter applies to the client. */
	if (gadget_should_discard_mntns_id(event->proc.mntns_id)) {
		gadget_discard_buf(event);
		return 0;
	}
	gadget_submit_buf(skb, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
