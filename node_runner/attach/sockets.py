"""The socket enricher: fills the `gadget_sockets` map that network gadgets read.

A gadget declaring `gadget_sockets` (<gadget/sockets-map.h>) gets the enricher's map instead of
its own (the same fd, set before the gadget loads), so every lookup sees what the enricher
knows. The enricher (gadgets/runtime/socket_enricher, built with the gadgets) needs no kprobe:
cgroup socket hooks on the cgroup v2 root see sockets as they are created, bound, connected
and used, and a task_file iterator, run once after the hooks are in place, adds the sockets
that already existed; each entry also gets the owner's working directory and executable path
(a dentry walk from the owning task; see the enricher's source). Closed sockets are stamped
by the kernel side and removed here a few seconds later, so an event about a socket that has
just closed still finds its owner. `notice` says which mechanisms ran. The trap avoided: a
layout mismatch between the gadget's map and the enricher's, which would make the gadget read
garbage; such a gadget keeps its own (empty) map and a warning says why.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from node_runner import packaged
from node_runner.errors import NotSupported
from node_runner.libbpf.library import LibbpfCallError
from node_runner.libbpf.maps import map_delete, map_keys, map_lookup
from node_runner.libbpf.objects import BpfLink, BpfObject

SOCKETS_MAP = "gadget_sockets"
KEY_SIZE = 12
VALUE_SIZE = 8272
DELETION_OFFSET = 64
KEEP_CLOSED_NS = 5_000_000_000
ENRICHER_OBJECT = "socket_enricher/program.bpf.o"
_CHECKOUT_DIR = Path(__file__).resolve().parent.parent.parent / "build" / "runtime"
SYSTEM_DIR = "/usr/share/kubectl-gadget/runtime"


def runtime_dirs() -> list[str]:
    """Where the runner's own eBPF objects are looked for, in order."""
    dirs = [os.environ.get("KUBECTL_GADGET_RUNTIME_DIR", ""), SYSTEM_DIR, str(_CHECKOUT_DIR),
            str(packaged.runtime_dir() or "")]
    return [d for d in dirs if d]


def enricher_object() -> str | None:
    for d in runtime_dirs():
        if os.path.isfile(os.path.join(d, ENRICHER_OBJECT)):
            return os.path.join(d, ENRICHER_OBJECT)
    return None


def cgroup2_root(proc_root: str = "/proc") -> str | None:
    """The host's cgroup v2 root: seen through pid 1 (a runner pod's own /sys/fs/cgroup is
    only its cgroup namespace), else this process's own mount of it."""
    for mounts, prefix in ((f"{proc_root}/1/mounts", f"{proc_root}/1/root"),
                           ("/proc/self/mounts", "")):
        try:
            with open(mounts, encoding="utf-8") as fh:
                for line in fh:
                    fields = line.split()
                    if len(fields) >= 3 and fields[2] == "cgroup2" and \
                            os.path.isdir(prefix + fields[1]):
                        return prefix + fields[1]
        except OSError:
            continue
    return None


class SocketEnricher:
    """The enricher loaded and attached; `map_fd` is the shared gadget_sockets map."""

    def __init__(self, obj_path: str, proc_root: str = "/proc") -> None:
        self.notice = ""
        self.proc_root = proc_root
        self._links: list[BpfLink] = []
        self._last_sweep = 0.0
        self._obj: BpfObject | None = BpfObject(obj_path)
        try:
            self._obj.load()
            sockets = self._obj.find_map(SOCKETS_MAP)
            if sockets is None:
                raise NotSupported(f"socket enricher {obj_path} has no {SOCKETS_MAP} map")
            self.map_fd = sockets.fd
            hooks = self._attach_hooks()
            found = self._scan_existing()
            self.notice = ("socket enrichment: " + (hooks + " and " if hooks else "") +
                           f"a task_file iterator ({found} sockets open at start); no kprobes")
        except LibbpfCallError as exc:
            self.close()
            raise NotSupported(f"starting the socket enricher: {exc.message}",
                               detail=exc.log) from None
        except BaseException:
            self.close()
            raise

    def _attach_hooks(self) -> str:
        assert self._obj is not None
        root = cgroup2_root(self.proc_root)
        if root is None:
            return ""
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        names = []
        try:
            for prog in self._obj.programs():
                if prog.section.startswith("cgroup"):
                    self._links.append(prog.attach_cgroup(fd))
                    names.append(prog.section.split("/", 1)[-1])
        finally:
            os.close(fd)
        return f"cgroup socket hooks on {root} ({', '.join(names)})"

    def _scan_existing(self) -> int:
        assert self._obj is not None
        for prog in self._obj.programs():
            if prog.section.startswith("iter/"):
                prog.run_iter()
        return len(map_keys(self.map_fd, KEY_SIZE))

    def sweep(self, every: float = 1.0) -> int:
        """Remove entries of sockets closed more than a few seconds ago; how many."""
        now = time.monotonic()
        if now - self._last_sweep < every:
            return 0
        self._last_sweep = now
        boot_now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        removed = 0
        for key in map_keys(self.map_fd, KEY_SIZE):
            value = map_lookup(self.map_fd, key, VALUE_SIZE)
            if value is None:
                continue
            stamp = int.from_bytes(value[DELETION_OFFSET:DELETION_OFFSET + 8], "little")
            if stamp and boot_now - stamp > KEEP_CLOSED_NS:
                removed += map_delete(self.map_fd, key)
        return removed

    def close(self) -> None:
        for link in reversed(self._links):
            link.destroy()
        self._links.clear()
        if self._obj is not None:
            self._obj.close()
            self._obj = None
