"""profile_blockio on this kernel: processes in their own mount namespaces read a file on the
root block device with O_DIRECT (one request per read); each container-filtered histogram
counts exactly its own container's requests, on the file's device, with --queued too."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, python_argv
from tests.workloads import ContainerWorkload, run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

BLOCK = 65536
TARGET_READS, NEIGHBOUR_READS = 21, 13
# On a stdin line with a number N: N direct reads of BLOCK bytes (0: one warm-up read).
READER = (
    "import mmap, os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)\n"
    f"buf = mmap.mmap(-1, {BLOCK})\n"
    "print('ready', flush=True)\n"
    "for line in sys.stdin:\n"
    f"    for i in range(int(line) or 1): os.preadv(fd, [buf], i * {BLOCK})\n"
    "    print('ok', flush=True)\n"
)


@contextmanager
def _reader(path: Path) -> Iterator[ContainerWorkload]:
    with run_in_container([*python_argv(READER), str(path)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as w:
        assert w.process.stdout is not None
        assert w.process.stdout.readline() == b"ready\n"
        yield w


def _read(w: ContainerWorkload, n: int) -> None:
    assert w.process.stdin is not None and w.process.stdout is not None
    w.process.stdin.write(f"{n}\n".encode())
    w.process.stdin.flush()
    assert w.process.stdout.readline() == b"ok\n"


def _histogram(runner: RunnerProcess) -> dict[tuple[int, int], list[int]]:
    out: dict[tuple[int, int], list[int]] = {}
    for rec in runner.of_type("array"):
        for r in rec["data"]:
            key = (r["major"], r["minor"])
            out[key] = [a + b for a, b in zip(out.get(key, [0] * 27), r["latency"], strict=True)]
    return out


def test_latency_histogram_per_container(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "blocks"
    with open(path, "wb") as fh:
        fh.write(os.urandom(BLOCK * TARGET_READS))
        fh.flush()
        os.fsync(fh.fileno())
    dev = os.stat(path).st_dev
    if os.major(dev) == 0:
        pytest.skip(f"{tmp_path} is not on a block device here")
    gadget = built_gadgets["profile_blockio"]
    with _reader(path) as target, _reader(path) as neighbour:
        _read(target, 0)  # the file's metadata is read now, before the gadget looks
        _read(neighbour, 0)
        # Fetches 3 s apart: each burst, started just after a fetch, ends well before the next
        # (a burst that straddled a fetch could lose requests to the lookup-and-delete race).
        with RunnerProcess(gadget, "--container-id", target.container_id,
                           "--map-fetch-interval", "3") as issued, \
                RunnerProcess(gadget, "--container-id", neighbour.container_id,
                              "--param", "queued=true", "--map-fetch-interval", "3") as queued:
            issued.wait_schema()
            queued.wait_schema()
            issued.next_fetch()
            _read(target, TARGET_READS)
            queued.next_fetch()
            _read(neighbour, NEIGHBOUR_READS)
            assert issued.stop() == 0, issued.stderr()  # flush-on-stop: the last interval too
            assert queued.stop() == 0, queued.stderr()

    device = (os.major(dev), os.minor(dev))
    for runner, reads in ((issued, TARGET_READS), (queued, NEIGHBOUR_READS)):
        hist = _histogram(runner)
        assert set(hist) == {device}, hist
        assert sum(hist[device]) == reads, hist
        # a request to a disk takes more than 1 us and less than a second (slot 20: 2^20 us)
        assert not any(hist[device][:1]) and not any(hist[device][20:]), hist
