"""RFC 9068 access-token verification at the resource server, and the JWT attack catalogue.

The catalogue cases that apply at this layer (JWT-01..08, 10..22, 24..29, 33)
are built by hand: keys are generated here, header and claims bytes are
written directly so malformed tokens can be produced, and every token goes
through the real path, ``parse_compact_jws`` then ``verify_access_token``.
Every rejection must carry a short, fixed, printable reason that quotes
neither the token nor any value from it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from apishield.auth.rfc9068 import (
    DEFAULT_REQUIRED_CLAIMS,
    AccessTokenPolicy,
    InvalidToken,
    UnknownKey,
    VerifiedToken,
    decode_unverified_claims,
    select_policy,
    verify_access_token,
)
from apishield.jose import (
    ALGORITHMS,
    JOSEError,
    KeySet,
    b64url_decode,
    b64url_encode,
    import_hmac_secret,
    import_jwk,
    import_jwks,
    parse_compact_jws,
    verify_signature,
)
from tests.jose.tokens import (
    Signer,
    b64,
    compact_json,
    make_token,
    new_signer,
    public_key_encodings,
    self_signed_certificate,
)
from tests.jose.vectors import WYCHEPROOF, load_if_present

ISSUER = "https://issuer.example.com/"
AUDIENCE = "https://api.example.com"
NOW = 1_700_000_000.0

RS = new_signer("RS256", "rs-1")
PS = new_signer("PS256", "ps-1")
ES = new_signer("ES256", "es-1")
ES384 = new_signer("ES384", "es384-1")
ES512 = new_signer("ES512", "es512-1")
ED = new_signer("EdDSA", "ed-1")
HS = new_signer("HS256", "hs-1")
ASYMMETRIC = [RS, PS, ES, ES384, ES512, ED]
ALL_SIGNERS = [*ASYMMETRIC, HS]


def keys_of(*signers: Signer) -> KeySet:
    return KeySet.of(s.verification_key() for s in signers)


def policy(*algs: str, **changes: Any) -> AccessTokenPolicy:
    return AccessTokenPolicy(
        issuer=ISSUER, audience=AUDIENCE, algorithms=frozenset(algs or {"RS256"}), **changes
    )


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "client_id": "client-1",
        "iat": NOW - 10,
        "exp": NOW + 600,
        "jti": "jti-1",
        "scope": "orders:read orders:write",
    }
    for name, value in changes.items():
        if value is ...:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def header(signer: Signer, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"alg": signer.alg, "typ": "at+jwt", "kid": signer.kid}
    for name, value in changes.items():
        if value is ...:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def verify(
    token: str,
    signer: Signer | None = RS,
    pol: AccessTokenPolicy | None = None,
    keys: KeySet | None = None,
    now: float = NOW,
    max_length: int = 8192,
) -> VerifiedToken:
    assert signer is not None or keys is not None
    keys = keys if keys is not None else keys_of(signer)  # type: ignore[arg-type]
    pol = pol if pol is not None else policy(signer.alg if signer else "RS256")
    return verify_access_token(parse_compact_jws(token, max_length=max_length), pol, keys, now)


def assert_safe(reason: str, token: str, secrets: tuple[str, ...] = ()) -> None:
    """A reason is short fixed text: printable ASCII, no token piece and no value from it."""
    assert isinstance(reason, str) and 0 < len(reason) <= 120
    assert reason.isascii() and reason.isprintable(), reason
    for piece in [token, *token.split(".")]:
        if len(piece) >= 8:
            assert piece not in reason
    for secret in secrets:
        assert secret not in reason, reason


def rejected(
    token: str, match: str | None = None, *, secrets: tuple[str, ...] = (), **kwargs: Any
) -> InvalidToken | JOSEError:
    with pytest.raises((InvalidToken, JOSEError)) as info:
        verify(token, **kwargs)
    error = info.value
    assert isinstance(error, InvalidToken | JOSEError)
    assert_safe(error.reason, token, secrets)
    if match is not None:
        assert match in error.reason, error.reason
    return error


# -- accepted tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize("signer", ALL_SIGNERS, ids=lambda s: s.alg)
def test_valid_token_for_every_algorithm(signer: Signer) -> None:
    token = make_token(signer, claims(cnf={"jkt": "abc"}))
    result = verify(token, signer)
    assert result.claims["sub"] == "alice"
    assert (result.issuer, result.subject, result.client_id, result.jti) == (
        ISSUER,
        "alice",
        "client-1",
        "jti-1",
    )
    assert result.scopes == frozenset({"orders:read", "orders:write"})
    assert (result.expires_at, result.issued_at) == (NOW + 600, NOW - 10)
    assert result.key_thumbprint == signer.verification_key().thumbprint
    assert result.cnf == {"jkt": "abc"}


def test_optional_claims_absent() -> None:
    result = verify(make_token(RS, claims(scope=...)))
    assert result.scopes == frozenset() and result.cnf is None
    assert verify(make_token(RS, claims(scope=""))).scopes == frozenset()


def test_rfc7515_appendix_a1_is_a_valid_jws_but_an_expired_jwt() -> None:
    """RFC 7515 A.1 (HS256, CRLF in the JSON): the signature verifies, the JWT expired in 2011."""
    key = import_jwk(
        {
            "kty": "oct",
            "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
        },
        allowed_algs=frozenset({"HS256"}),
    )
    token = (
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    )
    jws = parse_compact_jws(token)
    verify_signature(jws, key)
    legacy = AccessTokenPolicy(
        issuer="joe",
        audience="",
        algorithms=frozenset({"HS256"}),
        require_typ=False,
        require_aud=False,
        required_claims=frozenset({"iss", "exp"}),
        max_lifetime=None,
    )
    keys = KeySet.single(key)
    assert (
        verify_access_token(jws, legacy, keys, 1_300_819_379.0).claims["http://example.com/is_root"] is True
    )
    with pytest.raises(InvalidToken, match="expired"):
        verify_access_token(jws, legacy, keys, 1_300_819_380.0 + legacy.leeway)
    with pytest.raises(InvalidToken, match="typ must be at\\+jwt"):
        verify_access_token(jws, policy("HS256"), keys, 1_300_819_379.0)


# -- JWT-01 alg none -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_jwt01_alg_none(alg: str) -> None:
    good = make_token(RS, claims())
    head = b64(compact_json(header(RS, alg=alg)))
    _, payload, signature = good.split(".")
    rejected(f"{head}.{payload}.", "signature is missing")
    rejected(f"{head}.{payload}.{signature}", "alg none")
    with pytest.raises(ValueError):
        policy(alg)


# -- JWT-02 unverified signature -----------------------------------------------------------------


@pytest.mark.parametrize("signer", ALL_SIGNERS, ids=lambda s: s.alg)
def test_jwt02_modified_payload(signer: Signer) -> None:
    head, _, signature = make_token(signer, claims()).split(".")
    forged = b64(compact_json(claims(sub="admin")))
    rejected(
        f"{head}.{forged}.{signature}", "signature verification failed", signer=signer, secrets=("admin",)
    )


# -- JWT-03 signature stripping ------------------------------------------------------------------


@pytest.mark.parametrize("signer", ALL_SIGNERS, ids=lambda s: s.alg)
def test_jwt03_signature_stripping(signer: Signer) -> None:
    token = make_token(signer, claims())
    head, payload, signature = token.split(".")
    raw = b64url_decode(signature)
    for bad in (
        f"{head}.{payload}.",
        f"{head}.{payload}",
        f"{head}.{payload}.AA",
        f"{head}.{payload}.{b64(raw[:-1])}",
        f"{head}.{payload}.{b64(raw + b'x')}",
        f"{head}.{payload}.{b64(bytes(len(raw)))}",
        token[:-4],
    ):
        rejected(bad, signer=signer)


# -- JWT-04 blank or weak HMAC secret ------------------------------------------------------------


@pytest.mark.parametrize("secret", [b"", b"secret", b"password", b"your-256-bit-secret", b"1"])
def test_jwt04_weak_hmac_secret(secret: bytes) -> None:
    with pytest.raises(JOSEError):
        import_hmac_secret(secret, "HS256")
    forged = make_token(Signer("HS256", secret, "hs-1"), claims())
    rejected(forged, "signature verification failed", signer=HS)


# -- JWT-05 key confusion ------------------------------------------------------------------------


@pytest.mark.parametrize("signer", [RS, ES, ED], ids=lambda s: s.alg)
def test_jwt05_asymmetric_to_hmac_key_confusion(signer: Signer) -> None:
    encodings = public_key_encodings(signer.private, signer.public_jwk())
    assert len(encodings) >= 10
    keys = keys_of(signer)
    for encoding, public_bytes in encodings.items():
        forged = make_token(
            Signer("HS256", public_bytes, signer.kid),
            claims(sub=f"admin-{encoding}"),
            header(signer, alg="HS256"),
        )
        rejected(forged, "alg is not allowed", signer=signer, keys=keys)
        # even a policy that allows HS256 next to the key's algorithm never uses the key as a secret
        rejected(forged, "does not match the key", signer=signer, keys=keys, pol=policy(signer.alg, "HS256"))
        with pytest.raises(JOSEError, match="algorithm confusion"):
            import_hmac_secret(public_bytes, "HS256", allow_weak=True)


def test_jwt05_wycheproof_symmetry_confusion() -> None:
    doc = load_if_present(WYCHEPROOF / "json_web_signature_test.json")
    if doc is None:
        pytest.skip("tests/vectors is missing")
    ((group, test),) = [
        (g, t)
        for g in doc["testGroups"]
        for t in g["tests"]
        if t["comment"] == "rejectsSymmetryConfusionAttacks_aesKeyFromEcVerificationKeyBytes"
    ]
    key = import_jwk(group["public"], allowed_algs=frozenset(ALGORITHMS))
    with pytest.raises(JOSEError, match="does not match the key"):
        verify_signature(parse_compact_jws(test["jws"]), key)


# -- JWT-06 algorithm substitution ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("signer", "alg"),
    [
        (RS, "PS256"),
        (RS, "RS512"),
        (RS, "PS512"),
        (PS, "RS256"),
        (PS, "PS384"),
        (ES, "ES384"),
        (ED, "Ed25519"),
    ],
)
def test_jwt06_algorithm_substitution(signer: Signer, alg: str) -> None:
    same_family = alg[:2] in ("RS", "PS") or alg[:2] == signer.alg[:2]
    forged = make_token(signer, claims(), header(signer, alg=alg), sign_alg=alg if same_family else None)
    rejected(forged, "does not match the key", signer=signer, pol=policy(signer.alg, alg))
    rejected(forged, "alg is not allowed", signer=signer)


# -- JWT-07 case / unknown alg -------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["hs256", "Rs256", "rs256", "RS256 ", "ES256K", "RS1", "HS256\x00", "PS256"])
def test_jwt07_unknown_or_miscased_alg(alg: str) -> None:
    rejected(make_token(RS, claims(), header(RS, alg=alg)), "alg is not allowed")


@pytest.mark.parametrize("alg", [..., 256, None, ["RS256"], {"alg": "RS256"}, "", True])
def test_jwt07_missing_or_non_string_alg(alg: Any) -> None:
    rejected(make_token(RS, claims(), header(RS, alg=alg)), "alg is missing or not a string")


# -- JWT-08 jwk header injection -----------------------------------------------------------------


def test_jwt08_embedded_jwk_is_never_used() -> None:
    attacker = new_signer("RS256", "rs-1")
    forged = make_token(attacker, claims(sub="admin"), header(RS, jwk=attacker.public_jwk()))
    rejected(forged, "'jwk' is not accepted")
    # a parser that allows jwk (a DPoP path) still verifies with the issuer's key only
    jws = parse_compact_jws(forged, allowed_header_params=frozenset({"alg", "kid", "typ", "jwk"}))
    with pytest.raises(InvalidToken, match="signature verification failed"):
        verify_access_token(jws, policy(), keys_of(RS), NOW)
    unknown = make_token(attacker, claims(), header(RS, kid="attacker", jwk=attacker.public_jwk()))
    jws = parse_compact_jws(unknown, allowed_header_params=frozenset({"alg", "kid", "typ", "jwk"}))
    with pytest.raises(UnknownKey):
        verify_access_token(jws, policy(), keys_of(RS), NOW)


# -- JWT-10 x5u / x5c injection (and jku, x5t) ---------------------------------------------------


def test_jwt10_certificate_and_url_headers_refused() -> None:
    attacker = new_signer("RS256", "rs-1")
    cert = self_signed_certificate(attacker.private)
    from cryptography.hazmat.primitives import serialization

    x5c = [b64url_encode(cert.public_bytes(serialization.Encoding.DER))]
    for name, value in (
        ("x5c", x5c),
        ("x5u", "https://attacker.example/cert.pem"),
        ("jku", "https://attacker.example/jwks.json"),
        ("jku", "https://issuer.example.com@attacker.example/jwks.json"),
        ("x5t", "dGh1bWI"),
        ("x5t#S256", "dGh1bWI"),
    ):
        forged = make_token(attacker, claims(), header(RS, **{name: value}))
        rejected(forged, f"'{name}' is not accepted", secrets=("attacker",))


# -- JWT-11 kid injection ------------------------------------------------------------------------

KID_INJECTIONS = [
    "../../../../../../dev/null",
    "/dev/null",
    "/proc/sys/kernel/randomize_va_space",
    "x' UNION SELECT '1';--",
    "|sleep 10",
    "$(id)",
    "*)(uid=*",
    "rs-1\r\nX-Injected: 1",
    "RS-1",
    "rs-1 ",
]


@pytest.mark.parametrize("kid", KID_INJECTIONS)
def test_jwt11_kid_is_an_exact_key_into_the_set(kid: str) -> None:
    token = make_token(RS, claims(), header(RS, kid=kid))
    error = rejected(token, "unknown key id", secrets=(kid, "UNION", "/dev", "sleep"))
    assert isinstance(error, UnknownKey)
    assert (error.issuer, error.kid) == (ISSUER, kid)


def test_jwt11_sql_kid_signed_with_guessable_secret() -> None:
    forged = make_token(
        Signer("HS256", b"1", "x"), claims(), header(RS, alg="HS256", kid="x' UNION SELECT '1';--")
    )
    rejected(forged, "alg is not allowed")


@pytest.mark.parametrize("kid", [5, {"a": 1}, ["rs-1"], None, True, ""])
def test_jwt11_kid_types(kid: Any) -> None:
    rejected(make_token(RS, claims(), header(RS, kid=kid)), "kid must be a non-empty string")


def test_jwt11_huge_kid() -> None:
    rejected(make_token(RS, claims(), header(RS, kid="k" * 10_000)), "too long")
    rejected(make_token(RS, claims(), header(RS, kid="k" * 1000)), "kid must be")


def test_token_without_kid() -> None:
    token = make_token(RS, claims(), header(RS, kid=...))
    assert verify(token).subject == "alice"  # one key: it is the key
    rejected(token, "no kid and the issuer has several keys", keys=keys_of(RS, new_signer("RS256", "rs-2")))


# -- JWT-12 expiry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exp", "leeway", "accepted"),
    [
        (NOW + 1, 0.0, True),
        (NOW + 0.001, 0.0, True),
        (NOW, 0.0, False),  # now == exp is expired
        (NOW - 1, 0.0, False),
        (NOW - 29.999, 30.0, True),
        (NOW - 30, 30.0, False),
        (NOW - 3600, 30.0, False),
    ],
)
def test_jwt12_exp_boundaries(exp: float, leeway: float, accepted: bool) -> None:
    token = make_token(RS, claims(exp=exp, iat=NOW - 100))
    pol = policy(leeway=leeway)
    if accepted:
        assert verify(token, pol=pol).expires_at == exp
    else:
        rejected(token, "expired", pol=pol)


@pytest.mark.parametrize(
    ("raw_exp", "match"),
    [
        (b'"9999999999"', "must be a JSON number"),
        (b"true", "must be a JSON number"),
        (b"null", "must be a JSON number"),
        (b"[1]", "must be a JSON number"),
        (b"-1", "out of range"),
        (b"9007199254740993", "out of range"),
        (b"1e309", "out of the range of a double"),
        (b"NaN", "NaN"),
        (b"Infinity", "Infinity"),
    ],
)
def test_jwt12_exp_types(raw_exp: bytes, match: str) -> None:
    body = compact_json(claims(exp=0)).replace(b'"exp":0', b'"exp":' + raw_exp)
    rejected(make_token(RS, body), match)


def test_jwt12_exp_is_always_required() -> None:
    rejected(make_token(RS, claims(exp=...)), "required claim 'exp' is missing")
    legacy = policy(required_claims=frozenset({"iss", "aud"}))
    rejected(make_token(RS, claims(exp=...)), "required claim 'exp' is missing", pol=legacy)


# -- JWT-13 not yet valid ------------------------------------------------------------------------


def test_jwt13_nbf() -> None:
    assert verify(make_token(RS, claims(nbf=NOW + 30))).subject == "alice"  # nbf == now + leeway
    assert verify(make_token(RS, claims(nbf=NOW - 5))).subject == "alice"
    rejected(make_token(RS, claims(nbf=NOW + 30.001)), "not valid yet")
    rejected(make_token(RS, claims(nbf=NOW + 1)), "not valid yet", pol=policy(leeway=0.0))
    rejected(make_token(RS, claims(nbf="0")), "'nbf' must be a JSON number")


# -- JWT-14 iat and lifetime ---------------------------------------------------------------------


def test_jwt14_iat() -> None:
    assert verify(make_token(RS, claims(iat=NOW + 30))).issued_at == NOW + 30
    rejected(make_token(RS, claims(iat=NOW + 30.5)), "issued in the future")
    rejected(make_token(RS, claims(iat=...)), "required claim 'iat' is missing")
    rejected(make_token(RS, claims(iat=True)), "'iat' must be a JSON number")


def test_jwt14_max_lifetime() -> None:
    assert verify(make_token(RS, claims(iat=NOW - 100, exp=NOW - 100 + 3600))).subject == "alice"
    rejected(make_token(RS, claims(iat=NOW - 100, exp=NOW - 100 + 3601)), "lifetime exceeds")
    ten_years = make_token(RS, claims(exp=NOW + 10 * 365 * 86400))
    rejected(ten_years, "lifetime exceeds")
    assert verify(ten_years, pol=policy(max_lifetime=None)).subject == "alice"
    assert verify(ten_years, pol=policy(max_lifetime=20 * 365 * 86400.0)).subject == "alice"


def test_jwt14_lifetime_without_iat_in_a_legacy_profile() -> None:
    legacy = policy(required_claims=frozenset({"iss", "exp", "aud", "sub"}))
    assert verify(make_token(RS, claims(iat=..., exp=NOW + 3600 + 30)), pol=legacy).issued_at is None
    rejected(make_token(RS, claims(iat=..., exp=NOW + 3600 + 31)), "lifetime exceeds", pol=legacy)


# -- JWT-15 wrong issuer -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    [
        "https://issuer.example.com",
        "https://issuer.example.com//",
        "HTTPS://issuer.example.com/",
        "https://ISSUER.example.com/",
        "http://issuer.example.com/",
        "https://issuer.example.com/ ",
        "https://issuer.example.com/?",
        "https://issuer.example.com:443/",
        "https://attacker.example/",
    ],
)
def test_jwt15_issuer_is_an_exact_string(iss: str) -> None:
    rejected(make_token(RS, claims(iss=iss)), "issuer does not match", secrets=("attacker",))


def test_jwt15_issuer_missing_or_mistyped() -> None:
    rejected(make_token(RS, claims(iss=...)), "required claim 'iss' is missing")
    rejected(make_token(RS, claims(iss=None)), "'iss' must be a string")
    rejected(make_token(RS, claims(iss=[ISSUER])), "'iss' must be a string")
    legacy = policy(require_iss=False, required_claims=DEFAULT_REQUIRED_CLAIMS - {"iss"})
    assert verify(make_token(RS, claims(iss=...)), pol=legacy).issuer is None
    rejected(make_token(RS, claims(iss="https://other.example/")), "issuer does not match", pol=legacy)


# -- JWT-16 cross-issuer keys --------------------------------------------------------------------


def test_jwt16_cross_issuer_key_never_verifies() -> None:
    issuer_a, issuer_b = "https://a.example/", "https://b.example/"
    key_a, key_b = new_signer("RS256", "a-1"), new_signer("RS256", "b-1")
    policies = {
        issuer_a: AccessTokenPolicy(issuer=issuer_a, audience=AUDIENCE, algorithms=frozenset({"RS256"})),
        issuer_b: AccessTokenPolicy(issuer=issuer_b, audience=AUDIENCE, algorithms=frozenset({"RS256"})),
    }
    keysets = {issuer_a: keys_of(key_a), issuer_b: keys_of(key_b)}

    def route_and_verify(token: str) -> VerifiedToken:
        jws = parse_compact_jws(token)
        pol = select_policy(decode_unverified_claims(jws).get("iss"), policies)
        return verify_access_token(jws, pol, keysets[pol.issuer], NOW)

    assert route_and_verify(make_token(key_b, claims(iss=issuer_b))).issuer == issuer_b
    # B's valid key signs a token claiming issuer A: A's key set has no such kid
    with pytest.raises(UnknownKey) as info:
        route_and_verify(make_token(key_b, claims(iss=issuer_a)))
    assert info.value.issuer == issuer_a
    # same, with B's key published under a kid that A also uses
    colliding = Signer("RS256", key_b.private, "a-1")
    with pytest.raises(InvalidToken, match="signature verification failed"):
        route_and_verify(make_token(colliding, claims(iss=issuer_a)))
    # and verifying A's claims with B's keys directly fails on the issuer check
    with pytest.raises(InvalidToken, match="issuer does not match"):
        verify_access_token(
            parse_compact_jws(make_token(key_b, claims(iss=issuer_a))),
            policies[issuer_b],
            keysets[issuer_b],
            NOW,
        )


def test_select_policy() -> None:
    policies = {ISSUER: policy()}
    assert select_policy(ISSUER, policies) is policies[ISSUER]
    for iss in ("https://other.example/", ISSUER.upper(), ISSUER.rstrip("/")):
        with pytest.raises(InvalidToken, match="unknown issuer"):
            select_policy(iss, policies)
    for bad in (None, 5, [ISSUER], {"iss": ISSUER}):
        with pytest.raises(InvalidToken, match="names no issuer"):
            select_policy(bad, policies)
    with pytest.raises(InvalidToken, match="unknown issuer"):
        select_policy("https://other.example/", {"https://other.example/": policy()})  # mismatched table


# -- JWT-17 wrong audience -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud",
    [
        "https://other-api.example.com",
        "https://api.example.com/",
        "HTTPS://api.example.com",
        ["https://other-api.example.com"],
        [],
        "client-1",  # an ID token's aud is the client
        ["client-1", "https://api.example.com/v2"],
    ],
)
def test_jwt17_audience_must_include_this_api(aud: Any) -> None:
    rejected(make_token(RS, claims(aud=aud)), "audience does not include this API")


def test_jwt17_audience_accepted_forms_and_legacy() -> None:
    assert verify(make_token(RS, claims(aud=["https://other.example", AUDIENCE]))).subject == "alice"
    rejected(make_token(RS, claims(aud=...)), "required claim 'aud' is missing")
    legacy = policy(require_aud=False, required_claims=DEFAULT_REQUIRED_CLAIMS - {"aud"})
    assert verify(make_token(RS, claims(aud=...)), pol=legacy).subject == "alice"
    rejected(make_token(RS, claims(aud="https://other.example")), "audience", pol=legacy)


# -- JWT-18 typ confusion ------------------------------------------------------------------------


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+Jwt"])
def test_jwt18_access_token_typ_accepted(typ: str) -> None:
    assert verify(make_token(RS, claims(), header(RS, typ=typ))).subject == "alice"


OTHER_TYPES = [
    "dpop+jwt",
    "logout+jwt",
    "secevent+jwt",
    "application/secevent+jwt",
    "token-introspection+jwt",
    "jwt-bearer+jwt",
    "refresh+jwt",
    "at+jwt; charset=utf-8",
    "application/at+jwt+x",
    "at+jwt ",
    "example/at+jwt",
    "JOSE",
    "",
]


@pytest.mark.parametrize("typ", [..., "JWT", "jwt", "application/jwt", *OTHER_TYPES])
def test_jwt18_strict_typ(typ: Any) -> None:
    rejected(make_token(RS, claims(), header(RS, typ=typ)), "typ must be at+jwt")


@pytest.mark.parametrize("typ", OTHER_TYPES)
def test_jwt18_compat_mode_still_refuses_other_jwt_kinds(typ: str) -> None:
    rejected(
        make_token(RS, claims(), header(RS, typ=typ)),
        "not an access token type",
        pol=policy(require_typ=False),
    )


def test_jwt18_compat_mode() -> None:
    compat = policy(require_typ=False)
    for typ in (..., "JWT", "jwt", "application/jwt", "at+jwt"):
        assert verify(make_token(RS, claims(), header(RS, typ=typ)), pol=compat).subject == "alice"
    id_token = claims(nonce="n-0S6_WzA2Mj", at_hash="77QmUPtjPfzWtF2AnpK9RQ", azp="client-1")
    rejected(make_token(RS, id_token, header(RS, typ="JWT")), "ID token", pol=compat)
    rejected(make_token(RS, claims(nonce="n"), header(RS, typ=...)), "ID token", pol=compat)
    rejected(make_token(RS, claims(at_hash="x"), header(RS, typ=...)), "ID token", pol=compat)
    rejected(make_token(RS, claims(aud="client-1"), header(RS, typ="JWT")), "audience", pol=compat)
    logout = claims(events={"http://schemas.openid.net/event/backchannel-logout": {}})
    rejected(make_token(RS, logout, header(RS, typ=...)), "security event token", pol=compat)
    rejected(make_token(RS, logout, header(RS, typ="logout+jwt")), "not an access token type", pol=compat)


def test_jwt18_dpop_proof_and_client_assertion() -> None:
    attacker = new_signer("ES256", None)
    proof_header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": attacker.public_jwk()}
    proof = make_token(attacker, {"jti": "p", "htm": "GET", "htu": AUDIENCE, "iat": NOW}, proof_header)
    rejected(proof, "'jwk' is not accepted", signer=ES)
    assertion = claims(iss="client-1", sub="client-1", aud="https://issuer.example.com/token")
    rejected(make_token(RS, assertion, header(RS, typ=...)), pol=policy(require_typ=False))


# -- JWT-19 crit ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"crit": ["x-unknown"], "x-unknown": 1}, "not understood"),
        ({"crit": ["x-unknown"]}, "absent"),
        ({"crit": []}, "non-empty array"),
        ({"crit": "exp"}, "non-empty array"),
        ({"crit": ["alg"]}, "defined by JWS or JWA"),
        ({"crit": ["exp"], "exp": NOW + 60}, "not understood"),
        ({"b64": False}, "'b64' is not accepted"),
        ({"b64": False, "crit": ["b64"]}, "'b64' is not accepted"),
    ],
)
def test_jwt19_crit(changes: dict[str, Any], match: str) -> None:
    rejected(make_token(RS, claims(), header(RS, **changes)), match)


# -- JWT-20 duplicate members --------------------------------------------------------------------


def test_jwt20_duplicate_header_members() -> None:
    raw = b'{"alg":"RS256","typ":"at+jwt","kid":"rs-1","alg":"none"}'
    rejected(make_token(RS, claims(), raw), "duplicate member")
    raw = b'{"alg":"RS256","typ":"at+jwt","kid":"rs-1","kid":"rs-2"}'
    rejected(make_token(RS, claims(), raw), "duplicate member")


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [
        ("sub", "alice", "admin"),
        ("aud", "https://x.example", AUDIENCE),
        ("iss", "https://x.example/", ISSUER),
    ],
)
def test_jwt20_duplicate_claims(name: str, first: str, second: str) -> None:
    body = compact_json(claims()).replace(
        f'"{name}":'.encode(), f'"{name}":{json.dumps(first)},"{name}":'.encode(), 1
    )
    assert body.count(f'"{name}":'.encode()) == 2
    rejected(make_token(RS, body), "duplicate member", secrets=(first, second))


# -- JWT-21 resource exhaustion ------------------------------------------------------------------


def test_jwt21_oversized_tokens() -> None:
    rejected(make_token(RS, claims(pad="x" * 9000)), "too long")
    megabyte = "A" * (1 << 20)
    rejected(f"eyJhbGciOiJSUzI1NiJ9.{megabyte}.AAAA", "too long")
    rejected(make_token(RS, claims(), header(RS, kid="k" * 20_000)), "too long")


def test_jwt21_deep_nesting_and_many_claims_with_a_raised_limit() -> None:
    deep = b'{"sub":"alice","x":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    rejected(make_token(RS, deep), "nesting deeper than 16", max_length=10**7)
    many = compact_json({**claims(), **{f"c{i}": i for i in range(100_000)}})
    rejected(make_token(RS, many), "too large", max_length=10**7)
    deep_header = {**header(RS), "x": json.loads("[" * 50 + "]" * 50)}
    rejected(make_token(RS, claims(), deep_header), "nesting deeper than 8", max_length=10**7)


@pytest.mark.parametrize(
    "changes",
    [{"zip": "DEF"}, {"p2c": 10**9, "p2s": "c2FsdA"}, {"enc": "A256GCM"}, {"epk": {"kty": "EC"}}],
    ids=["zip", "p2c", "enc", "epk"],
)
def test_jwt21_jwe_processing_params(changes: dict[str, Any]) -> None:
    rejected(make_token(RS, claims(), header(RS, **changes)), "is not accepted")


# -- JWT-22 base64url and structure --------------------------------------------------------------


def test_jwt22_structure() -> None:
    token = make_token(RS, claims())
    head, payload, signature = token.split(".")
    last = signature[-1]
    flipped = {"A": "B", "Q": "R", "g": "h", "w": "x"}.get(last)
    variants = {
        "padding": f"{head}.{payload}.{signature}==",
        "padding-in-header": f"{head}=.{payload}.{signature}",
        "plus": f"{head}.{payload}.{signature.replace('-', '+').replace('_', '/')}",
        "space": f"{head}.{payload} .{signature}",
        "newline": f"{head}.\n{payload}.{signature}",
        "question-mark": f"{head}.{payload}?.{signature}",
        "hash": f"{head}#.{payload}.{signature}",
        "one-segment": head,
        "two-segments": f"{head}.{payload}",
        "four-segments": f"{token}.{signature}",
        "five-segments": f"{token}.{signature}.{signature}",
        "empty-header": f".{payload}.{signature}",
        "bom": "\ufeff" + token,
    }
    if flipped:  # 2048-bit RSA: 256 bytes, so the last character has 4 unused bits
        variants["non-canonical"] = f"{head}.{payload}.{signature[:-1]}{flipped}"
    if "-" not in signature and "_" not in signature:
        variants.pop("plus")
    for name, bad in variants.items():
        error = rejected(bad)
        assert error.reason, name


@pytest.mark.parametrize(
    ("raw_header", "match"),
    [
        (b"[]", "not a JSON object"),
        (b'"RS256"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (b'{"alg":"RS256","kid":"rs-1","typ":"at+jwt","x":"\xff"}', "UTF-8"),
        (b'\xef\xbb\xbf{"alg":"RS256","kid":"rs-1","typ":"at+jwt"}', "byte-order mark"),
    ],
)
def test_jwt22_header_is_a_utf8_json_object(raw_header: bytes, match: str) -> None:
    rejected(make_token(RS, claims(), raw_header), match)


@pytest.mark.parametrize(
    ("raw_claims", "match"),
    [
        (b"[]", "not a JSON object"),
        (b'"alice"', "not a JSON object"),
        (b"", "malformed JSON"),
        (b'{"sub":"\xff"}', "UTF-8"),
        (b'\xef\xbb\xbf{"sub":"alice"}', "byte-order mark"),
        (b'{"sub":"\\ud800"}', "lone surrogate"),
    ],
)
def test_jwt22_claims_are_a_utf8_json_object(raw_claims: bytes, match: str) -> None:
    rejected(make_token(RS, raw_claims), match)


# -- JWT-24 nested JWT ---------------------------------------------------------------------------


def test_jwt24_nested_jwt() -> None:
    inner_none = b64(compact_json({"alg": "none"})) + "." + b64(compact_json(claims(sub="admin"))) + "."
    rejected(make_token(RS, inner_none.encode(), header(RS, cty="JWT")), "'cty' is not accepted")
    rejected(make_token(RS, inner_none.encode()), "malformed JSON")  # without cty: not a claims object
    inner_signed = make_token(RS, claims(sub="admin"))
    rejected(make_token(RS, inner_signed.encode(), header(RS, cty="JWT")), "'cty' is not accepted")


# -- JWT-25 JWE where a JWS is expected ----------------------------------------------------------


@pytest.mark.parametrize(
    "alg", ["dir", "RSA1_5", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A256KW", "PBES2-HS256+A128KW"]
)
def test_jwt25_jwe_refused(alg: str) -> None:
    head = b64(compact_json({"alg": alg, "enc": "A256GCM", "kid": "rs-1"}))
    rejected(f"{head}.ZW5jcnlwdGVkLWtleQ.aXYtMTIzNDU2Nzg.Y2lwaGVydGV4dA.dGFnMTIzNDU2Nzg5MDEy", "JWE")


# -- JWT-26 psychic signatures -------------------------------------------------------------------


def test_jwt26_psychic_signatures() -> None:
    token = make_token(ES, claims(sub="admin"))
    head, payload, signature = token.split(".")
    good = b64url_decode(signature)
    n = ALGORITHMS["ES256"].group_order
    specials = [0, 1, n - 1, n]
    bad_signatures = [bytes(64)]
    bad_signatures += [r.to_bytes(32, "big") + s.to_bytes(32, "big") for r in specials for s in specials]
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    bad_signatures.append(
        encode_dss_signature(int.from_bytes(good[:32], "big"), int.from_bytes(good[32:], "big"))
    )
    bad_signatures += [good[:63], good + b"\x00", b"\x00" * 72]
    for bad in bad_signatures:
        rejected(
            f"{head}.{payload}.{b64(bad)}", "signature verification failed", signer=ES, secrets=("admin",)
        )
    assert verify(token, ES).subject == "admin"


# -- JWT-27 RSA malleability and weak keys -------------------------------------------------------


def test_jwt27_rsa_signature_malleability() -> None:
    token = make_token(RS, claims())
    head, payload, signature = token.split(".")
    raw = b64url_decode(signature)
    n = RS.private.public_key().public_numbers().n
    plus_n = int.from_bytes(raw, "big") + n
    for bad in (b"\x00" + raw, raw + b"\x00", plus_n.to_bytes((plus_n.bit_length() + 7) // 8, "big")):
        rejected(f"{head}.{payload}.{b64(bad)}", "signature verification failed")


def test_jwt27_weak_rsa_keys_refused_at_load() -> None:
    small = new_signer("RS256", "small", rsa_bits=1024)
    with pytest.raises(JOSEError, match="shorter than 2048"):
        import_jwks({"keys": [small.public_jwk()]}, allowed_algs=frozenset({"RS256"}))
    jwk = RS.public_jwk()
    with pytest.raises(JOSEError, match="exponent is too small"):
        import_jwks({"keys": [{**jwk, "e": "AQ"}]}, allowed_algs=frozenset({"RS256"}))
    doc = load_if_present(WYCHEPROOF / "json_web_key_test.json")
    if doc is not None:
        (group,) = [g for g in doc["testGroups"] if g["comment"] == "jws_rsa_roca_key"]
        with pytest.raises(JOSEError, match="ROCA"):
            import_jwks(group["public"], allowed_algs=frozenset({"RS256"}))


# -- JWT-28 JWKS hygiene -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        ([{**RS.public_jwk(), "use": "enc"}], "not meant for signatures"),
        ([{**RS.public_jwk(), "key_ops": ["encrypt"]}], "does not allow verify"),
        ([RS.public_jwk(), {**PS.public_jwk(), "kid": "rs-1"}], "duplicate kid"),
        ([RS.public_jwk(), HS.public_jwk()], "mixes symmetric and asymmetric"),
        ([{**RS.public_jwk(), "d": "AQAB"}], "private key material"),
        ([{**ES.public_jwk(), "d": "AQAB"}], "private key material"),
    ],
)
def test_jwt28_jwks_hygiene(keys: list[dict[str, Any]], match: str) -> None:
    with pytest.raises(JOSEError, match=match):
        import_jwks({"keys": keys}, allowed_algs=frozenset({"RS256", "PS256", "ES256", "HS256"}))


def test_jwt28_jwk_alg_differs_from_the_token() -> None:
    keys = import_jwks({"keys": [RS.public_jwk()]}, allowed_algs=frozenset({"RS256", "PS256"}))
    forged = make_token(RS, claims(), header(RS, alg="PS256"), sign_alg="PS256")
    rejected(forged, "does not match the key", keys=keys, pol=policy("RS256", "PS256"))


# -- JWT-29 claim types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"aud": 5}, "'aud' must be a string or an array of strings"),
        ({"aud": {"x": AUDIENCE}}, "'aud' must be"),
        ({"aud": True}, "'aud' must be"),
        ({"aud": [AUDIENCE, 1]}, "'aud' must be"),
        ({"aud": [[AUDIENCE]]}, "'aud' must be"),
        ({"aud": None}, "'aud' must be"),
        ({"sub": {"id": "admin"}}, "'sub' must be a string"),
        ({"sub": 5}, "'sub' must be a string"),
        ({"sub": None}, "'sub' must be a string"),
        ({"iss": None}, "'iss' must be a string"),
        ({"client_id": ...}, "required claim 'client_id' is missing"),
        ({"client_id": 5}, "'client_id' must be a string"),
        ({"jti": 5}, "'jti' must be a string"),
        ({"jti": ...}, "required claim 'jti' is missing"),
        ({"sub": ...}, "required claim 'sub' is missing"),
        ({"scope": ["orders:read"]}, "'scope' must be a space-delimited string"),
        ({"scope": 5}, "'scope' must be"),
        ({"scope": "read  write"}, "not a space-delimited list"),
        ({"scope": " read"}, "not a space-delimited list"),
        ({"scope": "read\nwrite"}, "not a space-delimited list"),
        ({"scope": 'read "write"'}, "not a space-delimited list"),
        ({"scope": "réad"}, "not a space-delimited list"),
        ({"cnf": "thumbprint"}, "'cnf' must be an object"),
        ({"auth_time": "yesterday"}, "'auth_time' must be a JSON number"),
    ],
)
def test_jwt29_claim_types(changes: dict[str, Any], match: str) -> None:
    rejected(make_token(RS, claims(**changes)), match, secrets=("admin",))


# -- JWT-33 claim and log injection --------------------------------------------------------------

INJECTIONS = ["alice\r\nX-Admin: true", "\x1b[31mred\x1b[0m", "<script>alert(1)</script>", "x' OR '1'='1"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_jwt33_injected_claims_are_data(value: str) -> None:
    result = verify(make_token(RS, claims(sub=value, name=value)))
    assert result.subject == value and result.claims["name"] == value
    error = rejected(
        make_token(RS, claims(sub=value), header(RS, kid=value)), "unknown key id", secrets=(value,)
    )
    assert isinstance(error, UnknownKey) and error.kid == value
    rejected(make_token(RS, claims(iss=value)), "issuer does not match", secrets=(value, "script", "\r"))


# -- the policy itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"algorithms": frozenset()},
        {"algorithms": frozenset({"none"})},
        {"algorithms": frozenset({"RS256", "ES256K"})},
        {"algorithms": {"RS256"}},
        {"leeway": -1.0},
        {"leeway": float("nan")},
        {"leeway": float("inf")},
        {"max_lifetime": 0.0},
        {"max_lifetime": float("inf")},
        {"audience": ""},
    ],
)
def test_policy_validation(changes: dict[str, Any]) -> None:
    values: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": frozenset({"RS256"})}
    with pytest.raises(ValueError):
        AccessTokenPolicy(**{**values, **changes})


def test_unknown_key_defaults() -> None:
    error = UnknownKey("no usable keys")
    assert (error.reason, error.issuer, error.kid) == ("no usable keys", None, None)
    assert isinstance(error, InvalidToken)
