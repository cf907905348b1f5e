"""The local node: the runner as a child process of this machine (`--local`).

It is the cluster path with one node: the same runner, the same stdout protocol, read by the
same merger. The child runs in its own session so a terminal Ctrl-C reaches only the client,
which then asks the runner to stop (SIGTERM: drain and write `end`) and, on a second Ctrl-C,
kills it. The runner's stdin is a pipe the client holds: when the client dies, even by SIGKILL,
the pipe closes and the runner stops by itself. The trap avoided: a runner killed mid-batch by
the terminal's SIGINT, losing its last records, or left running with its programs attached
when the client dies (a quiet gadget never writes, so it would never see a broken stdout).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from kubectl_gadget.errors import PermissionDenied

CHUNK = 1 << 20  # read what the pipe holds, up to this, per call: one wake-up per batch


@dataclass(frozen=True)
class LocalTarget:
    """What to trace on this host: nothing set means the whole host."""

    container_ids: tuple[str, ...] = ()
    container_names: tuple[str, ...] = ()


def runner_command() -> list[str]:
    override = os.environ.get("KUBECTL_GADGET_RUNNER")
    return override.split() if override else [sys.executable, "-m", "node_runner"]


class LocalNode:
    def __init__(self, name: str, gadget: str, args: Sequence[str]) -> None:
        self.name = name
        self._argv = [*runner_command(), "run", "--gadget", gadget, "--node", name,
                      "--stop-on-stdin-eof", *args]
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if os.geteuid() != 0:
            raise PermissionDenied("running a gadget on this host needs root: run the same command "
                              "with sudo (or as a user with CAP_BPF and CAP_PERFMON)")
        # stderr goes to a file: a pipe nobody reads could fill up and block the runner.
        self._stderr = tempfile.TemporaryFile()
        # The runner's stdin is a pipe only this process writes to: when the client dies, even
        # by SIGKILL, the kernel closes it and the runner stops (--stop-on-stdin-eof).
        self._proc = subprocess.Popen(self._argv, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr,
                                      start_new_session=True)

    def chunks(self) -> Iterator[bytes]:
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        while True:
            chunk = out.read1(CHUNK)  # type: ignore[attr-defined]
            if not chunk:
                return
            yield chunk

    def stop(self, graceful: bool = True) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = 10.0) -> tuple[int, str]:
        """Exit code and the last lines of stderr; kills the runner if it does not exit."""
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(graceful=False)
            code = self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        self._stderr.seek(0)
        err = self._stderr.read()
        self._stderr.close()
        tail = "\n".join(err.decode("utf-8", "replace").strip().splitlines()[-5:])
        return code, tail
