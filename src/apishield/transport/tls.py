"""TLS contexts for the listener and the upstream, after the Mozilla server-side TLS guidelines v6.

Profiles (``listen.tls.profile``):

* ``intermediate`` (default): TLS 1.2 and 1.3; for TLS 1.2 only the six
  ECDHE + AEAD suites of the guideline (forward secrecy, no CBC, no RSA key
  exchange, no SHA-1 MACs); TLS 1.3 suites are OpenSSL's, which are the
  guideline's three.
* ``modern``: TLS 1.3 only.

Both refuse TLS 1.0/1.1, SSLv3, compression and renegotiation, and leave
cipher order to the client (``server cipher preference: off``). Key
exchange groups are OpenSSL's defaults (X25519 first).

Certificate rotation (:class:`CertificateReloader`): ``load_cert_chain`` on
the *same* context object; handshakes that start afterwards present the new
certificate, connections already established keep theirs, so nothing is
dropped. A certificate that fails to load leaves the old one in place.

Upstream (:func:`upstream_context`): always verified (hostname and chain),
against the system store or ``proxy.tls.ca_file``, with an optional client
certificate for upstreams that require mTLS.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path

from apishield.config.transport import ListenTLS, UpstreamTLS

__all__ = [
    "INTERMEDIATE_CIPHERS",
    "CertificateReloader",
    "server_context",
    "upstream_context",
]

logger = logging.getLogger("apishield.transport")

INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


def _path(value: str, base_dir: Path) -> str:
    p = Path(value)
    return str(p if p.is_absolute() else base_dir / p)


def server_context(tls: ListenTLS, base_dir: Path = Path(".")) -> ssl.SSLContext:
    """The listener's context for a profile, with the certificate loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if tls.profile == "modern" else ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    if tls.profile == "intermediate":
        ctx.set_ciphers(INTERMEDIATE_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(_path(tls.cert_file, base_dir), _path(tls.key_file, base_dir))
    if tls.client_ca_file is not None:
        ctx.load_verify_locations(_path(tls.client_ca_file, base_dir))
        ctx.verify_mode = ssl.CERT_REQUIRED if tls.client_auth == "required" else ssl.CERT_OPTIONAL
    return ctx


def upstream_context(tls: UpstreamTLS, base_dir: Path = Path(".")) -> ssl.SSLContext:
    """A verifying client context for the upstream (TLS 1.2+)."""
    cafile = _path(tls.ca_file, base_dir) if tls.ca_file else None
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.client_cert is not None:
        key = _path(tls.client_key, base_dir) if tls.client_key else None
        ctx.load_cert_chain(_path(tls.client_cert, base_dir), key)
    return ctx


class CertificateReloader:
    """Reloads the listener's certificate and key into the live context (on SIGHUP)."""

    def __init__(self, context: ssl.SSLContext, tls: ListenTLS, base_dir: Path = Path(".")) -> None:
        self.context = context
        self.cert_file = _path(tls.cert_file, base_dir)
        self.key_file = _path(tls.key_file, base_dir)
        self.reloads = 0
        self._lock = threading.Lock()

    def reload(self) -> bool:
        """Load the files again; on failure keep serving the old certificate. True if reloaded."""
        with self._lock:
            try:
                # validate on a scratch context first: a half-loaded chain must never be served
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert_file, self.key_file)
                self.context.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                logger.error("certificate reload failed, keeping the current one: %s", exc)
                return False
            self.reloads += 1
            logger.info("certificate reloaded from %s", self.cert_file)
            return True
