"""The runner's exception hierarchy, one class per protocol error code.

Only the runner's entry point turns these into an `error` record and an exit code; everything
below raises them with a message that says what was being done, then the cause. The trap this
avoids: third-party exceptions (OSError from ctypes, yaml errors, ...) leaking to the user as a
traceback. Each boundary module translates its foreign exceptions into one of these.
"""

from __future__ import annotations


class RunnerError(Exception):
    """A failure that stops the run. `code` and `exit_code` follow docs/protocol.md."""

    code = "internal"
    exit_code = 1

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail  # longer text (verifier log) shown with --verbose


class UsageError(RunnerError):
    code = "usage"
    exit_code = 2


class GadgetInvalid(RunnerError):
    code = "gadget_invalid"
    exit_code = 3


class NotSupported(RunnerError):
    code = "not_supported"
    exit_code = 4


class VerifierRejected(RunnerError):
    code = "verifier"
    exit_code = 5


class PermissionDenied(RunnerError):
    code = "permission"
    exit_code = 6


class ImageError(RunnerError):
    code = "image"
    exit_code = 7
