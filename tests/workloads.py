"""Run real processes as "containers" (own mount namespace + runtime-shaped cgroup) for tests.

One job: give kernel and cluster tests a process that looks, from ``/proc`` and ``/sys/fs/cgroup``,
exactly like a container of containerd, CRI-O, docker or podman (cgroup v2 or v1, systemd or
cgroupfs driver), optionally with the runtime's state file naming it, and clean all of it up.

Traps avoided:
- The process must be in its cgroup and mount namespace *before* it does its work, or a tracer
  sees its first events as a host process: the child blocks on a pipe (a tiny Python gate run
  after ``unshare``/``nsenter``) until the parent has written its pid to ``cgroup.procs``, and
  only then execs the command (same pid throughout).
- Cleanup runs even when the test fails, kills every process in the cgroup (children too,
  ``cgroup.kill`` on v2), waits until it is empty (a cgroup can only be removed then), and
  removes the state files and cgroups created here.
- Concurrent workloads (other tests, other pytest processes) share parent cgroups
  (``kubepods.slice``): a registry of the dirs workloads created, under a file lock, lets the
  last one out remove a shared parent, and no dir a workload did not create is ever removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from node_runner.mntns import mntns_of
from node_runner.runtime_state import RuntimePaths
from tests.runtime_layout import ContainerState, cgroup_relpath, write_runtime_state

__all__ = [
    "ContainerState",
    "ContainerWorkload",
    "WorkloadError",
    "cgroup_relpath",
    "hierarchy_roots",
    "run_in_container",
    "sleeping_container",
    "spawn_gated",
]

# Runs after unshare/nsenter: say "ready", wait for "go" (the parent joins us to the cgroup
# in between), then become the command. Exit 111 if the parent went away. `ready` stays open,
# close-on-exec: its end of file tells the parent that the command runs (or the gate died), so
# no tracer started afterwards sees the gate (a python3 with the command's pid) instead.
_GATE = (
    "import os, sys\n"
    "ready, go = int(sys.argv[1]), int(sys.argv[2])\n"
    "os.write(ready, b'r'); os.set_inheritable(ready, False)\n"
    "ok = os.read(go, 1) == b'g'; os.close(go)\n"
    "os.execvp(sys.argv[3], sys.argv[3:]) if ok else os._exit(111)\n"
)
_START_TIMEOUT = 30.0
_DRAIN_TIMEOUT = 30.0


class WorkloadError(RuntimeError):
    """The helper could not set up or tear down a container-like process."""


def _cgroup_mounts() -> tuple[str | None, dict[str, str]]:
    """(cgroup2 mount point, {v1 controller or name=...: mount point}) of this process."""
    v2: str | None = None
    v1: dict[str, str] = {}
    with open("/proc/self/mounts", encoding="utf-8") as file:
        for line in file:
            _dev, point, fstype, options = line.split()[:4]
            if fstype == "cgroup2" and v2 is None:
                v2 = point
            elif fstype == "cgroup":
                for option in options.split(","):
                    v1.setdefault(option, point)
    return v2, v1


def hierarchy_roots(cgroup_version: int) -> list[str]:
    """Where the helper creates cgroups: the v2 mount, or the v1 pids (+ name=systemd) ones."""
    v2, v1 = _cgroup_mounts()
    if cgroup_version == 2:
        if v2 is None:
            raise WorkloadError("no cgroup2 hierarchy is mounted")
        return [v2]
    roots = [v1[key] for key in ("pids", "name=systemd") if key in v1]
    if not roots and v1:
        roots = [next(iter(v1.values()))]
    if not roots:
        raise WorkloadError("no cgroup v1 hierarchy is mounted")
    return roots


_REGISTRY = os.path.join(tempfile.gettempdir(), "kubectl-gadget-test-cgroups.json")


@contextlib.contextmanager
def _shared_cgroups() -> Iterator[set[str]]:
    """Cgroup dirs created by any workload (any process), held under an exclusive lock.

    Workloads share parents (``kubepods.slice``): whoever finishes last removes them, and only
    dirs a workload created are ever removed.
    """
    with open(_REGISTRY + ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(_REGISTRY, encoding="utf-8") as file:
                created = set(json.load(file))
        except (OSError, ValueError):
            created = set()
        yield created
        with open(_REGISTRY + ".tmp", "w", encoding="utf-8") as file:
            json.dump(sorted(created), file)
        os.replace(_REGISTRY + ".tmp", _REGISTRY)


def _make_cgroup(root: str, relpath: str) -> str:
    """Create the cgroup and its missing parents; return its path."""
    current = root
    with _shared_cgroups() as created:
        for part in relpath.split("/"):
            current = os.path.join(current, part)
            with contextlib.suppress(FileExistsError):
                os.mkdir(current)
                created.add(current)
    return current


def _remove_cgroup(root: str, leaf: str) -> bool:
    """Remove an (empty) cgroup and the parents workloads created that are now unused."""
    with _shared_cgroups() as created:
        removed = _rmdir_quietly(leaf)
        if removed:
            created.discard(leaf)
        parent = os.path.dirname(leaf)
        while removed and parent in created and parent != root:
            removed = _rmdir_quietly(parent)
            if removed:
                created.discard(parent)
            parent = os.path.dirname(parent)
    return not os.path.exists(leaf)


def _rmdir_quietly(path: str) -> bool:
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise


def _procs(cgroup_dir: str) -> list[int]:
    try:
        with open(os.path.join(cgroup_dir, "cgroup.procs"), encoding="ascii") as file:
            return [int(line) for line in file if line.strip()]
    except FileNotFoundError:
        return []


def _kill_cgroup(cgroup_dir: str) -> None:
    """SIGKILL every process of a cgroup and wait until it is empty."""
    deadline = time.monotonic() + _DRAIN_TIMEOUT
    kill_file = os.path.join(cgroup_dir, "cgroup.kill")
    while True:
        pids = _procs(cgroup_dir)
        if not pids:
            return
        if time.monotonic() > deadline:
            raise WorkloadError(f"cgroup {cgroup_dir} still has processes {pids}")
        if os.path.exists(kill_file):
            with open(kill_file, "w", encoding="ascii") as file:
                file.write("1")
        else:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def _join(pid: int, cgroup_dirs: Sequence[str]) -> None:
    for cgroup_dir in cgroup_dirs:
        with open(os.path.join(cgroup_dir, "cgroup.procs"), "w", encoding="ascii") as file:
            file.write(str(pid))


def spawn_gated(
    prefix: Sequence[str],
    argv: Sequence[str],
    cgroup_dirs: Sequence[str],
    on_joined: Callable[[int], None] = lambda pid: None,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start ``prefix + argv`` blocked until its pid is in ``cgroup_dirs``, then let it run.

    ``on_joined(pid)`` runs after the join and before the command starts (e.g. to read the
    mount namespace of a command that may exit at once).
    """
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    try:
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", _GATE, str(ready_w), str(go_r), *argv],
            pass_fds=(ready_w, go_r),
            **popen,
        )
        os.close(ready_w)
        os.close(go_r)
        ready_w = go_r = -1
        if not select.select([ready_r], [], [], _START_TIMEOUT)[0] or not os.read(ready_r, 1):
            proc.kill()
            proc.wait()
            raise WorkloadError(f"starting {list(prefix)} {list(argv)}: it never became ready")
        try:
            _join(proc.pid, cgroup_dirs)
            on_joined(proc.pid)
        except OSError:
            proc.kill()
            proc.wait()
            raise
        os.write(go_w, b"g")
        if not select.select([ready_r], [], [], _START_TIMEOUT)[0] or os.read(ready_r, 1):
            proc.kill()
            proc.wait()
            raise WorkloadError(f"starting {list(prefix)} {list(argv)}: the command never ran")
        return proc
    finally:
        for fd in (ready_r, ready_w, go_r, go_w):
            if fd >= 0:
                os.close(fd)


