"""Running the gateway under uvicorn (uvloop + httptools).

The dependency study behind the project (2 vCPU, loopback, the same proxy
workload) measured uvicorn with uvloop and httptools at 36.9 µs of CPU per
proxied request against granian's 42.5 µs, and a framework on the hot path
(Starlette) at about +8 µs; so the gateway is a raw ASGI callable under
uvicorn. ``bench/README.md`` has the gateway's own figures.

``SIGTERM``/``SIGINT``: uvicorn stops accepting, lets in-flight requests
finish (up to ``graceful_timeout`` seconds), then runs the lifespan shutdown
that closes the upstream pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import uvicorn

from apishield.proxy.gateway import Gateway
from apishield.runtime import load_runtime

__all__ = ["QuietServer", "build_gateway", "factory", "uvicorn_config"]

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


def uvicorn_config(app: Any, host: str, port: int, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(app, **{**_options(host, port), **extra})


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner (several run in one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run(config_path: str, host: str, port: int, workers: int) -> None:
    """Serve the gateway in the foreground until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if workers > 1:
        build_gateway(config_path)  # fail fast, with the config errors, before forking
        os.environ[CONFIG_ENV] = os.path.abspath(config_path)
        uvicorn.run("apishield.proxy.server:factory", factory=True, workers=workers, **_options(host, port))
        return
    uvicorn.Server(uvicorn_config(build_gateway(config_path), host, port)).run()
