// SPDX-License-Identifier: GPL-2.0
/*
 * top_tcp: bytes sent and received per TCP connection and process in each interval, from the
 * sock:sock_send_length and sock:sock_recv_length tracepoints (sock_sendmsg/sock_recvmsg, in
 * the context of the process making the call). The runner reads and empties the map every
 * interval (GADGET_MAPITER).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/sock_endpoints.h>
#include <gadget/types.h>

#define AF_INET 2
#define AF_INET6 10
#define MSG_PEEK 2

struct conn_key {
	struct gadget_process proc;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
};

struct conn_traffic {
	gadget_bytes sent;
	gadget_bytes received;
};

/* 0: IPv4 and IPv6 connections; 4 or 6: only that version */
const volatile __u16 target_family = 0;
GADGET_PARAM(target_family);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct conn_key);
	__type(value, struct conn_traffic);
} traffic SEC(".maps");

GADGET_MAPITER(tcp, traffic);

static __always_inline int count(struct trace_event_raw_sock_msg_length *ctx, bool sent)
{
	struct conn_key key = {};
	struct conn_traffic zero = {}, *v;
	__u16 family = ctx->family;
	__u64 bytes;

	if (ctx->protocol != IPPROTO_TCP || ctx->ret <= 0)
		return 0;
	if (!sent && (ctx->flags & MSG_PEEK))
		return 0; /* peeked bytes stay in the queue: counted when read */
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if ((target_family == 4 && family != AF_INET) || (target_family == 6 && family != AF_INET6))
		return 0;
	if (gadget_should_discard_data_current())
		return 0;

	gadget_process_populate(&key.proc);
	key.proc.tid = 0; /* per process, not per thread */
	gadget_sock_endpoints(&key.src, &key.dst, (const struct sock_common *)ctx->sk, family,
			      IPPROTO_TCP);
	bytes = ctx->ret;

	v = bpf_map_lookup_elem(&traffic, &key);
	if (!v) {
		bpf_map_update_elem(&traffic, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&traffic, &key);
		if (!v)
			return 0;
	}
	if (sent)
		__sync_fetch_and_add(&v->sent, bytes);
	else
		__sync_fetch_and_add(&v->received, bytes);
	return 0;
}

SEC("tracepoint/sock/sock_send_length")
int top_tcp_send(struct trace_event_raw_sock_msg_length *ctx)
{
	return count(ctx, true);
}

SEC("tracepoint/sock/sock_recv_length")
int top_tcp_recv(struct trace_event_raw_sock_msg_length *ctx)
{
	return count(ctx, false);
}

char LICENSE[] SEC("license") = "GPL";
