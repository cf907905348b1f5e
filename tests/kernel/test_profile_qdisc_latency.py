"""profile_qdisc_latency on this kernel: two network namespaces made by the test, joined by a
veth pair whose sending end has an htb root qdisc (no classes: every packet goes through its
direct queue, unshaped, and is enqueued and dequeued; pfifo would let packets bypass an empty
queue). UDP datagrams sent through it are counted in the histogram of that interface (its
network namespace, ifindex and name), at least as many as were sent: ARP and the kernel's own
packets may add to them. With a container selected, the packets its process sent count, and
a neighbour container's runner does not count them."""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.netns import left_host_netns, netns_run
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv, wait_exit
from tests.workloads import sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

PACKETS = 200
SEND = ("import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    s.sendto(b'x' * 100, ('10.214.9.2', 9))\n")




@contextlib.contextmanager
def _veth_pair() -> Iterator[tuple[int, int, str, int]]:
    """(sender pid, its netns, its veth end, that end's ifindex); the end has an htb qdisc."""
    mine, peer_if = f"kqa{secrets.token_hex(3)}", f"kqb{secrets.token_hex(3)}"
    procs = [subprocess.Popen(["unshare", "--net", "sleep", "1000"]) for _ in range(2)]
    try:
        sender, peer = (p.pid for p in procs)
        netns = left_host_netns(sender)
        left_host_netns(peer)
        subprocess.run(["ip", "link", "add", mine, "netns", str(sender), "type", "veth",
                        "peer", "name", peer_if, "netns", str(peer)], check=True, timeout=60)
        for pid, ifname, addr in ((sender, mine, "10.214.9.1/24"),
                                  (peer, peer_if, "10.214.9.2/24")):
            netns_run(pid, "ip", "addr", "add", addr, "dev", ifname)
            netns_run(pid, "ip", "link", "set", ifname, "up")
        netns_run(sender, "tc", "qdisc", "add", "dev", mine, "root", "handle", "1:", "htb")
        ifindex = int(netns_run(sender, "ip", "-o", "link", "show", "dev", mine).split(":")[0])
        yield sender, netns, mine, ifindex
    finally:
        for p in procs:
            p.kill()
            wait_exit(p)


def _counter(netns: int, ifindex: int) -> tuple[list[Record], Callable[[Record], bool]]:
    """Rows of the interface seen so far, and a wait_for predicate: PACKETS of them yet?"""
    rows: list[Record] = []

    def enough(rec: Record) -> bool:
        if rec.get("type") == "array":
            rows.extend(d for d in rec["data"] if (d["netns_id"], d["ifindex"]) == (netns, ifindex))
        return sum(sum(d["latency"]) for d in rows) >= PACKETS

    return rows, enough


def _mine(runner: RunnerProcess, netns: int, ifindex: int) -> list[Record]:
    return [d for a in runner.of_type("array") for d in a["data"]
            if (d["netns_id"], d["ifindex"]) == (netns, ifindex)]


def test_packets_through_a_qdisc(built_gadgets: dict[str, Path]) -> None:
    gadget = built_gadgets["profile_qdisc_latency"]
    with _veth_pair() as (sender, netns, ifname, ifindex), \
            sleeping_container() as w, sleeping_container() as neighbour:
        every, selected, other = (
            RunnerProcess(gadget, "--map-fetch-interval", "0.3", *args)
            for args in ((), ("--container-id", w.container_id),
                         ("--container-id", neighbour.container_id)))
        with every, selected, other:
            for runner in (every, selected, other):
                runner.wait_for(lambda r: r.get("type") == "array", 60, "a first interval")
            send = w.popen(["nsenter", "-t", str(sender), "-n", *python_argv(SEND),
                            str(PACKETS)])
            assert wait_exit(send, 60) == 0
            counted, enough = _counter(netns, ifindex)
            every.wait_for(enough, 60, f"{PACKETS} packets in the interface's histograms")
            link = json.loads(netns_run(sender, "ip", "-j", "-s", "link", "show", "dev", ifname))
            sent = link[0]["stats64"]["tx"]["packets"]
            in_container, enough = _counter(netns, ifindex)
            selected.wait_for(enough, 60, f"{PACKETS} packets of the selected container")
            # One more interval of the neighbour's runner: everything before it is in.
            other.next_fetch(60)
            for runner in (every, selected, other):
                assert runner.stop() == 0, runner.stderr()

    assert {d["ifname"] for d in counted} == {ifname} == {d["ifname"] for d in in_container}
    assert all(len(d["latency"]) == 27 for d in counted)
    # Every packet the interface sent went through the qdisc; none is counted twice.
    total = sum(sum(d["latency"]) for d in counted)
    assert PACKETS <= total <= sent + 16, (total, sent)
    # The neighbour queued none of them (its runner may see ARP or IPv6 packets the kernel
    # sent on the interface while a neighbour's process was the interrupted task: not many).
    assert sum(sum(d["latency"]) for d in _mine(other, netns, ifindex)) < PACKETS // 2
