"""fakekube: a strict fake Kubernetes API server plus a process-kubelet, for cluster tests.

Test layer 3 (docs/architecture.md): no kube-apiserver can run here, so this package serves
the core/v1 API over real HTTP (official client and real ``kubectl`` both work unchanged) and
runs each runner pod's container as a real process on this machine.

Entry point: :class:`FakeCluster` (or the ``fake_cluster`` fixture in tests/cluster/conftest.py).
"""

from .apiserver import FakeApiServer, RecordedRequest
from .cluster import DEFAULT_NODES, FakeCluster, HarnessError
from .kubelet import Kubelet, NodeSpec, TargetRuntime
from .runtime import ImageEntry, ImageTable

__all__ = [
    "DEFAULT_NODES",
    "FakeApiServer",
    "FakeCluster",
    "HarnessError",
    "ImageEntry",
    "ImageTable",
    "Kubelet",
    "NodeSpec",
    "RecordedRequest",
    "TargetRuntime",
]
