"""A pod's log over one HTTP/1.1 connection, its chunked body read in large blocks.

The official client (urllib3 over http.client) hands a chunked body over one transfer chunk
per read, and an API server following a log may send every line as a chunk of its own: at
100k lines/s that is 100k reads, each through several Python layers. Here the official
client still builds the request (URL, bearer token, impersonation and user-agent headers:
`ApiClient.param_serialize`) and urllib3's connection class opens the socket with the official
client's TLS settings (CA, client certificate, verification, server name); this module sends
the GET, reads the status and headers, and then reads the body as whatever has arrived (up to
`READ_SIZE` bytes per read), unwrapping every transfer chunk in it at once. A kubeconfig with
a proxy is left to the official client (`open_log` returns None).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from urllib3.connection import HTTPConnection, HTTPSConnection

READ_SIZE = 64 << 10
SMALL_READ = 32 << 10
MAX_HEAD = 64 << 10  # status line and headers
MAX_CHUNK_LINE = 4096  # a chunk-size line (with extensions)
MAX_ERROR_BODY = 1 << 20
LOG_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/log"


class StatusError(Exception):
    """The API server answered with another status than 200."""

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.body = status, reason, body

    def message(self) -> tuple[str, str]:
        """(message, reason) of the API's Status body, or the HTTP reason."""
        return status_message(self.body, self.reason)


class StreamError(OSError):
    """The response is not valid HTTP/1.1, or the connection ended in the middle of it."""


def status_message(body: bytes | str | None, fallback: str) -> tuple[str, str]:
    try:
        status = json.loads(body or b"{}")
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    return str(status.get("message") or fallback or "error"), str(status.get("reason") or "")


class Dechunker:
    """Unwraps a chunked transfer coding fed in pieces of any size; `done` after the last
    chunk (trailers, if any, are not read)."""

    def __init__(self) -> None:
        self._buf = b""
        self._left = 0  # data bytes still to come in the current chunk
        self._crlf = False  # the CRLF after a chunk's data is still to come
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos, n = 0, len(buf)
        if self._left:  # the rest of a chunk begun in an earlier piece
            end = self._left
            if end > n:
                self._left, self._buf = end - n, b""
                return buf
            out.append(buf[:end])
            pos, self._left, self._crlf = end, 0, True
        if self._crlf:
            if n - pos < 2:
                self._buf = buf[pos:]
                return b"".join(out)
            if not buf.startswith(b"\r\n", pos):
                raise StreamError("malformed chunked body: no CRLF after a chunk")
            pos, self._crlf = pos + 2, False
        find, startswith = buf.find, buf.startswith
        while not self.done:  # at a chunk-size line
            eol = find(b"\r\n", pos)
            if eol < 0:
                if n - pos > MAX_CHUNK_LINE:
                    raise StreamError("malformed chunked body: chunk-size line too long")
                break
            try:
                size = int(buf[pos:eol], 16)
            except ValueError:
                size = -1
            if size < 0:  # extensions, or not a size at all
                size = _chunk_size(buf[pos:eol])
            start = eol + 2
            end = start + size
            if not size:
                pos, self.done = start, True
            elif end + 2 <= n:
                if not startswith(b"\r\n", end):
                    raise StreamError("malformed chunked body: no CRLF after a chunk")
                out.append(buf[start:end])
                pos = end + 2
            elif end <= n:  # all of its data, not yet the CRLF after it
                out.append(buf[start:end])
                pos, self._crlf = end, True
                break
            else:
                out.append(buf[start:])
                pos, self._left = n, end - n
                break
        self._buf = buf[pos:]
        return b"".join(out)


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip(b" \t")
    if not digits or digits.strip(b"0123456789abcdefABCDEF"):
        raise StreamError(f"malformed chunked body: bad chunk size {line[:40]!r}")
    return int(digits, 16)


