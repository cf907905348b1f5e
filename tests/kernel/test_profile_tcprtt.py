"""profile_tcprtt on this kernel: real TCP round trips on loopback in containers' own netns.

In each container (own mount and network namespace), one process runs a server and a client
on chosen loopback addresses and makes N request/reply round trips, each a segment received
by each side, so each side's socket counts at least N samples. The gadget, filtered to one
container, must count them under the right remote address (with --by-remote-addr), in slots a
loopback round trip can take, and show nothing of the neighbour container's connection.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.netns import in_netns_of, netns_container
from tests.kernel.runner_proc import RunnerProcess, python_argv
from tests.workloads import ContainerWorkload

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

SLOTS = 27
ROUND_TRIPS = 200
# argv: server address, client address, round trips. Prints "done" when both sides closed.
PING_PONG = """
import socket, sys, threading
server_host, client_host, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
srv = socket.socket()
srv.bind((server_host, 0))
srv.listen()
def serve():
    conn, _ = srv.accept()
    while data := conn.recv(64):
        conn.sendall(data)
    conn.close()
thread = threading.Thread(target=serve)
thread.start()
cli = socket.socket()
cli.bind((client_host, 0))
cli.connect(srv.getsockname())
for _ in range(n):
    cli.sendall(b"ping")
    assert cli.recv(64) == b"ping"
cli.close()
thread.join()
print("done", flush=True)
"""


def _ping_pong(w: ContainerWorkload, server: str, client: str) -> None:
    proc = w.popen(in_netns_of(w, [*python_argv(PING_PONG), server, client, str(ROUND_TRIPS)]),
                   stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=120)
    assert (proc.returncode, out) == (0, b"done\n")


Hists = dict[tuple[str, str], list[int]]


def _histograms(runner: RunnerProcess) -> Hists:
    """{(local, remote): srtt slots summed over every fetch so far}."""
    out: Hists = {}
    for rec in runner.of_type("array"):
        for r in rec["data"]:
            key = (r["local"], r["remote"])
            out[key] = [a + b for a, b in zip(out.get(key, [0] * SLOTS), r["srtt"], strict=True)]
    return out


@contextmanager
def _traced(gadget: Path, *params: str) -> Iterator[tuple[RunnerProcess, ContainerWorkload,
                                                           ContainerWorkload]]:
    with ExitStack() as stack:
        target = stack.enter_context(netns_container())
        neighbour = stack.enter_context(netns_container())
        args = [a for p in params for a in ("--param", p)]
        runner = stack.enter_context(RunnerProcess(
            gadget, "--mntns", str(target.mntns_id), "--map-fetch-interval", "0.5",
            "--timeout", "300", *args))
        runner.wait_schema()
        yield runner, target, neighbour


def _wait_counts(runner: RunnerProcess, enough: dict[tuple[str, str], int]) -> Hists:
    """Fetches until each key has at least its count (the last interval is flushed on stop)."""
    for _ in range(240):
        hists = _histograms(runner)
        if all(sum(hists.get(k, [])) >= n for k, n in enough.items()):
            return hists
        runner.next_fetch(timeout=60)
    raise AssertionError(f"never counted {enough}: {_histograms(runner)}")


@pytest.fixture(scope="module")
def gadget(built_gadgets: dict[str, Path]) -> Path:
    return built_gadgets["profile_tcprtt"]


def test_histogram_per_remote_address_of_the_target_container(gadget: Path) -> None:
    with _traced(gadget, "by-remote-addr=true") as (runner, target, neighbour):
        # The neighbour first: were it not filtered, it would be counted before the target.
        _ping_pong(neighbour, "127.0.0.7", "127.0.0.8")
        _ping_pong(target, "127.0.0.5", "127.0.0.6")
        # the server's socket receives the pings from .6, the client's the replies from .5
        hists = _wait_counts(runner, {("", "127.0.0.6"): ROUND_TRIPS,
                                      ("", "127.0.0.5"): ROUND_TRIPS})
        assert runner.stop() == 0, runner.stderr()
    assert set(hists) == {("", "127.0.0.5"), ("", "127.0.0.6")}, hists
    for slots in hists.values():
        # a loopback round trip takes over 1 us and less than a second (slot 20: 2^20 us)
        assert not any(slots[:1]) and not any(slots[20:]), hists
    rows = [r for rec in runner.of_type("array") for r in rec["data"]]
    assert {(r["remote.addr"], r["remote.version"], r["local.version"]) for r in rows} == \
        {("127.0.0.5", 4, 0), ("127.0.0.6", 4, 0)}, rows


def test_one_histogram_by_local_and_remote_address_and_in_milliseconds(gadget: Path) -> None:
    with _traced(gadget) as (runner, target, _neighbour):
        _ping_pong(target, "127.0.0.5", "127.0.0.6")
        (overall,) = _wait_counts(runner, {("", ""): 2 * ROUND_TRIPS}).values()
        assert runner.stop() == 0, runner.stderr()
    assert any(overall[2:]), overall  # microseconds: loopback round trips take over 4 us
    pairs = ("by-local-addr=true", "by-remote-addr=true")
    with _traced(gadget, *pairs, "milliseconds=true") as (runner, target, _neighbour), \
            RunnerProcess(gadget, "--mntns", str(target.mntns_id), "--map-fetch-interval",
                          "0.5", "--timeout", "300",
                          *[a for p in pairs for a in ("--param", p)]) as in_us:
        in_us.wait_schema()  # the same segments, in microseconds
        _ping_pong(target, "127.0.0.5", "127.0.0.6")
        enough = {("127.0.0.5", "127.0.0.6"): ROUND_TRIPS, ("127.0.0.6", "127.0.0.5"): ROUND_TRIPS}
        hists = _wait_counts(runner, enough)
        us_hists = _wait_counts(in_us, enough)
        assert runner.stop() == 0, runner.stderr()
        assert in_us.stop() == 0, in_us.stderr()
    assert set(hists) == set(us_hists) == set(enough), (hists, us_hists)
    # milliseconds are microseconds / 1000: a sample in slot s (2^s us and more) lands in slot
    # s - 9 or lower; nothing on loopback takes a second. (How long a round trip takes is the
    # machine's: a loaded one can take milliseconds, so no sample needs to be in slot 0.)
    for key, slots in hists.items():
        top_us = max(i for i, n in enumerate(us_hists[key]) if n)
        top_ms = max(i for i, n in enumerate(slots) if n)
        assert top_ms <= max(0, top_us - 9) and not any(slots[10:]), (key, slots, us_hists[key])
