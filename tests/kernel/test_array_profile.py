"""Profiles: perf_event sampling on every CPU, stacks named from kallsyms and the target's ELF.

A tiny C program (compiled here with gcc) alternates a busy loop in its own function
`burn_cpu` with reads of /dev/zero (kernel time). It runs in its own mount namespace; the
profile gadget (tests/data/gadgets/profile_test) samples it, and the runner must name the
user frame `burn_cpu+0x..` from the binary's symbol table (opened through /proc/PID/root)
and the kernel frames from /proc/kallsyms.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_GADGETS_SRC, needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess
from tests.workloads import run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare,
              pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc to build the "
                                 "profiled test program")]

PROGRAM = r"""
#include <fcntl.h>
#include <unistd.h>

static char buf[1 << 20];

__attribute__((noinline)) unsigned long burn_cpu(unsigned long n)
{
	volatile unsigned long x = 0;
	for (unsigned long i = 0; i < n; i++)
		x += i * i;
	return x;
}

int main(void)
{
	int fd = open("/dev/zero", O_RDONLY);
	for (;;) {
		burn_cpu(20000000);
		for (int i = 0; i < 200; i++)
			if (read(fd, buf, sizeof(buf)) < 0)
				return 1;
	}
}
"""
FRAME = re.compile(r"^(?P<name>[\w.$]+)\+0x[0-9a-f]+$")


def _kernel_names() -> set[str]:
    with open("/proc/kallsyms", encoding="utf-8") as fh:
        return {line.split()[2] for line in fh}


def test_user_and_kernel_frames_are_named(build_gadget, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gadget = build_gadget(TEST_GADGETS_SRC / "profile_test")
    (tmp_path / "busy.c").write_text(PROGRAM)
    subprocess.run(["gcc", "-O1", "-fno-omit-frame-pointer", "-o", str(tmp_path / "busy"),
                    str(tmp_path / "busy.c")], check=True)
    with run_in_container([str(tmp_path / "busy")]) as w, \
            RunnerProcess(gadget, "--mntns", str(w.mntns_id), "--map-fetch-interval", "1",
                          "--sampling-frequency", "199") as runner:
        runner.wait_schema()
        rows: list[dict[str, object]] = []
        fetch, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline and not (
                any("burn_cpu+" in str(r["ustack.symbols"]) for r in rows)
                and any(r["kernel_stack"] for r in rows)):
            rec = runner.wait_for(lambda r, f=fetch: r.get("type") == "array"  # type: ignore[misc]
                                  and r["fetch"] > f, timeout=30, what="a profile fetch")
            fetch = rec["fetch"]
            rows += rec["data"]
        assert runner.stop() == 0, runner.stderr()

    assert rows and {r["pid"] for r in rows} == {w.pid}
    stacks = [str(r["ustack.symbols"]) for r in rows]
    user = [s.split("; ") for s in stacks if "burn_cpu+" in s]
    assert user, [r["ustack.symbols"] for r in rows]
    # burn_cpu calls nothing: it is the innermost frame, and main (frame pointers) its caller.
    assert all(frames[0].startswith("burn_cpu+0x") for frames in user), user
    assert any(len(frames) > 1 and frames[1].startswith("main+0x") for frames in user), user
    kernel = [str(r["kernel_stack"]).split("; ") for r in rows if r["kernel_stack"]]
    assert kernel, "no sample in kernel mode"
    names = _kernel_names()
    named = [m.group("name") for frames in kernel for f in frames if (m := FRAME.match(f))]
    assert named and all(n in names for n in named)



def test_flush_on_stop_gives_the_last_interval(build_gadget) -> None:  # type: ignore[no-untyped-def]
    """`ebpf.map.flush-on-stop`: stopped before its first interval, the runner still reports."""
    gadget = build_gadget(TEST_GADGETS_SRC / "profile_test")
    with RunnerProcess(gadget, "--map-fetch-interval", "3600") as runner:
        runner.wait_schema()
        end = time.monotonic() + 1  # keep a CPU busy so there is something to sample,
        while time.monotonic() < end:  # even on an idle machine
            pass
        assert runner.stop() == 0, runner.stderr()
    (array,) = runner.of_type("array")
    assert array["fetch"] == 1 and array["data"]
    assert runner.end()["events"] == len(array["data"])
