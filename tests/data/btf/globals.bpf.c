/* BPF object for the datasec fix-up and marker tests: several .rodata params of different
 * sizes (so offsets are not all zero), .data/.bss globals, a BTF-defined ring buffer map and
 * one marker of each kind. No system headers on purpose. */
typedef unsigned char __u8;
typedef unsigned int __u32;
typedef unsigned long long __u64;

struct event {
	__u32 pid;
	char comm[16];
};

struct task_info {
	__u32 tid;
};

/* what bpf_helpers.h's __uint()/__type() expand to */
struct {
	int (*type)[27]; /* BPF_MAP_TYPE_RINGBUF */
	int (*max_entries)[0];
} events __attribute__((section(".maps"), used));

const volatile _Bool targ_failed = 0;
const volatile __u32 targ_pid = 0;
const volatile char targ_comm[16] = {};
const volatile __u64 targ_big = 7;
const volatile __u8 targ_small = 3;
const volatile __u32 events_max_entries = 1024;

__u64 counter;          /* .bss */
__u32 data_var = 5;     /* .data */

const void *gadget_tracer_open___events___event __attribute__((unused));
const struct event *__gadget_tracer_type_open __attribute__((unused));
const void *gadget_param_targ_pid __attribute__((unused));
const void *gadget_param_targ_failed __attribute__((unused));
const void *gadget_mapiter_top___stats __attribute__((unused));
const void *gadget_iter_snap___task_info___iter_prog __attribute__((unused));
const struct task_info *__gadget_iter_type_snap __attribute__((unused));

__attribute__((section("tracepoint/syscalls/sys_enter_getpid"), used))
int globals_prog(void *ctx)
{
	counter += targ_pid + targ_big + targ_small + targ_failed + data_var + targ_comm[0];
	return 0;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
