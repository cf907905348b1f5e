// SPDX-License-Identifier: GPL-2.0
/*
 * The runner's socket enricher: fills gadget_sockets (see <gadget/sockets-map.h>) with the
 * process that owns each TCP and UDP socket, with no kprobe.
 *
 * - cgroup socket hooks on the cgroup v2 root (every socket of the host is below it):
 *   sock_create remembers the creating process by socket cookie; connect4/6 and sendmsg4/6
 *   refresh it with the process using the socket; post_bind4/6 and sendmsg4/6 (the port is
 *   known there) publish the socket; cgroup_skb egress publishes sockets whose port was chosen
 *   by the kernel (a connect) on their first packet, with the owner remembered earlier;
 *   sock_release stamps the entry's deletion time (the runner removes it a little later, so
 *   a gadget still finds the owner of a socket that has just been closed).
 * - iter/task_file, run once at start, publishes the sockets that already exist.
 * Every cgroup program allows the operation (returns 1): the enricher only watches.
 *
 * A published entry also holds the owner's working directory and executable path, read when
 * it is published from the owning task (gadget/filesystem.h: a dentry walk up to the task's
 * root, with bpf_probe_read_kernel and bpf_loop; cgroup programs may not call bpf_d_path).
 * That task is the current one in the hooks and the iterator's in the scan; on the first
 * packet of a connect (cgroup_skb egress) it is the current task only when that is the
 * owner's process (it is, for a connect or a send made by the process itself), else both
 * stay empty. Paths are at most 4096 bytes (as the map's fields), 32 components deep.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include <gadget/sockets-map.h>
#define GADGET_PATH_BUF SE_PATH_MAX
#include <gadget/filesystem.h>

struct owner {
	__u64 mntns;
	__u64 pid_tgid;
	__u64 uid_gid;
	char task[SE_TASK_COMM_LEN];
	char ptask[SE_TASK_COMM_LEN];
	__u32 ppid;
	__u32 netns;
	struct sockets_key key; /* published under this key when key.port != 0 */
	__u8 ipv6only;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GADGET_SOCKETS_MAX);
	__type(key, __u64); /* socket cookie */
	__type(value, struct owner);
} enricher_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sockets_value);
} enricher_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gadget_path_scratch);
} enricher_paths SEC(".maps");

static __always_inline void owner_from_task(struct owner *o, struct task_struct *task)
{
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);

	o->mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	o->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	o->pid_tgid = ((__u64)BPF_CORE_READ(task, tgid) << 32) | BPF_CORE_READ(task, pid);
	o->uid_gid = ((__u64)BPF_CORE_READ(task, cred, gid.val) << 32) |
		     BPF_CORE_READ(task, cred, uid.val);
	BPF_CORE_READ_STR_INTO(&o->task, task, comm);
	BPF_CORE_READ_STR_INTO(&o->ptask, parent, comm);
	o->ppid = BPF_CORE_READ(parent, tgid);
}

/* The working directory and executable of `task` (NULL: unknown) into the value. */
static __always_inline void fill_paths(struct sockets_value *v, struct task_struct *task)
{
	struct gadget_path_scratch *names;
	struct fs_struct *fs;
	struct file *exe;
	__u32 zero = 0;

	v->cwd[0] = '\0';
	v->exepath[0] = '\0';
	names = bpf_map_lookup_elem(&enricher_paths, &zero);
	if (!task || !names)
		return;
	fs = BPF_CORE_READ(task, fs);
	if (!fs)
		return;
	gadget_path_str(&fs->pwd, &fs->root, (char *)v->cwd, names);
	exe = BPF_CORE_READ(task, mm, exe_file);
	if (exe)
		gadget_path_str(&exe->f_path, &fs->root, (char *)v->exepath, names);
}

static __always_inline void publish(struct owner *o, __u64 cookie, struct task_struct *task)
{
	__u32 zero = 0;
	struct sockets_value *v = bpf_map_lookup_elem(&enricher_scratch, &zero);

	if (!v || !o->key.port)
		return;
	fill_paths(v, task);
	v->mntns = o->mntns;
	v->pid_tgid = o->pid_tgid;
	v->uid_gid = o->uid_gid;
	__builtin_memcpy(v->task, o->task, SE_TASK_COMM_LEN);
	__builtin_memcpy(v->ptask, o->ptask, SE_TASK_COMM_LEN);
	v->sock = cookie;
	v->deletion_timestamp = 0;
	v->ppid = o->ppid;
	v->ipv6only = o->ipv6only;
	bpf_map_update_elem(&gadget_sockets, &o->key, v, BPF_ANY);
}

static __always_inline bool tracked(__u32 family, __u32 protocol)
{
	return (family == SE_AF_INET || family == SE_AF_INET6) &&
	       (protocol == SE_IPPROTO_TCP || protocol == SE_IPPROTO_UDP);
}

