"""Where the gadget data shipped inside an installed package lives (wheel or one-file binary).

A wheel, an sdist and the `make dist` binary carry a copy of the in-tree gadgets under
`node_runner/share/`: their sources, the headers (`gadget/*.h`, one `vmlinux.h` per
architecture) and objects prebuilt for every architecture that has a `vmlinux.h` (the gadgets
under `prebuilt/<arch>/`, the runner's own objects such as the socket enricher under
`runtime/<arch>/`), so an installed tool runs `trace_exec` without a checkout and without
clang. A checkout has no such directory (the gadgets are compiled from `gadgets/` there); every
function returns None then.
The trap avoided: each caller guessing paths relative to its own file, which breaks once the
modules are frozen into a binary or installed into site-packages.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARE = Path(__file__).resolve().parent / "share"
PREBUILT = "prebuilt"
RUNTIME = "runtime"
SOURCES = "gadgets"
INCLUDE = "include"

# uname -m -> the OCI architecture name the prebuilt objects are filed under
OCI_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def oci_arch(machine: str | None = None) -> str:
    machine = machine or os.uname().machine
    return OCI_ARCH.get(machine, machine)


def _existing(path: Path) -> Path | None:
    return path if path.is_dir() else None


def prebuilt_dir(machine: str | None = None) -> Path | None:
    """The directory of prebuilt gadgets (`<name>/program.bpf.o`) for this architecture."""
    return _existing(SHARE / PREBUILT / oci_arch(machine))


def runtime_dir(machine: str | None = None) -> Path | None:
    """The directory of the runner's own prebuilt objects (`socket_enricher/...`)."""
    return _existing(SHARE / RUNTIME / oci_arch(machine))


def prebuilt_gadget(name: str, machine: str | None = None) -> Path | None:
    """The prebuilt directory of the in-tree gadget `name`, or None."""
    base = prebuilt_dir(machine)
    if base is None or "/" in name or name.startswith("."):
        return None
    candidate = base / name
    return candidate if (candidate / "program.bpf.o").is_file() else None


def include_dir() -> Path | None:
    """The packaged include root (`gadget/*.h`, `<arch>/vmlinux.h`), or None."""
    root = SHARE / INCLUDE
    return root if (root / "gadget" / "macros.h").is_file() else None


def sources_dir() -> Path | None:
    """The packaged gadget sources (`<name>/program.bpf.c`), or None."""
    return _existing(SHARE / SOURCES)
