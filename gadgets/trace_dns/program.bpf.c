// SPDX-License-Identifier: GPL-2.0
/*
 * trace_dns: DNS queries and responses over UDP, from a socket filter attached in each target
 * network namespace. The packet is parsed here: id, query/response, query name and type,
 * response code, the A/AAAA addresses of the answers (as text), and the latency of a response
 * (matched to its query by namespace, client port and id). The process is the owner of the
 * client's socket (the end that is not port 53), found in the runner's sockets map; with a
 * container filter, only the selected containers' lookups are kept (the containers of a pod
 * share its network namespace).
 *
 * On loopback every packet passes a packet socket twice (sent, then received): only the
 * received copy is used there.
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

#define DNS_PORT 53
#define UDP_HLEN 8
#define DNS_HLEN 12
#define NAME_LEN 256
#define ADDRS_LEN 128
#define ADDR_TEXT_MAX 41 /* ",ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" */
#define MAX_ANSWERS 8
#define MAX_LABELS 32
#define QUERIES_MAX 4096

enum dns_qr { Q = 0, R = 1 };

enum dns_qtype {
	A = 1, NS = 2, CNAME = 5, SOA = 6, PTR = 12, MX = 15, TXT = 16, AAAA = 28, SRV = 33,
	NAPTR = 35, DS = 43, RRSIG = 46, DNSKEY = 48, SVCB = 64, HTTPS = 65, ANY = 255,
};

enum dns_rcode {
	NOERROR = 0, FORMERR = 1, SERVFAIL = 2, NXDOMAIN = 3, NOTIMP = 4, REFUSED = 5,
};

struct event {
	gadget_timestamp timestamp_raw;
	gadget_netns_id netns_id;
	struct gadget_process proc;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	__u16 id;
	__u16 ancount;
	enum dns_qr qr_raw;
	enum dns_qtype qtype_raw;
	enum dns_rcode rcode_raw;
	gadget_duration latency_ns;
	char name[NAME_LEN];
	char addresses[ADDRS_LEN];
};

struct query_key {
	__u32 netns;
	__u16 port; /* the client's */
	__u16 id;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, QUERIES_MAX);
	__type(key, struct query_key);
	__type(value, __u64);
} query_ts SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(dns, events, event);

/*
 * Address text is built in a per-CPU scratch buffer whose cursor lives in map memory: the
 * verifier does not track map contents, so the many formatting paths do not each become a
 * separate verifier state (with the cursor in a register, they do, and the program is refused
 * as too large).
 */
