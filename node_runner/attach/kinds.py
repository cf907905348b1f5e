"""What a program's section name asks for: libbpf's own attach, or one the runner makes.

IG and cilium/ebpf name sections in ways libbpf 1.x does not recognise: `socket1`, `socket2`
(socket filters), `classifier/ingress/<name>` and `classifier/egress/<name>` (tc), and
`uprobe/<library>:<symbol>` with a short library name (`libc`, `libssl`) that only means
something inside a target's root. The trap avoided: letting libbpf guess (it refuses the
program type, or resolves `libc` on the host as an executable and fails) instead of setting
the type before load and attaching per target after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT = "default"          # libbpf attaches it (tracepoint, raw_tp, iter, ...)
SOCKET_FILTER = "socket"     # one AF_PACKET socket per network namespace
TC = "tc"                    # clsact filter on every interface of a network namespace
UPROBE = "uprobe"            # per library file of the targets

_SOCKET = re.compile(r"^socket\d*(/.*)?$")
_TC = re.compile(r"^(?:classifier|tc)/(ingress|egress)(?:/.*)?$")
_UPROBE = re.compile(r"^u(ret)?probe(?:\.s)?/([^/:]+):([^:]+)$")


@dataclass(frozen=True)
class Kind:
    kind: str
    ingress: bool = False           # tc
    library: str = ""               # uprobe: the short library name (or a path)
    symbol: str = ""
    retprobe: bool = False


def classify(section: str) -> Kind:
    if _SOCKET.match(section):
        return Kind(SOCKET_FILTER)
    m = _TC.match(section)
    if m:
        return Kind(TC, ingress=m.group(1) == "ingress")
    m = _UPROBE.match(section)
    if m:
        return Kind(UPROBE, library=m.group(2), symbol=m.group(3), retprobe=bool(m.group(1)))
    return Kind(DEFAULT)
