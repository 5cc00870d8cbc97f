"""Both adapters side by side: the gateway and the middleware, each over its own recording app.

Each side is served by uvicorn on a real socket. The gateway forwards to a
:class:`~tests.support.RecordingUpstream` on another socket; the middleware
wraps another ``RecordingUpstream`` in process. :meth:`Pair.same` sends one
request to both and asserts that they answer alike and that their upstreams
received alike (nothing, for a refusal).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from apishield import Shield
from apishield.core.stages.audit import AuditQueue
from apishield.proxy.gateway import Gateway
from apishield.runtime import load_runtime
from tests.support import Canned, Recorded, RecordingUpstream, Response, ServerThread, http, write_policy

ADAPTERS = ("gateway", "middleware")

# response headers both adapters must agree on (Date and X-Request-Id vary by nature)
REPLY_HEADERS = (
    "content-type",
    "content-length",
    "cache-control",
    "www-authenticate",
    "allow",
    "retry-after",
    "x-content-type-options",
    "location",
)
# request headers that differ by transport, not by decision: the upstream's authority and framing
TRANSPORT_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "transfer-encoding",
        "x-forwarded-host",
        "forwarded",
        "x-request-id",
    }
)


@dataclass
class Side:
    name: str
    server: ServerThread
    upstream: RecordingUpstream
    recorder: AuditQueue

    def call(
        self, method: str, target: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        return http(self.server.port, method, target, body, headers)


def problem_without_id(body: bytes) -> Any:
    """A problem body without its request id (the only member that differs between two answers)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if isinstance(doc, dict):
        doc.pop("request_id", None)
    return doc


def comparable(rec: Recorded) -> tuple[str, str, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in rec.headers if k not in TRANSPORT_HEADERS)
    return rec.method, rec.target, rec.body, headers


@dataclass
class Pair:
    sides: dict[str, Side]

    def __getitem__(self, name: str) -> Side:
        return self.sides[name]

    def reset(self) -> None:
        for side in self.sides.values():
            side.upstream.received.clear()
            side.upstream.answers.clear()

    def answer(self, method: str, path: str, status: int = 200, body: Any = None, **kw: Any) -> None:
        for side in self.sides.values():
            side.upstream.answer(method, path, status, body, **kw)

    def answer_with(self, method: str, path: str, canned: Canned) -> None:
        for side in self.sides.values():
            side.upstream.answers[(method, path)] = canned

    def same(
        self,
        method: str,
        target: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        status: int,
        forwarded: int = 1,
    ) -> dict[str, Response]:
        """One request through both adapters: equal answers, equal upstream records; returns the answers."""
        for side in self.sides.values():
            side.upstream.received.clear()
        answers = {name: side.call(method, target, body, headers) for name, side in self.sides.items()}
        gw, mw = answers["gateway"], answers["middleware"]
        assert gw.status == status, gw.body
        assert mw.status == status, mw.body
        assert problem_without_id(gw.body) == problem_without_id(mw.body)
        for name in REPLY_HEADERS:
            assert gw.headers.get(name) == mw.headers.get(name), name
        for r in (gw, mw):
            assert "x-request-id" in r.headers and "date" in r.headers
        received = {
            name: [comparable(r) for r in side.upstream.received] for name, side in self.sides.items()
        }
        assert len(received["gateway"]) == forwarded, received["gateway"]
        assert received["gateway"] == received["middleware"]
        return answers


@contextlib.contextmanager
def shield_server(app: Any, **options: Any) -> Iterator[tuple[ServerThread, Shield]]:
    """``Shield(app, **options)`` under uvicorn on a real socket (decision records kept in memory)."""
    options.setdefault("decision_log", None)
    shield = Shield(app, **options)
    server = ServerThread(shield).start()
    try:
        yield server, shield
    finally:
        server.stop()


@contextlib.contextmanager
def pair_for(tmp: Path, openapi: Path, **policy: Any) -> Iterator[Pair]:
    """The gateway and the middleware under one policy, each in front of its own recording app."""
    gw_upstream = RecordingUpstream()
    up = ServerThread(gw_upstream).start()
    try:
        path = write_policy(tmp, openapi, up.port, **policy)
        gateway = Gateway.from_runtime(load_runtime(path))
        gw_server = ServerThread(gateway).start()
        try:
            mw_upstream = RecordingUpstream()
            with shield_server(mw_upstream, config=path) as (mw_server, shield):
                yield Pair(
                    {
                        "gateway": Side("gateway", gw_server, gw_upstream, gateway.pipeline.recorder),
                        "middleware": Side("middleware", mw_server, mw_upstream, shield.pipeline.recorder),
                    }
                )
        finally:
            gw_server.stop()
    finally:
        up.stop()
