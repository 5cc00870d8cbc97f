"""``Shield``: the decision core as pure ASGI middleware, in the application's own process.

Usage, with any ASGI application (Starlette conventions)::

    from apishield import Shield

    app.add_middleware(Shield, config="apishield.yaml")                     # document named by the policy
    app.add_middleware(Shield, config="apishield.yaml", openapi=app.openapi)  # FastAPI's own document

Add it last, so it is the outermost middleware of the application: its own
rejections then pass through nothing that could drop their headers, and every
request, refused or not, gets its decision record.

This adapter mirrors the gateway (:mod:`apishield.proxy.gateway`) call for
call; only the "upstream" differs. It reads the request head and, only when
the core expects a body, the body up to the core's limit; it resolves the
effects the core asks for (key refreshes, introspection, key lookups, write
pre-checks); then it calls the wrapped application with the validated
request (:mod:`apishield.middleware.inner`), captures its whole answer, and
hands it to the core before a byte reaches the client. The verified caller
is in ``scope["apishield"]`` (an :class:`~apishield.auth.principal.Principal`).

The reply is sent as soon as the application has sent its last body part,
from within that call, so work the application does afterwards (Starlette
background tasks) does not delay the client, as without the middleware.

Error policy, as at the gateway: no exception reaches the client as a
traceback. An exception in the middleware, in a resource loader or in the
application before it answered becomes a 500 problem, logged with the
request id (logger ``apishield.middleware``); an exception the application
raises after its answer is logged. WebSocket connections are refused
(close code 1008): an OpenAPI document does not describe them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from apishield.audit.writer import AuditUnavailable
from apishield.auth.principal import Principal
from apishield.core.effects import FetchResource
from apishield.core.exchange import Exchange, Reply, RequestHead
from apishield.core.stage import problem_reply
from apishield.middleware.inner import (
    Capture,
    ResponseTooLarge,
    child_scope,
    decoded_path,
    replay_receive,
    route_target,
    single_receive,
)
from apishield.middleware.lifespan import run_lifespan
from apishield.middleware.loader import DocumentSource, load_middleware_runtime
from apishield.middleware.resources import ResourceLoader, ResourceRequest, check_loaders, load_resource
from apishield.middleware.types import ASGIApp, Receive, Scope, Send
from apishield.problem import BadGateway, Problem, ServiceUnavailable
from apishield.ratelimit.service import RateLimitService
from apishield.runtime import Runtime
from apishield.services.asgi_body import ClientGone, read_request_body
from apishield.services.effects import EffectRunner
from apishield.services.observability import Observability

__all__ = ["Shield", "principal_of"]

logger = logging.getLogger("apishield.middleware")

FAILED = "The request could not be completed; the incident was recorded."


class _Call:
    """Per-request state shared with the capture callback."""

    __slots__ = ("child", "sent")

    def __init__(self) -> None:
        self.sent = False
        self.child: Scope | None = None


def _route_operation(scope: Scope) -> str | None:
    """The operation the framework routed to, when it says (FastAPI's ``APIRoute`` in ``scope["route"]``).

    Declaration order decides in FastAPI (``/items/{id}`` declared before
    ``/items/search`` takes ``/items/search``), the most specific path in
    OpenAPI: when the two disagree on an operation the document knows, the
    answer is refused (500, logged) rather than passed on under the checks of
    another operation.
    """
    route = scope.get("route")
    if route is None:
        return None
    op_id = getattr(route, "operation_id", None) or getattr(route, "unique_id", None)
    return op_id if isinstance(op_id, str) else None


class Shield:
    """Pure ASGI middleware over the decision core (one instance per worker process).

    ``config`` is the policy file. ``openapi`` overrides the document the policy
    names: a mapping, a callable returning one (``app.openapi``), or a file path;
    with it the policy needs no ``openapi:`` key, and ``upstream:`` is never
    needed. ``resources`` maps operation ids to ownership loaders
    (:mod:`apishield.middleware.resources`). The audit events go to the
    policy's ``audit:`` sink (SQLite by default); ``decision_log=None`` keeps
    them in memory only (``shield.pipeline.recorder``, bounded) and starts
    no writer, detection or admin listener: for tests and embedding. A prepared
    :class:`~apishield.runtime.Runtime` may be given instead of ``config``.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: str | os.PathLike[str] | None = None,
        *,
        openapi: DocumentSource | None = None,
        resources: Mapping[str, ResourceLoader] | None = None,
        runtime: Runtime | None = None,
        decision_log: Literal["policy"] | None = "policy",
    ) -> None:
        if runtime is None:
            if config is None:
                raise TypeError("Shield needs config= (the policy file) or runtime=")
            runtime = load_middleware_runtime(config, openapi)
        elif config is not None or openapi is not None:
            raise TypeError("give Shield either runtime= or config= (and openapi=), not both")
        for warning in runtime.warnings:
            logger.warning("%s", warning)
        self.app = app
        self.runtime = runtime
        self.pipeline = runtime.pipeline
        self.config = runtime.loaded.config
        self.resources = check_loaders(resources, runtime)
        self.effects = EffectRunner(runtime.auth, runtime.loaded.base_dir) if runtime.auth.enabled else None
        self.ratelimits = RateLimitService.for_pipeline(runtime.pipeline)
        self.observability: Observability | None = None
        if decision_log is not None:
            self.observability = Observability.for_runtime(
                runtime, effects=self.effects, limiter=self.ratelimits
            )
        self.max_response_bytes = self.config.limits.max_response_bytes
        identity = self.config.auth.identity_headers
        self._service_subject_header = identity.subject.lower().encode("latin-1")
        self._service_method_header = identity.auth_method.lower().encode("latin-1")
        # the core drops Host unless proxy.preserve_host; in process the client's Host is put back
        self._preserve_host = self.config.proxy.preserve_host
        self._started = False

    # -- lifespan ------------------------------------------------------------------------------
    async def startup(self) -> None:
        if not self._started:
            self._started = True
            if self.observability is not None:
                await self.observability.start()
            if self.ratelimits is not None:
                await self.ratelimits.start()
            if self.effects is not None:
                await self.effects.start()

    async def shutdown(self) -> None:
        if self._started:
            self._started = False
            if self.observability is not None:
                await self.observability.stop()  # after the last request: everything queued is written
            if self.effects is not None:
                await self.effects.stop()
            if self.ratelimits is not None:
                await self.ratelimits.stop()

    # -- ASGI ----------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await run_lifespan(self.app, scope, receive, send, self.startup, self.shutdown)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        prefix, raw_path = route_target(scope)
        head = RequestHead(
            method=scope["method"],
            raw_path=raw_path,
            query_string=scope.get("query_string", b""),
            headers=[(k.lower(), v) for k, v in scope["headers"]],
            client=scope.get("client"),
            server=scope.get("server"),
            scheme=scope.get("scheme", "http"),
            http_version=scope.get("http_version", "1.1"),
        )
        pipeline = self.pipeline
        ex = pipeline.begin(head)
        call = _Call()
        try:
            try:
                await self._settle(ex, scope)
                if ex.reply is None:
                    await read_request_body(self.pipeline, ex, receive)
                    await self._settle(ex, scope)
                if ex.reply is None:
                    await self._forward(ex, call, scope, prefix, receive, send)
                if not call.sent:
                    reply = pipeline.finish(ex)
            except ClientGone:
                return
            except Exception:
                logger.exception("internal error handling request %s", ex.request_id)
                ex.reply = problem_reply(Problem(detail=FAILED), ex.request_id)
                reply = pipeline.finish(ex)
                call.sent = False
            if not call.sent:
                await self._send(ex, reply, send)
        finally:
            if self.ratelimits is not None:
                self.ratelimits.release(ex)  # concurrency slots end with the exchange
        await self._after(ex)

    async def _send(self, ex: Exchange, reply: Reply, send: Send) -> None:
        observability = self.observability
        if observability is not None and observability.acknowledged:
            try:  # durability: acknowledged: send nothing whose audit event could still be lost
                await observability.durable()
            except AuditUnavailable:
                logger.error(
                    "request %s: its audit event could not be made durable; answering 503", ex.request_id
                )
                reply = problem_reply(
                    ServiceUnavailable(
                        detail="The request could not be recorded; retry shortly.",
                        headers=[(b"retry-after", b"1")],
                    ),
                    ex.request_id,
                )
        await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
        await send({"type": "http.response.body", "body": b"" if ex.request.method == "HEAD" else reply.body})

    async def _after(self, ex: Exchange) -> None:
        if self.observability is not None:
            self.observability.traced(ex)
        if ex.after_effects:
            if self.ratelimits is not None:
                self.ratelimits.after(ex.after_effects)
            if self.effects is not None:
                await self.effects.after(ex.after_effects)
        if not self._started and self.observability is not None:
            # no lifespan (some servers and test clients skip it): the audit writer starts at the
            # first request (idempotent); events of a process that exits without shutdown may be lost
            await self.observability.start()

    # -- effects -------------------------------------------------------------------------------
    async def _settle(self, ex: Exchange, scope: Scope) -> None:
        """Resolve the effects the pipeline asks for until the phase completes."""
        rounds = 0
        while ex.pending is not None:
            rounds += 1
            effect = ex.pending
            if rounds > 8:
                raise RuntimeError(f"too many effects for one request: {effect!r}")
            if isinstance(effect, FetchResource):
                loader = self.resources.get(ex.operation_id or "")
                if loader is not None:
                    if not await self._load_resource(ex, effect, loader, scope):
                        return
                else:
                    ex.resolved[effect] = await self._read_resource(effect, scope)
            elif self.ratelimits is not None and self.ratelimits.handles(effect):
                ex.resolved[effect] = await self.ratelimits.run(effect)
            elif self.effects is not None:
                ex.resolved[effect] = await self.effects.run(effect)
            else:
                raise RuntimeError(f"no runner for effect {effect!r}")
            self.pipeline.resume(ex)

    async def _load_resource(
        self, ex: Exchange, effect: FetchResource, loader: ResourceLoader, scope: Scope
    ) -> bool:
        """Ask the application's loader instead of reading over HTTP; False if it failed (reply set)."""
        op_id = ex.operation_id or ""
        request = ResourceRequest(op_id, dict(ex.params.get("path", ex.path_params)), ex.principal, scope)
        try:
            ex.resolved[effect] = await load_resource(loader, request)
        except Exception:
            logger.exception("resource loader for %s failed on request %s", op_id, ex.request_id)
            ex.pending = None
            ex.decide("object_access", "error", "the resource loader failed", rule=op_id)
            ex.reply = problem_reply(Problem(detail=FAILED), ex.request_id)
            return False
        return True

    def _host(self, scope: Scope) -> bytes | None:
        return next((v for k, v in scope.get("headers", ()) if k.lower() == b"host"), None)

    async def _read_resource(self, effect: FetchResource, scope: Scope) -> tuple[int, Any]:
        """Read a resource from the application with the service identity (write pre-checks)."""
        headers = [
            (b"accept", b"application/json"),
            (self._service_subject_header, effect.subject.encode("utf-8")),
            (self._service_method_header, b"service"),
        ]
        # The pre-check reads as the service, not as the caller; "service" is not (yet) an AuthMethod.
        service = Principal(method="service", subject=effect.subject)
        prefix, _ = route_target(scope)
        host = self._host(scope)
        path = decoded_path(effect.target.partition(b"?")[0])
        child = child_scope(scope, prefix, "GET", effect.target, path, headers, host, 0, service)
        done = asyncio.Event()

        async def finished(_: Capture) -> None:
            done.set()

        capture = Capture(self.max_response_bytes, finished)
        try:
            await self.app(child, single_receive(done), capture.send)
        except Exception:
            if not capture.complete:
                logger.exception("the application failed a pre-check read of %s", effect.target.decode())
                return 502, None
        finally:
            done.set()
        if not capture.complete:
            return 502, None
        try:
            body = orjson.loads(capture.body) if capture.body else None
        except orjson.JSONDecodeError:
            body = None
        return capture.status, body

    # -- body and application ------------------------------------------------------------------
    async def _forward(
        self, ex: Exchange, call: _Call, scope: Scope, prefix: bytes, receive: Receive, send: Send
    ) -> None:
        """Call the application; the reply goes out from :meth:`_complete` when its answer is whole."""
        body = ex.forward_body
        request = ex.request
        child = child_scope(
            scope,
            prefix,
            request.method,
            ex.forward_target,
            "/" + "/".join(ex.segments),
            ex.forward_headers,
            None if self._preserve_host else request.header(b"host"),
            len(body),
            ex.principal,
        )
        call.child = child

        async def complete(capture: Capture) -> None:
            await self._complete(ex, call, capture, send)

        capture = Capture(self.max_response_bytes, complete)
        try:
            await self.app(child, replay_receive(body, receive), capture.send)
        except ResponseTooLarge:
            self.pipeline.upstream_failed(
                ex, BadGateway(detail="The application's answer is larger than limits.max_response_bytes.")
            )
            return
        except Exception:
            if call.sent:
                logger.exception("the application failed after answering request %s", ex.request_id)
            else:
                logger.exception("the application failed on request %s", ex.request_id)
                self.pipeline.upstream_failed(ex, Problem(detail=FAILED))
            return
        if not call.sent:
            logger.error("the application returned without a complete answer to request %s", ex.request_id)
            self.pipeline.upstream_failed(ex, Problem(detail=FAILED))

    async def _complete(self, ex: Exchange, call: _Call, capture: Capture, send: Send) -> None:
        """The application's answer is whole: decide on it and send the reply, once."""
        if call.sent:
            return
        pipeline = self.pipeline
        try:
            routed = _route_operation(call.child) if call.child is not None else None
            if routed is not None and routed != ex.operation_id and routed in self.runtime.api.operations:
                logger.error(
                    "request %s: the application routed to operation %s, apishield checked %s",
                    ex.request_id,
                    routed,
                    ex.operation_id,
                )
                pipeline.upstream_failed(ex, Problem(detail=FAILED))
            else:
                pipeline.upstream_response(ex, capture.status, capture.headers, capture.body)
            reply = pipeline.finish(ex)
        except Exception:
            logger.exception("internal error handling request %s", ex.request_id)
            ex.reply = problem_reply(Problem(detail=FAILED), ex.request_id)
            reply = pipeline.finish(ex)
        call.sent = True
        await self._send(ex, reply, send)

    def __repr__(self) -> str:
        return f"Shield(app={self.app!r}, policy={str(self.runtime.loaded.path)!r})"


def principal_of(scope: Scope) -> Principal | None:
    """The verified caller Shield put in ``scope`` (None if Shield did not handle this request)."""
    value = scope.get("apishield")
    return value if isinstance(value, Principal) else None
