"""Stage the package data every shipped form carries: gadget sources, headers, prebuilt objects.

`stage_share` fills a `share/` directory (installed as `node_runner/share`, see
`node_runner.packaged`) from a checkout: each in-tree gadget's source files, the include root
(`gadget/*.h` and one `<arch>/vmlinux.h` per architecture) and every gadget compiled for every
architecture that has a `vmlinux.h`, so an installed tool needs neither the checkout nor clang
for in-tree gadgets. `source_tree` copies the tracked files of a checkout into a scratch
directory, so the wheel is built from a tree holding the staged data while the checkout itself
never gets generated files. The trap avoided: a wheel built from a working tree that silently
lacks the objects (they are gitignored) or includes stale ones from build/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kubectl_gadget.errors import BuildError
from kubectl_gadget.image import build

REPO = Path(__file__).resolve().parent.parent.parent
_SKIP_SUFFIXES = (".o", ".tmp")


def in_tree_gadgets(repo: Path = REPO) -> list[Path]:
    """The gadget source directories of a checkout, sorted by name."""
    return sorted(p.parent for p in (repo / "gadgets").glob(f"*/{build.SOURCE_FILE}"))


def runtime_objects(repo: Path = REPO) -> list[Path]:
    """The runner's own eBPF sources (gadgets/runtime/*: the socket enricher), sorted."""
    return sorted(p.parent for p in (repo / "gadgets" / "runtime").glob(f"*/{build.SOURCE_FILE}"))


def _copy_sources(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and not f.name.endswith(_SKIP_SUFFIXES):
            shutil.copyfile(f, dest / f.name)


def stage_share(share: Path, repo: Path = REPO) -> list[str]:
    """Fill `share` (gadgets/, include/, prebuilt/<arch>/, runtime/<arch>/); return what was
    built (arch/name)."""
    gadgets = in_tree_gadgets(repo)
    if not gadgets:
        raise BuildError(f"staging gadgets: no gadget sources under {repo / 'gadgets'}")
    include = repo / "gadgets" / "include"
    if share.exists():
        shutil.rmtree(share)
    shutil.copytree(include, share / "include")
    built = []
    for kind, sources in (("prebuilt", gadgets), ("runtime", runtime_objects(repo))):
        for src in sources:
            _copy_sources(src, share / src.relative_to(repo))
            for arch in build.available_arches(include):
                build.build_dir(src, share / kind / arch / src.name, arch, str(include))
                built.append(f"{arch}/{src.name}")
    return built


def tracked_files(repo: Path = REPO) -> list[str]:
    """Files git tracks in the checkout (plus new files not yet committed, not ignored)."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"listing the files of {repo}: git ls-files failed ({exc})") from None
    return sorted(n for n in out.decode().split("\0") if n and (repo / n).is_file())


def source_tree(dest: Path, repo: Path = REPO) -> Path:
    """Copy the checkout's files into `dest` (emptied first); return `dest`."""
    if dest.exists():
        shutil.rmtree(dest)
    for name in tracked_files(repo):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target)
    os.utime(dest)
    return dest
