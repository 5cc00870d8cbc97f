"""The ASGI lifespan, shared between the middleware and the application it wraps.

The middleware has its own start and stop work (the JWKS warm-up and refresh,
revocation sync, store connections, the decision-log writer). The application
has its own lifespan too (its database pool, its caches). Both must run, in
the usual nesting: the middleware starts first and stops last.

The middleware reads the server's ``lifespan.startup`` message first and
runs its own startup; if that fails, the server is told
(``lifespan.startup.failed``, which stops uvicorn in every lifespan mode)
and the application is never started. Otherwise the message is handed to the
application, and every later message passes through; when the application
reports its shutdown complete (or failed), the middleware's shutdown runs
before the server hears of it. An application that does not speak the
lifespan protocol (it returns, or raises, without reading the startup
message) is left out, and the middleware answers the server on its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from apishield.middleware.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["run_lifespan"]

Hook = Callable[[], Awaitable[None]]


async def run_lifespan(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, startup: Hook, shutdown: Hook
) -> None:
    first = await receive()
    if first["type"] != "lifespan.startup":  # a server that stops before it starts
        await shutdown()
        await send({"type": "lifespan.shutdown.complete"})
        return
    try:
        await startup()
    except Exception as exc:
        await shutdown()
        await send({"type": "lifespan.startup.failed", "message": f"apishield: {exc}"})
        return
    handed = False

    async def app_receive() -> Message:
        nonlocal handed
        if not handed:
            handed = True
            return first
        return await receive()

    async def app_send(message: Message) -> None:
        if message["type"] in (
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        ):
            await shutdown()
        await send(message)

    try:
        await app(scope, app_receive, app_send)
    except Exception:
        if handed:
            await shutdown()
            raise
    else:
        if handed:
            await shutdown()  # idempotent; covers an application that returned without reporting
            return
    # the application does not speak the lifespan protocol: answer for the middleware alone
    await send({"type": "lifespan.startup.complete"})
    while True:
        message = await receive()
        if message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
