"""The four array kinds end to end through `kubectl gadget run --local` (real client, runner,
eBPF): a top, a snapshot, a histogram and a profile, from the test gadgets of the runner tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, TEST_GADGETS_SRC, needs_root_btf, needs_unshare
from tests.workloads import run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf]


def _client(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "kubectl_gadget", "run", *args, "--local"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture
def busy_opener() -> Iterator[int]:
    """A host process that opens a file in a loop, named `arropener`."""
    code = ("import ctypes, time\n"
            "ctypes.CDLL(None).prctl(15, b'arropener', 0, 0, 0)\n"
            "while True:\n"
            "    open('/etc/hostname').close(); time.sleep(0.01)\n")
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", code])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _arrays(text: str) -> list[list[dict[str, object]]]:
    out = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(a, list) for a in out), text[:500]
    return out


def test_top_json_arrays_per_interval(build_gadget, busy_opener: int) -> None:  # type: ignore[no-untyped-def]
    gadget: Path = build_gadget(TEST_GADGETS_SRC / "top_opens")
    done = _client(str(gadget), "-o", "json", "--map-fetch-interval", "500ms",
                   "--map-fetch-count", "3")
    assert done.returncode == 0, done.stderr
    arrays = _arrays(done.stdout)
    assert len(arrays) == 3 * 4  # 3 intervals x 4 datasources
    mine = [r for a in arrays for r in a if r.get("comm") == "arropener"]
    # it opens every 10 ms: each interval of each of the three hash maps has its row
    # (allowing a loaded machine to starve it for one whole interval once)
    assert len(mine) >= 3 * 3 - 3 and all(r["last_pid"] == busy_opener for r in mine)
    assert all(isinstance(r["k8s"], dict) for r in mine)  # enrichment nested in JSON


def test_snapshot_ends_by_itself_sorted_and_capped(build_gadget) -> None:  # type: ignore[no-untyped-def]
    gadget: Path = build_gadget(TEST_GADGETS_SRC / "snapshot_test")
    done = _client(str(gadget), "--sort", "-pid,-port", "--max-entries", "5")
    assert done.returncode == 0, done.stderr
    tables = [t.splitlines() for t in done.stdout.split("\n\n") if t.strip()]
    assert len(tables) == 3 and all(len(t) <= 6 for t in tables)  # header + 5 rows
    tasks = next(t for t in tables if "PID" in t[0].split())
    column = tasks[0].split().index("PID")
    pids = [int(line.split()[column]) for line in tasks[1:]]
    assert len(pids) == 5 and pids == sorted(pids, reverse=True)
    socks = next(t for t in tables if "PORT" in t[0].split())
    column = socks[0].split().index("PORT")
    ports = [int(line.split()[column]) for line in socks[1:]]
    assert ports == sorted(ports, reverse=True)
    bad = _client(str(gadget), "--sort", "-pidd")
    assert bad.returncode == 2 and "unknown field 'pidd'" in bad.stderr


@needs_unshare
def test_histogram_chart(build_gadget) -> None:  # type: ignore[no-untyped-def]
    gadget: Path = build_gadget(TEST_GADGETS_SRC / "hist_sleep")
    # In its own container, shown alone: other processes of the machine sleep too.
    with run_in_container([sys.executable, "-I", "-S", "-c",
                           "import time\nwhile True: time.sleep(0.3)"]) as sleeper:
        done = _client(str(gadget), "--container-id", sleeper.container_id,
                       "--map-fetch-interval", "1s", "--map-fetch-count", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("usecs ") == 2, done.stdout  # one histogram per interval
    assert re.search(r"^ *usecs +: count    distribution$", done.stdout, re.M), done.stdout
    # the 0.3 s sleeps (300000 us), counted in the first and the second interval
    assert len(re.findall(r"262144 -> 524287 *: [1-9]", done.stdout)) == 2, done.stdout


def test_profile_json_has_named_stacks(build_gadget) -> None:  # type: ignore[no-untyped-def]
    gadget: Path = build_gadget(TEST_GADGETS_SRC / "profile_test")
    # Something to sample in kernel mode, even on an idle machine (idle CPUs are not sampled).
    reader = subprocess.Popen([sys.executable, "-I", "-S", "-c",
                               "f = open('/dev/zero', 'rb', 0)\nwhile True: f.read(1 << 20)"])
    try:
        done = _client(str(gadget), "-o", "json", "--map-fetch-count", "2",
                       "--sampling-frequency", "199")
    finally:
        reader.kill()
        reader.wait()
    assert done.returncode == 0, done.stderr
    rows = [r for a in _arrays(done.stdout) for r in a]
    assert rows
    assert all(isinstance(r["ustack"]["symbols"], str) for r in rows)
    assert any("+0x" in r["kernel_stack"] for r in rows)


def test_array_flags_on_a_tracer_are_a_usage_error(build_gadget) -> None:  # type: ignore[no-untyped-def]
    gadget: Path = build_gadget(TEST_GADGETS_SRC / "variant")
    done = _client(str(gadget), "--max-entries", "3", timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: --max-entries applies only to array datasources (snapshots, tops, histograms, "
        "profiles); gadget variant has: variant (stream)")
