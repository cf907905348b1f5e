"""Timestamps in the exact textual forms Kubernetes uses.

Object timestamps are RFC 3339 with second precision (``metav1.Time``); log line prefixes use
nine fixed fractional digits like the kubelet's ``timeFormatOut``. Mixing them up breaks
``sinceTime`` arithmetic in clients, so both live here.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone


def rfc3339(epoch: float | None = None) -> str:
    """``metav1.Time`` text: second precision, UTC, ``Z`` suffix."""
    moment = time.time() if epoch is None else epoch
    return datetime.fromtimestamp(int(moment), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_timestamp(epoch_ns: int) -> str:
    """Kubelet log prefix: ``2006-01-02T15:04:05.000000000Z``."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


def parse_rfc3339_ns(text: str) -> int:
    """Parse RFC 3339 (any fractional precision, ``Z`` or offset) to epoch nanoseconds."""
    value = text.strip()
    if value.endswith("Z") or value.endswith("z"):
        value = value[:-1] + "+00:00"
    fraction = 0
    if "." in value:
        head, rest = value.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        fraction = int((digits + "000000000")[:9]) if digits else 0
        value = head + rest
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return int(moment.timestamp()) * 1_000_000_000 + fraction


def parse_rfc3339(text: str) -> float:
    return parse_rfc3339_ns(text) / 1e9


def age(created: str | None, now: float | None = None) -> str:
    """kubectl-style short age (``5s``, ``3m12s``, ``2h``, ``4d``)."""
    if not created:
        return "<unknown>"
    seconds = int((time.time() if now is None else now) - parse_rfc3339(created))
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"
