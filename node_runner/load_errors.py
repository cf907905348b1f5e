"""What a libbpf load or attach failure means for the user: the runner's error for it.

One job: turn a `LibbpfCallError` from loading or attaching a gadget's programs into the
typed error the runner reports: `NotSupported` when the kernel refuses a program type (naming
the gadget, the program and the attach type), `VerifierRejected` with a one-line reason and
the full verifier log as detail, `PermissionDenied`, else `GadgetInvalid`. The trap it avoids:
libbpf names the failing program only inside its printed log, and the verifier's reason sits
between the refused instruction and the statistics, so both are read out of the log here.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping

from node_runner import system
from node_runner.errors import GadgetInvalid, NotSupported, PermissionDenied, VerifierRejected
from node_runner.libbpf.library import LibbpfCallError

# Program types that need BPF trampolines or kprobes: kernels without them refuse these.
_UNSUPPORTED_HINTS = {
    "fentry": "fentry (BPF trampoline)", "fexit": "fexit (BPF trampoline)",
    "fmod_ret": "fmod_ret (BPF trampoline)", "lsm": "lsm (BPF LSM)",
    "kprobe": "kprobe", "kretprobe": "kretprobe", "kprobe.multi": "kprobe.multi",
    "kretprobe.multi": "kretprobe.multi", "ksyscall": "ksyscall (kprobe)",
    "kretsyscall": "kretsyscall (kprobe)", "freplace": "freplace (BPF trampoline)",
}
_REFUSED_ERRNOS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOENT, errno.EINVAL, 524}
_FAILED_PROG = re.compile(r"prog '([^']+)': (?:BPF program load failed|failed to load)")


def attach_kind(section: str) -> str:
    """The attach type a program's section names (`kprobe` for `kprobe/do_sys_open`)."""
    return section.split("/", 1)[0].split(".s")[0] if section else ""


_INSN_LINE = re.compile(r"^\d+: \(")
_STATS = ("processed ", "verification time", "stack depth", "libbpf:")


def verifier_summary(log: str) -> str:
    """The verifier's reason: the lines after the refused instruction, before the statistics.

    A reason can take two lines ("invalid access to map value, ..." then "R6 min value is
    outside of the allowed memory range"); the first is the one that says what is wrong.
    """
    body = log.split("-- BEGIN PROG LOAD LOG --")[-1].split("-- END PROG LOAD LOG --")[0]
    lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
    while lines and lines[-1].startswith(_STATS):
        lines.pop()
    reason: list[str] = []
    for line in reversed(lines):
        if _INSN_LINE.match(line) or line.startswith(";") or len(reason) == 3:
            break
        reason.insert(0, line)
    return "; ".join(reason) or "rejected by the verifier"


def load_error(exc: LibbpfCallError, gadget: str, sections: Mapping[str, str]) -> Exception:
    """The error for a failed object load; `sections` maps program names to sections."""
    match = _FAILED_PROG.search(exc.log)
    prog = match.group(1) if match else ""
    section = sections.get(prog, "")
    kind = attach_kind(section)
    where = f"loading program '{prog}' of gadget {gadget}" if prog else \
        f"loading gadget {gadget}"
    if kind in _UNSUPPORTED_HINTS and exc.errno in _REFUSED_ERRNOS:
        return NotSupported(
            f"{where}: not supported on this kernel: {_UNSUPPORTED_HINTS[kind]} programs "
            f"are refused ({section}: {exc.message.split(': ', 1)[-1]})", detail=exc.log)
    if "-- BEGIN PROG LOAD LOG --" in exc.log and exc.errno in (errno.EACCES, errno.EINVAL):
        return VerifierRejected(f"{where}: rejected by the verifier: "
                                f"{verifier_summary(exc.log)}", detail=exc.log)
    if exc.errno == errno.EPERM:
        return PermissionDenied(f"{where}: permission denied (needs root or CAP_BPF, "
                                "CAP_PERFMON; check 'ulimit -l')", detail=exc.log)
    return GadgetInvalid(f"{where}: {exc.message}", detail=exc.log)


def attach_error(exc: LibbpfCallError, gadget: str, prog: str, section: str) -> NotSupported:
    """The error for a program whose attach failed."""
    kind = attach_kind(section)
    where = f"attaching program '{prog}' of gadget {gadget}"
    if kind in _UNSUPPORTED_HINTS:
        cause = exc.message.split(': ', 1)[-1]
        if "kprobe" in kind and not system.has_kprobes():
            cause = "this kernel has no kprobes (no kprobe event source)"
        return NotSupported(f"{where}: not supported on this kernel: "
                            f"{_UNSUPPORTED_HINTS[kind]} attach failed "
                            f"({section}: {cause})", detail=exc.log)
    return NotSupported(f"{where} ({section}): {exc.message}", detail=exc.log)
