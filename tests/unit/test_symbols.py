"""Symbolization without a kernel: kallsyms lines, and this process's own libc by address."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from node_runner.gadget.arrays import ArraySource, array_fields
from node_runner.gadget.layout import FlatField
from node_runner.gadget.schema import SchemaField as OutputField
from node_runner.gadget.spec import DatasourceSpec
from node_runner.symbols import KernelSymbols, UserSymbols


def test_kernel_addresses_name_the_function_below(tmp_path: Path) -> None:
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("ffffffff81000000 T _stext\n"
                        "ffffffff81000100 t do_thing\n"
                        "ffffffff81000180 d some_data\n"
                        "ffffffff81000200 T other_thing\t[mod]\n")
    syms = KernelSymbols(str(kallsyms))
    assert syms.name(0xFFFFFFFF81000100) == "do_thing+0x0"
    assert syms.name(0xFFFFFFFF810001A0) == "do_thing+0xa0"  # data symbols are not frames
    assert syms.name(0xFFFFFFFF81000234) == "other_thing+0x34"
    assert syms.name(0x1000) is None


def test_user_addresses_are_named_from_the_mapped_file() -> None:
    libc = ctypes.CDLL(None)
    addr = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    assert addr
    syms = UserSymbols("/proc")
    name = syms.name(os.getpid(), addr + 3)
    assert name is not None and "getpid" in name and name.endswith("+0x3"), name
    assert syms.name(os.getpid(), 0x10) is None  # nothing mapped there
    assert syms.name(2**22 + 12345678, addr) is None  # no such process


def test_user_stack_members_are_hidden_behind_one_string_field() -> None:
    members = ("exe_inode", "mtime_sec", "mtime_nsec", "stack_id", "pid_level0",
               "pidns_level0", "pid_level1", "pidns_level1")
    flat = (FlatField("kstack", 0, 4, "int", tags=("gadget_kernel_stack", "__u32")),
            *(FlatField(f"u.{m}", 8 + i * 4, 4, "int") for i, m in enumerate(members)))
    ds = DatasourceSpec("p", "array", "m", "", 64, flat,
                        source=ArraySource("mapiter", "m", user_stacks=("u.",)))
    fields = array_fields(ds, [OutputField(f.name, "u32", f.tags) for f in flat], cluster=False)
    assert [f.name for f in fields][-2:] == ["u.pidns_level1", "u.symbols"]
    assert fields[0].type == "string" and fields[-1].type == "string"
    assert all(f.annotations.get("columns.hidden") == "true" for f in fields[1:-1])
    on_cluster = array_fields(ds, fields, cluster=True)
    assert on_cluster[-1].name == "k8s.node" and len(on_cluster) == len(fields) + 1
