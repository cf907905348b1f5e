"""trace_bind on this kernel: binds made by a process in its own mount and network namespace.

The workload binds a TCP socket with SO_REUSEADDR, fails to bind a second one to the same port
(EADDRINUSE), and binds a UDP socket to ::1 with SO_REUSEPORT and IPV6_FREEBIND; it prints what
it saw, and the test compares that with the decoded records. A neighbour container binds too,
and the container filter must hide it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.netns import endpoint, in_new_netns
from tests.kernel.runner_proc import RunnerProcess, python_argv
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

BINDER = """
import errno, os, socket, sys
port = int(sys.argv[1])
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("127.0.0.1", port))
tcp.listen()
again = socket.socket()
try:
    again.bind(("127.0.0.1", port))
    err = 0
except OSError as exc:
    err = exc.errno
udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
udp.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND
udp.bind(("::1", port + 1))
print(os.getpid(), os.stat("/proc/self/ns/net").st_ino, err, flush=True)
"""


@pytest.fixture(scope="module")
def gadget(built_gadgets: dict[str, Path]) -> Path:
    return built_gadgets["trace_bind"]


def _bind(w: ContainerWorkload, port: int) -> tuple[int, int, int]:
    proc = w.popen(in_new_netns([*python_argv(BINDER), str(port)]), stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    pid, netns, err = map(int, out.split())
    return pid, netns, err


def _port() -> int:
    return 20000 + secrets.randbelow(20000)


def test_binds_with_address_options_and_result(gadget: Path) -> None:
    port, other = _port(), _port()
    with sleeping_container() as w, sleeping_container() as neighbour:
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id)) as runner:
            runner.wait_schema()
            _bind(neighbour, other)
            pid, netns, err = _bind(w, port)
            runner.wait_event(lambda d: d["addr.port"] == port + 1, what="bind of the UDP socket")
            assert runner.stop() == 0, runner.stderr()
    assert err == 98
    mine = runner.events(lambda d: d["proc.pid"] == pid)
    assert len(mine) == 3, mine
    ok, busy, udp = mine
    for ev in mine:
        assert ev["proc.comm"] == Path(sys.executable).name[:15]
        assert ev["proc.tid"] == pid
        assert ev["proc.mntns_id"] == w.mntns_id
        # nsenter, unshare and sh exec into each other: the parent is this test process.
        assert ev["proc.parent.pid"] == os.getpid()
        assert ev["netns_id"] == netns
        assert ev["bound_dev_if"] == 0
        assert ev["runtime.containerId"] == w.container_id
    assert endpoint(ok, "addr") == ("127.0.0.1", port, 6)
    assert (ok["opts"], ok["opts_raw"], ok["error_raw"], ok["error"]) == ("REUSEADDR", 1, 0, "")
    assert endpoint(busy, "addr") == ("127.0.0.1", port, 6)
    assert (busy["error_raw"], busy["error"]) == (98, "EADDRINUSE")
    assert endpoint(udp, "addr") == ("::1", port + 1, 17)
    assert udp["error"] == ""
    assert (udp["opts"], udp["opts_raw"]) == ("REUSEPORT|FREEBIND", 2 | 4)
    # The neighbour's binds happened first and are filtered out in the kernel.
    seen = {d["addr.port"] for d in runner.events()}
    assert not seen & {other, other + 1}
    assert {d["proc.mntns_id"] for d in runner.events()} == {w.mntns_id}


def test_ignore_errors_param(gadget: Path) -> None:
    port = _port()
    with sleeping_container() as w:
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id),
                           "--param", "ignore-errors=true") as runner:
            runner.wait_schema()
            pid, _netns, err = _bind(w, port)
            runner.wait_event(lambda d: d["addr.port"] == port + 1, what="bind of the UDP socket")
            assert runner.stop() == 0, runner.stderr()
    assert err == 98
    mine = runner.events(lambda d: d["proc.pid"] == pid)
    assert [(d["addr.port"], d["error"]) for d in mine] == [(port, ""), (port + 1, "")]
