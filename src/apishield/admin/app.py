"""The admin listener's ASGI application: a small route table behind one credential.

No framework: the admin side serves a handful of GET routes, and a route
table keeps it open to more (a web console registers its pages with
:meth:`AdminApp.route`; ``prefix=True`` hands it a whole subtree). Each
route says which methods it takes and whether it is *public* (answered
without the credential). The built-in routes:

* ``/metrics`` (credential): the registry in Prometheus text 0.0.4, or
  OpenMetrics 1.0 when the scraper's ``Accept`` asks for it;
* ``/healthz`` and ``/readyz`` (public): liveness and readiness
  (:mod:`apishield.admin.readiness`). They are public so that orchestrator
  probes need no secret; they reveal only the names of failing checks.

Refusals are RFC 9457 problems: 401 without the credential (with
``WWW-Authenticate: Bearer``, RFC 6750 §3), 404 for an unknown path, 405
with ``Allow`` for a method a route does not take. Every answer carries
``Cache-Control: no-store``. ``HEAD`` is answered wherever ``GET`` is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from apishield.admin.credential import AdminCredential, AdminUnauthorized
from apishield.admin.exposition import negotiate, render
from apishield.admin.readiness import Readiness
from apishield.admin.registry import Registry
from apishield.problem import PROBLEM_CONTENT_TYPE, MethodNotAllowed, NotFound, Problem

__all__ = ["AdminApp", "AdminRequest", "Answer", "Route", "health_routes", "metrics_route"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class AdminRequest:
    """What a route handler sees of a request; ``receive`` is there for handlers that read a body."""

    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    receive: Receive
    client: str | None = None  # the peer address (a login throttle's key), when the server knows it

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, value: Any) -> Answer:
        return cls(status, orjson.dumps(value))

    @classmethod
    def problem(cls, problem: Problem) -> Answer:
        return cls(problem.http_status, problem.body(), PROBLEM_CONTENT_TYPE, list(problem.headers))


Handler = Callable[[AdminRequest], Awaitable[Answer]]


@dataclass(frozen=True)
class Route:
    path: str
    handler: Handler
    methods: frozenset[str] = frozenset({"GET", "HEAD"})
    public: bool = False  # answered without the admin credential
    prefix: bool = False  # also answers every path below ``path`` + "/"


class AdminApp:
    """ASGI callable for the admin listener."""

    def __init__(self, credential: AdminCredential, routes: Iterable[Route] = ()) -> None:
        self.credential = credential
        self.routes: dict[str, Route] = {}
        self._prefixes: list[Route] = []
        for route in routes:
            self.add(route)

    def add(self, route: Route) -> None:
        if not route.path.startswith("/") or route.path in self.routes:
            raise ValueError(f"admin route {route.path!r} is invalid or taken")
        methods = set(route.methods)
        if "GET" in methods:
            methods.add("HEAD")
        route = Route(route.path, route.handler, frozenset(methods), route.public, route.prefix)
        self.routes[route.path] = route
        if route.prefix:
            self._prefixes.append(route)
            self._prefixes.sort(key=lambda r: len(r.path), reverse=True)

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        *,
        public: bool = False,
        prefix: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`: ``@app.route("/console")``."""

        def register(handler: Handler) -> Handler:
            self.add(Route(path, handler, frozenset(methods), public, prefix))
            return handler

        return register

    def find(self, path: str) -> Route | None:
        route = self.routes.get(path)
        if route is not None:
            return route
        for candidate in self._prefixes:
            if path.startswith(candidate.path.rstrip("/") + "/"):
                return candidate
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        peer = scope.get("client")
        request = AdminRequest(
            method,
            scope["path"],
            scope.get("query_string", b""),
            scope["headers"],
            receive,
            str(peer[0]) if peer else None,
        )
        answer = await self._answer(request)
        headers = [
            (b"content-type", answer.content_type),
            (b"content-length", str(len(answer.body)).encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            *answer.headers,
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else answer.body})

    async def _answer(self, request: AdminRequest) -> Answer:
        route = self.find(request.path)
        if route is None:
            return Answer.problem(NotFound(detail="No admin route at this path."))
        if not route.public and not self.credential.accepts(request.header(b"authorization")):
            presented = request.header(b"authorization") is not None
            challenge = b'Bearer realm="apishield-admin"' + (b', error="invalid_token"' if presented else b"")
            return Answer.problem(
                AdminUnauthorized(
                    detail="Send the admin token as 'Authorization: Bearer <token>'.",
                    headers=[(b"www-authenticate", challenge)],
                )
            )
        if request.method not in route.methods:
            return Answer.problem(MethodNotAllowed.for_methods(route.methods))
        return await route.handler(request)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def metrics_route(registry: Registry) -> Route:
    """``GET /metrics``: the registry, in the format the scraper asks for."""

    async def metrics(request: AdminRequest) -> Answer:
        accept = request.header(b"accept")
        content_type = negotiate(accept.decode("latin-1") if accept is not None else None)
        return Answer(200, render(registry, content_type), content_type.encode())

    return Route("/metrics", metrics)


def health_routes(readiness: Readiness) -> list[Route]:
    """``GET /healthz`` (the process answers) and ``GET /readyz`` (started and every check passes)."""

    async def healthz(_request: AdminRequest) -> Answer:
        return Answer.json(200, {"status": "pass"})

    async def readyz(_request: AdminRequest) -> Answer:
        ready, body = await readiness.evaluate()
        return Answer.json(200 if ready else 503, body)

    return [Route("/healthz", healthz, public=True), Route("/readyz", readyz, public=True)]
