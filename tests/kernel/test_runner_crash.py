"""A runner that dies by a signal is named as a crash, with what it was doing.

The real client runs trace_exec on this host in columns mode; once its header shows that the
runner is tracing, the runner process is sent SIGSEGV (the death a libbpf fault gives). The
client must say "runner crashed: SIGSEGV while running the gadget" on stderr and exit 1, not
print a bare negative return code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_gadget.errors import crash_signal
from tests.conftest import needs_root_btf

ROOT = Path(__file__).resolve().parents[2]


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def _runner_of(client: int) -> int:
    for pid in _descendants(client):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"node_runner" in argv:
            return pid
    raise AssertionError("the client has no node_runner child")


def test_crash_signal_names() -> None:
    assert crash_signal(-signal.SIGSEGV) == "SIGSEGV"  # a local runner's return code
    assert crash_signal(128 + signal.SIGABRT) == "SIGABRT"  # a container's exit code
    assert crash_signal(128 + signal.SIGTERM) is None  # a stop, not a crash
    assert crash_signal(-signal.SIGINT) is None
    assert crash_signal(3) is None and crash_signal(0) is None


@pytest.mark.kernel
@needs_root_btf
def test_runner_killed_by_sigsegv_is_named(built_gadgets: dict[str, Path]) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubectl_gadget", "run", str(built_gadgets["trace_exec"]),
         "--local", "-o", "columns", "--timeout", "60"], cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()  # printed once the runner reports it is tracing
        assert header.strip(), "the client ended before its runner was tracing"
        os.kill(_runner_of(proc.pid), signal.SIGSEGV)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert "runner crashed: SIGSEGV while running the gadget" in err, err
    assert "Traceback" not in err
