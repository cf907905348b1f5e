"""One container of a target pod, run with runc from a bundle where containerd keeps it.

One job: lay out and run one container the way containerd's CRI plugin does on a node with
the cgroupfs driver: the OCI bundle (``config.json`` with the CRI annotations, an empty
``rootfs``, runc's ``log.json``) in ``<containerd state>/io.containerd.runtime.v2.task/k8s.io/
<id>``, the cgroup ``/kubepods/besteffort/pod<uid>/<id>``, its own mount and PID namespaces and
the pod sandbox's network, IPC and UTS ones; ``runc run`` in the foreground (its exit code is
the container's) and ``runc exec`` for what a test runs inside (the path of ``kubectl exec``).
No image is pulled: the root is an empty directory with the host's /usr (and the /bin, /lib...
symlinks into it) and the test interpreter's prefix bind-mounted read-only.

Traps avoided:
- ``runc exec``'s own pid is not the pid of the command it runs (it forks into the
  container's namespaces): ``ExecProcess.pid`` is the host pid runc writes to ``--pid-file``,
  the pid a tracer reports, and signals go to that process.
- A started container is only handed out once its init has become the main command (not
  ``runc init`` any more), so nothing a test execs can race the container's own start.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from node_runner.mntns import mntns_of
from tests.cluster.fakekube.oci_spec import (
    DEFAULT_CAPS,
    MASKED,
    READONLY,
    base_mounts,
    grantable,
)
from tests.cluster.fakekube.runc import RUNC

TASKS = ("io.containerd.runtime.v2.task", "k8s.io")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


class RuncError(RuntimeError):
    """runc could not start, run a command in, or remove a target container."""


def runc_log_errors(log: Path) -> str:
    """runc's error lines from its JSON log (why a container did not start), joined."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "; ".join(line for line in lines if '"level":"error"' in line
                     or '"level":"fatal"' in line)


def host_dirs() -> list[str]:
    """The real directories among HOST_DIRS: bind-mounted read-only into every root."""
    return [p for p in HOST_DIRS if os.path.isdir(p) and not os.path.islink(p)]


def link_host_dirs(rootfs: Path) -> None:
    """Recreate the host's top-level symlinks among HOST_DIRS (/bin -> usr/bin) in `rootfs`."""
    for path in HOST_DIRS:
        if os.path.islink(path):
            (rootfs / path.lstrip("/")).symlink_to(os.readlink(path))


def interpreter_dirs() -> list[str]:
    """The test interpreter's install when it is not below a host dir already mounted (tests
    run `sys.executable` inside targets: the "image" carries it)."""
    out: list[str] = []
    for prefix in (sys.base_prefix, sys.prefix):
        real = os.path.realpath(prefix)
        if not any(real == d or real.startswith(d + "/") for d in (*HOST_DIRS, *out)):
            out.append(real)
    return out


def bind_mount(source: str, dest: str, read_only: bool = True) -> dict[str, Any]:
    """A bind mount of a host path (recursive, private; read-only by default)."""
    return {"destination": dest, "type": "bind", "source": source,
            "options": ["rbind", "rprivate", "nosuid", "nodev", "ro" if read_only else "rw"]}


def _kernel_mounts() -> list[dict[str, Any]]:
    """A container's usual kernel file systems (read-only /sys), plus a private /tmp."""
    return base_mounts(privileged=False) + [
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777"]}]


def oci_config(*, args: Sequence[str], cgroups_path: str, annotations: Mapping[str, str],
               namespaces: Sequence[Mapping[str, str]],
               extra_mounts: Sequence[Mapping[str, Any]] = (), hostname: str | None = None,
               env: Sequence[str] = ()) -> dict[str, Any]:
    """The config.json of one container: containerd's default capabilities (those this
    machine can grant), masked and read-only /proc paths, a read-only /sys, no seccomp, the
    host's system dirs read-only, a writable (empty) root, tmpfs /tmp."""
    caps = [f"CAP_{c}" for c in DEFAULT_CAPS if c in grantable()]
    mounts = _kernel_mounts() + [bind_mount(d, d) for d in host_dirs()]
    mounts += [dict(m) for m in extra_mounts]
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "args": list(args),
            "env": [PATH_ENV, *env], "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": False},
        "mounts": mounts,
        "annotations": dict(annotations),
        "linux": {"namespaces": [dict(n) for n in namespaces], "cgroupsPath": cgroups_path,
                  "maskedPaths": list(MASKED), "readonlyPaths": list(READONLY)},
    }
    if hostname is not None:
        config["process"]["env"].append(f"HOSTNAME={hostname}")
        config["hostname"] = hostname
    return config


class ExecProcess:
    """A `runc exec` in the foreground: stdio, exit code and `wait` are runc's (it passes
    them through); `pid` is the command's host pid, which signals go to."""

    def __init__(self, runc: subprocess.Popen[bytes], pid: int) -> None:
        self.runc, self.pid, self.args = runc, pid, runc.args
        self.stdin, self.stdout, self.stderr = runc.stdin, runc.stdout, runc.stderr

    @property
    def returncode(self) -> int | None:
        return self.runc.returncode

    def poll(self) -> int | None:
        return self.runc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.runc.wait(timeout)

    def communicate(self, input: bytes | None = None,  # noqa: A002 (Popen's name)
                    timeout: float | None = None) -> tuple[Any, Any]:
        return self.runc.communicate(input, timeout)

    def send_signal(self, sig: int) -> None:
        if self.runc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def __enter__(self) -> ExecProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.runc.__exit__(*exc)


