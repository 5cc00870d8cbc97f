"""DPoP-bound access tokens at the gateway (RFC 9449 §4.3, §7, §11.1), over HTTP.

Every check of §4.3 is exercised one by one through the running gateway: keys
are generated here, proofs are signed by hand so each byte can be wrong on
purpose, and the gateway verifies tokens against a real JWKS endpoint.
"""

from __future__ import annotations

import hashlib
import http.client as httpclient
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from joserfc import jwk as jose_jwk
from joserfc.jws import JWSRegistry

from tests.services import require_redis
from tests.support import (
    DATA,
    RecordingUpstream,
    Response,
    ServerThread,
    Stack,
    gateway_for,
    http,
    write_policy,
)
from tests.tokens import AUDIENCE, ISSUER, JWKSServer, b64, claims, ec_key, sign


def public_jwk(key: Any) -> dict[str, Any]:
    full = key.as_dict(private=False)
    return {k: full[k] for k in ("kty", "crv", "x", "y", "n", "e") if k in full}


def thumbprint(key: Any) -> str:
    """RFC 7638: SHA-256 of the required members, lexicographic, no whitespace."""
    jwk = public_jwk(key)
    required = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = orjson.dumps({k: jwk[k] for k in required}, option=orjson.OPT_SORT_KEYS)
    return b64(hashlib.sha256(canonical).digest())


def ath(token: str) -> str:
    return b64(hashlib.sha256(token.encode("ascii")).digest())


def make_proof(
    key: Any,
    method: str,
    url: str,
    token: str | None,
    *,
    header: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
    alg: str = "ES256",
    signer: Any = None,
) -> str:
    hdr = {"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(key), **(header or {})}
    body: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
    if token is not None:
        body["ath"] = ath(token)
    body.update(payload or {})
    body = {k: v for k, v in body.items() if v is not None}
    signing_input = f"{b64(orjson.dumps(hdr))}.{b64(orjson.dumps(body))}".encode()
    sig = JWSRegistry.algorithms[alg].sign(signing_input, signer or key)
    return f"{signing_input.decode()}.{b64(sig)}"


class DPoPStack(Stack):
    key: Any  # the issuer's signing key
    client: Any  # the client's DPoP key

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.port}/things"

    def bound_token(self, jkt: str | None = None) -> str:
        return sign(self.key, claims(cnf={"jkt": jkt or thumbprint(self.client)}))

    def dpop(self, token: str, proof: str | None, method: str = "GET", target: str = "/things") -> Response:
        headers = {"Authorization": f"DPoP {token}"}
        if proof is not None:
            headers["DPoP"] = proof
        return http(self.gateway.port, method, target, headers=headers)


def _policy(tmp: Any, jwks_port: int, up_port: int, **dpop: Any) -> Any:
    return write_policy(
        tmp,
        DATA / "secure31.yaml",
        up_port,
        auth={
            "jwt": [
                {
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                    "jwks_uri": f"http://127.0.0.1:{jwks_port}/jwks",
                    "algorithms": ["ES256"],
                }
            ],
            "dpop": {"iat_window": "60s", "clock_skew": "5s", **dpop},
        },
    )


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Any, JWKSServer, ServerThread, RecordingUpstream, ServerThread]]:
    key = ec_key("k1")
    jwks = JWKSServer(key)
    jwks_server = ServerThread(jwks).start()
    upstream = RecordingUpstream()
    up = ServerThread(upstream).start()
    try:
        yield key, jwks, jwks_server, upstream, up
    finally:
        up.stop()
        jwks_server.stop()


@pytest.fixture(scope="module")
def stack_(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DPoPStack]:
    key, _jwks, jwks_server, upstream, up = servers
    tmp = tmp_path_factory.mktemp("dpop")
    with gateway_for(_policy(tmp, jwks_server.port, up.port)) as gw:
        s = DPoPStack(upstream, up, gw, tmp)
        s.key, s.client = key, ec_key("client")
        yield s


@pytest.fixture()
def st(stack_: DPoPStack) -> DPoPStack:
    stack_.upstream.received.clear()
    return stack_


def assert_refused(r: Response, error: str = "invalid_dpop_proof", why: str = "") -> None:
    assert r.status == 401, r.body
    assert why in r.json()["detail"], r.json()["detail"]
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("DPoP "), challenge
    assert f'error="{error}"' in challenge
    assert 'algs="ES256 RS256 PS256 EdDSA"' in challenge
    assert r.headers["content-type"] == "application/problem+json"


# -- accepted ----------------------------------------------------------------------------------------
def test_valid_proof_is_accepted(st: DPoPStack) -> None:
    token = st.bound_token()
    r = st.dpop(token, make_proof(st.client, "GET", st.url, token))
    assert r.status == 200, r.body
    assert st.upstream.received[0].header("x-apishield-subject") == "alice"
    assert st.upstream.received[0].header("dpop") is None  # the proof is the gateway's business


