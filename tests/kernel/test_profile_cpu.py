"""profile_cpu on this kernel: a busy C program in its own mount namespace is sampled, its
user frames named from its own binary, its kernel frames from kallsyms, and a busy neighbour
outside the container filter never shows up."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import Record, RunnerProcess
from tests.workloads import run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare,
              pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc to build the "
                                 "profiled test program")]

# Alternates its own function spin_here (user time) with reads of /dev/zero (kernel time).
PROGRAM = r"""
#include <fcntl.h>
#include <unistd.h>

static char buf[1 << 20];

__attribute__((noinline)) unsigned long spin_here(unsigned long n)
{
	volatile unsigned long x = 0;
	for (unsigned long i = 0; i < n; i++)
		x += i ^ (i >> 3);
	return x;
}

int main(void)
{
	int fd = open("/dev/zero", O_RDONLY);
	for (;;) {
		spin_here(10000000);
		for (int i = 0; i < 100; i++)
			if (read(fd, buf, sizeof(buf)) < 0)
				return 1;
	}
}
"""
HZ = 97


def _busy(tmp_path: Path) -> str:
    (tmp_path / "spin.c").write_text(PROGRAM)
    subprocess.run(["gcc", "-O1", "-fno-omit-frame-pointer", "-o", str(tmp_path / "spinner"),
                    str(tmp_path / "spin.c")], check=True)
    return str(tmp_path / "spinner")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_stacks_of_the_target_are_named(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    binary = _busy(tmp_path)
    with run_in_container([binary]) as target, run_in_container([binary]) as neighbour:
        cpu_before = _cpu_seconds(target.pid)
        with RunnerProcess(built_gadgets["profile_cpu"], "--container-id", target.container_id,
                           "--map-fetch-interval", "1",
                           "--sampling-frequency", str(HZ)) as runner:
            fetches = _sample_until_named(runner)
            assert runner.stop() == 0, runner.stderr()
        cpu_used = _cpu_seconds(target.pid) - cpu_before

    rows = [r for f in fetches for r in f]
    assert rows and {r["proc.pid"] for r in rows} == {target.pid}, \
        {(r["proc.pid"], r["proc.comm"]) for r in rows}
    assert neighbour.pid not in {r["proc.pid"] for r in rows}
    assert {r["proc.comm"] for r in rows} == {"spinner"}
    assert {r["proc.mntns_id"] for r in rows} == {target.mntns_id}
    # One thread sampled at HZ: it cannot have more samples than HZ per second of CPU time it
    # used while the runner ran (its CPU time, not wall time: a loaded machine stretches the
    # intervals and gives the target less CPU alike).
    samples = sum(r["samples"] for r in rows)
    assert samples <= HZ * cpu_used * 1.2 + 5, (samples, cpu_used)
    user = [r["user_stack.symbols"].split("; ") for r in rows
            if "spin_here+" in r["user_stack.symbols"]]
    assert user and all(frames[0].startswith("spin_here+0x") for frames in user), user
    assert any(len(f) > 1 and f[1].startswith("main+0x") for f in user), user
    kernel = [r["kernel_stack"].split("; ") for r in rows if "vfs_read+" in r["kernel_stack"]]
    assert kernel, [r["kernel_stack"] for r in rows]
    # a sample in the read: the kernel stack has a user stack too (the read() call site)
    assert all(r["user_stack.symbols"] for r in rows if r["kernel_stack"])


def _sample_until_named(runner: RunnerProcess) -> list[list[Record]]:
    """The fetches, until the target's user frame and a kernel read frame have been seen."""
    runner.wait_schema()
    fetches: list[list[Record]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
            any("spin_here+" in r["user_stack.symbols"] for f in fetches for r in f)
            and any("vfs_read+" in r["kernel_stack"] for f in fetches for r in f)):
        seen = len(fetches)
        rec = runner.wait_for(lambda r, n=seen: r.get("type") == "array"  # type: ignore[misc]
                              and r["fetch"] > n, timeout=30, what="a profile fetch")
        fetches.append(rec["data"])
    return fetches


def test_kernel_stacks_only(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    binary = _busy(tmp_path)
    with run_in_container([binary]) as target, \
            RunnerProcess(built_gadgets["profile_cpu"], "--mntns", str(target.mntns_id),
                          "--map-fetch-interval", "1", "--sampling-frequency", str(HZ),
                          "--param", "kernel-stacks-only=true") as runner:
        runner.wait_schema()
        rec = runner.wait_for(lambda r: r.get("type") == "array" and r["fetch"] >= 2
                              and any(row["kernel_stack"] for row in r["data"]),
                              timeout=60, what="a fetch with kernel samples")
        assert runner.stop() == 0, runner.stderr()
    assert rec["data"] and all(r["user_stack.symbols"] == "" for r in rec["data"])
    assert all(r["user_stack.stack_id"] == 0xFFFFFFFF for r in rec["data"])
