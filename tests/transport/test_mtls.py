"""mTLS terminated by the gateway's own listener: real handshakes, the certificate as identity."""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from apishield.auth.rfc9440 import thumbprint
from apishield.config.transport import ListenTLS
from apishield.proxy.gateway import Gateway
from apishield.runtime import load_runtime
from apishield.transport.protocol import TLSHttpToolsProtocol
from apishield.transport.tls import server_context
from tests.support import DATA, RecordingUpstream, ServerThread, write_policy
from tests.tokens import AUDIENCE, ISSUER, claims, ec_key, sign
from tests.transport.pki import CA, Issued

SPIFFE = "spiffe://example.org/partner-portal"


def start(tmp: Path, ca: CA, server: Issued, up_port: int, required: bool) -> tuple[ServerThread, Any]:
    key = ec_key("k1")
    (tmp / "jwks.json").write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    policy = write_policy(
        tmp,
        DATA / "secure31.yaml",
        up_port,
        auth={
            "jwt": [
                {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["ES256"], "jwks_file": "jwks.json"}
            ]
        },
        authorization={"operations": {"createThing": {"allow_if": f"'{SPIFFE}' in principal.certificate"}}},
    )
    tls = ListenTLS(
        cert_file=str(server.cert_file),
        key_file=str(server.key_file),
        client_ca_file=str(ca.root.cert_file),
        client_auth="required" if required else "optional",
    )
    gw = ServerThread(
        Gateway.from_runtime(load_runtime(policy)), ssl_context=server_context(tls), http=TLSHttpToolsProtocol
    ).start()
    return gw, key


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("mtls")
    ca = CA(tmp)
    (tmp / "rogue").mkdir()
    rogue_ca = CA(tmp / "rogue", "Rogue CA")
    server = ca.issue("server", dns=["localhost"], ips=["127.0.0.1"])
    upstream = RecordingUpstream()
    up = ServerThread(upstream).start()
    (tmp / "optional").mkdir()
    (tmp / "required").mkdir()
    optional, key = start(tmp / "optional", ca, server, up.port, required=False)
    required, key2 = start(tmp / "required", ca, server, up.port, required=True)
    try:
        yield {
            "ca": ca,
            "optional": optional,
            "required": required,
            "key": key,
            "key2": key2,
            "upstream": upstream,
            "client": ca.issue("portal", uris=[SPIFFE], client=True),
            "other": ca.issue("other", uris=["spiffe://example.org/other"], client=True),
            "rogue": rogue_ca.issue("rogue", uris=[SPIFFE], client=True),
        }
    finally:
        optional.stop()
        required.stop()
        up.stop()


def request(port: int, ca: CA, cert: Issued | None, token: str, method: str = "GET", body: Any = None) -> int:
    ctx = ssl.create_default_context(cafile=str(ca.root.cert_file))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert_file), str(cert.key_file))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        conn.request(method, "/things", body=data, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_certificate_identity_from_the_handshake(env: dict[str, Any]) -> None:
    port, ca = env["optional"].port, env["ca"]
    token = sign(env["key"], claims(scope="things:read things:write"))
    assert request(port, ca, env["client"], token, "POST", {"name": "x"}) == 200
    assert request(port, ca, env["other"], token, "POST", {"name": "x"}) == 404  # another identity
    assert request(port, ca, None, token, "POST", {"name": "x"}) == 404  # no certificate at all


def test_certificate_bound_token_over_mtls(env: dict[str, Any]) -> None:
    port, ca = env["optional"].port, env["ca"]
    bound = sign(env["key"], claims(cnf={"x5t#S256": thumbprint(env["client"].der)}))
    assert request(port, ca, env["client"], bound) == 200
    assert request(port, ca, env["other"], bound) == 401
    assert request(port, ca, None, bound) == 401


def test_foreign_or_missing_certificate_refused_in_the_handshake(env: dict[str, Any]) -> None:
    token = sign(env["key2"], claims())
    port, ca = env["required"].port, env["ca"]
    assert request(port, ca, env["client"], token) == 200
    for cert in (None, env["rogue"]):
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, OSError)):
            request(port, ca, cert, token)
    # optional mode: a certificate from another CA fails the handshake too
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, OSError)):
        request(env["optional"].port, ca, env["rogue"], token)
