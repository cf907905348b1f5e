"""trace_tcp on this kernel: connections made, accepted, closed and refused inside a container.

The workload runs in its own mount and network namespace: a server process listens, a forked
client process connects (IPv4, then IPv6), the server closes first and the client follows, and
finally the server connects to a bound port nobody listens on (refused). On loopback the
handshake's last step runs in the client's context, so a gadget that reported the current task
would give the accept to the client: the test checks every record names the socket's owner.
A neighbour container does the same and must be filtered out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.netns import (
    endpoint,
    in_netns_of,
    in_new_netns,
    netns_container,
    socket_enricher,
)
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv, wait_exit
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]
__all__ = ["socket_enricher"]  # a fixture used below

CONVERSATION = """
import json, os, socket
def pair(family, host):
    srv = socket.socket(family)
    srv.bind((host, 0))
    srv.listen()
    port = srv.getsockname()[1]
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        c = socket.create_connection((host, port))
        os.write(w, str(c.getsockname()[1]).encode())
        c.recv(1)  # returns when the server has closed
        c.close()
        os._exit(0)
    conn, _ = srv.accept()
    cport = int(os.read(r, 16))
    conn.close()
    os.waitpid(child, 0)
    return {"client": child, "port": port, "cport": cport}
out = {"server": os.getpid(), "netns": os.stat("/proc/self/ns/net").st_ino,
       "v4": pair(socket.AF_INET, "127.0.0.1"), "v6": pair(socket.AF_INET6, "::1")}
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
out["dead"] = probe.getsockname()[1]
refused = socket.socket()
try:
    refused.connect(("127.0.0.1", out["dead"]))
except ConnectionRefusedError:
    out["refused_port"] = refused.getsockname()[1]
print(json.dumps(out), flush=True)
"""


@pytest.fixture(scope="module")
def gadget(built_gadgets: dict[str, Path]) -> Path:
    return built_gadgets["trace_tcp"]


def _converse(w: ContainerWorkload) -> dict[str, Any]:
    proc = w.popen(in_new_netns(python_argv(CONVERSATION)), stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    result: dict[str, Any] = json.loads(out)
    return result


def _trace(gadget: Path, *args: str) -> tuple[RunnerProcess, dict[str, Any], ContainerWorkload,
                                             ContainerWorkload]:
    with sleeping_container() as w, sleeping_container() as neighbour:
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id), *args) as runner:
            runner.wait_schema()
            _converse(neighbour)
            seen = _converse(w)
            runner.wait_event(lambda d: d["error"] == "ECONNREFUSED" and
                              d["dst.port"] == seen["dead"], what="the refused connect")
            assert runner.stop() == 0, runner.stderr()
    return runner, seen, w, neighbour


def _one(events: list[Record], kind: str, src_port: int) -> Record:
    hits = [d for d in events if d["type"] == kind and d["src.port"] == src_port]
    assert len(hits) == 1, f"{len(hits)} {kind} records from port {src_port}: {events}"
    return hits[0]


def test_connect_accept_close_refused_with_owners(gadget: Path) -> None:
    runner, seen, w, neighbour = _trace(gadget)
    events = runner.events()
    server = seen["server"]
    for family, host in (("v4", "127.0.0.1"), ("v6", "::1")):
        client, port, cport = (seen[family][k] for k in ("client", "port", "cport"))
        connect = _one(events, "connect", cport)
        accept = _one(events, "accept", port)
        assert connect["proc.pid"] == client and accept["proc.pid"] == server
        assert endpoint(connect, "src") == endpoint(accept, "dst") == (host, cport, 6)
        assert endpoint(connect, "dst") == endpoint(accept, "src") == (host, port, 6)
        assert connect["error"] == accept["error"] == ""
        # each side's close is reported once, for its owner
        assert _one(events, "close", port)["proc.pid"] == server
        assert _one(events, "close", cport)["proc.pid"] == client
    refused = _one(events, "connect", seen["refused_port"])
    assert refused["proc.pid"] == server
    assert endpoint(refused, "dst") == ("127.0.0.1", seen["dead"], 6)
    assert (refused["error_raw"], refused["error"]) == (111, "ECONNREFUSED")
    assert len(events) == 9, events  # 2 x (connect, accept, 2 closes) + the refused connect
    for ev in events:
        assert ev["proc.mntns_id"] == w.mntns_id
        assert ev["netns_id"] == seen["netns"]
        assert ev["runtime.containerId"] == w.container_id
        assert ev["proc.comm"] == Path(sys.executable).name[:15]
    assert neighbour.mntns_id not in {d["proc.mntns_id"] for d in runner.events()}


def test_failure_only_param(gadget: Path) -> None:
    runner, seen, _w, _n = _trace(gadget, "--param", "failure-only=true")
    events = runner.events()
    assert [(d["type"], d["src.port"], d["error"]) for d in events] == [
        ("connect", seen["refused_port"], "ECONNREFUSED")]


# Listens before the gadget starts; prints its port, accepts one connection, reads until EOF.
EARLY_LISTENER = """
import socket
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
while conn.recv(100):
    pass
"""
CONNECT = """
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(c.getsockname()[1], flush=True)
c.close()
"""


def test_listener_older_than_the_gadget_is_found_in_the_sockets_map(
        gadget: Path, socket_enricher: Path) -> None:
    with netns_container() as w:
        server = w.popen(in_netns_of(w, python_argv(EARLY_LISTENER)), stdout=subprocess.PIPE)
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id)) as runner:
            runner.wait_schema()
            client = w.popen(in_netns_of(w, [*python_argv(CONNECT), str(port)]),
                             stdout=subprocess.PIPE)
            out, _ = client.communicate(timeout=60)
            cport = int(out)
            accept = runner.wait_event(lambda d: d["type"] == "accept" and d["src.port"] == port,
                                       what="the accept")
            runner.wait_event(lambda d: d["type"] == "close" and d["src.port"] == port,
                              what="the server's close")
            assert runner.stop() == 0, runner.stderr()
        wait_exit(server)
    # On loopback the handshake completes in the client's context: only the sockets map can
    # name the server, whose listen() happened before the gadget was there to see it.
    assert accept["proc.pid"] == server.pid != client.pid
    assert endpoint(accept, "dst") == ("127.0.0.1", cport, 6)
    assert accept["proc.mntns_id"] == w.mntns_id
    connect = runner.events(lambda d: d["type"] == "connect")
    assert [d["proc.pid"] for d in connect] == [client.pid]
