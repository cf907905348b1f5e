"""Compiles a gadget source directory into a built gadget directory.

A source directory holds `program.bpf.c` and `gadget.yaml`; a built one holds `program.bpf.o`
(CO-RE, BTF kept, DWARF stripped) and the same `gadget.yaml`. Sources include `<vmlinux.h>`
and `<gadget/...>`, so clang gets the architecture's vmlinux.h directory and the include root.
Builds are reproducible: clang runs inside the source directory on a relative file name, with
the directory mapped away in debug paths, so the object does not depend on where the tree is.
The trap avoided: a build that embeds absolute paths (BTF line info keeps file names) and so
gives a different object, and image digest, on every machine.
The default `clang` compiles; when it cannot (clang 14 lacks CO-RE type-match relocations,
`bpf_core_type_matches()`, which Inspektor Gadget's gadgets use), the newest versioned clang
installed (clang-15 and later) is tried before the build is refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from kubectl_gadget.errors import BuildError
from node_runner import packaged

SOURCE_FILE = "program.bpf.c"
OBJECT_FILE = "program.bpf.o"
METADATA_FILE = "gadget.yaml"

# uname -m / OCI arch -> (include dir under the include root, __TARGET_ARCH_ value)
ARCHES = {
    "x86_64": ("x86_64", "x86"), "amd64": ("x86_64", "x86"),
    "aarch64": ("arm64", "arm64"), "arm64": ("arm64", "arm64"),
}
# The system's per-architecture UAPI headers (<asm/types.h>, ...), searched last, for socket
# filters that include <linux/bpf.h> and friends instead of vmlinux.h.
MULTIARCH_INCLUDE = {"x86_64": "/usr/include/x86_64-linux-gnu",
                     "arm64": "/usr/include/aarch64-linux-gnu"}
_REPO_INCLUDE = Path(__file__).resolve().parents[2] / "gadgets" / "include"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system is no file
        return False


def is_source_dir(path: str | Path) -> bool:
    return _is_file(Path(path) / SOURCE_FILE)


def is_built_dir(path: str | Path) -> bool:
    return _is_file(Path(path) / OBJECT_FILE)


def include_root(src_dir: Path, explicit: str | None = None) -> Path:
    """The directory holding `gadget/*.h` and one `<arch>/vmlinux.h` per architecture (the
    checkout's, else the installed package's copy)."""
    candidates = [explicit, os.environ.get("KUBECTL_GADGET_INCLUDE"),
                  str(src_dir.parent / "include"), str(_REPO_INCLUDE),
                  str(packaged.include_dir() or "")]
    for cand in candidates:
        if cand and (Path(cand) / "gadget" / "macros.h").is_file():
            return Path(cand).resolve()
    raise BuildError(f"compiling gadget {src_dir.name}: gadget headers not found "
                     "(set KUBECTL_GADGET_INCLUDE to the directory holding gadget/macros.h)")


def available_arches(root: Path) -> list[str]:
    """Architectures that have a vmlinux.h under the include root (OCI names)."""
    oci = {"x86_64": "amd64", "arm64": "arm64"}
    return [oci[d] for d in sorted(oci) if (root / d / "vmlinux.h").is_file()]


def _tool(names: tuple[str, ...], what: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BuildError(f"{what} not found (apt-get install clang llvm)")


NEWER_CLANGS = tuple(f"clang-{v}" for v in range(21, 14, -1))


def _newer_clang() -> tuple[str, str] | None:
    """(clang, llvm-strip) of the newest versioned clang installed, if any."""
    for name in NEWER_CLANGS:
        clang = shutil.which(name)
        if clang:
            strip = shutil.which(f"llvm-strip-{name.split('-')[1]}") or shutil.which("llvm-strip")
            if strip:
                return clang, strip
    return None


def _clang(clang: str, cmd: list[str], src_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([clang, *cmd], cwd=src_dir, capture_output=True, text=True,
                          check=False)


def compile_object(src_dir: Path, out_file: Path, arch: str = "x86_64",
                   include: str | None = None) -> None:
    if arch not in ARCHES:
        raise BuildError(f"compiling gadget {src_dir.name}: unknown architecture {arch!r}")
    arch_dir, target = ARCHES[arch]
    root = include_root(src_dir, include)
    if not (root / arch_dir / "vmlinux.h").is_file():
        raise BuildError(f"compiling gadget {src_dir.name} for {arch}: no {arch_dir}/vmlinux.h "
                         f"under {root}")
    clang = _tool(("clang", "clang-14"), "clang")
    strip = _tool(("llvm-strip", "llvm-strip-14"), "llvm-strip")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_suffix(".tmp")
    # An undeclared helper would become an extern no loader can resolve: refuse it here.
    cmd = ["-target", "bpf", f"-D__TARGET_ARCH_{target}", "-g", "-O2", "-Wall",
           "-fno-crash-diagnostics",
           "-Wno-unused-function", "-Werror=implicit-function-declaration",
           f"-fdebug-prefix-map={src_dir.resolve()}=.",
           f"-fdebug-prefix-map={root.resolve()}=/include",
           "-I", str(root / arch_dir), "-I", str(root), "-c", SOURCE_FILE, "-o", str(tmp.resolve())]
    if os.path.isdir(MULTIARCH_INCLUDE[arch_dir]):
        cmd[-4:-4] = ["-idirafter", MULTIARCH_INCLUDE[arch_dir]]
    proc = _clang(clang, cmd, src_dir)
    newer = _newer_clang() if proc.returncode != 0 else None
    if newer and os.path.realpath(newer[0]) != os.path.realpath(clang):
        retry = _clang(newer[0], cmd, src_dir)
        if retry.returncode == 0:
            proc, strip = retry, newer[1]
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise BuildError(f"compiling gadget {src_dir.name}: clang failed:\n{tail}")
    proc = subprocess.run([strip, "-g", str(tmp)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"stripping gadget {src_dir.name}: {proc.stderr.strip()}")
    os.replace(tmp, out_file)


def build_dir(src_dir: str | Path, out_dir: str | Path, arch: str = "x86_64",
              include: str | None = None) -> Path:
    """Compile `src_dir` into `out_dir` (program.bpf.o + gadget.yaml); return `out_dir`."""
    src, out = Path(src_dir), Path(out_dir)
    if not is_source_dir(src):
        raise BuildError(f"building {src}: no {SOURCE_FILE} there")
    check_metadata_file(src)
    meta = src / METADATA_FILE
    compile_object(src, out / OBJECT_FILE, arch, include)
    if meta.is_file():
        shutil.copyfile(meta, out / METADATA_FILE)
    return out


def check_metadata_file(src: Path) -> None:
    """A gadget.yaml that exists but is not a regular file (a directory, ...) is an error."""
    path = src / METADATA_FILE
    if (path.exists() or path.is_symlink()) and not path.is_file():
        raise BuildError(f"building gadget {src.name}: {path} is not a regular file")


def source_digest(src_dir: Path, include: str | None = None) -> str:
    """A hash of everything a build reads: the sources and the headers."""
    h = hashlib.sha256()
    root = include_root(src_dir, include)
    files = sorted(p for p in src_dir.rglob("*") if p.is_file())
    files += sorted(p for p in (root / "gadget").rglob("*.h"))
    for p in files:
        h.update(str(p.name).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kubectl-gadget" / "build"


def build_cached(src_dir: str | Path, arch: str = "x86_64",
                 on_build: Callable[[], None] | None = None) -> Path:
    """Build a source directory on the fly, reusing an earlier build of the same sources;
    `on_build` is called only when it really compiles."""
    src = Path(src_dir).resolve()
    check_metadata_file(src)
    out = cache_dir() / f"{arch}-{source_digest(src)}" / src.name
    if not is_built_dir(out):
        if on_build is not None:
            on_build()
        build_dir(src, out, arch)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m kubectl_gadget.image.build SRC... --out DIR`: used by `make gadgets`."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m kubectl_gadget.image.build")
    p.add_argument("sources", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--arch", default=os.uname().machine)
    ns = p.parse_args(argv)
    try:
        for src in ns.sources:
            out = build_dir(src, Path(ns.out) / Path(src).name, ns.arch)
            print(f"built {src} -> {out}", file=sys.stderr)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
