"""Token introspection endpoint (RFC 7662), on Authlib's :class:`IntrospectionEndpoint`.

§2.1: the caller must authenticate (``client_secret_basic`` or
``client_secret_post``; an unauthenticated call is ``invalid_client``, 401),
which stops token scanning. A client may introspect the tokens issued to it;
a client registered with ``introspect_all`` (a resource server such as a
gateway using introspection) may introspect any token. §2.2: an unknown,
expired, revoked or not-for-this-caller token answers ``{"active": false}``
with nothing else. Access tokens go through the issuer's own JWT
verification (:mod:`apishield.issuer.tokens`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import InvalidRequestError  # type: ignore[import-untyped, unused-ignore]
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # type: ignore[import-untyped, unused-ignore]

from apishield.issuer.models import ClientRecord
from apishield.issuer.tokens import FoundToken, TokenFinder

if TYPE_CHECKING:
    from apishield.issuer.server import IssuerRequest, IssuerServer

__all__ = ["Introspection"]


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
    server: IssuerServer

    def check_params(self, request: IssuerRequest, client: ClientRecord) -> None:
        # §2.1: the hint only speeds up the search, so an unknown hint is ignored
        if "token" not in request.form:
            raise InvalidRequestError("the token parameter is missing")

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return self.server.finder.find(token_string, token_type_hint, self.server.clock())

    def check_permission(self, token: FoundToken, client: ClientRecord, request: IssuerRequest) -> bool:
        return client.introspect_all or token.client_id == client.client_id

    def introspect_token(self, token: FoundToken) -> dict[str, Any]:
        return TokenFinder.introspection(token, self.server.settings.issuer)
