"""A minimal, fast upstream for the gateway benchmark.

The example service (``examples/customer_api/app.py``) answers ``PUT /v1/customers/{id}``
with an SQLite ``UPDATE`` and commit, which costs more than the whole gateway and would hide
the differences the benchmark is after. This raw ASGI app answers ``GET`` and ``PUT
/v1/customers/{id}`` with a fixed customer instead: the same JSON, byte for byte in shape,
that the example service returns for the seeded customer 1 after ``PUT`` of
``sample_customer.json``. That includes the three undocumented members the example service
leaks (``riskScore``, ``passwordHash``, ``internalNotes``) and its ``X-Powered-By`` header,
so the gateway's response-stripping path does the same work as in front of the real service.

The request body is read and discarded; it is not checked (the gateway's job).

Run alone::

    python bench/upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "customer_api" / "sample_customer.json"

_CUSTOMER_PATH = re.compile(r"^/v1/customers/([0-9]{1,18})$")
_HEADERS = [(b"x-powered-by", b"customer-api/1.4.2 (python)"), (b"content-type", b"application/json")]
_NOT_FOUND = b'{"error":"not found"}'


def customer_body(customer_id: int) -> bytes:
    """The customer JSON the example service returns, with its undocumented members."""
    sample = json.loads(SAMPLE.read_bytes())
    data = {
        "id": customer_id,
        **sample,
        "partnerId": "p-acme",
        "createdAt": "2023-01-15T09:30:00Z",
        # Undocumented: the gateway's response validation (strip) must remove these.
        "riskScore": 0.12,
        "passwordHash": "9f2c4e1a7b3d5f60" * 4,
        "internalNotes": "KYC verified in branch. Prefers phone contact; spouse co-signs on acc_10002.",
    }
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


class StaticCustomerApp:
    """Raw ASGI 3 application; responses are built once per id and cached."""

    def __init__(self) -> None:
        self._cache: dict[str, bytes] = {}

    def _body(self, id_text: str) -> bytes:
        body = self._cache.get(id_text)
        if body is None:
            body = customer_body(int(id_text))
            if len(self._cache) < 1024:
                self._cache[id_text] = body
        return body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        while True:  # drain the request body
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if not message.get("more_body", False):
                break
        match = _CUSTOMER_PATH.match(scope["path"])
        if match is not None and scope["method"] in ("GET", "PUT") and int(match.group(1)) >= 1:
            status, body = 200, self._body(match.group(1))
        else:
            status, body = 404, _NOT_FOUND
        headers = [*_HEADERS, (b"content-length", str(len(body)).encode("ascii"))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


app = StaticCustomerApp()


def main() -> None:
    parser = argparse.ArgumentParser(description="Fast static upstream for bench/gateway_bench.py.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()

    import uvicorn

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover
        loop = "asyncio"
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop=loop,
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
