"""TLS termination with real handshakes: protocol and cipher refusals, profiles, reload under load."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from apishield.config.model import Listen
from apishield.config.transport import ListenTLS, UpstreamTLS
from apishield.proxy.server import install_reload_signal, plaintext_refusal
from apishield.transport.tls import CertificateReloader, server_context, upstream_context
from tests.support import DATA, RecordingUpstream, ServerThread, gateway_for, write_policy
from tests.transport.pki import CA, Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CA, Issued]:
    tmp = tmp_path_factory.mktemp("pki")
    ca = CA(tmp)
    return ca, ca.issue("server", dns=["localhost"], ips=["127.0.0.1"])


def tls_server(
    server: Issued, profile: str = "intermediate"
) -> tuple[ServerThread, ssl.SSLContext, ListenTLS]:
    tls = ListenTLS(cert_file=str(server.cert_file), key_file=str(server.key_file), profile=profile)  # type: ignore[arg-type]
    ctx = server_context(tls)
    return ServerThread(RecordingUpstream(), ssl_context=ctx).start(), ctx, tls


@pytest.fixture(scope="module")
def intermediate(pki: tuple[CA, Issued]) -> Iterator[ServerThread]:
    server, _, _ = tls_server(pki[1])
    yield server
    server.stop()


def client(ca: CA, *, version: ssl.TLSVersion | None = None, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.root.cert_file))
    if version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the point is to offer the old versions
            ctx.minimum_version = ctx.maximum_version = version
    if ciphers is not None or version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        ctx.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")  # let the client offer what it should not
    return ctx


def server_refused(exc: ssl.SSLError) -> bool:
    """The server ended the handshake (alert or close), as opposed to the client refusing to offer."""
    text = str(exc).upper()
    assert "NO_PROTOCOLS_AVAILABLE" not in text and "NO_CIPHERS_AVAILABLE" not in text, text
    return isinstance(exc, ssl.SSLEOFError) or "ALERT" in text or "HANDSHAKE_FAILURE" in text


def handshake(port: int, ctx: ssl.SSLContext) -> tuple[str | None, tuple[str, str, int] | None, bytes]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cert = tls.getpeercert(binary_form=True) or b""
        return tls.version(), tls.cipher(), cert


def test_tls12_and_tls13_accepted(pki: tuple[CA, Issued], intermediate: ServerThread) -> None:
    ca, _ = pki
    assert handshake(intermediate.port, client(ca, version=ssl.TLSVersion.TLSv1_3))[0] == "TLSv1.3"
    version, cipher, _ = handshake(intermediate.port, client(ca, version=ssl.TLSVersion.TLSv1_2))
    assert version == "TLSv1.2" and cipher is not None and cipher[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_protocols_refused(
    pki: tuple[CA, Issued], intermediate: ServerThread, version: ssl.TLSVersion
) -> None:
    with pytest.raises(ssl.SSLError) as err:
        handshake(intermediate.port, client(pki[0], version=version))
    assert server_refused(err.value)


@pytest.mark.parametrize(
    "cipher",
    ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256", "AES128-GCM-SHA256"],
)
def test_weak_tls12_ciphers_refused(pki: tuple[CA, Issued], intermediate: ServerThread, cipher: str) -> None:
    """CBC, SHA-1 MACs and static RSA key exchange are outside the intermediate profile."""
    with pytest.raises(ssl.SSLError) as err:
        handshake(intermediate.port, client(pki[0], version=ssl.TLSVersion.TLSv1_2, ciphers=cipher))
    assert server_refused(err.value)


def test_modern_profile_is_tls13_only(pki: tuple[CA, Issued]) -> None:
    server, _, _ = tls_server(pki[1], "modern")
    try:
        assert handshake(server.port, client(pki[0]))[0] == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            handshake(server.port, client(pki[0], version=ssl.TLSVersion.TLSv1_2))
    finally:
        server.stop()


def test_gateway_over_tls_sends_hsts(tmp_path: Path, pki: tuple[CA, Issued]) -> None:
    ca, cert = pki
    upstream = ServerThread(RecordingUpstream()).start()
    tls = ListenTLS(cert_file=str(cert.cert_file), key_file=str(cert.key_file))
    try:
        from apishield.proxy.gateway import Gateway
        from apishield.runtime import load_runtime

        runtime = load_runtime(write_policy(tmp_path, DATA / "secure31.yaml", upstream.port))
        gw = ServerThread(Gateway.from_runtime(runtime), ssl_context=server_context(tls)).start()
        try:
            for path, status in (("/public", 200), ("/nowhere", 404)):
                conn = http.client.HTTPSConnection("127.0.0.1", gw.port, context=client(ca), timeout=5)
                conn.request("GET", path)
                r = conn.getresponse()
                assert r.status == status
                assert r.getheader("strict-transport-security") == "max-age=63072000; includeSubDomains"
                conn.close()
        finally:
            gw.stop()
        with gateway_for(tmp_path / "apishield.yaml") as plain:  # T-HSTS-1: never over plain HTTP
            from tests.support import http as plain_http

            assert "strict-transport-security" not in plain_http(plain.port, "GET", "/public").headers
    finally:
        upstream.stop()


def test_reload_under_load_loses_no_request(tmp_path: Path, pki: tuple[CA, Issued]) -> None:
    ca, first = pki
    live = tmp_path / "live"
    live.mkdir()
    (live / "server.crt").write_bytes(first.cert_file.read_bytes())
    (live / "server.key").write_bytes(first.key_file.read_bytes())
    tls = ListenTLS(cert_file=str(live / "server.crt"), key_file=str(live / "server.key"))
    ctx = server_context(tls)
    reloader = CertificateReloader(ctx, tls)
    server = ServerThread(RecordingUpstream(), ssl_context=ctx).start()
    second = ca.issue("server2", dns=["localhost"], ips=["127.0.0.1"])
    errors: list[BaseException] = []
    done = threading.Event()
    counts = {"fresh": 0, "kept": 0}

    def fresh_connections() -> None:
        while not done.is_set():
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=client(ca), timeout=5)
                conn.request("GET", "/x")
                assert conn.getresponse().read() == b'{"ok": true}'
                conn.close()
                counts["fresh"] += 1
            except BaseException as exc:  # any failure is the finding
                errors.append(exc)
                return

    keep = http.client.HTTPSConnection("127.0.0.1", server.port, context=client(ca), timeout=5)
    keep.request("GET", "/x")
    keep.getresponse().read()
    assert keep.sock is not None
    before = keep.sock.getpeercert(binary_form=True)

    def kept_alive() -> None:
        while not done.is_set():
            try:
                keep.request("GET", "/x")
                keep.getresponse().read()
                counts["kept"] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    workers = [threading.Thread(target=fresh_connections) for _ in range(3)] + [
        threading.Thread(target=kept_alive)
    ]
    for w in workers:
        w.start()
    try:
        from tests.support import eventually

        eventually(lambda: counts["fresh"] >= 20 and counts["kept"] >= 20, "requests before the reload")
        (live / "server.crt").write_bytes(second.cert_file.read_bytes())
        (live / "server.key").write_bytes(second.key_file.read_bytes())
        # `apishield serve` runs the event loop on the main thread, where SIGHUP is handled, so a
        # reload never runs during a handshake; here the server has its own thread, so the
        # handler hands the reload to that thread's loop, as it would run in production
        assert server.loop is not None
        loop = server.loop

        class OnServerLoop:
            def reload(self) -> None:
                loop.call_soon_threadsafe(reloader.reload)

        restore = install_reload_signal(OnServerLoop())
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            eventually(lambda: reloader.reloads == 1, "reload on SIGHUP")
        finally:
            restore()
        mark = dict(counts)
        eventually(
            lambda: counts["fresh"] >= mark["fresh"] + 20 and counts["kept"] >= mark["kept"] + 20, "after"
        )
    finally:
        done.set()
        for w in workers:
            w.join(timeout=10)
    try:
        assert not errors, errors
        assert before == first.der
        assert (
            keep.sock is not None and keep.sock.getpeercert(binary_form=True) == first.der
        )  # live: old cert
        assert handshake(server.port, client(ca))[2] == second.der  # new handshakes: new cert
    finally:
        keep.close()
        server.stop()


def test_failed_reload_keeps_serving(tmp_path: Path, pki: tuple[CA, Issued]) -> None:
    ca, cert = pki
    (tmp_path / "s.crt").write_bytes(cert.cert_file.read_bytes())
    (tmp_path / "s.key").write_bytes(cert.key_file.read_bytes())
    tls = ListenTLS(cert_file=str(tmp_path / "s.crt"), key_file=str(tmp_path / "s.key"))
    ctx = server_context(tls)
    (tmp_path / "s.key").write_bytes(b"not a key")
    assert CertificateReloader(ctx, tls).reload() is False
    server = ServerThread(RecordingUpstream(), ssl_context=ctx).start()
    try:
        assert handshake(server.port, client(ca))[2] == cert.der
    finally:
        server.stop()


def test_plaintext_rule() -> None:
    assert plaintext_refusal(Listen(), "127.0.0.1") is None
    assert plaintext_refusal(Listen(), "::1") is None
    assert plaintext_refusal(Listen(), "0.0.0.0") is not None
    assert plaintext_refusal(Listen(plaintext=True), "0.0.0.0") is None
    tls = ListenTLS(cert_file="c", key_file="k")
    assert plaintext_refusal(Listen(tls=tls), "0.0.0.0") is None


def test_upstream_tls_verified(tmp_path: Path, pki: tuple[CA, Issued]) -> None:
    """The gateway reaches an https upstream signed by a private CA, and refuses one it cannot verify."""
    ca, cert = pki
    upstream = RecordingUpstream()
    tls = ListenTLS(cert_file=str(cert.cert_file), key_file=str(cert.key_file))
    up = ServerThread(upstream, ssl_context=server_context(tls)).start()
    try:
        import yaml

        from tests.support import http as plain_http

        for proxy, expected in (({"tls": {"ca_file": str(ca.root.cert_file)}}, 200), ({}, 502)):
            policy = write_policy(tmp_path, DATA / "secure31.yaml", up.port, proxy=proxy)
            doc = yaml.safe_load(policy.read_text())
            doc["upstream"] = f"https://127.0.0.1:{up.port}"
            policy.write_text(yaml.safe_dump(doc))
            with gateway_for(policy) as gw:
                assert plain_http(gw.port, "GET", "/public").status == expected
    finally:
        up.stop()
    assert upstream_context(UpstreamTLS()).verify_mode == ssl.CERT_REQUIRED
