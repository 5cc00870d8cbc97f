"""The embedded OAuth 2.0 authorization server ("issuer").

Built on Authlib's ``AuthorizationServer`` (RFC 6749 grants, client
authentication, RFC 7636, RFC 7009, RFC 7662, RFC 8414 checks), served as a
raw ASGI application, with access tokens in the RFC 9068 JWT profile signed
directly with ``cryptography``. See ``docs/issuer.md``.
"""

from __future__ import annotations

from apishield.issuer.asgi import IssuerApp, create_issuer_app, serve
from apishield.issuer.demo import DemoIssuer, bootstrap_demo
from apishield.issuer.settings import IssuerSettings, load_issuer_settings

__all__ = [
    "DemoIssuer",
    "IssuerApp",
    "IssuerSettings",
    "bootstrap_demo",
    "create_issuer_app",
    "load_issuer_settings",
    "serve",
]
