"""Host preconditions of a run: privileges, kernel BTF, and the pseudo filesystems.

A fresh node (and a fresh container with the host's /sys) often has neither tracefs nor bpffs
mounted; libbpf then fails to attach tracepoints with a bare ENOENT. The runner mounts what it
needs itself, before any gadget is opened, and says so on stderr; failures become clear
`RunnerError`s instead of an errno later on.
"""

from __future__ import annotations

import os
import subprocess
import sys

from node_runner.errors import NotSupported, PermissionDenied

TRACEFS = "/sys/kernel/tracing"
BPFFS = "/sys/fs/bpf"
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
CAP_BPF = 39
CAP_PERFMON = 38


def _effective_caps() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def has_capability(bit: int) -> bool:
    """Whether the runner's effective set holds capability number `bit`."""
    return bool(_effective_caps() & (1 << bit))


def check_privileges() -> None:
    caps = _effective_caps()
    has_bpf = bool(caps & (1 << CAP_BPF)) and bool(caps & (1 << CAP_PERFMON))
    if not (caps & (1 << CAP_SYS_ADMIN) or has_bpf):
        raise PermissionDenied(
            "checking privileges: loading eBPF programs needs root "
            "(or CAP_BPF and CAP_PERFMON); run with sudo"
        )


def has_kprobes() -> bool:
    """Whether the kernel can attach kprobes (the perf kprobe PMU or tracefs kprobe_events)."""
    return os.path.isdir("/sys/bus/event_source/devices/kprobe") or \
        os.path.exists(os.path.join(TRACEFS, "kprobe_events"))


def check_btf(path: str = VMLINUX_BTF) -> None:
    if not os.path.exists(path):
        raise NotSupported(
            f"checking kernel BTF: {path} is missing; this kernel was built without "
            "CONFIG_DEBUG_INFO_BTF, which CO-RE gadgets need"
        )


def _mounted(target: str, fstype: str) -> bool:
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            return any(
                fields[1] == target and fields[2] == fstype
                for fields in (line.split() for line in mounts)
                if len(fields) >= 3
            )
    except OSError:
        return False


def _mount(source: str, target: str, fstype: str) -> None:
    if not _effective_caps() & (1 << CAP_SYS_ADMIN):
        raise PermissionDenied(f"mounting {fstype} on {target}: the runner lacks CAP_SYS_ADMIN, "
                               f"which mounting needs (grant it, or mount {fstype} on the node)")
    try:
        proc = subprocess.run(["mount", "-t", fstype, source, target], capture_output=True,
                              text=True, check=False)
    except FileNotFoundError:
        raise NotSupported(f"mounting {fstype} on {target}: no mount command") from None
    if proc.returncode != 0:
        raise NotSupported(f"mounting {fstype} on {target}: {proc.stderr.strip()}")


def ensure_mounted(target: str, fstype: str) -> bool:
    """Mount `fstype` on `target` unless it is there already; True when we mounted it."""
    if _mounted(target, fstype):
        return False
    _mount(fstype, target, fstype)
    print(f"node-runner: mounted {fstype} on {target}", file=sys.stderr)
    return True


def prepare_host() -> None:
    check_privileges()
    check_btf()
    ensure_mounted(TRACEFS, "tracefs")
    if os.path.isdir(BPFFS):
        ensure_mounted(BPFFS, "bpf")


def tracepoint_exists(category: str, name: str) -> bool:
    return os.path.isdir(os.path.join(TRACEFS, "events", category, name))
