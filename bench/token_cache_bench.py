#!/usr/bin/env python3
"""The verified-token cache hit versus a bare dict lookup, in the same run (µs per lookup).

    python bench/token_cache_bench.py

Target (issue "access tokens"): a cached token costs at most 1 µs. The baseline is the
cheapest possible lookup (a plain dict and an expiry compare); the cache adds LRU order and
expiry eviction. Each token is a fresh string slice, as a request's header would be.
"""

from __future__ import annotations

import statistics
import time
import uuid

from apishield.auth.principal import Principal
from apishield.auth.token_cache import TokenCache

N = 10_000
ROUNDS = 7
LOOKUPS = 200_000


def main() -> None:
    tokens = [("Bearer " + uuid.uuid4().hex * 12) for _ in range(N)]
    principal = Principal(method="jwt", subject="alice")
    cache: TokenCache[Principal] = TokenCache(N)
    plain: dict[str, tuple[Principal, float]] = {}
    for t in tokens:
        cache.put(t[7:], principal, time.time() + 3600)
        plain[t[7:]] = (principal, time.time() + 3600)
    headers = [tokens[i % N] for i in range(LOOKUPS)]

    def run_cache() -> float:
        now = time.time()
        start = time.perf_counter()
        for h in headers:
            cache.get(h[7:], now)
        return (time.perf_counter() - start) / LOOKUPS * 1e6

    def run_plain() -> float:
        now = time.time()
        start = time.perf_counter()
        for h in headers:
            entry = plain.get(h[7:])
            if entry is not None and now < entry[1]:
                pass
        return (time.perf_counter() - start) / LOOKUPS * 1e6

    results: dict[str, list[float]] = {"plain dict + exp (baseline)": [], "TokenCache.get": []}
    for _ in range(ROUNDS):
        results["plain dict + exp (baseline)"].append(run_plain())
        results["TokenCache.get"].append(run_cache())
    base = statistics.median(results["plain dict + exp (baseline)"])
    print("| lookup | µs (median of 7) | × baseline |\n| --- | ---: | ---: |")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.2f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
