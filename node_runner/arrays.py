"""Array datasources on the node: read a map or run iterators, emit one `array` record per fetch.

A fetch reads everything the kernel holds for one datasource at once and turns it into rows:
- map iterators (GADGET_MAPITER): hash, LRU hash and per-CPU hash maps are read and emptied in
  one batch (`bpf_map_lookup_and_delete_batch`); a kernel or map type that refuses batches is
  walked key by key (lookup, then delete). Array maps cannot lose elements: they are read, the
  elements that are not all zero become rows, and those are then zeroed. Either way each array
  holds one interval's data. Per-CPU values are added up: integer fields are summed over CPUs
  (counters, histogram slots, plain integers) except those whose typedef names an identity
  (`gadget_pid`, `gadget_mntns_id`, ...), which like every other field come from the first CPU
  that holds a non-zero value.
- iterators (GADGET_ITER): each iter/* program's iterator is read to the end; the rows of all
  programs of a datasource are concatenated into one array.
Rows are filtered by mount namespace and then decoded by the datasource's decode plan
(decoder.py, built by run.py and handed in), so the container filter holds for iterators too,
whose programs run in the runner's own context. The trap avoided: counting a row twice (read
without delete) or losing rows that arrive between read and delete (the batch call does both).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from typing import Protocol

from node_runner import constants as C
from node_runner.gadget.layout import FlatField
from node_runner.gadget.spec import DatasourceSpec
from node_runner.libbpf.library import LibbpfCallError, num_possible_cpus
from node_runner.libbpf.maps import (
    BATCH_REFUSED,
    BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_LRU_HASH,
    BPF_MAP_TYPE_LRU_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_MAP_TYPE_PERCPU_HASH,
    map_delete,
    map_keys,
    map_lookup,
    map_read_batch,
    map_update,
)
from node_runner.libbpf.objects import BpfLink, BpfMap, iter_read

_HASHES = frozenset({BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH,
                     BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH})
_PERCPU = frozenset({BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH,
                     BPF_MAP_TYPE_PERCPU_ARRAY})
_ARRAYS = frozenset({BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY})
SUPPORTED_MAP_TYPES = _HASHES | _ARRAYS


def _summed(f: FlatField) -> bool:
    if f.kind not in ("int", "array") or f.bit_size:
        return False
    typedef = f.tags[0] if f.tags else ""
    if typedef.startswith((C.COUNTER_PREFIX, C.HISTOGRAM_SLOT_PREFIX)):
        return True
    return not typedef.startswith("gadget_")


class PerCpuSum:
    """Adds up the per-CPU copies of one value into a single value (see the module doc)."""

    def __init__(self, value_fields: Sequence[FlatField], key_size: int, value_size: int,
                 ncpus: int) -> None:
        self.size, self.ncpus = value_size, ncpus
        self.stride = (value_size + 7) // 8 * 8
        self.sums: list[tuple[int, struct.Struct, int]] = []  # (offset, format, mask)
        for f in value_fields:
            if not _summed(f):
                continue
            size = f.elem_size if f.kind == "array" else f.size
            count = f.count if f.kind == "array" else 1
            code = {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
            self.sums.append((f.offset - key_size, struct.Struct(f"<{count}{code}"),
                              (1 << (8 * size)) - 1))

    def __call__(self, raw: bytes) -> bytes:
        copies = [raw[i * self.stride:i * self.stride + self.size] for i in range(self.ncpus)]
        zero = bytes(self.size)
        out = bytearray(next((c for c in copies if c != zero), zero))
        for off, fmt, mask in self.sums:
            totals = [0] * len(fmt.unpack_from(out, off))
            for c in copies:
                for i, v in enumerate(fmt.unpack_from(c, off)):
                    totals[i] += v
            fmt.pack_into(out, off, *(t & mask for t in totals))
        return bytes(out)


class MapIterReader:
    """Reads (and empties) the map of a GADGET_MAPITER datasource; `fetch` gives raw rows."""

    def __init__(self, ds: DatasourceSpec, bpf_map: BpfMap) -> None:
        assert ds.source is not None
        self.ds, self.map = ds, bpf_map
        self.fd, self.type = bpf_map.fd, bpf_map.type
        self.key_size, self.value_size = ds.source.key_size, ds.source.value_size
        self.max_entries = bpf_map.max_entries
        self.combine: Callable[[bytes], bytes] | None = None
        self.raw_value_size = self.value_size
        if self.type in _PERCPU:
            ncpus = num_possible_cpus()
            value_fields = [f for f in ds.fields if f.offset >= self.key_size]
            self.combine = PerCpuSum(value_fields, self.key_size, self.value_size, ncpus)
            self.raw_value_size = (self.value_size + 7) // 8 * 8 * ncpus
        self.batch = True

    def fetch(self) -> list[bytes]:
        pairs = self._read()
        if self.combine is not None:
            pairs = [(k, self.combine(v)) for k, v in pairs]
        if self.type in _ARRAYS:
            zero = bytes(self.value_size)
            pairs = [(k, v) for k, v in pairs if v != zero]
            raw_zero = bytes(self.raw_value_size)
            for k, _ in pairs:
                map_update(self.fd, k, raw_zero)
        return [k + v for k, v in pairs]

    def _read(self) -> list[tuple[bytes, bytes]]:
        delete = self.type in _HASHES
        if self.batch:
            try:
                return map_read_batch(self.fd, self.key_size, self.raw_value_size,
                                      self.max_entries, delete)
            except LibbpfCallError as exc:
                if exc.errno not in BATCH_REFUSED:
                    raise
                self.batch = False
        pairs = []
        for key in map_keys(self.fd, self.key_size):
            value = map_lookup(self.fd, key, self.raw_value_size)
            if value is None:
                continue
            if delete:
                map_delete(self.fd, key)
            pairs.append((key, value))
        return pairs


class IterReader:
    """Runs the iterators of a GADGET_ITER datasource; `fetch` gives their rows, merged."""

    def __init__(self, ds: DatasourceSpec, links: Sequence[BpfLink]) -> None:
        self.ds, self.links = ds, list(links)

    def fetch(self) -> list[bytes]:
        size = self.ds.record_size
        rows: list[bytes] = []
        for link in self.links:
            data = iter_read(link)
            rows += [data[i:i + size] for i in range(0, len(data) - size + 1, size)]
        return rows


Reader = MapIterReader | IterReader
RowHook = Callable[[dict[str, object]], None]


class RowEncoder(Protocol):
    encode_batch: Callable[[object, list[int], list[int], list[str]], int]


class ArrayEncoder:
    """Rows of one fetch -> one `array` protocol line (filter, decode, optional row hook)."""

    def __init__(self, ds: DatasourceSpec, encoder: RowEncoder, node: str,
                 hook: RowHook | None = None, node_field: bool = False) -> None:
        self.ds, self.encoder, self.hook = ds, encoder, hook
        # A cluster row without container enrichment still names its node (k8s.node).
        self._tail = ',"k8s.node":' + json.dumps(node) + "}" if node_field else ""
        self._head = ('{"type":"array","ds":' + json.dumps(ds.name) + ',"node":'
                      + json.dumps(node) + ',"fetch":%d,"data":[')
        self.last_rows = 0  # rows in the last `array` line (the run's `end` counts them)
        mntns = next((f for f in ds.fields if C.TAG_MNTNS_ID in f.tags and f.size == 8), None)
        self._mntns = mntns.offset if mntns is not None else None

    def encode(self, rows: list[bytes], fetch: int, targets: set[int] | None) -> tuple[str, int]:
        """The `array` line and the number of rows dropped (undecodable)."""
        if targets is not None and self._mntns is not None:
            off = self._mntns
            rows = [r for r in rows if int.from_bytes(r[off:off + 8], "little") in targets]
        out: list[str] = []
        buf = b"".join(rows)
        size = self.ds.record_size
        offsets = list(range(0, len(buf), size))
        dropped = self.encoder.encode_batch(buf, offsets, [size] * len(offsets), out)
        if self.hook is not None:
            decoded = [json.loads(line) for line in out]
            for row in decoded:
                self.hook(row)
            out = [json.dumps(row, separators=(",", ":")) for row in decoded]
        if self._tail:
            out = [row[:-1] + self._tail for row in out]
        self.last_rows = len(out)
        return self._head % fetch + ",".join(out) + "]}", dropped
