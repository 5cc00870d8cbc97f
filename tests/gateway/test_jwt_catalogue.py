"""The JWT attack catalogue (standards.md §3) through the gateway, over HTTP.

Each case is a token built by hand and sent in ``Authorization: Bearer``.
Every one must be refused with 401 ``invalid_token`` (or 400 for transport
abuse), without reaching the upstream, without any request to a URL the
token names (``jku``/``x5u``), and without a crash: the gateway keeps
answering. The layer-level tests (tests/auth/test_rfc9068.py) cover each
case in depth; this file proves the wiring holds end to end.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from tests.jose.tokens import Signer, b64, make_token, new_signer
from tests.support import DATA, RecordingUpstream, ServerThread, Stack, gateway_for, http, write_policy

ISSUER = "https://issuer.catalogue.test"
OTHER_ISSUER = "https://other.catalogue.test"
AUDIENCE = "catalogue-api"

ES = new_signer("ES256", "es-1")
RS = new_signer("RS256", "rs-1")
OTHER = new_signer("ES256", "other-1")
ATTACKER = new_signer("ES256", "es-1")  # same kid as the real key


class Catalogue(Stack):
    jwks_hits: list[str]


class Observer(RecordingUpstream):
    """Plays the JWKS endpoints of both issuers, and records any other URL fetched (jku, x5u)."""

    def __init__(self) -> None:
        super().__init__()
        self.answers[("GET", "/jwks")] = lambda r: self._jwks([ES, RS])
        self.answers[("GET", "/other-jwks")] = lambda r: self._jwks([OTHER])

    @staticmethod
    def _jwks(signers: list[Signer]) -> Any:
        from tests.support import Canned

        return Canned(body=orjson.dumps({"keys": [s.public_jwk(use="sig") for s in signers]}))


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "client_id": "c",
        "scope": "things:read",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def tok(
    signer: Signer = ES, header: dict[str, Any] | None = None, sign_alg: str | None = None, **c: Any
) -> str:
    h = {"alg": signer.alg, "typ": "at+jwt", "kid": signer.kid, **(header or {})}
    return make_token(signer, claims(**c), {k: v for k, v in h.items() if v is not None}, sign_alg=sign_alg)


def raw(header: bytes, payload: bytes, sig: bytes = b"") -> str:
    enc = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()  # noqa: E731
    return f"{enc(header)}.{enc(payload)}.{enc(sig)}"


def hs_with_public_key(encoding: str) -> str:
    public = ES.private.public_key()
    material = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": orjson.dumps(ES.public_jwk()),
    }[encoding]
    confused = Signer("HS256", material, "es-1")
    return tok(confused, header={"alg": "HS256"})


def good() -> str:
    return tok()


def modified_payload() -> str:
    h, _, s = good().split(".")
    return f"{h}.{b64(orjson.dumps(claims(sub='admin')))}.{s}"


CASES: dict[str, Callable[[], str]] = {
    "JWT-01 alg none": lambda: raw(b'{"alg":"none","typ":"at+jwt"}', orjson.dumps(claims())),
    "JWT-01 alg NoNe": lambda: raw(b'{"alg":"nOnE","typ":"at+jwt"}', orjson.dumps(claims()), b"x"),
    "JWT-02 modified payload": modified_payload,
    "JWT-03 empty signature": lambda: good().rsplit(".", 1)[0] + ".",
    "JWT-03 two segments": lambda: good().rsplit(".", 1)[0],
    "JWT-03 truncated signature": lambda: good()[:-4],
    "JWT-05 HS256 with the public key (PEM)": lambda: hs_with_public_key("pem"),
    "JWT-05 HS256 with the public key (DER)": lambda: hs_with_public_key("der"),
    "JWT-05 HS256 with the public key (JWK)": lambda: hs_with_public_key("jwk"),
    "JWT-06 RS256 key, header PS256": lambda: tok(RS, header={"alg": "PS256"}, sign_alg="PS256"),
    "JWT-06 ES256 key, header ES384": lambda: tok(ES, header={"alg": "ES384"}),
    "JWT-07 lower-case alg": lambda: tok(ES, header={"alg": "es256"}),
    "JWT-08 embedded jwk": lambda: tok(ATTACKER, header={"jwk": ATTACKER.public_jwk()}),
    "JWT-09 jku": lambda: tok(ATTACKER, header={"jku": "JKU"}),
    "JWT-10 x5u": lambda: tok(ATTACKER, header={"x5u": "JKU"}),
    "JWT-11 kid path traversal": lambda: tok(
        new_signer("HS256", "../../../../dev/null"), header={"alg": "HS256"}
    ),
    "JWT-11 kid SQL": lambda: tok(ATTACKER, header={"kid": "x' UNION SELECT '1';--"}),
    "JWT-12 expired": lambda: tok(exp=int(time.time()) - 120, iat=int(time.time()) - 300),
    "JWT-12 exp as string": lambda: tok(exp="9999999999"),
    "JWT-12 exp missing": lambda: tok(exp=None),
    "JWT-13 not yet valid": lambda: tok(nbf=int(time.time()) + 600),
    "JWT-14 iat in the future": lambda: tok(iat=int(time.time()) + 600, exp=int(time.time()) + 900),
    "JWT-15 issuer with a trailing slash": lambda: tok(iss=ISSUER + "/"),
    "JWT-15 issuer missing": lambda: tok(iss=None),
    "JWT-16 other issuer's key": lambda: tok(OTHER, iss=ISSUER),
    "JWT-17 wrong audience": lambda: tok(aud="another-api"),
    "JWT-17 audience missing": lambda: tok(aud=None),
    "JWT-18 ID token typ JWT with nonce": lambda: tok(header={"typ": "JWT"}, nonce="n"),
    "JWT-18 DPoP proof typ": lambda: tok(header={"typ": "dpop+jwt"}),
    "JWT-19 unknown crit": lambda: tok(header={"crit": ["x-unknown"], "x-unknown": True}),
    "JWT-19 empty crit": lambda: tok(header={"crit": []}),
    "JWT-20 duplicate alg": lambda: raw(
        b'{"alg":"ES256","alg":"none","kid":"es-1","typ":"at+jwt"}', orjson.dumps(claims()), b"s"
    ),
    "JWT-20 duplicate sub": lambda: make_token(
        ES, orjson.dumps(claims())[:-1] + b',"sub":"admin"}', {"alg": "ES256", "typ": "at+jwt", "kid": "es-1"}
    ),
    "JWT-21 oversized": lambda: tok(pad="x" * 20_000),
    "JWT-21 deep claims": lambda: make_token(
        ES, b'{"a":' * 5000 + b"1" + b"}" * 5000, {"alg": "ES256", "typ": "at+jwt", "kid": "es-1"}
    ),
    "JWT-22 padding": lambda: good().replace(".", "=.", 1),
    "JWT-22 five segments (JWE)": lambda: good() + ".a.b",
    "JWT-22 header is an array": lambda: raw(b'["alg"]', orjson.dumps(claims()), b"s"),
    "JWT-23 JSON serialization": lambda: '{"payload":"e30","signatures":[]}',
    "JWT-24 nested cty JWT": lambda: tok(header={"cty": "JWT"}),
    "JWT-25 JWE alg dir": lambda: raw(b'{"alg":"dir","enc":"A128GCM"}', b"x", b"y") + ".a.b",
    "JWT-26 psychic signature": lambda: good().rsplit(".", 1)[0] + "." + b64(bytes(64)),
    "JWT-29 aud is a number": lambda: tok(aud=1),
    "JWT-29 scope is an array": lambda: tok(scope=["things:read"]),
    "JWT-29 sub is an object": lambda: tok(sub={"id": 1}),
}


@pytest.fixture(scope="module")
def cat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalogue]:
    tmp = tmp_path_factory.mktemp("catalogue")
    observer = Observer()
    obs = ServerThread(observer).start()
    upstream = RecordingUpstream()
    up = ServerThread(upstream).start()
    base = f"http://127.0.0.1:{obs.port}"
    policy = write_policy(
        tmp,
        DATA / "secure31.yaml",
        up.port,
        auth={
            "jwt": [
                {
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                    "jwks_uri": f"{base}/jwks",
                    "algorithms": ["ES256", "RS256"],
                },
                {
                    "issuer": OTHER_ISSUER,
                    "audience": AUDIENCE,
                    "jwks_uri": f"{base}/other-jwks",
                    "algorithms": ["ES256"],
                },
            ]
        },
    )
    try:
        with gateway_for(policy) as gw:
            s = Catalogue(upstream, up, gw, tmp)
            s.observer = observer  # type: ignore[attr-defined]
            s.base = base  # type: ignore[attr-defined]
            yield s
    finally:
        up.stop()
        obs.stop()


def test_a_good_token_passes(cat: Catalogue) -> None:
    r = http(cat.gateway.port, "GET", "/things", headers={"Authorization": f"Bearer {good()}"})
    assert r.status == 200, r.body


@pytest.mark.parametrize("case", sorted(CASES))
def test_catalogue_case_refused(cat: Catalogue, case: str) -> None:
    observer: Observer = cat.observer  # type: ignore[attr-defined]
    token = CASES[case]().replace("JKU", f"{cat.base}/attacker")  # type: ignore[attr-defined]
    cat.upstream.received.clear()
    before = len(observer.received)
    r = http(cat.gateway.port, "GET", "/things", headers={"Authorization": f"Bearer {token}"})
    assert r.status in (400, 401), (case, r.status, r.body)
    assert r.headers["www-authenticate"].startswith("Bearer ")
    assert cat.upstream.received == []
    assert all("/attacker" not in rec.target for rec in observer.received[before:])
    assert token.encode() not in r.body
    assert b"admin" not in r.body and b"X-Injected" not in r.body
    # the gateway still works after each attempt
    assert http(cat.gateway.port, "GET", "/public").status == 200


def test_transport_abuse(cat: Catalogue) -> None:
    token = good()
    port = cat.gateway.port
    assert http(port, "GET", f"/things?access_token={token}").status == 400
    assert http(port, "GET", "/things", headers={"Authorization": f"Bearer {token} {token}"}).status == 400
    assert http(port, "GET", "/things", headers={"Authorization": f"bearer {token}"}).status == 200


def test_jwt33_claims_are_data(cat: Catalogue) -> None:
    # a correctly signed token whose subject carries CR/LF and an ANSI escape: accepted as data,
    # and the identity header the upstream receives cannot be split or colour a terminal
    token = tok(sub="alice\r\nX-Injected: 1\x1b[31m")
    cat.upstream.received.clear()
    r = http(cat.gateway.port, "GET", "/things", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200
    rec = cat.upstream.received[0]
    assert rec.header("x-injected") is None
    assert rec.header("x-apishield-subject") == "alice??X-Injected: 1?[31m"
