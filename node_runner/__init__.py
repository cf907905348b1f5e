"""node_runner: loads one gadget on one node and streams its records as JSON lines."""

__version__ = "0.1.0"
