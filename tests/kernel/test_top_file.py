"""top_file on this kernel: a process in its own mount namespace writes and reads a file with
known sizes; the intervals' counts add up to them, with the file's path, and a neighbour
container's file is not shown."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv, wait_exit
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

# Three writes of 1000 bytes and one vectored write of 500, one read of 3000 bytes back and
# one vectored read of 500, then one write to a pipe (stdout).
IO = ("import os, sys\n"
      "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)\n"
      "for _ in range(3):\n"
      "    os.write(fd, b'x' * 1000)\n"
      "assert os.pwritev(fd, [b'y' * 200, b'z' * 300], 3000) == 500\n"
      "assert len(os.pread(fd, 3000, 0)) == 3000\n"
      "assert os.preadv(fd, [bytearray(500)], 3000) == 500\n"
      "os.write(1, b'done')\n")


def _do_io(w: ContainerWorkload, path: Path) -> int:
    proc = w.popen([*python_argv(IO), str(path)], stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert wait_exit(proc) == 0 and out == b"done"
    return proc.pid


def _rows(runner: RunnerProcess, pid: int) -> list[Record]:
    return [d for a in runner.of_type("array") for d in a["data"] if d["proc.pid"] == pid]


def test_bytes_and_calls_per_file(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    gadget = built_gadgets["top_file"]
    mine, other = tmp_path / "mine", tmp_path / "other"
    with sleeping_container() as w, sleeping_container() as neighbour:
        with RunnerProcess(gadget, "--container-id", w.container_id,
                           "--map-fetch-interval", "0.3") as runner, \
                RunnerProcess(gadget, "--mntns", str(w.mntns_id), "--param", "all-files=true",
                              "--map-fetch-interval", "0.3") as every:
            runner.wait_for(lambda r: r.get("type") == "array", 30, "a first interval")
            every.wait_for(lambda r: r.get("type") == "array", 30, "a first interval")
            noisy = _do_io(neighbour, other)
            pid = _do_io(w, mine)
            # Two more intervals: the last counts of the process are in.
            fetch = runner.of_type("array")[-1]["fetch"]
            runner.wait_for(lambda r: r.get("type") == "array" and r["fetch"] >= fetch + 2,
                            30, "two more intervals")
            fetch = every.of_type("array")[-1]["fetch"]
            every.wait_for(lambda r: r.get("type") == "array" and r["fetch"] >= fetch + 2,
                           30, "two more intervals")
            assert runner.stop() == 0 and every.stop() == 0

    rows = [d for d in _rows(runner, pid) if d["path"] == str(mine)]
    assert rows, _rows(runner, pid)
    totals = {k: sum(d[k] for d in rows) for k in ("reads", "writes", "rbytes", "wbytes")}
    assert totals == {"reads": 2, "writes": 4, "rbytes": 3500, "wbytes": 3500}
    assert rows[0]["type"] == "REGULAR" and rows[0]["ino"] == rows[0]["ino"] > 0
    assert rows[0]["proc.mntns_id"] == w.mntns_id
    assert rows[0]["runtime.containerId"] == w.container_id
    # Only regular files by default; all-files adds the pipe its "done" went to (and the pipes
    # of the workload's start-up gate, which ran as the same process before the exec).
    assert {d["type"] for d in _rows(runner, pid)} == {"REGULAR"}
    pipe = [d for d in _rows(every, pid) if d["type"] == "FIFO"]
    assert (1, 4) in [(d["writes"], d["wbytes"]) for d in pipe]
    assert not _rows(runner, noisy) and not _rows(every, noisy)
    assert not [d for a in runner.of_type("array") for d in a["data"] if d["path"] == str(other)]
