/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Record members shared by the TCP gadgets: the connection state and the header flags as
 * enums (so the decoder prints their names), and an L4 endpoint filled from the address
 * arrays of the sock and tcp tracepoints.
 */
#ifndef __GADGET_TCP_H
#define __GADGET_TCP_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/types.h>

#define GADGET_AF_INET 2

/*
 * Values of the kernel's TCP states (include/net/tcp_states.h). The kernel has no state 0; a
 * gadget that gives 0 a meaning names it by defining GADGET_TCP_STATE_ZERO to the enumerator's
 * name before including this header (snapshot_socket: UNCONN, a UDP socket with no peer).
 */
enum gadget_tcp_state {
#ifdef GADGET_TCP_STATE_ZERO
	GADGET_TCP_STATE_ZERO = 0,
#endif
	ESTABLISHED = 1,
	SYN_SENT = 2,
	SYN_RECV = 3,
	FIN_WAIT1 = 4,
	FIN_WAIT2 = 5,
	TIME_WAIT = 6,
	CLOSE = 7,
	CLOSE_WAIT = 8,
	LAST_ACK = 9,
	LISTEN = 10,
	CLOSING = 11,
	NEW_SYN_RECV = 12,
	BOUND_INACTIVE = 13,
};

/* TCP header flags, a bit set (byte 13 of the header). */
enum gadget_tcp_flags_set {
	FIN = 0x01,
	SYN = 0x02,
	RST = 0x04,
	PSH = 0x08,
	ACK = 0x10,
	URG = 0x20,
	ECE = 0x40,
	CWR = 0x80,
};

/*
 * An endpoint from a tracepoint's address arrays. Tracepoint context must be read at
 * constant offsets, so the arrays are copied with a helper.
 */
static __always_inline void gadget_tcp_endpoint(struct gadget_l4endpoint_t *ep, __u16 family,
						const void *v4, const void *v6, __u16 port)
{
	if (family == GADGET_AF_INET) {
		bpf_probe_read_kernel(ep->addr_raw.v6, 4, v4);
		ep->version = 4;
	} else {
		bpf_probe_read_kernel(ep->addr_raw.v6, 16, v6);
		ep->version = 6;
	}
	ep->port = port;
	ep->proto_raw = IPPROTO_TCP;
}

#endif /* __GADGET_TCP_H */
