"""The array flags of `kubectl gadget run`: fetch interval and count, sampling frequency.

One job: declare `--map-fetch-interval`, `--map-fetch-count` and `--sampling-frequency` once,
check them against the gadget before any runner starts, and turn them into runner arguments.
`--map-fetch-interval` takes seconds (`2`, `0.5`) or a duration (`500ms`, `2s`, `1m`) as
Inspektor Gadget spells it. The array-only flags (`--sort`, `--max-entries` and the two fetch
flags) on a gadget that has no array datasource are a usage error naming its datasources: the
trap avoided is accepting them and silently doing nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kubectl_gadget.errors import UsageError
from kubectl_gadget.operators import FieldSchema, unknown_field
from kubectl_gadget.operators.sort import SortKey

if TYPE_CHECKING:  # the spec module (ELF/BTF parsing) is not needed to declare the flags
    from node_runner.gadget.spec import GadgetSpec

F = TypeVar("F", bound=Callable[..., Any])
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_interval(text: str) -> float:
    """Seconds from `2`, `0.5`, `500ms`, `2s` or `1m`; UsageError otherwise or when not > 0."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"invalid --map-fetch-interval {text!r}: give seconds (2, 0.5) or a "
                         "duration (500ms, 2s, 1m)")
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if seconds < 0.01:
        raise UsageError(f"invalid --map-fetch-interval {text!r}: must be at least 10ms")
    return seconds


@dataclass(frozen=True)
class ArrayFlags:
    interval: float | None = None
    count: int = 0
    sampling_frequency: int | None = None

    @classmethod
    def pop(cls, kwargs: dict[str, Any]) -> ArrayFlags:
        """Take this module's options out of a click command's keyword arguments."""
        interval = kwargs.pop("map_fetch_interval", None)
        count = kwargs.pop("map_fetch_count", None)
        freq = kwargs.pop("sampling_frequency", None)
        if count is not None and count < 0:
            raise UsageError(f"invalid --map-fetch-count {count}: must be 0 (no limit) or more")
        if freq is not None and not 1 <= freq <= 100000:
            raise UsageError(f"invalid --sampling-frequency {freq}: must be 1 to 100000 Hz")
        return cls(parse_interval(interval) if interval is not None else None, count or 0, freq)

    @property
    def given(self) -> list[str]:
        return ([] if self.interval is None else ["--map-fetch-interval"]) + \
            (["--map-fetch-count"] if self.count else [])

    def runner_args(self) -> list[str]:
        args = [] if self.interval is None else ["--map-fetch-interval", f"{self.interval:g}"]
        args += ["--map-fetch-count", str(self.count)] if self.count else []
        if self.sampling_frequency is not None:
            args += ["--sampling-frequency", str(self.sampling_frequency)]
        return args


def check_array_flags(spec: GadgetSpec, flags: list[str]) -> None:
    """UsageError when array-only `flags` are given for a gadget without array datasources."""
    if not flags or any(ds.kind == "array" for ds in spec.datasources):
        return
    names = ", ".join(f"{ds.name} ({ds.kind})" for ds in spec.datasources) or "none"
    verb = "applies" if len(flags) == 1 else "apply"
    raise UsageError(f"{', '.join(flags)} {verb} only to array datasources (snapshots, tops, "
                     f"histograms, profiles); gadget {spec.name} has: {names}")


def check_sort_fields(keys: Sequence[SortKey], spec: GadgetSpec,
                      schemas: Mapping[str, Sequence[FieldSchema]]) -> frozenset[str]:
    """With several array datasources, each `--sort` key must name a field of one of them.

    Returns the key names to spread over the datasources (empty: one datasource, whose
    schema checks the keys itself); UsageError naming the fields when a key fits none.
    """
    arrays = [ds.name for ds in spec.datasources if ds.kind == "array"]
    if len(arrays) < 2 or not keys:
        return frozenset()
    known = {f["name"] for ds in arrays for f in schemas.get(ds, [])}
    for key in keys:
        if key.field not in known:
            raise unknown_field("invalid --sort", key.field, sorted(known))
    return frozenset(k.field for k in keys)


def array_options(f: F) -> F:
    """Add the array flags to a click command (values land in its **kwargs)."""
    f = click.option("--sampling-frequency", type=int, default=None,
                     help="Profiles: samples per second on each CPU (default 49).")(f)
    f = click.option("--map-fetch-count", type=int, default=None,
                     help="Arrays: stop after N intervals (0: until stopped).")(f)
    return click.option("--map-fetch-interval", default=None,
                        help="Arrays: time between tables, seconds or 500ms/2s (default 1s); "
                        "a snapshot repeats with it.")(f)
