"""Golden-file comparison shared by the output, protocol and pod-spec tests.

`UPDATE_GOLDEN=1` rewrites the file (review the diff before committing); otherwise a missing
golden fails the test (it never passes by creating one), and a mismatch fails with a diff.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest


def check_golden(path: Path, actual: str) -> None:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"golden file {path} is missing; create it with UPDATE_GOLDEN=1 and review it")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            f"{path.name} (golden)", f"{path.name} (actual)"))
        pytest.fail(f"output differs from {path} (UPDATE_GOLDEN=1 to accept):\n{diff}")
