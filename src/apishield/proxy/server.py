"""Running the gateway under uvicorn (uvloop + httptools).

The dependency study behind the project (2 vCPU, loopback, the same proxy
workload) measured uvicorn with uvloop and httptools at 36.9 µs of CPU per
proxied request against granian's 42.5 µs, and a framework on the hot path
(Starlette) at about +8 µs; so the gateway is a raw ASGI callable under
uvicorn. ``bench/README.md`` has the gateway's own figures.

``SIGTERM``/``SIGINT``: uvicorn stops accepting, lets in-flight requests
finish (up to ``graceful_timeout`` seconds), then runs the lifespan shutdown
that closes the upstream pool.

TLS (``listen.tls``, :mod:`apishield.transport.tls`): the gateway builds its
own ``SSLContext`` (Mozilla profile) and hands it to uvicorn through
``ssl_context_factory``. ``SIGHUP`` reloads the certificate and key into that
context in place (one worker), or makes uvicorn's supervisor replace the
workers gracefully (several). Without ``listen.tls`` the gateway listens in
plaintext only on a loopback address, or where ``listen.plaintext: true``
says so, with a warning either way (:func:`plaintext_refusal`).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
import signal
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from apishield.config.model import Listen
from apishield.config.transport import ListenTLS
from apishield.proxy.gateway import Gateway
from apishield.runtime import load_runtime

__all__ = [
    "QuietServer",
    "build_gateway",
    "factory",
    "install_reload_signal",
    "plaintext_refusal",
    "uvicorn_config",
]

logger = logging.getLogger("apishield.server")

CONFIG_ENV = "APISHIELD_CONFIG"


def build_gateway(config_path: str) -> Gateway:
    runtime = load_runtime(config_path)
    return Gateway.from_runtime(runtime)


def factory() -> Gateway:
    """uvicorn ``--factory`` entry point for multi-worker runs (config path from the environment)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # each worker is its own process
    return build_gateway(os.environ[CONFIG_ENV])


def _options(host: str, port: int) -> dict[str, Any]:
    loop = "uvloop"
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover - platforms without uvloop
        loop = "asyncio"
    return {
        "host": host,
        "port": port,
        "loop": loop,
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        # uvicorn would otherwise rewrite the client address from X-Forwarded-For sent
        # by any loopback peer; client identity is the gateway's decision, not the server's
        "proxy_headers": False,
        "server_header": False,
        # the response_headers stage keeps the upstream's Date and dates the gateway's own answers
        "date_header": False,
        "timeout_graceful_shutdown": 30,
        "log_level": "warning",
    }


def uvicorn_config(
    app: Any, host: str, port: int, ssl_context: ssl.SSLContext | None = None, **extra: Any
) -> uvicorn.Config:
    if ssl_context is not None:
        extra["ssl_context_factory"] = lambda _config, _default: ssl_context
    return uvicorn.Config(app, **{**_options(host, port), **extra})


def _tls_factory(tls: ListenTLS, base_dir: Path, _config: Any, _default: Any) -> ssl.SSLContext:
    """Per-worker context (a module-level function, so the supervisor can pickle it)."""
    from apishield.transport.tls import CertificateReloader, server_context

    context = server_context(tls, base_dir)
    install_reload_signal(CertificateReloader(context, tls, base_dir))
    return context


def install_reload_signal(reloader: Any) -> Callable[[], None]:
    """Reload the certificate on SIGHUP (main thread only); returns a function restoring the old handler."""
    try:
        previous = signal.signal(signal.SIGHUP, lambda _sig, _frame: reloader.reload())
    except (ValueError, AttributeError):  # not the main thread, or no SIGHUP on this platform
        return lambda: None

    def restore() -> None:
        signal.signal(signal.SIGHUP, previous)

    return restore


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plaintext_refusal(listen: Listen, host: str) -> str | None:
    """Why the gateway must not listen in plaintext on ``host`` (None: it may, with a warning)."""
    if listen.tls is not None or listen.plaintext or _loopback(host):
        return None
    return (
        f"refusing to listen in plaintext on {host}: configure listen.tls, "
        "or set listen.plaintext: true (for a gateway behind a TLS-terminating proxy)"
    )


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner (several run in one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run(config_path: str, host: str, port: int, workers: int) -> None:
    """Serve the gateway in the foreground until SIGTERM/SIGINT (SIGHUP reloads the certificate)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runtime = load_runtime(config_path)  # fail fast, with the config errors, before forking
    listen = runtime.loaded.config.listen
    refusal = plaintext_refusal(listen, host)
    if refusal is not None:
        raise SystemExit(refusal)
    tls_options: dict[str, Any] = {}
    if listen.tls is None:
        logger.warning("listening in plaintext on %s:%d (no listen.tls): tokens travel in clear", host, port)
    else:
        from apishield.transport.tls import server_context

        server_context(listen.tls, runtime.loaded.base_dir)  # certificate errors before forking
        tls_options["ssl_context_factory"] = functools.partial(
            _tls_factory, listen.tls, runtime.loaded.base_dir
        )
        if listen.tls.client_ca_file is not None:
            from apishield.transport.protocol import TLSHttpToolsProtocol

            tls_options["http"] = TLSHttpToolsProtocol  # exposes verified client certificates
    if workers > 1 and runtime.loaded.config.admin is not None:
        raise SystemExit(
            "apishield serve: admin: opens one listener per process, and --workers "
            f"{workers} would start {workers} processes on admin.port; run several single-worker "
            "instances (each with its own admin.port) or remove admin: for --workers > 1"
        )
    if workers > 1:
        os.environ[CONFIG_ENV] = os.path.abspath(config_path)
        uvicorn.run(
            "apishield.proxy.server:factory",
            factory=True,
            workers=workers,
            **{**_options(host, port), **tls_options},
        )
        return
    uvicorn.Server(
        uvicorn.Config(Gateway.from_runtime(runtime), **{**_options(host, port), **tls_options})
    ).run()
