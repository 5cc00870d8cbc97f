"""DPoP proof verification at the resource server (RFC 9449 §4.3), without I/O.

The gateway tests (``tests/gateway/test_dpop.py``) drive each check over HTTP;
these pin the pure pieces: ``ath`` against the RFC's own example, the ``htu``
reconstruction, the replay cache, and that refusals never echo proof content.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest
from joserfc.jws import JWSRegistry

from apishield.auth.rfc9449 import (
    ProofError,
    ProofPolicy,
    ReplayCache,
    access_token_hash,
    bound_thumbprint,
    request_url,
    verify_proof,
)
from tests.tokens import b64, ec_key

POLICY = ProofPolicy(algorithms=frozenset({"ES256"}), iat_window=60.0, clock_skew=5.0)
URL = "https://api.example.test/things"
TOKEN = "header.payload.signature"


def proof(key: Any, **claims: Any) -> bytes:
    full = key.as_dict(private=False)
    hdr = {"typ": "dpop+jwt", "alg": "ES256", "jwk": {k: full[k] for k in ("kty", "crv", "x", "y")}}
    body = {
        "jti": uuid.uuid4().hex,
        "htm": "GET",
        "htu": URL,
        "iat": int(time.time()),
        "ath": access_token_hash(TOKEN),
        **claims,
    }
    signing_input = f"{b64(orjson.dumps(hdr))}.{b64(orjson.dumps(body))}".encode()
    sig = JWSRegistry.algorithms["ES256"].sign(signing_input, key)
    return f"{signing_input.decode()}.{b64(sig)}".encode()


def verify(values: list[bytes], **over: Any) -> Any:
    args: dict[str, Any] = {"method": "GET", "url": URL, "access_token": TOKEN, "now": time.time()}
    args.update(over)
    return verify_proof(values, policy=POLICY, **args)


def test_ath_matches_the_rfc_example() -> None:
    # RFC 9449 §7.1, Figures 12 and 13
    assert access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU") == (
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    )


def test_valid_proof_gives_the_key_thumbprint() -> None:
    key = ec_key("c")
    verified = verify([proof(key)])
    assert verified.jkt == key.thumbprint()
    assert verified.replay_ttl == 70.0  # iat_window + 2 * clock_skew: constant, so re-runs agree


def test_same_jti_same_key_gives_the_same_replay_key() -> None:
    key = ec_key("c")
    a, b = verify([proof(key, jti="j" * 20)]), verify([proof(key, jti="j" * 20)])
    assert a.replay_key == b.replay_key
    assert verify([proof(ec_key("d"), jti="j" * 20)]).replay_key != a.replay_key


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"method": "POST"}, "htm"),
        ({"url": "https://api.example.test/other"}, "htu"),
        ({"access_token": "another.token.value"}, "ath"),
        ({"now": time.time() + 120}, "iat"),
        ({"now": time.time() - 120}, "iat"),
    ],
)
def test_refusals(over: dict[str, Any], why: str) -> None:
    with pytest.raises(ProofError) as info:
        verify([proof(ec_key("c"))], **over)
    assert why in info.value.description
    assert info.value.error == "invalid_dpop_proof"


def test_no_or_two_proofs() -> None:
    key = ec_key("c")
    for values in ([], [proof(key), proof(key)]):
        with pytest.raises(ProofError, match="exactly one"):
            verify(values)


def test_refusal_never_echoes_the_proof() -> None:
    bad = proof(ec_key("c"), htm="<script>")
    with pytest.raises(ProofError) as info:
        verify([bad])
    assert "<script>" not in info.value.description


def test_request_url_prefers_the_configured_public_origin() -> None:
    assert request_url("http", "127.0.0.1:8080", b"/things", None) == "http://127.0.0.1:8080/things"
    assert request_url("http", "10.0.0.5", b"/things", "https://api.example.test") == URL
    assert request_url("https", None, b"", None) == "https:///"


def test_bound_thumbprint() -> None:
    assert bound_thumbprint({"cnf": {"jkt": "abc"}}) == "abc"
    assert bound_thumbprint({"cnf": {"x5t#S256": "abc"}}) is None
    assert bound_thumbprint({}) is None
    assert bound_thumbprint({"cnf": {"jkt": 5}}) == ""  # malformed binding: present, never matches


def test_replay_cache_remembers_until_the_ttl() -> None:
    cache = ReplayCache()
    assert cache.first_use("k", 70.0, 1000.0)
    assert not cache.first_use("k", 70.0, 1069.0)
    assert cache.first_use("k", 70.0, 1071.0)


def test_replay_cache_refuses_when_flooded() -> None:
    cache = ReplayCache(max_entries=2)
    assert cache.first_use("a", 70.0, 0.0) and cache.first_use("b", 70.0, 0.0)
    assert not cache.first_use("c", 70.0, 1.0)  # full of live entries: refuse rather than forget
    assert cache.first_use("c", 70.0, 100.0)  # expired entries make room
