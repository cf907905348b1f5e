"""trace_ssl on this kernel: a real TLS session of Python's ssl module (OpenSSL) in a container.

A server thread and a client thread of one process in the container talk TLS over 127.0.0.1
(a certificate made for the test with the openssl CLI). The gadget's uprobes on libssl must
report the plaintext each side wrote and read (opt-in with --record-data, capped by
--data-max), for the right threads; a neighbour container's session must be filtered out.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare,
              pytest.mark.skipif(not shutil.which("openssl"),
                                 reason="needs the openssl CLI to make a test certificate")]

SESSION = """
import json, os, socket, ssl, sys, threading
cert, key, request, reply = sys.argv[1:5]
server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain(cert, key)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
seen = {}
def serve():
    seen["server_tid"] = threading.get_native_id()
    conn, _ = srv.accept()
    with server_ctx.wrap_socket(conn, server_side=True) as tls:
        seen["request"] = tls.recv(4096).decode()
        tls.sendall(reply.encode())
thread = threading.Thread(target=serve)
thread.start()
client_ctx = ssl.create_default_context(cafile=cert)
with client_ctx.wrap_socket(socket.create_connection(srv.getsockname()),
                            server_hostname="shop.example.test") as tls:
    tls.sendall(request.encode())
    seen["answer"] = tls.recv(4096).decode()
thread.join()
seen["pid"] = os.getpid()
seen["client_tid"] = threading.get_native_id()
print(json.dumps(seen), flush=True)
"""


@pytest.fixture(scope="module")
def gadget(built_gadgets: dict[str, Path]) -> Path:
    return built_gadgets["trace_ssl"]


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=shop.example.test",
                    "-addext", "subjectAltName=DNS:shop.example.test",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return str(d / "cert.pem"), str(d / "key.pem")


def _session(w: ContainerWorkload, cert: tuple[str, str], request: str,
             reply: str) -> dict[str, Any]:
    proc = w.popen([*python_argv(SESSION), *cert, request, reply], stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    seen: dict[str, Any] = json.loads(out)
    assert (seen["request"], seen["answer"]) == (request, reply)
    return seen


def _trace(gadget: Path, cert: tuple[str, str], *params: str
           ) -> tuple[list[Record], dict[str, Any], ContainerWorkload, str, str]:
    request, reply = f"GET /{secrets.token_hex(8)}", f"200 {secrets.token_hex(8)}"
    with sleeping_container() as w, sleeping_container() as neighbour:
        args = [a for p in params for a in ("--param", p)]
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id), *args) as runner:
            runner.wait_schema()
            _session(neighbour, cert, request + "-n", reply + "-n")
            seen = _session(w, cert, request, reply)
            runner.wait_event(lambda d: d["proc.tid"] == seen["client_tid"] and
                              d["len"] == len(reply), what="the client's read of the reply")
            assert runner.stop() == 0, runner.stderr()
    return runner.events(), seen, w, request, reply


def _op(ev: Record) -> str:
    """The operation's name (`operation_raw` is the enum's number: 0 read, 1 write)."""
    assert ev["operation_raw"] == {"SSL_read": 0, "SSL_write": 1}[ev["operation"]]
    return str(ev["operation"])


def _by(events: list[Record], tid: int, op: str) -> Record:
    hits = [d for d in events if d["proc.tid"] == tid and _op(d) == op]
    assert len(hits) == 1, (tid, op, events)
    return hits[0]


def test_plaintext_of_each_side_with_record_data(gadget: Path, cert: tuple[str, str]) -> None:
    events, seen, w, request, reply = _trace(gadget, cert, "record-data=true")
    client, server = seen["client_tid"], seen["server_tid"]
    sent = _by(events, client, "SSL_write")
    received = _by(events, server, "SSL_read")
    answered = _by(events, server, "SSL_write")
    got = _by(events, client, "SSL_read")
    assert (sent["data"], sent["len"], sent["data_len"]) == (request, len(request), len(request))
    assert (received["data"], received["len"]) == (request, len(request))
    assert (answered["data"], got["data"]) == (reply, reply)
    assert len(events) == 4, events  # the handshake moves no application data
    for ev in events:
        assert ev["proc.pid"] == seen["pid"]
        assert ev["proc.comm"] == Path(sys.executable).name[:15]
        assert ev["proc.mntns_id"] == w.mntns_id
        assert ev["runtime.containerId"] == w.container_id
        assert 0 < ev["latency_ns"] < 10**10


def test_payload_is_opt_in_and_capped(gadget: Path, cert: tuple[str, str]) -> None:
    events, seen, _w, request, _reply = _trace(gadget, cert)
    sent = _by(events, seen["client_tid"], "SSL_write")
    assert (sent["len"], sent["data"], sent["data_len"]) == (len(request), "", 0)
    assert all(d["data"] == "" for d in events)
    events, seen, _w, request, _reply = _trace(gadget, cert, "record-data=true", "data-max=5")
    sent = _by(events, seen["client_tid"], "SSL_write")
    assert (sent["len"], sent["data"], sent["data_len"]) == (len(request), request[:5], 5)
