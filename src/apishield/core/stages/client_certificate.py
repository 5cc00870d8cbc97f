"""The client certificate of a request: from the listener's mTLS handshake, or a trusted proxy (RFC 9440).

A certificate the gateway's own listener verified in the handshake
(``listen.tls.client_ca_file``) arrives through the ASGI ``tls`` extension
(:mod:`apishield.transport.protocol`) and is taken as is.

From a trusted proxy, a ``Client-Cert`` field is verified
(:mod:`apishield.auth.rfc9440`) and kept on the exchange for the
authentication stage (certificate-bound tokens, RFC 8705) and for rules
(``principal.certificate``). A field that fails verification refuses the
request (401). From any other peer the field is ignored (and never
forwarded: see :mod:`.forward`).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from apishield.auth import rfc6750
from apishield.auth.rfc9440 import (
    CertificateError,
    ClientCertificate,
    ClientCertificateVerifier,
    describe,
    parse_client_cert,
)
from apishield.core.client_ip import TrustedProxies
from apishield.core.exchange import Exchange
from apishield.core.stage import Stage

__all__ = ["ClientCertificateStage", "client_certificate"]


class _Key:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<client certificate>"


_KEY: Any = _Key()


def client_certificate(ex: Exchange) -> ClientCertificate | None:
    found: ClientCertificate | None = ex.resolved.get(_KEY)
    return found


class ClientCertificateStage(Stage):
    name = "client_certificate"

    def __init__(
        self, verifier: ClientCertificateVerifier | None, trusted: TrustedProxies, header: str, realm: str
    ):
        self.verifier = verifier
        self.trusted = trusted
        self.header = header.lower().encode("latin-1")
        self.realm = realm

    def on_request_head(self, ex: Exchange) -> None:
        direct = ex.request.client_cert
        if direct is not None:  # verified by this listener's mTLS handshake
            try:
                cert = describe(direct)
            except CertificateError as exc:
                self.reject(
                    ex,
                    rfc6750.invalid_token(self.realm, "The client certificate is not accepted."),
                    rule=exc.reason,
                )
                return
            ex.resolved[_KEY] = cert
            ex.decide(self.name, "allow", "mTLS handshake", rule=cert.names[0] if cert.names else None)
            return
        if self.verifier is None:
            return
        values = ex.request.header_values(self.header)
        if not values or not self._from_trusted_proxy(ex):
            return
        try:
            cert = self.verifier.verify(parse_client_cert(values))
        except CertificateError as exc:
            problem = rfc6750.invalid_token(self.realm, "The client certificate is not accepted.")
            self.reject(ex, problem, rule=exc.reason)
            return
        ex.resolved[_KEY] = cert
        ex.decide(
            self.name, "allow", "client certificate verified", rule=cert.names[0] if cert.names else None
        )

    def _from_trusted_proxy(self, ex: Exchange) -> bool:
        peer = ex.request.client[0] if ex.request.client else None
        if peer is None or not self.trusted:
            return False
        try:
            return self.trusted.trusts(ipaddress.ip_address(peer))
        except ValueError:
            return False
