"""Map iterators (GADGET_MAPITER): each `array` record holds exactly one interval's counts.

tests/data/gadgets/top_opens counts openat(2) per (mount namespace, comm) in a hash, an LRU
hash and a per-CPU hash map, and the total in an array map. A workload in its own mount
namespace opens a file exactly N times when told to, right after the runner emitted a fetch;
the next fetch must show N in every map (per-CPU copies summed; split over two consecutive
fetches if one fell among the opens), and the fetch after that no row for it at all, since the
runner empties the maps as it reads them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_GADGETS_SRC, needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, python_argv
from tests.workloads import ContainerWorkload, run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

COMM = "topwork"
N = 37
DATASOURCES = ("opens", "opens_lru", "opens_percpu")
# Names itself, then opens a file as many times as each stdin line says and answers "ok".
WORKLOAD = (
    "import ctypes, sys\n"
    f"ctypes.CDLL(None).prctl(15, b'{COMM}', 0, 0, 0)\n"
    "print('ready', flush=True)\n"
    "for line in sys.stdin:\n"
    "    for _ in range(int(line)):\n"
    "        open('/etc/hostname').close()\n"
    "    print('ok', flush=True)\n"
)


@pytest.fixture
def opener() -> Iterator[ContainerWorkload]:
    with run_in_container(python_argv(WORKLOAD), stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as w:
        assert w.process.stdout is not None
        assert w.process.stdout.readline() == b"ready\n"
        yield w


def _ask(w: ContainerWorkload, n: int) -> None:
    assert w.process.stdin is not None and w.process.stdout is not None
    w.process.stdin.write(f"{n}\n".encode())
    w.process.stdin.flush()
    assert w.process.stdout.readline() == b"ok\n"


def _array(runner: RunnerProcess, ds: str, fetch: int) -> list[dict[str, object]]:
    rec = runner.wait_for(lambda r: r.get("type") == "array" and r["ds"] == ds
                          and r["fetch"] == fetch, timeout=30, what=f"{ds} fetch {fetch}")
    return rec["data"]  # type: ignore[no-any-return]


def test_each_fetch_holds_one_interval(build_gadget, opener: ContainerWorkload) -> None:  # type: ignore[no-untyped-def]
    gadget: Path = build_gadget(TEST_GADGETS_SRC / "top_opens")
    with RunnerProcess(gadget, "--mntns", str(opener.mntns_id),
                       "--map-fetch-interval", "1") as runner:
        schema = runner.wait_schema()
        assert schema["kind"] == "array"
        _ask(opener, 1)  # warm up: anything the workload opens lazily happens now
        for ds in (*DATASOURCES, "opens_total"):  # fetch 1 is over for every map
            _array(runner, ds, 1)
        before = max(a["fetch"] for a in runner.of_type("array"))
        _ask(opener, N)
        # The opens take a millisecond, right after a fetch: they land in the next fetch, or
        # the one after if this test was slow to read; a loaded machine can even let a fetch
        # fall among them, splitting them over two consecutive fetches. Either way no fetch
        # after them has a row for them (the maps were emptied as they were read).
        arrays = {(ds, k): _array(runner, ds, k) for ds in (*DATASOURCES, "opens_total")
                  for k in range(before + 1, before + 4)}
        assert runner.stop() == 0, runner.stderr()
        end = runner.end()

    for ds in (*DATASOURCES, "opens_total"):
        mine = {k: [r for r in arrays[ds, k] if r.get("comm", COMM) == COMM]
                for k in range(before + 1, before + 4)}
        hits = [k for k, rows in mine.items() if rows]
        assert hits in ([before + 1], [before + 2], [before + 1, before + 2]), (ds, mine)
        assert all(len(mine[k]) == 1 for k in hits), (ds, mine)
        assert sum(mine[k][0]["opens"] for k in hits) == N, (ds, mine)
        assert not mine[before + 3], (ds, mine)
        if ds != "opens_total":
            assert all((mine[k][0]["mntns_id"], mine[k][0]["last_pid"])
                       == (opener.mntns_id, opener.pid) for k in hits), (ds, mine)
    assert (end["reason"], end["exit_code"], end["dropped"]) == ("signal", 0, 0)


def test_fetch_count_ends_the_run(build_gadget) -> None:  # type: ignore[no-untyped-def]
    gadget: Path = build_gadget(TEST_GADGETS_SRC / "top_opens")
    with RunnerProcess(gadget, "--map-fetch-interval", "0.2", "--map-fetch-count", "3") as runner:
        assert runner.wait(60) == 0, runner.stderr()
    arrays = runner.of_type("array")
    assert sorted({(a["ds"], a["fetch"]) for a in arrays}) == sorted(
        (ds, n) for ds in (*DATASOURCES, "opens_total") for n in (1, 2, 3))
    assert runner.end()["reason"] == "finished"
