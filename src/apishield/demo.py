"""``apishield demo``: the reference scenario, in one command.

Three servers in one process, on loopback:

* the embedded OAuth 2.0 authorization server (:mod:`apishield.issuer`) with the
  clients ``mobile-app`` (public, code + PKCE) and ``partner-portal`` /
  ``globex-portal`` (confidential, client credentials), six customers and a
  support agent as users;
* the example customer-data service (``examples/customer_api``, SQLite, no
  protection of its own);
* the gateway in front of it, trusting the issuer, with the example policy.

It then walks through requests of each caller, allowed and refused, printing
what happened and why, and keeps serving until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from apishield.proxy.gateway import Gateway
from apishield.proxy.server import QuietServer, uvicorn_config
from apishield.runtime import load_runtime

__all__ = ["example_dir", "load_example_app", "run_demo"]

PASSWORD = "correct horse battery staple"


def example_dir() -> Path:
    """The example's folder: packaged in a wheel, or the source tree's ``examples/``."""
    packaged = Path(str(files("apishield"))) / "_examples" / "customer_api"
    if (packaged / "apishield.yaml").is_file():
        return packaged
    source = Path(__file__).resolve().parents[2] / "examples" / "customer_api"
    if (source / "apishield.yaml").is_file():
        return source
    raise FileNotFoundError("the example customer API is not installed with this copy of apishield")


def load_example_app(folder: Path, db_path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("apishield_example_customer_api", folder / "app.py")
    if spec is None or spec.loader is None:
        raise ImportError("cannot load the example service")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.create_app(str(db_path))


def demo_policy(
    folder: Path,
    tmp: Path,
    upstream_port: int,
    port: int,
    provider: dict[str, Any],
    revocation_store: str,
    admin_port: int = 9090,
    respond: bool = False,
) -> Path:
    """The example policy, pointed at this run's ports, issuer, revocation log and audit database."""
    policy = yaml.safe_load((folder / "apishield.yaml").read_text())
    policy["openapi"] = str(folder / "openapi.yaml")
    policy["upstream"] = f"http://127.0.0.1:{upstream_port}"
    policy["listen"] = {"host": "127.0.0.1", "port": port}
    policy["audit"] = {**policy.get("audit", {}), "sink": "sqlite", "path": str(tmp / "audit.db")}
    policy["admin"] = {
        **policy.get("admin", {}),
        "host": "127.0.0.1",
        "port": admin_port,
        "token_file": str(admin_token_file(tmp)),  # the console's sign-in, and /metrics
    }
    detection = policy.setdefault("detection", {})  # alerts beside the audit database
    if respond:  # the demo's walkthrough shows an enumeration walk blocked by its detector
        detectors = detection.setdefault("detectors", {})
        detectors["enumeration"] = {"response": "block", "block_duration": "10m"}
    policy["auth"]["jwt"] = [{**policy["auth"]["jwt"][0], **provider}]
    policy["auth"]["revocation"] = {"store": revocation_store, "poll_interval": 0.25}
    path = tmp / "apishield.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def admin_token_file(tmp: Path) -> Path:
    """A fresh admin token in ``tmp/admin.token``, readable by its owner only."""
    path = tmp / "admin.token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path


@dataclass
class Step:
    who: str
    title: str
    method: str
    path: str
    body: Any = None


def _call(port: int, token: str | None, step: Step) -> tuple[int, bytes]:
    data = json.dumps(step.body).encode() if step.body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{step.path}", data=data, method=step.method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _summary(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:120].decode("utf-8", "replace")
    if isinstance(doc, dict) and "errors" in doc:
        return "; ".join(f"{e['in']} {e['pointer'] or '/'} {e['reason']}" for e in doc["errors"][:4])
    if isinstance(doc, dict) and "title" in doc and "type" in doc:
        return str(doc.get("detail") or doc["title"])
    if isinstance(doc, dict):
        return "fields: " + ", ".join(sorted(doc))
    if isinstance(doc, list):
        ids = [str(x.get("id")) for x in doc if isinstance(x, dict)]
        return f"{len(doc)} item(s), ids {', '.join(ids)}"
    return json.dumps(doc)[:120]


