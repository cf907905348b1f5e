/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A socket's two ends as L4 endpoints, read from its struct sock_common (the first member of
 * every struct sock): src is the local address and port, dst the peer's. IPv4 and IPv6 only;
 * the caller checks skc_family first.
 */
#ifndef __GADGET_SOCK_ENDPOINTS_H
#define __GADGET_SOCK_ENDPOINTS_H

#include <vmlinux.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include <gadget/types.h>

static __always_inline void gadget_sock_endpoints(struct gadget_l4endpoint_t *src,
						  struct gadget_l4endpoint_t *dst,
						  const struct sock_common *skc, __u16 family,
						  __u16 proto)
{
	if (family == 2 /* AF_INET */) {
		src->addr_raw.v4 = BPF_CORE_READ(skc, skc_rcv_saddr);
		dst->addr_raw.v4 = BPF_CORE_READ(skc, skc_daddr);
		src->version = dst->version = 4;
	} else {
		BPF_CORE_READ_INTO(&src->addr_raw.v6, skc, skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&dst->addr_raw.v6, skc, skc_v6_daddr.in6_u.u6_addr8);
		src->version = dst->version = 6;
	}
	src->port = BPF_CORE_READ(skc, skc_num);
	dst->port = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
	src->proto_raw = dst->proto_raw = proto;
}

#endif /* __GADGET_SOCK_ENDPOINTS_H */
