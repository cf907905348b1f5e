"""Build what `make wheel` and `make dist` publish: sdist + wheel, the one-file binary, its archive.

The wheel is built from a copy of the checkout with the gadget data staged into it
(`stage.stage_share`), sdist first and the wheel from that sdist, so both are known to carry
the data. The binary is PyInstaller's one-file form of `frozen.py` with the same data and the
system's libbpf inside, so a machine without Python, clang or libbpf runs in-tree gadgets. The
archive (the binary alone, fixed owner and times) is what the krew manifest points at.
The trap avoided: release steps that only work on the developer's tree (the editable install
shadowing the sources being frozen, a wheel that silently misses the gitignored objects).
"""

from __future__ import annotations

import ctypes.util
import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from kubectl_gadget.errors import BuildError
from kubectl_gadget.release import stage

BINARY = "kubectl-gadget"
SHARE_DEST = "node_runner/share"
# Importable on the build machine and reached by optional imports of our dependencies, but never
# used by the tool (dev tools, docker/boto helpers of oras and kubernetes, numeric stacks).
EXCLUDED = ("pytest", "_pytest", "tests", "hypothesis", "IPython", "jedi", "parso",
            "prompt_toolkit", "pygments", "rich", "traitlets", "pexpect", "numpy", "trio",
            "docker", "boto3", "botocore", "s3transfer", "jmespath", "setuptools",
            "pkg_resources", "distutils", "jinja2", "markdown_it", "tkinter", "_tkinter", "PIL",
            "matplotlib", "mypy", "sqlite3", "lib2to3", "pydoc_data")
LIBBPF_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-20:])
        raise BuildError(f"{what}: {cmd[0]} exited with {proc.returncode}:\n{tail}")


def build_wheel(out: Path, scratch: Path) -> list[Path]:
    """sdist and wheel into `out`; `scratch` holds the staged copy of the checkout."""
    tree = stage.source_tree(scratch / "src")
    stage.stage_share(tree / SHARE_DEST, tree)
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out.resolve()),
          str(tree)], "building the sdist and wheel")
    return sorted(set(out.iterdir()) - before)


def libbpf_path() -> Path:
    """The system's libbpf shared library, bundled into the binary."""
    for d in LIBBPF_DIRS:
        candidate = Path(d) / "libbpf.so.1"
        if candidate.exists():
            return candidate.resolve()
    found = ctypes.util.find_library("bpf")
    if found and os.path.isabs(found):
        return Path(found).resolve()
    raise BuildError("building the binary: libbpf.so.1 not found (apt-get install libbpf1)")


def build_binary(out: Path, scratch: Path) -> Path:
    """The one-file `kubectl-gadget` in `out`, frozen from this checkout."""
    share = scratch / "share"
    stage.stage_share(share)
    entry = Path(__file__).resolve().parent / "frozen.py"
    out.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "PyInstaller", "--onefile", "--noconfirm", "--clean",
          "--log-level", "WARN", "--name", BINARY, "--distpath", str(out.resolve()),
          "--workpath", str((scratch / "work").resolve()), "--specpath", str(scratch.resolve()),
          "--paths", str(stage.REPO), "--add-data", f"{share.resolve()}:{SHARE_DEST}",
          "--add-binary", f"{libbpf_path()}:.", "--collect-submodules", "node_runner",
          # the client imports its subcommands lazily, out of sight of the analysis
          "--collect-submodules", "kubectl_gadget",
          *(arg for mod in EXCLUDED for arg in ("--exclude-module", mod)), str(entry)],
         "building the one-file binary")
    return out / BINARY


def archive(binary: Path, dest: Path) -> Path:
    """A reproducible .tar.gz holding the binary alone (mode 0755, owner 0, time 0)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(BINARY)
        info.size, info.mode, info.mtime = binary.stat().st_size, 0o755, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with open(binary, "rb") as f:
            tar.addfile(info, f)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                mtime=0) as gz:
        gz.write(buf.getvalue())
    return dest


def clean(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
