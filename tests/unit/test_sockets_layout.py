"""<gadget/sockets-map.h> lays out the sockets map exactly as IG's runtime does, byte for byte.

Gadgets built against IG's header read the map the runner fills; a drifting offset would give
them another process's name. The expected offsets are IG's documented layout; the sizes are
also the ones the loader insists on before it shares the map.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from node_runner.attach import sockets
from node_runner.gadget.btf import Btf, load_object_btf
from node_runner.gadget.btf_types import Kind
from node_runner.gadget.elf import ElfFile
from node_runner.gadget.layout import flatten_struct
from tests.conftest import TEST_GADGETS_SRC, compile_gadget

KEY = [("netns", 0, 4), ("family", 4, 2), ("proto", 6, 1), ("port", 8, 2)]
VALUE = [("mntns", 0, 8), ("pid_tgid", 8, 8), ("uid_gid", 16, 8), ("task", 24, 16),
         ("ptask", 40, 16), ("sock", 56, 8), ("deletion_timestamp", 64, 8), ("cwd", 72, 4096),
         ("exepath", 4168, 4096), ("ppid", 8264, 4), ("ipv6only", 8268, 1)]


@pytest.fixture(scope="module")
def object_btf(tmp_path_factory: pytest.TempPathFactory) -> Btf:
    out = compile_gadget(TEST_GADGETS_SRC / "tcp_state_owner",
                         tmp_path_factory.mktemp("sockets") / "tcp_state_owner")
    return load_object_btf(ElfFile.parse((Path(out) / "program.bpf.o").read_bytes()))


@pytest.mark.parametrize("struct,expected,size", [("sockets_key", KEY, sockets.KEY_SIZE),
                                                  ("sockets_value", VALUE, sockets.VALUE_SIZE)])
def test_layout_is_igs(object_btf: Btf, struct: str, expected: list[tuple[str, int, int]],
                       size: int) -> None:
    type_id = object_btf.find(struct, Kind.STRUCT)[0]
    assert object_btf.size_of(type_id) == size
    got = [(f.name, f.offset, f.size) for f in flatten_struct(object_btf, type_id)]
    assert got == expected
    assert sockets.DELETION_OFFSET == dict((n, o) for n, o, _ in VALUE)["deletion_timestamp"]
