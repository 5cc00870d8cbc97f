"""Fixtures of the middleware tests: a JWKS endpoint, signed tokens and a policy trusting them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ServerThread
from tests.tokens import AUDIENCE, ISSUER, JWKSServer, claims, ec_key, sign


@dataclass
class Issuer:
    jwks: JWKSServer
    server: ServerThread
    key: Any

    def provider(self) -> dict[str, Any]:
        return {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks_uri": f"http://127.0.0.1:{self.server.port}/jwks",
            "algorithms": ["ES256"],
        }

    def bearer(self, **over: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {sign(self.key, claims(**over))}"}

    def policy(self, tmp: Path, **extra: Any) -> Path:
        """A policy trusting this issuer (no ``openapi:``, no ``upstream:``: the middleware needs neither)."""
        policy = {
            "auth": {
                "jwt": [self.provider()],
                "revocation": {"store": f"sqlite:///{tmp / 'revocations.db'}"},
            },
            **extra,
        }
        path = tmp / "apishield.yaml"
        path.write_text(yaml.safe_dump(policy, sort_keys=False))
        return path


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    key = ec_key("k1")
    jwks = JWKSServer(key)
    server = ServerThread(jwks).start()
    try:
        yield Issuer(jwks, server, key)
    finally:
        server.stop()
