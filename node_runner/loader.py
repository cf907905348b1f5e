"""A gadget loaded into the kernel: open -> configure -> load -> attach, then close.

`LoadedGadget` owns the bpf_object, its links and the ring-buffer readers, and releases them
in reverse order on `close` (it is a context manager). Configuration happens strictly between
open and load: params and the container-filter switch are written into `.rodata`, maps are
resized from `<map>_max_entries`, and programs whose tracepoint this kernel lacks are not
loaded (with a warning). Load and attach failures are turned into the runner's errors by
`load_errors`, given the gadget, the program and its section, which only this module knows.
The mount-namespace filter map is filled before attaching, so no event of another container
is ever emitted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from node_runner import constants as C
from node_runner import system
from node_runner.arrays import SUPPORTED_MAP_TYPES, IterReader, MapIterReader, Reader
from node_runner.attach import sockets
from node_runner.attach.targets import TargetAttachments
from node_runner.errors import (
    GadgetInvalid,
    NotSupported,
    RunnerError,
    UsageError,
)
from node_runner.gadget.spec import GadgetSpec, check_params, encode_param
from node_runner.libbpf.library import LibbpfCallError, num_possible_cpus
from node_runner.libbpf.maps import (
    BPF_MAP_TYPE_ARRAY_OF_MAPS,
    BPF_MAP_TYPE_HASH_OF_MAPS,
    BPF_MAP_TYPE_PERF_EVENT_ARRAY,
    BPF_MAP_TYPE_RINGBUF,
    create_map,
    map_delete,
    map_update,
)
from node_runner.libbpf.objects import BpfLink, BpfObject, BpfProgram
from node_runner.libbpf.perf import online_cpus, perf_event_open_sampling
from node_runner.load_errors import attach_error, attach_kind, load_error
from node_runner.perfbuf import PerfBufReader
from node_runner.ringbuf import RingBufReader

DEFAULT_SAMPLING_HZ = 49


def _open(spec: GadgetSpec) -> BpfObject:
    """libbpf's open of the object; a refusal (an unresolved extern, ...) is an invalid gadget."""
    try:
        return BpfObject(spec.object_path)
    except LibbpfCallError as exc:
        said = [ln.split("libbpf: ", 1)[-1] for ln in exc.log.splitlines() if ln.strip()]
        reason = said[-1] if said else exc.message
        raise GadgetInvalid(f"opening gadget {spec.name}: {reason}", detail=exc.log) from None


def _gadget_frequency(spec: GadgetSpec, prog: str) -> int:
    progs = spec.metadata.raw.get("programs")
    body = progs.get(prog) if isinstance(progs, dict) else None
    sampler = body.get("sampler") if isinstance(body, dict) else None
    freq = sampler.get("frequency") if isinstance(sampler, dict) else None
    return freq if isinstance(freq, int) and 1 <= freq <= 100000 else DEFAULT_SAMPLING_HZ


