"""How much a fuzz test runs: a few hundred cases in `make test`, minutes in `make fuzz`.

`make fuzz` sets KUBECTL_GADGET_FUZZ_SECONDS (default 600); each fuzz test then runs until its
share of that time is used. Without it, each test runs a fixed number of seeded cases, so
`make test` stays within seconds and a failure names a seed that reproduces it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

ENV = "KUBECTL_GADGET_FUZZ_SECONDS"


def cases(default: int, share: float) -> Iterator[int]:
    """Case numbers (seeds): `default` of them, or as many as fit in `share` of the budget."""
    seconds = os.environ.get(ENV)
    if not seconds:
        yield from range(default)
        return
    deadline = time.monotonic() + float(seconds) * share
    n = 0
    while time.monotonic() < deadline:
        yield n
        n += 1