class ContainerWorkload:
    """A process in its own mount namespace and runtime-shaped cgroup; see ``run_in_container``."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        container_id: str | None = None,
        runtime: str = "containerd",
        cgroup_driver: str = "systemd",
        cgroup_version: int = 2,
        pod_uid: str | None = None,
        state: ContainerState | None = None,
        state_root: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.container_id = container_id or secrets.token_hex(32)
        self.runtime = runtime
        self.cgroup_version = cgroup_version
        in_pod = runtime in ("containerd", "cri-o") or pod_uid is not None
        self.pod_uid = (pod_uid or str(uuid.uuid4())) if in_pod else ""
        # The path as /proc/<pid>/cgroup shows it (from the host's cgroup namespace).
        self.cgroup_relpath = "/" + cgroup_relpath(
            runtime, cgroup_driver, self.container_id, self.pod_uid
        )
        self.cgroup_paths: list[str] = []
        self.state = state
        self.paths = RuntimePaths.under(state_root) if state_root else None
        self.pid = 0
        self.mntns_id = 0
        self._cgroups: list[tuple[str, str]] = []  # (hierarchy root, cgroup dir) created
        self._state_dirs: list[str] = []
        self._own_state_root: str | None = None
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def cgroup_path(self) -> str:
        """Filesystem path of the workload's cgroup (the first hierarchy's)."""
        return self.cgroup_paths[0]

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The container's main process (its ``stdout`` is a pipe if ``stdout=PIPE`` was given)."""
        if not self._procs:
            raise WorkloadError("the container was never started")
        return self._procs[0]

    def start(self, **popen: Any) -> None:
        """Write state, create the cgroups, start the command inside them."""
        if self.state is not None:
            if self.paths is None:
                self._own_state_root = tempfile.mkdtemp(prefix="workload-state-")
                self.paths = RuntimePaths.under(self._own_state_root)
            self._state_dirs = write_runtime_state(
                self.runtime, self.container_id, self.pod_uid, self.state, self.paths
            )
        for root in hierarchy_roots(self.cgroup_version):
            leaf = _make_cgroup(root, self.cgroup_relpath.lstrip("/"))
            self._cgroups.append((root, leaf))
            self.cgroup_paths.append(leaf)

        def joined(pid: int) -> None:
            self.pid, self.mntns_id = pid, mntns_of(pid)

        prefix = ["unshare", "--mount", "--propagation", "private", "--"]
        popen.setdefault("stdout", subprocess.DEVNULL)
        self._procs.append(spawn_gated(prefix, self.argv, self.cgroup_paths, joined, **popen))

    def popen(self, argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
        """Start another process inside the container (its mount namespace and cgroup)."""
        if self.poll() is not None:
            raise WorkloadError(f"exec into container {self.container_id[:12]}: it has exited")
        prefix = ["nsenter", "--mount", f"--target={self.pid}", "--"]
        proc = spawn_gated(prefix, argv, self.cgroup_paths, **popen)
        self._procs.append(proc)
        return proc

    def exec(
        self, argv: Sequence[str], *, timeout: float = 10.0, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a short command inside the container and return its output."""
        proc = self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        result = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
        if check:
            result.check_returncode()
        return result

    def poll(self) -> int | None:
        """Exit code of the container's main process, None while it runs."""
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the container's main process to exit; its exit code."""
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Kill every process of the container and reap the ones started here."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self._procs:
            proc.wait()
        for cgroup_dir in self.cgroup_paths:
            _kill_cgroup(cgroup_dir)

    def close(self) -> None:
        """Stop, then remove the cgroups and state this workload created (idempotent)."""
        try:
            self.stop()
        finally:
            for proc in self._procs:
                for stream in (proc.stdin, proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
            for path in self._state_dirs:
                shutil.rmtree(path, ignore_errors=True)
            if self._own_state_root:
                shutil.rmtree(self._own_state_root, ignore_errors=True)
            cgroups, self._cgroups = self._cgroups, []
            busy = [leaf for root, leaf in cgroups if not _remove_cgroup(root, leaf)]
            if busy:
                raise WorkloadError(f"removing cgroups {busy}: still busy")


@contextlib.contextmanager
def run_in_container(
    argv: Sequence[str],
    *,
    container_id: str | None = None,
    runtime: str = "containerd",
    cgroup_driver: str = "systemd",
    cgroup_version: int = 2,
    pod_uid: str | None = None,
    state: ContainerState | None = None,
    state_root: str | None = None,
    **popen: Any,
) -> Iterator[ContainerWorkload]:
    """Run ``argv`` as a container of ``runtime``; kill it and remove its traces on exit.

    ``state`` writes the runtime's state file (under ``state_root``, else a temp dir) so the
    container has names; the workload's ``paths`` points a ``ContainerTable`` at it. Extra
    keyword arguments go to ``subprocess.Popen`` (default stdout: ``/dev/null``).
    """
    workload = ContainerWorkload(
        argv,
        container_id=container_id,
        runtime=runtime,
        cgroup_driver=cgroup_driver,
        cgroup_version=cgroup_version,
        pod_uid=pod_uid,
        state=state,
        state_root=state_root,
    )
    try:
        workload.start(**popen)
        yield workload
    finally:
        workload.close()


def sleeping_container(**options: Any) -> contextlib.AbstractContextManager[ContainerWorkload]:
    """A long-running container (``sleep 1000``) to ``exec`` known processes into."""
    return run_in_container(["sleep", "1000"], **options)
