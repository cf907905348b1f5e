"""Socket filters per network namespace, and the sockets map the runner fills.

The test gadget `socket_owner` is a `socket1` socket filter reporting TCP/UDP packets of one
port with the namespace the dispatcher gave it and the owner of the packet's local socket,
looked up in gadget_sockets. Workloads run in their own mount namespace (and, for the
namespace test, their own network namespace with `lo` up), so what the gadget says is
compared with what the workload itself saw.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, TEST_GADGETS_SRC, compile_gadget, needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess
from tests.workloads import run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The runner's socket enricher, built for this test run and pointed at by the env."""
    out = tmp_path_factory.mktemp("runtime")
    compile_gadget(REPO / "gadgets" / "runtime" / "socket_enricher", out / "socket_enricher")
    old = os.environ.get("KUBECTL_GADGET_RUNTIME_DIR")
    os.environ["KUBECTL_GADGET_RUNTIME_DIR"] = str(out)
    yield out
    if old is None:
        del os.environ["KUBECTL_GADGET_RUNTIME_DIR"]
    else:
        os.environ["KUBECTL_GADGET_RUNTIME_DIR"] = old


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Sets its comm, then on each line of stdin sends UDP to 127.0.0.1:PORT and prints its port.
UDP_PINGER = """
import socket, sys
open('/proc/self/comm', 'w').write(sys.argv[2])
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for line in sys.stdin:
    s.sendto(b'ping', ('127.0.0.1', port))
    print(s.getsockname()[1], flush=True)
"""

# Sets its comm; a TCP connect, an unconnected UDP send, a connected UDP send; prints ports.
CLIENT = """
import socket, sys, time
open('/proc/self/comm', 'w').write('kg_client')
port = int(sys.argv[1])
tcp = socket.create_connection(('127.0.0.1', port))
tcp.sendall(b'hello')
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.sendto(b'one', ('127.0.0.1', port))
cudp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
cudp.connect(('127.0.0.1', port))
cudp.send(b'two')
print(tcp.getsockname()[1], udp.getsockname()[1], cudp.getsockname()[1], flush=True)
sys.stdin.read()
"""


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", code, *args]


def test_socket_filter_sees_its_target_namespace_only(
        build_gadget: Callable[[Path], Path], runtime_dir: Path) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "socket_owner")
    port = _free_port()
    argv = ["unshare", "--net", "sh", "-c",
            'ip link set lo up && exec "$0" "$@"', *_python(UDP_PINGER, str(port), "kg_pinger")]
    with run_in_container(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as box:
        proc = box.process
        assert proc.stdin is not None and proc.stdout is not None
        deadline = time.monotonic() + 30
        while True:  # wait until unshare has moved the process
            netns = os.stat(f"/proc/{box.pid}/ns/net").st_ino
            if netns != os.stat("/proc/self/ns/net").st_ino:
                break
            assert time.monotonic() < deadline, "the pinger never left the host's netns"
            time.sleep(0.05)
        with RunnerProcess(gadget, "--mntns", str(box.mntns_id), "--param", f"port={port}",
                           "--timeout", "60") as runner:
            runner.wait_schema()
            host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                host.sendto(b"host", ("127.0.0.1", port))
                host_port = host.getsockname()[1]
                proc.stdin.write(b"go\n")
                proc.stdin.flush()
                inner_port = int(proc.stdout.readline())
                event = runner.wait_event(lambda d: d["sport"] == inner_port and d["outgoing"],
                                          what="the target's UDP packet")
                host.sendto(b"host", ("127.0.0.1", port))
                proc.stdin.write(b"go\n")  # a second packet: the host's is older than it
                proc.stdin.flush()
                second = int(proc.stdout.readline())
                runner.wait_event(lambda d: d["sport"] == second and d["outgoing"] and
                                  d is not event, what="the target's second packet")
            finally:
                host.close()
            runner.stop()
            events = runner.events()
    assert event["netns_id"] == netns
    assert event["dport"] == port and event["proto"] == 17
    # The pinger's socket is known (found by the dispatcher's namespace, not the host's).
    assert event["owner_found"] == 1 and event["pid"] == box.pid
    assert event["comm"] == "kg_pinger" and event["mntns_id"] == box.mntns_id
    assert all(e["netns_id"] == netns for e in events), events
    assert not [e for e in events if e["sport"] == host_port], "a host packet was reported"
    assert runner.end()["reason"] == "signal"


def test_sockets_map_names_the_owner_of_tcp_and_udp_sockets(
        build_gadget: Callable[[Path], Path], runtime_dir: Path) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "socket_owner")
    port = _free_port()
    listener = socket.socket()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    receiver.bind(("127.0.0.1", port))
    try:
        with RunnerProcess(gadget, "--param", f"port={port}", "--timeout", "60") as runner:
            runner.wait_schema()
            assert "socket enrichment: cgroup socket hooks on" in runner.stderr()
            with run_in_container(_python(CLIENT, str(port)), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE) as box:
                assert box.process.stdout is not None
                tcp, udp, cudp = map(int, box.process.stdout.readline().split())
                conn, _ = listener.accept()
                got = {}
                for what, sport, proto in (("tcp", tcp, 6), ("udp", udp, 17),
                                           ("connected udp", cudp, 17)):
                    got[what] = runner.wait_event(
                        lambda d, s=sport, p=proto: d["sport"] == s and d["proto"] == p
                        and d["outgoing"] and d["owner_found"], what=f"the {what} packet")
                # The listener's side of the connection is the test process's socket.
                reply = runner.wait_event(lambda d: d["sport"] == port and d["dport"] == tcp
                                          and d["outgoing"], what="the listener's SYN-ACK")
                conn.close()
                pid, mntns = box.pid, box.mntns_id
            runner.stop()
    finally:
        listener.close()
        receiver.close()
    for what, event in got.items():
        assert (event["pid"], event["comm"], event["mntns_id"]) == (pid, "kg_client", mntns), \
            (what, event)
        assert event["netns_id"] == os.stat("/proc/self/ns/net").st_ino
    assert reply["owner_found"] == 1 and reply["pid"] == os.getpid()


