"""Gadget markers: what a gadget offers, read from the names of BTF variables.

One job: find the ``gadget_tracer_*``, ``gadget_param_*``, ``gadget_mapiter_*``,
``gadget_iter_*`` (or IG's older ``gadget_snapshotter_*``) and
``gadget_mapelem_iter_target_*`` variables a gadget declares (see
docs/gadget-abi.md sections 2 and 7) and split their names into parts (separator: three
underscores).

Trap avoided: a marker that does not split into the expected number of non-empty parts is
an error naming the marker, not a silently dropped datasource (a struct or map name that
itself contains ``___`` cannot be expressed and must be reported, not mis-split).
"""

from __future__ import annotations

from dataclasses import dataclass

from node_runner.gadget.btf import Btf
from node_runner.gadget.errors import GadgetFormatError

SEPARATOR = "___"
TRACER_PREFIX = "gadget_tracer_"
PARAM_PREFIX = "gadget_param_"
MAPITER_PREFIX = "gadget_mapiter_"
ITER_PREFIX = "gadget_iter_"
ITER_TARGET_PREFIX = "gadget_mapelem_iter_target_"
SNAPSHOTTER_PREFIX = "gadget_snapshotter_"  # IG's older spelling of gadget_iter_
MAX_ITER_PROGRAMS = 3


@dataclass(frozen=True, slots=True)
class Tracer:
    """A stream datasource: records of ``struct <struct_name>`` from ring buffer ``map_name``."""

    name: str
    map_name: str
    struct_name: str


@dataclass(frozen=True, slots=True)
class Param:
    """A user parameter backed by the ``const volatile`` global ``var``."""

    var: str


@dataclass(frozen=True, slots=True)
class MapIter:
    """An array datasource read from hash map ``map_name`` every interval."""

    name: str
    map_name: str


@dataclass(frozen=True, slots=True)
class Iter:
    """An array datasource of ``struct <struct_name>`` rows from iterator programs ``progs``."""

    name: str
    struct_name: str
    progs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IterTargetMap:
    """The ``iter/bpf_map_elem`` program ``prog`` walks map ``map_name``."""

    prog: str
    map_name: str


@dataclass(frozen=True, slots=True)
class Markers:
    """All markers of one object, each tuple in BTF order."""

    tracers: tuple[Tracer, ...] = ()
    params: tuple[Param, ...] = ()
    mapiters: tuple[MapIter, ...] = ()
    iters: tuple[Iter, ...] = ()
    iter_targets: tuple[IterTargetMap, ...] = ()


def _split(marker: str, prefix: str, parts: int, meaning: str) -> list[str]:
    pieces = marker[len(prefix):].split(SEPARATOR)
    if len(pieces) != parts or not all(pieces):
        raise GadgetFormatError(
            f"gadget marker {marker!r}: expected {prefix}{meaning} "
            f"({parts} non-empty parts separated by {SEPARATOR!r}), got {len(pieces)}"
        )
    return pieces


def _iter(marker: str, prefix: str) -> Iter:
    pieces = marker[len(prefix):].split(SEPARATOR)
    if not 3 <= len(pieces) <= 2 + MAX_ITER_PROGRAMS or not all(pieces):
        raise GadgetFormatError(
            f"gadget marker {marker!r}: expected {prefix}<name>___<struct>___<prog>"
            f"[___<prog>...] (1 to {MAX_ITER_PROGRAMS} programs, parts separated by "
            f"{SEPARATOR!r}), got {len(pieces)} parts")
    return Iter(pieces[0], pieces[1], tuple(pieces[2:]))


Marker = Tracer | Param | MapIter | Iter | IterTargetMap


def parse_marker(name: str) -> Marker | None:
    """The marker a variable name declares, or None when the name is not a marker."""
    if name.startswith(TRACER_PREFIX):
        return Tracer(*_split(name, TRACER_PREFIX, 3, "<name>___<map>___<struct>"))
    if name.startswith(PARAM_PREFIX):
        return Param(*_split(name, PARAM_PREFIX, 1, "<var>"))
    if name.startswith(MAPITER_PREFIX):
        return MapIter(*_split(name, MAPITER_PREFIX, 2, "<name>___<map>"))
    if name.startswith(ITER_PREFIX):
        return _iter(name, ITER_PREFIX)
    if name.startswith(SNAPSHOTTER_PREFIX):
        return _iter(name, SNAPSHOTTER_PREFIX)
    if name.startswith(ITER_TARGET_PREFIX):
        return IterTargetMap(*_split(name, ITER_TARGET_PREFIX, 2, "<prog>___<map>"))
    return None


def find_markers(btf: Btf) -> Markers:
    """Every marker declared by a BTF VAR, duplicates (same name twice) kept once."""
    found: dict[str, Marker] = {}
    for name, _tid in btf.vars():
        marker = parse_marker(name)
        if marker is not None:
            found.setdefault(name, marker)
    values = list(found.values())
    return Markers(
        tracers=tuple(m for m in values if isinstance(m, Tracer)),
        params=tuple(m for m in values if isinstance(m, Param)),
        mapiters=tuple(m for m in values if isinstance(m, MapIter)),
        iters=tuple(m for m in values if isinstance(m, Iter)),
        iter_targets=tuple(m for m in values if isinstance(m, IterTargetMap)),
    )
