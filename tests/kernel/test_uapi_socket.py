"""A socket filter written against the UAPI headers (<linux/bpf.h>, glibc's <sys/socket.h>)
instead of vmlinux.h, as some of Inspektor Gadget's network gadgets are, builds with the
gadget headers included after them and runs: a UDP packet this test sends on loopback is
reported with its length, source port and network namespace."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from node_runner.gadget.spec import load_spec
from tests.conftest import TEST_GADGETS_SRC, needs_root_btf
from tests.kernel.runner_proc import RunnerProcess, stop_and_check_end

UAPI_SOCKET = TEST_GADGETS_SRC / "uapi_socket"
PAYLOAD = b"uapi-socket"
pytestmark = pytest.mark.skipif(
    not (os.path.isdir("/usr/include/x86_64-linux-gnu/gnu")
         and os.path.isfile("/usr/include/x86_64-linux-gnu/gnu/stubs-32.h")),
    reason="glibc headers for a BPF target need libc6-dev-i386 (apt-get install libc6-dev-i386)")


@pytest.fixture
def uapi_socket(build_gadget) -> Path:  # type: ignore[no-untyped-def]
    return build_gadget(UAPI_SOCKET)


def test_uapi_socket_spec(uapi_socket: Path) -> None:
    (ds,) = load_spec(str(uapi_socket)).datasources
    assert [f.name for f in ds.fields] == ["netns_id", "len", "sport", "family"]


@pytest.mark.kernel
@needs_root_btf
def test_uapi_socket_packet(uapi_socket: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as src:
        sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        src.bind(("127.0.0.1", 0))
        sport = src.getsockname()[1]
        with RunnerProcess(uapi_socket, "--param", f"port={port}") as runner:
            runner.wait_schema()
            src.sendto(PAYLOAD, ("127.0.0.1", port))
            event = runner.wait_event(lambda d: d["sport"] == sport, what="the UDP packet")
            stop_and_check_end(runner)
    assert event["len"] == 14 + 20 + 8 + len(PAYLOAD)  # Ethernet + IPv4 + UDP + payload
    assert event["family"] == socket.AF_INET
    assert event["netns_id"] == os.stat("/proc/self/ns/net").st_ino
