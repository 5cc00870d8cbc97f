"""Token revocation endpoint (RFC 7009), on Authlib's :class:`RevocationEndpoint`.

§2.1: the client authenticates (confidential clients with their secret,
public clients with their ``client_id``), the token must have been issued to
that client (else the request is refused), and an unknown or invalid token
still gets 200 (§2.2). Revoking a refresh token revokes its whole grant, the
access tokens issued from it included ("SHOULD", §2.1); revoking an access
token revokes that token. Every revoked access token's ``jti`` is written to
the revocation store the gateways poll, so they refuse it within a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error  # type: ignore[import-untyped, unused-ignore]
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped, unused-ignore]

from apishield.issuer.models import ClientRecord
from apishield.issuer.tokens import FoundToken

if TYPE_CHECKING:
    from apishield.issuer.server import IssuerRequest, IssuerServer

__all__ = ["Revocation"]


class UnsupportedTokenType(OAuth2Error):  # type: ignore[misc]
    """§2.2.1; a 400 like the other errors of RFC 6749 §5.2 (Authlib's own class answers 401)."""

    error = "unsupported_token_type"
    status_code = 400


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
    server: IssuerServer

    def check_params(self, request: IssuerRequest, client: ClientRecord) -> None:
        if "token" not in request.form:
            raise InvalidRequestError("the token parameter is missing")
        hint = request.form.get("token_type_hint")
        if hint is not None and hint not in self.SUPPORTED_TOKEN_TYPES:
            raise UnsupportedTokenType("token_type_hint is access_token or refresh_token")

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return self.server.finder.find(token_string, token_type_hint, self.server.clock())

    def revoke_token(self, token: FoundToken, request: IssuerRequest) -> None:
        now = self.server.clock()
        if token.kind == "refresh_token" and token.family_id is not None:
            self.server.revoke_family(request, token.family_id, "refresh token revoked (RFC 7009)")
        elif token.jti is not None:
            self.server.store.revoke_access_token(token.jti, now)
            request.revoked.append((token.jti, token.expires_at))
