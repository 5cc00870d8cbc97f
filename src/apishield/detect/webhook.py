"""Alert delivery to webhooks: signed JSON POSTs, retried, from a bounded queue off the request path.

Each configured webhook (``detection.alerts.webhooks``) has its own queue
and one delivery task, so a slow or dead receiver delays nobody else, and
:meth:`WebhookSender.submit` never waits: when a queue is full the alert is
dropped for that receiver, counted and logged (it is still stored and
logged). Requests go through the gateway's own HTTP client
(:class:`~apishield.proxy.client.UpstreamPool`, one small pool per receiver,
TLS verified for ``https``).

The request::

    POST <url>
    Content-Type: application/json
    X-Apishield-Event: alert.created | alert.escalated
    X-Apishield-Delivery: <id, the same on every retry of one delivery>
    X-Apishield-Timestamp: <Unix seconds of this attempt>
    X-Apishield-Signature: sha256=<hex HMAC-SHA256>

    {"type": "alert.created", "alert": {...Alert.as_dict()...}}

The signature is computed with the webhook's secret over the timestamp, a
dot and the exact body bytes (``b"1700000000." + body``), so a receiver that
checks it (:func:`verify`) and refuses timestamps older than a few minutes
cannot be fed a recorded delivery again. Without a secret the signature
header is left out.

A delivery is retried after a connection failure, a timeout, or a 408, 429
or 5xx answer, up to ``retries`` more times, waiting 0.5 s, 1 s, 2 s, ...
(at most 30 s) between attempts; other answers end it. A delivery that
fails for good is logged at WARNING on ``apishield.alerts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from apishield import __version__
from apishield.config.detection import WebhookPolicy
from apishield.detect.alerts import Alert

__all__ = ["Webhook", "WebhookSender", "sign", "verify"]

logger = logging.getLogger("apishield.alerts")

_RETRY_STATUSES = frozenset({408, 425, 429})
_FIRST_BACKOFF = 0.5
_MAX_BACKOFF = 30.0


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Apishield-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return "sha256=" + digest


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """A receiver's check: the signature matches and the timestamp is within ``tolerance`` seconds."""
    try:
        when = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - when) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, when, body), signature)


@dataclass(frozen=True)
class Webhook:
    """One receiver, its secret read and its URL split for the HTTP client."""

    url: str
    origin: str
    target: bytes
    secret: bytes | None
    min_severity: int
    timeout: float
    retries: int

    @classmethod
    def from_policy(cls, policy: WebhookPolicy, base_dir: Path) -> Webhook:
        secret: bytes | None = None
        if policy.secret_env:
            value = os.environ.get(policy.secret_env)
            if not value:
                raise ValueError(f"webhook {policy.url}: environment variable {policy.secret_env} is not set")
            secret = value.encode()
        elif policy.secret_file:
            path = Path(policy.secret_file).expanduser()
            path = path if path.is_absolute() else base_dir / path
            try:
                secret = path.read_bytes().strip()
            except OSError as exc:
                raise ValueError(f"webhook {policy.url}: cannot read secret_file: {exc.strerror}") from None
            if not secret:
                raise ValueError(f"webhook {policy.url}: secret_file {path.name} is empty")
        parts = urlsplit(policy.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(
            url=policy.url,
            origin=f"{parts.scheme}://{parts.netloc}",
            target=target.encode("ascii"),
            secret=secret,
            min_severity=policy.min_severity,
            timeout=policy.timeout,
            retries=policy.retries,
        )

    def request(self, event: str, body: bytes, delivery: str, timestamp: int) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", b"application/json"),
            (b"user-agent", f"apishield/{__version__}".encode()),
            (b"x-apishield-event", event.encode()),
            (b"x-apishield-delivery", delivery.encode()),
            (b"x-apishield-timestamp", str(timestamp).encode()),
        ]
        if self.secret is not None:
            headers.append((b"x-apishield-signature", sign(self.secret, timestamp, body).encode()))
        return headers


class WebhookSender:
    """The delivery tasks of every configured webhook (see the module documentation)."""

    def __init__(self, webhooks: list[Webhook], queue_size: int = 1000) -> None:
        self.webhooks = webhooks
        self.queue_size = queue_size
        self.counters = {"delivered": 0, "failed": 0, "dropped": 0, "retried": 0}
        self._queues: list[asyncio.Queue[tuple[str, bytes, str]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_policies(cls, policies: list[WebhookPolicy], base_dir: Path) -> WebhookSender:
        return cls([Webhook.from_policy(p, base_dir) for p in policies])

    async def start(self) -> None:
        if self._tasks:
            return
        for webhook in self.webhooks:
            queue: asyncio.Queue[tuple[str, bytes, str]] = asyncio.Queue(self.queue_size)
            self._queues.append(queue)
            self._tasks.append(asyncio.create_task(self._deliver_all(webhook, queue)))

    def submit(self, event: str, alert: Alert) -> None:
        """Queue ``alert`` for every webhook whose ``min_severity`` it reaches; never waits."""
        if not self._queues:
            return
        body = orjson.dumps({"type": event, "alert": alert.as_dict()}, default=str)
        delivery = os.urandom(12).hex()
        for webhook, queue in zip(self.webhooks, self._queues, strict=True):
            if alert.severity < webhook.min_severity:
                continue
            try:
                queue.put_nowait((event, body, delivery))
            except asyncio.QueueFull:
                self.counters["dropped"] += 1
                logger.warning("webhook %s: queue full, alert %s not delivered", webhook.url, alert.id)

    async def stop(self, grace: float = 2.0) -> None:
        """Deliver what is queued for up to ``grace`` seconds, then stop."""
        if self._queues:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(q.join() for q in self._queues)), grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._queues.clear()

    async def _deliver_all(self, webhook: Webhook, queue: asyncio.Queue[tuple[str, bytes, str]]) -> None:
        from apishield.proxy.client import UpstreamPool

        pool = UpstreamPool(
            webhook.origin,
            connect_timeout=webhook.timeout,
            read_timeout=webhook.timeout,
            pool_timeout=webhook.timeout,
            max_connections=2,
            max_idle_connections=1,
            max_response_bytes=65_536,
        )
        try:
            while True:
                event, body, delivery = await queue.get()
                try:
                    await self._deliver(pool, webhook, event, body, delivery)
                finally:
                    queue.task_done()
        finally:
            await pool.aclose()

    async def _deliver(self, pool: Any, webhook: Webhook, event: str, body: bytes, delivery: str) -> None:
        from apishield.proxy.client import UpstreamError

        backoff = _FIRST_BACKOFF
        outcome = ""
        for attempt in range(webhook.retries + 1):
            if attempt:
                self.counters["retried"] += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            headers = webhook.request(event, body, delivery, int(time.time()))
            try:
                response = await pool.request("POST", webhook.target, headers, body)
            except UpstreamError as exc:
                outcome = str(exc) or type(exc).__name__
                continue
            except ValueError as exc:  # an invalid request: no attempt can succeed
                outcome = str(exc)
                break
            if 200 <= response.status < 300:
                self.counters["delivered"] += 1
                return
            outcome = f"answered {response.status}"
            if response.status < 500 and response.status not in _RETRY_STATUSES:
                break
        self.counters["failed"] += 1
        logger.warning("webhook %s: delivery %s of %s failed: %s", webhook.url, delivery, event, outcome)
