"""profile_cpu on this kernel: a busy C program in its own mount namespace is sampled, its
user frames named from its own binary, its kernel frames from kallsyms, and a busy neighbour
outside the container filter never shows up."""

from __future__ import annotations

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


def test_stacks_of_the_target_are_named(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    binary = _busy(tmp_path)
    with run_in_container([binary]) as target, run_in_container([binary]) as neighbour, \
            RunnerProcess(built_gadgets["profile_cpu"], "--container-id", target.container_id,
                          "--map-fetch-interval", "1",
                          "--sampling-frequency", str(HZ)) as runner:
        runner.wait_schema()
        fetches: list[list[Record]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
                any("spin_here+" in r["user_stack.symbols"] for f in fetches for r in f)
                and any("vfs_read+" in r["kernel_stack"] for f in fetches for r in f)):
            seen = len(fetches)
            rec = runner.wait_for(lambda r, n=seen: r.get("type") == "array"  # type: ignore[misc]
                                  and r["fetch"] > n, timeout=10, what="a profile fetch")
            fetches.append(rec["data"])
        assert runner.stop() == 0, runner.stderr()

    rows = [r for f in fetches for r in f]
    assert rows and {r["proc.pid"] for r in rows} == {target.pid}, \
        {(r["proc.pid"], r["proc.comm"]) for r in rows}
    assert neighbour.pid not in {r["proc.pid"] for r in rows}
    assert {r["proc.comm"] for r in rows} == {"spinner"}
    assert {r["proc.mntns_id"] for r in rows} == {target.mntns_id}
    # One thread at HZ samples per second: a one-second interval holds at most ~HZ samples.
    for fetch in fetches:
        assert sum(r["samples"] for r in fetch) <= HZ * 1.5, fetch
    user = [r["user_stack.symbols"].split("; ") for r in rows
            if "spin_here+" in r["user_stack.symbols"]]
    assert user and all(frames[0].startswith("spin_here+0x") for frames in user), user
    assert any(len(f) > 1 and f[1].startswith("main+0x") for f in user), user
    kernel = [r["kernel_stack"].split("; ") for r in rows if "vfs_read+" in r["kernel_stack"]]
    assert kernel, [r["kernel_stack"] for r in rows]
    # a sample in the read: the kernel stack has a user stack too (the read() call site)
    assert all(r["user_stack.symbols"] for r in rows if r["kernel_stack"])


def test_kernel_stacks_only(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    binary = _busy(tmp_path)
    with run_in_container([binary]) as target, \
            RunnerProcess(built_gadgets["profile_cpu"], "--mntns", str(target.mntns_id),
                          "--map-fetch-interval", "1", "--sampling-frequency", str(HZ),
                          "--param", "kernel-stacks-only=true") as runner:
        runner.wait_schema()
        rec = runner.wait_for(lambda r: r.get("type") == "array" and r["fetch"] >= 2
                              and any(row["kernel_stack"] for row in r["data"]),
                              timeout=15, what="a fetch with kernel samples")
        assert runner.stop() == 0, runner.stderr()
    assert rec["data"] and all(r["user_stack.symbols"] == "" for r in rec["data"])
    assert all(r["user_stack.stack_id"] == 0xFFFFFFFF for r in rec["data"])
