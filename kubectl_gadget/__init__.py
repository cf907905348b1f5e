"""kubectl_gadget: the client that resolves targets, starts runners and merges their output."""

from node_runner import __version__

__all__ = ["__version__"]
