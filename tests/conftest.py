"""Fixtures shared by every test layer: built gadgets and the root + BTF skip marker.

`built_gadgets` compiles each in-tree gadget once per session, the first time a test asks for
it (`built_gadgets["trace_exit"]`), into a temp dir, with the same `build_dir` that `make
gadgets` uses, so kernel and golden tests run against what the sources say today (never a stale
build/ directory). `build_gadget` compiles any other source directory (test gadgets under
tests/data/gadgets/, patched copies). `runner_layout`, `runner_rootfs` and
`pulled_runner_image`: the runner image, built once per session when a test asks for it
(tests/runner_image.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GADGETS_SRC = REPO / "gadgets"
TEST_GADGETS_SRC = Path(__file__).resolve().parent / "data" / "gadgets"
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")


def _root_btf_reason() -> str:
    if os.geteuid() != 0:
        return "needs root to load eBPF programs"
    if not VMLINUX_BTF.exists():
        return f"needs kernel BTF ({VMLINUX_BTF} is missing)"
    return ""


# `@needs_root_btf` (or in `pytestmark`): skip, saying why, unless root on a kernel with BTF.
needs_root_btf = pytest.mark.skipif(bool(_root_btf_reason()),
                                    reason=_root_btf_reason() or "root and BTF available")

# Workloads (tests/workloads.py) need util-linux's unshare and nsenter.
needs_unshare = pytest.mark.skipif(
    not (shutil.which("unshare") and shutil.which("nsenter")),
    reason="needs util-linux unshare and nsenter for workloads in their own mount namespace")


def _require_clang() -> None:
    missing = [t for t in ("clang", "llvm-strip") if not (shutil.which(t) or
                                                          shutil.which(t + "-14"))]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: cannot compile gadgets "
                    "(apt-get install clang llvm)")


def compile_gadget(src: Path, out: Path) -> Path:
    """Compile a gadget source directory into `out` (skips the test without clang)."""
    _require_clang()
    from kubectl_gadget.image.build import build_dir

    return build_dir(src, out, os.uname().machine)


class _BuiltGadgets(dict[str, Path]):
    """In-tree gadget name -> compiled dir; a gadget is compiled the first time it is asked for."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, name: str) -> Path:
        if not (GADGETS_SRC / name / "program.bpf.c").is_file():
            raise KeyError(f"no in-tree gadget {name!r} under {GADGETS_SRC}")
        built = self[name] = compile_gadget(GADGETS_SRC / name, self.root / name)
        return built


@pytest.fixture(scope="session")
def built_gadgets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"trace_open": dir, ...}: in-tree gadgets compiled for this session, on first use."""
    _require_clang()
    return _BuiltGadgets(tmp_path_factory.mktemp("gadgets"))


@pytest.fixture
def build_gadget(tmp_path: Path) -> Callable[[Path], Path]:
    """Compile a source directory (a test gadget, a patched copy) into this test's tmp dir."""
    counter = iter(range(1000))

    def build(src: Path) -> Path:
        # The output dir is named after the source: the runner names the gadget after it.
        return compile_gadget(Path(src), tmp_path / f"built{next(counter)}" / Path(src).name)

    return build


# The runner image (built from this tree, pushed and pulled through a registry on 127.0.0.1,
# unpacked), once per session for every directory: see tests/runner_image.py.
from tests.runner_image import (  # noqa: E402
    pulled_runner_image,
    runner_layout,
    runner_rootfs,
)

__all__ = ["pulled_runner_image", "runner_layout", "runner_rootfs"]
