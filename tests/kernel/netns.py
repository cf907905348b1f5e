"""Network tests' building blocks: a command in a fresh network namespace, endpoints from records.

Network gadget tests must not touch the host's network: every workload runs its sockets in a
network namespace of its own (``unshare --net``, loopback brought up), inside a container-like
process (tests/workloads.py) so the mount-namespace filter and enrichment apply. Endpoint fields
are compared through :func:`endpoint`, which renders the L4 endpoint a record carries.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.conftest import GADGETS_SRC, compile_gadget

# Runs the rest of argv in a new network namespace whose loopback is up.
_NETNS_SHELL = 'ip link set lo up && exec "$@"'


def in_new_netns(argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed so that it runs in a fresh network namespace with ``lo`` up."""
    return ["unshare", "--net", "--", "sh", "-c", _NETNS_SHELL, "sh", *argv]


def netns_inode(pid: int | str = "self") -> int:
    """The network namespace id (inode) of a process, as the kernel's ``ns.inum``."""
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def build_in_tree(name: str, out_root: Path) -> Path:
    """Compile the in-tree gadget ``name`` into ``out_root/name`` (what `make gadgets` does)."""
    return compile_gadget(GADGETS_SRC / name, out_root / name)


def endpoint(data: dict[str, Any], prefix: str) -> tuple[str, int, int]:
    """(address, port, IP protocol number) of the L4 endpoint ``prefix`` of a record."""
    version = data[f"{prefix}.version"]
    raw = bytes(data[f"{prefix}.addr_raw.v6"])
    addr = ipaddress.ip_address(raw[:4] if version == 4 else raw)
    return str(addr), data[f"{prefix}.port"], data[f"{prefix}.proto_raw"]
