"""Which gadget images may run: an allowlist of references, digests and `prefix/*` wildcards.

One job: answer "is this image allowed?" with a reason naming the list when it is not. Entries
are normalised with the same reference rules as the images (so `trace_open` in the list means
the default registry's `trace_open:latest`); a digest entry matches the image's index digest
or its per-architecture manifest digest. An empty list allows everything. The trap avoided:
comparing raw strings, so that `trace_open` and `ghcr.io/.../trace_open:latest` disagree, or
a wildcard `ghcr.io/org/*` also matching `ghcr.io/org-evil/x`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from node_runner.errors import ImageError
from node_runner.oci.media import is_digest
from node_runner.oci.reference import Reference, parse_reference


@dataclass(frozen=True)
class Allowlist:
    entries: tuple[str, ...] = ()

    @classmethod
    def parse(cls, items: Iterable[str]) -> Allowlist:
        out = []
        for item in items:
            for part in item.split(","):
                part = part.strip()
                if part:
                    out.append(_normalise(part))
        return cls(tuple(out))

    def __bool__(self) -> bool:
        return bool(self.entries)

    @property
    def has_digests(self) -> bool:
        return any(is_digest(e) or "@" in e for e in self.entries)

    def allows(self, ref: Reference, digests: Sequence[str] = ()) -> bool:
        if not self.entries:
            return True
        return any(_matches(entry, ref, digests) for entry in self.entries)

    def check(self, ref: Reference, digests: Sequence[str] = ()) -> None:
        if not self.allows(ref, digests):
            raise ImageError(f"gadget {ref} is not in the allowed list "
                             f"(allowed: {', '.join(self.entries)})")


def _normalise(entry: str) -> str:
    if is_digest(entry) or "*" in entry:
        return entry
    return str(parse_reference(entry))


def _matches(entry: str, ref: Reference, digests: Sequence[str]) -> bool:
    if is_digest(entry):
        return entry in digests or entry == ref.digest
    if entry.endswith("/*") and "*" not in entry[:-2]:
        return ref.name.startswith(entry[:-1])
    if "*" in entry:
        return fnmatch.fnmatchcase(str(ref), entry) or fnmatch.fnmatchcase(ref.name, entry)
    if "@" in entry:
        name, _, digest = entry.partition("@")
        return name == ref.name and (digest in digests or digest == ref.digest)
    return entry == str(ref)
