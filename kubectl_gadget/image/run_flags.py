"""The image flags of `kubectl gadget run`, forwarded to every runner, plus an early check.

One job: declare `--pull`, `--verify-image/--no-verify-image`, `--public-key`,
`--allowed-gadgets`, `--insecure-registries` and `--authfile` once, turn them into runner
arguments, and check an image reference on the client first, for a good message before any
runner starts (with --local: the full pull, verify and allowlist path, which also gives the
gadget's spec so its params become flags). The runner checks again on its own, so skipping the
client check never bypasses the policy. The trap avoided: the client and the runner spelling
these flags differently, or the client trusting its own check.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kubectl_gadget.errors import GadgetInvalid, ImageError
from node_runner.constants import PULL_POLICIES
from node_runner.errors import RunnerError
from node_runner.gadget.errors import GadgetFormatError
from node_runner.oci.policy import Allowlist
from node_runner.oci.reference import parse_reference

if TYPE_CHECKING:
    from node_runner.gadget.spec import GadgetSpec

F = TypeVar("F", bound=Callable[..., Any])
KEYS = ("pull", "verify_image", "public_keys", "allowed_gadgets", "insecure_registries",
        "authfile")


def _split(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(p.strip() for item in items for p in item.split(",") if p.strip())


@dataclass(frozen=True)
class ImageRunFlags:
    pull: str = "missing"
    verify: bool | None = None  # None: the runner's default (on for images)
    public_keys: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()
    authfile: str = ""

    @classmethod
    def pop(cls, kwargs: dict[str, Any]) -> ImageRunFlags:
        """Take this module's options out of a click command's keyword arguments."""
        v = {k: kwargs.pop(k) for k in KEYS}
        return cls(v["pull"], v["verify_image"], tuple(v["public_keys"]),
                   _split(v["allowed_gadgets"]), _split(v["insecure_registries"]),
                   v["authfile"] or "")

    def runner_args(self) -> list[str]:
        args = ["--pull", self.pull]
        if self.verify is not None:
            args.append(f"--verify-image={'true' if self.verify else 'false'}")
        for key in self.public_keys:
            args += ["--public-key", key]
        if self.allowed:
            args += ["--allowed-gadgets", ",".join(self.allowed)]
        if self.insecure:
            args += ["--insecure-registries", ",".join(self.insecure)]
        if self.authfile:
            args += ["--authfile", self.authfile]
        return args


def existing_file(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Click callback: a file named on the command line must exist (an empty value: none)."""
    if value and not os.path.isfile(value):
        why = "is not a regular file" if os.path.exists(value) else "does not exist"
        raise click.BadParameter(f"{value} {why}", ctx, param)
    return value


def image_run_options(fn: F) -> F:
    """Decorator adding the image options to a click command (use with BoolFlagCommand)."""
    options = [
        click.option("--pull", type=click.Choice(PULL_POLICIES), default="missing",
                     show_default=True, help="When to pull a gadget image from its registry."),
        click.option("--verify-image/--no-verify-image", "verify_image", default=None,
                     help="Require a signature by one of --public-key (default: on for "
                     "images; --verify-image=false to run an unsigned local build)."),
        click.option("--public-key", "public_keys", multiple=True, metavar="FILE",
                     help="PEM public key accepted for image signatures (repeatable)."),
        click.option("--allowed-gadgets", multiple=True, metavar="LIST",
                     help="Comma-separated refs, digests or prefix/* wildcards; refuse others."),
        click.option("--insecure-registries", multiple=True, metavar="LIST",
                     help="Comma-separated registries (host:port) reached over plain http."),
        click.option("--authfile", default="", metavar="FILE", callback=existing_file,
                     help="Docker config file with registry credentials."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def precheck(ref: str, flags: ImageRunFlags, local: bool) -> GadgetSpec | None:
    """Check `ref` before runners start; with `local`, resolve it fully and return its spec."""
    # The registry stack (oras, requests, cryptography) loads only when an image is resolved.
    from node_runner.gadget.spec import load_spec
    from node_runner.oci.registry import RegistryOptions
    from node_runner.oci.resolve import ResolveOptions, resolve

    try:
        parsed = parse_reference(ref)
        allow = Allowlist.parse(flags.allowed)
        if allow and not allow.has_digests:
            allow.check(parsed)
        if not local:
            return None
        resolved = resolve(ref, ResolveOptions(
            pull=flags.pull, verify=flags.verify is not False, public_keys=flags.public_keys,
            allowed=flags.allowed, registry=RegistryOptions(flags.insecure, flags.authfile)))
        return load_spec(resolved.path, parsed.repository.rsplit("/", 1)[-1])
    except RunnerError as exc:
        raise ImageError(exc.message) from None
    except GadgetFormatError as exc:  # the image is fine, the gadget in it is not
        raise GadgetInvalid(f"reading gadget image {ref}: {exc}") from None
