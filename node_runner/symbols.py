"""Addresses to names: kernel ones from /proc/kallsyms, user ones from the process's own files.

One job: turn a code address into `function+0xoffset`.
- Kernel: /proc/kallsyms is read once per runner (it is large; cached) into sorted arrays.
- User: the address is looked up in /proc/PID/maps of the process the stack belongs to; the
  file behind the mapping is opened through /proc/PID/root (so a container's own libraries are
  read, not the node's), falling back to /proc/PID/map_files; the file offset becomes an ELF
  virtual address through its PT_LOAD segments and is named from `.symtab`, else `.dynsym`.
  Symbol tables are cached per file identity (device, inode, size, mtime).
An address nothing names comes back as `None`; callers show the address. The trap avoided:
naming an address of a container process from the node's copy of a library of the same path,
which is another build with other offsets.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import BinaryIO

_FUNC_TYPES = frozenset({"STT_FUNC", "STT_GNU_IFUNC"})


class _Table:
    """Sorted (address, size, name) triples; `name` finds the function holding an address."""

    def __init__(self, entries: list[tuple[int, int, str]]) -> None:
        entries.sort()
        self.addrs = [a for a, _, _ in entries]
        self.sizes = [s for _, s, _ in entries]
        self.names = [n for _, _, n in entries]

    def name(self, addr: int, sized: bool) -> str | None:
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0:
            return None
        off = addr - self.addrs[i]
        if sized and self.sizes[i] and off >= self.sizes[i]:
            return None
        return f"{self.names[i]}+{off:#x}"


class KernelSymbols:
    """/proc/kallsyms as a lookup table (text symbols only)."""

    def __init__(self, path: str = "/proc/kallsyms") -> None:
        entries: list[tuple[int, int, str]] = []
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 3 and parts[1] in "tTwW":
                        addr = int(parts[0], 16)
                        if addr:
                            entries.append((addr, 0, parts[2]))
        except OSError:
            entries = []
        self._table = _Table(entries)

    def name(self, addr: int) -> str | None:
        return self._table.name(addr, sized=False)


@dataclass(frozen=True)
class _Mapping:
    start: int
    end: int
    offset: int
    path: str


class _ElfSymbols:
    """Function symbols of one ELF file and its PT_LOAD segments."""

    def __init__(self, fh: BinaryIO) -> None:
        from elftools.elf.elffile import ELFFile  # pyelftools: only when a user stack is read
        from elftools.elf.sections import SymbolTableSection

        elf = ELFFile(fh)
        self.segments = [(s["p_offset"], s["p_vaddr"], s["p_filesz"])
                         for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        entries: list[tuple[int, int, str]] = []
        for name in (".symtab", ".dynsym"):
            sec = elf.get_section_by_name(name)
            if not isinstance(sec, SymbolTableSection):
                continue
            entries = [(s["st_value"], s["st_size"], s.name) for s in sec.iter_symbols()
                       if s["st_info"]["type"] in _FUNC_TYPES and s["st_value"] and s.name]
            if entries:
                break
        self.table = _Table(entries)

    def name(self, file_offset: int) -> str | None:
        for p_offset, p_vaddr, p_filesz in self.segments:
            if p_offset <= file_offset < p_offset + p_filesz:
                return self.table.name(file_offset - p_offset + p_vaddr, sized=True)
        return None


class UserSymbols:
    """Names user addresses of processes; caches ELF tables per file, maps per process."""

    def __init__(self, proc_root: str = "/proc") -> None:
        self.proc_root = proc_root
        self._files: dict[tuple[int, int, int, int], _ElfSymbols | None] = {}
        self._maps: dict[int, list[_Mapping]] = {}

    def forget_processes(self) -> None:
        """Drop cached /proc/PID/maps (a process maps and unmaps; pids are reused)."""
        self._maps.clear()

    def name(self, pid: int, addr: int) -> str | None:
        mapping = next((m for m in self._mappings(pid) if m.start <= addr < m.end), None)
        if mapping is None:
            return None
        symbols = self._symbols(pid, mapping)
        if symbols is None:
            return None
        return symbols.name(addr - mapping.start + mapping.offset)

    def _mappings(self, pid: int) -> list[_Mapping]:
        cached = self._maps.get(pid)
        if cached is not None:
            return cached
        out: list[_Mapping] = []
        try:
            with open(f"{self.proc_root}/{pid}/maps", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    parts = line.split(maxsplit=5)
                    if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
                        continue
                    lo, _, hi = parts[0].partition("-")
                    out.append(_Mapping(int(lo, 16), int(hi, 16), int(parts[2], 16),
                                        parts[5].rstrip("\n")))
        except OSError:
            pass
        self._maps[pid] = out
        return out

    def _symbols(self, pid: int, m: _Mapping) -> _ElfSymbols | None:
        for path in (f"{self.proc_root}/{pid}/root{m.path}",
                     f"{self.proc_root}/{pid}/map_files/{m.start:x}-{m.end:x}"):
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if key not in self._files:
                self._files[key] = _load_elf(path)
            return self._files[key]
        return None


def _load_elf(path: str) -> _ElfSymbols | None:
    from elftools.common.exceptions import ELFError

    try:
        with open(path, "rb") as fh:
            return _ElfSymbols(fh)
    except (OSError, ELFError, ValueError, KeyError):
        return None
