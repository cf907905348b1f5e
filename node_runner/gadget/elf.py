"""Minimal ELF64 reader: section headers and the symbol table, nothing else.

One job: let the gadget spec find ``.BTF``, ``.rodata`` and symbol values in a compiled
eBPF object without libbpf or root. It reads only headers, names and symbols, and hands out
section bytes as zero-copy ``memoryview`` slices of the input.

The trap avoided: every offset and count in an ELF file is attacker- (or truncation-)
controlled. Each read is bounds-checked and any failure becomes a ``GadgetFormatError``
saying what was being read; no ``IndexError``/``struct.error`` escapes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from node_runner.gadget.errors import GadgetFormatError

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2
EM_BPF = 247
ET_REL = 1

SHT_NULL = 0
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_NOBITS = 8

SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_XINDEX = 0xFFFF

STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2

STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STT_FILE = 4

# Pseudo section names for symbols that do not live in a real section.
UNDEF_SECTION = ""
ABS_SECTION = "*ABS*"
COMMON_SECTION = "*COM*"

_EHDR_SIZE = 64
_SHDR_SIZE = 64
_SYM_SIZE = 24


@dataclass(frozen=True, slots=True)
class Section:
    """One section header plus its bytes (empty for SHT_NOBITS such as ``.bss``)."""

    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int
    data: memoryview = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Symbol:
    """One ``.symtab`` entry; ``section`` is the section's name or a pseudo name."""

    name: str
    section: str
    value: int
    size: int
    bind: int
    type: int
    section_index: int


@dataclass(frozen=True, slots=True)
class _Header:
    endian: str
    elf_type: int
    machine: int
    shoff: int
    shentsize: int
    shnum: int
    shstrndx: int


def _unpack(fmt: str, data: bytes | memoryview, offset: int, what: str) -> tuple[int, ...]:
    size = struct.calcsize(fmt)
    if offset < 0 or offset + size > len(data):
        raise GadgetFormatError(
            f"reading {what}: need {size} bytes at offset {offset}, file has {len(data)}"
        )
    return struct.unpack_from(fmt, data, offset)


def _cstring(table: bytes, offset: int, what: str) -> str:
    if offset >= len(table):
        raise GadgetFormatError(
            f"reading {what}: name offset {offset} is outside the string table ({len(table)} bytes)"
        )
    end = table.find(b"\0", offset)
    if end < 0:
        raise GadgetFormatError(f"reading {what}: name at offset {offset} is not NUL-terminated")
    return table[offset:end].decode("utf-8", errors="replace")


def _parse_header(data: bytes) -> _Header:
    if len(data) < 16 or data[:4] != ELF_MAGIC:
        raise GadgetFormatError("reading ELF header: not an ELF file (bad magic or too short)")
    if data[4] != ELFCLASS64:
        raise GadgetFormatError(f"reading ELF header: class {data[4]} is not ELF64")
    if data[5] == ELFDATA2LSB:
        endian = "<"
    elif data[5] == ELFDATA2MSB:
        endian = ">"
    else:
        raise GadgetFormatError(f"reading ELF header: unknown data encoding {data[5]}")
    e_type, machine, _ver, _entry, _phoff, shoff, _flags, _ehsize, _phentsize, _phnum, \
        shentsize, shnum, shstrndx = _unpack(endian + "HHIQQQIHHHHHH", data, 16, "ELF header")
    if shoff and shentsize != _SHDR_SIZE:
        raise GadgetFormatError(
            f"reading ELF header: section header size {shentsize}, expected {_SHDR_SIZE}"
        )
    return _Header(endian, e_type, machine, shoff, shentsize, shnum, shstrndx)


def _raw_section_headers(data: bytes, hdr: _Header) -> list[tuple[int, ...]]:
    if hdr.shoff == 0:
        return []
    first = _unpack(hdr.endian + "IIQQQQIIQQ", data, hdr.shoff, "section header 0")
    shnum = hdr.shnum or first[5]  # extended numbering keeps the count in sh_size of #0
    if hdr.shoff + shnum * _SHDR_SIZE > len(data):
        raise GadgetFormatError(
            f"reading section headers: {shnum} headers at offset {hdr.shoff} "
            f"run past the end of the file ({len(data)} bytes)"
        )
    fmt = hdr.endian + "IIQQQQIIQQ"
    return [struct.unpack_from(fmt, data, hdr.shoff + i * _SHDR_SIZE) for i in range(shnum)]