/* The owner record of a socket, created from the current process when missing. */
static __always_inline struct owner *current_owner(__u64 cookie, __u32 family, __u32 protocol)
{
	struct owner fresh, *o;

	o = bpf_map_lookup_elem(&enricher_owners, &cookie);
	if (o && o->pid_tgid == bpf_get_current_pid_tgid())
		return o; /* the same thread again: nothing to refresh (the common case) */
	__builtin_memset(&fresh, 0, sizeof(fresh));
	owner_from_task(&fresh, (struct task_struct *)bpf_get_current_task());
	if (o) {
		/* The process using the socket now owns it; keep the socket's own facts. */
		fresh.netns = o->netns;
		fresh.key = o->key;
		fresh.ipv6only = o->ipv6only;
	} else {
		fresh.key.netns = fresh.netns;
		fresh.key.family = family;
		fresh.key.proto = protocol;
	}
	bpf_map_update_elem(&enricher_owners, &cookie, &fresh, BPF_ANY);
	return bpf_map_lookup_elem(&enricher_owners, &cookie);
}

SEC("cgroup/sock_create")
int kg_sock_create(struct bpf_sock *sk)
{
	if (tracked(sk->family, sk->protocol))
		current_owner(bpf_get_socket_cookie(sk), sk->family, sk->protocol);
	return 1;
}

static __always_inline int on_bind(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct owner *o;

	if (!tracked(sk->family, sk->protocol))
		return 1;
	o = current_owner(cookie, sk->family, sk->protocol);
	if (o) {
		o->key.port = sk->src_port;
		/* The context is the kernel's struct sock: read its IPV6_V6ONLY bit. */
		if (sk->family == SE_AF_INET6)
			o->ipv6only = BPF_CORE_READ_BITFIELD_PROBED((struct sock *)sk,
								    __sk_common.skc_ipv6only);
		publish(o, cookie, (struct task_struct *)bpf_get_current_task());
	}
	return 1;
}

SEC("cgroup/post_bind4")
int kg_post_bind4(struct bpf_sock *sk)
{
	return on_bind(sk);
}

SEC("cgroup/post_bind6")
int kg_post_bind6(struct bpf_sock *sk)
{
	return on_bind(sk);
}

static __always_inline int on_use(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	__u64 cookie;
	struct owner *o;

	if (!sk || !tracked(sk->family, sk->protocol))
		return 1;
	cookie = bpf_get_socket_cookie(ctx);
	o = current_owner(cookie, sk->family, sk->protocol);
	if (o && sk->src_port && sk->src_port != o->key.port) {
		o->key.port = sk->src_port;
		publish(o, cookie, (struct task_struct *)bpf_get_current_task());
	}
	return 1;
}

SEC("cgroup/connect4")
int kg_connect4(struct bpf_sock_addr *ctx)
{
	return on_use(ctx);
}

SEC("cgroup/connect6")
int kg_connect6(struct bpf_sock_addr *ctx)
{
	return on_use(ctx);
}

SEC("cgroup/sendmsg4")
int kg_sendmsg4(struct bpf_sock_addr *ctx)
{
	return on_use(ctx);
}

SEC("cgroup/sendmsg6")
int kg_sendmsg6(struct bpf_sock_addr *ctx)
{
	return on_use(ctx);
}

SEC("cgroup_skb/egress")
int kg_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct task_struct *task;
	struct owner *o;
	__u64 cookie;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk || !sk->src_port)
		return 1;
	cookie = bpf_get_socket_cookie(skb);
	o = bpf_map_lookup_elem(&enricher_owners, &cookie);
	if (o && o->key.port != sk->src_port) {
		o->key.port = sk->src_port;
		task = (struct task_struct *)bpf_get_current_task();
		if (BPF_CORE_READ(task, tgid) != o->pid_tgid >> 32)
			task = 0; /* another process, or softirq on its behalf: paths unknown */
		publish(o, cookie, task);
	}
	return 1;
}

SEC("cgroup/sock_release")
int kg_sock_release(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct owner *o = bpf_map_lookup_elem(&enricher_owners, &cookie);
	struct sockets_value *v;

	if (!o)
		return 1;
	if (o->key.port) {
		v = bpf_map_lookup_elem(&gadget_sockets, &o->key);
		if (v && v->sock == cookie)
			v->deletion_timestamp = bpf_ktime_get_boot_ns();
	}
	bpf_map_delete_elem(&enricher_owners, &cookie);
	return 1;
}

SEC("iter/task_file")
int kg_existing_sockets(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct socket *sock;
	struct sock *sk;
	struct owner o;
	__u64 cookie;
	__u16 family, sport;
	__u8 proto;

	if (!task || !file)
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = sock->sk;
	if (!sk)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	proto = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	if (!tracked(family, proto) || !sport)
		return 0;
	__builtin_memset(&o, 0, sizeof(o));
	owner_from_task(&o, task);
	o.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	o.key.netns = o.netns;
	o.key.family = family;
	o.key.proto = proto;
	o.key.port = sport;
	o.ipv6only = BPF_CORE_READ_BITFIELD_PROBED(sk, __sk_common.skc_ipv6only);
	cookie = bpf_get_socket_cookie(sk);
	bpf_map_update_elem(&enricher_owners, &cookie, &o, BPF_NOEXIST);
	publish(&o, cookie, task);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
