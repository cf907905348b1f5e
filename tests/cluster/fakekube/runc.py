"""Run one container with runc from an OCI runtime config, and leave nothing behind.

One job: give a test (and the kubelet, for runner pods) a real OCI container: a bundle with
`config.json` next to an unpacked image, `runc run` in the foreground with stdout and stderr
captured, and on the way out `runc delete --force`, the cgroups runc made, the host directories
created for hostPath sources that did not exist (as containerd creates them) and the bundle.
The trap avoided: a container or cgroup left over by a failed test, breaking the next one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNC = shutil.which("runc") or "/usr/sbin/runc"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Bundle:
    cid: str
    path: Path
    config: dict[str, Any]
    created: list[Path] = field(default_factory=list)

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


def _make_sources(config: dict[str, Any]) -> list[Path]:
    created = []
    for m in config["mounts"]:
        src = Path(m["source"])
        if m["type"] == "bind" and not src.exists():
            missing = [p for p in (src, *src.parents) if not p.exists()]
            src.mkdir(parents=True)
            created += missing
    return created


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
    for path in b.created:  # deepest first
        with contextlib.suppress(OSError):
            os.rmdir(path)
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
