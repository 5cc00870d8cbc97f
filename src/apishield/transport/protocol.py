"""uvicorn's HTTP/1.1 protocol, plus the ASGI ``tls`` extension (client certificates).

uvicorn does not populate the ASGI TLS extension, so an application cannot
see the certificate a client presented in a mutual-TLS handshake. This
subclass reads the peer certificate once per connection (the handshake has
completed when ``connection_made`` runs, and the listener's context has
verified it against ``listen.tls.client_ca_file``) and puts it in every
request's scope as ``scope["extensions"]["tls"]["client_cert_chain"]`` (PEM),
per the ASGI TLS extension.
"""

from __future__ import annotations

import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["TLSHttpToolsProtocol", "client_cert_der"]


class TLSHttpToolsProtocol(HttpToolsProtocol):
    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        der = ssl_object.getpeercert(binary_form=True)
        self._tls = {
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
        }

    def on_headers_complete(self) -> None:
        if self._tls is not None:
            scope: Any = self.scope
            scope.setdefault("extensions", {})["tls"] = self._tls
        super().on_headers_complete()


def client_cert_der(scope: dict[str, Any]) -> bytes | None:
    """The client certificate of a request, from the ASGI ``tls`` extension (DER)."""
    tls = (scope.get("extensions") or {}).get("tls")
    chain = tls.get("client_cert_chain") if isinstance(tls, dict) else None
    if not chain:
        return None
    return ssl.PEM_cert_to_DER_cert(chain[0])
