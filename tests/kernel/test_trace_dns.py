"""trace_dns on this kernel: name lookups by glibc against a DNS responder inside a container.

The container has its own mount and network namespace. A tiny responder (written here, below)
answers on 127.0.0.1:53 there (::1:53 in the IPv6 test): two A records and one AAAA record for
one name, NXDOMAIN for any other. The container's /etc/resolv.conf is bind-mounted to point at
it, and a client process resolves both names with getaddrinfo(), so real glibc queries and real
responses pass the socket filter the runner attached in that namespace. A neighbour container
in another network namespace resolves the same names and must not be seen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.netns import (
    endpoint,
    in_netns_of,
    netns_container,
    netns_inode,
    socket_enricher,
)
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv, wait_exit
from tests.workloads import ContainerWorkload, run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]
__all__ = ["socket_enricher"]  # a fixture used by the tests below

NAME, MISSING = "web.example.test", "missing.example.test"
A_RECORDS, AAAA_RECORD = ("10.1.2.3", "10.1.2.4"), "fd00:0:ab::5"

RESPONDER = """
import socket, struct, sys
name, a_records, aaaa, server = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
sock = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((server, 53))
print("ready", flush=True)
while True:
    query, peer = sock.recvfrom(512)
    qid, flags = struct.unpack_from("!HH", query)
    pos, labels = 12, []
    while query[pos]:
        labels.append(query[pos + 1:pos + 1 + query[pos]].decode())
        pos += 1 + query[pos]
    qtype = struct.unpack_from("!H", query, pos + 1)[0]
    question = query[12:pos + 5]
    answers = []
    if ".".join(labels) == name:
        if qtype == 1:
            answers = [struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(a)
                       for a in a_records]
        elif qtype == 28:
            answers = [struct.pack("!HHHIH", 0xC00C, 28, 1, 60, 16) +
                       socket.inet_pton(socket.AF_INET6, aaaa)]
        rcode = 0
    else:
        rcode = 3
    header = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(answers), 0, 0)
    sock.sendto(header + question + b"".join(answers), peer)
"""

# Points the container's resolver at 127.0.0.1, resolves NAME (A and AAAA) then MISSING.
CLIENT = """
import json, os, socket, sys
name, missing = sys.argv[1:3]
found = sorted({ai[4][0] for ai in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)})
try:
    socket.getaddrinfo(missing, 80, type=socket.SOCK_STREAM)
    err = None
except socket.gaierror as exc:
    err = exc.errno
print(json.dumps({"pid": os.getpid(), "found": found, "error": err}), flush=True)
"""
RESOLV = 'echo "nameserver $1" > "$0" && mount --bind "$0" /etc/resolv.conf && shift && exec "$@"'


@pytest.fixture(scope="module")
def gadget(built_gadgets: dict[str, Path]) -> Path:
    return built_gadgets["trace_dns"]


@pytest.fixture
def resolv(tmp_path: Path) -> str:
    return str(tmp_path / "resolv.conf")


def _lookups(w: ContainerWorkload, resolv_conf: str, server: str = "127.0.0.1"
             ) -> dict[str, Any]:
    """Start the responder in w, resolve the names from another process of w; what it saw."""
    responder = w.popen(in_netns_of(w, [*python_argv(RESPONDER), NAME, ",".join(A_RECORDS),
                                        AAAA_RECORD, server]), stdout=subprocess.PIPE)
    assert responder.stdout is not None
    assert responder.stdout.readline() == b"ready\n"
    client = w.popen(in_netns_of(w, ["sh", "-c", RESOLV, resolv_conf, server,
                                     *python_argv(CLIENT), NAME, MISSING]),
                     stdout=subprocess.PIPE)
    out, _ = client.communicate(timeout=30)
    responder.kill()
    wait_exit(responder)
    assert client.returncode == 0
    seen: dict[str, Any] = json.loads(out)
    assert seen["found"] == sorted([*A_RECORDS, AAAA_RECORD])
    assert seen["error"] == -2  # EAI_NONAME
    return seen


def _name(ev: Record, field: str) -> str:
    """The enumerator name of enum member `<field>_raw` (the decoder's `<field>`)."""
    assert isinstance(ev[f"{field}_raw"], int)
    return str(ev[field])


def _one(events: list[Record], **want: str) -> Record:
    hits = [d for d in events if all(_name(d, k) == v for k, v in want.items() if k != "name")
            and d["name"] == want["name"]]
    assert len(hits) == 1, (want, events)
    return hits[0]


@pytest.fixture
def traced(gadget: Path, socket_enricher: Path,
           resolv: str) -> Iterator[tuple[list[Record], dict[str, Any], ContainerWorkload]]:
    with netns_container() as w, netns_container() as neighbour:
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id)) as runner:
            runner.wait_schema()
            _lookups(neighbour, resolv + ".n")
            seen = _lookups(w, resolv)
            runner.wait_event(lambda d: d["name"] == MISSING and d["rcode"] == "NXDOMAIN",
                              what="the NXDOMAIN response")
            assert runner.stop() == 0, runner.stderr()
        seen["netns"] = netns_inode(w.pid)
        yield runner.events(), seen, w


