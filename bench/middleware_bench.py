#!/usr/bin/env python3
"""Middleware benchmark: one FastAPI app, secured by hand as users do today, or by apishield's Shield.

Side by side, in one run, on 127.0.0.1 (the method of the FastAPI baseline study):

* ``plain``       (a) FastAPI + a pydantic body model, no security at all;
* ``hand``        PyJWT ES256 bearer dependency (iss/aud/exp + scopes), slowapi limit keyed by
                  the token's client, pydantic body, ownership check (path id == token claim);
* ``hand_cached`` the same plus a dict cache of verified tokens (re-checks ``exp`` on a hit);
* ``shield``      (a) unchanged + ``Shield``: cached JWT verification, scopes, request validation,
                  response stripping and the ownership rule (``allow_if``). No rate limit: rate
                  limiting is not part of apishield yet, so (b) here has no "memory limit".

Each is the same routes (``GET``/``PUT /v1/customers/{customer_id}``, a ~530-byte customer) under
``uvicorn --loop uvloop --http httptools``, 1 worker. The load is wrk in its own process, every
variant receiving the same bytes (the same ES256 token); rounds are interleaved, the order rotated
each round, after one warm-up per variant. Server CPU per request is the utime+stime delta of the
server's process tree from /proc over the requests wrk completed. Before measuring, every variant
is checked to answer correctly: 200 for the benchmark request, refusals for a bad body, and for the
secured ones a missing token, another customer's id and a read-only token on PUT.

The apps are defined in this file (``create_app`` is the uvicorn factory, ``MW_BENCH_*`` in the
environment choose the variant). The key, token, policy and overlay are generated per run in a
temp dir. Needs wrk, PyJWT, slowapi and email-validator::

    pip install -e '.[test]' pyjwt slowapi email-validator
    python bench/middleware_bench.py --pin            # PUT, 3 rounds x 10 s
    python bench/middleware_bench.py --pin --get      # GET too
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from gateway_bench import (  # noqa: E402 - the harness of the gateway benchmark
    BenchError,
    Proc,
    Processes,
    free_port,
    log,
    machine_info,
    signals_as_interrupt,
    source_digest,
    stop_all_uninterrupted,
    system_cpu,
    tree_cpu_seconds,
    wait_for_port,
)

HOST = "127.0.0.1"
CUSTOMER_ID = "c_8f14e45fceea167a5a36dedd4bea2543"
TARGET = f"/v1/customers/{CUSTOMER_ID}"
ISSUER = "https://auth.example.test/"
AUDIENCE = "https://api.example.test/customers"
SERVER_CPUS, LOAD_CPUS = "1", "0"
INSTALL_HINT = "pip install pyjwt slowapi email-validator; apt-get install wrk"

SAMPLE: dict[str, Any] = {
    "customer_id": CUSTOMER_ID,
    "first_name": "Jane",
    "last_name": "Example-Sampleton",
    "email": "jane.sampleton@example.com",
    "phone": "+44 20 7946 0958",
    "status": "active",
    "date_of_birth": "1986-08-17",
    "created_at": "2021-03-04T09:15:27Z",
    "address": {
        "line1": "221B Baker Street",
        "line2": "Flat 2",
        "city": "London",
        "region": "Greater London",
        "postal_code": "NW1 6XE",
        "country": "GB",
    },
    "marketing_opt_in": False,
    "credit_limit": 25000,
    "tags": ["vip", "beta-tester", "eu-region"],
    "notes": "Prefers email contact, ID verified.",
}

VARIANTS = {
    "plain": "(a) plain FastAPI + pydantic",
    "hand": "hand-built: PyJWT dep + slowapi + pydantic + ownership",
    "hand_cached": "hand-built + verified-token cache",
    "shield": "(a) + Shield: cached JWT, scopes, validation, strip, ownership",
}

TARGET_OVER_CACHED = 1.2
TARGET_OVER_UNCACHED = 1.9
TARGET_ADDED_CPU_US = 30.0

# -- the applications (imported by the uvicorn workers) ---------------------------------------------


def _models() -> Any:
    from datetime import date, datetime
    from enum import StrEnum

    from pydantic import BaseModel, ConfigDict, EmailStr, Field

    class Status(StrEnum):
        active = "active"
        suspended = "suspended"
        closed = "closed"

    class Address(BaseModel):
        model_config = ConfigDict(extra="forbid")
        line1: str = Field(max_length=100)
        line2: str | None = Field(default=None, max_length=100)
        city: str = Field(max_length=64)
        region: str = Field(max_length=64)
        postal_code: str = Field(max_length=16)
        country: str = Field(min_length=2, max_length=2)

    class Customer(BaseModel):
        model_config = ConfigDict(extra="forbid")
        customer_id: str = Field(max_length=36)
        first_name: str = Field(max_length=64)
        last_name: str = Field(max_length=64)
        email: EmailStr
        phone: str = Field(max_length=32)
        status: Status
        date_of_birth: date
        created_at: datetime
        address: Address
        marketing_opt_in: bool
        credit_limit: int = Field(ge=0, le=1_000_000)
        tags: list[str] = Field(default_factory=list, max_length=10)
        notes: str = Field(default="", max_length=500)

    return Customer


def plain_app() -> Any:
    """(a): no security."""
    from fastapi import FastAPI, HTTPException

    customer = _models()
    db = {CUSTOMER_ID: customer.model_validate(SAMPLE)}
    app = FastAPI()

    @app.get("/v1/customers/{customer_id}", response_model=customer, operation_id="getCustomer")
    async def get_customer(customer_id: str) -> Any:
        c = db.get(customer_id)
        if c is None:
            raise HTTPException(404, "not found")
        return c

    @app.put("/v1/customers/{customer_id}", response_model=customer, operation_id="putCustomer")
    async def put_customer(customer_id: str, body: customer) -> Any:  # type: ignore[valid-type]
        if body.customer_id != customer_id:
            raise HTTPException(422, "customer_id mismatch")
        return body

    return app


def hand_app(cached: bool) -> Any:
    """(b)/(c): the stack users assemble today (PyJWT, slowapi, an ownership check)."""
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from fastapi import Depends, FastAPI, HTTPException, Request, Security
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded

    customer = _models()
    db = {CUSTOMER_ID: customer.model_validate(SAMPLE)}
    public_key = load_pem_public_key(Path(os.environ["MW_BENCH_PEM"]).read_bytes())  # parsed once
    bearer = HTTPBearer(auto_error=False)

    def verify(token: str) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key,  # type: ignore[arg-type]
            algorithms=["ES256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
        return claims

    cache: dict[str, dict[str, Any]] = {}

    def cached_verify(token: str) -> dict[str, Any]:
        claims = cache.get(token)
        if claims is not None and claims["exp"] > time.time():  # still honour exp on a hit
            return claims
        claims = verify(token)  # raises on a bad token (not cached)
        if len(cache) >= 10_000:
            cache.clear()
        cache[token] = claims
        return claims

    check = cached_verify if cached else verify

    async def current_claims(
        request: Request,
        security_scopes: SecurityScopes,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> dict[str, Any]:
        if creds is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        try:
            claims = check(creds.credentials)
        except jwt.PyJWTError:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"}) from None
        if not set(claims.get("scope", "").split()).issuperset(security_scopes.scopes):
            raise HTTPException(403, "insufficient scope")
        request.state.client_id = claims.get("client_id") or claims["sub"]
        return claims

    def client_key(request: Request) -> str:
        return str(request.state.client_id)  # set by the dependency, which runs first

    limiter = Limiter(key_func=client_key, storage_uri="memory://")
    app = FastAPI()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    reader = Annotated[dict[str, Any], Security(current_claims, scopes=["customers:read"])]
    writer = Annotated[dict[str, Any], Security(current_claims, scopes=["customers:write"])]

    def owns(claims: dict[str, Any], customer_id: str) -> None:
        if claims.get("customer_id") != customer_id:
            raise HTTPException(403, "forbidden")

    @app.get("/v1/customers/{customer_id}", response_model=customer)
    @limiter.limit("1000000/minute")
    async def get_customer(request: Request, customer_id: str, claims: reader) -> Any:  # type: ignore[valid-type]
        owns(claims, customer_id)
        c = db.get(customer_id)
        if c is None:
            raise HTTPException(404, "not found")
        return c

    @app.put("/v1/customers/{customer_id}", response_model=customer)
    @limiter.limit("1000000/minute")
    async def put_customer(request: Request, customer_id: str, body: customer, claims: writer) -> Any:  # type: ignore[valid-type]
        owns(claims, customer_id)
        if body.customer_id != customer_id:
            raise HTTPException(422, "customer_id mismatch")
        return body

    return app


def shield_app() -> Any:
    """(a) as it is, with Shield in front of it, built from the app's own document plus an overlay."""
    from apishield import Shield

    app = plain_app()
    app.add_middleware(Shield, config=os.environ["MW_BENCH_POLICY"], openapi=app.openapi)
    return app


