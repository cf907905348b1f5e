// SPDX-License-Identifier: GPL-2.0
/*
 * trace_bind: one record per bind(2) of an IPv4 or IPv6 socket, emitted at syscall exit so the
 * record carries the result. The requested address is copied from the caller's sockaddr at
 * entry (the pointer is only meaningful while the call is in flight); the socket itself
 * (protocol, options set before the call, bound device, network namespace) is found at exit
 * from the fd, through the task's file table, after checking the file is a socket.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/files.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define AF_INET 2
#define AF_INET6 10
#define EBADF 9
#define ENOTSOCK 88
#define MAX_IN_FLIGHT 10240

/* Socket options that change what bind() does; a bit set, printed as names joined by '|'. */
enum bind_opts_set {
	REUSEADDR = 1,
	REUSEPORT = 2,
	FREEBIND = 4,
	TRANSPARENT = 8,
	BIND_ADDRESS_NO_PORT = 16,
};

struct args_t {
	__u8 addr[16];
	__u32 fd;
	__u16 port;
	__u16 family;
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	struct gadget_l4endpoint_t addr;
	gadget_netns_id netns_id;
	__u32 bound_dev_if;
	enum bind_opts_set opts_raw;
	gadget_errno error_raw;
};

const volatile bool targ_ignore_errors = false;
GADGET_PARAM(targ_ignore_errors);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_IN_FLIGHT);
	__type(key, __u32);
	__type(value, struct args_t);
} start SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(bind, events, event);

SEC("tracepoint/syscalls/sys_enter_bind")
int trace_enter_bind(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	void *uaddr = (void *)ctx->args[1];
	__u64 len = ctx->args[2];
	struct args_t args = {};

	if (gadget_should_discard_data_current())
		return 0;
	if (bpf_probe_read_user(&args.family, sizeof(args.family), uaddr))
		return 0;
	if (args.family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in sin = {};

		bpf_probe_read_user(&sin, sizeof(sin), uaddr);
		args.port = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(args.addr, &sin.sin_addr.s_addr, 4);
	} else if (args.family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 sin6 = {};

		bpf_probe_read_user(&sin6, sizeof(sin6), uaddr);
		args.port = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(args.addr, &sin6.sin6_addr, 16);
	} else {
		return 0; /* not an internet socket address (or too short: the call fails) */
	}
	args.fd = (__u32)ctx->args[0];
	bpf_map_update_elem(&start, &tid, &args, BPF_ANY);
	return 0;
}

/* The socket behind `fd` of the current task, or NULL when the fd is not a socket. */
static __always_inline struct sock *sock_of_fd(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file *file = gadget_task_fd_file(task, fd);
	struct socket *sock;

	if (!file || gadget_file_type(file) != SOCKET)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

static __always_inline __u32 bind_opts(struct sock *sk)
{
	struct inet_sock *inet = (struct inet_sock *)sk;
	__u32 opts = 0;

	if (BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_reuse))
		opts |= REUSEADDR;
	if (BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_reuseport))
		opts |= REUSEPORT;
	if (bpf_core_field_exists(inet->inet_flags)) {
		unsigned long flags = BPF_CORE_READ(inet, inet_flags);

		if (flags & (1UL << INET_FLAGS_FREEBIND))
			opts |= FREEBIND;
		if (flags & (1UL << INET_FLAGS_TRANSPARENT))
			opts |= TRANSPARENT;
		if (flags & (1UL << INET_FLAGS_BIND_ADDRESS_NO_PORT))
			opts |= BIND_ADDRESS_NO_PORT;
	}
	return opts;
}

SEC("tracepoint/syscalls/sys_exit_bind")
int trace_exit_bind(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct args_t *args;
	struct event *event;
	struct sock *sk;
	long ret = ctx->ret;

	args = bpf_map_lookup_elem(&start, &tid);
	if (!args)
		return 0;
	if (ret == -EBADF || ret == -ENOTSOCK || (targ_ignore_errors && ret < 0))
		goto cleanup;

	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		goto cleanup;
	__builtin_memset(event, 0, sizeof(*event));
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	__builtin_memcpy(event->addr.addr_raw.v6, args->addr, 16);
	event->addr.port = args->port;
	event->addr.version = args->family == AF_INET ? 4 : 6;
	event->error_raw = ret < 0 ? (__u32)-ret : 0;
	sk = sock_of_fd(args->fd);
	if (sk) {
		event->addr.proto_raw = BPF_CORE_READ(sk, sk_protocol);
		event->netns_id = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
		event->bound_dev_if = BPF_CORE_READ(sk, __sk_common.skc_bound_dev_if);
		event->opts_raw = bind_opts(sk);
	}
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
