"""``apishield demo``: the example customer API behind the gateway, in one command.

Starts the example service (``examples/customer_api``, SQLite in a temporary
folder) and the gateway in front of it in one process, then walks through a
few requests, allowed and refused, printing what happened and why. Ctrl-C
stops both servers cleanly.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import signal
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from apishield.proxy.gateway import Gateway
from apishield.proxy.server import QuietServer, uvicorn_config
from apishield.runtime import load_runtime

__all__ = ["example_dir", "run_demo"]


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


@dataclass
class Step:
    title: str
    method: str
    path: str
    body: Any = None
    expect: str = ""


STEPS = [
    Step(
        "A documented read",
        "GET",
        "/v1/customers/1",
        expect="200; riskScore, passwordHash, internalNotes removed",
    ),
    Step("An undocumented endpoint (exists in the service)", "GET", "/v1/internal/debug", expect="404"),
    Step("SQL injection through an enum parameter", "GET", "/v1/customers?sort=name%20DESC;--", expect="400"),
    Step("An unknown query parameter", "GET", "/v1/customers?debug=1", expect="400"),
    Step(
        "An invalid body (bad e-mail, bad country)",
        "PUT",
        "/v1/customers/1",
        {"name": "Alice", "email": "not-an-email", "status": "active", "address": {"country": "gb"}},
        "400",
    ),
    Step(
        "Mass assignment: a read-only id and an undeclared isAdmin",
        "PUT",
        "/v1/customers/1",
        {"id": 99, "name": "Alice", "email": "alice@example.com", "status": "active", "isAdmin": True},
        "400",
    ),
    Step(
        "Login with an unknown user",
        "POST",
        "/v1/login",
        {"username": "nobody", "password": "x" * 12},
        "401, same answer as a wrong password",
    ),
    Step(
        "Login with a wrong password",
        "POST",
        "/v1/login",
        {"username": "alice", "password": "x" * 12},
        "401, same answer as an unknown user",
    ),
]


def _call(port: int, step: Step) -> tuple[int, bytes]:
    data = json.dumps(step.body).encode() if step.body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{step.path}", data=data, method=step.method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
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
    return json.dumps(doc)[:120]


def walkthrough(port: int, upstream_port: int) -> list[tuple[Step, int, str]]:
    out = []
    direct_status, direct = _call(upstream_port, STEPS[0])
    hidden = (
        sorted(set(json.loads(direct)) - set(json.loads(_call(port, STEPS[0])[1])))
        if direct_status == 200
        else []
    )
    for step in STEPS:
        status, body = _call(port, step)
        summary = _summary(body)
        if step is STEPS[0] and hidden:
            summary += f" (removed by the gateway: {', '.join(hidden)})"
        out.append((step, status, summary))
    return out


def _print_banner(port: int, upstream_port: int, folder: Path) -> None:
    print(f"""
apishield demo
  gateway           http://127.0.0.1:{port}   (the only way in)
  example service   http://127.0.0.1:{upstream_port}   (unprotected, for comparison)
  policy            {folder / "apishield.yaml"}
  API description   {folder / "openapi.yaml"}
""")


def _print_walkthrough(results: list[tuple[Step, int, str]]) -> None:
    print("Walkthrough (each request sent through the gateway):")
    for step, status, summary in results:
        verdict = "allowed " if status < 400 else "refused "
        print(f"  {verdict}{status}  {step.method:6} {step.path}")
        print(f"           {step.title}: {summary}")
    print()


def _print_try(port: int) -> None:
    print(
        f"""Try it yourself:
  curl -s http://127.0.0.1:{port}/v1/customers/1
  curl -s http://127.0.0.1:{port}/v1/internal/debug
  curl -s -X PUT http://127.0.0.1:{port}/v1/customers/1 -H 'Content-Type: application/json' \\
       -d '{{"name": "Alice", "email": "alice@example.com", "status": "active", "isAdmin": true}}'
Press Ctrl-C to stop.""",
        flush=True,
    )


async def _serve(port: int, upstream_port: int, walk: bool) -> int:
    folder = example_dir()
    tmp = Path(tempfile.mkdtemp(prefix="apishield-demo-"))
    try:
        runtime = load_runtime(folder / "apishield.yaml")
        config = runtime.loaded.config.model_copy(update={"upstream": f"http://127.0.0.1:{upstream_port}"})
        upstream = QuietServer(
            uvicorn_config(load_example_app(folder, tmp / "customers.db"), "127.0.0.1", upstream_port)
        )
        gateway = QuietServer(uvicorn_config(Gateway.from_runtime(runtime, config), "127.0.0.1", port))
        loop = asyncio.get_running_loop()

        def stop() -> None:
            upstream.should_exit = True
            gateway.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        tasks = [asyncio.create_task(upstream.serve()), asyncio.create_task(gateway.serve())]
        while not (upstream.started and gateway.started):
            if any(t.done() for t in tasks):
                stop()
                await asyncio.gather(*tasks, return_exceptions=True)
                print("apishield demo: a server could not start (is the port in use?)", file=sys.stderr)
                return 1
            await asyncio.sleep(0.05)
        _print_banner(port, upstream_port, folder)
        if walk:
            _print_walkthrough(await asyncio.to_thread(walkthrough, port, upstream_port))
        _print_try(port)
        await asyncio.gather(*tasks)
        print("\nstopped.")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_demo(port: int = 8080, upstream_port: int = 9000, walkthrough: bool = True) -> int:
    return asyncio.run(_serve(port, upstream_port, walkthrough))
