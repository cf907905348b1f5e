"""The runner image's linux/arm64 half: built for arm64 all through, and it starts (emulated).

`make runner-image` bootstraps the arm64 tree from the same recipe under qemu-user-static
(binfmt_misc); these tests read its layer: Python and libbpf are aarch64 ELF files (and the
amd64 image's are x86-64), the eBPF objects are the arm64 build of the in-tree gadgets, byte
for byte the ones `make gadgets-arm64` compiles (not the amd64 ones), and the runner starts
inside the unpacked arm64 root filesystem (chroot, emulated): every module imports, libbpf
loads with every function the runner binds, the entry point prints its version.
Opt-in with the image build: `make runner-image-test`.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_gadget.release import binfmt, runner_image, stage
from node_runner import __version__
from tests.conftest import REPO
from tests.runner_image import needs_mmdebstrap, platform_image
from tests.dist.test_runner_image import IMPORT_ALL, built

pytestmark = [pytest.mark.runner_image, needs_mmdebstrap]
EM_X86_64, EM_AARCH64, EM_BPF = 62, 183, 247
MACHINE = {"amd64": EM_X86_64, "arm64": EM_AARCH64}
OPEN_LIBBPF = ("from node_runner.libbpf.library import lib\n"
               "l = lib().lib\n"
               "print('libbpf', l.libbpf_major_version(), l.libbpf_minor_version())")


@pytest.fixture(scope="module")
def arm64_rootfs(runner_layout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The linux/arm64 layer unpacked (owners and modes kept: we are root)."""
    _, _, blob = platform_image(runner_layout, built("arm64"))
    base = tmp_path_factory.mktemp("rootfs-arm64")
    (base / "layer.tar.gz").write_bytes(blob)
    (base / "rootfs").mkdir()
    subprocess.run(["tar", "-xzf", str(base / "layer.tar.gz"), "-C", str(base / "rootfs")],
                   check=True)
    return base / "rootfs"


@pytest.fixture
def trees(request: pytest.FixtureRequest) -> dict[str, Path]:
    """The unpacked tree of each architecture this test asks for (`arch` param, or both)."""
    arches = [request.node.callspec.params["arch"]] if hasattr(request.node, "callspec") \
        else ["amd64", "arm64"]
    fixture = {"amd64": "runner_rootfs", "arm64": "arm64_rootfs"}
    return {arch: request.getfixturevalue(fixture[built(arch)]) for arch in arches}


def _inside(root: Path, name: str) -> Path:
    """`name` in the tree `root`, following symbolic links as they resolve inside it."""
    path = Path("/")
    parts = list(Path("/", name).parts[1:])
    for _ in range(64):
        if not parts:
            return root / path.relative_to("/")
        part = parts.pop(0)
        here = root / (path / part).relative_to("/")
        if here.is_symlink():
            target = os.readlink(here)
            parts = list(Path(target).parts) + parts
            if target.startswith("/"):
                path, parts = Path("/"), parts[1:]
        elif part == "..":
            path = path.parent
        else:
            path = path / part
    raise AssertionError(f"{name}: too many symbolic links in {root}")


def elf_machine(path: Path) -> int:
    """e_machine of a 64-bit little-endian ELF file (anything else fails the test)."""
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", f"{path}: not an ELF file"
    assert head[4] == 2 and head[5] == 1, f"{path}: not a 64-bit little-endian ELF file"
    return int(struct.unpack_from("<H", head, 18)[0])


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_python_and_libbpf_are_elf_files_of_the_image_architecture(
        trees: dict[str, Path], arch: str) -> None:
    root = trees[arch]
    (libbpf,) = root.glob("usr/lib/*-linux-gnu/libbpf.so.1")
    for name in ("usr/bin/python3", str(libbpf.relative_to(root)), "usr/bin/mount"):
        assert elf_machine(_inside(root, name)) == MACHINE[arch], f"linux/{arch}: {name}"


@pytest.fixture(scope="module")
def arm64_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The in-tree gadgets and runtime objects compiled for arm64, as `make gadgets-arm64`
    compiles them into build/gadgets-arm64 and build/runtime-arm64."""
    out = tmp_path_factory.mktemp("gadgets-arm64")
    for sources, dest in ((stage.in_tree_gadgets(REPO), "gadgets"),
                          (stage.runtime_objects(REPO), "runtime")):
        proc = subprocess.run([sys.executable, "-m", "kubectl_gadget.image.build",
                               *map(str, sources), "--arch", "arm64", "--out", str(out / dest)],
                              cwd=REPO, capture_output=True, text=True, check=False,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=900)
        assert proc.returncode == 0, proc.stderr
    return out


def test_gadget_objects_are_the_arm64_build(trees: dict[str, Path], arm64_reference: Path
                                            ) -> None:
    for image_dir, ref_dir in ((runner_image.GADGETS, "gadgets"),
                               (runner_image.RUNTIME, "runtime")):
        ref = {p.parent.name: p for p in (arm64_reference / ref_dir).glob("*/program.bpf.o")}
        objects = {p.parent.name: p for p in (trees["arm64"] / image_dir).glob("*/program.bpf.o")}
        assert ref and sorted(objects) == sorted(ref)
        for name, obj in objects.items():
            assert elf_machine(obj) == EM_BPF, name
            assert obj.read_bytes() == ref[name].read_bytes(), f"{name}: not the arm64 build"
        # and not the amd64 one (another vmlinux.h, __TARGET_ARCH_arm64)
        amd64 = trees["amd64"] / image_dir
        assert [name for name, obj in objects.items()
                if (amd64 / name / "program.bpf.o").read_bytes() != obj.read_bytes()]


def _in_arm64_image(runner_layout: Path, root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run `argv` in the unpacked arm64 tree with the image's environment (qemu, via the
    binfmt_misc entry the build registered; registered again here if it is gone)."""
    binfmt.ensure("arm64")
    _, config, _ = platform_image(runner_layout, "arm64")
    return subprocess.run(["chroot", str(root), "/usr/bin/env", "-i", *config["config"]["Env"],
                           *argv], capture_output=True, text=True, timeout=600, check=False)


def test_arm64_runner_starts_under_emulation(runner_layout: Path, arm64_rootfs: Path) -> None:
    root = arm64_rootfs
    _, config, _ = platform_image(runner_layout, "arm64")
    arch = _in_arm64_image(runner_layout, root, "python3", "-c",
                           "import platform; print(platform.machine())")
    assert arch.returncode == 0 and arch.stdout.strip() == "aarch64", arch.stderr
    imports = _in_arm64_image(runner_layout, root, "python3", "-c", IMPORT_ALL)
    assert imports.returncode == 0 and imports.stdout.startswith("imported "), imports.stderr
    opened = _in_arm64_image(runner_layout, root, "python3", "-c", OPEN_LIBBPF)
    assert opened.returncode == 0 and opened.stdout.startswith("libbpf 1 "), opened.stderr
    version = _in_arm64_image(runner_layout, root, *config["config"]["Entrypoint"], "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"node-runner {__version__}"


def test_binfmt_step_is_idempotent_and_leaves_an_entry_with_fix_binary(runner_layout: Path) -> None:
    built("arm64")  # the build ran the step; running it again changes nothing
    assert binfmt.ensure("arm64") == []
    entry = binfmt.parse_entry((binfmt.BINFMT_DIR / "qemu-aarch64").read_text())
    assert entry.enabled and "F" in entry.flags
