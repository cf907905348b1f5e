"""Fixtures of the dist tests: the fakekube product fixtures, for the runner-image tests that
run a cluster. The runner image itself (`runner_layout`, `runner_rootfs`, built once per
session) comes from tests/runner_image.py through tests/conftest.py.
"""

from __future__ import annotations

from tests.cluster.conftest import (  # noqa: F401  (fixtures shared with these tests)
    make_fake_cluster,
    make_gadget_cluster,
    no_runner_leftovers,
)
from tests.registry.conftest import registry  # noqa: F401  (the session registry, shared here)
