/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The owner recorded in a sockets map entry (gadget/sockets-map.h, included first) as the
 * struct gadget_process of a record: pid, tid, mount namespace, uid, gid, comm and parent.
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
	__builtin_memcpy(p->comm, v->task, sizeof(p->comm));
	__builtin_memcpy(p->parent.comm, v->ptask, sizeof(p->parent.comm));
}

#endif /* __GADGET_SOCKET_OWNER_H */
