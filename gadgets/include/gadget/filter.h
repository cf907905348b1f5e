/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Well-known filter parameters. Each one is a `const volatile` in .rodata declared as a gadget
 * parameter, so `--pid`, `--tid`, `--uid`, `--gid` and `--comm` work for every gadget that
 * includes this header and calls gadget_should_discard_data_current(). A zero pid/tid, an
 * all-ones uid/gid and an empty comm mean "no filter".
 */
#ifndef __GADGET_FILTER_H
#define __GADGET_FILTER_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/macros.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>

#define GADGET_INVALID_ID ((__u32)-1)

const volatile gadget_pid targ_pid = 0;
const volatile gadget_tid targ_tid = 0;
const volatile gadget_uid targ_uid = GADGET_INVALID_ID;
const volatile gadget_gid targ_gid = GADGET_INVALID_ID;
const volatile char targ_comm[GADGET_TASK_COMM_LEN] = {};

GADGET_PARAM(targ_pid);
GADGET_PARAM(targ_tid);
GADGET_PARAM(targ_uid);
GADGET_PARAM(targ_gid);
GADGET_PARAM(targ_comm);

static __always_inline bool gadget_comm_matches(const char *comm)
{
	if (targ_comm[0] == '\0')
		return true;
#pragma unroll
	for (int i = 0; i < GADGET_TASK_COMM_LEN; i++) {
		if (targ_comm[i] != comm[i])
			return false;
		if (comm[i] == '\0')
			break;
	}
	return true;
}

/* One filter at a time, for values the program already has (an iterator's task, a socket's
 * owner): true when the value misses a filter that is set. */
static __always_inline bool gadget_should_discard_pid(gadget_pid pid)
{
	return targ_pid && targ_pid != pid;
}

static __always_inline bool gadget_should_discard_tid(gadget_tid tid)
{
	return targ_tid && targ_tid != tid;
}

static __always_inline bool gadget_should_discard_uid(gadget_uid uid)
{
	return targ_uid != GADGET_INVALID_ID && targ_uid != uid;
}

static __always_inline bool gadget_should_discard_gid(gadget_gid gid)
{
	return targ_gid != GADGET_INVALID_ID && targ_gid != gid;
}

static __always_inline bool gadget_should_discard_comm(const char *comm)
{
	return !gadget_comm_matches(comm);
}

/* All the filters (container first) for a task the program describes itself. */
static __always_inline bool gadget_should_discard_data(gadget_mntns_id mntns_id, gadget_pid pid,
						       gadget_tid tid, const char *comm,
						       gadget_uid uid, gadget_gid gid)
{
	return gadget_should_discard_mntns_id(mntns_id) || gadget_should_discard_pid(pid) ||
	       gadget_should_discard_tid(tid) || gadget_should_discard_uid(uid) ||
	       gadget_should_discard_gid(gid) || gadget_should_discard_comm(comm);
}

/*
 * True when the current task must be skipped: other container, or a targ_* filter misses.
 * The container check comes first (it is what discards most events on a busy node), and each
 * helper runs only when its filter is set (the targ_* values are read-only constants: the
 * verifier prunes the checks of filters left unset).
 */
static __always_inline bool gadget_should_discard_data_current(void)
{
	if (gadget_should_discard_current_mntns())
		return true;
	if (targ_pid || targ_tid) {
		__u64 pid_tgid = bpf_get_current_pid_tgid();

		if (targ_pid && targ_pid != (__u32)(pid_tgid >> 32))
			return true;
		if (targ_tid && targ_tid != (__u32)pid_tgid)
			return true;
	}
	if (targ_uid != GADGET_INVALID_ID || targ_gid != GADGET_INVALID_ID) {
		__u64 uid_gid = bpf_get_current_uid_gid();

		if (targ_uid != GADGET_INVALID_ID && targ_uid != (__u32)uid_gid)
			return true;
		if (targ_gid != GADGET_INVALID_ID && targ_gid != (__u32)(uid_gid >> 32))
			return true;
	}
	if (targ_comm[0]) {
		char comm[GADGET_TASK_COMM_LEN];

		bpf_get_current_comm(comm, sizeof(comm));
		if (!gadget_comm_matches(comm))
			return true;
	}
	return false;
}

#endif /* __GADGET_FILTER_H */
