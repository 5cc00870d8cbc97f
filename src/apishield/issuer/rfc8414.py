"""Authorization server metadata (RFC 8414 §2), checked with Authlib's validator.

Published at ``/.well-known/oauth-authorization-server`` with the issuer's
path, if any, appended (§3.1). ``issuer`` is the exact issuer identifier (the
client compares it, §3.3). Everything RFC 9700 asks an issuer to publish is
listed: ``code_challenge_methods_supported`` (§2.1.1; S256 only),
``authorization_response_iss_parameter_supported`` (RFC 9207 §3, mix-up
defence), the grant types explicitly (the default in §2 would claim
``implicit``), and ``dpop_signing_alg_values_supported`` (RFC 9449 §5.1) when
DPoP is on.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata  # type: ignore[import-untyped, unused-ignore]
from authlib.oauth2.rfc9207 import (  # type: ignore[import-untyped, unused-ignore]
    AuthorizationServerMetadata as IssParameterMetadata,
)

from apishield.issuer.settings import IssuerSettings

__all__ = ["metadata", "validate_metadata"]

SECRET_METHODS = ["client_secret_basic", "client_secret_post"]


def metadata(settings: IssuerSettings) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "issuer": settings.issuer,
        "authorization_endpoint": settings.endpoint("authorize"),
        "token_endpoint": settings.endpoint("token"),
        "jwks_uri": settings.endpoint("jwks.json"),
        "revocation_endpoint": settings.endpoint("revoke"),
        "introspection_endpoint": settings.endpoint("introspect"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [*SECRET_METHODS, "none"],
        "revocation_endpoint_auth_methods_supported": [*SECRET_METHODS, "none"],
        "introspection_endpoint_auth_methods_supported": SECRET_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }
    if settings.scopes:
        doc["scopes_supported"] = list(settings.scopes)
    if settings.dpop.enabled:
        doc["dpop_signing_alg_values_supported"] = list(settings.dpop.algorithms)
    return doc


def validate_metadata(doc: dict[str, Any]) -> None:
    """Raise ``ValueError`` if Authlib's RFC 8414 / RFC 9207 checks refuse the document."""
    AuthorizationServerMetadata(doc).validate(metadata_classes=[IssParameterMetadata])