struct scratch {
	__u32 pos;
	__s32 best;
	__s32 best_len;
	__s32 run;
	char text[ADDRS_LEN];
	__u8 raw[NAME_LEN];
	char name[NAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_buf SEC(".maps");

struct name_walk {
	struct scratch *s;
	__u32 next; /* index of the next label length byte */
	__u32 end;  /* index past the terminating zero, once found */
};

/* One byte of the wire-format name, as a bpf_loop() callback: label lengths become dots. */
static long name_char(__u32 i, struct name_walk *w)
{
	struct scratch *s = w->s;
	__u8 c = s->raw[i & (NAME_LEN - 1)];

	if (i == w->next) {
		if (c == 0) {
			w->end = i + 1;
			return 1;
		}
		if (c & 0xc0)
			return 1; /* a compressed question name is not valid */
		w->next = i + c + 1;
		c = '.';
	}
	if (i > 0)
		s->name[(i - 1) & (NAME_LEN - 1)] = c;
	return 0;
}

/* Copy the query name at `off` as dotted text; the offset just past it, or 0 when malformed. */
static __always_inline __u32 read_name(struct __sk_buff *skb, __u32 off, char *out)
{
	__u32 zero = 0, avail = skb->len > off ? skb->len - off : 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_buf, &zero);
	struct name_walk w = {};
	__u64 len;

	if (!s || avail < 1)
		return 0;
	if (avail > NAME_LEN)
		avail = NAME_LEN;
	__builtin_memset(s->name, 0, sizeof(s->name));
	len = avail;
	asm volatile("%[len] &= 0x1ff" : [len] "+r"(len)); /* bound the register passed */
	if (len < 1 || len > NAME_LEN)
		return 0;
	if (bpf_skb_load_bytes(skb, off, s->raw, len) < 0)
		return 0;
	w.s = s;
	bpf_loop(len, name_char, &w, 0);
	__builtin_memcpy(out, s->name, NAME_LEN);
	return w.end ? off + w.end : 0;
}

/* No bounds branch here (it doubles the paths to verify): read_answer() stops appending
 * while a whole address (ADDR_TEXT_MAX) still fits, and the mask keeps the index in range. */
static __always_inline void put(struct scratch *s, char c)
{
	__u32 pos = s->pos;

	s->pos = pos + 1;
	barrier_var(pos);
	s->text[pos & (ADDRS_LEN - 1)] = c;
}

static __always_inline void put_dec(struct scratch *s, __u8 v)
{
	if (v >= 100)
		put(s, '0' + v / 100);
	if (v >= 10)
		put(s, '0' + (v / 10) % 10);
	put(s, '0' + v % 10);
}

static __always_inline void put_hex16(struct scratch *s, __u16 v)
{
	const char digits[] = "0123456789abcdef";

	if (v >= 0x1000)
		put(s, digits[(v >> 12) & 0xf]);
	if (v >= 0x100)
		put(s, digits[(v >> 8) & 0xf]);
	if (v >= 0x10)
		put(s, digits[(v >> 4) & 0xf]);
	put(s, digits[v & 0xf]);
}

static __always_inline void put_ipv4(struct scratch *s, const __u8 *a)
{
	put_dec(s, a[0]);
	put(s, '.');
	put_dec(s, a[1]);
	put(s, '.');
	put_dec(s, a[2]);
	put(s, '.');
	put_dec(s, a[3]);
}

/* RFC 5952 text: lowercase, no leading zeros, the first longest run of 2+ zero groups as "::". */
static __always_inline void put_ipv6(struct scratch *s, const __u8 *a)
{
	int i;

	s->best = -1;
	s->best_len = 1;
	s->run = 0;
	for (i = 0; i < 8; i++) {
		if (!a[2 * i] && !a[2 * i + 1]) {
			s->run++;
			if (s->run > s->best_len) {
				s->best_len = s->run;
				s->best = i - s->run + 1;
			}
		} else {
			s->run = 0;
		}
	}
	for (i = 0; i < 8; i++) {
		__s32 best = s->best, end = s->best + s->best_len;

		if (best >= 0 && i >= best && i < end) {
			if (i == best) {
				put(s, ':');
				put(s, ':');
			}
			continue;
		}
		if (i > 0 && i != end)
			put(s, ':');
		put_hex16(s, (a[2 * i] << 8) | a[2 * i + 1]);
	}
}

/* The offset past a resource record's owner name (labels or a compression pointer). */
static __always_inline __u32 skip_name(struct __sk_buff *skb, __u32 off)
{
	__u8 len;
	int i;

	for (i = 0; i < MAX_LABELS; i++) {
		if (bpf_skb_load_bytes(skb, off, &len, 1) < 0)
			return 0;
		if ((len & 0xc0) == 0xc0)
			return off + 2;
		if (len == 0)
			return off + 1;
		off += len + 1;
	}
	return 0;
}

struct answers {
	struct __sk_buff *skb;
	struct scratch *s;
	__u32 off;
};

/*
 * One answer record, as a bpf_loop() callback (verified once, not once per answer): append
 * its address when it is an A or AAAA record. Returns 1 to stop.
 */
static long read_answer(__u32 index, struct answers *ans)
{
	struct scratch *s = ans->s;
	__u8 rr[10], addr[16];
	__u16 type, rdlen;
	__u32 off;

	if (s->pos > ADDRS_LEN - 1 - ADDR_TEXT_MAX)
		return 1; /* the text is full */
	off = skip_name(ans->skb, ans->off);
	if (!off || bpf_skb_load_bytes(ans->skb, off, rr, sizeof(rr)) < 0)
		return 1;
	type = (rr[0] << 8) | rr[1];
	rdlen = (rr[8] << 8) | rr[9];
	off += sizeof(rr);
	ans->off = off + rdlen;
	if (type == A && rdlen == 4 && !bpf_skb_load_bytes(ans->skb, off, addr, 4)) {
		if (s->pos)
			put(s, ',');
		put_ipv4(s, addr);
	} else if (type == AAAA && rdlen == 16 &&
		   !bpf_skb_load_bytes(ans->skb, off, addr, 16)) {
		if (s->pos)
			put(s, ',');
		put_ipv6(s, addr);
	}
	return 0;
}

/* The A and AAAA addresses of the answers starting at `off`, as comma-separated text. */
static __always_inline void read_answers(struct __sk_buff *skb, __u32 off, __u16 count,
					 char *out)
{
	__u32 zero = 0, end;
	struct scratch *s = bpf_map_lookup_elem(&scratch_buf, &zero);
	struct answers ans = {.skb = skb};

	if (!s)
		return;
	/* The offset is a distinct constant for each name length read_name() stops at: through
	 * map memory it becomes one unknown value, and the callback is verified once, not 256
	 * times. */
	s->pos = off;
	ans.off = s->pos;
	s->pos = 0;
	ans.s = s;
	bpf_loop(count < MAX_ANSWERS ? count : MAX_ANSWERS, read_answer, &ans, 0);
	end = s->pos;
	barrier_var(end);
	s->text[end & (ADDRS_LEN - 1)] = '\0';
	__builtin_memcpy(out, s->text, ADDRS_LEN);
}

SEC("socket1")
int trace_dns_packet(struct __sk_buff *skb)
{
	struct query_key qkey = {};
	struct event *event;
	struct gadget_packet_ip ip;
	__u16 ports[2], sport, dport, client, hdr[6];
	__u32 off;
	__u64 now, *sent;

	if (gadget_packet_loopback_sent(skb))
		return 0;
	if (!gadget_packet_ip(skb, &ip) || ip.proto != SE_IPPROTO_UDP)
		return 0;
	if (bpf_skb_load_bytes(skb, ip.l4, ports, sizeof(ports)) < 0)
		return 0;
	sport = bpf_ntohs(ports[0]);
	dport = bpf_ntohs(ports[1]);
	if (sport != DNS_PORT && dport != DNS_PORT)
		return 0;
	off = ip.l4 + UDP_HLEN;
	if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) < 0)
		return 0;

	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(event, 0, sizeof(*event));
	now = bpf_ktime_get_boot_ns();
	event->timestamp_raw = now;
	event->netns_id = skb->cb[0];
	event->id = bpf_ntohs(hdr[0]);
	event->qr_raw = (bpf_ntohs(hdr[1]) >> 15) & 1;
	event->rcode_raw = bpf_ntohs(hdr[1]) & 0xf;
	event->ancount = bpf_ntohs(hdr[3]);
	gadget_packet_endpoints(&ip, &event->src, &event->dst);
	event->src.port = sport;
	event->dst.port = dport;

	off = read_name(skb, off + DNS_HLEN, event->name);
	if (off) {
		__u16 qtype;

		if (!bpf_skb_load_bytes(skb, off, &qtype, sizeof(qtype)))
			event->qtype_raw = bpf_ntohs(qtype);
		if (event->qr_raw == R && event->ancount)
			read_answers(skb, off + 4, event->ancount, event->addresses);
	}

	/* the client's end: the source of a query, the destination of a response */
	client = event->qr_raw == Q ? sport : dport;
	gadget_socket_owner_of(&event->proc, skb->cb[0], ip.family, SE_IPPROTO_UDP, client);

	qkey.netns = skb->cb[0];
	qkey.port = client;
	qkey.id = event->id;
	if (event->qr_raw == Q) {
		bpf_map_update_elem(&query_ts, &qkey, &now, BPF_ANY);
	} else {
		sent = bpf_map_lookup_elem(&query_ts, &qkey);
		if (sent) {
			event->latency_ns = now - *sent;
			bpf_map_delete_elem(&query_ts, &qkey);
		}
	}
	/* Containers of a pod share its namespace: the container filter applies to the client. */
	if (gadget_should_discard_mntns_id(event->proc.mntns_id)) {
		gadget_discard_buf(event);
		return 0;
	}
	gadget_submit_buf(skb, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
