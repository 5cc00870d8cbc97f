#!/usr/bin/env python3
"""Rate-limit benchmark: the memory limiter per decision, and the gateway with Redis versus memory.

Part 1, in process (``--micro``; no server needed). 10,000 keys cycled round robin under a
limit that never trips (the allowed path), then one hot key far over its limit (the refused
path). Measured side by side in the same run:

* ``plain dict GCRA (floor)``: the hand-written GCRA on a dict of floats that
  ``shared/reference/deps-bench.md`` §3a calls the floor;
* ``MemoryStore.decide``: apishield's limiter, given a prepared call (the target: ≤ 2 µs);
* ``stage path``: what the pipeline spends per request with one limit keyed on ``client_ip``:
  reading the key, building the call, deciding, and writing the RateLimit fields.

Part 2, the gateway (``--gateway``; needs wrk and redis-server). ``apishield serve`` (1 worker)
in front of ``bench/upstream.py``, PUT ``/v1/customers/1`` as in ``bench/gateway_bench.py``, whose
helpers are reused, three ways: no limits, two limits in the memory store, the same two limits in
a Redis store (a private redis-server on a free port). The limits never trip (every answer is
200), so the figures are the cost of deciding. Ratio Redis ÷ memory against the target 0.6.

Both parts by default. Every process is started here and stopped here, as in gateway_bench.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import gateway_bench as gb  # noqa: E402  (the gateway benchmark's helpers)

TARGET_DECISION_US = 2.0
TARGET_REDIS_OVER_MEMORY = 0.6
KEYS = 10_000


# -- part 1: in process -----------------------------------------------------------------------------


def _floor_gcra() -> Any:
    tats: dict[str, float] = {}

    def allow(key: str, now: float, interval: float = 0.001, tolerance: float = 1000.0) -> bool:
        tat = tats.get(key, now)
        if tat < now:
            tat = now
        new = tat + interval
        if new - tolerance > now:
            return False
        tats[key] = new
        return True

    return allow


def _time_per_op(run: Any, ops: int, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        run()
        out.append((time.perf_counter_ns() - start) / ops / 1000)
    return out


def micro(ops: int, repeats: int) -> dict[str, dict[str, float]]:
    from apishield.ratelimit.gcra import LimitCall, MemoryStore

    keys = [f"client-{i}" for i in range(KEYS)]
    seq = [keys[i % KEYS] for i in range(ops)]
    now = time.monotonic()
    results: dict[str, dict[str, float]] = {}

    floor = _floor_gcra()

    def run_floor() -> None:
        for key in seq:
            floor(key, now)

    store = MemoryStore()
    calls = [[LimitCall(k, 0.001, 1000.0, 1)] for k in keys]
    call_seq = [calls[i % KEYS] for i in range(ops)]
    decide = store.decide

    def run_store() -> None:
        for call in call_seq:
            decide(call, now)

    hot_store = MemoryStore()
    hot = [LimitCall("hot", 1.0, 1.0, 1)]
    hot_floor = _floor_gcra()

    def run_hot_store() -> None:
        for _ in range(ops):
            hot_store.decide(hot, now)

    def run_hot_floor() -> None:
        for _ in range(ops):
            hot_floor("hot", now, 1.0, 1.0)

    stage_run, stage_baseline = _stage_path(ops)
    cases = [
        ("plain dict GCRA (floor), allowed", run_floor),
        ("MemoryStore.decide, allowed", run_store),
        ("plain dict GCRA (floor), refused", run_hot_floor),
        ("MemoryStore.decide, refused", run_hot_store),
        ("stage path (key, call, decide, headers), allowed", stage_run),
    ]
    for _, run in cases:
        run()  # warm-up
    stage_baseline()
    base = statistics.median(_time_per_op(stage_baseline, ops, repeats))
    for name, run in cases:
        times = _time_per_op(run, ops, repeats)
        if name.startswith("stage path"):
            times = [t - base for t in times]
        results[name] = {"us_median": statistics.median(times), "us_min": min(times), "us_max": max(times)}
    return results


def _stage_path(ops: int) -> tuple[Any, Any]:
    """One early rate-limit stage, head and reply, over prepared exchanges from 10,000 addresses."""
    from apishield.config.model import Config
    from apishield.core.client_ip import TrustedProxies
    from apishield.core.exchange import Exchange, Reply, RequestHead
    from apishield.core.stages.rate_limit import EarlyRateLimitStage
    from apishield.openapi.compile import Operation
    from apishield.ratelimit.plan import compile_rate_limits

    config = Config.model_validate(
        {
            "openapi": "x",
            "upstream": "http://127.0.0.1:1",
            "rate_limits": {"limits": [{"id": "per-ip", "key": "client_ip", "rate": "1000/ms"}]},
        }
    )
    plan = compile_rate_limits(config, ["op"], TrustedProxies())
    stage = EarlyRateLimitStage(plan)
    operation = Operation.__new__(Operation)
    object.__setattr__(operation, "operation_id", "op")
    heads = [
        RequestHead("GET", b"/", b"", [], client=(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 1))
        for i in range(KEYS)
    ]

    def run() -> None:
        for i in range(ops):
            ex = Exchange(request=heads[i % KEYS], request_id="r", started_ns=0, operation=operation)
            stage.on_request_head(ex)
            ex.reply = Reply(200, [], b"")
            stage.on_reply(ex)

    def run_baseline() -> None:  # the exchange and reply alone, subtracted from the stage path
        for i in range(ops):
            ex = Exchange(request=heads[i % KEYS], request_id="r", started_ns=0, operation=operation)
            ex.reply = Reply(200, [], b"")

    return run, run_baseline


def micro_table(results: dict[str, dict[str, float]]) -> str:
    floor_allowed = results["plain dict GCRA (floor), allowed"]["us_median"]
    floor_refused = results["plain dict GCRA (floor), refused"]["us_median"]
    lines = [
        f"| case ({KEYS:,} keys) | µs/decision (median) | min–max | × floor |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        floor = floor_refused if "refused" in name else floor_allowed
        lines.append(
            f"| {name} | {r['us_median']:.3f} | {r['us_min']:.3f}–{r['us_max']:.3f} "
            f"| {r['us_median'] / floor:.1f}× |"
        )
    store = results["MemoryStore.decide, allowed"]["us_median"]
    met = "met" if store <= TARGET_DECISION_US else "**missed**"
    lines.append("")
    lines.append(
        f"MemoryStore.decide, allowed: {store:.2f} µs against the target ≤ {TARGET_DECISION_US} µs: {met}"
    )
    return "\n".join(lines)


# -- part 2: the gateway ----------------------------------------------------------------------------

LIMITS = [
    {"id": "per-ip", "key": "client_ip", "rate": "1000000/s", "burst": 1000000},
    {"id": "daily", "key": "client_ip", "rate": "1000000000/day"},
]


def limited_policy(text: str, store: str | None) -> str:
    data = json.loads(text.split("\n", 1)[1])
    if store is not None:
        data["rate_limits"] = {"store": store, "limits": LIMITS}
    return "# generated by bench/ratelimit_bench.py\n" + json.dumps(data, indent=2) + "\n"


def gateway(args: argparse.Namespace, procs: gb.Processes, tmp: Path) -> dict[str, Any]:
    body = gb.SAMPLE.read_bytes()
    up_port = gb.free_port()
    upstream = procs.start(
        "upstream",
        [sys.executable, str(gb.STATIC_UPSTREAM), "--host", gb.HOST, "--port", str(up_port)],
        tmp / "upstream.log",
        None,
    )
    gb.wait_for_port(upstream, up_port)
    redis_port = gb.free_port()
    redis = procs.start(
        "redis",
        [
            "redis-server",
            "--bind",
            gb.HOST,
            "--port",
            str(redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        tmp / "redis.log",
        None,
    )
    gb.wait_for_port(redis, redis_port)
    stores = {
        "none": ("apishield, no limits (1 worker)", None),
        "memory": ("apishield, 2 limits, memory store (1 worker)", "memory"),
        "redis": ("apishield, 2 limits, Redis store (1 worker)", f"redis://{gb.HOST}:{redis_port}/0"),
    }
    targets: dict[str, gb.Target] = {}
    for key, (label, store) in stores.items():
        port = gb.free_port()
        config = tmp / f"policy-{key}.yaml"
        config.write_text(limited_policy(gb.policy(port, up_port, "enforce", "strip"), store))
        cmd = [sys.executable, "-m", "apishield", "serve", "--config", str(config), "--port", str(port)]
        proc = procs.start(key, cmd, tmp / f"{key}.log", None)
        gb.wait_for_port(proc, port)
        targets[key] = gb.Target(key, label, port, proc, strips=True, validates=True)
    for target in targets.values():
        gb.check_target(target, body)
    for key in ("memory", "redis"):
        _, answer = _put_headers(targets[key].port, body)
        if "ratelimit" not in answer:
            raise gb.BenchError(f"{key}: no RateLimit field in the answer; the limits are not applied")

    def one(target: gb.Target, seconds: int) -> dict[str, Any]:
        return gb.run_wrk(procs, target, upstream, seconds, 1, args.connections, None)

    if args.warmup:
        for target in targets.values():
            one(target, args.warmup)
    keys = list(targets)
    for rnd in range(args.rounds):
        shift = rnd % len(keys)
        for key in keys[shift:] + keys[:shift]:
            result = one(targets[key], args.duration)
            targets[key].runs.append(result)
            gb.log(f"round {rnd + 1}/{args.rounds} {targets[key].label:48s} {result['rps']:9,.0f} req/s")
    summaries = {key: gb.summarize(t) for key, t in targets.items()}
    ratios = {
        "redis_over_memory": gb.ratio(targets, "redis", "memory", TARGET_REDIS_OVER_MEMORY),
        "memory_over_none": gb.ratio(targets, "memory", "none", 0.95),
    }
    return {"summary": summaries, "ratios": ratios, "runs": {k: t.runs for k, t in targets.items()}}


def _put_headers(port: int, body: bytes) -> tuple[int, dict[str, str]]:
    import http.client

    conn = http.client.HTTPConnection(gb.HOST, port, timeout=10)
    try:
        conn.request("PUT", gb.TARGET_PATH, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def gateway_table(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"{args.rounds} round(s) x {args.duration} s, wrk -t1 -c{args.connections}, unpinned",
        "",
        "| config | req/s (median) | req/s min–max | p50 ms | p99 ms | server CPU µs/req | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in results["summary"].values():
        lines.append(
            f"| {s['label']} | {s['rps_median']:,.0f} | {s['rps_min']:,.0f}–{s['rps_max']:,.0f} "
            f"| {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['server_cpu_us_per_req']:.0f} | {s['errors']} |"
        )
    lines += [
        "",
        "| ratio (req/s) | of medians | per round | CPU-equivalent | target | |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    names = {
        "redis_over_memory": "Redis store ÷ memory store",
        "memory_over_none": "memory store ÷ no limits",
    }
    for key, r in results["ratios"].items():
        if r is None:
            continue
        lines.append(
            f"| {names[key]} | {r['of_medians']:.2f} | {r['per_round_median']:.2f} "
            f"({r['per_round_min']:.2f}–{r['per_round_max']:.2f}) | {r['cpu_equivalent']:.2f} "
            f"| ≥ {r['target']:.2f} | {'met' if r['met'] else '**missed**'} |"
        )
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--micro", action="store_true", help="only part 1 (in process)")
    p.add_argument("--gateway", action="store_true", help="only part 2 (wrk against the gateway)")
    p.add_argument("--ops", type=int, default=200_000, help="decisions per micro run (default 200,000)")
    p.add_argument("--repeats", type=int, default=5, help="micro runs per case (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="gateway rounds (default 3)")
    p.add_argument("--duration", type=int, default=8, help="seconds per gateway run (default 8)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per gateway target (default 2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--quick", action="store_true", help="fewer ops, 1 round x 3 s")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    args = p.parse_args(argv)
    if args.quick:
        args.ops, args.repeats, args.rounds, args.duration = 50_000, 3, 1, 3
    if not args.micro and not args.gateway:
        args.micro = args.gateway = True
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: dict[str, Any] = {"machine": gb.machine_info(), "source": gb.source_digest()}
    if args.micro:
        results = micro(args.ops, args.repeats)
        out["micro"] = results
        print(micro_table(results), flush=True)
    if args.gateway:
        for tool in ("wrk", "redis-server"):
            if shutil.which(tool) is None:
                gb.log(f"error: {tool} not found (apt-get install wrk redis-server)")
                return 2
        procs = gb.Processes()
        tmp = Path(tempfile.mkdtemp(prefix="apishield-rl-bench-"))
        try:
            with gb.signals_as_interrupt():
                results = gateway(args, procs, tmp)
        except gb.BenchError as exc:
            gb.log(f"error: {exc}")
            return 1
        except KeyboardInterrupt:
            gb.log("interrupted")
            return 130
        finally:
            with contextlib.suppress(Exception):
                procs.stop_all()
            shutil.rmtree(tmp, ignore_errors=True)
        out["gateway"] = results
        print("\n" + gateway_table(results, args), flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps(out, indent=2, default=lambda x: None if math.isnan(x) else x) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
