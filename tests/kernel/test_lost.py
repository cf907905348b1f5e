"""A full ring buffer is never silent: lost records are counted and reported.

trace_open is rebuilt with a one-page ring buffer (about a dozen records) and traced under an
open() storm in its own mount namespace. Every open of the storm either reaches userspace as an
event or bumps `<map>_lost_samples` in the kernel, so events + lost must cover the storm, and
the `lost` records must add up to the `end` record's count.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import GADGETS_SRC, REPO, needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, python_argv, wait_exit
from tests.workloads import sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

STORM_OPENS = 50_000
STORM = f"""
import os, sys
path = sys.argv[1]
for _ in range({STORM_OPENS}):
    try:
        os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        pass
"""
RINGBUF_DECL = re.compile(r"GADGET_TRACER_MAP\(events, [^)]*\);")


def _trace_open_with_ring(tmp_path: Path, build_gadget: Callable[[Path], Path], name: str,
                          size: str) -> Path:
    """trace_open built with a ring buffer of `size` bytes (a C expression)."""
    src = tmp_path / name
    shutil.copytree(GADGETS_SRC / "trace_open", src)
    program = src / "program.bpf.c"
    text = program.read_text()
    assert RINGBUF_DECL.search(text), "trace_open no longer declares its ring buffer as expected"
    program.write_text(RINGBUF_DECL.sub(f"GADGET_TRACER_MAP(events, {size});", text))
    return build_gadget(src)


@pytest.fixture
def tiny_trace_open(tmp_path: Path, build_gadget: Callable[[Path], Path]) -> Path:
    return _trace_open_with_ring(tmp_path, build_gadget, "trace_open_tiny", "4096")


def test_tiny_ring_buffer_reports_lost_records(tiny_trace_open: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "storm-target")
    with sleeping_container() as w, \
            RunnerProcess(tiny_trace_open, "--mntns", str(w.mntns_id)) as runner:
        runner.wait_schema()
        storm = w.popen(python_argv(STORM) + [missing])
        assert wait_exit(storm, timeout=120) == 0
        assert runner.stop() == 0, runner.stderr()
        end = runner.end()

    lost = runner.of_type("lost")
    assert lost, f"no lost record; end={end}"
    assert all(rec["ds"] == "open" and rec["count"] > 0 for rec in lost)
    assert end["lost"] == sum(rec["count"] for rec in lost)
    assert end["reason"] == "signal" and end["exit_code"] == 0 and end["dropped"] == 0
    assert not runner.bad_lines, runner.bad_lines[:3]
    assert end["events"] == len(runner.of_type("event")), (end, len(runner.of_type("event")))
    delivered = len(runner.events(lambda d: d["fname"] == missing))
    assert 0 < delivered < STORM_OPENS
    # Each open of the storm was either delivered or counted as lost (the rest of the lost
    # count is the workload's own startup opens).
    assert delivered + end["lost"] >= STORM_OPENS
    assert end["events"] + end["lost"] < STORM_OPENS + 1000


TIMED_STORM = """
import os, sys, time
path, end = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    for _ in range(1000):
        try:
            os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
"""


@pytest.mark.parametrize("fail_on_lost", [True, False])
def test_fail_on_lost_exits_1_when_events_were_lost(tiny_trace_open: Path, tmp_path: Path,
                                                    fail_on_lost: bool) -> None:
    missing = str(tmp_path / "storm-target")
    flag = ["--fail-on-lost"] if fail_on_lost else []
    with sleeping_container() as w:
        # The storm outlasts the run however slowly the runner starts: stopped after it.
        storm = w.popen(python_argv(TIMED_STORM) + [missing, "300"])
        try:
            client = subprocess.run(
                [sys.executable, "-m", "kubectl_gadget", "run", str(tiny_trace_open), "--local",
                 "--timeout", "4", "-o", "json", "-F", f"fname=={missing}", *flag],
                cwd=REPO, capture_output=True, text=True, timeout=120,
                stdin=subprocess.DEVNULL)
        finally:
            storm.kill()
            storm.wait()
    assert re.search(r"lost \d+ events", client.stderr), client.stderr
    if fail_on_lost:
        assert client.returncode == 1, client.stderr
        assert "(--fail-on-lost)" in client.stderr
    else:
        assert client.returncode == 0, client.stderr


PINNED_STORM = "import os\nos.sched_setaffinity(0, {0})\n" + TIMED_STORM


@pytest.fixture
def roomy_trace_open(tmp_path: Path, build_gadget: Callable[[Path], Path]) -> Path:
    """trace_open with a 64 MiB ring buffer: far more records per read than one batch."""
    return _trace_open_with_ring(tmp_path, build_gadget, "trace_open_roomy", "1 << 26")


def test_a_storm_faster_than_the_runner_does_not_keep_it_from_its_timeout(
        roomy_trace_open: Path, tmp_path: Path) -> None:
    """Once loaded, the runner is moved to one CPU at the lowest priority and two storms share
    that CPU, so records arrive far faster than it reads them and its large buffer never
    empties. The run still ends at its timeout (it does not read forever), says that the last
    records were not shown, and counts what it wrote."""
    missing = str(tmp_path / "storm-target")
    with sleeping_container() as w, RunnerProcess(roomy_trace_open, "--mntns", str(w.mntns_id),
                                                  "--timeout", "15") as runner:
        runner.wait_schema()
        assert runner.proc is not None
        os.sched_setaffinity(runner.proc.pid, {0})  # the main thread: it reads the buffer
        os.setpriority(os.PRIO_PROCESS, runner.proc.pid, 19)
        storms = [w.popen(python_argv(PINNED_STORM) + [missing, "300"]) for _ in range(2)]
        try:
            assert runner.wait(timeout=240) == 0, runner.stderr()
        finally:
            for storm in storms:
                storm.kill()
                storm.wait()
        end = runner.end()
    assert end["reason"] == "timeout", end
    events = runner.of_type("event")
    assert events and end["events"] == len(events), (end, len(events))
    warnings = [r["message"] for r in runner.of_type("warning")]
    assert any("faster than they could be read" in m for m in warnings), warnings
