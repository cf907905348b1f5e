// SPDX-License-Identifier: GPL-2.0
/*
 * trace_init_module: kernel module loads, one record per init_module(2) or finit_module(2)
 * call, made when the call returns so that its result is known.
 *
 * The programs attach to the raw tracepoints sys_enter and sys_exit (gadget/syscall_regs.h)
 * and keep only these two syscall numbers, compared first: every other syscall of the node
 * costs a program call and a register read. The per-syscall tracepoints
 * (syscalls:sys_enter_init_module) are not used: a kernel built without module support has
 * none, yet a process can still make the calls (they fail with ENOSYS), and an attempt to load
 * a module is worth seeing there too.
 *
 * The entry keeps the arguments by thread; the exit reads what they point to (the caller's
 * memory and file table are unchanged by the call) and makes the record:
 * - init_module(image, len, params): the image is an ELF relocatable object in the caller's
 *   memory; the module's name is the `name=` entry of its `.modinfo` section, found by walking
 *   the section headers (bpf_loop, all reads fault-safe, so a garbage image gives no name);
 * - finit_module(fd, params, flags): the path of the open file (gadget/filesystem.h) and a name
 *   made from it as kmod makes one (the file name up to its first dot, '-' as '_').
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/files.h>
#include <gadget/filesystem.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/syscall_regs.h>
#include <gadget/types.h>

/* The native syscall numbers (a 32-bit compat process uses other numbers: not traced). */
#if defined(__TARGET_ARCH_x86)
#define NR_INIT_MODULE 175
#define NR_FINIT_MODULE 313
#elif defined(__TARGET_ARCH_arm64)
#define NR_INIT_MODULE 105
#define NR_FINIT_MODULE 273
#else
#error "trace_init_module: syscall numbers of this architecture are not known"
#endif

#define PARAM_VALUES_MAX 256
#define MODULE_NAME_LEN 56 /* the kernel's MODULE_NAME_LEN on 64-bit */
#define ELF_SHDR_SIZE 64
#define MAX_SECTIONS 256
#define MODINFO_READ 64
#define MAX_MODINFO_READS 16384

enum syscall_type {
	init_module = 0,
	finit_module = 1,
};

/* finit_module's MODULE_INIT_* flags. */
enum finit_flags_set {
	IGNORE_MODVERSIONS = 1,
	IGNORE_VERMAGIC = 2,
	COMPRESSED_FILE = 4,
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	enum syscall_type syscall_raw;
	char name[MODULE_NAME_LEN];
	gadget_errno error_raw;
	__s32 fd;
	gadget_bytes len;
	enum finit_flags_set flags_raw;
	char param_values[PARAM_VALUES_MAX];
	char filepath[GADGET_PATH_BUF];
};

struct call {
	__u64 args[3];
	__u32 nr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct call);
} calls SEC(".maps");

GADGET_PATH_SCRATCH_MAP(path_scratch);

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(init, events, event);

SEC("raw_tp/sys_enter")
int trace_init_module_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	long nr = ctx->args[1];
	struct call call = {};
	__u64 args[6];

	if (nr != NR_INIT_MODULE && nr != NR_FINIT_MODULE)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	gadget_syscall_args(gadget_syscall_regs(ctx), args);
	call.nr = nr;
	call.args[0] = args[0];
	call.args[1] = args[1];
	call.args[2] = args[2];
	bpf_map_update_elem(&calls, &tid, &call, BPF_ANY);
	return 0;
}

/* The walk through an init_module image: the .modinfo section, then its name= entry. */
struct modinfo_scan {
	const char *image;
	__u64 len;
	__u64 shoff;
	__u64 shstr_off;
	__u64 pos;  /* next string of .modinfo */
	__u64 end;  /* end of .modinfo */
	__u64 name; /* offset of the name's value, 0 when not found */
	__u32 shnum;
	bool found; /* .modinfo found */
	bool mid;   /* pos is inside a string longer than one read */
};

/* Section header `index`: stop (1) at .modinfo or when the image cannot be read. */
static long find_modinfo(__u32 index, void *data)
{
	struct modinfo_scan *s = data;
	struct {
		__u32 name;
		__u32 type;
		__u64 flags;
		__u64 addr;
		__u64 offset;
		__u64 size;
	} shdr;
	char sname[9];

	if (index >= s->shnum)
		return 1;
	if (bpf_probe_read_user(&shdr, sizeof(shdr), s->image + s->shoff + (__u64)index * ELF_SHDR_SIZE))
		return 1;
	if (bpf_probe_read_user(sname, sizeof(sname), s->image + s->shstr_off + shdr.name))
		return 0;
	if (sname[0] != '.' || sname[1] != 'm' || sname[2] != 'o' || sname[3] != 'd' ||
	    sname[4] != 'i' || sname[5] != 'n' || sname[6] != 'f' || sname[7] != 'o' || sname[8])
		return 0;
	if (shdr.offset >= s->len || shdr.size > s->len - shdr.offset)
		return 1;
	s->pos = shdr.offset;
	s->end = shdr.offset + shdr.size;
	s->found = true;
	return 1;
}

/* One read of .modinfo's NUL-separated "key=value" strings; stop (1) at "name=". A string
 * longer than a read is continued from its last byte read, so a cut is never taken for the
 * start of a string. */
