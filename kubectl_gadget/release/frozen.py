"""Entry point of the one-file binary built by `make dist`: the client and the runner it starts.

The client starts its local runner as `sys.executable -m node_runner ...`. In the binary,
`sys.executable` is the binary itself, so `-m node_runner` as the first arguments runs the
runner's `__main__` instead of the client: both halves ship in the one file (PyInstaller is told
to collect every runner module), and `--local` needs no Python on the machine. The runner is
reached by module name, not imported, so the client keeps out of the runner's internals.
The trap avoided: a binary whose client runs but cannot start its own runner.
"""

from __future__ import annotations

import runpy
import sys

RUNNER_ARGS = ["-m", "node_runner"]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == RUNNER_ARGS:
        sys.argv = ["node-runner", *args[2:]]
        runpy.run_module("node_runner", run_name="__main__", alter_sys=True)
        return 0
    from kubectl_gadget.cli import main as client_main

    # None keeps the client's own look at sys.argv[0]: the binary started through a
    # `kubectl_complete-gadget` symlink answers kubectl's plugin completion.
    return client_main(None if argv is None else args)


if __name__ == "__main__":
    sys.exit(main())
