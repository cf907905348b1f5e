// SPDX-License-Identifier: GPL-2.0
/*
 * traceloop: the system calls of the target containers, one record per call, in the manner of
 * strace: the call, its arguments, its result and how long it took.
 *
 * The raw tracepoint sys_enter keeps the call's arguments per thread (and the strings its
 * string arguments point to, read while the caller's memory is certain to hold them); sys_exit
 * makes the record (raw tracepoints: gadget/syscall_regs.h says why). exit and exit_group
 * never return: their record is made at entry.
 *
 * A container can make hundreds of thousands of calls a second. Each container (mount
 * namespace) has a token bucket of --max-rate records per second (a second's worth of burst);
 * calls over it are not recorded but counted, and the count travels on the container's next
 * record (`skipped`), so a gap in the stream is never silent. The bucket's updates are not
 * atomic across CPUs: the rate is approximate, the count of skipped calls exact enough to see.
 *
 * `parameters` is made in the kernel with bpf_snprintf, as strace shows a call: as many
 * arguments as the call has, each printed after its C type (syscall_args.h, generated from the
 * kernel's syscall tracepoint formats): numbers in decimal (an int sign-extended, so AT_FDCWD
 * is -100), addresses in hex, strings (paths, names) quoted. A call the table does not know
 * shows its six argument registers in decimal, up to the last non-zero one.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/syscall_regs.h>
#include <gadget/types.h>

#include "syscall_args.h"

#define ARGS_KNOWN 0x8000
#define ARG_LONG 0
#define ARG_INT 1
#define ARG_ADDRESS 2
#define ARG_STRING 3

#define STR_LEN 256 /* first bytes of a string argument; two per call at most */
#define PARAMS_LEN 512
#define PIECE 256 /* a piece of `parameters` is written at an offset below this, within this */
#define NSEC_PER_SEC 1000000000ULL

#if defined(__TARGET_ARCH_x86)
#define NR_EXIT 60
#define NR_EXIT_GROUP 231
#elif defined(__TARGET_ARCH_arm64)
#define NR_EXIT 93
#define NR_EXIT_GROUP 94
#else
#error "traceloop: syscall numbers of this architecture are not known"
#endif

struct event {
	gadget_timestamp timestamp_raw;
	gadget_mntns_id mntns_id;
	__u32 cpu;
	gadget_pid pid;
	gadget_tid tid;
	gadget_comm comm[GADGET_TASK_COMM_LEN];
	gadget_syscall syscall_raw;
	char parameters[PARAMS_LEN];
	__s64 ret;
	gadget_errno error_raw;
	bool returned;
	__u8 __pad[3];
	gadget_duration duration;
	__u64 skipped;
	__u64 args[6];
};

struct pending_call {
	__u64 start;
	__u64 args[6];
	__s64 nr;
	__u16 info; /* the call's word in syscall_args.h */
	__u8 read;  /* bit i: argument i is a string read into str[] */
	__u8 cut;   /* bit i: that string is longer than STR_LEN - 1 */
	char str[2][STR_LEN];
};

struct rate_bucket {
	__u64 last;
	__u64 tokens; /* in nanoseconds of rate: one record costs NSEC_PER_SEC */
	__u64 skipped;
};

const volatile __u32 targ_max_rate = 1000;
GADGET_PARAM(targ_max_rate);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct pending_call);
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pending_call);
} call_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, gadget_mntns_id);
	__type(value, struct rate_bucket);
} buckets SEC(".maps");

GADGET_TRACER_MAP(events, 4 * 1024 * 1024);
GADGET_TRACER(traceloop, events, event);

/* Read the (first two) string arguments of the call while the caller's memory holds them. */
static __always_inline void read_strings(struct pending_call *call)
{
	long len;
	int n = 0;

	if (!(call->info & ARGS_KNOWN))
		return;
#pragma unroll
	for (int i = 0; i < 6; i++) {
		if (((call->info >> (2 * i)) & 3) != ARG_STRING || n >= 2)
			continue;
		len = bpf_probe_read_user_str(call->str[n & 1], STR_LEN, (const void *)call->args[i]);
		if (len < 0)
			continue;
		call->read |= 1 << i;
		if (len == STR_LEN)
			call->cut |= 1 << i;
		n++;
	}
}

/* True when the container's bucket has a token for one more record; *skipped gets the calls
 * not recorded since its previous record. */