def _wait_pid_file(path: Path, runc: subprocess.Popen[bytes], what: str, log: Path) -> int:
    """The pid runc writes once the process exists; fails when runc gives up first."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text())
        if runc.poll() is not None and not path.exists():
            raise RuncError(f"{what}: runc exited with {runc.returncode}"
                            f" ({runc_log_errors(log) or 'no error logged'})")
        if time.monotonic() > deadline:
            raise RuncError(f"{what}: no pid after {START_TIMEOUT:.0f} s")
        time.sleep(0.01)


class RuncContainer:
    """One runc container: `start`, `popen`/`exec` inside it, `close` removes every trace."""

    def __init__(self, container_id: str, bundle: Path, config: Mapping[str, Any],
                 runc_root: Path, pod_uid: str) -> None:
        self.container_id, self.bundle, self.config = container_id, bundle, dict(config)
        self.runtime, self.pod_uid, self.runc_root = "containerd", pod_uid, runc_root
        self.cgroup_relpath = str(config["linux"]["cgroupsPath"])
        self.pid = 0
        self.mntns_id = 0
        self.cgroup_paths: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._execs: list[ExecProcess] = []
        self._seq = 0

    @property
    def cgroup_path(self) -> str:
        """Filesystem path of the container's cgroup (the first hierarchy's)."""
        return self.cgroup_paths[0]

    @property
    def log(self) -> Path:
        return self.bundle / "log.json"

    def _runc(self, *args: str) -> list[str]:
        return [RUNC, "--root", str(self.runc_root), "--log", str(self.log),
                "--log-format", "json", *args]

    def start(self, hierarchies: Sequence[str]) -> None:
        """Write the bundle, `runc run` it, wait until its init runs the main command."""
        (self.bundle / "rootfs").mkdir(parents=True)
        link_host_dirs(self.bundle / "rootfs")
        (self.bundle / "config.json").write_text(json.dumps(self.config, indent=1))
        what = f"starting container {self.container_id[:12]}"
        self.cgroup_paths = [os.path.join(h, self.cgroup_relpath.lstrip("/"))
                             for h in hierarchies]
        self.process = subprocess.Popen(
            self._runc("run", "--pid-file", str(self.bundle / "init.pid"), "--bundle",
                       str(self.bundle), self.container_id),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = _wait_pid_file(self.bundle / "init.pid", self.process, what, self.log)
        main = os.path.basename(self.config["process"]["args"][0])[:15]
        deadline = time.monotonic() + START_TIMEOUT
        while self._comm() != main:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuncError(f"{what}: its init never became {main!r} "
                                f"(rc={self.process.poll()}; {runc_log_errors(self.log)})")
            time.sleep(0.01)
        self.mntns_id = mntns_of(self.pid)

    def _comm(self) -> str:
        try:
            with open(f"/proc/{self.pid}/comm", encoding="utf-8") as file:
                return file.read().strip()
        except OSError:
            return ""

    def poll(self) -> int | None:
        """Exit code of the container's main process, None while it runs."""
        if self.process is None:
            raise RuncError("the container was never started")
        return self.process.poll()

    def popen(self, argv: Sequence[str], **popen: Any) -> ExecProcess:
        """Start a process inside the container with `runc exec` (stdio passed through)."""
        what = f"exec {list(argv)} in container {self.container_id[:12]}"
        if self.poll() is not None:
            raise RuncError(f"{what}: it has exited")
        self._seq += 1
        pid_file = self.bundle / f"exec-{self._seq}.pid"
        runc = subprocess.Popen(self._runc("exec", "--pid-file", str(pid_file),
                                           self.container_id, *argv), **popen)
        try:
            proc = ExecProcess(runc, _wait_pid_file(pid_file, runc, what, self.log))
        except BaseException:
            runc.kill()
            runc.wait()
            raise
        self._execs.append(proc)
        return proc

    def exec(self, argv: Sequence[str], *, timeout: float = 30.0,
             check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run a short command inside the container and return its output."""
        proc = self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        result = subprocess.CompletedProcess(list(argv), proc.runc.returncode, out, err)
        if check:
            result.check_returncode()
        return result

    def stop(self) -> None:
        """Kill the container (all of its PID namespace dies with its init) and reap runc."""
        if self.process is None:
            return
        if self.process.poll() is None:
            subprocess.run(self._runc("kill", self.container_id, "KILL"),
                           capture_output=True, check=False)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for proc in self._execs:
            proc.kill()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.runc.kill()
                proc.wait()

    def close(self) -> None:
        """Stop, `runc delete --force`, close pipes and remove the bundle (idempotent). The
        cgroup leaf goes with runc delete; the caller removes the pod's shared parents."""
        try:
            self.stop()
        finally:
            subprocess.run(self._runc("delete", "--force", self.container_id),
                           capture_output=True, check=False)
            for proc in self._execs:
                for stream in (proc.stdin, proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
            self._execs.clear()
            busy = [leaf for leaf in self.cgroup_paths if not _rmdir_cgroup(leaf)]
            shutil.rmtree(self.bundle, ignore_errors=True)
            if busy:
                raise RuncError(f"removing cgroups {busy}: still busy")


def _rmdir_cgroup(path: str) -> bool:
    """Remove a cgroup runc left (its last processes may still be exiting); True when gone."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() > deadline:
                return False
        time.sleep(0.05)
