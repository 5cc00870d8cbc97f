"""The three grants, as Authlib grant classes over the issuer's store (RFC 6749 §4.1, §4.4, §6).

Authlib parses and validates the requests and shapes the responses; these
subclasses supply storage and apishield's stricter rules:

* ``client_credentials`` (§4.4): confidential clients only, scope limited to
  the client's allowance (a scope beyond it is ``invalid_scope``, not silently
  narrowed); no refresh token (§4.4.3).
* ``authorization_code`` (§4.1) with :class:`~apishield.issuer.rfc7636.S256CodeChallenge`.
  A code is single use (§4.1.2): redeeming it is an atomic update, and a
  second redemption is refused *and revokes every token issued from the
  code* (§4.1.2 "SHOULD revoke", RFC 9700 §4.2.4).
* ``refresh_token`` (§6) with rotation and reuse detection (RFC 9700
  §4.14.2): every refresh returns a new refresh token of the same *family*
  and invalidates the presented one; presenting an invalidated one revokes
  the whole family, access tokens included, which forces a new sign-in. A
  public client's DPoP-bound refresh token needs a proof with the same key
  (RFC 9449 §5).

Tokens are minted by :meth:`apishield.issuer.server.IssuerServer.issue`.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import grants  # type: ignore[import-untyped, unused-ignore]
from authlib.oauth2.rfc6749.errors import (  # type: ignore[import-untyped, unused-ignore]
    InvalidGrantError,
    InvalidScopeError,
)

from apishield.issuer.models import CodeRecord, RefreshTokenRecord, UserRecord, hash_token
from apishield.issuer.rfc9449 import DPoPError

if TYPE_CHECKING:
    from apishield.issuer.server import IssuerRequest, IssuerServer

__all__ = ["AuthorizationCodeGrant", "ClientCredentialsGrant", "RefreshTokenGrant"]

log = logging.getLogger("apishield.issuer")

SECRET_METHODS = ("client_secret_basic", "client_secret_post")


class _Issuing:
    """Routes Authlib's ``generate_token`` to the issuer, with the request at hand."""

    server: IssuerServer
    request: IssuerRequest
    GRANT_TYPE: str

    def generate_token(
        self,
        user: UserRecord | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        return self.server.issue(
            self.request, grant_type or self.GRANT_TYPE, user, scope or "", include_refresh_token
        )


class ClientCredentialsGrant(_Issuing, grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS

    def validate_token_request(self) -> None:
        super().validate_token_request()
        scope = self.request.client.get_allowed_scope(self.request.payload.scope)
        if scope is None:
            raise InvalidScopeError("the client may not request that scope")
        self.request.scope = scope

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class AuthorizationCodeGrant(_Issuing, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = (*SECRET_METHODS, "none")

    def save_authorization_code(self, code: str, request: IssuerRequest) -> None:
        now = self.server.clock()
        data = request.payload.data
        self.server.store.save_code(
            CodeRecord(
                code_hash=hash_token(code),
                client_id=request.client.client_id,
                username=request.user.username,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                family_id=secrets.token_urlsafe(16),
                auth_time=request.auth_time or now,
                expires_at=now + self.server.settings.code_lifetime,
            )
        )

    def query_authorization_code(self, code: str, client: Any) -> CodeRecord | None:
        record = self.server.store.get_code(hash_token(code))
        if record is None:
            return None
        now = self.server.clock()
        if record.used_at is not None:
            log.warning("authorization code reused: revoking its tokens (client %s)", record.client_id)
            self.server.revoke_family(self.request, record.family_id, "authorization code reused")
            return None
        if record.client_id != client.client_id or record.expires_at <= now:
            return None
        return record

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        return None  # kept (marked used) until it expires, to detect reuse

    def authenticate_user(self, authorization_code: CodeRecord) -> UserRecord | None:
        user = self.server.store.get_user(authorization_code.username)
        return user if user is not None and user.disabled_at is None else None

    def create_token_response(self) -> Any:
        code: CodeRecord = self.request.authorization_code
        if not self.server.store.consume_code(code.code_hash, self.server.clock()):
            # lost a race with another redemption of the same code, or it just expired
            self.server.revoke_family(self.request, code.family_id, "authorization code reused")
            raise InvalidGrantError("the authorization code was already used or has expired")
        self.request.family_id = code.family_id
        self.request.auth_time = code.auth_time
        return super().create_token_response()


class RefreshTokenGrant(_Issuing, grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = (*SECRET_METHODS, "none")
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshTokenRecord | None:
        record = self.server.store.get_refresh_token(hash_token(refresh_token))
        if record is None:
            return None
        if record.used_at is not None:
            log.warning(
                "refresh token reused: revoking its family (client %s, user %s)",
                record.client_id,
                record.username,
            )
            self.server.revoke_family(self.request, record.family_id, "refresh token reused")
            return None
        client = self.request.client
        if record.revoked_at is not None or record.expires_at <= self.server.clock():
            return None
        if not record.check_client(client):
            return None
        user = self.server.store.get_user(record.username)
        if user is None or user.disabled_at is not None:
            return None
        if record.jkt is not None and self.request.dpop_jkt != record.jkt:
            raise DPoPError("this refresh token is bound to another DPoP key")
        return record

    def authenticate_user(self, refresh_token: RefreshTokenRecord) -> UserRecord | None:
        return self.server.store.get_user(refresh_token.username)

    def create_token_response(self) -> Any:
        record: RefreshTokenRecord = self.request.refresh_token
        if not self.server.store.consume_refresh_token(record.token_hash, self.server.clock()):
            self.server.revoke_family(self.request, record.family_id, "refresh token reused")
            raise InvalidGrantError("the refresh token was already used")
        self.request.family_id = record.family_id
        self.request.auth_time = record.auth_time
        self.request.bound_jkt = record.jkt
        return super().create_token_response()

    def revoke_old_credential(self, refresh_token: RefreshTokenRecord) -> None:
        return None  # consumed atomically before the new tokens were issued
