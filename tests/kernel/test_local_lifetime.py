"""The local runner's life is tied to the client's: SIGKILL the client, the runner stops; and a
runner slow to start is not stopped by the client before its own --timeout has run.

The gadget of the first test is quiet (trace_oomkill: nothing is OOM-killed during the test),
so the runner never writes and would never notice a broken stdout; only its stdin pipe, held by
the client, tells it. It must end by itself, with its programs detached, within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, needs_root_btf

pytestmark = [pytest.mark.kernel, needs_root_btf]


def _children(pid: int) -> list[int]:
    """Children of every thread of `pid` (a child is listed under the thread that forked it)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_sigkill_of_the_client_stops_a_quiet_local_runner(
        built_gadgets: dict[str, Path]) -> None:
    gadget = str(built_gadgets["trace_oomkill"])
    client = subprocess.Popen([sys.executable, "-m", "kubectl_gadget", "run", gadget, "--local"],
                              cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    runner = 0
    try:
        assert client.stdout is not None
        header = client.stdout.readline()  # printed once the runner is tracing
        assert header.strip(), "the client ended before the runner was tracing"
        runner = next(iter(_children(client.pid)), 0)
        assert runner and _alive(runner)
        client.kill()
        client.wait()
        end = time.monotonic() + 20
        while _alive(runner) and time.monotonic() < end:
            time.sleep(0.1)
        assert not _alive(runner), "the runner outlived its client by 20 s"
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        if runner and _alive(runner):
            os.kill(runner, signal.SIGKILL)


def test_a_runner_slow_to_load_is_not_stopped_before_its_timeout(
        built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    """The client stops runners that overrun their --timeout by a grace period; that period
    counts from when the gadget runs, not from the start (a loaded node can take long to
    load a gadget). The runner here waits 17 s before it starts: more than timeout + grace."""
    wrapper = tmp_path / "slow-runner"
    wrapper.write_text(f"#!/bin/sh\nsleep 17\nexec {sys.executable} -m node_runner \"$@\"\n")
    wrapper.chmod(0o755)
    env = dict(os.environ, KUBECTL_GADGET_RUNNER=str(wrapper))
    done = subprocess.run([sys.executable, "-m", "kubectl_gadget", "run",
                           str(built_gadgets["trace_oomkill"]), "--local", "--timeout", "1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    assert "did not stop at the timeout" not in done.stderr, done.stderr
