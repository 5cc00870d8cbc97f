#!/usr/bin/env python3
"""Events/s per audit sink alone: prepared events written in batches, against encoding them (same run).

    python bench/audit_sink_only_bench.py [--events 30000] [--rounds 5] [--batch 1000] [--no-postgres]

``audit_sink_bench.py`` measures the whole writer (building events, the queue, the
writer's tasks); this one measures what a sink itself sustains, the figure to set
beside the raw library figures (SQLite ``executemany``, asyncpg ``COPY``). The events
are built once, before timing, by ``build_api_activity`` from realistic exchanges
(about 1.45 KB of JSON each). Each configuration then, per batch of ``--batch``
events, encodes them with ``orjson`` (as the writer does) and calls the sink's
``write``; the baseline only encodes. Rounds interleave the configurations and every
round starts from an empty store; medians are printed, with events/s, the process's
CPU µs per event (for SQLite that includes its thread; PostgreSQL's server work is
elsewhere) and the ratio to the baseline's events/s in the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from audit_sink_bench import exchanges

from apishield.audit.event import build_api_activity
from apishield.audit.record import encode
from apishield.audit.sinks import Sink
from apishield.audit.sinks.jsonl import JSONLSink
from apishield.audit.sinks.postgres import PostgresSink
from apishield.audit.sinks.sqlite import SQLiteSink

POSTGRES = os.environ.get("APISHIELD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


async def write_all(sink: Sink | None, events: list[dict[str, Any]], batch: int) -> None:
    for i in range(0, len(events), batch):
        part = events[i : i + batch]
        encoded = [encode(e)[1] for e in part]
        if sink is not None:
            await sink.write(part, encoded)


async def measure(
    make: Callable[[Path], Awaitable[Sink | None]], events: list[dict[str, Any]], batch: int
) -> tuple[float, float]:
    folder = Path(tempfile.mkdtemp(prefix="apishield-sink-"))
    try:
        sink = await make(folder)
        wall, cpu = time.perf_counter(), time.process_time()
        await write_all(sink, events, batch)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if sink is not None:
            await sink.close()
        return len(events) / wall, 1e6 * cpu / len(events)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    pool = exchanges()
    events = [build_api_activity(pool[i % len(pool)], "bench") for i in range(args.events)]
    schema = f"bench_sink_{os.getpid()}"

    async def none(folder: Path) -> Sink | None:
        return None

    async def sqlite(folder: Path) -> Sink | None:
        sink = SQLiteSink(folder / "audit.db")
        await sink.open()
        return sink

    async def jsonl(folder: Path) -> Sink | None:
        sink = JSONLSink(folder / "audit.jsonl")
        await sink.open()
        return sink

    async def postgres(folder: Path) -> Sink | None:
        sink = PostgresSink(f"{POSTGRES}?schema={schema}")
        await sink.open()
        return sink

    configs: dict[str, Callable[[Path], Awaitable[Sink | None]]] = {
        "encode only (baseline)": none,
        "JSON lines": jsonl,
        "SQLite": sqlite,
    }
    if not args.no_postgres and reachable("127.0.0.1", 5432):
        configs["PostgreSQL (COPY)"] = postgres
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        measured = {name: await measure(make, events, args.batch) for name, make in configs.items()}
        base_rate = measured["encode only (baseline)"][0]
        for name, (rate, cpu) in measured.items():
            results[name].append((rate, cpu, rate / base_rate))
    if "PostgreSQL (COPY)" in configs:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES)
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
    print(f"{args.events:,} events of ~1.45 KB, batches of {args.batch}, {args.rounds} rounds, medians\n")
    print("| sink | events/s | CPU µs/event | ÷ baseline (events/s) |")
    print("| --- | ---: | ---: | ---: |")
    for name, rows in results.items():
        rate = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        ratio = statistics.median(r[2] for r in rows)
        print(f"| {name} | {rate:,.0f} | {cpu:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
