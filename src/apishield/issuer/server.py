"""The OAuth 2.0 core: Authlib's ``AuthorizationServer`` wired to the issuer's store and keys.

Authlib (RFC 6749 and its extensions) does the protocol: client
authentication (§2.3.1 ``client_secret_basic`` / ``client_secret_post``,
``none`` for public clients), grant dispatch, request validation and the
error responses of §4.1.2.1 and §5.2. This module adapts it to apishield:

* :class:`IssuerRequest` is Authlib's request object built from an ASGI
  request by :mod:`apishield.issuer.asgi` (its framework integration), and
  :meth:`IssuerServer.handle_response` returns an :class:`OAuthResponse`;
* :meth:`IssuerServer.issue` mints the RFC 9068 access token, records it and,
  for grants with a user, rotates the refresh token within its family;
* revocations gathered while a request is handled (a reused code or refresh
  token, RFC 7009, a revoked client) are listed on ``request.revoked`` for
  the ASGI layer to publish to the gateways' revocation store.

Everything here is synchronous, like Authlib: the ASGI layer calls it from a
worker thread, which also keeps the argon2 verifications off the event loop.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from authlib.oauth2 import AuthorizationServer  # type: ignore[import-untyped, unused-ignore]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped, unused-ignore]
    InvalidClientError,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload  # type: ignore[import-untyped, unused-ignore]

from apishield.issuer.grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant
from apishield.issuer.keys import KeyRing
from apishield.issuer.models import (
    AccessTokenRecord,
    ClientRecord,
    RefreshTokenRecord,
    UserRecord,
    hash_token,
    new_token,
)
from apishield.issuer.passwords import PasswordHasher, SecretVerifier
from apishield.issuer.rfc7009 import Revocation
from apishield.issuer.rfc7636 import S256CodeChallenge
from apishield.issuer.rfc7662 import Introspection
from apishield.issuer.rfc9068 import AccessTokenMinter
from apishield.issuer.rfc9449 import DPoPError, DPoPVerifier
from apishield.issuer.settings import IssuerSettings
from apishield.issuer.store import IssuerStore
from apishield.issuer.tokens import TokenFinder

__all__ = ["Headers", "IssuerRequest", "IssuerServer", "OAuthResponse"]

log = logging.getLogger("apishield.issuer")

NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
PRUNE_EVERY = 300.0


@dataclass
class OAuthResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"] + [("Location", value)]


class Headers(dict[str, str]):
    """Request headers with case-insensitive lookup (Authlib reads ``headers.get("Authorization")``)."""

    def __init__(self, items: Mapping[str, str]) -> None:
        super().__init__((k.lower(), v) for k, v in items.items())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class IssuerRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth request as Authlib sees it, plus what the issuer learns while handling it."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Headers,
        query: dict[str, str],
        form: dict[str, str],
        *,
        client_ip: str = "",
        dpop: list[str] | None = None,
        params_in_query: bool = False,
    ) -> None:
        # OAuth2Request.__init__ would re-check the URI's transport (about 50 us a request); the URI is
        # built from the validated issuer setting (https, or http on loopback), so set its fields here
        self.method = method
        self.uri = uri
        self.headers = headers
        self._body = None
        self.client: Any = None
        self.auth_method: str | None = None
        self.user: Any = None
        self.authorization_code: Any = None
        self.refresh_token: Any = None
        self.credential: Any = None
        self._scope: str | None = None
        self._query = query
        self._form = form
        # the authorization endpoint reads the query (also when the sign-in form is posted back)
        self.payload = BasicOAuth2Payload(query if params_in_query else form)
        self.client_ip = client_ip
        self.dpop_headers = dpop or []
        self.dpop_jkt: str | None = None
        self.bound_jkt: str | None = None
        self.family_id: str | None = None
        self.auth_time: float | None = None
        self.revoked: list[tuple[str, float]] = []
        self.family_revoked: str | None = None  # why a grant family was revoked (code or refresh reuse)

    @property
    def args(self) -> dict[str, str]:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        return self._form


def with_params(uri: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + params
    return urlunsplit(parts._replace(query=urlencode(query)))


class IssuerServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self,
        settings: IssuerSettings,
        store: IssuerStore,
        keys: KeyRing,
        hasher: PasswordHasher,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(scopes_supported=list(settings.scopes) or None)
        self.settings = settings
        self.store = store
        self.keys = keys
        self.hasher = hasher
        self.clock = clock
        self.verifier = SecretVerifier(hasher)
        self.minter = AccessTokenMinter(settings.issuer, settings.audience, settings.token_lifetime, keys)
        self.finder = TokenFinder(settings.issuer, settings.audience, settings.token_lifetime, keys, store)
        dpop = settings.dpop
        self.dpop = (
            DPoPVerifier(algorithms=frozenset(dpop.algorithms), max_age=dpop.max_age, leeway=dpop.leeway)
            if dpop.enabled
            else None
        )
        self._next_prune = 0.0
        self._clients: dict[str, ClientRecord] = {}
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge()])
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    # -- Authlib's framework hooks ----------------------------------------------------------------

    def query_client(self, client_id: str) -> ClientRecord | None:
        if not isinstance(client_id, str) or not client_id or len(client_id) > 200:
            return None
        record = self.store.get_client(client_id)
        if record is None or record.revoked_at is not None:
            return None
        cached = self._clients.get(client_id)
        if cached is not None and cached == record:  # the stored row is unchanged
            return cached
        client = dataclasses.replace(record, verifier=self.verifier)
        if len(self._clients) >= 10_000:
            self._clients.clear()
        self._clients[client_id] = client
        return client

    def authenticate_client(self, request: IssuerRequest, methods: Any, endpoint: str = "token") -> Any:
        try:
            return super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as exc:
            # one answer whether the client is unknown, revoked or its secret wrong
            exc.description = "client authentication failed"
            raise

    def save_token(self, token: dict[str, Any], request: IssuerRequest) -> None:
        return None  # :meth:`issue` records what it mints

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: IssuerRequest) -> IssuerRequest:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("the issuer takes form-encoded requests only")

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> OAuthResponse:
        if isinstance(body, dict):
            data = orjson.dumps(body)
        elif isinstance(body, bytes):
            data = body
        else:
            data = str(body or "").encode()
        return OAuthResponse(status, data, list(headers))

    # -- minting ----------------------------------------------------------------------------------

    def issue(
        self,
        request: IssuerRequest,
        grant_type: str,
        user: UserRecord | None,
        scope: str,
        include_refresh_token: bool,
    ) -> dict[str, Any]:
        """Mint, record and return the token response members (RFC 6749 §5.1, RFC 9449 §5)."""
        client: ClientRecord = request.client
        now = self.clock()
        claims: dict[str, Any] = dict(client.claims)
        if user is not None:
            claims.update(user.claims)
        jkt = request.dpop_jkt
        minted = self.minter.mint(
            subject=user.username if user is not None else client.client_id,
            client_id=client.client_id,
            scope=scope,
            now=now,
            extra=claims,
            auth_time=request.auth_time if user is not None else None,
            jkt=jkt,
        )
        self.store.record_access_token(
            AccessTokenRecord(
                jti=minted.jti,
                client_id=client.client_id,
                username=user.username if user is not None else None,
                family_id=request.family_id,
                expires_at=minted.expires_at,
            )
        )
        token: dict[str, Any] = {
            "access_token": minted.token,
            "token_type": "DPoP" if jkt else "Bearer",
            "expires_in": minted.expires_at - minted.issued_at,
            "scope": scope,
        }
        if include_refresh_token and user is not None and request.family_id is not None:
            refresh = new_token()
            bound = (request.bound_jkt or jkt) if client.public else None
            self.store.save_refresh_token(
                RefreshTokenRecord(
                    token_hash=hash_token(refresh),
                    family_id=request.family_id,
                    client_id=client.client_id,
                    username=user.username,
                    scope=scope,
                    issued_at=now,
                    expires_at=now + self.settings.refresh_lifetime,
                    auth_time=request.auth_time,
                    jkt=bound,
                )
            )
            token["refresh_token"] = refresh
        log.debug(  # the store keeps every jti with its client, user and grant: the issuance record
            "issued access token jti=%s client=%s grant=%s sub=%s",
            minted.jti,
            client.client_id,
            grant_type,
            minted.claims["sub"],
        )
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            self.store.prune(now)
        return token

    def revoke_family(self, request: IssuerRequest, family_id: str, reason: str) -> None:
        revoked = self.store.revoke_family(family_id, self.clock())
        request.revoked.extend(revoked)
        request.family_revoked = reason
        log.warning("revoked grant family (%s): %d live access token(s)", reason, len(revoked))

    # -- endpoints (called from a worker thread) ----------------------------------------------------

    @staticmethod
    def _dpop_error(exc: DPoPError) -> OAuthResponse:
        body = orjson.dumps({"error": exc.error, "error_description": exc.description})
        return OAuthResponse(400, body, [("Content-Type", "application/json"), *NO_STORE])

    def token(self, request: IssuerRequest) -> OAuthResponse:
        """The token endpoint (RFC 6749 §3.2), with an optional DPoP proof (RFC 9449 §5)."""
        try:
            if request.dpop_headers and self.dpop is not None:
                request.dpop_jkt = self.dpop.verify(
                    request.dpop_headers, method="POST", url=self.settings.endpoint("token"), now=self.clock()
                )
            response: OAuthResponse = self.create_token_response(request)
        except DPoPError as exc:
            return self._dpop_error(exc)
        return response

    def revoke(self, request: IssuerRequest) -> OAuthResponse:
        response: OAuthResponse = self.create_endpoint_response("revocation", request)
        return response

    def introspect(self, request: IssuerRequest) -> OAuthResponse:
        response: OAuthResponse = self.create_endpoint_response("introspection", request)
        return response

    def consent(self, request: IssuerRequest) -> Any:
        """Validate an authorization request (RFC 6749 §4.1.1); raises Authlib's ``OAuth2Error``."""
        return self.get_consent_grant(request)

    def authorization_redirect(self, response: OAuthResponse) -> OAuthResponse:
        """RFC 9207 §2: ``iss`` in every authorization response; 303 after a form post (RFC 9700 §4.12)."""
        location = response.location
        if location is not None:
            response.location = with_params(location, [("iss", self.settings.issuer)])
            response.status = 303
        response.headers = [(k, v) for k, v in response.headers if k.lower() != "content-type"]
        return response

    def decide(self, request: IssuerRequest, grant: Any, user: UserRecord | None) -> OAuthResponse:
        """The authorization response: a code for ``user``, or ``access_denied`` when None (§4.1.2)."""
        request.auth_time = self.clock()
        response: OAuthResponse = self.create_authorization_response(request, grant_user=user, grant=grant)
        return self.authorization_redirect(response)

    def error_redirect(self, error: OAuth2Error) -> OAuthResponse:
        """An authorization error sent back to a *validated* redirect URI (RFC 6749 §4.1.2.1)."""
        status, body, headers = error()
        return self.authorization_redirect(self.handle_response(status, body, headers))

    def check_password(self, username: str, password: str) -> UserRecord | None:
        """The user, if the password is theirs and the account is enabled (timing alike either way)."""
        user = self.store.get_user(username) if 0 < len(username) <= 200 else None
        if user is None:
            self.hasher.dummy_verify(password)
            return None
        if not self.hasher.verify(user.password_hash, password) or user.disabled_at is not None:
            return None
        return user