class LogResponse:
    """An open log request whose status was 200: `chunks()` yields the body, `close()`."""

    def __init__(self, conn: HTTPConnection, headers: dict[str, str], rest: bytes) -> None:
        self._conn = conn
        self._rest = rest
        self.headers = headers

    def chunks(self, settle: float = 0.0) -> Iterator[bytes]:
        """Blocks of the body as they arrive (not cut at lines); StreamError when the
        connection ends before the body does. After a small read, wait `settle` seconds
        before the next one, so that a busy stream is read in large blocks."""
        sock = self._conn.sock
        assert sock is not None
        block = bytearray(READ_SIZE)  # one buffer per stream: a fresh large one per read
        view = memoryview(block)  # would cost an allocation (and memory) per read

        def recv() -> bytes:
            got = sock.recv_into(block)
            if got < SMALL_READ and settle:  # let more arrive: one read for many lines
                time.sleep(settle)
            return bytes(view[:got])

        coding = self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        data, self._rest = self._rest, b""
        if "chunked" in coding:
            dechunk = Dechunker()
            while True:
                if data:
                    out = dechunk.feed(data)
                    if out:
                        yield out
                    if dechunk.done:
                        return
                data = recv()
                if not data:
                    raise StreamError("the connection closed in the middle of the log")
        left = int(length) if length is not None and length.isdigit() else None
        while True:
            if data:
                if left is not None:
                    data = data[:left]
                    left -= len(data)
                yield data
            if left == 0:
                return
            data = recv()
            if not data:
                if left:
                    raise StreamError("the connection closed in the middle of the log")
                return

    def close(self) -> None:
        self._conn.close()


def open_log(api_client: Any, namespace: str, name: str, follow: bool,
             connect_timeout: float, read_timeout: float | None) -> LogResponse | None:
    """Send the log request and read the response head. None when the configuration has a
    proxy (the caller uses the official client); StatusError for a status other than 200;
    OSError (or a urllib3 error) when the server cannot be reached or answers garbage."""
    conf = api_client.configuration
    if getattr(conf, "proxy", None):
        return None
    query = [("follow", "true")] if follow else []
    _method, url, headers, _body, _post = api_client.param_serialize(
        "GET", LOG_PATH, path_params={"namespace": namespace, "name": name},
        query_params=query, header_params={"Accept": "text/plain, application/json"},
        auth_settings=["BearerToken"])
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    conn: HTTPConnection
    if parts.scheme == "https":
        conn = HTTPSConnection(
            parts.hostname or "", parts.port or 443, timeout=connect_timeout,
            cert_reqs="CERT_REQUIRED" if conf.verify_ssl else "CERT_NONE",
            ca_certs=conf.ssl_ca_cert, cert_file=conf.cert_file, key_file=conf.key_file,
            assert_hostname=conf.assert_hostname, server_hostname=conf.tls_server_name)
    else:
        conn = HTTPConnection(parts.hostname or "", parts.port or 80, timeout=connect_timeout)
    try:
        conn.connect()
        conn.request("GET", target, headers=headers)
        sock = conn.sock
        assert sock is not None
        sock.settimeout(read_timeout)
        status, reason, head, rest = _read_head(sock)
        if status != 200:
            raise StatusError(status, reason, _error_body(LogResponse(conn, head, rest)))
    except BaseException:
        conn.close()
        raise
    return LogResponse(conn, head, rest)


def _read_head(sock: Any) -> tuple[int, str, dict[str, str], bytes]:
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            status, reason, head = _parse_head(buf[:end])
            buf = buf[end + 4:]
            if 100 <= status < 200:  # an interim response: the real one follows
                continue
            return status, reason, head, buf
        if len(buf) > MAX_HEAD:
            raise StreamError("the response headers are too long")
        data = sock.recv(READ_SIZE)
        if not data:
            raise StreamError("the connection closed before the response headers")
        buf += data


def _parse_head(raw: bytes) -> tuple[int, str, dict[str, str]]:
    first, *lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = first.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not code.isdigit():
        raise StreamError(f"not an HTTP response: {first[:60]!r}")
    head: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            key = key.strip().lower()
            value = value.strip()
            head[key] = f"{head[key]}, {value}" if key in head else value
    return int(code), reason.strip(), head


def _error_body(resp: LogResponse) -> bytes:
    body = b""
    try:
        for block in resp.chunks():
            body += block
            if len(body) > MAX_ERROR_BODY:
                break
    except OSError:
        pass
    return body
