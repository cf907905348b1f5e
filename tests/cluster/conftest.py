"""Fixtures for cluster-layer tests: a fake API server plus process-kubelet per test.

``fake_cluster`` gives a started :class:`~tests.cluster.fakekube.FakeCluster` with three nodes
(node-a, node-b, node-c); ``make_fake_cluster`` builds one with other nodes or kubelet options.
Teardown raises if any container process survived or the harness hit an internal error.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cluster.fakekube import FakeCluster


@pytest.fixture
def make_fake_cluster() -> Iterator[Callable[..., FakeCluster]]:
    """Factory: ``make_fake_cluster(nodes=[...], images={...}, **kubelet_options)``."""
    started: list[FakeCluster] = []

    def make(**options: Any) -> FakeCluster:
        cluster = FakeCluster(**options).start()
        started.append(cluster)
        return cluster

    yield make
    failures = []
    for cluster in reversed(started):
        try:
            cluster.stop()
        except AssertionError as exc:
            failures.append(str(exc))
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture
def fake_cluster(make_fake_cluster: Callable[..., FakeCluster]) -> FakeCluster:
    """A running fake cluster: apiserver + kubelet with nodes node-a, node-b, node-c."""
    return make_fake_cluster()


@pytest.fixture
def kubectl_available() -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("the real kubectl binary is not on PATH")


# End-to-end product fixtures (real client, real runners, real eBPF): see product_fixtures.py.
from tests.cluster.product_fixtures import (  # noqa: E402
    gadget_cluster,
    make_gadget_cluster,
    no_runner_leftovers,
)

__all__ = ["gadget_cluster", "make_gadget_cluster", "no_runner_leftovers"]
