"""A real OCI registry (Debian's docker-registry, distribution 2.8) on 127.0.0.1 for the tests.

Session fixtures start one plain registry and one with htpasswd basic auth, each on an
ephemeral port with its storage in a temp dir, wait until `/v2/` answers, and stop them at the
end of the session (SIGTERM, then SIGKILL). Per-test fixtures give every test its own local
store (KUBECTL_GADGET_STORE) and a fresh copy of a store holding the in-tree trace_open image,
built once per session. Tests skip, saying why, when docker-registry or clang is missing.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import GADGETS_SRC

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
USER, PASSWORD = "gadgeteer", "s3cret-pass"


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    storage: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def blob_file(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(host: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # 401 from the auth registry: it is up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"docker-registry on {host} did not answer: {log.read_text()[-2000:]}")


def start_registry(root: Path, htpasswd: Path | None) -> Registry:
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip("docker-registry not installed (apt-get install docker-registry)")
    port = _free_port()
    host = f"127.0.0.1:{port}"
    storage = root / "storage"
    config = {"version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
              "storage": {"filesystem": {"rootdirectory": str(storage)},
                          "delete": {"enabled": True}},
              "http": {"addr": host}}
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "gadget-tests", "path": str(htpasswd)}}
    cfg = root / "config.yml"
    cfg.write_text(json.dumps(config))  # JSON is YAML
    log = root / "registry.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=fh, stderr=fh,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_ready(host, proc, log)
    except RuntimeError:
        stop_registry(proc)
        raise
    return Registry(host, storage, proc, log)


def stop_registry(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"), None)
    yield reg
    stop_registry(reg.proc)


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    bcrypt = pytest.importorskip("bcrypt", reason="bcrypt (dev extra) hashes htpasswd lines")
    root = tmp_path_factory.mktemp("auth-registry")
    htpasswd = root / "htpasswd"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"{USER}:{hashed}\n")
    reg = start_registry(root, htpasswd)
    yield reg
    stop_registry(reg.proc)


def docker_config(path: Path, host: str, user: str = USER, password: str = PASSWORD) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty local store for this test; HOME moved so no real docker config leaks in."""
    store = tmp_path / "store"
    monkeypatch.setenv("KUBECTL_GADGET_STORE", str(store))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    return store


@pytest.fixture(scope="session")
def trace_open_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store holding trace_open (as the short name), built once: (store dir, index digest)."""
    if not (shutil.which("clang") or shutil.which("clang-14")):
        pytest.skip("clang not installed: cannot build gadget images")
    from kubectl_gadget.image.pack import pack
    from node_runner.oci.store import Store

    root = tmp_path_factory.mktemp("template-store") / "store"
    res = pack(GADGETS_SRC / "trace_open", "trace_open", Store(root))
    return root, res.digest


@pytest.fixture
def built_store(store_dir: Path, trace_open_template: tuple[Path, str]) -> str:
    """This test's store, holding trace_open; returns the image's index digest."""
    shutil.copytree(trace_open_template[0], store_dir)
    return trace_open_template[1]
