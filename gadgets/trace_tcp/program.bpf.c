// SPDX-License-Identifier: GPL-2.0
/*
 * trace_tcp: TCP connections opened (connect), accepted (accept) and closed (close), from the
 * sock:inet_sock_set_state tracepoint, with the local (src) and remote (dst) endpoints and the
 * process that owns the socket.
 *
 * The state changes that complete a handshake run in softirq context, where the current task
 * is not the owner: the owner is remembered when the process itself changes the state (connect,
 * listen) and an accepted connection inherits its listener's; sockets older than the gadget are
 * found in the runner's sockets map (gadget/tcp_owner.h). Only when both miss is the current
 * task reported.
 *
 *   connect: SYN_SENT -> ESTABLISHED, or SYN_SENT -> CLOSE with the error (ECONNREFUSED, ...)
 *   accept:  SYN_RECV -> ESTABLISHED (the three-way handshake of a listener's child finished)
 *   close:   the local side closes or the connection is reset: ESTABLISHED -> FIN_WAIT1 or
 *            CLOSE, CLOSE_WAIT -> LAST_ACK or CLOSE (one record per established connection)
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/tcp.h>
#include <gadget/tcp_owner.h>
#include <gadget/types.h>

enum event_type {
	connect = 0,
	accept = 1,
	close = 2,
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	gadget_netns_id netns_id;
	enum event_type type;
	gadget_errno error_raw;
};

const volatile bool targ_connect_only = false;
const volatile bool targ_accept_only = false;
const volatile bool targ_failure_only = false;
GADGET_PARAM(targ_connect_only);
GADGET_PARAM(targ_accept_only);
GADGET_PARAM(targ_failure_only);

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(tcp, events, event);

/* The type of record a transition makes, or -1 for none. */
static __always_inline int event_type_of(int oldstate, int newstate)
{
	if (oldstate == TCP_SYN_SENT && (newstate == TCP_ESTABLISHED || newstate == TCP_CLOSE))
		return connect;
	if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED)
		return accept;
	if ((oldstate == TCP_ESTABLISHED && (newstate == TCP_FIN_WAIT1 || newstate == TCP_CLOSE)) ||
	    (oldstate == TCP_CLOSE_WAIT && (newstate == TCP_LAST_ACK || newstate == TCP_CLOSE)))
		return close;
	return -1;
}

static __always_inline bool discard_type(int type, __u32 error)
{
	if (targ_connect_only && type != connect)
		return true;
	if (targ_accept_only && type != accept)
		return true;
	return targ_failure_only && !error;
}

static __always_inline void emit(struct trace_event_raw_inet_sock_set_state *ctx, int type)
{
	const struct sock *sk = ctx->skaddr;
	struct event *event;
	__u32 error = 0;

	if (ctx->newstate == TCP_CLOSE && (type == connect || type == close))
		error = BPF_CORE_READ(sk, sk_err);
	if (discard_type(type, error))
		return;

	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		return;
	__builtin_memset(event, 0, sizeof(*event));
	if (!gadget_tcp_owner_fill(sk, &event->proc))
		gadget_process_populate(&event->proc);
	if (gadget_tcp_owner_discard(&event->proc)) {
		gadget_discard_buf(event);
		return;
	}
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_tcp_endpoint(&event->src, ctx->family, ctx->saddr, ctx->saddr_v6, ctx->sport);
	gadget_tcp_endpoint(&event->dst, ctx->family, ctx->daddr, ctx->daddr_v6, ctx->dport);
	event->netns_id = gadget_sock_netns(sk);
	event->type = type;
	event->error_raw = error;
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
}

SEC("tracepoint/sock/inet_sock_set_state")
int trace_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	int type;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	gadget_tcp_owner_track(ctx);
	type = event_type_of(ctx->oldstate, ctx->newstate);
	if (type >= 0)
		emit(ctx, type);
	gadget_tcp_owner_forget(ctx);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
