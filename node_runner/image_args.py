"""The runner's image flags: `--gadget REF` plus pull, verify and allowlist options.

One job: add the flags to the runner's parser and turn `--gadget` into a built gadget
directory before `run` starts, through `node_runner.oci.resolve`; the policy (allowed list,
signature keys) is enforced here, on the node, whatever client started the runner. A value that
is an existing directory is a built gadget used as is, but never when a policy asks for images
(an allowed list or an explicit --verify-image). The trap avoided: a client bypassing the
policy by handing the runner a directory instead of an image.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from node_runner.builtin import find_builtin
from node_runner.constants import PULL_POLICIES, parse_bool
from node_runner.errors import ImageError, UsageError


class BoolAction(argparse.BooleanOptionalAction):
    """`--x`, `--no-x`, and also `--x=true|false`."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.nargs = "?"

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if option_string and option_string.startswith("--no-"):
            if values is not None:
                raise argparse.ArgumentError(self, "takes no value")
            setattr(namespace, self.dest, False)
            return
        value = True if values is None else parse_bool(str(values))
        if value is None:
            raise argparse.ArgumentError(self, f"expected true or false, not {values!r}")
        setattr(namespace, self.dest, value)


def _split(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(p.strip() for item in items for p in item.split(",") if p.strip())


def add_image_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("gadget images", "--gadget may also be an image reference: "
                             "trace_open, ghcr.io/org/trace_open:v1, name@sha256:...")
    g.add_argument("--pull", choices=PULL_POLICIES, default="missing",
                   help="when to pull the image from its registry (default: missing)")
    g.add_argument("--verify-image", action=BoolAction, default=None,
                   help="require a signature by one of --public-key (default: on for images)")
    g.add_argument("--public-key", action="append", default=[], metavar="FILE",
                   help="PEM public key accepted for image signatures (repeatable)")
    g.add_argument("--allowed-gadgets", action="append", default=[], metavar="LIST",
                   help="comma-separated refs, digests or prefix/* wildcards; refuse others")
    g.add_argument("--insecure-registries", action="append", default=[], metavar="LIST",
                   help="comma-separated registries (host:port) reached over plain http")
    g.add_argument("--authfile", default="", help="docker config file with registry "
                   "credentials (default: ~/.docker/config.json)")


def resolve_gadget_arg(ns: argparse.Namespace) -> tuple[str, str, str]:
    """(built gadget directory, ref, digest) for `ns.gadget`; ImageError when refused."""
    allowed = _split(ns.allowed_gadgets)
    if os.path.isdir(ns.gadget):
        if allowed:
            raise ImageError(f"gadget {ns.gadget} is a local directory, and --allowed-gadgets "
                             "admits images only")
        if ns.verify_image:
            raise ImageError(f"gadget {ns.gadget} is a local directory: it has no signature "
                             "to verify (use an image, or --verify-image=false)")
        return ns.gadget, ns.gadget_ref, ns.gadget_digest
    if ns.gadget.startswith((".", "/")):
        raise UsageError(f"--gadget {ns.gadget}: no such directory")
    builtin = find_builtin(ns.gadget) if ns.pull != "always" else None
    if builtin is not None and not allowed and not ns.verify_image:
        # Shipped inside the runner image: trusted as much as the runner itself.
        return builtin, ns.gadget_ref or ns.gadget, ns.gadget_digest
    # Imported here: the registry stack (oras, requests) costs ~0.2 s of start-up that runs
    # of a directory or a built-in gadget never need.
    from node_runner.oci.registry import RegistryOptions
    from node_runner.oci.resolve import ResolveOptions, resolve

    if ns.authfile and not os.path.isfile(ns.authfile):
        raise UsageError(f"--authfile {ns.authfile}: no such file")
    opts = ResolveOptions(
        pull=ns.pull, verify=ns.verify_image is not False, public_keys=tuple(ns.public_key),
        allowed=allowed, registry=RegistryOptions(_split(ns.insecure_registries), ns.authfile))
    resolved = resolve(ns.gadget, opts)
    return resolved.path, resolved.ref, resolved.digest
