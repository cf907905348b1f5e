// SPDX-License-Identifier: GPL-2.0
/*
 * top_blockio: block I/O per process and device in each interval: requests, bytes and the
 * time they took, reads and writes apart.
 *
 * block:block_io_start runs where a request starts being accounted, in the context of the
 * process submitting it; the request is remembered by (device, sector) with that process and
 * the time. block:block_io_done runs when it completes (often in interrupt context, where the
 * current task is anyone): the remembered entry says whose it was and how long it took.
 * Writeback of dirty page cache is submitted by kernel flusher threads, so buffered writes
 * show as theirs; direct I/O and reads show as the process's own.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

#define MINORBITS 20
#define MINORMASK ((1U << MINORBITS) - 1)

enum blockio_rw {
	READ = 0,
	WRITE = 1,
};

struct io_key {
	struct gadget_process proc;
	__u32 major;
	__u32 minor;
	enum blockio_rw rw;
};

struct io_stats {
	gadget_counter__u32 io;
	__u32 __pad;
	gadget_bytes bytes;
	gadget_duration us;
};

struct inflight_key {
	__u32 dev;
	__u32 __pad;
	__u64 sector;
};

struct inflight {
	struct io_key key;
	__u64 start_ns;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct io_key);
	__type(value, struct io_stats);
} blockio SEC(".maps");

/* LRU: a request whose completion is never seen (a passthrough or failed request) ages out
 * instead of filling the map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct inflight_key);
	__type(value, struct inflight);
} inflight SEC(".maps");

GADGET_MAPITER(blockio, blockio);

/* A write, a flush with data or a discard: rwbs starts with W, F then W, or D. */
static __always_inline bool is_write(const struct trace_event_raw_block_rq *ctx)
{
	/* tracepoint context is read at constant offsets only */
	char op = ctx->rwbs[0], next = ctx->rwbs[1];

	return op == 'W' || op == 'D' || (op == 'F' && next == 'W');
}

SEC("tracepoint/block/block_io_start")
int top_blockio_start(struct trace_event_raw_block_rq *ctx)
{
	struct inflight_key ik = {};
	struct inflight io = {};

	if (!ctx->bytes)
		return 0; /* a flush without data */
	if (gadget_should_discard_data_current())
		return 0;
	gadget_process_populate(&io.key.proc);
	io.key.proc.tid = 0; /* per process */
	io.key.major = ctx->dev >> MINORBITS;
	io.key.minor = ctx->dev & MINORMASK;
	io.key.rw = is_write(ctx) ? WRITE : READ;
	io.start_ns = bpf_ktime_get_ns();
	io.bytes = ctx->bytes;
	ik.dev = ctx->dev;
	ik.sector = ctx->sector;
	bpf_map_update_elem(&inflight, &ik, &io, BPF_ANY);
	return 0;
}

SEC("tracepoint/block/block_io_done")
int top_blockio_done(struct trace_event_raw_block_rq *ctx)
{
	struct inflight_key ik = {};
	struct io_stats zero = {}, *stats;
	struct inflight *io;
	__u64 us;

	ik.dev = ctx->dev;
	ik.sector = ctx->sector;
	io = bpf_map_lookup_elem(&inflight, &ik);
	if (!io)
		return 0; /* started before the gadget, or not selected */
	us = (bpf_ktime_get_ns() - io->start_ns) / 1000;
	stats = bpf_map_lookup_elem(&blockio, &io->key);
	if (!stats) {
		bpf_map_update_elem(&blockio, &io->key, &zero, BPF_NOEXIST);
		stats = bpf_map_lookup_elem(&blockio, &io->key);
	}
	if (stats) {
		__sync_fetch_and_add(&stats->io, 1);
		__sync_fetch_and_add(&stats->bytes, io->bytes);
		__sync_fetch_and_add(&stats->us, us);
	}
	bpf_map_delete_elem(&inflight, &ik);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
