"""tc programs (`classifier/ingress/...`, `classifier/egress/...`) on a target's interfaces.

Two network namespaces made by the test and joined by a veth pair: the target (a container
with its own mount and network namespace) sends UDP to an echo process in the other one. The
gadget must see the request leave and the reply come in on the target's veth end, with the
target's namespace in cb[0], attached as tcx links where the kernel has them (Linux 6.6+) or
as filters on clsact qdiscs (`--tc-attach qdisc`, what older kernels get), and the runner's
log says which. At the end nothing of the runner's is left on the interfaces, also when the
runner was SIGKILLed: a tcx link goes with the process; filters a killed runner left on a
qdisc are removed by the next runner, never a live runner's, never the user's own qdisc and
filter on the same interface. What is on an interface is read with `tc` and, for tcx (which
this iproute2 and bpftool do not show), with a BPF_PROG_QUERY of the interface's tcx hooks.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_GADGETS_SRC, needs_root_btf, needs_unshare
from tests.kernel.netns import left_host_netns, netns_run
from tests.kernel.runner_proc import RunnerProcess, python_argv, wait_exit
from tests.workloads import ContainerWorkload, run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

PORT = 17_171
ECHO = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', {PORT}))
print('ready', flush=True)
while True:
    data, peer = s.recvfrom(100)
    s.sendto(data, peer)
"""
# On each line of stdin: send to the echo peer, wait for the reply, print our port.
CLIENT = f"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for line in sys.stdin:
    s.sendto(b'ping', ('10.213.7.2', {PORT}))
    s.recvfrom(100)
    print(s.getsockname()[1], flush=True)
"""
# Prints how many programs are on the tcx ingress and egress hooks of interface argv[1]
# (BPF_PROG_QUERY with BPF_TCX_INGRESS / BPF_TCX_EGRESS; 0 when none).
TCX_QUERY = """
import ctypes, os, platform, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 321, "aarch64": 280}[platform.machine()]
ifindex = socket.if_nametoindex(sys.argv[1])
counts = []
for attach_type in (46, 47):
    attr = ctypes.create_string_buffer(struct.pack("=IIIIQIIQQQQ", ifindex, attach_type,
                                                   0, 0, 0, 0, 0, 0, 0, 0, 0))
    if libc.syscall(nr, 16, attr, len(attr.raw) - 1) != 0:
        sys.exit(os.strerror(ctypes.get_errno()))
    counts.append(struct.unpack_from("=I", attr.raw, 24)[0])
print(*counts)
"""
USER_FILTER = ("protocol", "all", "prio", "7", "u32", "match", "u32", "0", "0",
               "classid", "1:7")




def _has_tcx() -> bool:
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return (major, minor) >= (6, 6)


@dataclass
class Box:
    """The target container, its veth end `mine` and two more interfaces (a veth pair inside
    its namespace) on which nobody but a runner adds a qdisc."""

    box: ContainerWorkload
    mine: str
    ifindex: int
    netns: int
    extra: tuple[str, str]

    @property
    def interfaces(self) -> tuple[str, ...]:
        return (self.mine, *self.extra)

    def tc(self, *args: str) -> Any:
        return json.loads(netns_run(self.box.pid, "tc", "-j", *args) or "[]")

    def bpf_filters(self, dev: str) -> list[dict[str, Any]]:
        """The bpf filters on both sides of `dev` (entries with options: the filters)."""
        return [f for side in ("ingress", "egress")
                for f in self.tc("filter", "show", "dev", dev, side)
                if f.get("kind") == "bpf" and f.get("options")]

    def clsact(self, dev: str) -> bool:
        return any(q.get("kind") == "clsact" for q in self.tc("qdisc", "show", "dev", dev))

    def tcx_programs(self, dev: str) -> tuple[int, int]:
        out = netns_run(self.box.pid, *python_argv(TCX_QUERY), dev).split()
        return int(out[0]), int(out[1])

    def user_filters(self) -> list[dict[str, Any]]:
        return [f for f in self.tc("filter", "show", "dev", self.mine, "ingress")
                if f.get("kind") == "u32" and f.get("pref") == 7]

    def exchange(self) -> int:
        """One request and its reply; the client's port."""
        proc = self.box.process
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        return int(proc.stdout.readline())


