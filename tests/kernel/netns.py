"""Network tests' building blocks: a command in a fresh network namespace, endpoints from records.

Network gadget tests must not touch the host's network: every workload runs its sockets in a
network namespace of its own (``unshare --net``, loopback brought up), inside a container-like
process (tests/workloads.py) so the mount-namespace filter and enrichment apply. Endpoint fields
are compared through :func:`endpoint`, which renders the L4 endpoint a record carries.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GADGETS_SRC, compile_gadget
from tests.kernel.runner_proc import python_argv
from tests.workloads import ContainerWorkload, run_in_container

# Runs the rest of argv in a new network namespace whose loopback is up.
_NETNS_SHELL = 'ip link set lo up && exec "$@"'


def in_new_netns(argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed so that it runs in a fresh network namespace with ``lo`` up."""
    return ["unshare", "--net", "--", "sh", "-c", _NETNS_SHELL, "sh", *argv]


def netns_inode(pid: int | str = "self") -> int:
    """The network namespace id (inode) of a process, as the kernel's ``ns.inum``."""
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def left_host_netns(pid: int, timeout: float = 30.0) -> int:
    """The network namespace id of `pid` once it is not the host's (``unshare --net`` moves the
    process after it starts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ino = netns_inode(pid)
        if ino != netns_inode():
            return ino
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never left the host's network namespace")


def netns_run(pid: int, *cmd: str) -> str:
    """Run `cmd` in the network namespace of `pid` (nsenter); its stdout."""
    return subprocess.run(["nsenter", "-t", str(pid), "-n", *cmd], check=True,
                          capture_output=True, text=True, timeout=60).stdout


def endpoint(data: dict[str, Any], prefix: str) -> tuple[str, int, int]:
    """(address, port, IP protocol number) of the L4 endpoint ``prefix`` of a record, as the
    runner decoded it; its `addr:port` field must say the same."""
    addr, port = data[f"{prefix}.addr"], data[f"{prefix}.port"]
    version = ipaddress.ip_address(addr).version
    assert data[f"{prefix}.version"] == version
    assert data[prefix] == (f"[{addr}]:{port}" if version == 6 else f"{addr}:{port}")
    return addr, port, data[f"{prefix}.proto_raw"]


# A TCP connection whose receiver drops every segment: the server's accepted socket gets a
# classic BPF socket filter that returns 0 (SO_ATTACH_FILTER), so the kernel frees the client's
# data with SKB_DROP_REASON_SOCKET_FILTER and the client retransmits after its timeout. Waits
# (up to 10 s) until TCP_INFO counts a retransmission, resets both sockets (nothing lingers in
# the namespace) and prints what it saw as JSON.
LOSSY_CONNECTION = """
import ctypes, json, os, socket, struct, sys, time
family, host = (socket.AF_INET6, "::1") if sys.argv[1:] == ["6"] else (socket.AF_INET, "127.0.0.1")
srv = socket.socket(family)
srv.bind((host, 0))
srv.listen()
cli = socket.create_connection(srv.getsockname()[:2])
conn, _ = srv.accept()
insn = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0))  # BPF_RET|BPF_K 0
conn.setsockopt(socket.SOL_SOCKET, 26, struct.pack("HL", 1, ctypes.addressof(insn)))
cli.send(b"dropped by the filter")
deadline = time.monotonic() + 30
retrans = 0
while not retrans and time.monotonic() < deadline:
    time.sleep(0.05)
    retrans = struct.unpack_from("I", cli.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104),
                                 100)[0]  # tcpi_total_retrans
out = {"pid": os.getpid(), "netns": os.stat("/proc/self/ns/net").st_ino, "retrans": retrans,
       "client": cli.getsockname()[1], "server": srv.getsockname()[1]}
for sock in (conn, cli):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
print(json.dumps(out), flush=True)
"""


def lossy_connection(w: ContainerWorkload, family: int = 4) -> dict[str, Any]:
    """Run LOSSY_CONNECTION in container ``w`` (a new netns); what it printed."""
    proc = w.popen(in_new_netns([*python_argv(LOSSY_CONNECTION), str(family)]),
                   stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    seen: dict[str, Any] = json.loads(out)
    assert seen["retrans"] >= 1, "the client never retransmitted"
    return seen


@contextlib.contextmanager
def netns_container() -> Iterator[ContainerWorkload]:
    """A sleeping container in its own mount *and* network namespace (``lo`` up)."""
    with run_in_container(in_new_netns(["sleep", "1000"])) as w:
        deadline = time.monotonic() + 30
        # unshare, sh and ip run first (same pid): the namespace is ready once sleep runs
        while Path(f"/proc/{w.pid}/comm").read_text().strip() != "sleep":
            if time.monotonic() > deadline:
                raise AssertionError("the container's network namespace never came up")
            time.sleep(0.02)
        yield w


def in_netns_of(w: ContainerWorkload, argv: Sequence[str]) -> list[str]:
    """``argv`` run (with ``w.popen``) in the network namespace of container ``w``."""
    return ["nsenter", f"--net=/proc/{w.pid}/ns/net", "--", *argv]


@pytest.fixture(scope="module")
def socket_enricher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The runner's socket enricher, built for this module; runners started meanwhile use it."""
    out = tmp_path_factory.mktemp("runtime")
    compile_gadget(GADGETS_SRC / "runtime" / "socket_enricher", out / "socket_enricher")
    old = os.environ.get("KUBECTL_GADGET_RUNTIME_DIR")
    os.environ["KUBECTL_GADGET_RUNTIME_DIR"] = str(out)
    yield out
    if old is None:
        del os.environ["KUBECTL_GADGET_RUNTIME_DIR"]
    else:
        os.environ["KUBECTL_GADGET_RUNTIME_DIR"] = old
