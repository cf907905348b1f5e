"""Numeric flag types: every number a user gives is finite and within its range, else exit 2.

One job: click parameter types for seconds and counts that refuse `nan`, `inf`, `1e309`,
negative or zero durations and absurd sizes with a usage error naming the range, before any
runner starts. The trap avoided: `float()` accepting `nan`/`inf` (a run that never stops, a
pod deadline that cannot be an integer) and `int` ranges checked, or not, in several places.
"""

from __future__ import annotations

import math
from typing import Any

import click

# Ten years: longer than any run, and still an integer number of seconds Kubernetes accepts.
MAX_SECONDS = 315_360_000
MAX_COUNT = 2**31 - 1


class Seconds(click.ParamType):
    """A finite number of seconds, > 0 and <= MAX_SECONDS."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value) and 0 < value <= MAX_SECONDS:
            return value
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or not 0 < seconds <= MAX_SECONDS:
            self.fail(f"{value!r} is not a number of seconds in (0, {MAX_SECONDS}]", param, ctx)
        return seconds


class Count(click.ParamType):
    """A whole number in [minimum, maximum]."""

    name = "count"

    def __init__(self, minimum: int = 0, maximum: int = MAX_COUNT) -> None:
        self.minimum, self.maximum = minimum, maximum

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value), 10)
            except ValueError:
                self.fail(f"{value!r} is not a whole number", param, ctx)
        if not self.minimum <= number <= self.maximum:
            self.fail(f"{value!r} is not in [{self.minimum}, {self.maximum}]", param, ctx)
        return number


SECONDS = Seconds()
