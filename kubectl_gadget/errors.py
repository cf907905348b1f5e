"""Typed errors of the client (``kubectl_gadget``).

One job: give every failure a type and an exit code, so that only the CLI entry point decides
how to print an error and which code to exit with. The trap avoided: code deep in the pipeline
calling ``sys.exit`` or printing, which makes it untestable and hides the cause.

Messages say what was being done, then the cause, on one line:
``invalid filter 'pid==abc': 'abc' is not an integer (pid is u32)``.
"""

from __future__ import annotations

import signal


class GadgetError(Exception):
    """Base of every error the client raises on purpose; the CLI exits with ``exit_code``."""

    exit_code: int = 1


class UsageError(GadgetError):
    """Bad user input (flags, filter expressions, field lists, sort keys): exit code 2."""

    exit_code = 2


class BuildError(GadgetError):
    """A gadget could not be compiled or packed: exit code 3."""

    exit_code = 3


class GadgetInvalid(GadgetError):
    """The gadget itself is wrong (unreadable gadget.yaml, bad param default, no object): exit 3,
    the runner's `gadget invalid` code."""

    exit_code = 3


class RunnerFailed(GadgetError):
    """Every runner failed (or the only one did); the exit code follows the runner's."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ImageError(GadgetError):
    """A gadget image could not be built, stored, pulled, pushed, verified or is not allowed:
    exit code 7 (the runner's `image` code)."""

    exit_code = 7


class PermissionDenied(GadgetError):
    """Not allowed to load eBPF programs here (not root): exit code 6."""

    exit_code = 6


def crash_signal(code: int) -> str | None:
    """The signal that killed a runner, by name, or None: a local runner's return code is
    minus the signal; a container's exit code is 128 plus the signal. Our runner's own exit
    codes are small (README, "Exit codes"), and SIGTERM/SIGINT/SIGKILL are stops, not crashes."""
    number = -code if code < 0 else code - 128 if 128 < code < 160 else 0
    if number in (0, signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
