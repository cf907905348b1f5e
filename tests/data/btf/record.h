/* Record layout used by tests/unit/test_layout.py: compiled for BPF (record.bpf.c) and for the
 * host (layout_probe.c, which prints offsetof/sizeof as an independent check). No system
 * headers, so both targets see exactly the same declarations. */
#ifndef TEST_RECORD_H
#define TEST_RECORD_H

typedef unsigned char __u8;
typedef signed short __s16;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef signed int __s32;
typedef long long __s64;
typedef unsigned long long __u64;

typedef __u64 gadget_mntns_id;
typedef __u32 gadget_pid;
typedef gadget_pid my_pid; /* chain: my_pid -> gadget_pid -> __u32 */
typedef char gadget_comm;
typedef char name_t[8]; /* typedef to an array */

enum color { COLOR_NEG = -2, COLOR_ZERO = 0, COLOR_SEVEN = 7 };
enum wide { WIDE_SMALL = 1, WIDE_BIG = 0x100000000ULL };

struct creds {
	__u32 uid;
	__u32 gid;
};

struct proc {
	gadget_comm comm[16];
	my_pid pid;
	struct creds creds;
};

struct test_event {
	__u8 u8v;
	__s16 s16v;
	__u32 u32v;
	__s64 s64v;
	_Bool flag;
	char name[16];
	enum color color;
	gadget_mntns_id mntns_id;
	struct proc proc;
	union {
		__u32 v4;
		__u8 v6[16];
	};
	__u8 __pad[4];
	struct {
		__u16 inner_a;
		__u16 __inner_hidden;
	};
	unsigned int bf_a : 3, bf_b : 5;
	int bf_c : 7;
	_Bool bf_d : 1;
	__u32 arr[4];
	__u16 grid[2][3];
	struct creds many[2];
	float f;
	double d;
	void *ptr;
	struct {
		__u32 x;
	} __hidden;
	union {
		__u32 whole;
		__u16 halves[2];
	} named_u;
	unsigned char raw_text[8];
	signed char stext[4];
	name_t alias_name;
	const volatile __u32 cv_u32;
	enum wide wide;
};

#endif
