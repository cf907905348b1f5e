"""top_tcp on this kernel: a process in its own mount namespace moves a known number of bytes
each way over an IPv4 and an IPv6 connection to itself; the per-interval counts add up to
exactly those bytes for each end, the container filter hides a neighbour doing the same, and
--family 6 keeps the IPv6 connections only."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv
from tests.workloads import ContainerWorkload, run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare,
              pytest.mark.skipif(not Path("/sys/kernel/tracing/events/sock/sock_send_length")
                                 .exists() and not Path("/sys/kernel/debug/tracing/events/sock/"
                                                        "sock_send_length").exists(),
                                 reason="this kernel has no sock:sock_send_length tracepoint "
                                 "(Linux 6.3+)")]

COMM = "tcpmover"
UP, DOWN = 150_001, 7_003  # bytes the client sends, bytes the server answers
# On a stdin line: connects over IPv4 and IPv6 to its own listeners, moves UP bytes up and
# DOWN bytes down on each, prints the ports and waits for the next line.
MOVER = (
    "import ctypes, json, socket, sys\n"
    f"ctypes.CDLL(None).prctl(15, b'{COMM}', 0, 0, 0)\n"
    "def move(family, host):\n"
    "    lst = socket.socket(family); lst.bind((host, 0)); lst.listen()\n"
    "    cli = socket.create_connection(lst.getsockname()[:2]); srv, _ = lst.accept()\n"
    f"    cli.sendall(b'u' * {UP}); got = 0\n"
    f"    while got < {UP}: got += len(srv.recv(65536))\n"
    f"    srv.sendall(b'd' * {DOWN}); got = 0\n"
    f"    while got < {DOWN}: got += len(cli.recv(65536))\n"
    "    ports = [lst.getsockname()[1], cli.getsockname()[1]]\n"
    "    for s in (cli, srv, lst): s.close()\n"
    "    return ports\n"
    "print('ready', flush=True)\n"
    "for _ in sys.stdin:\n"
    "    print(json.dumps({'4': move(socket.AF_INET, '127.0.0.1'),\n"
    "                      '6': move(socket.AF_INET6, '::1')}), flush=True)\n"
)


@contextmanager
def _mover() -> Iterator[ContainerWorkload]:
    with run_in_container(python_argv(MOVER), stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as w:
        assert w.process.stdout is not None
        assert w.process.stdout.readline() == b"ready\n"
        yield w


def _move(w: ContainerWorkload) -> dict[str, list[int]]:
    assert w.process.stdin is not None and w.process.stdout is not None
    w.process.stdin.write(b"go\n")
    w.process.stdin.flush()
    return json.loads(w.process.stdout.readline())  # type: ignore[no-any-return]


def _totals(runner: RunnerProcess) -> dict[tuple[int, str, str], list[int]]:
    """(pid, src, dst) -> [sent, received] summed over every interval."""
    out: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for rec in runner.of_type("array"):
        for r in rec["data"]:
            t = out[(r["proc.pid"], r["src"], r["dst"])]
            t[0] += r["sent"]
            t[1] += r["received"]
    return dict(out)


def _after(runner: RunnerProcess, fetches: int) -> Record:
    """Wait until `fetches` more intervals are over (the counts so far are all in)."""
    now = max([r["fetch"] for r in runner.of_type("array")], default=0)
    return runner.wait_for(lambda r: r.get("type") == "array" and r["fetch"] >= now + fetches,
                           timeout=30, what="the next intervals")


def test_bytes_per_connection(built_gadgets: dict[str, Path]) -> None:
    gadget = built_gadgets["top_tcp"]
    with _mover() as target, _mover() as neighbour, \
            RunnerProcess(gadget, "--container-id", target.container_id,
                          "--map-fetch-interval", "0.5") as runner, \
            RunnerProcess(gadget, "--mntns", str(target.mntns_id), "--mntns",
                          str(neighbour.mntns_id), "--param", "family=6",
                          "--map-fetch-interval", "0.5") as v6:
        runner.wait_schema()
        v6.wait_schema()
        ports, other = _move(target), _move(neighbour)
        _after(runner, 2)
        _after(v6, 2)
        assert runner.stop() == 0, runner.stderr()
        assert v6.stop() == 0, v6.stderr()

    totals = _totals(runner)
    assert {pid for pid, _s, _d in totals} == {target.pid}, totals
    rows = [r for rec in runner.of_type("array") for r in rec["data"]]
    assert {r["proc.comm"] for r in rows} == {COMM}
    assert {r["proc.mntns_id"] for r in rows} == {target.mntns_id}
    for version, host in (("4", "127.0.0.1"), ("6", "[::1]")):
        server, client = (f"{host}:{p}" for p in ports[version])
        assert totals[(target.pid, client, server)] == [UP, DOWN], totals
        assert totals[(target.pid, server, client)] == [DOWN, UP], totals
    assert len(totals) == 4, totals

    only6 = _totals(v6)
    assert {src.startswith("[") for _p, src, _d in only6} == {True}, only6
    assert {pid for pid, _s, _d in only6} == {target.pid, neighbour.pid}
    n_server, n_client = (f"[::1]:{p}" for p in other["6"])
    assert only6[(neighbour.pid, n_client, n_server)] == [UP, DOWN]
