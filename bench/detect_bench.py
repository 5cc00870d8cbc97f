#!/usr/bin/env python3
"""The detection engine's cost per audit event, against a baseline loop over the same events, in one run.

    python bench/detect_bench.py [--users 2000] [--rounds 5] [--batch 256] [--detectors]

Target (issue "detection of unusual access patterns"): at most 5 µs per event for the
detectors. The events are one simulated day of the reference traffic with its attack
scenarios (``apishield simulate``), generated once, in time order. Each round runs, in a
rotating order, over the same events in batches of ``--batch``:

* **baseline**: a loop that reads each event's ``time``, ``actor`` and ``http_response``:
  the least any consumer of the stream does;
* **facts**: :func:`apishield.detect.facts.extract` alone;
* **engine**: a new :class:`~apishield.detect.engine.DetectionEngine` with every detector,
  timed by the engine itself (total time in ``observe`` over events).

Two kinds of events:

* **fresh**: each batch is decoded from its JSON lines (``orjson``) just before the timed
  pass (the decoding is not timed), as a stream runner or a replay sees events: every
  dict and string a new object, recently touched;
* **cold**: the whole day decoded in advance and then walked batch by batch: by the time a
  batch is judged its events have left the CPU caches. The worst case, as a backlog.

The machine may be shared: read the ratios to the baseline, which move much less than
the microseconds.
``--detectors`` adds one engine per detector (that detector alone), reported as the
difference to an engine with none (extraction and the principal table only).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import orjson

from apishield.config.detectors import DetectorsPolicy
from apishield.detect.engine import DetectionEngine
from apishield.detect.facts import extract
from apishield.detect.signal import DETECTORS
from apishield.detect.simulate import events

Event = dict[str, Any]


def baseline(batch: list[Event]) -> int:
    total = 0
    for event in batch:
        total += event["time"]
        actor = event.get("actor")
        response = event.get("http_response")
        if actor is not None and response is not None:
            total += 1
    return total


def facts(batch: list[Event]) -> int:
    n = 0
    for event in batch:
        if extract(event) is not None:
            n += 1
    return n


Chunks = list[list[Event]] | list[list[bytes]]


def _batches(chunks: Chunks) -> Iterator[list[Event]]:
    """Each batch of events; a batch of JSON lines is decoded first (not timed)."""
    loads = orjson.loads
    for chunk in chunks:
        if chunk and isinstance(chunk[0], bytes):
            yield [loads(line) for line in chunk]
        else:
            yield chunk  # type: ignore[misc]


def timed(fn: Callable[[list[Event]], object], chunks: Chunks) -> float:
    """µs per event of ``fn`` over every chunk."""
    clock = time.perf_counter_ns
    spent = 0
    count = 0
    for batch in _batches(chunks):
        started = clock()
        fn(batch)
        spent += clock() - started
        count += len(batch)
    return spent / count / 1000


def engine_cost(policy: DetectorsPolicy, chunks: Chunks) -> tuple[float, int]:
    engine = DetectionEngine(policy)
    signals = 0
    for batch in _batches(chunks):
        signals += len(engine.observe(batch))
    return engine.stats().us_per_event, signals


def only(name: str | None) -> DetectorsPolicy:
    return DetectorsPolicy(**{d: {"enabled": d == name} for d in DETECTORS})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--detectors", action="store_true", help="also time each detector alone")
    args = parser.parse_args()

    print(f"generating one simulated day, {args.users} users, seed {args.seed}...", file=sys.stderr)
    lines = [orjson.dumps(e) for e, _ in events(users=args.users, days=1, seed=args.seed)]
    cold = [orjson.loads(line) for line in lines]
    size = args.batch
    chunked: dict[str, Chunks] = {
        "fresh": [lines[i : i + size] for i in range(0, len(lines), size)],
        "cold": [cold[i : i + size] for i in range(0, len(cold), size)],
    }
    kinds = list(chunked)
    gc.collect()
    gc.freeze()  # the generated events are long-lived: keep the collector from walking them

    rows: dict[tuple[str, str], list[float]] = {}
    signals: dict[str, int] = {}
    work: list[tuple[str, str, Callable[[Chunks], float]]] = []
    for kind in kinds:
        work.append((kind, "baseline loop", lambda c: timed(baseline, c)))
        work.append((kind, "facts only", lambda c: timed(facts, c)))

        def full(c: Chunks, kind: str = kind) -> float:
            cost, n = engine_cost(DetectorsPolicy(), c)
            signals[kind] = n
            return cost

        work.append((kind, "engine, all detectors", full))
        if args.detectors:
            work.append((kind, "engine, no detector", lambda c: engine_cost(only(None), c)[0]))
            for name in DETECTORS:
                work.append((kind, f"+ {name}", lambda c, name=name: engine_cost(only(name), c)[0]))
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
        shift = r % len(work)
        for kind, label, fn in work[shift:] + work[:shift]:
            rows.setdefault((kind, label), []).append(fn(chunked[kind]))

    print(
        f"Detection engine, one simulated day: {len(lines):,} events ({args.users:,} users, "
        f"seed {args.seed}), batches of {args.batch}, {args.rounds} rounds; Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at the end.\n"
    )
    for kind in kinds:
        base = statistics.median(rows[(kind, "baseline loop")])
        none = statistics.median(rows[(kind, "engine, no detector")]) if args.detectors else None
        print(f"Events {kind} ({signals.get(kind, 0)} signals in each engine run with every detector):\n")
        print("| pass | µs/event (median) | min–max | × baseline |")
        print("| --- | ---: | ---: | ---: |")
        for (k, label), values in rows.items():
            if k != kind:
                continue
            med = statistics.median(values)
            shown = med - none if none is not None and label.startswith("+ ") else med
            print(f"| {label} | {shown:.2f} | {min(values):.2f}–{max(values):.2f} | {shown / base:.1f} |")
        print()
    if args.detectors:
        print("Rows `+ detector`: an engine with that detector alone, less the engine with none.")


if __name__ == "__main__":
    main()
