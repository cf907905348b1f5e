/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which process owns a TCP socket, learned from sock:inet_sock_set_state.
 *
 * Many TCP events happen in softirq or timer context (a handshake completing, a retransmission,
 * a drop), where the current task is whoever was interrupted, not the socket's owner. The
 * transitions that a process makes itself are the ones to remember: CLOSE -> SYN_SENT runs in
 * connect(), * -> LISTEN runs in listen(). A connection accepted later (LISTEN -> SYN_RECV on the
 * new child socket) inherits its listener's owner, found by (network namespace, local port).
 *
 * Sockets that made those transitions before the gadget started are looked up in the runner's
 * sockets map instead (gadget_sockets, by network namespace and local port; the runner's socket
 * enricher fills it, including the sockets open when it starts).
 *
 * A gadget includes this header, calls gadget_tcp_owner_track() from its own
 * inet_sock_set_state program before looking anything up, gadget_tcp_owner_fill() to get an
 * owner, and gadget_tcp_owner_forget() last (it drops the entry of a socket reaching CLOSE).
 * A gadget that wants nothing else from that tracepoint defines the program with
 * GADGET_TCP_OWNER_PROGRAM() instead.
 */
#ifndef __GADGET_TCP_OWNER_H
#define __GADGET_TCP_OWNER_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#ifndef GADGET_TYPE_TRACING
#define GADGET_TYPE_TRACING /* gadget_socket_lookup() for a struct sock */
#endif
#include <gadget/sockets-map.h>
#include <gadget/socket_owner.h>

#define GADGET_TCP_OWNER_ENTRIES 16384

struct gadget_tcp_listener_key {
	__u32 netns;
	__u16 port;
	__u16 __pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GADGET_TCP_OWNER_ENTRIES);
	__type(key, __u64); /* struct sock * */
	__type(value, struct gadget_process);
} gadget_tcp_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GADGET_TCP_OWNER_ENTRIES);
	__type(key, struct gadget_tcp_listener_key);
	__type(value, struct gadget_process);
} gadget_tcp_listeners SEC(".maps");

static __always_inline __u32 gadget_sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline void
gadget_tcp_owner_track(const struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct gadget_tcp_listener_key lkey = {};
	struct gadget_process owner = {};
	const struct gadget_process *listener;
	__u64 sk = (__u64)ctx->skaddr;

	if (ctx->protocol != IPPROTO_TCP)
		return;
	if (ctx->newstate == TCP_LISTEN) {
		gadget_process_populate(&owner);
		lkey.netns = gadget_sock_netns((const struct sock *)ctx->skaddr);
		lkey.port = ctx->sport;
		bpf_map_update_elem(&gadget_tcp_listeners, &lkey, &owner, BPF_ANY);
		bpf_map_update_elem(&gadget_tcp_owners, &sk, &owner, BPF_ANY);
	} else if (ctx->oldstate == TCP_CLOSE && ctx->newstate == TCP_SYN_SENT) {
		gadget_process_populate(&owner);
		bpf_map_update_elem(&gadget_tcp_owners, &sk, &owner, BPF_ANY);
	} else if (ctx->oldstate == TCP_LISTEN && ctx->newstate == TCP_SYN_RECV) {
		/* a child socket of a listener, cloned from it */
		lkey.netns = gadget_sock_netns((const struct sock *)ctx->skaddr);
		lkey.port = ctx->sport;
		listener = bpf_map_lookup_elem(&gadget_tcp_listeners, &lkey);
		if (listener)
			bpf_map_update_elem(&gadget_tcp_owners, &sk, listener, BPF_ANY);
	}
}

/* The owner of socket `sk`, or NULL when it is not known. */
static __always_inline const struct gadget_process *gadget_tcp_owner_lookup(const void *sk)
{
	__u64 key = (__u64)sk;

	return bpf_map_lookup_elem(&gadget_tcp_owners, &key);
}

/* Fill `p` with the owner of `sk`: remembered here, else from the sockets map; false if unknown. */
static __always_inline bool gadget_tcp_owner_fill(const void *sk, struct gadget_process *p)
{
	const struct gadget_process *known = gadget_tcp_owner_lookup(sk);
	const struct sockets_value *v;

	if (known) {
		*p = *known;
		return true;
	}
	v = gadget_socket_lookup(sk, gadget_sock_netns(sk));
	if (!v)
		return false;
	gadget_socket_owner(p, v);
	return true;
}

static __always_inline void
gadget_tcp_owner_forget(const struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct gadget_tcp_listener_key lkey = {};
	__u64 sk = (__u64)ctx->skaddr;

	if (ctx->protocol != IPPROTO_TCP || ctx->newstate != TCP_CLOSE)
		return;
	bpf_map_delete_elem(&gadget_tcp_owners, &sk);
	if (ctx->oldstate == TCP_LISTEN) {
		lkey.netns = gadget_sock_netns((const struct sock *)ctx->skaddr);
		lkey.port = ctx->sport;
		bpf_map_delete_elem(&gadget_tcp_listeners, &lkey);
	}
}

/* The filters (container, --pid, --uid, ...) applied to a socket's owner, not the current task. */
static __always_inline bool gadget_tcp_owner_discard(const struct gadget_process *p)
{
	if (gadget_should_discard_mntns_id(p->mntns_id))
		return true;
	if ((targ_pid && targ_pid != p->pid) || (targ_tid && targ_tid != p->tid))
		return true;
	if (targ_uid != GADGET_INVALID_ID && targ_uid != p->creds.uid)
		return true;
	if (targ_gid != GADGET_INVALID_ID && targ_gid != p->creds.gid)
		return true;
	return !gadget_comm_matches(p->comm);
}

/*
 * The sock:inet_sock_set_state program of a gadget that uses the tracepoint only to keep the
 * owners current (trace_inet_sock_set_state).
 */
#define GADGET_TCP_OWNER_PROGRAM()                                                          \
	SEC("tracepoint/sock/inet_sock_set_state")                                          \
	int trace_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)      \
	{                                                                                   \
		if (ctx->protocol != IPPROTO_TCP)                                           \
			return 0;                                                           \
		gadget_tcp_owner_track(ctx);                                                \
		gadget_tcp_owner_forget(ctx);                                               \
		return 0;                                                                   \
	}

#endif /* __GADGET_TCP_OWNER_H */
