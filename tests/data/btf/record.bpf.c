/* BPF object for the layout tests: one global of struct test_event keeps the type in BTF. */
#include "record.h"

struct test_event test_event_global;

__attribute__((section("tracepoint/syscalls/sys_enter_getpid"), used))
int record_prog(void *ctx)
{
	return test_event_global.u32v ? 1 : 0;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