def test_queries_and_responses_with_names_types_addresses(
        traced: tuple[list[Record], dict[str, Any], ContainerWorkload]) -> None:
    events, seen, w = traced
    qa = _one(events, qr="Q", qtype="A", name=NAME)
    qaaaa = _one(events, qr="Q", qtype="AAAA", name=NAME)
    ra = _one(events, qr="R", qtype="A", name=NAME)
    raaaa = _one(events, qr="R", qtype="AAAA", name=NAME)
    nx = _one(events, qr="R", qtype="A", name=MISSING)
    assert (ra["id"], raaaa["id"]) == (qa["id"], qaaaa["id"])
    assert ra["addresses"] == ",".join(A_RECORDS)
    assert raaaa["addresses"] == AAAA_RECORD
    assert (_name(ra, "rcode"), _name(nx, "rcode"), nx["addresses"]) == (
        "NOERROR", "NXDOMAIN", "")
    assert (ra["ancount"], raaaa["ancount"], nx["ancount"]) == (2, 1, 0)
    assert (qa["qr_raw"], ra["qr_raw"], nx["rcode_raw"], qaaaa["qtype_raw"]) == (0, 1, 3, 28)
    client_port = endpoint(qa, "src")[1]
    for query in (qa, qaaaa):
        assert endpoint(query, "dst") == ("127.0.0.1", 53, 17)
        assert query["latency_ns"] == 0
    for resp in (ra, raaaa, nx):
        assert endpoint(resp, "src") == ("127.0.0.1", 53, 17)
        assert 0 < resp["latency_ns"] < 10**10
    assert endpoint(ra, "dst") == ("127.0.0.1", client_port, 17)
    # Every record names the client (the owner of the port that is not 53), in the container.
    for ev in (qa, qaaaa, ra, raaaa, nx):
        assert ev["proc.pid"] == seen["pid"]
        assert ev["proc.comm"] == Path(sys.executable).name[:15]
        assert ev["proc.mntns_id"] == w.mntns_id
        assert ev["netns_id"] == seen["netns"]
        assert ev["runtime.containerId"] == w.container_id


def test_neighbour_namespace_is_not_seen(
        traced: tuple[list[Record], dict[str, Any], ContainerWorkload]) -> None:
    events, seen, _w = traced
    # the neighbour made the same lookups first: exactly one set of records is seen
    assert len([d for d in events if d["name"] == NAME]) == 4, events
    assert {d["netns_id"] for d in events} == {seen["netns"]}


def test_a_container_sharing_the_namespace_is_filtered_out(gadget: Path, socket_enricher: Path,
                                                          resolv: str) -> None:
    """Containers of a pod share its network namespace: the container filter must still keep
    only the selected container's lookups (by the client's mount namespace)."""
    with netns_container() as w, \
            run_in_container(in_netns_of(w, ["sleep", "1000"])) as sidecar:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{sidecar.pid}/comm").read_text().strip() != "sleep":
            assert time.monotonic() < deadline, "the sidecar never joined the namespace"
            time.sleep(0.02)
        assert netns_inode(sidecar.pid) == netns_inode(w.pid)
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id)) as runner:
            runner.wait_schema()
            side = _lookups(sidecar, resolv + ".sidecar")
            seen = _lookups(w, resolv)
            runner.wait_event(lambda d: d["name"] == MISSING and d["rcode"] == "NXDOMAIN",
                              what="the NXDOMAIN response")
            assert runner.stop() == 0, runner.stderr()
    events = runner.events()
    assert {d["proc.pid"] for d in events} == {seen["pid"]} != {side["pid"]}
    assert len([d for d in events if d["name"] == NAME]) == 4, events


def test_lookups_over_ipv6(gadget: Path, socket_enricher: Path, resolv: str) -> None:
    with netns_container() as w:
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id)) as runner:
            runner.wait_schema()
            seen = _lookups(w, resolv, server="::1")
            runner.wait_event(lambda d: d["name"] == MISSING and d["rcode"] == "NXDOMAIN",
                              what="the NXDOMAIN response")
            assert runner.stop() == 0, runner.stderr()
    events = runner.events()
    qaaaa = _one(events, qr="Q", qtype="AAAA", name=NAME)
    raaaa = _one(events, qr="R", qtype="AAAA", name=NAME)
    assert endpoint(qaaaa, "dst") == ("::1", 53, 17)
    assert endpoint(raaaa, "src") == ("::1", 53, 17)
    assert endpoint(raaaa, "dst") == ("::1", endpoint(qaaaa, "src")[1], 17)
    assert raaaa["addresses"] == AAAA_RECORD and raaaa["id"] == qaaaa["id"]
    assert raaaa["latency_ns"] > 0
    assert {d["proc.pid"] for d in events} == {seen["pid"]}
