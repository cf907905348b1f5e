/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The owner recorded in a sockets map entry (gadget/sockets-map.h, included first) as the
 * struct gadget_process of a record: pid, tid, mount namespace, uid, gid, comm and parent;
 * gadget_socket_owner_of() looks the entry up by local port first.
 */
#ifndef __GADGET_SOCKET_OWNER_H
#define __GADGET_SOCKET_OWNER_H

#ifndef __GADGET_SOCKETS_MAP_H
#error "include <gadget/sockets-map.h> first"
#endif

#include <gadget/types.h>

static __always_inline void gadget_socket_owner(struct gadget_process *p,
						const struct sockets_value *v)
{
	p->pid = v->pid_tgid >> 32;
	p->tid = (__u32)v->pid_tgid;
	p->mntns_id = v->mntns;
	p->creds.uid = (__u32)v->uid_gid;
	p->creds.gid = v->uid_gid >> 32;
	p->parent.pid = v->ppid;
	p->parent.tid = 0; /* the sockets map keeps no parent thread */
	__builtin_memcpy(p->comm, v->task, sizeof(p->comm));
	__builtin_memcpy(p->parent.comm, v->ptask, sizeof(p->parent.comm));
}

/* Fill `p` with the owner of local `port` (host byte order) of protocol `proto` and address
 * family `family` in network namespace `netns`; false, leaving `p` as it was, when the sockets
 * map has no owner for it. */
static __always_inline bool gadget_socket_owner_of(struct gadget_process *p, __u32 netns,
						   __u16 family, __u8 proto, __u16 port)
{
	struct sockets_key key = {};
	struct sockets_value *v;

	key.netns = netns;
	key.family = family;
	key.proto = proto;
	key.port = port;
	v = gadget_socket_lookup_key(&key);
	if (!v)
		return false;
	gadget_socket_owner(p, v);
	return true;
}

#endif /* __GADGET_SOCKET_OWNER_H */
