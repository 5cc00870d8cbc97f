"""The JWT attack catalogue (standards §3) against the issuer's own verification paths.

Introspection (RFC 7662) and revocation (RFC 7009) both verify a presented
JWT before believing anything in it. Every forged token below is built from
the claims of a real, active token (its ``jti`` is recorded and live), so a
verification shortcut would show up as ``active: true`` or as that real
token being revoked. Not applicable here: JWT-04 and JWT-27 (the issuer
signs with ES256 only, never HMAC or RSA keys), JWT-28 (the key set is the
issuer's own), JWT-31/32 (token transport is the gateway's).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.issuer.helpers import Issuer, b64

N_P256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass
class Ctx:
    issuer: Issuer
    claims: dict[str, Any]
    token: str
    kid: str

    def sign(self, header: dict[str, Any], claims: dict[str, Any], key: Any = None) -> str:
        return self.sign_raw(orjson.dumps(header), orjson.dumps(claims), key)

    def sign_raw(self, header: bytes, payload: bytes, key: Any = None) -> str:
        signing_input = f"{b64(header)}.{b64(payload)}".encode()
        if key is None:
            sig = self.issuer.app.keys.active.sign(signing_input)
        else:
            r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input.decode()}.{b64(sig)}"

    def header(self, **over: Any) -> dict[str, Any]:
        base = {"alg": "ES256", "typ": "at+jwt", "kid": self.kid, **over}
        return {k: v for k, v in base.items() if v is not None}

    def with_claims(self, **over: Any) -> str:
        claims = {**self.claims, **over}
        return self.sign(self.header(), {k: v for k, v in claims.items() if v is not None})

    def with_header(self, **over: Any) -> str:
        return self.sign(self.header(**over), self.claims)

    def hmac(self, alg_header: str, secret: bytes) -> str:
        signing_input = f"{b64(orjson.dumps(self.header(alg=alg_header)))}.{b64(orjson.dumps(self.claims))}"
        mac = hmac.HMAC(secret, hashes.SHA256())
        mac.update(signing_input.encode())
        return f"{signing_input}.{b64(mac.finalize())}"


def _public_encodings(ctx: Ctx) -> list[bytes]:
    public = ctx.issuer.app.keys.active.private.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk = ctx.issuer.jwks()["keys"][0]
    point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return [pem, pem.rstrip(b"\n"), der, json.dumps(jwk).encode(), point]


def _swap_payload(ctx: Ctx) -> str:
    head, _, sig = ctx.token.split(".")
    forged = {**ctx.claims, "sub": "admin", "scope": "customers:admin"}
    return f"{head}.{b64(orjson.dumps(forged))}.{sig}"


def _none(ctx: Ctx, alg: str, keep_sig: bool) -> str:
    head = b64(orjson.dumps(ctx.header(alg=alg)))
    payload = ctx.token.split(".")[1]
    return f"{head}.{payload}.{ctx.token.split('.')[2] if keep_sig else ''}"


def _signature(ctx: Ctx, sig: bytes | str) -> str:
    head, payload, _ = ctx.token.split(".")
    return f"{head}.{payload}.{sig if isinstance(sig, str) else b64(sig)}"


def _attacker_jwk(ctx: Ctx) -> str:
    attacker = ec.generate_private_key(ec.SECP256R1())
    numbers = attacker.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.x.to_bytes(32, "big")),
        "y": b64(numbers.y.to_bytes(32, "big")),
    }
    return ctx.sign(ctx.header(jwk=jwk), ctx.claims, attacker)


def _raw_claims(ctx: Ctx, text: str) -> str:
    return ctx.sign_raw(orjson.dumps(ctx.header()), text.encode())


def _claims_json(ctx: Ctx, **over: str) -> str:
    """The claims as JSON text with some members' raw JSON replaced (for values orjson cannot write)."""
    parts = [f'"{k}":{over.pop(k) if k in over else orjson.dumps(v).decode()}' for k, v in ctx.claims.items()]
    parts += [f'"{k}":{v}' for k, v in over.items()]
    return "{" + ",".join(parts) + "}"


def _b64_variants(ctx: Ctx) -> list[str]:
    head, payload, sig = ctx.token.split(".")
    parts = ctx.token.split(".")
    bom_header = b64(bytes([0xEF, 0xBB, 0xBF]) + orjson.dumps(ctx.header()))
    bad_utf8_header = b64(orjson.dumps(ctx.header())[:-1] + bytes([0xFF]) + b"}")
    standard_b64 = (
        payload.replace("-", "+").replace("_", "/") if ("-" in payload or "_" in payload) else payload + "+"
    )
    return [
        f"{head}=.{payload}.{sig}",
        f"{head}.{payload}.{sig}==",
        f"{head}.{standard_b64}.{sig}",
        f"{head}.{payload} .{sig}",
        f"{head}.{payload}\n.{sig}",
        f"{head}.{payload}.{sig}?",
        f"{head}.{payload}.{sig}#",
        f"{head}.{payload}",
        f"{head}.{payload}.{sig}.",
        f"{head}.{payload}.{sig}.{sig}.{sig}",
        f".{payload}.{sig}",
        f"{b64(b'[1]')}.{payload}.{sig}",
        f"{b64(b'null')}.{payload}.{sig}",
        f"{bom_header}.{payload}.{sig}",
        f"{bad_utf8_header}.{payload}.{sig}",
        ".".join(parts[:2]) + "." + sig[:-1] + ("B" if sig[-1] != "B" else "C"),
    ]


