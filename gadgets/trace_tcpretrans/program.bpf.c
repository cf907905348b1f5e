// SPDX-License-Identifier: GPL-2.0
/*
 * trace_tcpretrans: one record per TCP segment retransmitted, from tcp:tcp_retransmit_skb,
 * with the connection's endpoints, state, the segment's flags and the socket's owner.
 *
 * Retransmissions run from the retransmission timer (softirq), where the current task is not
 * the owner: owners are learned from sock:inet_sock_set_state, or for sockets older than the
 * gadget from the runner's sockets map (gadget/tcp_owner.h); a socket found in neither gets an
 * empty process.
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

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	gadget_netns_id netns_id;
	enum gadget_tcp_state state;
	enum gadget_tcp_flags_set tcpflags_raw;
	gadget_errno error_raw;
};

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(tcpretrans, events, event);

GADGET_TCP_OWNER_PROGRAM()

SEC("tracepoint/tcp/tcp_retransmit_skb")
int trace_tcp_retransmit_skb(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	const struct sock *sk = ctx->skaddr;
	const struct sk_buff *skb = ctx->skbaddr;
	struct tcp_skb_cb *tcb;
	struct event *event;

	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(event, 0, sizeof(*event));
	gadget_tcp_owner_fill(sk, &event->proc);
	if (gadget_tcp_owner_discard(&event->proc)) {
		gadget_discard_buf(event);
		return 0;
	}
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_tcp_endpoint(&event->src, ctx->family, ctx->saddr, ctx->saddr_v6, ctx->sport);
	gadget_tcp_endpoint(&event->dst, ctx->family, ctx->daddr, ctx->daddr_v6, ctx->dport);
	event->netns_id = gadget_sock_netns(sk);
	event->state = ctx->state;
	/* the segment's flags, kept by TCP in the skb's control block */
	tcb = (struct tcp_skb_cb *)skb->cb;
	event->tcpflags_raw = BPF_CORE_READ(tcb, tcp_flags);
	if (bpf_core_field_exists(ctx->err) && ctx->err < 0)
		event->error_raw = -ctx->err;
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
