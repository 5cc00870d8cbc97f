"""Benchmark of the embedded issuer: client_credentials tokens/s, and signing cost against the floor.

Two parts, one run:

1. Signing, in process (median of 7 interleaved rounds, GC off while timing):
   the bare ``cryptography`` ES256 signature (the floor), the issuer's direct
   path (:class:`apishield.issuer.rfc9068.AccessTokenMinter`: claims, orjson,
   base64url, signature, R||S), ``joserfc.jwt.encode`` and Authlib's
   ``JWTBearerTokenGenerator``, each building the same access token.
2. The token endpoint over HTTP: the issuer (uvicorn + uvloop + httptools,
   one worker, SQLite store) on one core, a bounded load on the other core
   (``wrk`` with a Lua script POSTing the form with HTTP Basic, or a Python
   keep-alive loop when wrk is missing), for ``--seconds`` per round.
   Reported: tokens/s, the server's CPU per token (from /proc), and that CPU
   as a multiple of the signing floor.

Everything runs on 127.0.0.1 and stops by itself. Usage::

    python bench/issuer_bench.py [--seconds 5] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import base64
import gc
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


# -- part 1: signing ---------------------------------------------------------------------------------


def measure(cases: dict[str, Callable[[], Any]], rounds: int = 7, target: float = 0.2) -> dict[str, float]:
    """Median microseconds per call of each case: calibrated, interleaved rounds, GC off while timing."""
    counts: dict[str, int] = {}
    for name, fn in cases.items():
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < target / 4:
            fn()
            n += 1
        counts[name] = max(50, n * 4)
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            n = counts[name]
            gc.disable()
            start = time.perf_counter()
            for _ in range(n):
                fn()
            elapsed = time.perf_counter() - start
            gc.enable()
            results[name].append(elapsed / n * 1e6)
    return {name: statistics.median(v) for name, v in results.items()}


def signing(rounds: int = 7, target: float = 0.2) -> dict[str, float]:
    from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from joserfc import jwt
    from joserfc.jwk import ECKey

    from apishield.issuer.keys import KeyRing
    from apishield.issuer.rfc9068 import AccessTokenMinter

    folder = Path(tempfile.mkdtemp(prefix="issuer-bench-"))
    try:
        ring = KeyRing(folder / "keys", "ES256", keep_for=900)
        key = ring.active
        private = key.private
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        minter = AccessTokenMinter("https://issuer.example", "customer-api", 600, ring)
        extra = {"partner_id": "p-acme", "roles": ["partner"]}
        jose_key = ECKey.import_key(private, {"kid": key.kid, "alg": "ES256", "use": "sig"})
        algorithm = ec.ECDSA(hashes.SHA256())
        sample = minter.mint(
            subject="partner-portal", client_id="partner-portal", scope="a b", now=1.0, extra=extra
        )
        signing_input = sample.token.rsplit(".", 1)[0].encode()

        class Client:
            def get_client_id(self) -> str:
                return "partner-portal"

            def get_allowed_scope(self, scope: str) -> str:
                return scope

        class Generator(JWTBearerTokenGenerator):  # type: ignore[misc]
            def get_jwks(self) -> Any:
                return jose_key

            def get_audiences(self, client: Any, user: Any, scope: Any) -> str:
                return "customer-api"

            def get_extra_claims(self, client: Any, grant_type: Any, user: Any, scope: Any) -> dict[str, Any]:
                return extra

        generator = Generator("https://issuer.example", alg="ES256")
        client = Client()

        def joserfc_encode() -> None:
            now = int(time.time())
            claims = {
                **extra,
                "iss": "https://issuer.example",
                "sub": "partner-portal",
                "aud": "customer-api",
                "client_id": "partner-portal",
                "scope": "customers:read orders:read",
                "jti": base64.urlsafe_b64encode(os.urandom(16)).decode(),
                "iat": now,
                "exp": now + 600,
            }
            jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims, jose_key)

        cases: dict[str, Callable[[], Any]] = {
            "cryptography ES256 sign (floor)": lambda: private.sign(signing_input, algorithm),
            "issuer direct path (AccessTokenMinter.mint)": lambda: minter.mint(
                subject="partner-portal",
                client_id="partner-portal",
                scope="customers:read orders:read",
                now=time.time(),
                extra=extra,
            ),
            "joserfc 1.x jwt.encode": joserfc_encode,
            "authlib JWTBearerTokenGenerator": lambda: generator(
                grant_type="client_credentials",
                client=client,
                user=None,
                scope="customers:read orders:read",
                include_refresh_token=False,
            ),
        }
        return measure(cases, rounds, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def breakdown(rounds: int = 5) -> dict[str, float]:
    """Where one client_credentials token's time goes, in process, on one thread."""
    import logging

    from apishield.issuer import bootstrap_demo, create_issuer_app
    from apishield.issuer.models import AccessTokenRecord
    from apishield.issuer.server import Headers, IssuerRequest

    folder = Path(tempfile.mkdtemp(prefix="issuer-bench-"))
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=open(os.devnull, "w"))  # noqa: SIM115
    try:
        demo = bootstrap_demo(folder, "http://127.0.0.1:9", "customer-api")
        app = create_issuer_app(demo.settings)
        basic = base64.b64encode(f"partner-portal:{demo.partner_portal_secret}".encode()).decode()
        url = demo.settings.endpoint("token")
        form = {"grant_type": "client_credentials", "scope": "customers:read"}
        key = app.keys.active
        client = app.store.get_client("partner-portal")
        assert client is not None and client.secret_hash is not None
        secret_hash = client.secret_hash

        def token() -> None:
            request = IssuerRequest("POST", url, Headers({"authorization": "Basic " + basic}), {}, dict(form))
            if app.server.token(request).status != 200:
                raise RuntimeError("token request failed")

        def record() -> None:
            jti = base64.urlsafe_b64encode(os.urandom(16)).decode()
            app.store.record_access_token(
                AccessTokenRecord(jti, "partner-portal", None, None, time.time() + 600)
            )

        token()  # the argon2id verification happens once, then the verified-secret cache answers
        cases: dict[str, Callable[[], Any]] = {
            "whole token request, no HTTP (IssuerServer.token)": token,
            "  record the jti (SQLite insert, WAL)": record,
            "  look the client up (SQLite select)": lambda: app.store.get_client("partner-portal"),
            "  check the secret (verified-secret cache hit)": lambda: app.server.verifier.verify(
                "partner-portal", demo.partner_portal_secret, secret_hash
            ),
            "  mint the JWT (AccessTokenMinter.mint)": lambda: app.server.minter.mint(
                subject="partner-portal", client_id="partner-portal", scope="customers:read", now=time.time()
            ),
            "    of which the ES256 signature": lambda: key.sign(b"x" * 420),
        }
        return measure(cases, rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- part 2: the token endpoint over HTTP -------------------------------------------------------------------

SERVER = textwrap.dedent(
    """
    import logging, os, sys
    from pathlib import Path
    sys.path.insert(0, {src!r})
    os.sched_setaffinity(0, {{{cpu}}})
    from apishield.issuer import bootstrap_demo, create_issuer_app
    from apishield.proxy.server import uvicorn_config
    import uvicorn
    demo = bootstrap_demo(Path({folder!r}), "http://127.0.0.1:{port}", "customer-api")
    Path({folder!r}, "ready.secret").write_text(demo.partner_portal_secret)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=open(os.devnull, "w"))
    uvicorn.Server(uvicorn_config(create_issuer_app(demo.settings), "127.0.0.1", {port})).run()
    """
)

LUA = textwrap.dedent(
    """
    wrk.method = "POST"
    wrk.body = "grant_type=client_credentials&scope=customers%3Aread"
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
    wrk.headers["Authorization"] = "Basic {basic}"
    """
)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _python_load(port: int, basic: str, seconds: float, connections: int) -> tuple[int, int]:
    """A bounded keep-alive load: ``connections`` threads, each POSTing until the time is up."""
    body = b"grant_type=client_credentials&scope=customers%3Aread"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"}
    deadline = time.monotonic() + seconds
    done = [0, 0]
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        ok = bad = 0
        while time.monotonic() < deadline:
            conn.request("POST", "/token", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            ok, bad = (ok + 1, bad) if resp.status == 200 else (ok, bad + 1)
        conn.close()
        with lock:
            done[0] += ok
            done[1] += bad

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0], done[1]


def _wrk(port: int, basic: str, seconds: float, connections: int, script: Path) -> tuple[int, int]:
    script.write_text(LUA.format(basic=basic))
    cmd = ["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(script)]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}/token"], capture_output=True, text=True, timeout=seconds + 30
    ).stdout
    requests = int(next(line for line in out.splitlines() if "requests in" in line).split()[0])
    non_2xx = next((line for line in out.splitlines() if "Non-2xx" in line), None)
    bad = int(non_2xx.split()[-1]) if non_2xx else 0
    return requests - bad, bad


