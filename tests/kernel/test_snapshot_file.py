"""snapshot_file on this kernel: a process in its own mount namespace holds a file, a pipe and a
socket open; the snapshot lists each descriptor with its type and path, and nothing of a
neighbour container."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

# Opens a file (and writes 5 bytes), a pipe and a socket; prints "fd ino" for each; waits.
HOLDER = ("import os, socket, sys\n"
          "f = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)\n"
          "os.write(f, b'12345')\n"
          "r, w = os.pipe()\n"
          "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
          "for fd in (f, r, s.fileno()):\n"
          "    print(fd, os.fstat(fd).st_ino)\n"
          "sys.stdout.flush(); sys.stdin.read()\n")


Holder = tuple[subprocess.Popen[bytes], list[tuple[int, int]]]


def _holder(w: ContainerWorkload, path: Path) -> Holder:
    proc = w.popen([*python_argv(HOLDER), str(path)], stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE)
    assert proc.stdout is not None
    fds = [tuple(map(int, proc.stdout.readline().split())) for _ in range(3)]
    return proc, fds  # type: ignore[return-value]


def _snapshot(gadget: Path, *args: str) -> list[Record]:
    with RunnerProcess(gadget, *args) as runner:
        assert runner.wait(60) == 0, runner.stderr()
    assert runner.end()["exit_code"] == 0
    (array,) = runner.of_type("array")
    return array["data"]


def test_open_file_pipe_and_socket(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    gadget = built_gadgets["snapshot_file"]
    with sleeping_container() as w, sleeping_container() as neighbour:
        proc, fds = _holder(w, tmp_path / "held")
        other, _ = _holder(neighbour, tmp_path / "other")
        rows = _snapshot(gadget, "--container-id", w.container_id)
        for p in (proc, other):
            assert p.stdin is not None
            p.stdin.close()
            p.wait(10)

    mine = {r["fd"]: r for r in rows if r["proc.pid"] == proc.pid}
    (f, f_ino), (r, r_ino), (s, s_ino) = fds
    assert (mine[f]["type"], mine[f]["ino"]) == ("REGULAR", f_ino)
    assert mine[f]["path"] == str(tmp_path / "held")
    assert mine[f]["pos"] == 5
    assert mine[f]["flags"] == "O_RDWR|O_APPEND|O_LARGEFILE" and mine[f]["type_raw"] == 0o100000
    assert (mine[r]["type"], mine[r]["path"]) == ("FIFO", f"pipe:[{r_ino}]")
    assert (mine[s]["type"], mine[s]["path"]) == ("SOCKET", f"socket:[{s_ino}]")
    assert mine[0]["type"] == "FIFO" and mine[0]["path"].startswith("pipe:[")  # stdin=PIPE
    assert all(r["proc.mntns_id"] == w.mntns_id for r in rows)
    assert mine[f]["proc.parent.pid"] == os.getpid()
    assert mine[f]["runtime.containerId"] == w.container_id
    assert {r["proc.pid"] for r in rows} == {w.pid, proc.pid}
    assert not [r for r in rows if r["path"] == str(tmp_path / "other")]
