// SPDX-License-Identifier: GPL-2.0
/*
 * trace_ssl: OpenSSL reads and writes, before encryption and after decryption, from uprobes
 * on libssl (SSL_read, SSL_write and their _ex variants). One record per call that moved
 * data, emitted at return with the byte count, the time spent in the call and, only when asked
 * for (--record-data), the first bytes of the plaintext (at most --data-max, 1024 at most).
 *
 * The library is named the short way (`libssl`): the runner resolves it in each target's root
 * and probes the file for every process; the container filter here keeps the targets' calls.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define DATA_MAX 1024
#define MAX_IN_FLIGHT 10240

enum ssl_op { SSL_read = 0, SSL_write = 1 };

struct call_t {
	const void *buf;
	__u64 *count_ptr; /* the _ex variants' out-parameter, NULL for the others */
	__u64 start;
	enum ssl_op op;
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	enum ssl_op operation_raw;
	__u32 len;
	gadget_duration latency_ns;
	__u32 data_len;
	char data[DATA_MAX];
};

const volatile bool targ_record_data = false;
const volatile __u32 targ_data_max = DATA_MAX;
GADGET_PARAM(targ_record_data);
GADGET_PARAM(targ_data_max);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_IN_FLIGHT);
	__type(key, __u32);
	__type(value, struct call_t);
} calls SEC(".maps");

GADGET_TRACER_MAP(events, 4 * 1024 * 1024);
GADGET_TRACER(ssl, events, event);

static __always_inline int enter(const void *buf, void *count_ptr, enum ssl_op op)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call_t call = {.buf = buf, .count_ptr = count_ptr, .op = op};

	if (gadget_should_discard_data_current())
		return 0;
	call.start = bpf_ktime_get_ns();
	bpf_map_update_elem(&calls, &tid, &call, BPF_ANY);
	return 0;
}

static __always_inline int leave(struct pt_regs *ctx, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call_t *call = bpf_map_lookup_elem(&calls, &tid);
	struct event *event;
	__u64 count = 0, copy;

	if (!call)
		return 0;
	if (call->count_ptr) { /* _ex: 1 on success, the count in the out-parameter */
		if (ret == 1)
			bpf_probe_read_user(&count, sizeof(count), call->count_ptr);
	} else if (ret > 0) {
		count = ret;
	}
	if (!count)
		goto cleanup;
	event = gadget_reserve_buf(events, sizeof(*event));
	if (!event)
		goto cleanup;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->operation_raw = call->op;
	event->len = count;
	event->latency_ns = bpf_ktime_get_ns() - call->start;
	event->data_len = 0;
	event->data[0] = '\0';
	if (targ_record_data) {
		copy = count < targ_data_max ? count : targ_data_max;
		asm volatile("%[copy] &= 0x7ff" : [copy] "+r"(copy)); /* bound the register passed */
		if (copy > DATA_MAX)
			copy = DATA_MAX;
		if (copy && !bpf_probe_read_user(event->data, copy, call->buf))
			event->data_len = copy;
		if (copy < DATA_MAX)
			event->data[copy & (DATA_MAX - 1)] = '\0';
	}
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&calls, &tid);
	return 0;
}

SEC("uprobe/libssl:SSL_read")
int BPF_KPROBE(trace_ssl_read, void *ssl, void *buf, int num)
{
	return enter(buf, NULL, SSL_read);
}

SEC("uretprobe/libssl:SSL_read")
int BPF_KRETPROBE(trace_ssl_read_ret, int ret)
{
	return leave(ctx, ret);
}

SEC("uprobe/libssl:SSL_write")
int BPF_KPROBE(trace_ssl_write, void *ssl, const void *buf, int num)
{
	return enter(buf, NULL, SSL_write);
}

SEC("uretprobe/libssl:SSL_write")
int BPF_KRETPROBE(trace_ssl_write_ret, int ret)
{
	return leave(ctx, ret);
}

SEC("uprobe/libssl:SSL_read_ex")
int BPF_KPROBE(trace_ssl_read_ex, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	return enter(buf, readbytes, SSL_read);
}

SEC("uretprobe/libssl:SSL_read_ex")
int BPF_KRETPROBE(trace_ssl_read_ex_ret, int ret)
{
	return leave(ctx, ret);
}

SEC("uprobe/libssl:SSL_write_ex")
int BPF_KPROBE(trace_ssl_write_ex, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	return enter(buf, written, SSL_write);
}

SEC("uretprobe/libssl:SSL_write_ex")
int BPF_KRETPROBE(trace_ssl_write_ex_ret, int ret)
{
	return leave(ctx, ret);
}

char LICENSE[] SEC("license") = "GPL";
