"""kubectl_gadget: the client that resolves targets, starts runners and merges their output.

`from kubectl_gadget import run` is the Python API (kubectl_gadget.api), loaded on first use so
the command line does not pay for it.
"""

from typing import Any

from node_runner import __version__

__all__ = ["Event", "Rows", "RunFailed", "__version__", "run"]


def __getattr__(name: str) -> Any:
    if name in ("run", "Event", "Rows", "RunFailed"):
        from kubectl_gadget import api

        return getattr(api, name)
    raise AttributeError(f"module 'kubectl_gadget' has no attribute {name!r}")
