#!/usr/bin/env python3
"""Where the gateway's CPU goes per request, without sockets: the decision pipeline in-process.

Drives ``Pipeline.begin / request_body / upstream_response / finish`` with the benchmark's
exchange (``PUT /v1/customers/1`` with ``sample_customer.json``; the upstream answer of
``bench/upstream.py``, undocumented members included) under several policies, and prints
the microseconds per request of each phase. ``--cprofile`` adds the top functions of one
policy. This is the part of the per-request cost that apishield's own code decides; the
rest (HTTP parsing, the event loop, socket writes, the upstream client) needs a profiler on
the live server, e.g. ``py-spy record --pid <gateway pid> -f raw`` while gateway_bench runs.

Logging is configured as ``apishield serve`` does (root logger at INFO, one stream handler;
here the stream is /dev/null), so the decision log's cost is counted; ``--no-log`` leaves
logging unconfigured.

    python bench/profile_pipeline.py [--iterations 20000] [--stages validation]
                                     [--cprofile validation] [--top 25] [--no-log]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_bench import SAMPLE, TARGET_PATH, policy
from upstream import customer_body

# name -> (validation.requests, validation.responses)
POLICIES = {
    "passthrough": ("off", "off"),
    "requests_only": ("enforce", "off"),
    "responses_only": ("off", "strip"),
    "validation": ("enforce", "strip"),
}
PHASES = ("begin", "request_body", "upstream_response", "finish")


def load_pipeline(tmp: Path, name: str) -> Any:
    from apishield.runtime import load_runtime

    requests, responses = POLICIES[name]
    path = tmp / f"policy-{name}.yaml"
    path.write_text(policy(8080, 9000, requests, responses))
    return load_runtime(path).pipeline


def exchange_once(pipeline: Any, body: bytes, answer: bytes, clock: list[int] | None) -> Any:
    from apishield.core.exchange import RequestHead

    t0 = time.perf_counter_ns()
    head = RequestHead(
        method="PUT",
        raw_path=TARGET_PATH.encode(),
        query_string=b"",
        headers=[
            (b"host", b"127.0.0.1:8080"),
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ],
        client=("127.0.0.1", 50000),
        server=("127.0.0.1", 8080),
    )
    ex = pipeline.begin(head)
    if getattr(ex, "pending", None) is not None:
        raise SystemExit(f"the pipeline asked for an effect ({ex.pending!r}); profile it live instead")
    t1 = time.perf_counter_ns()
    if ex.reply is None:
        pipeline.request_body(ex, body)
    t2 = time.perf_counter_ns()
    if ex.reply is None:
        headers = [
            (b"date", b"Fri, 01 Jan 2027 00:00:00 GMT"),
            (b"server", b"uvicorn"),
            (b"x-powered-by", b"customer-api/1.4.2 (python)"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer)).encode()),
        ]
        pipeline.upstream_response(ex, 200, headers, answer)
    t3 = time.perf_counter_ns()
    reply = pipeline.finish(ex)
    t4 = time.perf_counter_ns()
    if clock is not None:
        clock[0] += t1 - t0
        clock[1] += t2 - t1
        clock[2] += t3 - t2
        clock[3] += t4 - t3
    return reply


HOOKS = ("on_request_head", "on_request_body", "on_upstream_response", "on_reply")


def time_stages(pipeline: Any) -> dict[tuple[str, str], list[int]]:
    """Wrap every stage hook with a timer; returns {(stage, hook): [total ns, calls]}."""
    totals: dict[tuple[str, str], list[int]] = {}
    clock = time.perf_counter_ns
    for stage in pipeline.stages:
        for hook in HOOKS:
            slot = totals.setdefault((stage.name, hook), [0, 0])
            method = getattr(stage, hook)

            def timed(*a: Any, _m: Any = method, _slot: list[int] = slot) -> Any:
                t0 = clock()
                try:
                    return _m(*a)
                finally:
                    _slot[0] += clock() - t0
                    _slot[1] += 1

            setattr(stage, hook, timed)
    return totals


def print_stage_table(name: str, totals: dict[tuple[str, str], list[int]], iterations: int) -> None:
    print(
        f"\nµs per request by stage and hook, policy {name!r} (includes ~0.1 µs timer overhead per call):\n"
    )
    print("| stage | " + " | ".join(HOOKS) + " | total |")
    print("| --- |" + " ---: |" * (len(HOOKS) + 1))
    stages = list(dict.fromkeys(stage for stage, _ in totals))
    for stage in stages:
        cells = [totals[(stage, hook)][0] / iterations / 1000 for hook in HOOKS]
        print(f"| {stage} | " + " | ".join(f"{c:.1f}" for c in cells) + f" | {sum(cells):.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--cprofile", choices=sorted(POLICIES), help="profile this policy with cProfile")
    parser.add_argument("--top", type=int, default=25, help="functions to list with --cprofile")
    parser.add_argument("--no-log", action="store_true", help="leave logging unconfigured")
    parser.add_argument(
        "--stages", choices=sorted(POLICIES), help="time each stage hook of this policy separately"
    )
    args = parser.parse_args()
    if not args.no_log:
        logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    body = SAMPLE.read_bytes()
    answer = customer_body(1)
    with tempfile.TemporaryDirectory(prefix="apishield-profile-") as tmp:
        pipelines = {name: load_pipeline(Path(tmp), name) for name in POLICIES}
    for name, pipeline in pipelines.items():
        reply = exchange_once(pipeline, body, answer, None)
        if reply.status != 200:
            print(f"{name}: status {reply.status}: {reply.body[:300]!r}", file=sys.stderr)
            return 1
    print(
        f"{args.iterations} exchanges per policy; µs per request (logging {'off' if args.no_log else 'on'})"
    )
    print()
    print("| policy | " + " | ".join(PHASES) + " | total |")
    print("| --- |" + " ---: |" * (len(PHASES) + 1))
    for name, pipeline in pipelines.items():
        for _ in range(min(2000, args.iterations)):  # warm-up
            exchange_once(pipeline, body, answer, None)
        clock = [0, 0, 0, 0]
        gc.collect()
        for _ in range(args.iterations):
            exchange_once(pipeline, body, answer, clock)
        per = [c / args.iterations / 1000 for c in clock]
        print(f"| {name} | " + " | ".join(f"{x:.1f}" for x in per) + f" | {sum(per):.1f} |")
    if args.stages:
        pipeline = pipelines[args.stages]
        totals = time_stages(pipeline)
        for slot in totals.values():
            slot[:] = [0, 0]
        for _ in range(args.iterations):
            exchange_once(pipeline, body, answer, None)
        print_stage_table(args.stages, totals, args.iterations)
    if args.cprofile:
        pipeline = pipelines[args.cprofile]
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.iterations):
            exchange_once(pipeline, body, answer, None)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats("tottime").print_stats(args.top)
        print(f"\ncProfile of {args.cprofile!r}, {args.iterations} exchanges, by own time:")
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