@contextlib.contextmanager
def _veth_box() -> Iterator[Box]:
    mine, peer_if = f"kga{secrets.token_hex(3)}", f"kgb{secrets.token_hex(3)}"
    extra = (f"kgc{secrets.token_hex(3)}", f"kgd{secrets.token_hex(3)}")
    argv = ["unshare", "--net", *[sys.executable, "-I", "-S", "-c", CLIENT]]
    peer = subprocess.Popen(["unshare", "--net", sys.executable, "-I", "-S", "-c", ECHO],
                            stdout=subprocess.PIPE)
    try:
        with run_in_container(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as box:
            netns = left_host_netns(box.pid)
            left_host_netns(peer.pid)
            assert peer.stdout is not None and peer.stdout.readline() == b"ready\n"
            subprocess.run(["ip", "link", "add", mine, "netns", str(box.pid), "type", "veth",
                            "peer", "name", peer_if, "netns", str(peer.pid)], check=True)
            for pid, ifname, addr in ((box.pid, mine, "10.213.7.1/24"),
                                      (peer.pid, peer_if, "10.213.7.2/24")):
                netns_run(pid, "ip", "addr", "add", addr, "dev", ifname)
                netns_run(pid, "ip", "link", "set", ifname, "up")
            netns_run(box.pid, "ip", "link", "add", extra[0], "type", "veth", "peer", "name",
                      extra[1])
            ifindex = int(netns_run(box.pid, "ip", "-o", "link", "show", "dev", mine).split(":")[0])
            yield Box(box, mine, ifindex, netns, extra)
    finally:
        peer.kill()
        wait_exit(peer)
        if peer.stdout is not None:
            peer.stdout.close()


def _runner(gadget: Path, b: Box, *args: str) -> RunnerProcess:
    return RunnerProcess(gadget, "--mntns", str(b.box.mntns_id), "--param", f"port={PORT}",
                         "--timeout", "120", *args)


def _sees_both_ways(runner: RunnerProcess, b: Box) -> None:
    sport = b.exchange()
    out = runner.wait_event(lambda d: not d["ingress"] and d["sport"] == sport,
                            what="the request leaving")
    back = runner.wait_event(lambda d: d["ingress"] and d["dport"] == sport,
                             what="the reply coming in")
    assert (out["netns_id"], out["ifindex"], out["dport"]) == (b.netns, b.ifindex, PORT)
    assert (back["netns_id"], back["ifindex"], back["sport"]) == (b.netns, b.ifindex, PORT)


def _wait_until(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


def _kill(runner: RunnerProcess) -> None:
    assert runner.proc is not None
    runner.proc.kill()
    runner.proc.wait(30)


def _nothing_of_a_runner(b: Box, tcx: bool = True) -> bool:
    return all(not b.bpf_filters(dev) and not b.clsact(dev)
               and (not tcx or b.tcx_programs(dev) == (0, 0))
               for dev in b.interfaces)


@pytest.mark.parametrize("mode", ["auto", "qdisc"])
def test_tc_programs_on_a_veth_pair_of_a_test_namespace(
        build_gadget: Callable[[Path], Path], mode: str) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "tc_packets")
    tcx = mode == "auto" and _has_tcx()
    with _veth_box() as b:
        with _runner(gadget, b, "--tc-attach", mode) as runner:
            runner.wait_schema()
            said = "tcx links" if tcx else "filters on clsact qdiscs"
            assert f"on 3 interface(s) of netns {b.netns}: {said}" in runner.stderr()
            for dev in b.interfaces:
                if tcx:
                    assert b.tcx_programs(dev) == (1, 1) and not b.clsact(dev)
                else:
                    assert len(b.bpf_filters(dev)) == 2 and b.clsact(dev)
            _sees_both_ways(runner, b)
            assert runner.stop() == 0, runner.stderr()
            assert runner.end()["reason"] == "signal"
        assert _nothing_of_a_runner(b, _has_tcx())  # the runner removed what it added


@pytest.mark.skipif(not _has_tcx(), reason="tcx links need Linux 6.6 or later")
def test_a_sigkilled_runner_leaves_nothing_with_tcx(
        build_gadget: Callable[[Path], Path]) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "tc_packets")
    with _veth_box() as b:
        netns_run(b.box.pid, "tc", "qdisc", "add", "dev", b.mine, "clsact")
        netns_run(b.box.pid, "tc", "filter", "add", "dev", b.mine, "ingress", *USER_FILTER)
        user = b.user_filters()
        assert user
        with _runner(gadget, b) as runner:
            runner.wait_schema()
            assert all(b.tcx_programs(dev) == (1, 1) for dev in b.interfaces)
            _kill(runner)
        # The kernel detaches a tcx link when its last fd closes: with the process.
        _wait_until(lambda: all(b.tcx_programs(dev) == (0, 0) for dev in b.interfaces),
                    "the killed runner's tcx links are gone")
        assert not any(b.bpf_filters(dev) for dev in b.interfaces)
        assert not b.clsact(b.extra[0]) and not b.clsact(b.extra[1])
        assert b.clsact(b.mine) and b.user_filters() == user  # the user's stay


