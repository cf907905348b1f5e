"""snapshot_socket on this kernel: a process in its own mount namespace holds a TCP listener,
both ends of a connection to it, a bound UDP socket and a connected IPv6 UDP socket; one
snapshot lists each with its endpoints, state, inode and owner, and the container filter
leaves out a neighbour's listener."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv
from tests.workloads import ContainerWorkload, run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

COMM = "sockholder"
# Names itself, opens its sockets, prints their ports and inodes, then waits for stdin to close.
HOLDER = (
    "import ctypes, json, os, socket, sys\n"
    f"ctypes.CDLL(None).prctl(15, b'{COMM}', 0, 0, 0)\n"
    "ino = lambda s: os.fstat(s.fileno()).st_ino\n"
    "lst = socket.socket(); lst.bind(('127.0.0.1', 0)); lst.listen()\n"
    "cli = socket.create_connection(lst.getsockname()); acc, _ = lst.accept()\n"
    "udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(('127.0.0.1', 0))\n"
    "u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.connect(('::1', 9))\n"
    "print(json.dumps({'listen': [lst.getsockname()[1], ino(lst)],\n"
    "                  'client': [cli.getsockname()[1], ino(cli)], 'accepted': ino(acc),\n"
    "                  'udp': [udp.getsockname()[1], ino(udp)],\n"
    "                  'udp6': [u6.getsockname()[1], ino(u6)]}), flush=True)\n"
    "sys.stdin.read()\n"
)


@contextmanager
def _holder() -> Iterator[tuple[ContainerWorkload, dict[str, object]]]:
    with run_in_container(python_argv(HOLDER), stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as w:
        assert w.process.stdout is not None
        yield w, json.loads(w.process.stdout.readline())


def _snapshot(gadget: Path, *args: str) -> list[Record]:
    with RunnerProcess(gadget, *args) as runner:
        assert runner.wait(60) == 0, runner.stderr()
    (array,) = runner.of_type("array")
    assert runner.end()["events"] == len(array["data"])
    return array["data"]  # type: ignore[no-any-return]


def _one(rows: list[Record], **want: object) -> Record:
    found = [r for r in rows if all(r[k] == v for k, v in want.items())]
    assert len(found) == 1, (want, rows)
    return found[0]


def test_sockets_of_the_target(built_gadgets: dict[str, Path]) -> None:
    with _holder() as (target, socks), _holder() as (neighbour, other):
        rows = _snapshot(built_gadgets["snapshot_socket"], "--container-id", target.container_id)
        both = _snapshot(built_gadgets["snapshot_socket"], "--mntns", str(target.mntns_id),
                         "--mntns", str(neighbour.mntns_id))

    port, ino = socks["listen"]  # type: ignore[misc]
    cport, cino = socks["client"]  # type: ignore[misc]
    uport, uino = socks["udp"]  # type: ignore[misc]
    u6port, u6ino = socks["udp6"]  # type: ignore[misc]
    assert {r["proc.pid"] for r in rows} == {target.pid}
    assert {r["proc.comm"] for r in rows} == {COMM}
    assert {r["proc.mntns_id"] for r in rows} == {target.mntns_id}
    listen = _one(rows, **{"src": f"127.0.0.1:{port}", "state": "LISTEN"})
    assert (listen["dst"], listen["ino"], listen["src.proto"]) == ("0.0.0.0:0", ino, "TCP")
    client = _one(rows, src=f"127.0.0.1:{cport}")
    assert (client["dst"], client["state"], client["ino"]) == \
        (f"127.0.0.1:{port}", "ESTABLISHED", cino)
    accepted = _one(rows, src=f"127.0.0.1:{port}", dst=f"127.0.0.1:{cport}")
    assert (accepted["state"], accepted["ino"]) == ("ESTABLISHED", socks["accepted"])
    udp = _one(rows, src=f"127.0.0.1:{uport}")
    assert (udp["src.proto"], udp["state"], udp["ino"], udp["dst"]) == \
        ("UDP", "UNCONN", uino, "0.0.0.0:0")
    udp6 = _one(rows, src=f"[::1]:{u6port}")
    assert (udp6["src.proto"], udp6["src.version"], udp6["state"], udp6["ino"], udp6["dst"]) \
        == ("UDP", 6, "ESTABLISHED", u6ino, "[::1]:9")
    assert len(rows) == 5, rows
    assert all(r["netns_id"] == rows[0]["netns_id"] != 0 for r in rows)

    # the neighbour's sockets are there without the filter, and never with it
    nport = other["listen"][0]  # type: ignore[index]
    assert _one(both, src=f"127.0.0.1:{nport}", state="LISTEN")["proc.pid"] == neighbour.pid
    assert {r["proc.pid"] for r in both} == {target.pid, neighbour.pid}
    assert not [r for r in rows if r["src"] == f"127.0.0.1:{nport}"]
