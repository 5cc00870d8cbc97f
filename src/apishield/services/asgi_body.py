"""Reading a request body from an ASGI server for the decision core (both adapters).

The body is read only when the pipeline expects one, and only up to the
limit it set: at the first byte past ``ex.body_limit`` the pipeline refuses
the request (413) and the rest is never read. A body shorter than its
``Content-Length`` is refused (400). A client that goes away raises
:class:`ClientGone`, and the adapter drops the exchange.
"""

from __future__ import annotations

from typing import Any

from apishield.core.exchange import Exchange
from apishield.core.pipeline import Pipeline
from apishield.core.stage import problem_reply
from apishield.problem import BadRequest

__all__ = ["ClientGone", "read_request_body"]


class ClientGone(Exception):
    """The client disconnected before its request was read."""


async def read_request_body(pipeline: Pipeline, ex: Exchange, receive: Any) -> None:
    if not ex.body_expected:
        pipeline.request_body(ex, b"")
        return
    limit = ex.body_limit
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            pipeline.body_too_large(ex)
            return
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if ex.content_length is not None and size != ex.content_length:
        ex.reply = problem_reply(BadRequest(detail="The body is shorter than Content-Length."), ex.request_id)
        return
    pipeline.request_body(ex, b"".join(chunks))
