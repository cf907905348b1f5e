"""trace_tcpdrop on this kernel: TCP segments dropped by a socket filter inside a container.

The receiver of a loopback connection drops every segment with a classic BPF socket filter;
the kernel frees them with SKB_DROP_REASON_SOCKET_FILTER. The record must carry that reason by
name, the segment's endpoints and flags, the receiving socket's state and owner. A neighbour
container's drops must be hidden by the container filter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.lossy_tcp import check_client_segment, check_neighbour_hidden, run_lossy

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]


@pytest.fixture(scope="module")
def gadget(built_gadgets: dict[str, Path]) -> Path:
    return built_gadgets["trace_tcpdrop"]


@pytest.mark.parametrize("family,host", [(4, "127.0.0.1"), (6, "::1")])
def test_socket_filter_drop_with_reason_endpoints_and_owner(gadget: Path, family: int,
                                                            host: str) -> None:
    run = run_lossy(gadget, family, "a drop")
    mine = run.client_records()
    assert mine
    ev = mine[0]
    assert ev["reason"] == "SKB_DROP_REASON_SOCKET_FILTER"
    # state and owner are the receiving socket's: accepted by the workload's listener
    check_client_segment(run, ev, host)
    check_neighbour_hidden(run)
