"""Gadgets shipped with the runner (built into the runner image), found by their short name.

The runner image carries the in-tree gadgets compiled for its architecture under
/usr/share/kubectl-gadget/gadgets, so `run trace_exec` on a cluster needs no registry and
works offline; a development checkout finds them under build/gadgets (`make gadgets`), an
installed package (wheel or one-file binary) in its packaged prebuilt copy. A name
is looked up here only when it is a bare gadget name (no registry, tag or digest) and the
caller does not ask to pull; anything else is an image reference.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from node_runner import packaged

SYSTEM_DIR = "/usr/share/kubectl-gadget/gadgets"
_CHECKOUT_DIR = Path(__file__).resolve().parent.parent / "build" / "gadgets"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def search_path() -> list[str]:
    dirs = [os.environ.get("KUBECTL_GADGET_BUILTIN_DIR", ""), SYSTEM_DIR, str(_CHECKOUT_DIR),
            str(packaged.prebuilt_dir() or "")]
    return [d for d in dirs if d]


def find_builtin(name: str) -> str | None:
    """The built gadget directory of a bare name, or None."""
    if not _NAME.match(name):
        return None
    for base in search_path():
        candidate = os.path.join(base, name)
        if os.path.isfile(os.path.join(candidate, "program.bpf.o")):
            return candidate
    return None
