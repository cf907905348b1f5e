"""ElfFile against real clang-built BPF objects (checked with llvm-objdump) and broken input.

Also home of ``compile_bpf``, the helper the BTF and layout tests use to build the C sources
under tests/data/btf/ at test time.
"""

from __future__ import annotations

import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from node_runner.gadget.elf import (
    ABS_SECTION,
    EM_BPF,
    ET_REL,
    SHT_NOBITS,
    STB_GLOBAL,
    STT_FUNC,
    STT_OBJECT,
    ElfFile,
)
from node_runner.gadget.errors import GadgetFormatError

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "btf"


def compile_bpf(source: str, out_dir: Path, *extra_flags: str) -> Path:
    """Compile tests/data/btf/<source> for the BPF target; skip the test without clang."""
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed: cannot compile the BPF test sources")
    out = out_dir / (Path(source).stem.replace(".bpf", "") + ".o")
    cmd = ["clang", "-target", "bpf", "-O2", "-c", str(DATA_DIR / source), "-o", str(out)]
    subprocess.run([*cmd, *(extra_flags or ("-g",))], check=True, capture_output=True)
    return out


def objdump(*args: str) -> str:
    """Output of llvm-objdump; skip the test when it is not installed."""
    tool = shutil.which("llvm-objdump")
    if tool is None:
        pytest.skip("llvm-objdump is not installed: nothing independent to compare with")
    return subprocess.run([tool, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def globals_obj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_bpf("globals.bpf.c", tmp_path_factory.mktemp("elf"))


@pytest.fixture(scope="session")
def globals_elf(globals_obj: Path) -> ElfFile:
    return ElfFile.parse(globals_obj.read_bytes())


def test_header_facts(globals_elf: ElfFile) -> None:
    assert globals_elf.little_endian
    assert globals_elf.machine == EM_BPF and globals_elf.is_bpf
    assert globals_elf.elf_type == ET_REL


def test_sections_match_objdump(globals_obj: Path, globals_elf: ElfFile) -> None:
    expected = {}
    for line in objdump("-h", str(globals_obj)).splitlines():
        m = re.match(r"\s*(\d+)\s+(\S+)\s+([0-9a-f]{8})\s", line)
        if m:
            expected[m.group(2)] = (int(m.group(1)), int(m.group(3), 16))
    assert {".rodata", ".data", ".bss", ".maps", ".BTF", "license"} <= expected.keys()
    ours = {s.name: (s.index, s.size) for s in globals_elf.sections if s.index}
    assert ours == expected


def test_symbols_match_objdump(globals_obj: Path, globals_elf: ElfFile) -> None:
    expected = set()
    for line in objdump("-t", str(globals_obj)).splitlines():
        m = re.match(r"([0-9a-f]{16}) g\s+([OF])\s+(\S+)\s+([0-9a-f]{16}) (\S+)$", line)
        if m:
            kind = STT_OBJECT if m.group(2) == "O" else STT_FUNC
            expected.add((m.group(5), m.group(3), int(m.group(1), 16), int(m.group(4), 16), kind))
    assert len(expected) > 10
    ours = {
        (s.name, s.section, s.value, s.size, s.type)
        for s in globals_elf.symbols
        if s.bind == STB_GLOBAL
    }
    assert ours == expected


def test_symbol_lookup(globals_elf: ElfFile) -> None:
    sym = globals_elf.get_symbol("targ_big")
    assert sym is not None and (sym.section, sym.size, sym.type) == (".rodata", 8, STT_OBJECT)
    assert globals_elf.get_symbol("targ_big", section=".data") is None
    assert globals_elf.get_symbol("no_such_symbol") is None
    file_sym = next(s for s in globals_elf.symbols if s.name == "globals.bpf.c")
    assert file_sym.section == ABS_SECTION
    assert [s.name for s in globals_elf.iter_symbols(".data")] == ["data_var"]


def test_section_bytes_are_views_of_the_file(globals_obj: Path, globals_elf: ElfFile) -> None:
    raw = globals_obj.read_bytes()
    btf = globals_elf.section(".BTF")
    assert bytes(btf.data) == raw[btf.offset : btf.offset + btf.size]
    assert bytes(btf.data[:2]) == b"\x9f\xeb"  # BTF magic, little-endian
    license_ = globals_elf.section("license")
    assert bytes(license_.data) == b"GPL\0"
    bss = globals_elf.section(".bss")
    assert bss.type == SHT_NOBITS and bss.size == 0x40 and len(bss.data) == 0


def test_missing_section_is_a_format_error(globals_elf: ElfFile) -> None:
    assert globals_elf.get_section(".nope") is None
    with pytest.raises(GadgetFormatError, match="no section '.nope'"):
        globals_elf.section(".nope")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not an ELF file"),
        (b"\x7fEL", "not an ELF file"),
        (b"MZ\x90\x00" + bytes(60), "not an ELF file"),
        (b"\x7fELF\x01\x01\x01" + bytes(57), "not ELF64"),
        (b"\x7fELF\x02\x03\x01" + bytes(57), "unknown data encoding"),
        (b"\x7fELF\x02\x01\x01" + bytes(20), "ELF header"),
    ],
)
def test_not_elf64(data: bytes, message: str) -> None:
    with pytest.raises(GadgetFormatError, match=message):
        ElfFile.parse(data)


