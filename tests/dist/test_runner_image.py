"""`make runner-image`: the runner's OCI image built from Debian packages, pushed, pulled, run.

The image is built once (`python -m kubectl_gadget.release runner-image`, mmdebstrap from the
Debian mirror, minutes), then: its index and layer are inspected (size, no compilers, no
setuid programs, nothing writable by others, the runner and in-tree gadgets present), it is
pushed to a real registry on 127.0.0.1 with skopeo and pulled back unchanged, and its entry
point is run from the unpacked layer (chroot into a private mount namespace with the host's
/proc and /sys) to load trace_exec for real. Opt-in: `make runner-image-test`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kubectl_gadget.release import runner_image
from node_runner.oci.store import Store
from tests.conftest import REPO, needs_root_btf
from tests.registry.conftest import Registry, registry  # noqa: F401  (fixture)

pytestmark = [pytest.mark.runner_image,
              pytest.mark.skipif(not shutil.which("mmdebstrap"),
                                 reason="mmdebstrap not installed (apt-get install mmdebstrap)"),
              pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap's root mode needs root")]
TAG = "test"
COMPILERS = ("cc", "gcc", "clang", "c++", "g++", "as", "ld", "tcc", "llc")
MAX_BYTES = 150_000_000


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runner-image") / "layout"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "kubectl_gadget.release", "runner-image",
                           "--layout", str(out), "--tag", TAG], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    return out


def _index(layout: Path) -> tuple[Store, dict[str, Any], dict[str, Any]]:
    store = Store(layout)
    desc = store.lookup(TAG)
    assert desc is not None and desc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    return store, desc, store.read_manifest(desc["digest"])


def _amd64(layout: Path) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    store, _, index = _index(layout)
    (entry,) = [m for m in index["manifests"] if m["platform"]["architecture"] == "amd64"]
    manifest = store.read_manifest(entry["digest"])
    config = json.loads(store.read_blob(manifest["config"]["digest"]))
    (layer,) = manifest["layers"]
    return manifest, config, store.read_blob(layer["digest"])


@pytest.fixture(scope="module")
def members(layout: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tarfile.TarInfo]:
    _, _, blob = _amd64(layout)
    path = tmp_path_factory.mktemp("layer") / "layer.tar.gz"
    path.write_bytes(blob)
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_index_lists_each_architecture_with_its_config(layout: Path) -> None:
    store, _, index = _index(layout)
    assert [m["platform"] for m in index["manifests"]] == [{"architecture": "amd64",
                                                            "os": "linux"}]
    manifest, config, blob = _amd64(layout)
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["Entrypoint"] == ["python3", "-m", "node_runner"]
    size = manifest["config"]["size"] + manifest["layers"][0]["size"]
    print(f"runner image linux/amd64: {size / 1e6:.1f} MB compressed")
    assert size < MAX_BYTES


def test_layer_has_the_runner_and_gadgets_and_no_compilers(members: dict[str, tarfile.TarInfo]
                                                           ) -> None:
    for gadget in ("trace_exec", "trace_open"):
        assert f"{runner_image.GADGETS}/{gadget}/program.bpf.o" in members
    assert f"{runner_image.RUNTIME}/socket_enricher/program.bpf.o" in members
    assert f"{runner_image.APP}/node_runner/cli.py" in members
    assert f"{runner_image.APP}/lib/oras/provider.py" in members
    assert not [n for n in members if n.startswith("dev/")]
    binaries = {n.rsplit("/", 1)[-1] for n in members if n.startswith(("usr/bin/", "usr/sbin/"))}
    assert "python3" in binaries and "mount" in binaries
    assert not binaries & set(COMPILERS)
    assert not [n for n in members if "/libclang" in n or "/libLLVM" in n]


def test_layer_has_no_setuid_and_nothing_writable_by_others(members: dict[str, tarfile.TarInfo]
                                                            ) -> None:
    assert not [n for n, m in members.items() if m.mode & 0o6000]
    writable = [n for n, m in members.items()
                if m.mode & 0o002 and not m.issym() and not (m.isdir() and m.mode & 0o1000)]
    assert writable == []
    ours = (runner_image.APP, runner_image.GADGETS, runner_image.RUNTIME)
    app = [m for n, m in members.items() if n.startswith(ours)]
    assert app and all(m.uid == 0 and m.gid == 0 and not m.mode & 0o022 for m in app)


def test_push_to_registry_and_pull_back_unchanged(layout: Path, registry: Registry,
                                                  tmp_path: Path) -> None:
    _, desc, _ = _index(layout)
    remote = f"docker://{registry.host}/kubectl-gadget/node-runner:{TAG}"
    subprocess.run(["skopeo", "copy", "--all", "--quiet", "--dest-tls-verify=false",
                    f"oci:{layout}:{TAG}", remote], check=True, timeout=300)
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", remote],
                         check=True, capture_output=True, timeout=60).stdout
    assert raw == Store(layout).read_blob(desc["digest"])
    back = tmp_path / "pulled"
    subprocess.run(["skopeo", "copy", "--all", "--quiet", "--src-tls-verify=false", remote,
                    f"oci:{back}:{TAG}"], check=True, timeout=300)
    assert Store(back).lookup(TAG)["digest"] == desc["digest"]


@needs_root_btf
def test_entrypoint_runs_trace_exec_from_the_unpacked_image(layout: Path,
                                                           tmp_path: Path) -> None:
    _, config, blob = _amd64(layout)
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (tmp_path / "layer.tar.gz").write_bytes(blob)
    subprocess.run(["tar", "-xzf", str(tmp_path / "layer.tar.gz"), "-C", str(rootfs)],
                   check=True)
    argv = [*config["config"]["Entrypoint"], "run", "--gadget", "trace_exec", "--timeout", "1"]
    script = (f"mount --rbind /proc {rootfs}/proc && mount --rbind /sys {rootfs}/sys && "
              f"exec chroot {rootfs} /usr/bin/env -i {' '.join(config['config']['Env'])} "
              + " ".join(argv))
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120, check=False)
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, proc.stderr
    types = [r["type"] for r in records]
    assert types[0] == "hello" and "schema" in types and types[-1] == "end", types
    assert records[-1]["exit_code"] == 0
