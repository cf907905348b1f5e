// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: openat(2) calls counted per (mount namespace, comm), the same counts kept in a
 * hash, an LRU hash and a per-CPU hash map, and the total in an array map. Each map is an array
 * datasource (GADGET_MAPITER), so one run checks every map type the runner reads.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

struct key_t {
	gadget_mntns_id mntns_id;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
};

struct value_t {
	gadget_counter__u64 opens;
	gadget_pid last_pid;
	__u32 __pad;
};

struct total_t {
	gadget_counter__u64 opens;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct key_t);
	__type(value, struct value_t);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct key_t);
	__type(value, struct value_t);
} counts_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct key_t);
	__type(value, struct value_t);
} counts_percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct total_t);
} total SEC(".maps");

GADGET_MAPITER(opens, counts);
GADGET_MAPITER(opens_lru, counts_lru);
GADGET_MAPITER(opens_percpu, counts_percpu);
GADGET_MAPITER(opens_total, total);

static __always_inline void bump(void *map, struct key_t *key, __u32 pid)
{
	struct value_t zero = {}, *v;

	v = bpf_map_lookup_elem(map, key);
	if (!v) {
		bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(map, key);
		if (!v)
			return;
	}
	__sync_fetch_and_add(&v->opens, 1);
	v->last_pid = pid;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int count_openat(void *ctx)
{
	struct key_t key = {};
	struct total_t *t;
	__u32 zero = 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	key.mntns_id = gadget_get_current_mntns_id();
	if (gadget_should_discard_mntns_id(key.mntns_id))
		return 0;
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	bump(&counts, &key, pid);
	bump(&counts_lru, &key, pid);
	bump(&counts_percpu, &key, pid);
	t = bpf_map_lookup_elem(&total, &zero);
	if (t)
		__sync_fetch_and_add(&t->opens, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
