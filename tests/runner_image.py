"""The runner image for the tests that run it: built from this tree, pushed, pulled, unpacked.

Session fixtures (registered in tests/conftest.py, so one build serves every directory):
- `runner_layout`: `python -m kubectl_gadget.release runner-image` (as `make runner-image` does:
  mmdebstrap from the Debian mirror, under a minute on a warm mirror) into a temp OCI image
  layout tagged `TAG`, for `RUNNER_ARCHES`;
- `runner_rootfs`: its linux/amd64 layer unpacked (owners and modes kept: we are root), for the
  tests that look inside the image (chroot) or run its layout directly;
- `pulled_runner_image`: the way a node gets it: `runner_layout` pushed with skopeo to a real
  registry on 127.0.0.1 (tests/registry's docker-registry), pulled back with skopeo into a new
  layout, checked to be the same index, and that copy's image for this machine unpacked. The
  cluster tests' container mode (`KUBECTL_GADGET_TEST_CONTAINERS=1`) runs runner pods from it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from node_runner.oci.store import Store

REPO = Path(__file__).resolve().parent.parent

TAG = "test"
REPOSITORY = "kubectl-gadget/node-runner"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
# The architectures the image is built for: `make runner-image-test` sets both from ARCHES (the
# foreign one is bootstrapped under qemu-user-static); other runs need this machine's only.
RUNNER_ARCHES = os.environ.get("KUBECTL_GADGET_TEST_RUNNER_ARCHES", ARCH).split()
needs_mmdebstrap = pytest.mark.skipif(
    not shutil.which("mmdebstrap") or os.geteuid() != 0,
    reason="building the runner image needs mmdebstrap (apt-get install mmdebstrap) and root")


class UnpackedImage(NamedTuple):
    """An image as a node runs it: its root filesystem and its OCI image config."""

    rootfs: Path
    config: dict[str, Any]


def build_layout(out: Path, tag: str = TAG) -> Path:
    """The runner image of this tree as an OCI image layout in `out` (fails the test if the
    build fails, with the builder's message)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "kubectl_gadget.release", "runner-image",
                           "--layout", str(out), "--tag", tag,
                           *(f"--arch={arch}" for arch in RUNNER_ARCHES)], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False, timeout=3600)
    if proc.returncode != 0:
        pytest.fail(f"building the runner image failed:\n{proc.stderr}")
    print(proc.stdout, proc.stderr)
    return out


def image_index(layout: Path, tag: str = TAG) -> tuple[Store, dict[str, Any], dict[str, Any]]:
    """(store, index descriptor, index) of `tag` in `layout`."""
    store = Store(layout)
    desc = store.lookup(tag)
    assert desc is not None and desc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    return store, desc, store.read_manifest(desc["digest"])


def platform_image(layout: Path, arch: str = "amd64", tag: str = TAG
                   ) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """(manifest, config, layer bytes) of the linux/`arch` image of `tag`."""
    store, _, index = image_index(layout, tag)
    (entry,) = [m for m in index["manifests"] if m["platform"]["architecture"] == arch]
    manifest = store.read_manifest(entry["digest"])
    config = json.loads(store.read_blob(manifest["config"]["digest"]))
    (layer,) = manifest["layers"]
    return manifest, config, store.read_blob(layer["digest"])


def amd64_image(layout: Path) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """(manifest, config, layer bytes) of the linux/amd64 image."""
    return platform_image(layout, "amd64")


def unpack(layout: Path, dest: Path, arch: str = "amd64", tag: str = TAG) -> UnpackedImage:
    """The linux/`arch` image of `tag` unpacked into `dest`/rootfs (owners and modes kept)."""
    _, config, blob = platform_image(layout, arch, tag)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "layer.tar.gz").write_bytes(blob)
    (dest / "rootfs").mkdir()
    subprocess.run(["tar", "-xzf", str(dest / "layer.tar.gz"), "-C", str(dest / "rootfs")],
                   check=True)
    (dest / "layer.tar.gz").unlink()
    return UnpackedImage(dest / "rootfs", config)


def push_and_pull(layout: Path, host: str, back: Path, tag: str = TAG) -> Path:
    """`layout` pushed with skopeo to the registry at `host` (plain http on 127.0.0.1) and
    pulled back into the layout `back`; the pulled index must be the pushed one."""
    if not shutil.which("skopeo"):
        pytest.skip("pushing the runner image needs skopeo (apt-get install skopeo)")
    remote = f"docker://{host}/{REPOSITORY}:{tag}"
    subprocess.run(["skopeo", "copy", "--all", "--quiet", "--dest-tls-verify=false",
                    f"oci:{layout}:{tag}", remote], check=True, timeout=300)
    subprocess.run(["skopeo", "copy", "--all", "--quiet", "--src-tls-verify=false", remote,
                    f"oci:{back}:{tag}"], check=True, timeout=300)
    _, pushed, _ = image_index(layout, tag)
    _, pulled, _ = image_index(back, tag)
    assert pulled["digest"] == pushed["digest"], "the registry changed the runner image"
    return back


@pytest.fixture(scope="session")
def runner_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("mmdebstrap") or os.geteuid() != 0:
        pytest.skip("building the runner image needs mmdebstrap (apt-get install mmdebstrap) "
                    "and root")
    return build_layout(tmp_path_factory.mktemp("runner-image") / "layout")


@pytest.fixture(scope="session")
def runner_rootfs(runner_layout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The linux/amd64 layer unpacked (owners and modes kept: we are root)."""
    return unpack(runner_layout, tmp_path_factory.mktemp("rootfs")).rootfs


@pytest.fixture(scope="session")
def pulled_runner_image(runner_layout: Path, tmp_path_factory: pytest.TempPathFactory
                        ) -> UnpackedImage:
    """The runner image as a node gets it: pushed to a registry on 127.0.0.1, pulled back,
    this machine's image unpacked. The registry runs only for the push and the pull."""
    from tests.registry.conftest import start_registry, stop_registry

    registry = start_registry(tmp_path_factory.mktemp("runner-registry"), None)
    try:
        back = push_and_pull(runner_layout, registry.host,
                             tmp_path_factory.mktemp("runner-pulled") / "layout")
    finally:
        stop_registry(registry.proc)
    return unpack(back, tmp_path_factory.mktemp("runner-unpacked"), ARCH)
