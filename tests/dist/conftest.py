"""The runner image for the tests that need it: built once per session (opt-in group).

`layout` runs `python -m kubectl_gadget.release runner-image` (as `make runner-image` does:
mmdebstrap from the Debian mirror, minutes) into a temp OCI image layout; `rootfs` is its
linux/amd64 layer unpacked, for tests that run the image (chroot, runc).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node_runner.oci.store import Store
from tests.cluster.conftest import (  # noqa: F401  (fixtures shared with these tests)
    make_fake_cluster,
    make_gadget_cluster,
    no_runner_leftovers,
)
from tests.conftest import REPO
from tests.registry.conftest import registry  # noqa: F401  (the session registry, shared here)

TAG = "test"
needs_mmdebstrap = pytest.mark.skipif(
    not shutil.which("mmdebstrap") or os.geteuid() != 0,
    reason="building the runner image needs mmdebstrap (apt-get install mmdebstrap) and root")


@pytest.fixture(scope="session")
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




def image_index(layout: Path) -> tuple[Store, dict[str, Any], dict[str, Any]]:
    store = Store(layout)
    desc = store.lookup(TAG)
    assert desc is not None and desc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    return store, desc, store.read_manifest(desc["digest"])


def amd64_image(layout: Path) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """(manifest, config, layer bytes) of the linux/amd64 image."""
    store, _, index = image_index(layout)
    (entry,) = [m for m in index["manifests"] if m["platform"]["architecture"] == "amd64"]
    manifest = store.read_manifest(entry["digest"])
    config = json.loads(store.read_blob(manifest["config"]["digest"]))
    (layer,) = manifest["layers"]
    return manifest, config, store.read_blob(layer["digest"])


@pytest.fixture(scope="session")
def rootfs(layout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The linux/amd64 layer unpacked (owners and modes kept: we are root)."""
    base = tmp_path_factory.mktemp("rootfs")
    _, _, blob = amd64_image(layout)
    (base / "layer.tar.gz").write_bytes(blob)
    (base / "rootfs").mkdir()
    subprocess.run(["tar", "-xzf", str(base / "layer.tar.gz"), "-C", str(base / "rootfs")],
                   check=True)
    return base / "rootfs"
