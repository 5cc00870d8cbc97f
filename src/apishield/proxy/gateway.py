"""The reverse-proxy gateway: a raw ASGI application over the decision pipeline.

This adapter owns all the I/O: it reads the request from the ASGI server,
reads the body only when the pipeline expects one and only up to its limit,
sends the validated request upstream through :class:`UpstreamPool`, and
writes the reply. Every decision is the pipeline's.

Error policy: an exception inside the gateway never reaches the client as a
traceback; it becomes a 500 problem and is logged with the request id.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

import orjson

from apishield.audit.writer import AuditUnavailable
from apishield.config.model import Config
from apishield.core.effects import FetchResource
from apishield.core.exchange import Exchange, Reply, RequestHead
from apishield.core.pipeline import Pipeline
from apishield.core.stage import problem_reply
from apishield.problem import BadGateway, GatewayTimeout, Problem, ServiceUnavailable
from apishield.proxy.client import UpstreamError, UpstreamPool, UpstreamTimeout
from apishield.ratelimit.service import RateLimitService
from apishield.runtime import Runtime
from apishield.services.asgi_body import ClientGone, read_request_body
from apishield.services.effects import EffectRunner
from apishield.services.observability import Observability
from apishield.transport.protocol import client_cert_der

__all__ = ["Gateway"]

logger = logging.getLogger("apishield.gateway")

Scope = dict[str, Any]


class Gateway:
    """ASGI application: ``uvicorn`` serves it; one instance per worker process."""

    def __init__(self, pipeline: Pipeline, config: Config, effects: EffectRunner | None = None) -> None:
        self.pipeline = pipeline
        self.config = config
        self.pool: UpstreamPool | None = None
        self.effects = effects
        self.ratelimits = RateLimitService.for_pipeline(pipeline)
        self._started = False
        self.base_dir = Path(".")  # the policy's folder, for relative paths (set by from_runtime)
        # the audit writer, detection and the admin listener (set by from_runtime); without it the
        # events stay in ``pipeline.recorder`` (bounded), as when a pipeline is used on its own
        self.observability: Observability | None = None

    @classmethod
    def from_runtime(cls, runtime: Runtime, config: Config | None = None, *, admin: bool = True) -> Gateway:
        """The gateway for a loaded policy (``config`` may override it, e.g. the demo's ports).

        ``admin=False`` leaves out the admin listener (a worker of several, which cannot all bind it).
        """
        runner = EffectRunner(runtime.auth, runtime.loaded.base_dir) if runtime.auth.enabled else None
        gateway = cls(runtime.pipeline, config or runtime.loaded.config, runner)
        gateway.base_dir = runtime.loaded.base_dir
        gateway.observability = Observability.for_runtime(
            runtime, effects=runner, limiter=gateway.ratelimits, admin=admin
        )
        return gateway

    def _make_pool(self) -> UpstreamPool:
        proxy = self.config.proxy
        context = None
        if self.config.upstream.startswith("https://"):
            from apishield.transport.tls import upstream_context

            context = upstream_context(proxy.tls, self.base_dir)  # relative paths: the policy's folder
        return UpstreamPool(
            self.config.upstream,
            ssl_context=context,
            connect_timeout=proxy.connect_timeout,
            read_timeout=proxy.read_timeout,
            max_connections=proxy.max_connections,
            max_response_bytes=self.config.limits.max_response_bytes,
        )

    async def startup(self) -> None:
        # Everything built so far (compiled schemas, routers, key sets) lives as long as the
        # process: move it out of the collector's reach so collections scan request garbage only.
        gc.collect()
        gc.freeze()
        if self.pool is None:
            self.pool = self._make_pool()
        if self.observability is not None:
            await self.observability.start()
        if self.effects is not None and not self._started:
            self._started = True
            await self.effects.start()
        if self.ratelimits is not None:
            await self.ratelimits.start()

    async def shutdown(self) -> None:
        if self.observability is not None:
            await self.observability.stop()  # after the last request: everything queued is written
        if self.effects is not None and self._started:
            self._started = False
            await self.effects.stop()
        if self.ratelimits is not None:
            await self.ratelimits.stop()
        if self.pool is not None:
            await self.pool.aclose()
            self.pool = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # report, uvicorn exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        head = RequestHead(
            method=scope["method"],
            raw_path=scope.get("raw_path") or scope["path"].encode("utf-8"),
            query_string=scope.get("query_string", b""),
            headers=[(k.lower(), v) for k, v in scope["headers"]],
            client=scope.get("client"),
            server=scope.get("server"),
            scheme=scope.get("scheme", "http"),
            http_version=scope.get("http_version", "1.1"),
            client_cert=client_cert_der(scope) if "extensions" in scope else None,
        )
        pipeline = self.pipeline
        ex = pipeline.begin(head)
        try:
            try:
                await self._settle(ex)
                if ex.reply is None:
                    await read_request_body(self.pipeline, ex, receive)
                    await self._settle(ex)
                if ex.reply is None:
                    await self._forward(ex)
                reply = pipeline.finish(ex)
            except ClientGone:
                return
            except Exception:
                logger.exception("internal error handling request %s", ex.request_id)
                ex.reply = problem_reply(
                    Problem(detail="The gateway failed; the incident was recorded."), ex.request_id
                )
                reply = pipeline.finish(ex)
            if self.observability is not None and self.observability.acknowledged:
                reply = await self._acknowledge(ex, reply)
            await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
            await send({"type": "http.response.body", "body": b"" if head.method == "HEAD" else reply.body})
            if self.observability is not None:
                self.observability.traced(ex)
        finally:
            if self.ratelimits is not None:
                self.ratelimits.release(ex)  # concurrency slots end with the exchange
        if ex.after_effects:
            if self.ratelimits is not None:
                self.ratelimits.after(ex.after_effects)
            if self.effects is not None:
                await self.effects.after(ex.after_effects)

    async def _acknowledge(self, ex: Exchange, reply: Reply) -> Reply:
        """``durability: acknowledged``: send nothing whose audit event could still be lost."""
        assert self.observability is not None
        try:
            await self.observability.durable()
        except AuditUnavailable:
            logger.error(
                "request %s: its audit event could not be made durable; answering 503", ex.request_id
            )
            return problem_reply(
                ServiceUnavailable(
                    detail="The request could not be recorded; retry shortly.",
                    headers=[(b"retry-after", b"1")],
                ),
                ex.request_id,
            )
        return reply

    async def _settle(self, ex: Exchange) -> None:
        """Resolve the effects the pipeline asks for until the phase completes."""
        rounds = 0
        while ex.pending is not None:
            rounds += 1
            effect = ex.pending
            if rounds > 8:
                raise RuntimeError(f"too many effects for one request: {effect!r}")
            if self.ratelimits is not None and self.ratelimits.handles(effect):
                ex.resolved[effect] = await self.ratelimits.run(effect)
            elif isinstance(effect, FetchResource):
                ex.resolved[effect] = await self._fetch_resource(effect)
            elif self.effects is not None:
                ex.resolved[effect] = await self.effects.run(effect)
            else:
                raise RuntimeError(f"no runner for effect {effect!r}")
            self.pipeline.resume(ex)

    async def _fetch_resource(self, effect: FetchResource) -> tuple[int, Any]:
        """Read a resource with the gateway's own identity (write pre-checks)."""
        if self.pool is None:
            self.pool = self._make_pool()
        identity = self.config.auth.identity_headers
        headers = [
            (b"accept", b"application/json"),
            (identity.subject.lower().encode("latin-1"), effect.subject.encode("utf-8")),
            (identity.auth_method.lower().encode("latin-1"), b"service"),
        ]
        try:
            response = await self.pool.request("GET", effect.target, headers, b"")
        except UpstreamError:
            return 502, None
        try:
            body = orjson.loads(response.body) if response.body else None
        except orjson.JSONDecodeError:
            body = None
        return response.status, body

    async def _forward(self, ex: Exchange) -> None:
        if self.pool is None:
            self.pool = self._make_pool()
        try:
            response = await self.pool.request(
                ex.request.method, ex.forward_target, ex.forward_headers, ex.forward_body
            )
        except UpstreamTimeout:
            self.pipeline.upstream_failed(
                ex, GatewayTimeout(detail="The upstream service did not answer in time.")
            )
            return
        except UpstreamError:
            self.pipeline.upstream_failed(ex, BadGateway(detail="The upstream service could not be reached."))
            return
        self.pipeline.upstream_response(ex, response.status, response.headers, response.body)