def _section_bytes(view: memoryview, idx: int, sh_type: int, off: int, size: int) -> memoryview:
    if sh_type in (SHT_NOBITS, SHT_NULL):
        return view[0:0]
    if off + size > len(view):
        raise GadgetFormatError(
            f"reading section {idx}: {size} bytes at offset {off} run past the end "
            f"of the file ({len(view)} bytes)"
        )
    return view[off : off + size]


def _build_sections(data: bytes, hdr: _Header) -> tuple[Section, ...]:
    raws = _raw_section_headers(data, hdr)
    if not raws:
        return ()
    view = memoryview(data)
    strndx = hdr.shstrndx if hdr.shstrndx != SHN_XINDEX else raws[0][6]
    if strndx >= len(raws):
        raise GadgetFormatError(
            f"reading section names: string table index {strndx} >= section count {len(raws)}"
        )
    s = raws[strndx]
    names = bytes(_section_bytes(view, strndx, s[1], s[4], s[5]))
    out = []
    for i, (name_off, sh_type, flags, _addr, off, size, link, info, _align, entsize) in \
            enumerate(raws):
        name = _cstring(names, name_off, f"name of section {i}") if i else ""
        body = _section_bytes(view, i, sh_type, off, size)
        out.append(Section(i, name, sh_type, flags, off, size, link, info, entsize, body))
    return tuple(out)


def _symbol_section(shndx: int, sections: tuple[Section, ...], sym_name: str) -> str:
    if shndx == SHN_UNDEF:
        return UNDEF_SECTION
    if shndx == SHN_ABS:
        return ABS_SECTION
    if shndx == SHN_COMMON:
        return COMMON_SECTION
    if shndx >= SHN_LORESERVE or shndx >= len(sections):
        raise GadgetFormatError(
            f"reading symbol {sym_name!r}: section index {shndx:#x} is unsupported or out of range"
        )
    return sections[shndx].name


def _build_symbols(endian: str, sections: tuple[Section, ...]) -> tuple[Symbol, ...]:
    symtab = next((s for s in sections if s.type == SHT_SYMTAB), None)
    if symtab is None:
        return ()
    if symtab.link >= len(sections):
        raise GadgetFormatError(f"reading symbols: string table index {symtab.link} out of range")
    strtab = bytes(sections[symtab.link].data)
    fmt = endian + "IBBHQQ"
    out = []
    for i in range(1, symtab.size // _SYM_SIZE):
        name_off, info, _other, shndx, value, size = _unpack(
            fmt, symtab.data, i * _SYM_SIZE, f"symbol {i}"
        )
        name = _cstring(strtab, name_off, f"name of symbol {i}")
        section = _symbol_section(shndx, sections, name)
        out.append(Symbol(name, section, value, size, info >> 4, info & 0xF, shndx))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ElfFile:
    """A parsed ELF64 file: header facts, sections and symbols. Build with :meth:`parse`."""

    little_endian: bool
    machine: int
    elf_type: int
    sections: tuple[Section, ...]
    symbols: tuple[Symbol, ...]

    @classmethod
    def parse(cls, data: bytes) -> ElfFile:
        """Parse ``data`` (the whole file); raise ``GadgetFormatError`` when malformed."""
        data = bytes(data)
        hdr = _parse_header(data)
        sections = _build_sections(data, hdr)
        symbols = _build_symbols(hdr.endian, sections)
        return cls(hdr.endian == "<", hdr.machine, hdr.elf_type, sections, symbols)

    @property
    def is_bpf(self) -> bool:
        return self.machine == EM_BPF

    def get_section(self, name: str) -> Section | None:
        """The first section called ``name``, or None."""
        return next((s for s in self.sections if s.name == name), None)

    def section(self, name: str) -> Section:
        """The first section called ``name``; ``GadgetFormatError`` when there is none."""
        found = self.get_section(name)
        if found is None:
            raise GadgetFormatError(f"object has no section {name!r}")
        return found

    def section_names(self) -> list[str]:
        return [s.name for s in self.sections if s.index]

    def get_symbol(self, name: str, section: str | None = None) -> Symbol | None:
        """The defined symbol called ``name`` (optionally in ``section``), else None."""
        for sym in self.iter_symbols(section):
            if sym.name == name and sym.section != UNDEF_SECTION:
                return sym
        return None

    def iter_symbols(self, section: str | None = None) -> Iterator[Symbol]:
        """Symbols, all of them or those defined in ``section``."""
        for sym in self.symbols:
            if section is None or sym.section == section:
                yield sym