def test_proof_checked_on_every_request_even_with_a_cached_token(st: DPoPStack) -> None:
    token = st.bound_token()
    assert st.dpop(token, make_proof(st.client, "GET", st.url, token)).status == 200
    # the token is now in the verified-token cache; a bad proof must still be refused
    assert_refused(st.dpop(token, make_proof(st.client, "POST", st.url, token)))
    assert_refused(st.dpop(token, None))


def test_htu_is_normalised(st: DPoPStack) -> None:
    token = st.bound_token()
    url = f"HTTP://127.0.0.1:{st.gateway.port}/things?page=2#frag"  # query and fragment are ignored
    assert st.dpop(token, make_proof(st.client, "GET", url, token)).status == 200


# -- §4.3 checks, one by one -------------------------------------------------------------------------
def test_missing_proof(st: DPoPStack) -> None:
    assert_refused(st.dpop(st.bound_token(), None), why="exactly one DPoP proof")
    assert st.upstream.received == []


def test_two_dpop_headers(st: DPoPStack) -> None:
    token = st.bound_token()
    conn = httpclient.HTTPConnection("127.0.0.1", st.gateway.port, timeout=10)
    try:
        conn.putrequest("GET", "/things")
        conn.putheader("Authorization", f"DPoP {token}")
        conn.putheader("DPoP", make_proof(st.client, "GET", st.url, token))
        conn.putheader("DPoP", make_proof(st.client, "GET", st.url, token))
        conn.endheaders()
        resp = conn.getresponse()
        raw = [(k.lower(), v) for k, v in resp.getheaders()]
        assert_refused(Response(resp.status, dict(raw), raw, resp.read()), why="exactly one DPoP proof")
    finally:
        conn.close()


def test_not_a_jws(st: DPoPStack) -> None:
    assert_refused(st.dpop(st.bound_token(), "not.a-proof"), why="malformed")


def test_wrong_typ(st: DPoPStack) -> None:
    token = st.bound_token()
    for typ in ("JWT", "at+jwt", "application/jwt"):
        proof = make_proof(st.client, "GET", st.url, token, header={"typ": typ})
        assert_refused(st.dpop(token, proof), why="typ dpop+jwt")
    hdr = {"alg": "ES256", "jwk": public_jwk(st.client)}  # no typ at all
    body = {"jti": uuid.uuid4().hex, "htm": "GET", "htu": st.url, "iat": int(time.time()), "ath": ath(token)}
    signing_input = f"{b64(orjson.dumps(hdr))}.{b64(orjson.dumps(body))}".encode()
    sig = JWSRegistry.algorithms["ES256"].sign(signing_input, st.client)
    assert_refused(st.dpop(token, f"{signing_input.decode()}.{b64(sig)}"), why="typ dpop+jwt")


def test_alg_none_refused(st: DPoPStack) -> None:
    token = st.bound_token()
    hdr = {"typ": "dpop+jwt", "alg": "none", "jwk": public_jwk(st.client)}
    body = {"jti": uuid.uuid4().hex, "htm": "GET", "htu": st.url, "iat": int(time.time()), "ath": ath(token)}
    assert_refused(st.dpop(token, f"{b64(orjson.dumps(hdr))}.{b64(orjson.dumps(body))}."))


def test_hs256_refused(st: DPoPStack) -> None:
    token = st.bound_token()
    secret = jose_jwk.OctKey.generate_key(256)
    oct_jwk = {"kty": "oct", "k": secret.as_dict()["k"]}
    proof = make_proof(st.client, "GET", st.url, token, alg="HS256", header={"jwk": oct_jwk}, signer=secret)
    assert_refused(st.dpop(token, proof), why="algorithm is not accepted")


def test_private_key_in_jwk_refused(st: DPoPStack) -> None:
    token = st.bound_token()
    private = st.client.as_dict(private=True)
    jwk = {k: private[k] for k in ("kty", "crv", "x", "y", "d")}
    assert_refused(
        st.dpop(token, make_proof(st.client, "GET", st.url, token, header={"jwk": jwk})),
        why="not an acceptable public key",
    )