def create_app() -> Any:
    """uvicorn factory: the variant named by MW_BENCH_VARIANT."""
    variant = os.environ["MW_BENCH_VARIANT"]
    if variant == "plain":
        return plain_app()
    if variant in ("hand", "hand_cached"):
        return hand_app(cached=variant == "hand_cached")
    if variant == "shield":
        return shield_app()
    raise SystemExit(f"unknown variant {variant!r}")


# -- run material: key, token, policy, overlay, wrk scripts -----------------------------------------


def write_material(tmp: Path) -> dict[str, Any]:
    from joserfc import jwk, jws

    key = jwk.ECKey.generate_key("P-256", parameters={"kid": "k1", "alg": "ES256", "use": "sig"})
    (tmp / "es256-public.pem").write_bytes(key.as_pem(private=False))
    (tmp / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-4711",
        "client_id": "client-acme-prod-01",
        "customer_id": CUSTOMER_ID,
        "scope": "customers:read customers:write",
        "iat": now,
        "nbf": now,
        "exp": now + 3500,
        "jti": str(uuid.uuid4()),
    }

    def mint(**over: Any) -> str:
        payload = json.dumps({**claims, **over}, separators=(",", ":")).encode()
        return jws.serialize_compact({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}, payload, key)

    overlay = {
        "overlay": "1.0.0",
        "info": {"title": "security of the benchmark API", "version": "1"},
        "actions": [
            {
                "target": "$.components",
                "update": {
                    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
                },
            },
            {
                "target": "$.paths['/v1/customers/{customer_id}'].get",
                "update": {"security": [{"bearer": ["customers:read"]}]},
            },
            {
                "target": "$.paths['/v1/customers/{customer_id}'].put",
                "update": {"security": [{"bearer": ["customers:write"]}]},
            },
        ],
    }
    (tmp / "security.json").write_text(json.dumps(overlay, indent=2))
    rule = "path.customer_id == token.customer_id"
    policy = {
        "version": 1,
        "overlays": ["security.json"],
        "validation": {"requests": "enforce", "responses": "strip", "unknown_query_params": "reject"},
        "limits": {"max_body_bytes": 65536, "max_json_depth": 32, "max_string_length": 4096},
        "auth": {
            "jwt": [
                {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "jwks.json", "algorithms": ["ES256"]}
            ]
        },
        "authorization": {
            "operations": {"getCustomer": {"allow_if": rule}, "putCustomer": {"allow_if": rule}}
        },
    }
    (tmp / "policy.json").write_text(json.dumps(policy, indent=2))
    token = mint()
    body = json.dumps(SAMPLE, separators=(",", ":"))
    for method in ("GET", "PUT"):
        lines = [
            f'wrk.method = "{method}"',
            f'wrk.headers["Authorization"] = "Bearer {token}"',
        ]
        if method == "PUT":
            lines += ['wrk.headers["Content-Type"] = "application/json"', f"wrk.body = [[{body}]]"]
        lines += [
            "function done(summary, latency, requests)",
            "  local e = summary.errors",
            "  io.write(string.format(",
            '    \'WRK_JSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,\''
            ' .. \'"status":%d,"timeout":%d},"latency_us":{"p50":%d,"p99":%d}}\\n\',',
            "    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,",
            "    latency:percentile(50), latency:percentile(99)))",
            "end",
        ]
        (tmp / f"{method.lower()}.lua").write_text("\n".join(lines) + "\n")
    return {
        "token": token,
        "readonly": mint(scope="customers:read", jti=str(uuid.uuid4())),
        "other": mint(customer_id="c_someone_else", jti=str(uuid.uuid4())),
        "body": body.encode(),
        "body_bytes": len(body),
    }


