#!/usr/bin/env python3
"""How soon a revocation reaches every gateway instance (target: within 1 s).

Two ``apishield serve`` processes share one Redis revocation store (poll interval
0.25 s, the default). For each of N tokens: both instances accept it, the token's
jti is revoked through the store, and the time until *both* instances refuse it is
measured. Prints the median, p95 and maximum against the 1 s target and the poll
interval (the baseline: a revocation cannot land sooner than the next poll).

    python bench/revocation_bench.py [--redis redis://127.0.0.1:6379/15] [--count 20]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from joserfc import jwk, jwt

from apishield.services.revocation_store import RedisRevocationStore

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "examples" / "customer_api" / "openapi.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(port: int, token: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/v1/health", headers={"Authorization": f"Bearer {token}"})
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--poll", default="0.25s")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="apishield-revocation-"))
    key = jwk.ECKey.generate_key("P-256", parameters={"kid": "k1", "alg": "ES256", "use": "sig"})
    (tmp / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    policy = {
        "openapi": str(OPENAPI),
        "upstream": "http://127.0.0.1:9",  # nothing listens: an allowed request answers 502
        "auth": {
            "jwt": [
                {
                    "issuer": "https://bench",
                    "audience": "customer-api",
                    "algorithms": ["ES256"],
                    "jwks_file": str(tmp / "jwks.json"),
                }
            ],
            "revocation": {"store": args.redis, "poll_interval": args.poll},
            "public_operations": [],
        },
        "authorization": {"operations": {"getHealth": {"require_authentication": True}}},
    }
    (tmp / "policy.yaml").write_text(json.dumps(policy))
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apishield",
                "serve",
                "--config",
                str(tmp / "policy.yaml"),
                "--port",
                str(p),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in ports
    ]
    loop = asyncio.new_event_loop()
    store = RedisRevocationStore(args.redis)
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 20
        while any(status(p, "x") == 0 for p in ports):
            if time.monotonic() > deadline:
                raise SystemExit("the gateways did not start")
            time.sleep(0.1)
        for _ in range(args.count):
            jti = uuid.uuid4().hex
            now = int(time.time())
            claims = {
                "iss": "https://bench",
                "aud": "customer-api",
                "sub": "s",
                "client_id": "c",
                "iat": now,
                "exp": now + 600,
                "jti": jti,
            }
            token = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}, claims, key)
            accepted = [status(p, token) for p in ports]  # 502: allowed, then the upstream is absent
            if 401 in accepted:
                raise SystemExit(f"a fresh token was refused: {accepted}")
            started = time.monotonic()
            loop.run_until_complete(store.revoke("jti", jti, time.time() + 600))
            pending = set(ports)
            while pending:
                pending = {p for p in pending if status(p, token) != 401}
                if time.monotonic() - started > 10:
                    raise SystemExit("a revocation did not land within 10 s")
            latencies.append(time.monotonic() - started)
    finally:
        loop.run_until_complete(store.close())
        loop.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=45)
    latencies.sort()
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    print("| revocations | poll interval | median s | p95 s | max s | target |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    print(
        f"| {len(latencies)} | {args.poll} | {statistics.median(latencies):.3f} | {p95:.3f} | "
        f"{latencies[-1]:.3f} | ≤ 1 s on every instance: {'met' if latencies[-1] <= 1 else 'missed'} |"
    )


if __name__ == "__main__":
    main()
