"""Admin test support: a loop in a thread to host the admin server, an exposition parser, events.

The admin server runs in an event loop of its own, in a daemon thread, as it
runs in the gateway's loop in production; tests talk to it over a real
socket with :func:`tests.support.http`.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class BatchWriter:
    """A stand-in for the audit writer's interface to metrics: taps it calls with batches, and stats."""

    def __init__(self) -> None:
        self.taps: list[Callable[[list[dict[str, Any]]], None]] = []
        self.stats = SimpleNamespace(written=0, spilled=0, replayed=0, dropped=0, queue_depth=0, sink_up=True)

    def deliver(self, batch: list[dict[str, Any]]) -> None:
        for tap in self.taps:
            tap(batch)
        self.stats.written += len(batch)


# -- the exposition format --------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


@dataclass
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Exposition:
    """A parsed scrape: the ``# TYPE`` of each family, its help, and every sample in order."""

    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    eof: bool = False

    def of(self, name: str, **labels: str) -> list[Sample]:
        return [
            s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        found = self.of(name, **labels)
        assert len(found) == 1, f"{name} {labels}: {len(found)} samples"
        return found[0].value

    def label_names(self, name: str) -> set[frozenset[str]]:
        return {frozenset(s.labels) for s in self.samples if s.name == name}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_exposition(text: str) -> Exposition:
    """Parse the Prometheus text format (0.0.4 or OpenMetrics); fails on any line it cannot read."""
    out = Exposition()
    lines = text.split("\n")
    assert lines[-1] == "", "the exposition must end with a line feed"
    for line in lines[:-1]:
        assert not out.eof, "nothing may follow # EOF"
        if line == "# EOF":
            out.eof = True
        elif line.startswith("# HELP "):
            name, _, text_ = line[7:].partition(" ")
            out.helps[name] = text_
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name not in out.types, f"{name} typed twice"
            out.types[name] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"unreadable sample line: {line!r}"
            labels: dict[str, str] = {}
            body = match.group(3) or ""
            position = 0
            while position < len(body):
                label = _LABEL.match(body, position)
                assert label, f"unreadable labels in {line!r}"
                labels[label.group(1)] = _unescape(label.group(2))
                position = label.end()
            raw = match.group(4)
            value = float("inf") if raw == "+Inf" else float(raw)
            out.samples.append(Sample(match.group(1), labels, value))
    return out


# -- events ---------------------------------------------------------------------------------------


def event(
    operation: str,
    method: str,
    path: str,
    status: int,
    latency_ms: float,
    *,
    allowed: bool = True,
    route: str | None = None,
    stage_us: dict[str, int] | None = None,
    decisions: list[dict[str, Any]] | None = None,
    rate_limits: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An OCSF API Activity event with the members the metrics read (see apishield.audit.event)."""
    unmapped: dict[str, Any] = {"instance": "test"}
    if route is not None:
        unmapped["route"] = route
    if stage_us is not None:
        unmapped["stage_us"] = stage_us
    if decisions is not None:
        unmapped["decisions"] = decisions
    if rate_limits is not None:
        unmapped["rate_limits"] = rate_limits
    return {
        "class_uid": 6003,
        "action_id": 1 if allowed else 2,
        "disposition_id": 1 if allowed else 2,
        "status_code": str(status),
        "api": {"operation": operation, "request": {"uid": "r"}, "response": {"code": status}},
        "http_request": {"http_method": method, "url": {"path": path, "scheme": "http"}},
        "http_response": {"code": status, "latency": latency_ms, "length": 2},
        "unmapped": unmapped,
    }
