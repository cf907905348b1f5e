// SPDX-License-Identifier: GPL-2.0
/*
 * trace_capabilities: capability checks, from the capability:cap_capable tracepoint, which the
 * kernel's commoncap module fires at the end of every check with the verdict. It runs in the
 * task being checked, so the record has that process, the capability by name, whether the task
 * has it, the user namespaces involved, and the system call the task was in when it needed the
 * capability (read from the task's saved user registers, so no extra hook on every syscall).
 *
 * Checks made with credentials other than the task's own (`override_creds()`, as overlayfs
 * does for copy-ups) are skipped: they say nothing about what the process asked for. The
 * tracepoint does not carry the caller's "no audit" option, so unlike kprobe-based tracers
 * this one cannot tell audited checks from silent ones.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define PF_KTHREAD 0x00200000
#define NO_SYSCALL ((gadget_syscall)-1)
#define MAX_UNIQUE 10240

/* include/uapi/linux/capability.h, named so that the enum formatter prints CAP_* names. */
enum capability {
	CAP_CHOWN = 0,
	CAP_DAC_OVERRIDE = 1,
	CAP_DAC_READ_SEARCH = 2,
	CAP_FOWNER = 3,
	CAP_FSETID = 4,
	CAP_KILL = 5,
	CAP_SETGID = 6,
	CAP_SETUID = 7,
	CAP_SETPCAP = 8,
	CAP_LINUX_IMMUTABLE = 9,
	CAP_NET_BIND_SERVICE = 10,
	CAP_NET_BROADCAST = 11,
	CAP_NET_ADMIN = 12,
	CAP_NET_RAW = 13,
	CAP_IPC_LOCK = 14,
	CAP_IPC_OWNER = 15,
	CAP_SYS_MODULE = 16,
	CAP_SYS_RAWIO = 17,
	CAP_SYS_CHROOT = 18,
	CAP_SYS_PTRACE = 19,
	CAP_SYS_PACCT = 20,
	CAP_SYS_ADMIN = 21,
	CAP_SYS_BOOT = 22,
	CAP_SYS_NICE = 23,
	CAP_SYS_RESOURCE = 24,
	CAP_SYS_TIME = 25,
	CAP_SYS_TTY_CONFIG = 26,
	CAP_MKNOD = 27,
	CAP_LEASE = 28,
	CAP_AUDIT_WRITE = 29,
	CAP_AUDIT_CONTROL = 30,
	CAP_SETFCAP = 31,
	CAP_MAC_OVERRIDE = 32,
	CAP_MAC_ADMIN = 33,
	CAP_SYSLOG = 34,
	CAP_WAKE_ALARM = 35,
	CAP_BLOCK_SUSPEND = 36,
	CAP_AUDIT_READ = 37,
	CAP_PERFMON = 38,
	CAP_BPF = 39,
	CAP_CHECKPOINT_RESTORE = 40,
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	enum capability cap_raw;
	bool capable;
	__u8 __pad[3];
	gadget_syscall syscall_raw;
	__u32 current_userns;
	__u32 target_userns;
	__u32 capable_userns;
};

struct unique_key {
	gadget_mntns_id mntns_id;
	__u32 cap;
	__u32 capable;
};

const volatile bool targ_unique = false;
const volatile bool targ_failed = false;

GADGET_PARAM(targ_unique);
GADGET_PARAM(targ_failed);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_UNIQUE);
	__type(key, struct unique_key);
	__type(value, __u8);
} seen SEC(".maps");

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(capabilities, events, event);

static __always_inline gadget_syscall current_syscall(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs;

	if (task->flags & PF_KTHREAD)
		return NO_SYSCALL;
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs)
		return NO_SYSCALL;
#if defined(__TARGET_ARCH_x86)
	return (gadget_syscall)BPF_CORE_READ(regs, orig_ax);
#elif defined(__TARGET_ARCH_arm64)
	return (gadget_syscall)BPF_CORE_READ(regs, syscallno);
#else
	return NO_SYSCALL;
#endif
}

SEC("tracepoint/capability/cap_capable")
int trace_cap_capable(struct trace_event_raw_cap_capable *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	const struct cred *cred = ctx->cred;
	struct event *event;
	__u8 one = 1;
	bool capable = ctx->ret == 0;

	if (targ_failed && capable)
		return 0;
	if (cred != BPF_CORE_READ(task, real_cred))
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	if (targ_unique) {
		struct unique_key key = {
			.mntns_id = gadget_get_current_mntns_id(),
			.cap = ctx->cap,
			.capable = capable,
		};

		if (bpf_map_lookup_elem(&seen, &key))
			return 0;
		bpf_map_update_elem(&seen, &key, &one, BPF_ANY);
	}

	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		return 0;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->cap_raw = ctx->cap;
	event->capable = capable;
	event->syscall_raw = current_syscall();
	event->current_userns = BPF_CORE_READ(cred, user_ns, ns.inum);
	event->target_userns = BPF_CORE_READ(ctx->target_ns, ns.inum);
	event->capable_userns = BPF_CORE_READ(ctx->capable_ns, ns.inum);
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