def walkthrough(
    port: int, upstream_port: int, issuer: str, partner_secret: str
) -> list[tuple[Step, int, str]]:
    from apishield.demo_client import mobile_token, partner_token, revoke

    alice = mobile_token(
        issuer,
        "alice",
        PASSWORD,
        "http://127.0.0.1:8765/callback",
        "customers:read customers:write orders:read",
    )["access_token"]
    partner = partner_token(issuer, "partner-portal", partner_secret, "customers:read orders:read")
    tokens = {"anonymous": None, "alice (mobile app)": alice, "partner-portal": partner}
    a, p, anon = "alice (mobile app)", "partner-portal", "anonymous"
    steps = [
        Step(anon, "No access token", "GET", "/v1/customers/1"),
        Step(a, "Her own record", "GET", "/v1/customers/1"),
        Step(a, "Another customer's record (BOLA)", "GET", "/v1/customers/2"),
        Step(p, "The partner's customers only, without personal data", "GET", "/v1/customers"),
        Step(p, "Another partner's customer (BOLA)", "GET", "/v1/customers/3"),
        Step(
            p,
            "A write without the scope for it",
            "PUT",
            "/v1/customers/1",
            {"name": "Alice", "email": "alice@example.com", "status": "active"},
        ),
        Step(a, "An undocumented endpoint (exists in the service)", "GET", "/v1/internal/debug"),
        Step(a, "SQL injection through an enum parameter", "GET", "/v1/customers?sort=name%20DESC;--"),
        Step(
            a,
            "An invalid body (bad e-mail, bad country)",
            "PUT",
            "/v1/customers/1",
            {"name": "Alice", "email": "not-an-email", "status": "active", "address": {"country": "gb"}},
        ),
        Step(
            a,
            "Mass assignment: a read-only id and an undeclared isAdmin",
            "PUT",
            "/v1/customers/1",
            {"id": 99, "name": "Alice", "email": "alice@example.com", "status": "active", "isAdmin": True},
        ),
        Step(
            a,
            "Setting a property only support may set",
            "PUT",
            "/v1/customers/1",
            {"name": "Alice", "email": "alice@example.com", "status": "active", "tier": "gold"},
        ),
        Step(
            anon,
            "Login with an unknown user",
            "POST",
            "/v1/login",
            {"username": "nobody", "password": "x" * 12},
        ),
        Step(
            anon,
            "Login with a wrong password",
            "POST",
            "/v1/login",
            {"username": "alice", "password": "x" * 12},
        ),
    ]
    out = []
    direct = _call(upstream_port, None, steps[1])[1]
    for step in steps:
        status, body = _call(port, tokens[step.who], step)
        summary = _summary(body)
        if step is steps[1] and status == 200:
            hidden = sorted(set(json.loads(direct)) - set(json.loads(body)))
            summary += f" (removed by the gateway: {', '.join(hidden)})"
        out.append((step, status, summary))
    out += _enumeration(port, issuer)
    revoke(issuer, alice, "mobile-app")
    revoked = Step(a, "Her token after she revoked it at the issuer", "GET", "/v1/customers/1")
    deadline = time.monotonic() + 2
    status, body = _call(port, alice, revoked)
    while status == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        status, body = _call(port, alice, revoked)
    out.append((revoked, status, _summary(body)))
    return out


def _enumeration(port: int, issuer: str) -> list[tuple[Step, int, str]]:
    """Bob walks other customers' ids; the enumeration detector alerts and blocks him."""
    from apishield.demo_client import mobile_token

    bob = mobile_token(
        issuer, "bob", PASSWORD, "http://127.0.0.1:8765/callback", "customers:read orders:read"
    )["access_token"]
    who = "bob (mobile app)"
    refused = 0
    for customer in range(3, 21):
        status, _ = _call(port, bob, Step(who, "", "GET", f"/v1/customers/{customer}"))
        refused += status == 404
    walk = Step(who, "An enumeration walk over customer ids 3 to 20", "GET", "/v1/customers/{3..20}")
    summary = f"{refused} of 18 refused as not found (each one is a BOLA refusal)"
    own = Step(who, "His own record, right after the walk", "GET", "/v1/customers/2")
    deadline = time.monotonic() + 5
    status, body = _call(port, bob, own)
    while status != 403 and time.monotonic() < deadline:
        time.sleep(0.1)
        status, body = _call(port, bob, own)
    note = "blocked for 10 minutes by the enumeration detector (its alert is in the console)"
    return [(walk, 404, summary), (own, status, note if status == 403 else _summary(body))]


