"""Durations in the policy: ``30s``, ``10m``, ``1h``, ``7d``, ``250ms`` or a number of seconds.

Also the one reading of a time filter (``--since 1h``, ``?since=2026-01-31T12:00:00Z``) that the
CLI and the console share: :func:`parse_when`.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["Duration", "parse_duration", "parse_when"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as 30s, 10m, 1h")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _PATTERN.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError("a duration is a number of seconds or a string such as 30s, 10m, 1h")


Duration = Annotated[float, BeforeValidator(parse_duration)]


def parse_when(text: str | None, now: float | None = None) -> int | None:
    """Epoch ms of a time filter: a duration back from now (``15m``) or an ISO 8601 time (UTC if bare).

    Raises ValueError with a message for the user.
    """
    if not text:
        return None
    now = time.time() if now is None else now
    try:
        return int((now - parse_duration(text)) * 1000)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r}: give a duration back from now (30m, 1h, 7d) or an ISO time") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)
