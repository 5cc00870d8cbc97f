"""Client certificates forwarded by a TLS-terminating proxy (RFC 9440), and RFC 8705 binding.

When TLS ends at a load balancer, the client certificate reaches the gateway
in the ``Client-Cert`` field: an RFC 8941 byte sequence (``:base64 DER:``).
The field is believed only from peers in ``trusted_proxies`` (anyone else
could write it); the certificate is then verified against the configured CA
(``cryptography.x509.verification``: chain, validity, client-auth usage), and
its subject alternative names (URI SANs such as SPIFFE IDs, DNS names)
become the caller's certificate identity. Its SHA-256 thumbprint (RFC 8705
§3.1, ``x5t#S256``) is what certificate-bound access tokens must carry.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509 import verification

__all__ = [
    "CertificateError",
    "ClientCertificate",
    "ClientCertificateVerifier",
    "describe",
    "parse_client_cert",
]


class CertificateError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    names: tuple[str, ...]  # URI SANs first, then DNS SANs
    thumbprint: str  # base64url SHA-256 of the DER (RFC 8705 §3.1)


def parse_client_cert(values: list[bytes]) -> bytes:
    """The DER of a ``Client-Cert`` field (exactly one, an RFC 8941 byte sequence)."""
    if len(values) != 1:
        raise CertificateError("exactly one Client-Cert field is expected")
    text = values[0].strip()
    if len(text) < 3 or not (text.startswith(b":") and text.endswith(b":")):
        raise CertificateError("Client-Cert is not a structured-field byte sequence")
    try:
        return base64.b64decode(text[1:-1], validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("Client-Cert is not valid base64") from None


def thumbprint(der: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


class ClientCertificateVerifier:
    def __init__(self, ca_file: Path) -> None:
        try:
            roots = x509.load_pem_x509_certificates(ca_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise CertificateError(f"cannot read the client CA file: {exc}") from None
        self.store = verification.Store(roots)

    def verify(self, der: bytes, now: datetime.datetime | None = None) -> ClientCertificate:
        try:
            leaf = x509.load_der_x509_certificate(der)
        except ValueError:
            raise CertificateError("Client-Cert is not a DER certificate") from None
        moment = now or datetime.datetime.now(datetime.UTC)
        verifier = verification.PolicyBuilder().store(self.store).time(moment).build_client_verifier()
        try:
            verifier.verify(leaf, [])
        except verification.VerificationError:
            raise CertificateError("the client certificate does not chain to the configured CA") from None
        return describe(der, leaf)


def describe(der: bytes, leaf: x509.Certificate | None = None) -> ClientCertificate:
    """Names and thumbprint of a certificate already verified (by the TLS handshake, or above)."""
    if leaf is None:
        try:
            leaf = x509.load_der_x509_certificate(der)
        except ValueError:
            raise CertificateError("not a DER certificate") from None
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    names = tuple(sans.get_values_for_type(x509.UniformResourceIdentifier)) + tuple(
        sans.get_values_for_type(x509.DNSName)
    )
    return ClientCertificate(names, thumbprint(der))
