"""trace_sni on this kernel: TLS ClientHellos sent by Python's ssl module inside a container.

The container has its own mount and network namespace; a plain TCP server there reads the
ClientHello and hangs up, so no certificate is needed: the client's handshake fails after
its ClientHello went out. One client names a server (SNI), one connects by address without a
name (no SNI: no record). A neighbour container in another namespace does the same.
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
    netns_container,
    netns_inode,
    socket_enricher,
)
from tests.kernel.runner_proc import RunnerProcess, python_argv
from tests.workloads import ContainerWorkload

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]
__all__ = ["socket_enricher"]  # a fixture used by the test below

SERVER_NAME = "shop.example.test"

# A TCP server reading one ClientHello per connection; a TLS client with and without SNI.
HELLOS = """
import json, os, socket, ssl, sys, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
def serve():
    for _ in range(2):
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.close()
threading.Thread(target=serve, daemon=True).start()
ports = []
for name in (sys.argv[1], None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = name is not None
    raw = socket.create_connection(srv.getsockname())
    ports.append(raw.getsockname()[1])
    try:
        ctx.wrap_socket(raw, server_hostname=name)
    except (ssl.SSLError, OSError):
        pass
    raw.close()
print(json.dumps({"pid": os.getpid(), "server": srv.getsockname()[1], "ports": ports}))
"""


@pytest.fixture(scope="module")
def gadget(built_gadgets: dict[str, Path]) -> Path:
    return built_gadgets["trace_sni"]


def _hellos(w: ContainerWorkload) -> dict[str, Any]:
    proc = w.popen(in_netns_of(w, [*python_argv(HELLOS), SERVER_NAME]), stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    seen: dict[str, Any] = json.loads(out)
    return seen


def test_client_hello_server_name_endpoints_and_process(gadget: Path,
                                                        socket_enricher: Path) -> None:
    with netns_container() as w, netns_container() as neighbour:
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id)) as runner:
            runner.wait_schema()
            _hellos(neighbour)
            seen = _hellos(w)
            runner.wait_event(lambda d: d["src.port"] == seen["ports"][0], what="the SNI")
            netns = netns_inode(w.pid)
            assert runner.stop() == 0, runner.stderr()
    events = runner.events()
    assert len(events) == 1, events  # not the hello without a name, not the neighbour's
    ev = events[0]
    assert ev["name"] == SERVER_NAME
    assert endpoint(ev, "src") == ("127.0.0.1", seen["ports"][0], 6)
    assert endpoint(ev, "dst") == ("127.0.0.1", seen["server"], 6)
    assert ev["netns_id"] == netns
    assert ev["proc.pid"] == seen["pid"]
    assert ev["proc.comm"] == Path(sys.executable).name[:15]
    assert ev["proc.mntns_id"] == w.mntns_id
    assert ev["runtime.containerId"] == w.container_id
