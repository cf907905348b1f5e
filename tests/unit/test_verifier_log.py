"""The verifier log libbpf printed (cut by its message buffer) is replaced by the full one."""

from __future__ import annotations

from node_runner.libbpf.objects import _with_full_log

CUT = ("libbpf: prog 'p': BPF program load failed: Permission denied\n"
       "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n0: R1=ctx()\n1: (b7) r0 = 0\n2: (bf) r1"
       "libbpf: prog 'p': failed to load: -13\n")
FULL = "0: R1=ctx()\n1: (b7) r0 = 0\n2: (bf) r1 = r10\ninvalid stack off=0\nprocessed 3 insns\n"


def test_cut_copy_is_replaced_and_the_messages_around_it_kept() -> None:
    log = _with_full_log(CUT, FULL)
    assert log == ("libbpf: prog 'p': BPF program load failed: Permission denied\n"
                   "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n" + FULL +
                   "-- END PROG LOAD LOG --\n"
                   "libbpf: prog 'p': failed to load: -13\n")


def test_whole_copy_is_replaced_once() -> None:
    printed = ("libbpf: -- BEGIN PROG LOAD LOG --\nshort\n-- END PROG LOAD LOG --\n"
               "libbpf: failed\n")
    assert _with_full_log(printed, FULL).count("-- BEGIN PROG LOAD LOG --") == 1
    assert FULL in _with_full_log(printed, FULL)


def test_no_full_log_keeps_what_was_printed() -> None:
    assert _with_full_log(CUT, "") == CUT
    assert _with_full_log("libbpf: other\n", FULL).endswith("-- END PROG LOAD LOG --\n")