static __always_inline bool take_token(gadget_mntns_id mntns_id, __u64 now, __u64 *skipped)
{
	__u64 full = (__u64)targ_max_rate * NSEC_PER_SEC, elapsed;
	struct rate_bucket *b, fresh = {.last = now, .tokens = full};

	*skipped = 0;
	if (!targ_max_rate)
		return true;
	b = bpf_map_lookup_elem(&buckets, &mntns_id);
	if (!b) {
		bpf_map_update_elem(&buckets, &mntns_id, &fresh, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&buckets, &mntns_id);
		if (!b)
			return true;
	}
	elapsed = now > b->last ? now - b->last : 0;
	if (elapsed > NSEC_PER_SEC)
		elapsed = NSEC_PER_SEC;
	b->last = now;
	b->tokens += elapsed * targ_max_rate;
	if (b->tokens > full)
		b->tokens = full;
	if (b->tokens < NSEC_PER_SEC) {
		__sync_fetch_and_add(&b->skipped, 1);
		return false;
	}
	b->tokens -= NSEC_PER_SEC;
	*skipped = __sync_lock_test_and_set(&b->skipped, 0);
	return true;
}

/* off & (PIECE - 1), masked in the program: the compiler drops a mask it can prove useless
 * (off < PIECE is checked before), and the verifier, which knows less, then refuses. */
static __always_inline __u32 piece_pos(__u32 off)
{
	asm volatile("" : "+r"(off));
	return off & (PIECE - 1);
}

/* Append argument `i` of `call` at *off, ", " first unless it is the first. */
static __always_inline void put_arg(struct event *event, __u32 *off, struct pending_call *call,
				    int i, int *strings)
{
	int kind = call->info & ARGS_KNOWN ? (call->info >> (2 * i)) & 3 : ARG_LONG;
	__u64 value = call->args[i], data[1];
	__u32 at = *off;
	const char *fmt;
	long n;

	if (at >= PIECE)
		return;
	if (call->read & (1 << i)) {
		data[0] = (__u64)call->str[*strings & 1];
		(*strings)++;
		if (call->cut & (1 << i))
			fmt = i ? ", \"%s\"..." : "\"%s\"...";
		else
			fmt = i ? ", \"%s\"" : "\"%s\"";
	} else if ((kind == ARG_ADDRESS || kind == ARG_STRING) && value) {
		data[0] = value;
		fmt = i ? ", 0x%lx" : "0x%lx";
	} else {
		data[0] = kind == ARG_INT ? (__u64)(__s64)(__s32)value : value;
		fmt = i ? ", %ld" : "%ld";
	}
	n = bpf_snprintf(&event->parameters[piece_pos(at)], PIECE, fmt, data, sizeof(data));
	if (n > 0)
		*off = at + n - 1;
}

static __always_inline void format_parameters(struct event *event, struct pending_call *call)
{
	int shown = 0, strings = 0;
	__u32 off = 0;

	event->parameters[0] = '\0';
	if (call->info & ARGS_KNOWN) {
		shown = (call->info >> 12) & 7;
	} else {
#pragma unroll
		for (int i = 0; i < 6; i++)
			if (call->args[i])
				shown = i + 1;
	}
#pragma unroll
	for (int i = 0; i < 6; i++)
		if (i < shown)
			put_arg(event, &off, call, i, &strings);
}

static __always_inline void emit(void *ctx, struct pending_call *call, bool returned, __s64 ret)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	gadget_mntns_id mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_boot_ns(), skipped;
	struct event *event;

	if (!take_token(mntns_id, now, &skipped))
		return;
	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		return;
	event->timestamp_raw = call->start;
	event->mntns_id = mntns_id;
	event->cpu = bpf_get_smp_processor_id();
	event->pid = pid_tgid >> 32;
	event->tid = (__u32)pid_tgid;
	bpf_get_current_comm(event->comm, sizeof(event->comm));
	event->syscall_raw = call->nr;
	event->ret = returned ? ret : 0;
	event->error_raw = returned && ret < 0 && ret >= -4095 ? -ret : 0;
	event->returned = returned;
	event->duration = returned ? now - call->start : 0;
	event->skipped = skipped;
	__builtin_memcpy(event->args, call->args, sizeof(event->args));
	format_parameters(event, call);
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
}

SEC("raw_tp/sys_enter")
int traceloop_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending_call *call;
	__u32 zero = 0;
	long nr = ctx->args[1];

	if (nr < 0 || gadget_should_discard_data_current())
		return 0;
	call = bpf_map_lookup_elem(&call_scratch, &zero);
	if (!call)
		return 0;
	call->start = bpf_ktime_get_boot_ns();
	call->nr = nr;
	gadget_syscall_args(gadget_syscall_regs(ctx), call->args);
	call->info = nr < SYSCALL_ARGS_ENTRIES ? syscall_args[nr] : 0;
	call->read = call->cut = 0;
	read_strings(call);
	if (nr == NR_EXIT || nr == NR_EXIT_GROUP) {
		emit(ctx, call, false, 0);
		return 0;
	}
	bpf_map_update_elem(&calls, &tid, call, BPF_ANY);
	return 0;
}

SEC("raw_tp/sys_exit")
int traceloop_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending_call *call = bpf_map_lookup_elem(&calls, &tid);

	if (!call)
		return 0;
	emit(ctx, call, true, ctx->args[1]);
	bpf_map_delete_elem(&calls, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
