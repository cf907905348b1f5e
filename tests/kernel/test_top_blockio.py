"""top_blockio on this kernel: a process in its own mount namespace reads and overwrites a
file on the root block device with O_DIRECT (so every call is one request of its own, issued
in its context); the per-interval rows add up to exactly those requests and bytes, on the
file's device, and the container filter hides a neighbour doing the same."""

from __future__ import annotations

import os
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, python_argv
from tests.workloads import ContainerWorkload, run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

BLOCK = 65536
READS, WRITES = 24, 9
COMM = "blkmover"
# On "warm": one direct read (the file's metadata is read now, not later). On "go": READS
# direct reads and WRITES direct overwrites of BLOCK bytes each.
MOVER = (
    "import ctypes, mmap, os, sys\n"
    f"ctypes.CDLL(None).prctl(15, b'{COMM}', 0, 0, 0)\n"
    "fd = os.open(sys.argv[1], os.O_RDWR | os.O_DIRECT)\n"
    f"buf = mmap.mmap(-1, {BLOCK})\n"
    "print('ready', flush=True)\n"
    "for line in sys.stdin:\n"
    "    if line == 'warm\\n':\n"
    f"        os.preadv(fd, [buf], 0)\n"
    "    else:\n"
    f"        for i in range({READS}): os.preadv(fd, [buf], i * {BLOCK})\n"
    f"        for i in range({WRITES}): os.pwritev(fd, [buf], i * {BLOCK})\n"
    "    print('ok', flush=True)\n"
)


def _block_device_file(tmp_path: Path) -> Path:
    path = tmp_path / "blocks"
    with open(path, "wb") as fh:
        fh.write(os.urandom(BLOCK * READS))
        fh.flush()
        os.fsync(fh.fileno())
    return path


@contextmanager
def _mover(path: Path) -> Iterator[ContainerWorkload]:
    with run_in_container([*python_argv(MOVER), str(path)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as w:
        assert w.process.stdout is not None
        assert w.process.stdout.readline() == b"ready\n"
        yield w


def _say(w: ContainerWorkload, what: str) -> None:
    assert w.process.stdin is not None and w.process.stdout is not None
    w.process.stdin.write(what.encode() + b"\n")
    w.process.stdin.flush()
    assert w.process.stdout.readline() == b"ok\n"


def test_requests_and_bytes_per_process(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    path = _block_device_file(tmp_path)
    dev = os.stat(path).st_dev
    if os.major(dev) == 0:
        pytest.skip(f"{tmp_path} is not on a block device here")
    with _mover(path) as target, _mover(path) as neighbour, \
            RunnerProcess(built_gadgets["top_blockio"], "--container-id", target.container_id,
                          "--map-fetch-interval", "0.5") as runner:
        runner.wait_schema()
        # Each burst starts just after a fetch, so that no fetch (lookup-and-delete) falls
        # while a request completes: an increment racing the delete is lost.
        runner.next_fetch()
        _say(target, "warm")
        _say(neighbour, "warm")
        runner.next_fetch()
        _say(target, "go")
        _say(neighbour, "go")
        last = max([r["fetch"] for r in runner.of_type("array")], default=0)
        runner.wait_for(lambda r: r.get("type") == "array" and r["fetch"] >= last + 2,
                        timeout=30, what="two more intervals")
        assert runner.stop() == 0, runner.stderr()

    rows = [r for rec in runner.of_type("array") for r in rec["data"]]
    assert {r["proc.pid"] for r in rows} == {target.pid}, rows
    assert {r["proc.comm"] for r in rows} == {COMM}
    totals: dict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        t = totals[(r["major"], r["minor"], r["rw"])]
        t[0], t[1], t[2] = t[0] + r["io"], t[1] + r["bytes"], t[2] + r["us"]
    key = (os.major(dev), os.minor(dev))
    reads, writes = totals[(*key, "READ")], totals[(*key, "WRITE")]
    assert reads[:2] == [READS + 1, (READS + 1) * BLOCK], totals  # + the warm-up read
    assert writes[:2] == [WRITES, WRITES * BLOCK], totals
    assert reads[2] > 0 and writes[2] > 0
    assert set(totals) == {(*key, "READ"), (*key, "WRITE")}, totals
