"""The admin listener: its own uvicorn server, as a task in the adapter's event loop.

The gateway (or the application using the middleware) owns the event loop
and the signals; :class:`AdminServer` only adds a second listening socket to
that loop: ``await start()`` after the adapter has started, ``await stop()``
before it stops. It never installs signal handlers and never touches the
process's logging configuration (uvicorn would otherwise reset the
``uvicorn.*`` loggers of the host application).

The socket is bound here, before uvicorn sees it, for two reasons: a port in
use is an :class:`AdminConfigError` naming ``admin.host``/``admin.port``
(uvicorn would call ``sys.exit``), and ``port: 0`` picks a free port that
:attr:`AdminServer.port` reports at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator

import uvicorn

from apishield.admin.app import AdminApp
from apishield.admin.credential import AdminConfigError
from apishield.admin.readiness import Readiness
from apishield.admin.registry import Registry

__all__ = ["AdminServer"]

logger = logging.getLogger("apishield.admin")


class _OwnedServer(uvicorn.Server):
    """uvicorn without signal handling: the process's owner decides when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AdminServer:
    """Serves an :class:`AdminApp` on ``host:port`` until :meth:`stop`."""

    def __init__(
        self,
        app: AdminApp,
        host: str = "127.0.0.1",
        port: int = 9090,
        *,
        readiness: Readiness | None = None,
        registry: Registry | None = None,
        graceful_timeout: float = 2.0,
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.readiness = readiness or Readiness()
        self.registry = registry
        self.graceful_timeout = graceful_timeout
        self.on_stop: list[Callable[[], None]] = []  # detach from sources (e.g. a writer's taps)
        self._socket: socket.socket | None = None
        self._server: _OwnedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when configured as 0); valid after :meth:`start`."""
        if self._socket is None:
            raise RuntimeError("the admin server is not started")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._task is not None:
            return
        sock = _bind(self.host, self.requested_port)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            log_level=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=int(max(1, self.graceful_timeout)),
        )
        server = _OwnedServer(config)
        self._socket, self._server = sock, server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="apishield-admin")
        while not server.started:
            if self._task.done():
                self._socket = self._server = None
                task, self._task = self._task, None
                sock.close()
                error = task.exception()
                raise AdminConfigError(f"the admin listener did not start: {error!r}")
            await asyncio.sleep(0.005)
        logger.info("admin listener on %s", self.url)

    async def stop(self) -> None:
        for detach in self.on_stop:
            detach()
        self.on_stop.clear()
        if self.readiness is not None:
            self.readiness.stopping()
        task, server, sock = self._task, self._server, self._socket
        self._task = self._server = None
        if task is None or server is None:
            return
        server.should_exit = True
        try:
            await task
        finally:
            if sock is not None:
                sock.close()
            self._socket = None


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; the error names the settings."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise AdminConfigError(f"admin.host: cannot resolve {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise AdminConfigError(
            f"admin.host/admin.port: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return sock