class LoadedGadget:
    """A gadget in the kernel. Create, use `readers`, then `close` (or use `with`)."""

    def __init__(self, spec: GadgetSpec, params: Mapping[str, str] | None = None,
                 mntns_filter: Iterable[int] | None = None,
                 sampling_frequency: int | None = None, proc_root: str = "/proc",
                 on_phase: Callable[[str], None] | None = None, tc_attach: str = "auto") -> None:
        phase = on_phase or (lambda _p: None)  # said before each libbpf step that may crash
        self.spec = spec
        self.warnings: list[str] = []
        self.notices: list[str] = []  # what the runtime did for the gadget (stderr lines)
        self.readers: dict[str, RingBufReader | PerfBufReader] = {}
        self.arrays: dict[str, Reader] = {}  # array datasources (map iterators, iterators)
        self.sampling_frequency = sampling_frequency
        self._links: list[BpfLink] = []
        self._filter_fd = -1
        self._filtered: set[int] = set()
        self._targets: set[int] | None = None
        self._attached = False
        self._inner_fds: list[int] = []  # inner map templates made here, closed after load
        self._proc_root = proc_root
        self._per_target = TargetAttachments(spec.name, proc_root, tc_attach)
        self._enricher: sockets.SocketEnricher | None = None
        phase("opening the object")
        self._obj: BpfObject | None = _open(spec)
        try:
            self._configure(params or {}, mntns_filter is not None)
            phase("loading the programs")
            self._load()
            if mntns_filter is not None:
                self.set_mntns_filter(mntns_filter)
            phase("attaching the programs")
            self._attach()
            self._open_readers()
            self._open_arrays()
        except BaseException:
            self.close()
            raise

    # configure -----------------------------------------------------------------------------
    def _configure(self, params: Mapping[str, str], filtering: bool) -> None:
        assert self._obj is not None
        rodata = next((m for m in self._obj.maps() if m.is_internal
                       and m.name.endswith(".rodata")), None)
        try:
            check_params(self.spec, params)
        except ValueError as exc:
            raise UsageError(f"setting params of gadget {self.spec.name}: {exc}") from None
        writes: dict[int, bytes] = {}
        for key, p in self.spec.params.items():
            text = params.get(key, p.default)
            if text is not None:  # defaults were checked when the spec was read
                writes[p.offset] = encode_param(p, text)
        for prog in self._obj.programs():
            self._per_target.claim(prog)
        if filtering:
            var = self.spec.rodata.get(C.FILTER_BY_MNTNS)
            if var is None and self._per_target.per_netns:
                pass  # its programs are attached in the targets' network namespaces only
            elif var is None:
                raise GadgetInvalid(f"gadget {self.spec.name} has no container filter "
                                    f"({C.FILTER_BY_MNTNS}); it cannot be limited to containers")
            else:
                writes[var.offset] = b"\1"
        if writes:
            if rodata is None:
                raise GadgetInvalid(f"gadget {self.spec.name}: params declared but no .rodata")
            view = rodata.initial_value()
            for offset, data in writes.items():
                view[offset:offset + len(data)] = data
        self._resize_maps()
        self._skip_missing_tracepoints()
        self._share_sockets_map()

    def _share_sockets_map(self) -> None:
        """Give the gadget the socket enricher's gadget_sockets map (filled by the runtime)."""
        assert self._obj is not None
        m = self._obj.find_map(sockets.SOCKETS_MAP)
        if m is None:
            return
        if (m.key_size, m.value_size) != (sockets.KEY_SIZE, sockets.VALUE_SIZE):
            self.warnings.append(
                f"map {sockets.SOCKETS_MAP} of gadget {self.spec.name} has key/value sizes "
                f"{m.key_size}/{m.value_size}, not {sockets.KEY_SIZE}/{sockets.VALUE_SIZE}: "
                "it is not filled, so events show no owning process")
            return
        path = sockets.enricher_object()
        if path is None:
            self.warnings.append(
                f"the socket enricher ({sockets.ENRICHER_OBJECT}) is not in "
                f"{', '.join(sockets.runtime_dirs())} (make gadgets builds it): "
                f"{sockets.SOCKETS_MAP} stays empty")
            return
        try:
            self._enricher = sockets.SocketEnricher(path, self._proc_root)
        except RunnerError as exc:  # the gadget still runs, its events without owners
            self.warnings.append(f"{exc.message}: {sockets.SOCKETS_MAP} stays empty")
            return
        m.reuse_fd(self._enricher.map_fd)
        self.notices.append(self._enricher.notice)

    def _size_inner_maps(self) -> None:
        """An inner perf event array template without max_entries gets one slot per CPU.

        libbpf sizes top-level perf event arrays but not inner map templates, and the kernel
        refuses a zero-sized one ("failed to create inner map: -22"); such a template is
        replaced by a sized map made here (closed after load: the kernel keeps its shape).
        """
        assert self._obj is not None
        for m in self._obj.maps():
            inner = m.inner_map() if m.type in (BPF_MAP_TYPE_ARRAY_OF_MAPS,
                                                BPF_MAP_TYPE_HASH_OF_MAPS) else None
            if inner is not None and inner.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY \
                    and inner.max_entries == 0:
                fd = create_map(BPF_MAP_TYPE_PERF_EVENT_ARRAY, "kg_inner",
                                inner.key_size or 4, inner.value_size or 4,
                                num_possible_cpus())
                self._inner_fds.append(fd)
                m.set_inner_map_fd(fd)

    def _resize_maps(self) -> None:
        assert self._obj is not None
        self._size_inner_maps()
        if not self.spec.max_entries:
            return
        rodata = next(m for m in self._obj.maps() if m.is_internal and m.name.endswith(".rodata"))
        view = rodata.initial_value()
        for map_name, var in self.spec.max_entries.items():
            m = self._obj.find_map(map_name)
            size = int.from_bytes(view[var.offset:var.offset + var.size], "little")
            if m is not None and size:
                m.set_max_entries(size)

    def _skip_missing_tracepoints(self) -> None:
        assert self._obj is not None
        for prog in self._obj.programs():
            parts = prog.section.split("/")
            if parts[0] in ("tracepoint", "tp") and len(parts) == 3:
                if not system.tracepoint_exists(parts[1], parts[2]):
                    prog.set_autoload(False)
                    self.warnings.append(f"program '{prog.name}' skipped: this kernel has no "
                                         f"tracepoint {parts[1]}/{parts[2]}")

    # load and attach ------------------------------------------------------------------------
    def _load(self) -> None:
        assert self._obj is not None
        try:
            self._obj.load()
        except LibbpfCallError as exc:
            sections = {p.name: p.section for p in self._obj.programs()}
            raise load_error(exc, self.spec.name, sections) from None
        finally:
            while self._inner_fds:
                os.close(self._inner_fds.pop())

    def _attach(self) -> None:
        assert self._obj is not None
        for prog in self._obj.programs():
            if any(prog.name in w for w in self.warnings) or self._per_target.claims(prog.name):
                continue
            kind = attach_kind(prog.section)
            if kind == "iter":  # attached per datasource by _open_arrays
                continue
            try:
                if kind == "perf_event":
                    self._attach_sampling(prog)
                    continue
                self._links.append(prog.attach())
            except LibbpfCallError as exc:
                raise attach_error(exc, self.spec.name, prog.name, prog.section) from None
        self._per_target.attach(self._targets)
        self.warnings.extend(self._per_target.warnings)
        self._attached = True

    def _attach_sampling(self, prog: BpfProgram) -> None:
        """A perf_event program samples every online CPU at the sampling frequency: the one
        asked for, else the gadget's own (gadget.yaml `programs.<prog>.sampler.frequency`,
        as Inspektor Gadget's gadgets give it), else DEFAULT_SAMPLING_HZ."""
        freq = self.sampling_frequency or _gadget_frequency(self.spec, prog.name)
        for cpu in online_cpus():
            fd = perf_event_open_sampling(cpu, freq)
            self._links.append(prog.attach_perf_event(fd))

    def _open_arrays(self) -> None:
        assert self._obj is not None
        progs = {p.name: p for p in self._obj.programs()}
        for ds in self.spec.datasources:
            if ds.source is None:
                continue
            if ds.source.kind == "mapiter":
                m = self._obj.find_map(ds.map_name)
                if m is None or m.type not in SUPPORTED_MAP_TYPES:
                    raise GadgetInvalid(f"datasource {ds.name}: map '{ds.map_name}' is not a "
                                        "hash, LRU hash, per-CPU hash or array map in gadget "
                                        + self.spec.name)
                self.arrays[ds.name] = MapIterReader(ds, m)
                continue
            links = []
            for name in ds.source.progs:
                links.append(self._attach_iter(ds.name, progs.get(name),
                                               ds.source.target_maps.get(name), name))
            self._links += links
            self.arrays[ds.name] = IterReader(ds, links)

    def _attach_iter(self, ds: str, prog: BpfProgram | None, target: str | None,
                     name: str) -> BpfLink:
        assert self._obj is not None
        if prog is None or attach_kind(prog.section) != "iter":
            raise GadgetInvalid(f"datasource {ds}: gadget {self.spec.name} has no iter/* "
                                f"program '{name}'")
        map_fd = None
        if target is not None:
            m = self._obj.find_map(target)
            if m is None:
                raise GadgetInvalid(f"datasource {ds}: iterator '{name}' walks map '{target}', "
                                    f"which gadget {self.spec.name} does not define")
            map_fd = m.fd
        try:
            return prog.attach_iter(map_fd)
        except LibbpfCallError as exc:
            raise NotSupported(f"attaching iterator '{name}' of gadget {self.spec.name} "
                               f"({prog.section}): {exc.message}", detail=exc.log) from None

    def _open_readers(self) -> None:
        assert self._obj is not None
        for ds in self.spec.datasources:
            if ds.source is not None:
                continue
            m = self._obj.find_map(ds.map_name)
            if m is None or m.type not in (BPF_MAP_TYPE_RINGBUF,
                                           BPF_MAP_TYPE_PERF_EVENT_ARRAY):
                raise GadgetInvalid(f"datasource {ds.name}: map '{ds.map_name}' is not a "
                                    "ring buffer or perf event array in gadget "
                                    + self.spec.name)
            lost = self._obj.find_map(ds.map_name + C.LOST_SAMPLES_SUFFIX)
            lost_fd = lost.fd if lost is not None else None
            if m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY:
                self.readers[ds.name] = PerfBufReader(m.fd, lost_fd)
            else:
                self.readers[ds.name] = RingBufReader(m.fd, m.max_entries, lost_fd)

    def map_fd(self, name: str) -> int | None:
        """The fd of map `name` of the loaded object, None when it has no such map."""
        assert self._obj is not None
        m = self._obj.find_map(name)
        return m.fd if m is not None else None

    # container filter -----------------------------------------------------------------------
    def set_mntns_filter(self, mntns_ids: Iterable[int]) -> None:
        """Make the filter map hold exactly `mntns_ids` (added before removed)."""
        assert self._obj is not None
        wanted = set(mntns_ids)
        changed = self._targets is None or wanted != self._targets
        self._targets = set(wanted)
        if changed and self._attached:
            self._per_target.refresh(self._targets)
        if self._filter_fd < 0:
            m = self._obj.find_map(C.MNTNS_FILTER_MAP)
            if m is None and self._per_target.per_netns:
                return
            if m is None:
                raise GadgetInvalid(f"gadget {self.spec.name} has no {C.MNTNS_FILTER_MAP}")
            self._filter_fd = m.fd
        for mntns in wanted - self._filtered:
            map_update(self._filter_fd, mntns.to_bytes(8, "little"), b"\1\0\0\0")
        for mntns in self._filtered - wanted:
            map_delete(self._filter_fd, mntns.to_bytes(8, "little"))
        self._filtered = wanted

    def take_notices(self) -> list[str]:
        """Lines for the runner's log (stderr) not yet taken: what the runtime did."""
        notices, self.notices = self.notices + self._per_target.take_notices(), []
        return notices

    def maintain(self) -> None:
        """Periodic upkeep: forget sockets closed a while ago."""
        if self._enricher is not None:
            self._enricher.sweep()

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        self.readers.clear()
        self._per_target.close()
        while self._inner_fds:
            os.close(self._inner_fds.pop())
        for link in reversed(self._links):
            link.destroy()
        self._links.clear()
        if self._enricher is not None:
            self._enricher.close()
            self._enricher = None
        if self._obj is not None:
            self._obj.close()
            self._obj = None

    def __enter__(self) -> LoadedGadget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
