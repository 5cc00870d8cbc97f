#!/usr/bin/env python3
"""Audit trail throughput per sink, against building and encoding the events alone (same run).

    python bench/audit_sink_bench.py [--events 30000] [--rounds 5] [--no-postgres]

Every configuration does the same per-event work on the request side: build
the OCSF event from a finished exchange (``build_api_activity``, as the audit
stage does) and, except for the baseline, ``emit`` it into the queue. The
baseline stops there and encodes the event with ``orjson.dumps``: the floor
any writer has to pay. The others run the real writer with a real sink and
are timed from the first event to the return of ``stop()``, when every event
is stored; the producer yields to the loop every 200 events, as requests do.

* events/s: events divided by wall time (median of the rounds);
* CPU µs/event: process CPU (all threads: the loop, SQLite's thread, fsyncs
  waited for are not CPU) divided by events;
* × baseline: events/s divided by the baseline's, median of the per-round
  ratios (rounds interleave the configurations, so a noisy neighbour hits
  them alike).

The writers use the policy defaults (flush every 0.2 s, batches of 1,000)
unless the name says otherwise. The producer here emits far faster than
requests arrive, so the queue holds thousands of events and Python's cyclic
garbage collector, which rescans every live container, takes a visible
share of the CPU; a shorter flush interval keeps fewer events alive.

``acknowledged`` runs 64 concurrent "requests" that each emit and then
``await writer.durable()`` (group commit: one fsync of the journal for all
those waiting). PostgreSQL runs when 127.0.0.1:5432 answers
(``APISHIELD_BENCH_POSTGRES``, default the test DSN), in a schema of its own
that is dropped at the end. Each round starts from an empty store.
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
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

from apishield.audit.event import build_api_activity
from apishield.audit.journal import Journal
from apishield.audit.sinks import Sink
from apishield.audit.sinks.jsonl import JSONLSink
from apishield.audit.sinks.postgres import PostgresSink
from apishield.audit.sinks.sqlite import SQLiteSink
from apishield.audit.writer import AuditWriter
from apishield.auth.principal import Principal
from apishield.auth.rfc6750 import Forbidden
from apishield.core.exchange import Exchange, Reply, RequestHead

POSTGRES = os.environ.get("APISHIELD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def exchanges(n: int = 500) -> list[Exchange]:
    """Finished exchanges of a customer API: 90% allowed reads and updates, 10% denied."""
    out = []
    for i in range(n):
        method = "PUT" if i % 4 == 0 else "GET"
        head = RequestHead(
            method,
            f"/customers/{i}".encode(),
            b"",
            [(b"host", b"api.example.test"), (b"user-agent", b"bench/1.0")],
            client=(f"198.51.100.{i % 200 + 1}", 40000 + i),
            server=("127.0.0.1", 8080),
        )
        ex = Exchange(head, f"req-{i:06d}", time.perf_counter_ns())
        ex.operation = SimpleNamespace(  # type: ignore[assignment]
            operation_id="updateCustomer" if method == "PUT" else "getCustomer",
            template="/customers/{customerId}",
        )
        ex.path_params = {"customerId": str(i)}
        ex.principal = Principal(
            method="bearer",
            subject=f"user-{i % 50}",
            client_id=("mobile-app", "web-portal", "partner-sync")[i % 3],
            issuer="https://issuer.example.test",
            scopes=frozenset({"customers:read", "customers:write"}),
            token_id=f"token-{i}",
        )
        ex.decide("authentication", "allow", "bearer token verified")
        if i % 10 == 0:
            problem = Forbidden(detail="not the owner")
            ex.decide("authorization", "deny", "not the owner", rule="owner")
            ex.reply = Reply(403, [], problem.body(ex.request_id), problem=problem)
        else:
            ex.decide("authorization", "allow", "owner", rule="owner")
            ex.reply = Reply(200, [], b'{"id": 1, "name": "A. Customer"}', from_upstream=True)
        ex.stage_ns = {"route": 2000, "authentication": 9000, "authorization": 3000}
        out.append(ex)
    return out


STAGE_US = {"route": 2, "authentication": 9, "authorization": 3}


def baseline(pool: list[Exchange], n: int) -> int:
    size = 0
    for i in range(n):
        size += len(orjson.dumps(build_api_activity(pool[i % len(pool)], "bench", STAGE_US)))
    return size


async def buffered(pool: list[Exchange], n: int, sink: Sink, folder: Path, **options: Any) -> None:
    from apishield.core.stages.audit import AuditQueue

    queue = AuditQueue()
    writer = AuditWriter(queue, sink, Journal(folder / "journal"), instance="bench", **options)
    await writer.start()
    for i in range(n):
        queue.emit(build_api_activity(pool[i % len(pool)], "bench", STAGE_US))
        if i % 200 == 199:
            await asyncio.sleep(0)
    await writer.stop()
    assert writer.stats.written == n and writer.stats.dropped == 0, writer.stats


async def acknowledged(pool: list[Exchange], n: int, sink: Sink, folder: Path) -> None:
    from apishield.core.stages.audit import AuditQueue

    queue = AuditQueue()
    writer = AuditWriter(
        queue, sink, Journal(folder / "journal"), instance="bench", durability="acknowledged"
    )
    await writer.start()
    numbers = iter(range(n))

    async def request() -> None:
        for i in numbers:
            queue.emit(build_api_activity(pool[i % len(pool)], "bench", STAGE_US))
            await writer.durable()

    await asyncio.gather(*(request() for _ in range(64)))
    await writer.stop()
    assert writer.stats.written == n and writer.stats.acknowledged == n, writer.stats


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


async def drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    n = args.events
    pool = exchanges()
    root = Path(tempfile.mkdtemp(prefix="apishield-audit-bench-"))
    schema = f"apishield_bench_{os.urandom(4).hex()}"
    with_pg = not args.no_postgres and reachable("127.0.0.1", 5432)

    def run(coro: Callable[[Path], Coroutine[Any, Any, None]]) -> Callable[[], None]:
        folder = Path(tempfile.mkdtemp(dir=root))  # each round starts from an empty store
        return lambda: asyncio.run(coro(folder))

    configs: dict[str, Callable[[], Callable[[], Any]]] = {
        "build + orjson.dumps (baseline)": lambda: lambda: baseline(pool, n),
        "writer → SQLite": lambda: run(lambda f: buffered(pool, n, SQLiteSink(f / "a.db"), f)),
        "writer → SQLite, flush_interval 20 ms": lambda: run(
            lambda f: buffered(pool, n, SQLiteSink(f / "a.db"), f, flush_interval=0.02)
        ),
        "writer → SQLite, tamper evidence": lambda: run(
            lambda f: buffered(pool, n, SQLiteSink(f / "a.db"), f, tamper_evidence=True)
        ),
        "writer → JSON lines": lambda: run(lambda f: buffered(pool, n, JSONLSink(f / "a.jsonl"), f)),
        "writer → SQLite, acknowledged (64 concurrent)": lambda: run(
            lambda f: acknowledged(pool, n, SQLiteSink(f / "a.db", durable=True), f)
        ),
    }
    if with_pg:
        configs["writer → PostgreSQL"] = lambda: run(
            lambda f: buffered(pool, n, PostgresSink(f"{POSTGRES}?schema={schema}"), f)
        )
    walls: dict[str, list[float]] = {name: [] for name in configs}
    cpus: dict[str, list[float]] = {name: [] for name in configs}
    ratios: dict[str, list[float]] = {name: [] for name in configs}
    try:
        for round_ in range(args.rounds):
            base_wall = 0.0
            for name, make in configs.items():
                if name.startswith("writer → PostgreSQL"):
                    asyncio.run(drop_schema(schema))
                wall, cpu = timed(make())
                walls[name].append(wall)
                cpus[name].append(cpu)
                if name.endswith("(baseline)"):
                    base_wall = wall
                ratios[name].append(base_wall / wall)
            print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if with_pg:
            asyncio.run(drop_schema(schema))
    print(f"\n{n:,} events per round, {args.rounds} rounds, medians; {os.cpu_count()} CPUs\n")
    print("| configuration | events/s | CPU µs/event | × baseline (events/s) |")
    print("| --- | ---: | ---: | ---: |")
    for name in configs:
        rate = n / statistics.median(walls[name])
        cpu = statistics.median(cpus[name]) / n * 1e6
        print(f"| {name} | {rate:,.0f} | {cpu:.1f} | {statistics.median(ratios[name]):.2f} |")
    if not with_pg:
        print("\n(PostgreSQL not measured: 127.0.0.1:5432 did not answer, or --no-postgres)")


if __name__ == "__main__":
    main()