def test_bad_signature_refused(st: DPoPStack) -> None:
    token = st.bound_token()
    other = ec_key("other")  # signs, while the header names the client's key
    assert_refused(
        st.dpop(token, make_proof(st.client, "GET", st.url, token, signer=other)), why="signature is invalid"
    )
    good = make_proof(st.client, "GET", st.url, token)
    assert_refused(
        st.dpop(token, good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB")),
        why="signature is invalid",
    )


def test_htm_mismatch(st: DPoPStack) -> None:
    token = st.bound_token()
    assert_refused(st.dpop(token, make_proof(st.client, "POST", st.url, token)), why="htm does not match")
    assert_refused(st.dpop(token, make_proof(st.client, "get", st.url, token)), why="htm does not match")


def test_htu_mismatch(st: DPoPStack) -> None:
    token = st.bound_token()
    port = st.gateway.port
    for url in (
        f"http://127.0.0.1:{port}/other",
        f"https://127.0.0.1:{port}/things",
        f"http://evil.test:{port}/things",
        f"http://127.0.0.1:{port + 1}/things",
    ):
        assert_refused(st.dpop(token, make_proof(st.client, "GET", url, token)), why="htu does not match")


def test_missing_claims(st: DPoPStack) -> None:
    token = st.bound_token()
    for name, why in (("jti", "jti"), ("htm", "htm"), ("htu", "htu"), ("iat", "no iat"), ("ath", "ath")):
        proof = make_proof(st.client, "GET", st.url, token, payload={name: None})
        assert_refused(st.dpop(token, proof), why=why)


def test_short_jti_refused(st: DPoPStack) -> None:
    token = st.bound_token()
    assert_refused(
        st.dpop(token, make_proof(st.client, "GET", st.url, token, payload={"jti": "abc"})),
        why="jti of 16 to 256",
    )


def test_iat_too_old_or_in_the_future(st: DPoPStack) -> None:
    token = st.bound_token()
    now = int(time.time())
    for iat in (now - 600, now + 600):
        assert_refused(
            st.dpop(token, make_proof(st.client, "GET", st.url, token, payload={"iat": iat})),
            why="iat is outside",
        )


def test_wrong_ath(st: DPoPStack) -> None:
    token = st.bound_token()
    other = st.bound_token()
    assert_refused(st.dpop(token, make_proof(st.client, "GET", st.url, other)), why="ath does not match")


def test_replayed_jti_refused(st: DPoPStack) -> None:
    token = st.bound_token()
    proof = make_proof(st.client, "GET", st.url, token)
    assert st.dpop(token, proof).status == 200
    r = st.dpop(token, proof)
    assert_refused(r)
    assert "already used" in r.json()["detail"]
    assert len(st.upstream.received) == 1


def test_cnf_jkt_mismatch(st: DPoPStack) -> None:
    token = st.bound_token(jkt=thumbprint(ec_key("someone-else")))
    assert_refused(
        st.dpop(token, make_proof(st.client, "GET", st.url, token)), why="key does not match the access token"
    )


# -- scheme and binding ------------------------------------------------------------------------------
def test_bound_token_as_bearer_is_refused(st: DPoPStack) -> None:
    token = st.bound_token()
    r = http(st.gateway.port, "GET", "/things", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 401
    challenges = [v for k, v in r.raw_headers if k == "www-authenticate"]
    assert any('error="invalid_token"' in c and c.startswith("Bearer ") for c in challenges)
    assert any(c.startswith("DPoP ") for c in challenges)
    # with a valid proof alongside, still refused: the scheme is what binds
    headers = {"Authorization": f"Bearer {token}", "DPoP": make_proof(st.client, "GET", st.url, token)}
    assert http(st.gateway.port, "GET", "/things", headers=headers).status == 401
    assert st.upstream.received == []


def test_unbound_token_under_dpop_is_refused(st: DPoPStack) -> None:
    token = sign(st.key, claims())
    proof = make_proof(st.client, "GET", st.url, token)
    assert_refused(st.dpop(token, proof), "invalid_token", why="not bound to a DPoP key")


def test_invalid_token_under_dpop_is_challenged_with_dpop(st: DPoPStack) -> None:
    token = sign(ec_key("k1"), claims(cnf={"jkt": thumbprint(st.client)}))  # not the issuer's key
    assert_refused(st.dpop(token, make_proof(st.client, "GET", st.url, token)), "invalid_token")


def test_token_in_query_is_refused_before_any_scheme(st: DPoPStack) -> None:
    r = http(st.gateway.port, "GET", "/things?access_token=abc")
    assert r.status == 400
    assert 'error="invalid_request"' in r.headers["www-authenticate"]


def test_unbound_bearer_token_still_works(st: DPoPStack) -> None:
    r = http(st.gateway.port, "GET", "/things", headers={"Authorization": f"Bearer {sign(st.key, claims())}"})
    assert r.status == 200


# -- replay across instances (shared Redis) ----------------------------------------------------------
def test_replay_refused_across_two_gateways_sharing_redis(
    servers: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    redis_url = require_redis()
    key, _jwks, jwks_server, _upstream, up = servers
    client = ec_key("client-redis")
    token = sign(key, claims(cnf={"jkt": thumbprint(client)}))
    tmp_a, tmp_b = tmp_path_factory.mktemp("dpop-a"), tmp_path_factory.mktemp("dpop-b")
    # htu names the URI the client addressed: both instances serve one public origin (auth.dpop.public_url)
    public = "https://api.example.test"
    with (
        gateway_for(
            _policy(tmp_a, jwks_server.port, up.port, replay_store=redis_url, public_url=public)
        ) as a,
        gateway_for(
            _policy(tmp_b, jwks_server.port, up.port, replay_store=redis_url, public_url=public)
        ) as b,
    ):
        proof = make_proof(client, "GET", public + "/things", token)
        headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
        assert http(a.port, "GET", "/things", headers=headers).status == 200
        replayed = http(b.port, "GET", "/things", headers=headers)
        assert replayed.status == 401
        assert 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]
        assert http(a.port, "GET", "/things", headers=headers).status == 401
        fresh = make_proof(client, "GET", public + "/things", token)
        assert (
            http(b.port, "GET", "/things", headers={"Authorization": f"DPoP {token}", "DPoP": fresh}).status
            == 200
        )
