"""Calling the wrapped application in process: the middleware's "upstream".

Where the gateway sends the validated request over a socket, the middleware
calls the application it wraps with a rebuilt scope:

* ``path``/``raw_path``/``query_string`` come from the validated target the
  core built (``forward_target``), under the request's ``root_path``, so the
  application cannot read a different path or parameter than the one checked;
* ``headers`` are the core's ``forward_headers`` (identity headers set, client
  copies of them removed, hop-by-hop fields dropped), plus the client's
  ``Host`` (in process there is no upstream authority to put instead) and a
  ``Content-Length`` that matches the replayed body;
* ``receive`` replays the body that was read and validated, then passes on
  only the disconnect;
* the response is captured whole (:class:`Capture`): validation and stripping
  need the complete JSON body, so streaming responses are buffered, up to
  ``limits.max_response_bytes``.

Server extensions whose messages bypass the body (``http.response.pathsend``,
``zerocopysend``, trailers, pushes, early hints) are hidden from the
application, so every byte of the answer passes through the capture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from apishield.core.exchange import Headers
from apishield.middleware.types import Message, Receive, Scope

__all__ = [
    "Capture",
    "ResponseTooLarge",
    "child_scope",
    "decoded_path",
    "replay_receive",
    "route_target",
    "single_receive",
]

_HIDDEN_EXTENSIONS = frozenset(
    {
        "http.response.pathsend",
        "http.response.zerocopysend",
        "http.response.trailers",
        "http.response.push",
        "http.response.early_hint",
    }
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ResponseTooLarge(Exception):
    """The application's answer exceeds ``limits.max_response_bytes``."""


def decoded_path(raw_path: bytes) -> str:
    """The ASGI ``path`` of a raw path (percent-decoded, as servers decode it)."""
    return unquote(raw_path.decode("latin-1"))


def route_target(scope: Scope) -> tuple[bytes, bytes]:
    """Split the raw path at the ASGI ``root_path``: ``(prefix, path to route)``.

    OpenAPI paths of an application are relative to where it is mounted (FastAPI
    generates them so; the mount point belongs in ``servers``). Starlette mounts
    and ``uvicorn --root-path`` keep the prefix in ``raw_path`` and name it in
    ``root_path``; it is removed segment by segment, compared decoded. A path
    outside the root is routed whole (and so is not documented: 404).
    """
    raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    root = str(scope.get("root_path") or "").rstrip("/")
    if not root:
        return b"", raw
    wanted = root.split("/")[1:]
    parts = raw.split(b"/", len(wanted) + 1)
    if len(parts) > len(wanted) and [decoded_path(p) for p in parts[1 : len(wanted) + 1]] == wanted:
        prefix = b"/".join(parts[: len(wanted) + 1])
        return prefix, raw[len(prefix) :]
    return b"", raw


def child_scope(
    scope: Scope,
    prefix: bytes,
    method: str,
    target: bytes,
    path: str,
    headers: Headers,
    host: bytes | None,
    body_length: int,
    principal: Any,
) -> Scope:
    """The scope the application sees: the incoming one with the validated request in it.

    ``target`` is the validated raw path and query, ``path`` the same path decoded; ``host``
    is added to ``headers`` when given (the core drops it unless ``proxy.preserve_host``).
    """
    raw_path, _, query = target.partition(b"?")
    child = dict(scope)
    child["method"] = method
    child["raw_path"] = prefix + raw_path
    root = scope.get("root_path")
    child["path"] = root.rstrip("/") + path if root else path
    child["query_string"] = query
    out = [(b"host", host), *headers] if host is not None else list(headers)
    if body_length or method in _BODY_METHODS:
        out.append((b"content-length", b"%d" % body_length))
    child["headers"] = out
    extensions = scope.get("extensions")
    if extensions:
        child["extensions"] = {k: v for k, v in extensions.items() if k not in _HIDDEN_EXTENSIONS}
    child["apishield"] = principal
    return child


def replay_receive(body: bytes, receive: Receive) -> Receive:
    """Deliver ``body`` as the whole request, then only the client's disconnect."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":  # unread body parts are never passed on
                return message

    return replayed


def single_receive(done: asyncio.Event) -> Receive:
    """For requests the middleware makes itself: an empty body, then a disconnect once answered."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    return receive


class Capture:
    """An ASGI ``send`` that buffers one response; ``on_complete`` runs when its last part arrives."""

    __slots__ = ("chunks", "complete", "headers", "limit", "on_complete", "size", "started", "status")

    def __init__(self, limit: int, on_complete: Callable[[Capture], Awaitable[None]] | None = None) -> None:
        self.limit = limit
        self.on_complete = on_complete
        self.status = 0
        self.headers: Headers = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.started = False
        self.complete = False

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("the application started its response twice")
            self.started = True
            self.status = int(message["status"])
            self.headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
        elif kind == "http.response.body":
            if not self.started or self.complete:
                raise RuntimeError("the application sent a body outside its response")
            chunk = message.get("body", b"")
            self.size += len(chunk)
            if self.size > self.limit:
                raise ResponseTooLarge
            if chunk:
                self.chunks.append(bytes(chunk))
            if not message.get("more_body", False):
                self.complete = True
                if self.on_complete is not None:
                    await self.on_complete(self)
        # other messages (e.g. a test client's "http.response.debug") carry nothing to pass on
