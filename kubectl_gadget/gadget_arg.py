"""What the GADGET argument of `run` names: a source directory, a built one, or an image.

A directory with `program.bpf.c` is compiled on the fly (cached by a hash of its sources and
headers); one with `program.bpf.o` is used as is; an in-tree gadget name (`trace_exec`) is
compiled from the checkout when there is one, else taken from the copy prebuilt into the
installed package (wheel or one-file binary: no clang needed); anything else is an image
reference for the runner to pull. Resolved once, into a plain value, before anything starts.
On a cluster a directory's built files go to the runner pods in a ConfigMap
(cluster/gadget_files); in-tree names and images are what the runners get.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from kubectl_gadget.errors import GadgetInvalid, UsageError
from kubectl_gadget.image import build
from node_runner import packaged
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.spec import GadgetSpec, load_spec

IN_TREE = Path(__file__).resolve().parent.parent / "gadgets"


@dataclass(frozen=True)
class ResolvedGadget:
    arg: str
    runner_gadget: str  # what the runner gets as --gadget: a built dir or an image reference
    spec: GadgetSpec | None  # known when the gadget is on this machine
    local_dir: bool = False  # GADGET named a directory here: a cluster run ships its files


def _spec(path: Path, name: str) -> GadgetSpec:
    try:
        return load_spec(str(path), name)
    except GadgetFormatError as exc:
        raise GadgetInvalid(f"reading gadget {name}: {exc}") from None
    except OSError as exc:  # gadget.yaml a directory, unreadable, ...
        where = exc.filename or path
        raise GadgetInvalid(f"reading gadget {name}: {where}: {exc.strerror}") from None


def _is_dir(arg: str) -> bool:
    """Whether GADGET names a directory; a name the file system cannot hold is not one."""
    try:
        return Path(arg).is_dir()
    except OSError:  # ENAMETOOLONG and the like: let the image reference parser judge it
        return False


def in_tree_source(name: str) -> Path | None:
    if "/" in name or ":" in name or "@" in name:
        return None
    src = IN_TREE / name
    return src if build.is_source_dir(src) else None


def resolve_gadget(arg: str, cluster: bool = False) -> ResolvedGadget:
    """Resolve GADGET; on a cluster, in-tree names go to the runners as names (the runner
    image ships those gadgets) and are compiled here only to learn their params and fields."""
    path = Path(arg)
    if _is_dir(arg):
        if build.is_built_dir(path):
            return ResolvedGadget(arg, str(path.resolve()), _spec(path, path.resolve().name),
                                  True)
        if build.is_source_dir(path):
            return replace(_compile(arg, path), local_dir=True)
        raise GadgetInvalid(f"{arg} is a directory but holds neither {build.SOURCE_FILE} nor "
                          f"{build.OBJECT_FILE}")
    if arg.startswith((".", "/")) and not os.path.exists(arg):
        raise UsageError(f"gadget directory {_short(arg)} does not exist")
    src = in_tree_source(arg)
    if src is not None:
        local = _compile(arg, src)
        return ResolvedGadget(arg, arg, local.spec) if cluster else local
    prebuilt = packaged.prebuilt_gadget(arg) if not (":" in arg or "@" in arg) else None
    if prebuilt is not None:
        return ResolvedGadget(arg, arg if cluster else str(prebuilt), _spec(prebuilt, arg))
    return ResolvedGadget(arg, arg, None)


def _short(arg: str, limit: int = 80) -> str:
    return arg if len(arg) <= limit else f"{arg[:limit]}... ({len(arg)} characters)"


def _compile(arg: str, src: Path) -> ResolvedGadget:
    def say() -> None:
        print(f"compiling gadget {src.name}...", file=sys.stderr, flush=True)

    out = build.build_cached(src, os.uname().machine, on_build=say)
    return ResolvedGadget(arg, str(out), _spec(out, src.resolve().name))
