"""Gadget image references: parse once into a frozen value, print one canonical form.

Accepted: a short name (`trace_open` -> `<default prefix>/trace_open:latest`, the prefix from
`KUBECTL_GADGET_REGISTRY`), a full reference (`ghcr.io/org/trace_open:v1`), a digest reference
(`name@sha256:<hex>`, also after a tag) and registries with a port (`127.0.0.1:5000/g/x`) or
named `localhost`. The trap avoided: splitting on the first `:` and taking a registry port
for a tag, or letting two spellings of one image land in the store under two names.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from node_runner.errors import ImageError
from node_runner.oci.media import is_digest

DEFAULT_PREFIX = "ghcr.io/kubectl-gadget/gadgets"
PREFIX_ENV = "KUBECTL_GADGET_REGISTRY"
DEFAULT_TAG = "latest"
DOCKER_HUB = "docker.io"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$")


def default_prefix() -> str:
    return (os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX).rstrip("/")


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port]
    repository: str  # path inside the registry, e.g. kubectl-gadget/gadgets/trace_open
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or DEFAULT_TAG}"

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, "")

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, "", digest)

    @property
    def short(self) -> str:
        """The name a user would type for it: without the default prefix when it has it."""
        text = str(self)
        prefix = default_prefix() + "/"
        return text[len(prefix):] if text.startswith(prefix) else text


def _is_host(component: str) -> bool:
    return (component == "localhost" or "." in component or ":" in component) and bool(
        _HOST.match(component))


def _split_tail(text: str) -> tuple[str, str, str]:
    """name[:tag][@digest] -> (name, tag, digest)."""
    name, _, digest = text.partition("@")
    last_slash = name.rfind("/")
    tag = ""
    colon = name.rfind(":")
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest


def parse_reference(text: str, prefix: str | None = None) -> Reference:
    """Parse `text` into a Reference; ImageError with the reason when it is not one."""
    raw = text.strip()
    if not raw:
        raise ImageError("empty gadget image reference")
    name, tag, digest = _split_tail(raw)
    if digest and not is_digest(digest):
        raise ImageError(f"image reference {raw!r}: digest must be sha256:<64 hex digits>")
    if tag and not _TAG.match(tag):
        raise ImageError(f"image reference {raw!r}: invalid tag {tag!r}")
    if "/" not in name:
        name = f"{prefix or default_prefix()}/{name}"
    first, _, rest = name.partition("/")
    if _is_host(first):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, name
    bad = [c for c in path.split("/") if not _COMPONENT.match(c)]
    if not path or bad:
        raise ImageError(f"image reference {raw!r}: invalid repository name "
                         f"{bad[0] if bad else path!r} (lowercase letters, digits, . _ -)")
    return Reference(registry, path, "" if digest else (tag or DEFAULT_TAG), digest)


def looks_like_reference(text: str) -> bool:
    try:
        parse_reference(text)
    except ImageError:
        return False
    return True
