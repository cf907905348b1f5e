"""trace_tcpretrans on this kernel: a real retransmission inside a container's network namespace.

The receiver of a loopback connection drops every segment with a socket filter, so the client's
data is retransmitted from the retransmission timer, where the running task is not the client:
the record must still name the client's process (learned when it connected). A neighbour
container makes its own retransmission, which the container filter must hide.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.lossy_tcp import check_client_segment, check_neighbour_hidden, run_lossy

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]


@pytest.fixture(scope="module")
def gadget(built_gadgets: dict[str, Path]) -> Path:
    return built_gadgets["trace_tcpretrans"]


@pytest.mark.parametrize("family,host", [(4, "127.0.0.1"), (6, "::1")])
def test_retransmission_with_endpoints_state_and_owner(gadget: Path, family: int,
                                                       host: str) -> None:
    run = run_lossy(gadget, family, "a retransmission")
    mine = run.client_records()
    assert 1 <= len(mine) <= run.seen["retrans"] + 1, mine
    ev = mine[0]
    check_client_segment(run, ev, host)
    assert ev["error"] == ""
    assert ev["proc.tid"] == run.seen["pid"]
    check_neighbour_hidden(run)
