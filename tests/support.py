"""Test support: real servers on loopback sockets, and a plain HTTP client.

Nothing here mocks the subject: the gateway runs under uvicorn on a real
port, in front of a real upstream on another real port that records every
request it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client as httpclient
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from apishield.proxy.gateway import Gateway
from apishield.proxy.server import QuietServer, uvicorn_config
from apishield.runtime import load_runtime

DATA = Path(__file__).parent / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """A uvicorn server for an ASGI app, on its own loop in a daemon thread."""

    def __init__(self, app: Any, port: int | None = None, **options: Any) -> None:
        self.port = port or free_port()
        self.server = QuietServer(uvicorn_config(app, "127.0.0.1", self.port, **options))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        asyncio.run(main())

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Recorded:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name.lower():
                return v
        return None

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Canned:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: list[tuple[bytes, bytes]] = field(
        default_factory=lambda: [(b"content-type", b"application/json")]
    )
    delay: float = 0.0


class RecordingUpstream:
    """An upstream that records every request and answers from a script.

    ``answers`` maps (method, path) to a :class:`Canned` answer (or a callable
    returning one); anything else gets ``default``.
    """

    def __init__(self) -> None:
        self.received: list[Recorded] = []
        self.answers: dict[tuple[str, str], Canned | Callable[[Recorded], Canned]] = {}
        self.default = Canned()

    def answer(self, method: str, path: str, status: int = 200, body: Any = None, **kw: Any) -> None:
        raw = body if isinstance(body, bytes) else orjson.dumps(body if body is not None else {"ok": True})
        self.answers[(method, path)] = Canned(status=status, body=raw, **kw)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while True:
                    msg = await receive()
                    if msg["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    elif msg["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        raw_path = scope.get("raw_path") or scope["path"].encode()
        target = raw_path.decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        rec = Recorded(
            scope["method"],
            target,
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            body,
        )
        self.received.append(rec)
        canned = self.answers.get((scope["method"], scope["path"]), self.default)
        if callable(canned):
            canned = canned(rec)
        if canned.delay:
            await asyncio.sleep(canned.delay)
        await send({"type": "http.response.start", "status": canned.status, "headers": canned.headers})
        await send({"type": "http.response.body", "body": canned.body})


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def http(
    port: int,
    method: str,
    target: str,
    body: bytes | Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> Response:
    """One request on a fresh connection, with stdlib http.client."""
    conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        data: bytes | None
        if body is None or isinstance(body, bytes):
            data = body
        else:
            data = orjson.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, target, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = [(k.lower(), v) for k, v in resp.getheaders()]
        return Response(resp.status, dict(raw), raw, resp.read())
    finally:
        conn.close()


def raw_http(port: int, payload: bytes, timeout: float = 5) -> bytes:
    """Send raw bytes and read until the server closes or the timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks)


def write_policy(tmp: Path, openapi: Path, upstream_port: int, **extra: Any) -> Path:
    policy = {"openapi": str(openapi), "upstream": f"http://127.0.0.1:{upstream_port}", **extra}
    path = tmp / "apishield.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


@contextlib.contextmanager
def gateway_for(policy: Path) -> Iterator[ServerThread]:
    runtime = load_runtime(policy)
    server = ServerThread(Gateway.from_runtime(runtime)).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Stack:
    upstream: RecordingUpstream
    upstream_server: ServerThread
    gateway: ServerThread
    tmp: Path

    def call(
        self, method: str, target: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        return http(self.gateway.port, method, target, body, headers)


@contextlib.contextmanager
def stack(tmp: Path, openapi: Path, **policy: Any) -> Iterator[Stack]:
    """A recording upstream and a gateway in front of it, both on real sockets."""
    upstream = RecordingUpstream()
    up = ServerThread(upstream).start()
    try:
        with gateway_for(write_policy(tmp, openapi, up.port, **policy)) as gw:
            yield Stack(upstream, up, gw, tmp)
    finally:
        up.stop()


def eventually(check: Callable[[], bool], what: str, within: float = 10.0) -> float:
    """Poll ``check`` until it holds; returns the seconds it took. A hang guard, not a timing test."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: still not the case after {within:.0f} s")
        time.sleep(0.02)
    return time.monotonic() - started


def serve_process(policy: Path, port: int) -> subprocess.Popen[bytes]:
    """``apishield serve`` as a separate process (output discarded)."""
    return subprocess.Popen(
        [sys.executable, "-m", "apishield", "serve", "--config", str(policy), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_listening(port: int, path: str = "/", within: float = 30.0) -> None:
    """Wait until a server on ``port`` answers an HTTP request (any status)."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + within
    while True:
        try:
            raw_http(port, request, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
