// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget "variant": one record per getppid(2) of the process selected with --pid, every
 * member filled with a known constant. Its record struct has a member of each kind the decoder
 * knows (sizes 1..8, signed and unsigned, bool, enum, char arrays, nested structs, a named
 * union, bitfields, a byte array, a `_raw` errno, a skipped `__` member), so a test can check
 * that every one decodes with no Python written for it. Keep the values in sync with
 * tests/kernel/test_decode_variants.py.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/types.h>

enum variant_color {
	VARIANT_RED = 1,
	VARIANT_GREEN = 2,
	VARIANT_BLUE = 7,
};

struct variant_point {
	__s16 x;
	__u16 y;
};

struct variant_inner {
	__u16 port;
	__s64 delta;
	char tag[8];
	struct variant_point point;
};

struct variant_event {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	__u8 small;
	__s8 tiny_neg;
	__s16 negative;
	bool flag_on;
	bool flag_off;
	struct variant_inner inner;
	enum variant_color color;
	enum variant_color odd_color;
	char label[12];
	__u32 bits_lo : 3;
	__s32 bits_neg : 5;
	__u32 bits_hi : 24;
	__u8 bytes[4];
	__s32 neg32;
	__u64 big;
	__s64 very_neg;
	union {
		__u32 as_u32;
		__u16 as_u16[2];
	} both;
	gadget_errno error_raw;
	__u32 __reserved;
};

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(variant, events, variant_event);

SEC("tracepoint/syscalls/sys_enter_getppid")
int variant_getppid(struct trace_event_raw_sys_enter *ctx)
{
	struct variant_event *e;

	if (gadget_should_discard_data_current())
		return 0;
	e = gadget_reserve_buf(events, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->mntns_id = gadget_get_current_mntns_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->small = 200;
	e->tiny_neg = -100;
	e->negative = -12345;
	e->flag_on = true;
	e->flag_off = false;
	e->inner.port = 8080;
	e->inner.delta = -42;
	__builtin_memcpy(e->inner.tag, "tagged!", 8);
	e->inner.point.x = -7;
	e->inner.point.y = 65535;
	e->color = VARIANT_BLUE;
	e->odd_color = (enum variant_color)42;
	/* text after the first NUL must not show */
	__builtin_memcpy(e->label, "abc\0hidden", 11);
	e->bits_lo = 5;
	e->bits_neg = -9;
	e->bits_hi = 0xabcdef;
	e->bytes[0] = 1;
	e->bytes[1] = 2;
	e->bytes[2] = 254;
	e->bytes[3] = 255;
	e->neg32 = -2000000000;
	e->big = 0xfedcba9876543210ULL;
	e->very_neg = -1234567890123LL;
	e->both.as_u32 = 0x00020001;
	e->error_raw = 1; /* EPERM */
	e->__reserved = 0xdeadbeef;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
