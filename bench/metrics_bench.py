"""What the metrics cost: updating them from audit-event batches, and rendering a scrape.

Compares, side by side in one run (rounds interleaved, medians reported):

* ``floor``: reading the same event fields into a plain dict counter, no
  histograms; what any implementation pays at least;
* ``in-house``: :class:`apishield.admin.request_metrics.RequestMetrics` on
  the admin registry (one lock per batch);
* ``prometheus_client``: the same families with ``prometheus_client``, once
  calling ``labels(...)`` per observation (the usual style) and once with
  the label children cached in a dict (the fastest way to use it).

Then a scrape of the state that left: the in-house renderer against
``prometheus_client.generate_latest`` over the same series.

``prometheus_client`` is not a dependency; install it to compare
(``pip install prometheus-client``), else those rows are skipped.

    .venv/bin/python bench/metrics_bench.py [--events 20000] [--rounds 7]

Figures are µs per event (per scrape) and ratios against the in-house
registry measured in the same run; the machine is shared, trust the ratios.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from apishield.admin.exposition import OPENMETRICS, TEXT_004, render
from apishield.admin.registry import Registry
from apishield.admin.request_metrics import REQUEST_BUCKETS, STAGE_BUCKETS, RequestMetrics

STAGES = [
    "audit",
    "response_headers",
    "security_headers",
    "hygiene",
    "route",
    "client_certificate",
    "authentication",
    "issued_tokens",
    "rate_limit",
    "authorization",
    "request_validation",
    "object_access",
    "response_validation",
    "forward",
]


def make_events(count: int, operations: int, seed: int = 7) -> list[dict[str, Any]]:
    """Events shaped like the audit stage's (only the members the metrics read matter)."""
    rng = random.Random(seed)
    ops = [f"operation{i}" for i in range(operations)]
    methods = ["GET", "GET", "GET", "PUT", "POST", "DELETE"]
    events = []
    for i in range(count):
        allowed = rng.random() < 0.9
        status = rng.choice([200, 200, 200, 201, 204]) if allowed else rng.choice([400, 401, 403, 429])
        decisions = [{"stage": "route", "outcome": "allow", "reason": "matched"}]
        if not allowed:
            decisions.append({"stage": rng.choice(STAGES[3:11]), "outcome": "deny", "reason": "refused"})
        events.append(
            {
                "class_uid": 6003,
                "action_id": 1 if allowed else 2,
                "disposition_id": 1 if allowed else 2,
                "api": {"operation": rng.choice(ops), "request": {"uid": f"r{i}"}},
                "http_request": {"http_method": rng.choice(methods), "url": {"path": f"/v1/items/{i}"}},
                "http_response": {"code": status, "latency": round(rng.lognormvariate(0.5, 1.0), 3)},
                "unmapped": {
                    "route": "/v1/items/{id}",
                    "stage_us": {s: int(rng.expovariate(1 / 6)) for s in STAGES},
                    "decisions": decisions,
                    "rate_limits": [{"id": "per-client", "allowed": status != 429, "remaining": 5}],
                },
            }
        )
    return events


def floor_tap() -> Callable[[list[dict[str, Any]]], None]:
    counts: dict[tuple[str, ...], int] = {}

    def tap(batch: list[dict[str, Any]]) -> None:
        for e in batch:
            response = e["http_response"]
            key = (
                e["api"]["operation"],
                e["http_request"]["http_method"],
                "allowed" if e["action_id"] == 1 else "denied",
                str(response["code"]),
            )
            counts[key] = counts.get(key, 0) + 1
            response.get("latency")
            unmapped = e["unmapped"]
            for _stage, _us in unmapped["stage_us"].items():
                pass
            for _d in unmapped["decisions"]:
                pass
            for _r in unmapped["rate_limits"]:
                pass

    return tap


def inhouse() -> tuple[Registry, Callable[[list[dict[str, Any]]], None]]:
    registry = Registry()
    return registry, RequestMetrics(registry)


