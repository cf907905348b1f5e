// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "netabi": on getppid(2) of the process selected with --pid it emits two records
 * with known values, to check the parts of IG's ABI that need more than plain integers:
 *  - datasource "net" (struct netabi_event): an IPv4 and an IPv6 L4 endpoint, an L3 endpoint,
 *    128-bit integers, an enum and a bit-set enum as X_raw, an enum without _raw, a syscall,
 *    uid/gid and signal numbers, and a param whose gadget.yaml default is "" (the value
 *    compiled into .rodata, 77, must reach the record);
 *  - datasource "short" (struct netabi_short): submitted with bpf_ringbuf_output() with only
 *    its first 8 bytes, so the runner must zero-pad it, not drop it.
 * Keep the values in sync with tests/kernel/test_netabi.py.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include <gadget/buffer.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

enum netabi_state {
	NETABI_IDLE = 0,
	NETABI_OPEN = 3,
	NETABI_CLOSED = 9,
};

enum netabi_perm_set {
	NETABI_READ = 1,
	NETABI_WRITE = 2,
	NETABI_EXEC = 4,
};

struct netabi_event {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	struct gadget_l3endpoint_t peer;
	unsigned __int128 big;
	__int128 neg;
	enum netabi_state state_raw;
	enum netabi_perm_set perms_raw;
	enum netabi_state plain;
	gadget_syscall syscall_raw;
	gadget_uid user_raw;
	gadget_gid group_raw;
	gadget_signal sig_raw;
	__u32 marker;
};

struct netabi_short {
	__u32 a;
	__u32 b;
	char name[16];
	__u64 tail;
};

const volatile __u32 marker = 77;
GADGET_PARAM(marker);

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(net, events, netabi_event);
GADGET_TRACER_MAP(shorts, 64 * 1024);
GADGET_TRACER(short, shorts, netabi_short);

static __always_inline void fill_v6(__u8 *a, __u8 first, __u8 last)
{
	__builtin_memset(a, 0, 16);
	a[0] = first;
	a[1] = first == 0xfe ? 0x80 : 0;
	a[15] = last;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int netabi_getppid(struct trace_event_raw_sys_enter *ctx)
{
	struct netabi_short s = {};
	struct netabi_event *e;

	if (gadget_should_discard_data_current())
		return 0;
	e = gadget_reserve_buf(events, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->mntns_id = gadget_get_current_mntns_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	/* 127.0.0.1:4242/TCP: the address in network order, the port in host order */
	e->src.addr_raw.v4 = bpf_htonl(0x7f000001);
	e->src.port = 4242;
	e->src.proto_raw = 6;
	e->src.version = 4;
	/* [::1]:443/UDP */
	fill_v6(e->dst.addr_raw.v6, 0, 1);
	e->dst.port = 443;
	e->dst.proto_raw = 17;
	e->dst.version = 6;
	/* fe80::2a */
	fill_v6(e->peer.addr_raw.v6, 0xfe, 0x2a);
	e->peer.version = 6;
	e->big = ((unsigned __int128)0x0123456789abcdefULL << 64) | 0xfedcba9876543210ULL;
	e->neg = -((__int128)1 << 100);
	e->state_raw = NETABI_CLOSED;
	e->perms_raw = NETABI_READ | NETABI_EXEC;
	e->plain = NETABI_OPEN;
	e->syscall_raw = 39; /* x86_64 getpid; arm64 umount2 */
	e->user_raw = 0;
	e->group_raw = 0;
	e->sig_raw = 9;
	e->marker = marker;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));

	s.a = 11;
	s.b = 22;
	s.name[0] = 'x';
	s.tail = 0x1122334455667788ULL;
	/* only a and b: the runner zero-pads the rest */
	bpf_ringbuf_output(&shorts, &s, 8, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
