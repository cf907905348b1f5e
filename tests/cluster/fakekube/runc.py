"""Run one container with runc from an OCI runtime config, and leave nothing behind.

One job: give a test (and the kubelet, for runner pods) a real OCI container: a bundle with
`config.json` next to an unpacked image, `runc run` in the foreground with stdout and stderr
captured, and on the way out `runc delete --force`, the cgroups runc made, the host directories
created for hostPath sources that did not exist (as containerd creates them) and the bundle.
`RuncContainerProcess` is such a container as the kubelet's container process, stopped through
runc (SIGTERM to its init, SIGKILL to every process of its cgroup after the grace period).
The trap avoided: a container or cgroup left over by a failed test, breaking the next one,
and a container of the host's PID namespace outliving a `runc run` killed in its place (its
init runs in a session of its own, out of runc's process group).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .logs import ContainerLog
from .runtime import ContainerProcess

RUNC = shutil.which("runc") or "/usr/sbin/runc"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Bundle:
    cid: str
    path: Path
    config: dict[str, Any]
    sources: list[Path] = field(default_factory=list)  # bind sources in use (_make_sources)

    def run(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """`runc run` in the foreground; stdout/stderr captured; killed at `timeout`."""
        cmd = run_argv(self)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            subprocess.run([RUNC, "kill", self.cid, "KILL"], capture_output=True, check=False)
            out, err = proc.communicate()
            err += f"\n[runc run timed out after {timeout} s and was killed]"
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# Missing hostPath sources made here, shared by this process's containers (pods on several
# fake nodes start at once and mount the same host paths): removed with the last user.
_sources_lock = threading.Lock()
_source_users: dict[Path, int] = {}
_made_dirs: set[Path] = set()


def _make_sources(config: dict[str, Any]) -> list[Path]:
    """Create the missing bind sources (as containerd does for hostPath volumes); return every
    bind source, each counted as used until `_release_sources`."""
    used = []
    with _sources_lock:
        for m in config["mounts"]:
            if m["type"] != "bind":
                continue
            src = Path(m["source"])
            for path in reversed((src, *src.parents)):
                if not path.exists():
                    with contextlib.suppress(FileExistsError):
                        path.mkdir()
                        _made_dirs.add(path)
            _source_users[src] = _source_users.get(src, 0) + 1
            used.append(src)
    return used


def _release_sources(sources: list[Path]) -> None:
    """One user less of each source; the dirs made for a source nobody uses go (deepest first,
    only while empty and not a parent of a source still in use)."""
    with _sources_lock:
        for src in sources:
            _source_users[src] -= 1
            if _source_users[src]:
                continue
            del _source_users[src]
            for path in (src, *src.parents):
                if path not in _made_dirs or any(path == u or path in u.parents
                                                 for u in _source_users):
                    break
                try:
                    path.rmdir()
                except OSError:
                    break
                _made_dirs.discard(path)


def _remove_cgroups(cgroups_path: str) -> None:
    rel = cgroups_path.strip("/")
    if not rel or not CGROUP_ROOT.is_dir():
        return
    for hierarchy in CGROUP_ROOT.iterdir():
        parts = Path(rel).parts
        for depth in range(len(parts), 0, -1):
            with contextlib.suppress(OSError):
                (hierarchy / Path(*parts[:depth])).rmdir()


def prepare(cid: str, config: dict[str, Any], where: Path) -> Bundle:
    """Write the bundle of `config` in `where` (and any missing hostPath source)."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "config.json").write_text(json.dumps(config, indent=1))
    return Bundle(cid, where, config, _make_sources(config))


def runc_errors(b: Bundle) -> list[str]:
    """The error messages runc logged for this container (why it could not start)."""
    try:
        lines = (b.path / "runc.log").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal"):
            out.append(str(entry.get("msg", "")))
    return out


def cleanup(b: Bundle) -> None:
    """Remove the container (killing what is left of it), its cgroups and created sources."""
    subprocess.run([RUNC, "delete", "--force", b.cid], capture_output=True, check=False)
    _remove_cgroups(b.config["linux"].get("cgroupsPath", ""))
    sources, b.sources = b.sources, []
    _release_sources(sources)
    shutil.rmtree(b.path, ignore_errors=True)


def run_argv(b: Bundle) -> list[str]:
    """The foreground `runc run` command: signals to it reach the container, its exit code is
    the container's, and runc's own messages go to `runc.log` in the bundle (not into the
    container's output, as with containerd)."""
    return [RUNC, "--log", str(b.path / "runc.log"), "--log-format", "json", "run",
            "--bundle", str(b.path), b.cid]


@contextlib.contextmanager
def bundle(cid: str, config: dict[str, Any], where: Path) -> Iterator[Bundle]:
    """A runc bundle for `config` in `where`; the container and its traces go at the end."""
    b = prepare(cid, config, where)
    try:
        yield b
    finally:
        cleanup(b)


def cgroup_alive(cgroups_path: str) -> bool:
    """Does any live process belong to the cgroup `cgroups_path` (in any hierarchy)?"""
    rel = "/" + cgroups_path.strip("/")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup", encoding="utf-8") as handle:
                lines = handle.read().splitlines()
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[-1].split()[0]
        except (OSError, IndexError):
            continue
        paths = [line.split(":", 2)[-1] for line in lines]
        if state not in (b"Z", b"X") and any(p == rel or p.startswith(rel + "/")
                                             for p in paths):
            return True
    return False


class RuncContainerProcess(ContainerProcess):
    """A container run by `runc run` in the foreground, as the kubelet's container process.

    Its output and exit code are runc's (which are the container's). Stop and kill go through
    runc: SIGTERM to the container's init (what a kubelet asks the runtime for), then after
    the grace period SIGKILL to every process in the container's cgroup (`kill --all`: with
    hostPID no PID namespace ends with init, and killing `runc run` alone would leave them).
    """

    def __init__(self, b: Bundle, log: ContainerLog, on_exit: Callable[[], None]) -> None:
        self.bundle = b
        super().__init__(run_argv(b), dict(os.environ), str(b.path), log, on_exit)

    def _runc_kill(self, sig: signal.Signals, every: bool = False) -> bool:
        argv = [RUNC, "kill", *(["--all"] if every else []), self.bundle.cid, sig.name]
        return subprocess.run(argv, capture_output=True, check=False, timeout=30).returncode == 0

    def _kill_group(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            self._runc_kill(signal.SIGKILL, every=True)
        super()._kill_group(sig)

    def stop(self, grace: float) -> None:
        """SIGTERM to the container's init, SIGKILL to all of it after `grace`; wait."""
        if self._proc.poll() is None:
            if not self._runc_kill(signal.SIGTERM):  # not started yet: runc passes it on
                with contextlib.suppress(ProcessLookupError):
                    self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=max(grace, 0))
            except subprocess.TimeoutExpired:
                pass
        self._kill_group(signal.SIGKILL)
        self._waiter.join(timeout=10)
