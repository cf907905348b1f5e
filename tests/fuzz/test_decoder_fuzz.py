"""Fuzzing the gadget reader and the decoder: mutated objects, gadget.yaml files and records.

Seeds are real gadgets built from tests/data/gadgets and gadgets/ (records with endpoints,
128-bit integers, enums, bitfields, unions, arrays, an array datasource). Each case mutates one
input with a seeded generator and checks the contract: the spec parser raises nothing but
GadgetFormatError; the encoder built from an accepted spec renders any record (short, long,
random bytes) as one JSON object whose keys are the schema's, or counts it dropped; it never
raises. A failure message names the seed. Case counts: tests/fuzz/budget.py.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from node_runner.decoder import DatasourceEncoder
from node_runner.formatters import FormatContext
from node_runner.gadget.elf import ElfFile
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.metadata import parse_metadata
from node_runner.gadget.spec import GadgetSpec, load_spec
from tests.conftest import GADGETS_SRC, TEST_GADGETS_SRC, compile_gadget
from tests.fuzz.budget import cases

SEEDS = [TEST_GADGETS_SRC / n for n in ("netabi", "variant", "top_opens")] + \
        [GADGETS_SRC / n for n in ("trace_open", "trace_tcp")]
INTERESTING = (0, 1, 2, 3, 7, 8, 15, 16, 17, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000,
               0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, bytes]]:
    """(built dir, object bytes) of every seed gadget."""
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed: cannot build the seed gadgets")
    root = tmp_path_factory.mktemp("fuzzseeds")
    out = []
    for src in SEEDS:
        built = compile_gadget(src, root / src.name)
        out.append((built, (built / "program.bpf.o").read_bytes()))
    return out


def _mutate_object(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    btf = ElfFile.parse(data).get_section(".BTF")
    assert btf is not None
    start = data.index(bytes(btf.data))
    lo, hi = (start, start + len(btf.data)) if rng.random() < 0.8 else (0, len(buf))
    for _ in range(rng.randint(1, 4)):
        how = rng.random()
        if how < 0.4:
            buf[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
        elif how < 0.8:  # a whole aligned u32 (a type id, a size, an offset, a count)
            off = lo + (rng.randrange(hi - lo) & ~3)
            word = rng.choice(INTERESTING) if rng.random() < 0.7 else rng.getrandbits(32)
            buf[off:off + 4] = word.to_bytes(4, "little")[:max(0, min(4, len(buf) - off))]
        else:
            buf[rng.randrange(lo, hi)] = rng.randrange(256)
    if rng.random() < 0.05:
        del buf[rng.randrange(len(buf)):]
    return bytes(buf)


def _record(size: int, rng: random.Random) -> bytes:
    n = max(0, rng.choice((0, 1, size // 2, size - 1, size, size, size, size + 8,
                           rng.randrange(size * 2 + 1))))
    if rng.random() < 0.3:
        return rng.choice((b"\0", b"\xff")) * n
    return rng.randbytes(n)


def _check_encoding(spec: GadgetSpec, rng: random.Random, seed: int) -> None:
    for ds in spec.datasources:
        assert ds.schema is not None
        try:
            enc = DatasourceEncoder(ds.schema, ds.record_size, context=FormatContext(),
                                    enricher=lambda _m: ',"k8s.node":"n"',
                                    enrichment=(), skip_pid=None, row_only=ds.kind == "array")
        except GadgetFormatError:
            continue
        names = [f.name for f in enc.fields]
        records = [_record(ds.record_size, rng) for _ in range(8)]
        buf = bytearray(b"\0" * 8)
        offsets = []
        for rec in records:
            offsets.append(len(buf))
            buf += rec + bytes(-len(rec) % 8)
        buf += bytes(ds.record_size)  # a long record may be read past its end, as in the ring
        out: list[str] = []
        dropped = enc.encode_batch(bytes(buf), offsets, [len(r) for r in records], out)
        assert dropped + len(out) == len(records), f"seed {seed}"
        for line in out:
            obj = json.loads(line)
            data = obj if ds.kind == "array" else obj["data"]
            keys = [k for k in data if k != "k8s.node"]
            assert keys == names, f"seed {seed}: {keys} != {names}"


def test_mutated_objects_raise_only_format_errors(objects: list[tuple[Path, bytes]],
                                                   tmp_path: Path) -> None:
    accepted = refused = 0
    for seed in cases(300, 0.6):
        rng = random.Random(seed)
        built, data = objects[seed % len(objects)]
        case = tmp_path / built.name
        case.mkdir(exist_ok=True)
        if (built / "gadget.yaml").exists() and not (case / "gadget.yaml").exists():
            shutil.copy(built / "gadget.yaml", case / "gadget.yaml")
        (case / "program.bpf.o").write_bytes(_mutate_object(data, rng))
        try:
            spec = load_spec(str(case))
        except GadgetFormatError:
            refused += 1
            continue
        except Exception as exc:  # noqa: BLE001 - the point: name the seed and the exception
            pytest.fail(f"seed {seed} ({built.name}): {type(exc).__name__}: {exc}")
        accepted += 1
        _check_encoding(spec, rng, seed)
    assert accepted and refused  # the mutator reaches both sides


def test_random_records_on_every_seed(objects: list[tuple[Path, bytes]]) -> None:
    specs = [load_spec(str(built)) for built, _data in objects]
    for seed in cases(200, 0.2):
        _check_encoding(specs[seed % len(specs)], random.Random(seed), seed)


def _mutate_text(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        how = rng.random()
        if how < 0.3:
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
        elif how < 0.5:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif how < 0.7:
            lines[i] = lines[i].replace(":", rng.choice(("", "::", ": [", ": {", ": 99999999999",
                                                         ": -1", ": !!binary AA==", ": *x")), 1)
        elif how < 0.85:
            lines[i] = " " * rng.randrange(6) + lines[i].lstrip()
        else:
            lines[i] = "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randrange(12)))
    return "\n".join(lines)


def test_mutated_gadget_yaml_raises_only_format_errors(objects: list[tuple[Path, bytes]]) -> None:
    texts = [(b / "gadget.yaml").read_text() for b, _d in objects if (b / "gadget.yaml").exists()]
    for seed in cases(300, 0.2):
        rng = random.Random(seed)
        text = _mutate_text(texts[seed % len(texts)], rng)
        try:
            parse_metadata(text)
        except GadgetFormatError:
            pass
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"seed {seed}: {type(exc).__name__}: {exc}\n{text}")