def test_filters_a_killed_qdisc_runner_left_are_removed_by_the_next_only(
        build_gadget: Callable[[Path], Path]) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "tc_packets")
    qdisc = ("--tc-attach", "qdisc")
    with _veth_box() as b:
        netns_run(b.box.pid, "tc", "qdisc", "add", "dev", b.mine, "clsact")
        netns_run(b.box.pid, "tc", "filter", "add", "dev", b.mine, "ingress", *USER_FILTER)
        user = b.user_filters()
        with _runner(gadget, b, *qdisc) as killed:
            killed.wait_schema()
            assert killed.proc is not None
            killed_pid = killed.proc.pid
            _kill(killed)
        # What the kernel keeps of a killed runner's qdisc filters: the problem being solved.
        assert all(len(b.bpf_filters(dev)) == 2 for dev in b.interfaces)
        assert all(b.clsact(dev) for dev in b.interfaces)
        with _runner(gadget, b, *qdisc) as nxt:
            nxt.wait_schema()
            log = nxt.stderr()
            for dev in b.interfaces:
                assert (f"removed 2 tc filter(s) left on {dev} in netns {b.netns} by a runner "
                        f"that is gone (pid {killed_pid})") in log, log
            # Its own filters only (the killed runner's program ids are gone).
            mine = {f["options"]["prog"]["id"] for dev in b.interfaces
                    for f in b.bpf_filters(dev)}
            assert all(len(b.bpf_filters(dev)) == 2 for dev in b.interfaces)
            assert nxt.proc is not None
            with _runner(gadget, b, *qdisc) as third:  # a live runner's filters are kept
                third.wait_schema()
                assert "tc filter(s) left on" not in third.stderr(), third.stderr()
                ids = {f["options"]["prog"]["id"] for dev in b.interfaces
                       for f in b.bpf_filters(dev)}
                assert mine < ids and all(len(b.bpf_filters(dev)) == 4 for dev in b.interfaces)
                _sees_both_ways(nxt, b)
                _sees_both_ways(third, b)
                assert third.stop() == 0, third.stderr()
            assert {f["options"]["prog"]["id"] for dev in b.interfaces
                    for f in b.bpf_filters(dev)} == mine
            _sees_both_ways(nxt, b)
            assert nxt.stop() == 0, nxt.stderr()
        assert not any(b.bpf_filters(dev) for dev in b.interfaces)
        # The qdiscs runners made are gone; the user's, and the user's filter, stay.
        assert not b.clsact(b.extra[0]) and not b.clsact(b.extra[1])
        assert b.clsact(b.mine) and b.user_filters() == user
