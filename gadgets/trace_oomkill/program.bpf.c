// SPDX-License-Identifier: GPL-2.0
/*
 * trace_oomkill: processes the OOM killer chose, from the oom:mark_victim tracepoint in its
 * BTF form (tp_btf), which hands over the victim's task_struct. It fires in the task whose
 * allocation ran out of memory (the trigger), which may be the victim itself or another
 * process of the same memory cgroup (or, for a system-wide OOM, any process).
 *
 * `proc` is the victim, so the container filter and the pod enrichment follow the process
 * that is killed; the trigger is reported beside it. The victim's memory cgroup is read
 * through its css_set (cgroup v1 memory hierarchy or the v2 unified one alike): its kernfs id
 * and its directory name (the container's scope or cgroup, as the runtime named it). Page
 * counts are the kernel's mm counters at the time of the kill, as the tracepoint's classic
 * form prints them.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define MEMCG_NAME_LEN 128

/* Before Linux 6.2 the mm counters were atomics in struct mm_rss_stat, not percpu_counters. */
struct mm_rss_stat___pre62 {
	atomic_long_t count[4];
};

struct mm_struct___pre62 {
	struct mm_rss_stat___pre62 rss_stat;
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	gadget_pid trigger_pid;
	gadget_comm trigger_comm[GADGET_TASK_COMM_LEN];
	__s16 oom_score_adj;
	__u16 __pad;
	__u64 pages;
	__u64 anon_pages;
	__u64 file_pages;
	__u64 shmem_pages;
	__u64 total_vm_pages;
	__u64 memcg_id;
	char memcg[MEMCG_NAME_LEN];
};

GADGET_TRACER_MAP(events, 64 * 1024);
GADGET_TRACER(oomkill, events, event);

static __always_inline __u64 mm_counter(struct mm_struct *mm, int member)
{
	long count;

	if (bpf_core_type_exists(struct mm_rss_stat___pre62))
		count = BPF_CORE_READ((struct mm_struct___pre62 *)mm, rss_stat.count[member].counter);
	else
		count = BPF_CORE_READ(mm, rss_stat[member].count);

	return count > 0 ? count : 0;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(trace_mark_victim, struct task_struct *victim)
{
	struct event *event;
	struct mm_struct *mm;
	struct cgroup *memcg;
	struct kernfs_node *kn;
	int memory_id = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);

	if (gadget_should_discard_mntns_id(BPF_CORE_READ(victim, nsproxy, mnt_ns, ns.inum)))
		return 0;
	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		return 0;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate_from_task(victim, &event->proc);
	/* --pid, --uid, --gid and --comm select victims, like the container filter. */
	if ((targ_pid && event->proc.pid != targ_pid) ||
	    (targ_uid != GADGET_INVALID_ID && event->proc.creds.uid != targ_uid) ||
	    (targ_gid != GADGET_INVALID_ID && event->proc.creds.gid != targ_gid) ||
	    !gadget_comm_matches(event->proc.comm)) {
		gadget_discard_buf(event);
		return 0;
	}
	event->trigger_pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(event->trigger_comm, sizeof(event->trigger_comm));
	event->oom_score_adj = BPF_CORE_READ(victim, signal, oom_score_adj);

	mm = BPF_CORE_READ(victim, mm);
	event->anon_pages = mm ? mm_counter(mm, MM_ANONPAGES) : 0;
	event->file_pages = mm ? mm_counter(mm, MM_FILEPAGES) : 0;
	event->shmem_pages = mm ? mm_counter(mm, MM_SHMEMPAGES) : 0;
	event->pages = event->anon_pages + event->file_pages + event->shmem_pages;
	event->total_vm_pages = mm ? BPF_CORE_READ(mm, total_vm) : 0;

	memcg = BPF_CORE_READ(victim, cgroups, subsys[memory_id & 63], cgroup);
	kn = memcg ? BPF_CORE_READ(memcg, kn) : NULL;
	event->memcg_id = kn ? BPF_CORE_READ(kn, id) : 0;
	event->memcg[0] = '\0';
	if (kn)
		bpf_probe_read_kernel_str(event->memcg, sizeof(event->memcg), BPF_CORE_READ(kn, name));
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