# -- checks ------------------------------------------------------------------------------------------


def request(port: int, method: str, target: str, token: str | None, body: bytes | None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_variant(name: str, port: int, material: dict[str, Any]) -> dict[str, int]:
    """Refuse to measure a variant that does not behave; returns the status of each check."""
    token, body = material["token"], material["body"]
    bad_body = json.dumps({**SAMPLE, "is_admin": True}).encode()
    secured = name != "plain"
    checks = {
        "PUT ok": request(port, "PUT", TARGET, token, body)[0],
        "GET ok": request(port, "GET", TARGET, token, None)[0],
        "PUT extra member": request(port, "PUT", TARGET, token, bad_body)[0],
        "PUT bad e-mail": request(port, "PUT", TARGET, token, body.replace(b"@example.com", b"example"))[0],
        "PUT no token": request(port, "PUT", TARGET, None, body)[0],
        "PUT read-only token": request(port, "PUT", TARGET, material["readonly"], body)[0],
        "PUT another customer": request(port, "PUT", TARGET, material["other"], body)[0],
        "PUT tampered token": request(port, "PUT", TARGET, token[:-4] + "AAAA", body)[0],
    }
    expected_refusal = {
        "PUT extra member": (400, 422),
        "PUT bad e-mail": (400, 422),
        "PUT no token": (401,),
        "PUT read-only token": (403,),
        "PUT another customer": (403, 404),
        "PUT tampered token": (401,),
    }
    for what, status in checks.items():
        if what.endswith(" ok"):
            good = status == 200
        elif secured or what in ("PUT extra member", "PUT bad e-mail"):
            good = status in expected_refusal[what]
        else:
            good = True
        if not good:
            raise BenchError(f"{name}: {what} answered {status}")
    return checks


# -- load ------------------------------------------------------------------------------------------


def run_wrk(procs: Processes, server: Proc, port: int, method: str, seconds: int, args: argparse.Namespace,
            tmp: Path) -> dict[str, Any]:  # fmt: skip
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "30s", "--latency",
           "-s", str(tmp / f"{method.lower()}.lua"), f"http://{HOST}:{port}{TARGET}"]  # fmt: skip
    if args.pin:
        cmd = ["taskset", "-c", LOAD_CPUS, *cmd]
    before = tree_cpu_seconds(server.pid)
    sys_before = system_cpu()
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    wrk = Proc("wrk", popen, None)
    procs.procs.append(wrk)
    try:
        out, _ = popen.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk did not finish in time") from None
    finally:
        procs.stop(wrk)
        procs.procs.remove(wrk)
    cpu = tree_cpu_seconds(server.pid) - before
    deltas = [a - b for a, b in zip(system_cpu(), sys_before, strict=False)]
    total = sum(deltas[:8]) or 1
    text = out.decode(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("WRK_JSON ")), None)
    if popen.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit {popen.returncode}):\n{text}")
    result: dict[str, Any] = json.loads(line[len("WRK_JSON ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["server_cpu_s"] = cpu
    result["cpu_us_per_req"] = 1e6 * cpu / max(1, result["requests"])
    result["steal_pct"] = 100.0 * deltas[7] / total if len(deltas) > 7 else 0.0
    return result


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rps = [r["rps"] for r in runs]
    return {
        "rps_median": statistics.median(rps),
        "rps_min": min(rps),
        "rps_max": max(rps),
        "p50_ms": statistics.median(r["latency_us"]["p50"] for r in runs) / 1000,
        "p99_ms": statistics.median(r["latency_us"]["p99"] for r in runs) / 1000,
        "cpu_us_median": statistics.median(r["cpu_us_per_req"] for r in runs),
        "cpu_us_min": min(r["cpu_us_per_req"] for r in runs),
        "cpu_us_max": max(r["cpu_us_per_req"] for r in runs),
        "errors": sum(sum(r["errors"].values()) for r in runs),
    }


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    pinning = f" pinned to CPU {SERVER_CPUS} (wrk on CPU {LOAD_CPUS})" if meta["pinned"] else ""
    lines = [
        f"{meta['rounds']} interleaved round(s) x {meta['duration_s']} s, wrk -t1 -c{meta['connections']}, "
        f"1 uvicorn worker{pinning}; "
        f"{meta['machine']['cpus']} vCPU {meta['machine']['model']}; body {meta['body_bytes']} B; "
        f"apishield sources {meta['apishield_source_digest']}",
    ]  # fmt: skip
    for method, per_variant in results["summary"].items():
        plain = per_variant.get("plain")
        lines += [
            "",
            f"#### {method}",
            "",
            "| variant | req/s median (min–max) | p50 ms | p99 ms "
            "| server CPU µs/req median (min–max) | req/s ÷ (a) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for key, s in per_variant.items():
            rel = f"{s['rps_median'] / plain['rps_median']:.2f}×" if plain else "–"
            lines.append(
                f"| {VARIANTS[key]} | {s['rps_median']:,.0f} ({s['rps_min']:,.0f}–{s['rps_max']:,.0f}) "
                f"| {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['cpu_us_median']:.0f} "
                f"({s['cpu_us_min']:.0f}–{s['cpu_us_max']:.0f}) | {rel} |"
            )
        r = results["ratios"].get(method)
        if r:
            lines += [
                "",
                "| target | measured | goal | |",
                "| --- | ---: | ---: | --- |",
                f"| CPU Shield adds to (a), µs/req | {r['added_cpu_us']:.0f} | ≤ {TARGET_ADDED_CPU_US:.0f} "
                f"| {'met' if r['added_cpu_us'] <= TARGET_ADDED_CPU_US else '**missed**'} |",
                f"| req/s Shield ÷ hand-built cached | {r['over_cached']:.2f} | ≥ {TARGET_OVER_CACHED} "
                f"| {'met' if r['over_cached'] >= TARGET_OVER_CACHED else '**missed**'} |",
                f"| req/s Shield ÷ hand-built uncached | {r['over_uncached']:.2f} | ≥ {TARGET_OVER_UNCACHED} "
                f"| {'met' if r['over_uncached'] >= TARGET_OVER_UNCACHED else '**missed**'} |",
            ]
    return "\n".join(lines)


def bench(args: argparse.Namespace, procs: Processes, tmp: Path) -> dict[str, Any]:
    material = write_material(tmp)
    methods = ["PUT", "GET"] if args.get else ["PUT"]
    env = {
        **os.environ,
        "MW_BENCH_PEM": str(tmp / "es256-public.pem"),
        "MW_BENCH_POLICY": str(tmp / "policy.json"),
    }
    servers: dict[str, tuple[Proc, int]] = {}
    checks: dict[str, dict[str, int]] = {}
    for name in args.variants:
        port = free_port()
        cmd = [sys.executable, "-m", "uvicorn", "middleware_bench:create_app", "--factory",
               "--app-dir", str(BENCH), "--host", HOST, "--port", str(port), "--loop", "uvloop",
               "--http", "httptools", "--workers", "1", "--no-access-log",
               "--log-level", "warning"]  # fmt: skip
        if args.pin:
            cmd = ["taskset", "-c", SERVER_CPUS, *cmd]
        popen = subprocess.Popen(
            cmd,
            env={**env, "MW_BENCH_VARIANT": name},
            stdin=subprocess.DEVNULL,
            stdout=open(tmp / f"{name}.log", "wb"),  # noqa: SIM115 - closed when the process ends
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, popen, tmp / f"{name}.log")
        procs.procs.append(proc)
        wait_for_port(proc, port)
        servers[name] = (proc, port)
        checks[name] = check_variant(name, port, material)
        log(f"{name}: checks passed {checks[name]}")
    if args.warmup:
        for proc, port in servers.values():
            for method in methods:
                run_wrk(procs, proc, port, method, args.warmup, args, tmp)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {m: {v: [] for v in servers} for m in methods}
    names = list(servers)
    for rnd in range(args.rounds):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]
        if rnd % 2:
            order.reverse()
        for name in order:
            proc, port = servers[name]
            for method in methods:
                time.sleep(0.5)  # let the previous run's connections close
                result = run_wrk(procs, proc, port, method, args.duration, args, tmp)
                result["round"] = rnd + 1
                runs[method][name].append(result)
                log(
                    f"round {rnd + 1}/{args.rounds} {method} {name:12s} {result['rps']:9,.0f} req/s "
                    f"p99 {result['latency_us']['p99'] / 1000:6.2f} ms {result['cpu_us_per_req']:5.0f} µs/req"
                )
                if sum(result["errors"].values()):
                    log(f"  WARNING: errors/non-2xx answers: {result['errors']}")
    summary = {m: {v: summarize(r) for v, r in per.items()} for m, per in runs.items()}
    ratios: dict[str, dict[str, float]] = {}
    for method, per in summary.items():
        if {"plain", "hand", "hand_cached", "shield"} <= set(per):
            ratios[method] = {
                "added_cpu_us": per["shield"]["cpu_us_median"] - per["plain"]["cpu_us_median"],
                "over_cached": per["shield"]["rps_median"] / per["hand_cached"]["rps_median"],
                "over_uncached": per["shield"]["rps_median"] / per["hand"]["rps_median"],
            }
    meta = {
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "pinned": args.pin,
        "body_bytes": material["body_bytes"],
        "machine": machine_info(),
        "apishield_source_digest": source_digest(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return {"meta": meta, "checks": checks, "summary": summary, "ratios": ratios, "runs": runs}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per variant and method (default 2)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--get", action="store_true", help="measure GET as well as PUT")
    p.add_argument("--pin", action="store_true", help=f"server on CPU {SERVER_CPUS}, wrk on CPU {LOAD_CPUS}")
    p.add_argument("--quick", action="store_true", help="1 round x 3 s")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--json", metavar="FILE", help="write raw and summary results as JSON to FILE")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [m for m in ("jwt", "slowapi", "email_validator", "fastapi") if not _importable(m)]
    if missing or shutil.which("wrk") is None:
        log(f"error: missing {', '.join(missing) or 'wrk'}; install with: {INSTALL_HINT}")
        return 2
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="apishield-mwbench-"))
    try:
        with signals_as_interrupt():
            results = bench(args, procs, tmp)
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        stop_all_uninterrupted(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n" + markdown(results), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    sys.exit(main())