static long find_name(__u32 index, void *data)
{
	struct modinfo_scan *s = data;
	char buf[MODINFO_READ];
	long n;

	if (s->pos >= s->end)
		return 1;
	n = bpf_probe_read_user_str(buf, sizeof(buf), s->image + s->pos);
	if (n <= 0)
		return 1;
	if (n == sizeof(buf)) {
		s->pos += n - 1;
		s->mid = true;
		return 0;
	}
	if (!s->mid && n > 6 && buf[0] == 'n' && buf[1] == 'a' && buf[2] == 'm' && buf[3] == 'e' &&
	    buf[4] == '=') {
		s->name = s->pos + 5;
		return 1;
	}
	s->pos += n;
	s->mid = false;
	return 0;
}

static __always_inline void image_name(struct event *event, const char *image, __u64 len)
{
	struct modinfo_scan s = {.image = image, .len = len};
	struct {
		unsigned char ident[16];
		__u16 type, machine;
		__u32 version;
		__u64 entry, phoff, shoff;
		__u32 flags;
		__u16 ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
	} ehdr;
	__u64 shstr_off;

	if (len < sizeof(ehdr) || bpf_probe_read_user(&ehdr, sizeof(ehdr), image))
		return;
	if (ehdr.ident[0] != 0x7f || ehdr.ident[1] != 'E' || ehdr.ident[2] != 'L' ||
	    ehdr.ident[3] != 'F' || ehdr.ident[4] != 2 /* 64-bit */ ||
	    ehdr.shentsize != ELF_SHDR_SIZE || ehdr.shstrndx >= ehdr.shnum)
		return;
	if (bpf_probe_read_user(&shstr_off, sizeof(shstr_off),
				image + ehdr.shoff + (__u64)ehdr.shstrndx * ELF_SHDR_SIZE + 24))
		return;
	s.shoff = ehdr.shoff;
	s.shstr_off = shstr_off;
	s.shnum = ehdr.shnum;
	bpf_loop(MAX_SECTIONS, find_modinfo, &s, 0);
	if (!s.found)
		return;
	bpf_loop(MAX_MODINFO_READS, find_name, &s, 0);
	if (s.name)
		bpf_probe_read_user_str(event->name, sizeof(event->name), image + s.name);
}

/* kmod's name for a module file: the file name up to its first dot, '-' written '_'. */
struct name_from_path {
	const char *path;
	char *name;
	__u32 n;
	bool stopped;
};

static long name_step(__u32 index, void *data)
{
	struct name_from_path *w = data;
	char c = w->path[index & (GADGET_PATH_BUF - 1)];

	if (c == '\0')
		return 1;
	if (c == '/') {
		w->n = 0;
		w->stopped = false;
	} else if (c == '.' && w->n) {
		w->stopped = true;
	} else if (!w->stopped && w->n < MODULE_NAME_LEN - 1) {
		w->name[w->n & 63] = c == '-' ? '_' : c;
		w->n++;
	}
	return 0;
}

static __always_inline void file_name(struct event *event, __s32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct gadget_path_scratch *scratch;
	struct name_from_path walk = {};
	struct fs_struct *fs;
	struct file *file;
	__u32 zero = 0;

	scratch = bpf_map_lookup_elem(&path_scratch, &zero);
	if (!scratch || fd < 0)
		return;
	file = gadget_task_fd_file(task, fd);
	fs = BPF_CORE_READ(task, fs);
	if (!file || !fs)
		return;
	gadget_path_str(&file->f_path, &fs->root, event->filepath, scratch);
	walk.path = scratch->buf;
	walk.name = scratch->buf + GADGET_PATH_BUF;
	bpf_loop(GADGET_PATH_BUF, name_step, &walk, 0);
	scratch->buf[GADGET_PATH_BUF + (walk.n & 63)] = '\0';
	bpf_probe_read_kernel_str(event->name, sizeof(event->name), scratch->buf + GADGET_PATH_BUF);
}

SEC("raw_tp/sys_exit")
int trace_init_module_exit(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	long nr = gadget_syscall_nr(gadget_syscall_regs(ctx)), ret = ctx->args[1];
	const char *params;
	struct event *event;
	struct call *call;

	if (nr != NR_INIT_MODULE && nr != NR_FINIT_MODULE)
		return 0;
	call = bpf_map_lookup_elem(&calls, &tid);
	if (!call)
		return 0;
	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		goto out;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->error_raw = ret < 0 ? -ret : 0;
	event->name[0] = '\0';
	event->filepath[0] = '\0';
	event->param_values[0] = '\0';
	if (call->nr == NR_INIT_MODULE) {
		event->syscall_raw = init_module;
		event->len = call->args[1];
		event->fd = -1;
		event->flags_raw = 0;
		params = (const char *)call->args[2];
		image_name(event, (const char *)call->args[0], call->args[1]);
	} else {
		event->syscall_raw = finit_module;
		event->len = 0;
		event->fd = (__s32)call->args[0];
		event->flags_raw = (__u32)call->args[2];
		params = (const char *)call->args[1];
		file_name(event, event->fd);
	}
	if (params)
		bpf_probe_read_user_str(event->param_values, sizeof(event->param_values), params);
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
out:
	bpf_map_delete_elem(&calls, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
