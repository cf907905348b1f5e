"""The container runtime: images to commands, container env, and real subprocesses.

A "container" is a subprocess in its own session (so its process group is the container):
stdout and stderr are read line by line into the container's log, and when the main process
exits the rest of its group is killed, as the end of a PID namespace would. Stop sends SIGTERM
to the main process (like the kubelet to PID 1), then SIGKILL to the whole group after the
grace period. The trap avoided: a reader thread blocked on a pipe held open by an orphaned
grandchild, which would make "container exited" never arrive.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .logs import ContainerLog

Obj = dict[str, Any]


class PullError(Exception):
    """The image cannot be pulled (unknown to the image table, or injected)."""


class StartError(Exception):
    """The runtime could not start the container's process."""


@dataclass(frozen=True)
class ImageEntry:
    """What running ``image`` means here: an entrypoint prefix plus extra env/cwd.

    With ``replace_command``, a container's own ``command[0]`` is replaced by ``argv`` too
    (``command: [node-runner, run]`` -> ``argv + [run] + args``), for images whose pod spec
    names an in-image binary that does not exist on this machine.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    replace_command: bool = False
    oci: OciImage | None = None  # run as a real OCI container (runc) from this unpacked image


@dataclass(frozen=True)
class OciImage:
    """An image unpacked on this machine: its root filesystem and its OCI image config."""

    rootfs: str
    config: Mapping[str, Any]


def normalize_image(image: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``, as container statuses show."""
    name, digest = (image.split("@", 1) + [""])[:2]
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    if not digest and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name + (f"@{digest}" if digest else "")


def image_repository(image: str) -> str:
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return (head + "/" if head else "") + last.split(":", 1)[0]


class ImageTable:
    """Image name -> :class:`ImageEntry`; lookups try exact, normalized, then repository."""

    def __init__(self, entries: Mapping[str, Sequence[str] | ImageEntry] | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, ImageEntry] = {}
        for image, entry in (entries or {}).items():
            self.add(image, entry)

    def add(self, image: str, entry: Sequence[str] | ImageEntry,
            env: Mapping[str, str] | None = None) -> None:
        if not isinstance(entry, ImageEntry):
            entry = ImageEntry(tuple(entry), dict(env or {}))
        with self._lock:
            self._entries[image] = entry

    def lookup(self, image: str) -> ImageEntry | None:
        with self._lock:
            for key in (image, normalize_image(image)):
                if key in self._entries:
                    return self._entries[key]
            repo = image_repository(normalize_image(image))
            for key, entry in self._entries.items():
                if image_repository(normalize_image(key)) == repo and ":" not in key.rsplit(
                        "/", 1)[-1] and "@" not in key:
                    return entry
        return None


_VAR = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay, ``$$`` escapes."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR.sub(sub, text)


def _field_ref(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    values = {
        "metadata.name": meta["name"], "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": host_ip, "status.podIP": pod_ip,
    }
    return values.get(path, "")


def container_env(pod: Obj, container: Obj, base: Mapping[str, str], pod_ip: str,
                  host_ip: str) -> dict[str, str]:
    env = dict(base)
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" in item:
            ref = (item["valueFrom"] or {}).get("fieldRef")
            env[name] = _field_ref(pod, ref["fieldPath"], pod_ip, host_ip) if ref else ""
        else:
            env[name] = expand(item.get("value", ""), env)
    return env


def resolve_argv(container: Obj, images: ImageTable, env: Mapping[str, str]) -> list[str]:
    """Entrypoint from the image table (no ``command``) or ``command[0]`` on PATH."""
    command = [expand(part, env) for part in container.get("command") or []]
    args = [expand(part, env) for part in container.get("args") or []]
    entry = images.lookup(container["image"])
    if command and entry is not None and entry.replace_command:
        return [*entry.argv, *command[1:], *args]
    if not command:
        if entry is None:
            raise PullError()
        if not entry.argv:
            raise StartError("no command specified")
        return [*entry.argv, *args]
    exe = command[0]
    found = exe if "/" in exe else shutil.which(exe, path=env.get("PATH"))
    if not found or not os.access(found, os.X_OK):
        raise StartError(f'exec: "{exe}": executable file not found in $PATH')
    return [found, *command[1:], *args]


class ContainerProcess:
    """One running container: a process group whose output feeds a :class:`ContainerLog`."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: str,
                 log: ContainerLog, on_exit: Callable[[], None]) -> None:
        self.argv, self.log = list(argv), log
        self._on_exit = on_exit
        self.exit_code: int | None = None
        self.started_at = time.time()
        self.finished_at: float | None = None
        try:
            self._proc = subprocess.Popen(
                self.argv, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )
        except OSError as exc:
            raise StartError(f"exec: {exc.strerror}: {self.argv[0]}") from exc
        self.pgid = self._proc.pid
        self._readers = [
            threading.Thread(target=self._read, args=(pipe, name), daemon=True)
            for pipe, name in ((self._proc.stdout, "stdout"), (self._proc.stderr, "stderr"))
        ]
        for reader in self._readers:
            reader.start()
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read(self, pipe: Any, stream: str) -> None:
        with pipe:
            for line in iter(pipe.readline, b""):
                self.log.append(stream, line)

    def _wait(self) -> None:
        code = self._proc.wait()
        self._kill_group(signal.SIGKILL)
        for reader in self._readers:
            reader.join(timeout=5)
        self.log.close()
        self.finished_at = time.time()
        self.exit_code = 128 - code if code < 0 else code
        self._on_exit()

    def _kill_group(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def running(self) -> bool:
        return self.exit_code is None

    def stop(self, grace: float) -> None:
        """SIGTERM the main process, SIGKILL the group after ``grace``; wait for the end."""
        if self._proc.poll() is None:
            try:
                self._proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self._proc.wait(timeout=max(grace, 0))
            except subprocess.TimeoutExpired:
                pass
        self._kill_group(signal.SIGKILL)
        self._waiter.join(timeout=10)

    def kill(self) -> None:
        self._kill_group(signal.SIGKILL)
        self._waiter.join(timeout=10)


def group_alive(pgid: int) -> bool:
    """Does any non-zombie process still belong to process group ``pgid``?"""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            return True
    return False
