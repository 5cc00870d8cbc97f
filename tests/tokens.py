"""Test helpers for tokens: key pairs, a JWKS endpoint on a real socket, signing by hand."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import orjson
from joserfc import jwk as jose_jwk
from joserfc.jws import JWSRegistry

ISSUER = "https://issuer.test"
AUDIENCE = "secure-api"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ec_key(kid: str) -> Any:
    return jose_jwk.ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"})


def sign(key: Any, claims: dict[str, Any], header: dict[str, Any] | None = None, alg: str = "ES256") -> str:
    """Sign by hand so tests control every byte of header and payload."""
    hdr = {"alg": alg, "typ": "at+jwt", "kid": key.kid, **(header or {})}
    signing_input = f"{b64(orjson.dumps(hdr))}.{b64(orjson.dumps(claims))}".encode()
    sig = JWSRegistry.algorithms[alg].sign(signing_input, key)
    return f"{signing_input.decode()}.{b64(sig)}"


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "client_id": "mobile-app",
        "scope": "things:read",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


class JWKSServer:
    """An ASGI app serving a JWKS (and counting fetches); keys can be rotated by the test."""

    def __init__(self, *keys: Any, cache_control: str = "max-age=300") -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.cache_control = cache_control
        self.down = False

    def jwks(self) -> bytes:
        return orjson.dumps({"keys": [k.as_dict(private=False) for k in self.keys]})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        self.fetches += 1
        if self.down:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [(b"content-type", b"application/json"), (b"cache-control", self.cache_control.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.jwks()})


def jwt_auth(jwks_port: int, **provider: Any) -> dict[str, Any]:
    """The ``auth:`` section trusting this module's issuer, with keys from a JWKSServer on ``jwks_port``."""
    return {
        "jwt": [
            {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "jwks_uri": f"http://127.0.0.1:{jwks_port}/jwks",
                "algorithms": ["ES256"],
                **provider,
            }
        ]
    }