def _cases() -> list[tuple[str, Callable[[Ctx], list[str]]]]:
    now = int(time.time())
    return [
        (
            "JWT-01 alg none",
            lambda c: [_none(c, a, k) for a in ("none", "None", "NONE", "nOnE") for k in (False, True)],
        ),
        ("JWT-02 unverified signature", lambda c: [_swap_payload(c)]),
        (
            "JWT-03 signature stripping",
            lambda c: [
                _signature(c, ""),
                ".".join(c.token.split(".")[:2]),
                _signature(c, "AA"),
                c.token[:-4],
                _signature(c, bytes(63)),
                _signature(c, bytes(65)),
            ],
        ),
        ("JWT-05 key confusion ES256 -> HS256", lambda c: [c.hmac("HS256", s) for s in _public_encodings(c)]),
        (
            "JWT-06 algorithm substitution",
            lambda c: [c.with_header(alg=a) for a in ("ES384", "ES512", "RS256", "PS256", "EdDSA")],
        ),
        (
            "JWT-07 case / unknown alg",
            lambda c: [c.with_header(alg=a) for a in ("es256", "Es256", "ES256K", "")],
        ),
        (
            "JWT-07 alg missing or not a string",
            lambda c: [c.sign({"typ": "at+jwt", "kid": c.kid}, c.claims), c.with_header(alg=256)],
        ),
        ("JWT-08 jwk header injection", lambda c: [_attacker_jwk(c)]),
        (
            "JWT-09/10 jku, x5u, x5c",
            lambda c: [
                c.with_header(jku="https://attacker.example/jwks.json"),
                c.with_header(x5u="https://attacker.example/cert.pem"),
                c.with_header(x5c=["MIIB"]),
            ],
        ),
        (
            "JWT-11 kid injection",
            lambda c: [
                c.with_header(kid=k)
                for k in (
                    "../../../../../../dev/null",
                    "/dev/null",
                    "x' UNION SELECT '1';--",
                    "|sleep 10",
                    "$(id)",
                    "*)(uid=*",
                    "",
                    "k" * 10_000,
                    7,
                    {"a": 1},
                    [c.kid],
                )
            ],
        ),
        (
            "JWT-12 expired",
            lambda c: [
                c.with_claims(exp=now - 1, iat=now - 601),
                c.with_claims(exp=int(time.time()), iat=int(time.time()) - 600),
                c.with_claims(exp=None),
                c.with_claims(exp=str(now + 300)),
                c.with_claims(exp=-1),
                c.with_claims(exp=True),
                _raw_claims(c, _claims_json(c, exp="1e309")),
            ],
        ),
        ("JWT-13 not yet valid", lambda c: [c.with_claims(nbf=now + 3600)]),
        (
            "JWT-14 iat in the future or missing",
            lambda c: [c.with_claims(iat=now + 3600, exp=now + 4200), c.with_claims(iat=None)],
        ),
        (
            "JWT-15 wrong issuer",
            lambda c: [
                c.with_claims(iss=i)
                for i in (
                    "https://attacker.example",
                    c.claims["iss"].upper(),
                    c.claims["iss"] + "/",
                    c.claims["iss"].replace("http://", "https://"),
                    None,
                )
            ],
        ),
        (
            "JWT-16 another key with our kid",
            lambda c: [c.sign(c.header(), c.claims, ec.generate_private_key(ec.SECP256R1()))],
        ),
        (
            "JWT-17 wrong audience",
            lambda c: [c.with_claims(aud=a) for a in (None, "other-api", ["other-api"], "mobile-app", [])],
        ),
        (
            "JWT-18 typ confusion",
            lambda c: (
                [
                    c.with_header(typ=t)
                    for t in ("JWT", None, "dpop+jwt", "logout+jwt", "secevent+jwt", "application/jwt")
                ]
                + [
                    c.sign(
                        {"alg": "ES256", "typ": "JWT", "kid": c.kid},
                        {**c.claims, "nonce": "n", "at_hash": "h"},
                    )
                ]
            ),
        ),
        (
            "JWT-19 crit",
            lambda c: [
                c.with_header(crit=["x-unknown"], **{"x-unknown": 1}),
                c.with_header(crit=["x-unknown"]),
                c.with_header(crit=[]),
                c.with_header(crit="exp"),
                c.with_header(crit=["alg"]),
                c.with_header(b64=False),
            ],
        ),
        (
            "JWT-20 duplicate members",
            lambda c: [
                c.sign_raw(
                    b'{"alg":"ES256","typ":"at+jwt","kid":"' + c.kid.encode() + b'","alg":"none"}',
                    orjson.dumps(c.claims),
                ),
                _raw_claims(c, _claims_json(c)[:-1] + ',"sub":"admin"}'),
                _raw_claims(c, _claims_json(c)[:-1] + ',"aud":"customer-api"}'),
            ],
        ),
        (
            "JWT-21 oversized",
            lambda c: [
                c.with_claims(pad="x" * 20_000),
                c.with_claims(pad="x" * 1_000_000),
                _raw_claims(c, _claims_json(c, deep="[" * 5000 + "]" * 5000)),
                _raw_claims(c, _claims_json(c, deep="[" * 20 + "]" * 20)),
                c.with_claims(**{f"c{i}": i for i in range(3000)}),
            ],
        ),
        ("JWT-22 invalid base64url / structure", _b64_variants),
        (
            "JWT-23 JSON serialization",
            lambda c: [
                json.dumps(
                    {
                        "payload": c.token.split(".")[1],
                        "protected": c.token.split(".")[0],
                        "signature": c.token.split(".")[2],
                    }
                ),
                c.token + json.dumps({"signatures": []}),
            ],
        ),
        ("JWT-24 nested JWT", lambda c: [c.with_header(cty="JWT")]),
        ("JWT-25 JWE", lambda c: [c.token + ".AAAA.BBBB", c.with_header(enc="A256GCM", alg="dir")]),
        (
            "JWT-26 psychic signatures",
            lambda c: [
                _signature(c, bytes(64)),
                _signature(c, N_P256.to_bytes(32, "big") * 2),
                _signature(c, (1).to_bytes(32, "big") * 2),
                _signature(c, (N_P256 - 1).to_bytes(32, "big") + (1).to_bytes(32, "big")),
            ],
        ),
        (
            "JWT-29 claim type confusion",
            lambda c: [
                c.with_claims(aud=1),
                c.with_claims(aud={"x": "customer-api"}),
                c.with_claims(sub={"id": "alice"}),
                c.with_claims(scope=["customers:read"]),
                c.with_claims(iss=None),
                c.with_claims(client_id=None),
                c.with_claims(jti=None),
                c.with_claims(jti=12),
            ],
        ),
        (
            "JWT-33 injection strings are data, never reflected",
            lambda c: [
                c.sign(
                    c.header(),
                    {**c.claims, "sub": "admin\r\nX-Injected: 1"},
                    ec.generate_private_key(ec.SECP256R1()),
                ),
                c.with_header(kid="<script>alert(1)</script>"),
                c.with_header(kid="\u001b[31mred"),
            ],
        ),
    ]


