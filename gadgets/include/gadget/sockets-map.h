/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sockets map: which process owns a socket, filled by the runner, read by gadgets.
 *
 * The runner loads its own socket enricher before the gadget and hands the gadget its
 * `gadget_sockets` map (same fd), so a gadget only looks sockets up. The key and value layouts
 * are Inspektor Gadget's, byte for byte, so gadgets written for it run unchanged:
 *
 *   key   (12 bytes): netns inode @0 (u32), address family @4 (u16), IP protocol @6 (u8),
 *                     local port in host byte order @8 (u16); padding is zero.
 *   value (8272 bytes): mntns @0, pid_tgid @8, uid_gid @16, comm @24, parent comm @40,
 *                     socket cookie @56, deletion time (boot ns, 0 while open) @64,
 *                     cwd @72 and executable path @4168 (NUL-terminated, as the owner
 *                     saw them when the socket was published; empty when unknown),
 *                     parent pid @8264, IPv6-only flag @8268.
 *
 * Define GADGET_TYPE_NETWORKING (socket filters, tc programs: the runner's dispatcher puts
 * the network namespace inode in skb->cb[0]) or GADGET_TYPE_TRACING (programs holding a
 * `struct sock *`) before including this header to get gadget_socket_lookup().
 */
#ifndef __GADGET_SOCKETS_MAP_H
#define __GADGET_SOCKETS_MAP_H

#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#error "include <vmlinux.h> or <linux/types.h> first"
#endif

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define SE_TASK_COMM_LEN 16
#define SE_PATH_MAX 4096
#define SE_AF_INET 2
#define SE_AF_INET6 10
#define SE_PACKET_HOST 0
#define SE_ETH_HLEN 14
#define SE_ETH_P_IP 0x0800
#define SE_ETH_P_IPV6 0x86DD
#define SE_IPV6_HLEN 40
#define SE_IPPROTO_TCP 6
#define SE_IPPROTO_UDP 17

#ifndef GADGET_SOCKETS_MAX
#define GADGET_SOCKETS_MAX 16384
#endif

struct sockets_key {
	__u32 netns;
	__u16 family;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 port; /* local port, host byte order */
};

struct sockets_value {
	__u64 mntns;
	__u64 pid_tgid;
	__u64 uid_gid;
	char task[SE_TASK_COMM_LEN];
	char ptask[SE_TASK_COMM_LEN];
	__u64 sock;
	__u64 deletion_timestamp;
	__u8 cwd[SE_PATH_MAX];
	__u8 exepath[SE_PATH_MAX];
	__u32 ppid;
	char ipv6only;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GADGET_SOCKETS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sockets_key);
	__type(value, struct sockets_value);
} gadget_sockets SEC(".maps");

/* The owner of a bound socket; for an IPv4 key, also an IPv6 dual-stack socket's owner. */
static __always_inline struct sockets_value *gadget_socket_lookup_key(struct sockets_key *key)
{
	struct sockets_value *v = bpf_map_lookup_elem(&gadget_sockets, key);

	if (v || key->family != SE_AF_INET)
		return v;
	key->family = SE_AF_INET6;
	v = bpf_map_lookup_elem(&gadget_sockets, key);
	return v && !v->ipv6only ? v : 0;
}

#ifdef GADGET_TYPE_NETWORKING
/* The owner of the local end of an Ethernet-framed packet: the destination port of a packet
 * coming in, the source port of one going out. IPv6 extension headers are not walked. */
static __always_inline struct sockets_value *gadget_socket_lookup(const struct __sk_buff *skb)
{
	struct sockets_key key;
	__u16 eth_proto, port;
	__u8 ihl;
	int l4;

	__builtin_memset(&key, 0, sizeof(key));
	key.netns = skb->cb[0];
	if (bpf_skb_load_bytes(skb, 12, &eth_proto, sizeof(eth_proto)) < 0)
		return 0;
	if (eth_proto == bpf_htons(SE_ETH_P_IP)) {
		key.family = SE_AF_INET;
		if (bpf_skb_load_bytes(skb, SE_ETH_HLEN + 9, &key.proto, 1) < 0 ||
		    bpf_skb_load_bytes(skb, SE_ETH_HLEN, &ihl, 1) < 0)
			return 0;
		l4 = SE_ETH_HLEN + (ihl & 0xf) * 4;
	} else if (eth_proto == bpf_htons(SE_ETH_P_IPV6)) {
		key.family = SE_AF_INET6;
		if (bpf_skb_load_bytes(skb, SE_ETH_HLEN + 6, &key.proto, 1) < 0)
			return 0;
		l4 = SE_ETH_HLEN + SE_IPV6_HLEN;
	} else {
		return 0;
	}
	if (key.proto != SE_IPPROTO_TCP && key.proto != SE_IPPROTO_UDP)
		return 0;
	/* TCP and UDP headers both start with the source port, then the destination port. */
	if (bpf_skb_load_bytes(skb, l4 + (skb->pkt_type == SE_PACKET_HOST ? 2 : 0), &port,
			       sizeof(port)) < 0)
		return 0;
	key.port = bpf_ntohs(port);
	return gadget_socket_lookup_key(&key);
}
#endif

#ifdef GADGET_TYPE_TRACING
#include <bpf/bpf_core_read.h>

/* The owner of a kernel socket, in the network namespace `netns`. */
static __always_inline struct sockets_value *gadget_socket_lookup(const struct sock *sk,
								   __u32 netns)
{
	struct sockets_key key;
	struct inet_sock *inet = (struct inet_sock *)sk;
	__u16 sport = 0;

	__builtin_memset(&key, 0, sizeof(key));
	key.netns = netns;
	key.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	key.proto = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	if (key.proto != SE_IPPROTO_TCP && key.proto != SE_IPPROTO_UDP)
		return 0;
	BPF_CORE_READ_INTO(&sport, inet, inet_sport);
	key.port = bpf_ntohs(sport);
	return gadget_socket_lookup_key(&key);
}
#endif

#endif /* __GADGET_SOCKETS_MAP_H */
