// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "socket_owner": a socket filter (section `socket1`, as IG names it) that reports
 * every IPv4 TCP/UDP packet to or from port `port`, with the network namespace the runner's
 * dispatcher put in cb[0] and the owner of the packet's local socket from gadget_sockets
 * (with the first PATH_LEN bytes of its working directory and executable path).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GADGET_TYPE_NETWORKING
#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>
#include <gadget/sockets-map.h>

#define PATH_LEN 256

const volatile __u16 port = 0;
GADGET_PARAM(port);

struct packet_event {
	gadget_netns_id netns_id;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_tid tid;
	gadget_ppid ppid;
	gadget_uid uid;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
	gadget_comm pcomm[GADGET_TASK_COMM_LEN];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 outgoing;
	__u8 owner_found;
	char cwd[PATH_LEN];
	char exepath[PATH_LEN];
};

GADGET_TRACER_MAP(events, 1 << 18);
GADGET_TRACER(packets, events, packet_event);

SEC("socket1")
int packet_owner(struct __sk_buff *skb)
{
	struct packet_event *e;
	struct sockets_value *owner;
	__u16 eth_proto, ports[2];
	__u8 ihl, proto;

	if (bpf_skb_load_bytes(skb, 12, &eth_proto, 2) < 0 || eth_proto != bpf_htons(SE_ETH_P_IP))
		return 0;
	if (bpf_skb_load_bytes(skb, SE_ETH_HLEN + 9, &proto, 1) < 0 ||
	    bpf_skb_load_bytes(skb, SE_ETH_HLEN, &ihl, 1) < 0)
		return 0;
	if (proto != SE_IPPROTO_TCP && proto != SE_IPPROTO_UDP)
		return 0;
	if (bpf_skb_load_bytes(skb, SE_ETH_HLEN + (ihl & 0xf) * 4, ports, 4) < 0)
		return 0;
	if (port && bpf_ntohs(ports[0]) != port && bpf_ntohs(ports[1]) != port)
		return 0;
	e = gadget_reserve_buf(events, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->netns_id = skb->cb[0];
	e->sport = bpf_ntohs(ports[0]);
	e->dport = bpf_ntohs(ports[1]);
	e->proto = proto;
	e->outgoing = skb->pkt_type != SE_PACKET_HOST;
	owner = gadget_socket_lookup(skb);
	if (owner) {
		e->owner_found = 1;
		e->mntns_id = owner->mntns;
		e->pid = owner->pid_tgid >> 32;
		e->tid = (__u32)owner->pid_tgid;
		e->ppid = owner->ppid;
		e->uid = (__u32)owner->uid_gid;
		__builtin_memcpy(e->comm, owner->task, sizeof(e->comm));
		__builtin_memcpy(e->pcomm, owner->ptask, sizeof(e->pcomm));
		__builtin_memcpy(e->cwd, owner->cwd, sizeof(e->cwd));
		__builtin_memcpy(e->exepath, owner->exepath, sizeof(e->exepath));
	}
	gadget_submit_buf(skb, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
