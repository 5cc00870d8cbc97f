"""Audit test support: realistic events, a polling guard, a private PostgreSQL cluster.

Events come from the real builder (:func:`apishield.audit.event.build_api_activity`)
applied to hand-made exchanges, with a deterministic mix of operations,
subjects, clients, addresses, denials and errors; authentication events
(OCSF 3002) are crafted in the shape the issuer emits.

The private cluster is a PostgreSQL server of our own (``initdb`` and
``pg_ctl`` in a temporary folder, on a free port), so a test can stop it
under load and start it again without touching the shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests.support import free_port

from apishield.audit.event import build_api_activity
from apishield.auth.principal import Principal
from apishield.auth.rfc6750 import Forbidden, InsufficientScope, InvalidToken
from apishield.core.exchange import Exchange, Reply, RequestHead
from apishield.problem import BadGateway, Problem

OPERATIONS = [
    ("getCustomer", "GET", "/customers/{customerId}", "customerId"),
    ("updateCustomer", "PUT", "/customers/{customerId}", "customerId"),
    ("deleteCustomer", "DELETE", "/customers/{customerId}", "customerId"),
    ("listOrders", "GET", "/orders", None),
    ("getOrder", "GET", "/orders/{orderId}", "orderId"),
]
SUBJECTS = [f"user-{n}" for n in range(12)]
CLIENTS = ["mobile-app", "web-portal", "partner-sync", "batch-export"]
ADDRESSES = [f"198.51.100.{n}" for n in range(1, 9)]


def api_event(
    i: int,
    *,
    instance: str = "gw-test",
    time_ms: int | None = None,
    operation: int | None = None,
    subject: str | None = None,
    client: str | None = None,
    ip: str | None = None,
    outcome: str | None = None,
    object_id: str | None = None,
) -> dict[str, Any]:
    """Event number ``i`` of a deterministic mix; keywords pin one aspect."""
    rnd = random.Random(i)
    op_id, method, template, param = OPERATIONS[operation if operation is not None else i % len(OPERATIONS)]
    obj = object_id or str(rnd.randrange(1, 400))
    path = template.replace("{" + param + "}", obj) if param else template
    head = RequestHead(
        method,
        path.encode(),
        b"",
        [(b"host", b"api.example.test"), (b"user-agent", b"audit-tests/1.0")],
        client=(ip or ADDRESSES[rnd.randrange(len(ADDRESSES))], 40000 + i % 20000),
        server=("127.0.0.1", 8080),
    )
    ex = Exchange(head, f"req-{i:08d}", time.perf_counter_ns())
    ex.operation = SimpleNamespace(operation_id=op_id, template=template)  # type: ignore[assignment]
    if param:
        ex.path_params = {param: obj}
    ex.principal = Principal(
        method="bearer",
        subject=subject or SUBJECTS[rnd.randrange(len(SUBJECTS))],
        client_id=client or CLIENTS[rnd.randrange(len(CLIENTS))],
        issuer="https://issuer.example.test",
        scopes=frozenset({"customers:read"}),
        token_id=f"token-id-{i}",
    )
    ex.decide("authentication", "allow", "bearer token verified")
    kind = outcome or rnd.choices(["ok", "forbidden", "scope", "token", "upstream"], [80, 8, 5, 4, 3])[0]
    problem: Problem | None = {
        "ok": None,
        "forbidden": Forbidden(detail="not the owner"),
        "scope": InsufficientScope(detail="customers:write is required"),
        "token": InvalidToken(detail="the token expired"),
        "upstream": BadGateway(detail="the upstream closed the connection"),
    }[kind]
    if problem is None:
        ex.decide("authorization", "allow", "rule owner matched", rule="owner")
        ex.upstream_status = 200
        ex.reply = Reply(200, [], b'{"id": 1}', from_upstream=True)
    else:
        if kind != "upstream":
            ex.decide("authorization", "deny", problem.detail or "", rule="owner")
        ex.reply = Reply(problem.http_status, [], problem.body(ex.request_id), problem=problem)
    event = build_api_activity(ex, instance, {"route": 3, "authentication": 11})
    if time_ms is not None:
        event["time"] = time_ms
        event["start_time"] = time_ms - event["duration"]
    return event


def auth_event(
    i: int, *, instance: str = "issuer-test", success: bool = True, time_ms: int | None = None
) -> dict:
    """An OCSF Authentication (3002) event as the issuer emits it."""
    now = time_ms if time_ms is not None else int(time.time() * 1000)
    return {
        "class_uid": 3002,
        "category_uid": 3,
        "activity_id": 1,
        "type_uid": 300201,
        "severity_id": 1 if success else 3,
        "time": now,
        "status_id": 1 if success else 2,
        "status": "Success" if success else "Failure",
        "metadata": {"version": "1.8.0", "uid": os.urandom(16).hex(), "product": {"name": "apishield"}},
        "user": {"name": SUBJECTS[i % len(SUBJECTS)]},
        "src_endpoint": {"ip": ADDRESSES[i % len(ADDRESSES)]},
        "service": {"name": "issuer"},
        "unmapped": {"instance": instance, "grant_type": "password"},
    }


def event_stream(
    n: int, *, instance: str = "gw-test", start_ms: int | None = None, step_ms: int = 0
) -> Iterator[dict]:
    start = start_ms if start_ms is not None else int(time.time() * 1000)
    for i in range(n):
        yield api_event(i, instance=instance, time_ms=start + i * step_ms if step_ms else None)


async def until(check: Callable[[], bool], what: str, within: float = 30.0) -> None:
    """Poll ``check`` on the loop until it holds. A hang guard, not a timing test."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: still not the case after {within:.0f} s")
        await asyncio.sleep(0.01)


def uids(events: list[dict]) -> set[str]:
    return {e["metadata"]["uid"] for e in events}


# -- a private PostgreSQL cluster -------------------------------------------------------------


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) + sorted(
        glob.glob("/usr/pgsql-*/bin/initdb")
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PrivateCluster:
    bindir: Path
    root: Path
    port: int
    as_user: list[str]

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("start", "-w", "-l", str(self.root / "log"), "-o", options)

    def stop(self) -> None:
        """An immediate shutdown: every connection is cut, new ones are refused."""
        self._ctl("stop", "-w", "-m", "immediate")


def start_private_cluster() -> Iterator[PrivateCluster]:
    """A cluster for the duration of the generator; skips (fails under CI) without the binaries."""
    bindir = _bindir()
    if bindir is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (under CI, tests needing them fail instead of skipping)")
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="apishield-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as the postgres user
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(root / "data"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
        cluster = PrivateCluster(bindir, root, free_port(), as_user)
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
                cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


DAY_MS = 86_400_000