def token_endpoint(seconds: float, rounds: int, connections: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="issuer-bench-"))
    port = _free_port()
    cpu = 1 if os.cpu_count() and os.cpu_count() > 1 else 0  # type: ignore[operator]
    code = SERVER.format(src=str(ROOT / "src"), cpu=cpu, folder=str(folder), port=port)
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (folder / "ready.secret").exists() or not _up(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the issuer did not start")
            time.sleep(0.1)
        secret = (folder / "ready.secret").read_text()
        basic = base64.b64encode(f"partner-portal:{secret}".encode()).decode()
        use_wrk = shutil.which("wrk") is not None and shutil.which("taskset") is not None
        # warm-up: the first request pays the argon2id verification, later ones hit the verified-secret cache
        start = time.perf_counter()
        _one(port, basic)
        first_request_ms = (time.perf_counter() - start) * 1000
        _python_load(port, basic, 1.0, 4)
        rows = []
        for _ in range(rounds):
            cpu_before, wall = _cpu_seconds(proc.pid), time.perf_counter()
            if use_wrk:
                ok, bad = _wrk(port, basic, seconds, connections, folder / "token.lua")
            else:
                os.sched_setaffinity(0, {0})
                ok, bad = _python_load(port, basic, seconds, connections)
            wall = time.perf_counter() - wall
            cpu_used = _cpu_seconds(proc.pid) - cpu_before
            rows.append(
                {"tokens_per_s": ok / wall, "cpu_us_per_token": cpu_used / max(ok, 1) * 1e6, "errors": bad}
            )
        return {
            "load": "wrk" if use_wrk else "python keep-alive loop",
            "first_request_ms": first_request_ms,
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows),
            "cpu_us_per_token": statistics.median(r["cpu_us_per_token"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
            "rounds": rows,
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _up(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/.well-known/oauth-authorization-server")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def _one(port: int, basic: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"}
    conn.request("POST", "/token", body=b"grant_type=client_credentials", headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"token request failed: {resp.status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    sign = signing()
    floor = sign["cryptography ES256 sign (floor)"]
    print("Signing one RFC 9068 access token (ES256), median of 7 interleaved rounds")
    print(f"{'case':48s} {'us/op':>8s} {'x floor':>8s}")
    for name, us in sign.items():
        print(f"{name:48s} {us:8.1f} {us / floor:8.2f}")

    parts = breakdown()
    print()
    print("Where a token request's time goes (in process, one thread, median of 5 interleaved rounds)")
    for name, us in parts.items():
        print(f"{name:56s} {us:8.1f} us")

    http_result = token_endpoint(args.seconds, args.rounds, args.connections)
    print()
    print(
        f"Token endpoint, client_credentials, {http_result['load']}, {args.connections} connections, "
        f"{args.rounds} x {args.seconds:g} s, issuer pinned to one core"
    )
    print(f"  first request (argon2id verification of the secret): {http_result['first_request_ms']:.0f} ms")
    for i, row in enumerate(http_result["rounds"], 1):
        print(
            f"  round {i}: {row['tokens_per_s']:8.0f} tokens/s  {row['cpu_us_per_token']:7.1f} us CPU/token"
        )
    cpu = http_result["cpu_us_per_token"]
    print(
        f"  median: {http_result['tokens_per_s']:.0f} tokens/s, {cpu:.1f} us of server CPU per token "
        f"= {cpu / floor:.1f} x the signing floor ({floor:.1f} us); errors: {http_result['errors']}"
    )


if __name__ == "__main__":
    main()
