// SPDX-License-Identifier: GPL-2.0
/*
 * top_process: CPU time and memory per process, per interval. Every context switch
 * (sched:sched_switch, which runs in the task leaving the CPU) charges the time since the
 * previous switch on that CPU to the leaving task's process; the runner reads and empties the
 * map every interval (GADGET_MAPITER), so each row is one interval's CPU time. Memory and the
 * thread count are gauges, refreshed at each switch of the process. Idle time (pid 0) and
 * processes of containers the run does not target are not charged.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define MAX_PROCESSES 10240

/* Before Linux 6.2 the mm counters were atomics in struct mm_rss_stat, not percpu_counters. */
struct mm_rss_stat___pre62 {
	atomic_long_t count[4];
};

struct mm_struct___pre62 {
	struct mm_rss_stat___pre62 rss_stat;
};

struct top_key {
	__u32 __tgid;
};

struct top_value {
	struct gadget_process proc;
	gadget_counter__u64 cpu_time;
	gadget_counter__u64 switches;
	gadget_gauge__u64 rss_pages;
	gadget_gauge__u64 vm_pages;
	gadget_gauge__u32 threads;
	__u32 __pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROCESSES);
	__type(key, struct top_key);
	__type(value, struct top_value);
} processes SEC(".maps");

/* When the last switch happened on each CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} last_switch SEC(".maps");

GADGET_MAPITER(processes, processes);

static __always_inline __u64 mm_counter(struct mm_struct *mm, int member)
{
	long count;

	if (bpf_core_type_exists(struct mm_rss_stat___pre62))
		count = BPF_CORE_READ((struct mm_struct___pre62 *)mm, rss_stat.count[member].counter);
	else
		count = BPF_CORE_READ(mm, rss_stat[member].count);
	return count > 0 ? count : 0;
}

/* Charge the time since the last switch on this CPU to the current task's process. */
static __always_inline int charge_current(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct top_value *value, zero_value = {};
	struct top_key key = {};
	struct mm_struct *mm;
	__u64 now = bpf_ktime_get_ns(), *last, delta;
	__u32 zero = 0;

	last = bpf_map_lookup_elem(&last_switch, &zero);
	if (!last)
		return 0;
	delta = *last ? now - *last : 0;
	*last = now;
	key.__tgid = BPF_CORE_READ(task, tgid);
	if (!delta || !key.__tgid)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;

	value = bpf_map_lookup_elem(&processes, &key);
	if (!value) {
		gadget_process_populate(&zero_value.proc);
		bpf_map_update_elem(&processes, &key, &zero_value, BPF_NOEXIST);
		value = bpf_map_lookup_elem(&processes, &key);
		if (!value)
			return 0;
	}
	__sync_fetch_and_add(&value->cpu_time, delta);
	__sync_fetch_and_add(&value->switches, 1);
	mm = BPF_CORE_READ(task, mm);
	if (mm) {
		value->rss_pages = mm_counter(mm, MM_ANONPAGES) + mm_counter(mm, MM_FILEPAGES) +
				   mm_counter(mm, MM_SHMEMPAGES);
		value->vm_pages = BPF_CORE_READ(mm, total_vm);
	}
	value->threads = BPF_CORE_READ(task, signal, nr_threads);
	return 0;
}

SEC("tracepoint/sched/sched_switch")
int trace_sched_switch(struct trace_event_raw_sched_switch *ctx)
{
	return charge_current();
}

/*
 * A task's last switch comes after it has left its namespaces, when its container can no
 * longer be told, so the time it ran since its previous switch is charged here, at exit, while
 * its mount namespace is still known. Without this, a CPU-bound process that is rarely
 * switched out (an idle machine) would lose most of its CPU time.
 */
SEC("tracepoint/sched/sched_process_exit")
int trace_sched_process_exit(void *ctx)
{
	return charge_current();
}

char LICENSE[] SEC("license") = "GPL";