def _print_walkthrough(results: list[tuple[Step, int, str]]) -> None:
    print("Walkthrough (each request sent through the gateway):")
    for step, status, summary in results:
        verdict = "allowed " if status < 400 else "refused "
        print(f"  {verdict}{status}  {step.method:6} {step.path}   [{step.who}]")
        print(f"           {step.title}: {summary}")
    print()


async def _serve(port: int, upstream_port: int, issuer_port: int, walk: bool, admin_port: int = 9090) -> int:
    from apishield.issuer import create_issuer_app
    from apishield.issuer.demo import bootstrap_demo

    folder = example_dir()
    tmp = Path(tempfile.mkdtemp(prefix="apishield-demo-"))
    servers: list[QuietServer] = []
    try:
        issuer_url = f"http://127.0.0.1:{issuer_port}"
        print("preparing the demo issuer (keys, clients, users)...", file=sys.stderr, flush=True)
        demo = await asyncio.to_thread(bootstrap_demo, tmp / "issuer", issuer_url, "customer-api")
        policy = demo_policy(
            folder,
            tmp,
            upstream_port,
            port,
            demo.gateway_jwt_provider(),
            demo.revocation_store,
            admin_port,
            respond=True,
        )
        runtime = load_runtime(policy)
        gateway = Gateway.from_runtime(runtime)
        # the issuer's Authentication events go to the same audit trail (and detectors) as the gateway's
        issuer_app = create_issuer_app(demo.settings, audit=runtime.pipeline.recorder)
        servers = [
            QuietServer(uvicorn_config(issuer_app, "127.0.0.1", issuer_port)),
            QuietServer(
                uvicorn_config(load_example_app(folder, tmp / "customers.db"), "127.0.0.1", upstream_port)
            ),
            QuietServer(uvicorn_config(gateway, "127.0.0.1", port)),
        ]
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for server in servers:
                server.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        tasks = [asyncio.create_task(server.serve()) for server in servers[:2]]
        while not all(s.started for s in servers[:2]):
            if any(t.done() for t in tasks):
                stop()
                await asyncio.gather(*tasks, return_exceptions=True)
                print("apishield demo: a server could not start (is the port in use?)", file=sys.stderr)
                return 1
            await asyncio.sleep(0.05)
        tasks.append(
            asyncio.create_task(servers[2].serve())
        )  # the gateway fetches the issuer's keys at start
        while not servers[2].started:
            if tasks[2].done():
                stop()
                await asyncio.gather(*tasks, return_exceptions=True)
                print("apishield demo: the gateway could not start (is the port in use?)", file=sys.stderr)
                return 1
            await asyncio.sleep(0.05)
        print(f"""
apishield demo
  gateway           http://127.0.0.1:{port}   (the only way in)
  example service   http://127.0.0.1:{upstream_port}   (unprotected, for comparison)
  issuer            {issuer_url}   (OAuth 2.0: clients mobile-app, partner-portal, globex-portal)
  users             alice, bob, carol, dave, erin, frank (customers 1-6), sam (support);
                    password "{PASSWORD}"
  audit trail       {tmp / "audit.db"}   (one OCSF event per request and sign-in)
                    apishield events --db {tmp / "audit.db"}
  console           http://127.0.0.1:{admin_port}/console   (sign in with the token in {tmp / "admin.token"})
  admin             http://127.0.0.1:{admin_port}/metrics   (Prometheus; the token as a bearer), /healthz
""")
        if walk:
            results = await asyncio.to_thread(
                walkthrough, port, upstream_port, issuer_url, demo.partner_portal_secret
            )
            _print_walkthrough(results)
        print(
            f"""Try it yourself:
  TOKEN=$({demo.token_command()})
  curl -s http://127.0.0.1:{port}/v1/customers -H "Authorization: Bearer $TOKEN"
  curl -s http://127.0.0.1:{port}/v1/customers/3 -H "Authorization: Bearer $TOKEN"
  curl -s http://127.0.0.1:{port}/v1/internal/debug -H "Authorization: Bearer $TOKEN"
Press Ctrl-C to stop.""",
            flush=True,
        )
        await asyncio.gather(*tasks)
        print("\nstopped.")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_demo(
    port: int = 8080,
    upstream_port: int = 9000,
    walkthrough: bool = True,
    issuer_port: int = 8081,
    admin_port: int = 9090,
) -> int:
    return asyncio.run(_serve(port, upstream_port, issuer_port, walkthrough, admin_port))
