// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "tcp_state_owner": the tracing side of <gadget/sockets-map.h>. On every TCP
 * state change of port `port` (sock:inet_sock_set_state, which may run in softirq context,
 * where the current task says nothing), the owner of the socket is looked up in
 * gadget_sockets by the socket itself.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define GADGET_TYPE_TRACING
#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>
#include <gadget/sockets-map.h>

const volatile __u16 port = 0;
GADGET_PARAM(port);

struct state_event {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
	__u16 sport;
	__u16 dport;
	__u32 newstate;
	__u8 owner_found;
};

GADGET_TRACER_MAP(events, 1 << 16);
GADGET_TRACER(states, events, state_event);

SEC("tracepoint/sock/inet_sock_set_state")
int state_change(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct sock *sk = (struct sock *)ctx->skaddr;
	struct sockets_value *owner;
	struct state_event *e;
	__u32 netns;

	if (ctx->protocol != SE_IPPROTO_TCP || (port && ctx->sport != port && ctx->dport != port))
		return 0;
	e = gadget_reserve_buf(events, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->sport = ctx->sport;
	e->dport = ctx->dport;
	e->newstate = ctx->newstate;
	netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	owner = gadget_socket_lookup(sk, netns);
	if (owner) {
		e->owner_found = 1;
		e->mntns_id = owner->mntns;
		e->pid = owner->pid_tgid >> 32;
		__builtin_memcpy(e->comm, owner->task, sizeof(e->comm));
	}
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
