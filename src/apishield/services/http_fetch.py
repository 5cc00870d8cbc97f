"""Small HTTP calls of the gateway itself (JWKS, introspection), on the upstream client.

One :class:`~apishield.proxy.client.UpstreamPool` per origin, created on first
use. Bodies are size-limited; redirects are not followed (a JWKS or
introspection endpoint that redirects is misconfigured, and following it
would let the redirect choose where keys come from).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from apishield.proxy.client import UpstreamPool

__all__ = ["FetchResult", "Fetcher"]


@dataclass(frozen=True)
class FetchResult:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


class Fetcher:
    def __init__(self, timeout: float = 5.0, max_bytes: int = 1 << 20) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._pools: dict[str, UpstreamPool] = {}

    def _pool(self, url: str) -> tuple[UpstreamPool, bytes]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        pool = self._pools.get(origin)
        if pool is None:
            pool = UpstreamPool(
                origin,
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                max_connections=8,
                max_response_bytes=self.max_bytes,
            )
            self._pools[origin] = pool
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return pool, target.encode("ascii")

    async def get(self, url: str, headers: list[tuple[bytes, bytes]] | None = None) -> FetchResult:
        pool, target = self._pool(url)
        hdrs = [(b"accept", b"application/json"), *(headers or [])]
        resp = await pool.request("GET", target, hdrs, b"")
        return FetchResult(resp.status, dict(resp.headers), resp.body)

    async def post_form(self, url: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> FetchResult:
        pool, target = self._pool(url)
        hdrs = [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"accept", b"application/json"),
            *headers,
        ]
        resp = await pool.request("POST", target, hdrs, body)
        return FetchResult(resp.status, dict(resp.headers), resp.body)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