# In its own mount namespace: a tmpfs on argv[1] (there only) holding the working directory
# "work" and, bind-mounted at "py", this Python's installation, run from there; prints what the
# process itself sees as its working directory and executable.
PATHS_BOX = 'mount -t tmpfs kg "$1" && mkdir "$1/work" "$1/py" && mount --bind "$2" "$1/py" ' \
    '&& cd "$1/work" && exec "$1/py/$3" -I -S -c "$4" "$5"'
PATHS_CLIENT = """
import json, os, socket, sys
port = int(sys.argv[1])
tcp = socket.create_connection(('127.0.0.1', port))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.sendto(b'one', ('127.0.0.1', port))
print(json.dumps({"ports": [tcp.getsockname()[1], udp.getsockname()[1]], "cwd": os.getcwd(),
                  "exe": os.readlink('/proc/self/exe')}), flush=True)
sys.stdin.read()
"""


def test_sockets_map_gives_the_owners_cwd_and_executable_across_its_mounts(
        build_gadget: Callable[[Path], Path], runtime_dir: Path, tmp_path: Path) -> None:
    """The directory and the executable exist only in the owner's mount namespace (a tmpfs
    and a bind mount there): the path is walked through its mounts, not looked up by name."""
    gadget = build_gadget(TEST_GADGETS_SRC / "socket_owner")
    port = _free_port()
    box_dir = tmp_path / "box"
    box_dir.mkdir()
    exe = Path(os.path.realpath(sys.executable))
    prefix = exe.parent.parent
    listener = socket.socket()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    receiver.bind(("127.0.0.1", port))
    argv = ["sh", "-c", PATHS_BOX, "sh", str(box_dir), str(prefix),
            str(exe.relative_to(prefix)), PATHS_CLIENT, str(port)]
    try:
        with RunnerProcess(gadget, "--param", f"port={port}", "--timeout", "60") as runner:
            runner.wait_schema()
            with run_in_container(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as box:
                assert box.process.stdout is not None
                seen = json.loads(box.process.stdout.readline())
                tcp, udp = seen["ports"]
                conn, _ = listener.accept()
                got = {what: runner.wait_event(
                    lambda d, s=sport, p=proto: d["sport"] == s and d["proto"] == p
                    and d["outgoing"] and d["owner_found"], what=f"the {what} packet")
                    for what, sport, proto in (("tcp", tcp, 6), ("udp", udp, 17))}
                conn.close()
                pid = box.pid
            runner.stop()
    finally:
        listener.close()
        receiver.close()
    assert seen == {"ports": [tcp, udp], "cwd": f"{box_dir}/work",
                    "exe": f"{box_dir}/py/{exe.relative_to(prefix)}"}
    assert not os.path.exists(seen["exe"])  # on the host, the box's mounts are not there
    for what, event in got.items():
        assert (event["pid"], event["cwd"], event["exepath"]) == \
            (pid, seen["cwd"], seen["exe"]), (what, event)


# Listens before the runner starts, then accepts one connection and holds it.
LISTENER = """
import socket, sys
open('/proc/self/comm', 'w').write('kg_listener')
s = socket.socket()
s.bind(('127.0.0.1', int(sys.argv[1])))
s.listen()
print('listening', flush=True)
conn, _ = s.accept()
sys.stdin.read()
"""


def test_sockets_open_before_the_start_are_found(
        build_gadget: Callable[[Path], Path], runtime_dir: Path) -> None:
    """Only the start-up scan can know this listener: it was bound before any hook ran."""
    gadget = build_gadget(TEST_GADGETS_SRC / "socket_owner")
    port = _free_port()
    with run_in_container(_python(LISTENER, str(port)), stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as box:
        assert box.process.stdout is not None
        assert box.process.stdout.readline() == b"listening\n"
        cwd, exe = os.readlink(f"/proc/{box.pid}/cwd"), os.readlink(f"/proc/{box.pid}/exe")
        with RunnerProcess(gadget, "--param", f"port={port}", "--timeout", "60") as runner:
            runner.wait_schema()
            with socket.create_connection(("127.0.0.1", port)) as client:
                cport = client.getsockname()[1]
                reply = runner.wait_event(lambda d: d["sport"] == port and d["dport"] == cport
                                          and d["outgoing"], what="the listener's SYN-ACK")
            runner.stop()
        pid, mntns = box.pid, box.mntns_id
    assert reply["owner_found"] == 1
    assert (reply["pid"], reply["comm"], reply["mntns_id"]) == (pid, "kg_listener", mntns)
    # Found by the start-up scan, with the paths of the listener's process.
    assert (reply["cwd"], reply["exepath"]) == (cwd, exe)


# Connects to PORT and holds the connection until stdin closes; prints its own port.
CONNECTOR = """
import socket, sys
open('/proc/self/comm', 'w').write('kg_connector')
c = socket.create_connection((sys.argv[2], int(sys.argv[1])))
print(c.getsockname()[1], flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"),
                                         (socket.AF_INET6, "::1")])
def test_tracing_lookup_by_socket_finds_the_owner_in_softirq_context(
        build_gadget: Callable[[Path], Path], runtime_dir: Path, family: int,
        host: str) -> None:
    """GADGET_TYPE_TRACING's gadget_socket_lookup(sk, netns) on TCP state changes."""
    gadget = build_gadget(TEST_GADGETS_SRC / "tcp_state_owner")
    listener = socket.socket(family)
    listener.bind((host, 0))
    port = listener.getsockname()[1]
    listener.listen()
    try:
        with RunnerProcess(gadget, "--param", f"port={port}", "--timeout", "60") as runner:
            runner.wait_schema()
            with run_in_container(_python(CONNECTOR, str(port), host), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE) as box:
                assert box.process.stdout is not None
                cport = int(box.process.stdout.readline())
                conn, _ = listener.accept()
                # SYN_SENT -> ESTABLISHED happens when the SYN-ACK arrives (softirq).
                est = runner.wait_event(lambda d: d["sport"] == cport and d["newstate"] == 1,
                                        what="the connector's ESTABLISHED")
                conn.close()
                pid, mntns = box.pid, box.mntns_id
            runner.stop()
    finally:
        listener.close()
    assert est["owner_found"] == 1
    assert (est["pid"], est["comm"], est["mntns_id"]) == (pid, "kg_connector", mntns)


# Binds two UDP sockets on [::]: one IPv6-only, one dual-stack; prints both ports.
V6_BINDER = """
import socket, sys
open('/proc/self/comm', 'w').write('kg_v6')
only = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
only.bind(('::', 0))
dual = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
dual.bind(('::', 0))
print(only.getsockname()[1], dual.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_ipv4_packet_finds_a_dual_stack_socket_but_not_an_ipv6_only_one(
        build_gadget: Callable[[Path], Path], runtime_dir: Path) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "socket_owner")
    with RunnerProcess(gadget, "--timeout", "60") as runner:
        runner.wait_schema()
        with run_in_container(_python(V6_BINDER), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE) as box:
            assert box.process.stdout is not None
            only, dual = map(int, box.process.stdout.readline().split())
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for port in (only, dual):
                    sender.sendto(b"x", ("127.0.0.1", port))
                got = {port: runner.wait_event(lambda d, p=port: d["dport"] == p
                                               and not d["outgoing"], what=f"to port {port}")
                       for port in (only, dual)}
            pid = box.pid
        runner.stop()
    assert got[dual]["owner_found"] == 1 and got[dual]["pid"] == pid
    assert got[only]["owner_found"] == 0  # IPv6-only: an IPv4 packet is not its business


def test_a_broken_socket_enricher_leaves_the_gadget_running(
        build_gadget: Callable[[Path], Path], tmp_path: Path) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "socket_owner")
    broken = tmp_path / "runtime" / "socket_enricher"
    broken.mkdir(parents=True)
    (broken / "program.bpf.o").write_bytes(b"\x7fELF not really")
    port = _free_port()
    old = os.environ.get("KUBECTL_GADGET_RUNTIME_DIR")
    os.environ["KUBECTL_GADGET_RUNTIME_DIR"] = str(tmp_path / "runtime")
    try:
        runner = RunnerProcess(gadget, "--param", f"port={port}", "--timeout", "60").start()
    finally:
        if old is None:
            del os.environ["KUBECTL_GADGET_RUNTIME_DIR"]
        else:
            os.environ["KUBECTL_GADGET_RUNTIME_DIR"] = old
    with runner:
        runner.wait_schema()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"x", ("127.0.0.1", port))
            event = runner.wait_event(lambda d: d["dport"] == port, what="the packet")
        runner.stop()
    warnings = [r["message"] for r in runner.of_type("warning")]
    assert any("gadget_sockets stays empty" in w for w in warnings), warnings
    assert event["owner_found"] == 0 and runner.end()["reason"] == "signal"
