"""tc programs (`classifier/ingress/...`, `classifier/egress/...`) on a target's interfaces.

Two network namespaces made by the test and joined by a veth pair: the target (a container
with its own mount and network namespace) sends UDP to an echo process in the other one. The
gadget must see the request leave and the reply come in on the target's veth end, with the
target's namespace in cb[0]; at the end the clsact qdisc the runner added is gone.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TEST_GADGETS_SRC, needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, wait_exit
from tests.workloads import run_in_container

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


def _ns_of(pid: int) -> int:
    for _ in range(100):  # wait until unshare has moved the process
        ino = os.stat(f"/proc/{pid}/ns/net").st_ino
        if ino != os.stat("/proc/self/ns/net").st_ino:
            return ino
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never left the host's network namespace")


def _in_ns(pid: int, *cmd: str) -> str:
    return subprocess.run(["nsenter", "-t", str(pid), "-n", *cmd], check=True,
                          capture_output=True, text=True).stdout


def test_tc_programs_on_a_veth_pair_of_a_test_namespace(
        build_gadget: Callable[[Path], Path]) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "tc_packets")
    mine, peer_if = f"kga{secrets.token_hex(3)}", f"kgb{secrets.token_hex(3)}"
    argv = ["unshare", "--net", *[sys.executable, "-I", "-S", "-c", CLIENT]]
    peer = subprocess.Popen(["unshare", "--net", sys.executable, "-I", "-S", "-c", ECHO],
                            stdout=subprocess.PIPE)
    try:
        with run_in_container(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as box:
            netns = _ns_of(box.pid)
            _ns_of(peer.pid)
            assert peer.stdout is not None and peer.stdout.readline() == b"ready\n"
            subprocess.run(["ip", "link", "add", mine, "netns", str(box.pid), "type", "veth",
                            "peer", "name", peer_if, "netns", str(peer.pid)], check=True)
            for pid, ifname, addr in ((box.pid, mine, "10.213.7.1/24"),
                                      (peer.pid, peer_if, "10.213.7.2/24")):
                _in_ns(pid, "ip", "addr", "add", addr, "dev", ifname)
                _in_ns(pid, "ip", "link", "set", ifname, "up")
            ifindex = int(_in_ns(box.pid, "ip", "-o", "link", "show", "dev", mine).split(":")[0])
            with RunnerProcess(gadget, "--mntns", str(box.mntns_id), "--param", f"port={PORT}",
                               "--timeout", "60") as runner:
                runner.wait_schema()
                assert "clsact" in _in_ns(box.pid, "tc", "qdisc", "show", "dev", mine)
                proc = box.process
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(b"go\n")
                proc.stdin.flush()
                sport = int(proc.stdout.readline())
                out = runner.wait_event(lambda d: not d["ingress"] and d["sport"] == sport,
                                        what="the request leaving")
                back = runner.wait_event(lambda d: d["ingress"] and d["dport"] == sport,
                                         what="the reply coming in")
                runner.stop()
                assert runner.end()["reason"] == "signal"
            qdiscs = _in_ns(box.pid, "tc", "qdisc", "show", "dev", mine)
    finally:
        peer.kill()
        wait_exit(peer)
        if peer.stdout is not None:
            peer.stdout.close()
    assert (out["netns_id"], out["ifindex"], out["dport"]) == (netns, ifindex, PORT)
    assert (back["netns_id"], back["ifindex"], back["sport"]) == (netns, ifindex, PORT)
    assert "clsact" not in qdiscs  # the runner removed what it added
