"""Every in-tree gadget compiles for arm64 and x86_64 (gadgets/include/<arch>/vmlinux.h, the
__TARGET_ARCH_<arch> register macros) into a BPF object whose BTF describes the same
datasources on both: same structs, record sizes and field layout, so one client decodes the
events of either architecture. The machine's own architecture comes from the session's
`built_gadgets`, the other one is cross-compiled here. Compilation only: no root, no kernel.
"""

from __future__ import annotations

import os
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kubectl_gadget.image.build import ARCHES, build_dir, include_root
from kubectl_gadget.release.stage import in_tree_gadgets, runtime_objects
from node_runner.gadget.btf import Composite, Kind, load_object_btf
from node_runner.gadget.elf import ElfFile
from node_runner.gadget.spec import GadgetSpec, load_spec
from tests.conftest import GADGETS_SRC, _require_clang

SOURCES = in_tree_gadgets() + runtime_objects()
EM_BPF = 247


def _layout(spec: GadgetSpec) -> list[tuple[object, ...]]:
    # enum value names come from each kernel's own vmlinux.h (drop reasons, ...): not compared
    return [(ds.name, ds.kind, ds.struct_name, ds.record_size,
             [(f.name, f.offset, f.size, f.kind, f.signed, f.tags, f.bit_offset)
              for f in ds.fields]) for ds in spec.datasources]


NATIVE = ARCHES[os.uname().machine][0] if os.uname().machine in ARCHES else "x86_64"
CROSS = "x86_64" if NATIVE == "arm64" else "arm64"


@pytest.fixture(scope="module")
def cross(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """gadget -> directory built for the other architecture, compiled two at a time."""
    _require_clang()
    root = tmp_path_factory.mktemp("cross")
    with ThreadPoolExecutor(max_workers=2) as pool:
        dirs = list(pool.map(lambda src: build_dir(src, root / src.name, CROSS), SOURCES))
    return {src.name: d for src, d in zip(SOURCES, dirs, strict=True)}


@pytest.fixture(scope="module")
def built(cross: dict[str, Path], built_gadgets: dict[str, Path]
          ) -> dict[tuple[str, str], Path]:
    """(arch, gadget) -> built directory, for arm64 and x86_64."""
    out = {(CROSS, name): d for name, d in cross.items()}
    out.update({(NATIVE, src.name): built_gadgets[src.name] for src in in_tree_gadgets()})
    return out


def test_arm64_header_is_checked_in() -> None:
    header = include_root(GADGETS_SRC / "trace_open") / "arm64" / "vmlinux.h"
    first = header.read_text().splitlines()[0]
    assert "arm64 kernel" in first, first  # it names the kernel it was generated from
    assert len(SOURCES) > 20


def test_every_gadget_compiles_for_arm64(built: dict[tuple[str, str], Path]) -> None:
    assert {name for arch, name in built if arch == "arm64"} >= {
        src.name for src in in_tree_gadgets()}
    for (arch, name), out in sorted(built.items()):
        data = (out / "program.bpf.o").read_bytes()
        (machine,) = struct.unpack_from("<H", data, 18)
        assert data[:4] == b"\x7fELF" and machine == EM_BPF, f"{arch}/{name}: not a BPF ELF"
        elf = ElfFile.parse(data)
        assert elf.is_bpf
        btf = load_object_btf(elf)
        assert any(isinstance(t, Composite) for t in btf.types), f"{arch}/{name}: no structs"


def test_arm64_datasources_match_x86_64(built: dict[tuple[str, str], Path]) -> None:
    with_datasources = 0
    for src in in_tree_gadgets():
        arm = load_spec(str(built[("arm64", src.name)]))
        x86 = load_spec(str(built[("x86_64", src.name)]))
        assert _layout(arm) == _layout(x86), src.name
        assert sorted(arm.params) == sorted(x86.params), src.name
        with_datasources += bool(arm.datasources)
        btf = load_object_btf(ElfFile.parse(Path(arm.object_path).read_bytes()))
        for ds in arm.datasources:
            if ds.struct_name:  # a map iterator's record is its key and value, no one struct
                assert btf.find(ds.struct_name, Kind.STRUCT), (
                    f"{src.name}: struct {ds.struct_name} not in BTF")
    assert with_datasources == len(in_tree_gadgets())
