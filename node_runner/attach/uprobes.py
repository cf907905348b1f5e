"""Uprobes on a library named the short way (`uprobe/libc:malloc`), resolved per target.

`libc` means the C library the target uses, which lives inside the target's root filesystem,
not necessarily the host's. For each target mount namespace one live process is picked; the
library is the file it has mapped (/proc/PID/maps) whose name is `<lib>.so...` or
`<lib>-<version>.so`, else the first such file in the standard library directories of its
root. The probe is set on that file through /proc/PID/root for every process (pid -1): the
gadget's container filter keeps the events of its targets. One probe per file (device and
inode), however many targets share it. The trap avoided: resolving `libc` on the host for a
container that ships its own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from node_runner.attach.netns import pids_by_mntns
from node_runner.errors import NotSupported
from node_runner.libbpf.library import LibbpfCallError
from node_runner.libbpf.objects import BpfLink, BpfProgram

_LIB_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")


def _pattern(lib: str) -> re.Pattern[str]:
    # libc.so.6, libc-2.31.so, libc.musl-x86_64.so.1 (Alpine), libssl.so.3; not libcrypto.so
    return re.compile(rf"^{re.escape(lib)}(?:[.-][\w.+-]*)?\.so(?:\.[\d.]+)?$")


def _from_maps(pid: int, pat: re.Pattern[str], proc_root: str) -> str | None:
    try:
        with open(f"{proc_root}/{pid}/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    path = parts[5].rstrip("\n")
                    if pat.match(os.path.basename(path)):
                        return path
    except OSError:
        return None
    return None


def _from_dirs(root: str, pat: re.Pattern[str]) -> str | None:
    arch = os.uname().machine
    dirs = [d for base in _LIB_DIRS for d in (base, f"{base}/{arch}-linux-gnu")]
    for d in dirs:
        try:
            names = sorted(os.listdir(root + d))
        except OSError:
            continue
        for name in names:
            if pat.match(name) and os.path.isfile(f"{root}{d}/{name}"):
                return f"{d}/{name}"
    return None


def resolve_library(lib: str, pid: int | None, proc_root: str = "/proc") -> str | None:
    """A host path of the library `lib` as process `pid` sees it (None: the host's)."""
    if "/" in lib:
        return lib
    pat = _pattern(lib)
    if pid is None:  # the host: pid 1's root (a runner pod has its own), else ours
        pid = 1 if os.access(f"{proc_root}/1/root/", os.R_OK) else None
    root = f"{proc_root}/{pid}/root" if pid is not None else ""
    inner = _from_maps(pid if pid is not None else os.getpid(), pat, proc_root)
    if inner is None:
        inner = _from_dirs(root, pat)
    return root + inner if inner is not None else None


@dataclass
class _Probe:
    prog: BpfProgram
    library: str
    symbol: str
    retprobe: bool
    files: set[tuple[int, int]] = field(default_factory=set)


class UprobeAttachments:
    """The uprobes of one gadget; `refresh` adds the library files of new targets."""

    def __init__(self, gadget: str, proc_root: str = "/proc") -> None:
        self.gadget, self.proc_root = gadget, proc_root
        self._probes: list[_Probe] = []
        self._links: list[BpfLink] = []
        self.warnings: list[str] = []

    def add(self, prog: BpfProgram, library: str, symbol: str, retprobe: bool) -> None:
        self._probes.append(_Probe(prog, library, symbol, retprobe))

    def refresh(self, targets: set[int] | None) -> None:
        if not self._probes:
            return
        pids: list[int | None] = [None] if targets is None else \
            [p[0] for p in pids_by_mntns(targets, self.proc_root).values() if p]
        for probe in self._probes:
            for pid in pids:
                path = resolve_library(probe.library, pid, self.proc_root)
                if path is None:
                    self._warn(f"program '{probe.prog.name}': no library '{probe.library}' in "
                               + ("the host" if pid is None else f"the root of pid {pid}"))
                    continue
                self._attach(probe, path)

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def _attach(self, probe: _Probe, path: str) -> None:
        try:
            st = os.stat(path)
        except OSError:
            return
        if (st.st_dev, st.st_ino) in probe.files:
            return
        try:
            self._links.append(probe.prog.attach_uprobe(path, probe.symbol, probe.retprobe))
        except LibbpfCallError as exc:
            raise NotSupported(f"attaching program '{probe.prog.name}' of gadget {self.gadget} "
                               f"to {probe.symbol} in {path}: {exc.message.split(': ')[-1]}",
                               detail=exc.log) from None
        probe.files.add((st.st_dev, st.st_ino))

    def close(self) -> None:
        for link in reversed(self._links):
            link.destroy()
        self._links.clear()
