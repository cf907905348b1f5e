/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Semantic typedefs. The typedef a record member is declared with travels to userspace in BTF
 * and tells the runner and the client what the value means (a mount namespace to enrich, a
 * boot-time timestamp to turn into wall-clock time, an errno to name). Declare members with
 * these types, not with the bare integer types, or the meaning is lost.
 */
#ifndef __GADGET_TYPES_H
#define __GADGET_TYPES_H

/* Kernel types from vmlinux.h, unless the program already has them (vmlinux.h, or the UAPI
 * headers <linux/bpf.h>, <linux/types.h> of a socket filter: both at once would clash). */
#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#include <vmlinux.h>
#endif

#define GADGET_TASK_COMM_LEN 16
#define GADGET_PATH_MAX 4096

typedef __u64 gadget_mntns_id;
typedef __u32 gadget_netns_id;
typedef __u64 gadget_timestamp; /* nanoseconds since boot, bpf_ktime_get_boot_ns() */

typedef __u32 gadget_pid;
typedef __u32 gadget_ppid;
typedef __u32 gadget_tid;
typedef __u32 gadget_uid;
typedef __u32 gadget_gid;
typedef char gadget_comm;
typedef char gadget_pcomm;

typedef __u32 gadget_errno;
typedef __u32 gadget_signal;
typedef __u64 gadget_syscall;
typedef __u64 gadget_bytes;
typedef __u64 gadget_duration;
typedef __u32 gadget_file_mode;
typedef __u32 gadget_file_flags;
typedef __u32 gadget_kernel_stack; /* a stack id in the ig_kstack map (kernel_stack_map.h) */

/* Typed numbers: how a value of an array datasource adds up. An array of histogram slots is a
 * log2 histogram: slot i counts values v with 2^i <= v < 2^(i+1); slot 0 also counts 0. */
typedef __u32 gadget_counter__u32;
typedef __u64 gadget_counter__u64;
typedef __u32 gadget_gauge__u32;
typedef __u64 gadget_gauge__u64;
typedef __u32 gadget_histogram_slot__u32;
typedef __u64 gadget_histogram_slot__u64;

/* A user stack (user_stack_map.h): stack_id indexes the ig_ustack map; the pids say whose
 * address space the addresses belong to (level 0: the initial pid namespace). */
struct gadget_user_stack {
	__u64 exe_inode;
	__u64 mtime_sec;
	__u32 mtime_nsec;
	__u32 stack_id;
	__u32 pid_level0;
	__u32 pidns_level0;
	__u32 pid_level1;
	__u32 pidns_level1;
};

enum gadget_l3_proto { GADGET_L3_IPV4 = 4, GADGET_L3_IPV6 = 6 };

/*
 * Network endpoints, laid out byte for byte as Inspektor Gadget's: the 128-bit member makes
 * the address union 16-byte aligned, so both endpoint structs are 32 bytes. An IPv4 address
 * sits in the first 4 bytes (network order), an IPv6 address fills all 16. The port is in
 * host byte order; proto_raw is the IP protocol number (IPPROTO_TCP, ...).
 */
union gadget_ip_addr_t {
	__u8 v6[16];
	unsigned __int128 v6_raw;
	__u32 v4;
};

struct gadget_l3endpoint_t {
	union gadget_ip_addr_t addr_raw;
	__u8 version; /* 4 or 6 */
};

struct gadget_l4endpoint_t {
	union gadget_ip_addr_t addr_raw;
	__u16 port;
	__u16 proto_raw;
	__u8 version; /* 4 or 6 */
};

struct gadget_creds {
	gadget_uid uid;
	gadget_gid gid;
};

struct gadget_parent {
	gadget_pcomm comm[GADGET_TASK_COMM_LEN];
	gadget_pid pid;
	gadget_tid tid;
};

struct gadget_process {
	gadget_comm comm[GADGET_TASK_COMM_LEN];
	gadget_pid pid;
	gadget_tid tid;
	gadget_mntns_id mntns_id;
	struct gadget_creds creds;
	struct gadget_parent parent;
};

#endif /* __GADGET_TYPES_H */
