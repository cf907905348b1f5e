// SPDX-License-Identifier: GPL-2.0
/*
 * snapshot_socket: every TCP and UDP socket (IPv4 and IPv6) of every network namespace, from
 * the tcp and udp iterators, merged into one table: endpoints, state, inode and the owning
 * process.
 *
 * The owner comes from the runner's sockets map (by network namespace, protocol and local
 * port), which knows the sockets open when the runner started and the ones bound since; an
 * accepted connection shares its listener's port, so it shows the listener's process. With a
 * container filter, a socket whose owner is unknown or outside the filter is left out.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>
#include <gadget/sockets-map.h>
#include <gadget/socket_owner.h>
#include <gadget/sock_endpoints.h>

/* state 0 is a UDP socket with no peer (the kernel's CLOSE), named as ss(8) names it */
#define GADGET_TCP_STATE_ZERO UNCONN
#include <gadget/tcp.h>

#define AF_INET 2
#define AF_INET6 10

struct socket_row {
	struct gadget_process proc;
	gadget_netns_id netns_id;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	enum gadget_tcp_state state;
	__u64 ino;
};

GADGET_ITER(sockets, socket_row, snap_tcp, snap_udp);

/* skc is read as a plain address (probe reads only): the iterator hands a maybe-NULL trusted
 * pointer, on which the verifier refuses the member arithmetic CO-RE reads need. */
static __always_inline void sock_out(struct seq_file *seq, void *const *slot, __u16 proto)
{
	struct sock_common *skc = NULL;
	struct socket_row row = {};
	struct socket *sock;
	__u16 family;
	__u8 state;

	bpf_probe_read_kernel(&skc, sizeof(skc), slot);
	if (!skc)
		return;
	family = BPF_CORE_READ(skc, skc_family);
	if (family != AF_INET && family != AF_INET6)
		return;
	row.netns_id = BPF_CORE_READ(skc, skc_net.net, ns.inum);
	gadget_sock_endpoints(&row.src, &row.dst, skc, family, proto);
	if (!gadget_socket_owner_of(&row.proc, row.netns_id, family, proto, row.src.port) &&
	    gadget_filter_by_mntns)
		return;
	if (gadget_should_discard_mntns_id(row.proc.mntns_id))
		return;
	state = BPF_CORE_READ(skc, skc_state);
	row.state = (proto == IPPROTO_UDP && state == TCP_CLOSE) ? UNCONN : state;
	/* time-wait and request socks are not full socks: no struct socket behind them */
	if (state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV) {
		sock = BPF_CORE_READ((struct sock *)skc, sk_socket);
		if (sock)
			row.ino = BPF_CORE_READ(sock, file, f_inode, i_ino);
	}
	bpf_seq_write(seq, &row, sizeof(row));
}

SEC("iter/tcp")
int snap_tcp(struct bpf_iter__tcp *ctx)
{
	sock_out(ctx->meta->seq, (void *const *)&ctx->sk_common, IPPROTO_TCP);
	return 0;
}

SEC("iter/udp")
int snap_udp(struct bpf_iter__udp *ctx)
{
	/* __sk_common is the first member of struct udp_sock (through inet.sk) */
	sock_out(ctx->meta->seq, (void *const *)&ctx->udp_sk, IPPROTO_UDP);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
