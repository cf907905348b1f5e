"""`make runner-image`: the runner's OCI image built from Debian packages, pushed, pulled, run.

The image is built once (`python -m kubectl_gadget.release runner-image`, mmdebstrap from the
Debian mirror, minutes, for amd64 and arm64), then: its index and each architecture's layer
are inspected (size, no compilers, no setuid programs, nothing writable by others, the runner
and in-tree gadgets present), the index is pushed to a real registry on 127.0.0.1 with skopeo
and pulled back unchanged, and every runner module imports inside the amd64 image (chroot).
test_runner_image_arm64.py checks the arm64 image's binaries and runs it under emulation;
test_least_privilege.py runs the amd64 image as a runc container.
Opt-in: `make runner-image-test`.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from kubectl_gadget.release import runner_image
from node_runner.oci.store import Store
from tests.runner_image import (
    RUNNER_ARCHES,
    TAG,
    amd64_image,
    image_index,
    needs_mmdebstrap,
    platform_image,
)
from tests.registry.conftest import Registry

pytestmark = [pytest.mark.runner_image, needs_mmdebstrap]
COMPILERS = ("cc", "gcc", "clang", "c++", "g++", "as", "ld", "tcc", "llc")
MAX_BYTES = 150_000_000
ARCHES = ("amd64", "arm64")  # what the project ships; RUNNER_ARCHES may narrow a local run


def built(arch: str) -> str:
    """`arch`, skipping the test when this run did not build it."""
    if arch not in RUNNER_ARCHES:
        pytest.skip(f"the runner image was built for {' '.join(RUNNER_ARCHES)} only "
                    "(KUBECTL_GADGET_TEST_RUNNER_ARCHES, make runner-image-test ARCHES=...)")
    return arch


@pytest.fixture(scope="module", params=ARCHES)
def members(request: pytest.FixtureRequest, runner_layout: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, tarfile.TarInfo]:
    """The members of one architecture's layer, by name."""
    _, _, blob = platform_image(runner_layout, built(request.param))
    path = tmp_path_factory.mktemp("layer") / "layer.tar.gz"
    path.write_bytes(blob)
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_index_lists_each_architecture_with_its_config(runner_layout: Path) -> None:
    store, _, index = image_index(runner_layout)
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": arch, "os": "linux"} for arch in RUNNER_ARCHES]
    layers = set()
    for arch in RUNNER_ARCHES:
        manifest, config, _ = platform_image(runner_layout, arch)
        assert config["architecture"] == arch and config["os"] == "linux"
        assert config["config"]["Entrypoint"] == ["python3", "-m", "node_runner"]
        size = manifest["config"]["size"] + manifest["layers"][0]["size"]
        print(f"runner image linux/{arch}: {size / 1e6:.1f} MB compressed")
        assert size < MAX_BYTES
        layers.add(manifest["layers"][0]["digest"])
    assert len(layers) == len(RUNNER_ARCHES)


def test_layer_has_runner_and_gadgets_and_no_compilers(members: dict[str, tarfile.TarInfo]
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


def test_push_to_registry_and_pull_back_unchanged(runner_layout: Path, registry: Registry,
                                                  tmp_path: Path) -> None:
    _, desc, _ = image_index(runner_layout)
    remote = f"docker://{registry.host}/kubectl-gadget/node-runner:{TAG}"
    subprocess.run(["skopeo", "copy", "--all", "--quiet", "--dest-tls-verify=false",
                    f"oci:{runner_layout}:{TAG}", remote], check=True, timeout=300)
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", remote],
                         check=True, capture_output=True, timeout=60).stdout
    assert raw == Store(runner_layout).read_blob(desc["digest"])
    assert [m["platform"]["architecture"] for m in json.loads(raw)["manifests"]] == RUNNER_ARCHES
    for arch in RUNNER_ARCHES:  # what a node of each architecture gets from the registry
        out = subprocess.run(["skopeo", "--override-os=linux", f"--override-arch={arch}",
                              "inspect", "--tls-verify=false", remote],
                             check=True, capture_output=True, timeout=60).stdout
        manifest, _, _ = platform_image(runner_layout, arch)
        assert json.loads(out)["Architecture"] == arch
        assert json.loads(out)["Layers"] == [manifest["layers"][0]["digest"]]
    back = tmp_path / "pulled"
    subprocess.run(["skopeo", "copy", "--all", "--quiet", "--src-tls-verify=false", remote,
                    f"oci:{back}:{TAG}"], check=True, timeout=300)
    assert Store(back).lookup(TAG)["digest"] == desc["digest"]
    for arch in RUNNER_ARCHES:
        assert platform_image(back, arch) == platform_image(runner_layout, arch)


IMPORT_ALL = ("import importlib, pkgutil, node_runner\n"
              "for m in pkgutil.walk_packages(node_runner.__path__, 'node_runner.'):\n"
              "    if not m.name.endswith('__main__'):\n"
              "        importlib.import_module(m.name)\n"
              "import node_runner.oci.registry\n"
              "print('imported', len(list(pkgutil.walk_packages(node_runner.__path__))))")


def test_every_runner_module_imports_inside_the_image(runner_layout: Path,
                                                      runner_rootfs: Path) -> None:
    """Every module of node_runner (lazy imports too: registry, symbols) finds its libraries
    among the image's packages, with the image's own environment."""
    _, config, _ = amd64_image(runner_layout)
    proc = subprocess.run(["chroot", str(runner_rootfs), "/usr/bin/env", "-i",
                           *config["config"]["Env"], "python3", "-c", IMPORT_ALL],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("imported ")
    version = subprocess.run(["chroot", str(runner_rootfs), "/usr/bin/env", "-i",
                              *config["config"]["Env"], *config["config"]["Entrypoint"],
                              "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and version.stdout.startswith("node-runner "), version.stderr