CASES = _cases()


@pytest.fixture()
def ctx(issuer: Issuer) -> Ctx:
    token = issuer.client_credentials(scope="customers:read")["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    return Ctx(issuer, claims, token, header["kid"])


def test_the_forging_helper_makes_valid_tokens(ctx: Ctx) -> None:
    """Control: the same claims re-signed by the helper are accepted, so a refusal below is the attack's."""
    assert ctx.issuer.introspect(ctx.with_claims())["active"] is True
    assert ctx.issuer.introspect(ctx.with_header())["active"] is True


@pytest.mark.parametrize(
    "name, build", CASES, ids=[name.split(" ", 1)[0] + "-" + str(i) for i, (name, _) in enumerate(CASES)]
)
def test_forged_tokens_are_inactive_and_revoke_nothing(
    ctx: Ctx, name: str, build: Callable[[Ctx], list[str]]
) -> None:
    auth = ("partner-portal", ctx.issuer.secrets["partner-portal"])
    for forged in build(ctx):
        r = ctx.issuer.post(
            "introspect", {"token": forged}, auth=("resource-server", ctx.issuer.secrets["resource-server"])
        )
        if r.status_code == 413:  # refused before parsing: too large for the endpoint at all
            continue
        assert r.status_code == 200, (name, r.text)
        assert r.json() == {"active": False}, (name, forged[:200])
        r = ctx.issuer.post("revoke", {"token": forged}, auth=auth)
        assert r.status_code in (200, 413), (name, r.text)
    # the real token whose claims were reused is untouched
    assert ctx.issuer.introspect(ctx.token)["active"] is True


def test_revoked_token_is_inactive(ctx: Ctx) -> None:
    """JWT-30."""
    auth = ("partner-portal", ctx.issuer.secrets["partner-portal"])
    assert ctx.issuer.post("revoke", {"token": ctx.token}, auth=auth).status_code == 200
    assert ctx.issuer.introspect(ctx.token) == {"active": False}
