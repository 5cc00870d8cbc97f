"""Client certificates from trusted TLS proxies (RFC 9440); certificate-bound tokens (RFC 8705)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from apishield.auth.rfc9440 import thumbprint
from tests.support import DATA, RecordingUpstream, ServerThread, gateway_for, http, write_policy
from tests.tokens import AUDIENCE, ISSUER, claims, ec_key, sign
from tests.transport.pki import CA, Issued

SPIFFE = "spiffe://example.org/partner-portal"


def field(cert: Issued) -> str:
    return ":" + base64.b64encode(cert.der).decode() + ":"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("mtls")
    ca = CA(tmp)
    (tmp / "other").mkdir()
    other_ca = CA(tmp / "other", "Other CA")
    good = ca.issue("portal", uris=[SPIFFE], client=True)
    rogue = other_ca.issue("rogue", uris=[SPIFFE], client=True)
    second = ca.issue("second", uris=["spiffe://example.org/other"], client=True)
    key = ec_key("k1")
    (tmp / "jwks.json").write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    upstream = RecordingUpstream()
    up = ServerThread(upstream).start()
    auth = {
        "jwt": [{"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["ES256"], "jwks_file": "jwks.json"}],
        "client_certificates": {"ca_file": str(ca.root.cert_file)},
    }
    rules = {"operations": {"createThing": {"allow_if": f"'{SPIFFE}' in principal.certificate"}}}
    trusted = write_policy(
        tmp, DATA / "secure31.yaml", up.port, auth=auth, trusted_proxies=["127.0.0.1/32"], authorization=rules
    )
    untrusted_dir = tmp / "untrusted"
    untrusted_dir.mkdir()
    (untrusted_dir / "jwks.json").write_bytes((tmp / "jwks.json").read_bytes())
    untrusted = write_policy(untrusted_dir, DATA / "secure31.yaml", up.port, auth=auth)
    try:
        with gateway_for(trusted) as gw, gateway_for(untrusted) as gw2:
            yield {
                "gw": gw,
                "gw_untrusted": gw2,
                "key": key,
                "good": good,
                "rogue": rogue,
                "second": second,
                "upstream": upstream,
            }
    finally:
        up.stop()


def call(port: int, token: str | None, cert: Issued | None, method: str = "GET", body: Any = None) -> Any:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cert is not None:
        headers["Client-Cert"] = field(cert)
    return http(port, method, "/things", body, headers)


def test_certificate_bound_token_needs_its_certificate(setup: dict[str, Any]) -> None:
    port = setup["gw"].port
    bound = sign(setup["key"], claims(cnf={"x5t#S256": thumbprint(setup["good"].der)}))
    assert call(port, bound, setup["good"]).status == 200
    for cert in (None, setup["second"], setup["rogue"]):
        r = call(port, bound, cert)
        assert r.status == 401, cert
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    # an unbound token needs no certificate
    assert call(port, sign(setup["key"], claims()), None).status == 200


def test_certificate_from_an_untrusted_peer_is_ignored(setup: dict[str, Any]) -> None:
    bound = sign(setup["key"], claims(cnf={"x5t#S256": thumbprint(setup["good"].der)}))
    # no trusted_proxies: the Client-Cert field proves nothing, the bound token is refused
    assert call(setup["gw_untrusted"].port, bound, setup["good"]).status == 401


def test_certificate_identity_in_rules_and_never_forwarded(setup: dict[str, Any]) -> None:
    port = setup["gw"].port
    token = sign(setup["key"], claims(scope="things:read things:write"))
    setup["upstream"].received.clear()
    assert call(port, token, setup["good"], "POST", {"name": "x"}).status == 200
    assert setup["upstream"].received[-1].header("client-cert") is None
    assert call(port, token, setup["second"], "POST", {"name": "x"}).status == 404  # another identity
    assert call(port, token, None, "POST", {"name": "x"}).status == 404


def test_malformed_or_foreign_certificate_refused(setup: dict[str, Any]) -> None:
    port = setup["gw"].port
    token = sign(setup["key"], claims())
    assert call(port, token, setup["rogue"]).status == 401
    r = http(
        port, "GET", "/things", headers={"Authorization": f"Bearer {token}", "Client-Cert": "not-a-field"}
    )
    assert r.status == 401


def test_policy_needs_a_readable_ca(tmp_path: Path) -> None:
    import subprocess
    import sys

    policy = write_policy(
        tmp_path, DATA / "secure31.yaml", 1, auth={"client_certificates": {"ca_file": "none.pem"}}
    )
    result = subprocess.run(
        [sys.executable, "-m", "apishield", "check", "--config", str(policy)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "client_certificates: cannot read the client CA file" in result.stderr
