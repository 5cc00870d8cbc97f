"""TLS termination cost: full handshakes/s and keep-alive req/s, TLS (intermediate profile) vs plaintext.

The server is uvicorn with the settings of ``apishield serve`` (uvloop, httptools) and the context
of :func:`apishield.transport.tls.server_context`, serving a minimal ASGI app in a child process, so
the figures isolate the transport: the gateway's pipeline cost is the same either way
(``gateway_bench.py``). The client is asyncio in this process. Plaintext is measured in the same run
and the TLS figures are printed as ratios to it. Usage::

    python bench/tls_bench.py [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

REQUEST = b"GET /x HTTP/1.1\r\nHost: bench\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def serve(port: int, cert: str | None, key: str | None) -> None:
    import uvicorn

    from apishield.config.transport import ListenTLS
    from apishield.proxy.server import uvicorn_config
    from apishield.transport.tls import server_context

    ctx = server_context(ListenTLS(cert_file=cert, key_file=key)) if cert and key else None
    uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, ssl_context=ctx, lifespan="off")).run()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


async def read_response(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(2)


async def handshakes(port: int, ctx: ssl.SSLContext | None, seconds: float, conns: int) -> int:
    """Open, request once, close: a full handshake per connection (no session resumption)."""
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1" if ctx else None
            )
            writer.write(REQUEST)
            await read_response(reader)
            writer.close()
            done += 1

    await asyncio.gather(*(worker() for _ in range(conns)))
    return done


async def keepalive(port: int, ctx: ssl.SSLContext | None, seconds: float, conns: int) -> int:
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1" if ctx else None
        )
        while time.monotonic() < stop:
            writer.write(REQUEST)
            await read_response(reader)
            done += 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.transport.pki import CA

    tmp = Path(tempfile.mkdtemp())
    ca = CA(tmp)
    cert = ca.issue("server", ips=["127.0.0.1"])
    client = ssl.create_default_context(cafile=str(ca.root.cert_file))
    client.options |= ssl.OP_NO_TICKET  # every TLS connection a full handshake
    results: dict[str, dict[str, float]] = {}
    for label, files, ctx in (
        ("plaintext", (None, None), None),
        ("tls", (str(cert.cert_file), str(cert.key_file)), client),
    ):
        port = free_port()
        proc = multiprocessing.Process(target=serve, args=(port, *files), daemon=True)
        proc.start()
        try:
            wait_up(port)
            asyncio.run(keepalive(port, ctx, 0.5, args.connections))  # warm-up
            hs = asyncio.run(handshakes(port, ctx, args.seconds, args.connections))
            ka = asyncio.run(keepalive(port, ctx, args.seconds, args.connections))
            results[label] = {"conn/s": hs / args.seconds, "req/s": ka / args.seconds}
        finally:
            proc.terminate()
            proc.join()
    base = results["plaintext"]
    print(f"{'':10} {'new conn/s':>12} {'keep-alive req/s':>18}")
    for label, r in results.items():
        print(
            f"{label:10} {r['conn/s']:12,.0f} {r['req/s']:18,.0f}"
            f"   ratio {r['conn/s'] / base['conn/s']:.2f} / {r['req/s'] / base['req/s']:.2f}"
        )


if __name__ == "__main__":
    main()