def test_every_truncation_is_a_format_error(globals_obj: Path) -> None:
    raw = globals_obj.read_bytes()
    cuts = list(range(0, 80)) + list(range(80, len(raw), 61)) + [len(raw) - 1]
    for cut in cuts:
        with pytest.raises(GadgetFormatError):
            ElfFile.parse(raw[:cut])


def _shdr_field(raw: bytearray, index: int, field: str, value: int) -> None:
    """Overwrite one field of section header ``index`` in a little-endian ELF64."""
    shoff = struct.unpack_from("<Q", raw, 0x28)[0]
    offsets = {"name": (0, "<I"), "offset": (24, "<Q"), "size": (32, "<Q"), "link": (40, "<I")}
    rel, fmt = offsets[field]
    struct.pack_into(fmt, raw, shoff + index * 64 + rel, value)


def test_section_past_end_of_file(globals_obj: Path, globals_elf: ElfFile) -> None:
    raw = bytearray(globals_obj.read_bytes())
    _shdr_field(raw, globals_elf.section(".rodata").index, "size", 1 << 40)
    with pytest.raises(GadgetFormatError, match="run past the end"):
        ElfFile.parse(bytes(raw))


def test_section_name_outside_string_table(globals_obj: Path, globals_elf: ElfFile) -> None:
    raw = bytearray(globals_obj.read_bytes())
    _shdr_field(raw, globals_elf.section(".data").index, "name", 0xFFFFFF)
    with pytest.raises(GadgetFormatError, match="outside the string table"):
        ElfFile.parse(bytes(raw))


def test_symbol_table_with_bad_string_table_link(globals_obj: Path, globals_elf: ElfFile) -> None:
    raw = bytearray(globals_obj.read_bytes())
    _shdr_field(raw, globals_elf.section(".symtab").index, "link", 999)
    with pytest.raises(GadgetFormatError, match="string table index 999"):
        ElfFile.parse(bytes(raw))


def test_section_header_count_past_end(globals_obj: Path) -> None:
    raw = bytearray(globals_obj.read_bytes())
    struct.pack_into("<H", raw, 0x3C, 0xFFF0)  # e_shnum
    with pytest.raises(GadgetFormatError, match="section headers"):
        ElfFile.parse(bytes(raw))


def test_random_corruption_raises_only_format_errors(globals_obj: Path) -> None:
    raw = globals_obj.read_bytes()
    shoff = struct.unpack_from("<Q", raw, 0x28)[0]
    rng = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(400):
        bad = bytearray(raw)
        for _ in range(rng.randint(1, 4)):  # hit the ELF header or the section headers
            pos = rng.choice([rng.randrange(0, 64), rng.randrange(shoff, len(raw))])
            bad[pos] = rng.randrange(256)
        try:
            ElfFile.parse(bytes(bad))
            outcomes["ok"] += 1
        except GadgetFormatError:
            outcomes["error"] += 1
    assert outcomes["error"] > 0 and outcomes["ok"] > 0  # both paths were exercised