def prom(cached: bool) -> tuple[Any, Callable[[list[dict[str, Any]]], None]]:
    import prometheus_client as pc

    registry = pc.CollectorRegistry()
    requests = pc.Counter(
        "apishield_requests",
        "Requests.",
        ("operation", "method", "decision", "status"),
        registry=registry,
    )
    duration = pc.Histogram(
        "apishield_request_duration_seconds",
        "Latency.",
        ("operation",),
        buckets=REQUEST_BUCKETS,
        registry=registry,
    )
    stages = pc.Histogram(
        "apishield_stage_duration_seconds", "Stages.", ("stage",), buckets=STAGE_BUCKETS, registry=registry
    )
    decisions = pc.Counter("apishield_stage_decisions", "Decisions.", ("stage", "outcome"), registry=registry)
    limits = pc.Counter("apishield_ratelimit_decisions", "Limits.", ("limit", "outcome"), registry=registry)

    if not cached:

        def tap(batch: list[dict[str, Any]]) -> None:
            for e in batch:
                op = e["api"]["operation"]
                response = e["http_response"]
                decision = "allowed" if e["action_id"] == 1 else "denied"
                requests.labels(op, e["http_request"]["http_method"], decision, str(response["code"])).inc()
                duration.labels(op).observe(response["latency"] / 1e3)
                unmapped = e["unmapped"]
                for stage, us in unmapped["stage_us"].items():
                    stages.labels(stage).observe(us / 1e6)
                for d in unmapped["decisions"]:
                    decisions.labels(d["stage"], d["outcome"]).inc()
                for r in unmapped["rate_limits"]:
                    limits.labels(r["id"], "allowed" if r["allowed"] else "refused").inc()

        return registry, tap

    children: dict[Any, Any] = {}

    def child(family: Any, *values: str) -> Any:
        key = (family, values)
        found = children.get(key)
        if found is None:
            found = children[key] = family.labels(*values)
        return found

    def tap_cached(batch: list[dict[str, Any]]) -> None:
        for e in batch:
            op = e["api"]["operation"]
            response = e["http_response"]
            decision = "allowed" if e["action_id"] == 1 else "denied"
            child(requests, op, e["http_request"]["http_method"], decision, str(response["code"])).inc()
            child(duration, op).observe(response["latency"] / 1e3)
            unmapped = e["unmapped"]
            for stage, us in unmapped["stage_us"].items():
                child(stages, stage).observe(us / 1e6)
            for d in unmapped["decisions"]:
                child(decisions, d["stage"], d["outcome"]).inc()
            for r in unmapped["rate_limits"]:
                child(limits, r["id"], "allowed" if r["allowed"] else "refused").inc()

    return registry, tap_cached


def per_event_us(
    tap: Callable[[list[dict[str, Any]]], None], events: list[dict[str, Any]], batch: int
) -> float:
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        tap(events[i : i + batch])
    return (time.perf_counter() - start) / len(events) * 1e6


def per_call_us(fn: Callable[[], Any], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--operations", type=int, default=30)
    parser.add_argument(
        "--batch", type=int, default=1000, help="events per tap call (the writer's batch_size)"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()

    try:
        from importlib.metadata import version

        import prometheus_client  # noqa: F401

        have_prom = True
        prom_version = version("prometheus-client")
    except ImportError:
        have_prom = False
        prom_version = "not installed"

    events = make_events(args.events, args.operations)
    update: dict[str, list[float]] = {"floor": [], "in-house": []}
    if have_prom:
        update["prometheus_client, labels() each time"] = []
        update["prometheus_client, cached children"] = []
    scrape: dict[str, list[float]] = {"in-house 0.0.4": [], "in-house OpenMetrics": []}
    if have_prom:
        scrape["prometheus_client 0.0.4"] = []
    series = 0
    for _ in range(args.rounds):
        update["floor"].append(per_event_us(floor_tap(), events, args.batch))
        registry, tap = inhouse()
        update["in-house"].append(per_event_us(tap, events, args.batch))
        scrape["in-house 0.0.4"].append(per_call_us(lambda r=registry: render(r, TEXT_004), args.scrapes))
        scrape["in-house OpenMetrics"].append(
            per_call_us(lambda r=registry: render(r, OPENMETRICS), args.scrapes)
        )
        series = render(registry).count(b"\n")
        if have_prom:
            from prometheus_client import generate_latest

            _, tap = prom(cached=False)
            update["prometheus_client, labels() each time"].append(per_event_us(tap, events, args.batch))
            preg, tap = prom(cached=True)
            update["prometheus_client, cached children"].append(per_event_us(tap, events, args.batch))
            scrape["prometheus_client 0.0.4"].append(
                per_call_us(lambda r=preg: generate_latest(r), args.scrapes)
            )

    print(
        f"{args.events:,} events ({len(STAGES)} stage timings, 1-2 decisions, 1 rate limit each), "
        f"{args.operations} operations, batches of {args.batch}, {args.rounds} rounds; "
        f"prometheus_client {prom_version}\n"
    )
    base = statistics.median(update["in-house"])
    print("| update, per event | µs (median) | min–max | ÷ in-house |")
    print("| --- | ---: | ---: | ---: |")
    for name, figures in update.items():
        med = statistics.median(figures)
        print(f"| {name} | {med:.2f} | {min(figures):.2f}–{max(figures):.2f} | {med / base:.2f} |")
    base = statistics.median(scrape["in-house 0.0.4"])
    print(f"\n| scrape ({series:,} lines) | µs (median) | min–max | ÷ in-house 0.0.4 |")
    print("| --- | ---: | ---: | ---: |")
    for name, figures in scrape.items():
        med = statistics.median(figures)
        print(f"| {name} | {med:,.0f} | {min(figures):,.0f}–{max(figures):,.0f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
