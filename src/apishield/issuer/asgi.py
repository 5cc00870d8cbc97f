"""The embedded authorization server as a raw ASGI application.

Endpoints (paths under the issuer URL's path, RFC 8414 §3.1 for the metadata):

==========================================  =======  ============================================
``/.well-known/oauth-authorization-server``  GET      metadata (RFC 8414)
``/jwks.json``                               GET      public signing keys (RFC 7517 §5)
``/authorize``                               GET/POST sign-in and consent (RFC 6749 §3.1, §4.1)
``/token``                                   POST     tokens (RFC 6749 §3.2; DPoP, RFC 9449)
``/revoke``                                  POST     revocation (RFC 7009)
``/introspect``                              POST     introspection (RFC 7662)
==========================================  =======  ============================================

This module is Authlib's "framework integration": it reads the ASGI request
into an :class:`~apishield.issuer.server.IssuerRequest` and writes the
:class:`~apishield.issuer.server.OAuthResponse` back. Before Authlib sees a
request it enforces what RFC 6749 leaves to the server: form-encoded POST
bodies of bounded size in UTF-8 (§3.2, Appendix B), no parameter sent twice
(§3.1, §3.2), parameters without a value treated as omitted (§3.1), no
parameters in the query string of the token, revocation and introspection
endpoints (their credentials would leak into logs), and one client
authentication method per request (§2.3). URLs are built from the configured
issuer, never from the ``Host`` header.

OAuth work runs in a small pool of worker threads (Authlib and the store are
synchronous; argon2 verifications must not block the event loop). Afterwards, the ``jti``
of every access token revoked while handling the request is written to the
revocation store that the gateways poll (``auth.revocation.store``), so they
refuse it within a second.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from authlib.oauth2.rfc6749 import OAuth2Error  # type: ignore[import-untyped, unused-ignore]

from apishield.audit.instance import default_instance
from apishield.audit.writer import AuditWriter
from apishield.core.stages.audit import AuditQueue
from apishield.issuer.audit import LOGOFF, LOGON, authentication_event, basic_client_id, error_code
from apishield.issuer.keys import KeyRing
from apishield.issuer.login import CSRF, error_page, page_headers, sign_in_page
from apishield.issuer.passwords import PasswordHasher
from apishield.issuer.rfc8414 import metadata, validate_metadata
from apishield.issuer.server import NO_STORE, Headers, IssuerRequest, IssuerServer, OAuthResponse
from apishield.issuer.settings import IssuerSettings
from apishield.issuer.store import StoreError, open_issuer_store
from apishield.issuer.throttle import LoginThrottle
from apishield.services.revocation_store import RevocationStore, open_revocation_store

__all__ = ["IssuerApp", "create_issuer_app", "serve"]

log = logging.getLogger("apishield.issuer")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

T = TypeVar("T")
WORKERS = 4
JSON = [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]
FORM = "application/x-www-form-urlencoded"
BAD_CREDENTIALS = "The username or password is incorrect."


class BadRequest(Exception):
    """The request is malformed before any OAuth processing; renders as RFC 6749 §5.2 JSON."""

    def __init__(self, description: str, status: int = 400, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> OAuthResponse:
        body = orjson.dumps({"error": self.error, "error_description": self.description})
        return OAuthResponse(self.status, body, [*JSON, *NO_STORE])


def _json(status: int, doc: Any, *headers: tuple[str, str]) -> OAuthResponse:
    return OAuthResponse(status, orjson.dumps(doc), [*JSON, *headers])


def _params(raw: str, what: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(f"the {what} is not valid UTF-8 form encoding") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise BadRequest(f"parameter {name!r} is repeated"[:120])
        params[name] = value
    return {k: v for k, v in params.items() if v != ""}


class IssuerApp:
    """The ASGI application; build it with :func:`create_issuer_app`."""

    def __init__(
        self,
        settings: IssuerSettings,
        *,
        revocation_store: RevocationStore | None = None,
        clock: Callable[[], float] = time.time,
        audit: AuditQueue | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        # OCSF Authentication events: drained by the writer that owns the queue (a gateway's in the
        # same process), or by this issuer's own writer when its settings have an ``audit:`` section
        self.instance = default_instance()
        self.audit = audit if audit is not None else AuditQueue()
        self.writer: AuditWriter | None = None
        if audit is None and settings.audit is not None:
            self.writer = AuditWriter.from_policy(self.audit, settings.audit, Path.cwd(), self.instance)
        # OAuth work runs here: few threads (Python code contends for the GIL; argon2 needs 64 MiB each)
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="issuer")
        base = Path.cwd()
        self.store = open_issuer_store(settings.store, base)
        keys_dir = Path(settings.keys_dir).expanduser()
        self.keys = KeyRing(
            keys_dir if keys_dir.is_absolute() else base / keys_dir,
            settings.signing_alg,
            keep_for=settings.token_lifetime + 300,
            clock=clock,
        )
        self.hasher = PasswordHasher(settings.password_hash)
        self.server = IssuerServer(settings, self.store, self.keys, self.hasher, clock=clock)
        self._own_revocations = revocation_store is None
        self.revocations = revocation_store or open_revocation_store(settings.revocation_store, base)
        self.metadata = metadata(settings)
        validate_metadata(self.metadata)
        self._metadata_body = orjson.dumps(self.metadata)
        self.throttle = LoginThrottle(settings.login_throttle)
        self.csrf = CSRF(self.keys.csrf_key, secure=settings.issuer.startswith("https://"))
        prefix = settings.path_prefix
        self.routes: dict[str, tuple[tuple[str, ...], Callable[..., Awaitable[OAuthResponse]]]] = {
            settings.metadata_path: (("GET",), self._metadata),
            prefix + "/jwks.json": (("GET",), self._jwks),
            prefix + "/authorize": (("GET", "POST"), self._authorize),
            prefix + "/token": (("POST",), self._token),
            prefix + "/revoke": (("POST",), self._revoke),
            prefix + "/introspect": (("POST",), self._introspect),
        }

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        route = self.routes.get(scope["path"])
        if route is None:
            response = _json(404, {"error": "not_found"})
        elif scope["method"] not in route[0]:
            response = _json(405, {"error": "method_not_allowed"}, ("Allow", ", ".join(route[0])))
        else:
            try:
                response = await route[1](scope, receive)
            except BadRequest as exc:
                response = exc.response()
            except StoreError:
                log.exception("the issuer's store failed")
                response = BadRequest("try again", status=503, error="temporarily_unavailable").response()
                response.headers.append(("Retry-After", "1"))
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.writer is not None:
                    await self.writer.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _work(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def aclose(self) -> None:
        if self.writer is not None:
            await self.writer.stop()
        self._pool.shutdown(wait=True)
        await asyncio.to_thread(self.store.close)
        if self._own_revocations:
            await self.revocations.close()

    # -- request reading -----------------------------------------------------------------------------

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                raise BadRequest("the request body is too large", status=413)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    @staticmethod
    def _headers(scope: Scope) -> tuple[dict[str, str], list[str]]:
        headers: dict[str, str] = {}
        dpop: list[str] = []
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name == "dpop":
                dpop.append(value)
                continue
            if name in headers:
                if name in ("authorization", "content-type"):
                    raise BadRequest(f"header {name!r} is repeated")
                headers[name] += (", " if name != "cookie" else "; ") + value
            else:
                headers[name] = value
        return headers, dpop

    async def _request(self, scope: Scope, receive: Receive, *, authorize: bool = False) -> IssuerRequest:
        headers, dpop = self._headers(scope)
        raw_query = scope.get("query_string", b"").decode("latin-1")
        if raw_query and not authorize:
            raise BadRequest("send the parameters in the form-encoded body, not in the URL")
        form: dict[str, str] = {}
        if scope["method"] == "POST":
            kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if kind != FORM:
                raise BadRequest(f"the body must be {FORM}")
            body = await self._body(receive)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("the body is not UTF-8") from None
            form = _params(text, "body")
        query = _params(raw_query, "query") if authorize else {}
        basic = headers.get("authorization", "")[:6].lower() == "basic "
        if not authorize and basic and ("client_secret" in form or "client_assertion" in form):
            raise BadRequest("use one client authentication method (RFC 6749 §2.3)")
        name = scope["path"].rsplit("/", 1)[-1]
        client = scope.get("client")
        return IssuerRequest(
            scope["method"],
            self.settings.endpoint(name),
            Headers(headers),
            query,
            form,
            client_ip=client[0] if client else "",
            dpop=dpop,
            params_in_query=authorize,
        )

    async def _publish(self, request: IssuerRequest) -> bool:
        ok = True
        for jti, until in request.revoked:
            try:
                await self.revocations.revoke("jti", jti, until)
            except Exception:
                log.exception("could not publish the revocation of jti %s", jti)
                ok = False
        return ok

    # -- JSON endpoints -------------------------------------------------------------------------------

    async def _metadata(self, scope: Scope, receive: Receive) -> OAuthResponse:
        return OAuthResponse(
            200,
            self._metadata_body,
            [*JSON, ("Cache-Control", "public, max-age=300"), ("Access-Control-Allow-Origin", "*")],
        )

    async def _jwks(self, scope: Scope, receive: Receive) -> OAuthResponse:
        return OAuthResponse(
            200,
            orjson.dumps(self.keys.jwks()),
            [
                ("Content-Type", "application/jwk-set+json"),
                ("X-Content-Type-Options", "nosniff"),
                ("Cache-Control", "public, max-age=60"),
                ("Access-Control-Allow-Origin", "*"),
            ],
        )

    async def _token(self, scope: Scope, receive: Receive) -> OAuthResponse:
        request = await self._request(scope, receive)
        response = await self._work(self.server.token, request)
        self._record(request, LOGON, "token", response=response)
        await self._publish(request)
        return response

    def _record(
        self,
        request: IssuerRequest,
        activity: int,
        endpoint: str,
        *,
        response: OAuthResponse | None = None,
        user_name: str | None = None,
        detail: str | None = None,
    ) -> None:
        """One OCSF Authentication event for a grant, a sign-in or a revocation (never a secret).

        A grant or revocation is judged by its ``response``; a sign-in fails when ``detail`` says why.
        """
        client = request.client
        client_id = getattr(client, "client_id", None) or basic_client_id(request.headers)
        client_id = client_id or request.form.get("client_id") or request.args.get("client_id")
        success = detail is None and (response is None or 200 <= response.status < 400)
        severity = None
        if not success and detail is None and response is not None:
            detail = error_code(response.body)
        if request.family_revoked is not None and "reused" in request.family_revoked:
            success = False
            severity = 5
            detail = "authorization_code_reuse" if "code" in request.family_revoked else "refresh_token_reuse"
        grant_type = request.form.get("grant_type") if endpoint == "token" else None
        user = request.user
        user_uid = user.get_user_id() if user is not None else None
        if user_uid is None and grant_type == "client_credentials" and success:
            user_uid = client_id
        self.audit.emit(
            authentication_event(
                activity=activity,
                success=success,
                service=self.settings.audience,
                instance=self.instance,
                src_ip=request.client_ip,
                user_uid=user_uid,
                user_name=user_name,
                client_id=client_id,
                detail=detail,
                severity=severity,
                endpoint=endpoint,
                grant_type=grant_type,
            )
        )

    async def _revoke(self, scope: Scope, receive: Receive) -> OAuthResponse:
        request = await self._request(scope, receive)
        response = await self._work(self.server.revoke, request)
        self._record(request, LOGOFF, "revoke", response=response)
        if not await self._publish(request):
            # RFC 7009 §2.2.1: 503 tells the client to retry; the token is already refused here
            return BadRequest("try again", status=503, error="temporarily_unavailable").response()
        return response

    async def _introspect(self, scope: Scope, receive: Receive) -> OAuthResponse:
        request = await self._request(scope, receive)
        return await self._work(self.server.introspect, request)

    # -- the authorization endpoint ------------------------------------------------------------------

    def _page(self, status: int, body: bytes, nonce: str, redirect_uri: str | None = None) -> OAuthResponse:
        return OAuthResponse(status, body, page_headers(nonce, redirect_uri))

    def _invalid_request_page(self, error: OAuth2Error | BadRequest) -> OAuthResponse:
        nonce = secrets.token_urlsafe(16)
        description = getattr(error, "description", None) or "The authorization request is not valid."
        body = error_page(
            nonce=nonce, title="This sign-in link is not valid", message=description, code=error.error
        )
        return self._page(400, body, nonce)

    async def _authorize(self, scope: Scope, receive: Receive) -> OAuthResponse:
        try:
            request = await self._request(scope, receive, authorize=True)
        except BadRequest as exc:
            # the redirect URI cannot be trusted yet: never redirect, show the problem (RFC 6749 §4.1.2.1)
            if exc.status == 413:
                raise
            return self._invalid_request_page(exc)
        try:
            grant = await self._work(self.server.consent, request)
        except OAuth2Error as error:
            await self._publish(request)
            if error.redirect_uri:
                return self.server.error_redirect(error)
            return self._invalid_request_page(error)
        headers = Headers(request.headers)
        cookie = self.csrf.cookie_from(headers.get("cookie"))
        raw_query = scope.get("query_string", b"").decode("latin-1")
        if scope["method"] == "GET":
            return self._sign_in(request, grant, raw_query, cookie)
        return await self._sign_in_posted(request, grant, raw_query, cookie)

    def _sign_in(
        self,
        request: IssuerRequest,
        grant: Any,
        raw_query: str,
        cookie: str | None,
        *,
        status: int = 200,
        error: str | None = None,
        username: str = "",
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> OAuthResponse:
        fresh = cookie is None
        cookie = cookie or self.csrf.new_cookie()
        nonce = secrets.token_urlsafe(16)
        body = sign_in_page(
            nonce=nonce,
            action=f"{self.settings.path_prefix}/authorize?{raw_query}",
            csrf_token=self.csrf.token(cookie, raw_query),
            client_name=request.client.name or request.client.client_id,
            scopes=(request.scope or "").split(),
            username=username,
            error=error,
        )
        response = self._page(status, body, nonce, grant.redirect_uri)
        if fresh:
            response.headers.append(("Set-Cookie", self.csrf.cookie_header(cookie)))
        response.headers.extend(extra_headers)
        return response

    async def _sign_in_posted(
        self, request: IssuerRequest, grant: Any, raw_query: str, cookie: str | None
    ) -> OAuthResponse:
        form = request.form
        if not self.csrf.check(cookie, raw_query, form.get("csrf_token")):
            nonce = secrets.token_urlsafe(16)
            body = error_page(
                nonce=nonce,
                title="The sign-in form expired",
                message="This form was not sent from this sign-in page, or it expired.",
            )
            return self._page(403, body, nonce)
        decision = form.get("decision")
        if decision == "deny":
            return await self._work(self.server.decide, request, grant, None)
        if decision != "allow":
            return self._invalid_request_page(BadRequest("choose Sign in and allow, or Deny"))
        username = form.get("username", "")[:200]
        password = form.get("password", "")
        now = self.clock()
        wait = self.throttle.retry_after(username, request.client_ip, now)
        if wait > 0:
            minutes = max(1, round(wait / 60))
            self._record(request, LOGON, "authorize", user_name=username, detail="throttled")
            return self._sign_in(
                request,
                grant,
                raw_query,
                cookie,
                status=429,
                error=f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
                username=username,
                extra_headers=(("Retry-After", str(int(wait) + 1)),),
            )
        user = await self._work(self.server.check_password, username, password[:1024])
        if user is None:
            self.throttle.failed(username, request.client_ip, now)
            log.info("failed sign-in from %s", request.client_ip)
            self._record(request, LOGON, "authorize", user_name=username, detail="login_failed")
            return self._sign_in(request, grant, raw_query, cookie, error=BAD_CREDENTIALS, username=username)
        self.throttle.succeeded(username)
        request.user = user
        self._record(request, LOGON, "authorize", user_name=username)
        return await self._work(self.server.decide, request, grant, user)


def create_issuer_app(
    settings: IssuerSettings,
    *,
    revocation_store: RevocationStore | None = None,
    clock: Callable[[], float] = time.time,
    audit: AuditQueue | None = None,
) -> IssuerApp:
    """The issuer as an ASGI app: opens the store, creates the signing keys on first start.

    ``revocation_store`` replaces the one named by ``settings.revocation_store``
    (for a gateway in the same process sharing a ``memory`` store); ``audit``
    is the queue its Authentication events go to (a gateway's in the same
    process, whose writer drains it), else its own, written per
    ``settings.audit``; ``clock`` is for tests.
    """
    return IssuerApp(settings, revocation_store=revocation_store, clock=clock, audit=audit)


def serve(settings: IssuerSettings, host: str | None = None, port: int | None = None) -> None:
    """Run the issuer under uvicorn in the foreground until SIGTERM/SIGINT."""
    import uvicorn

    from apishield.proxy.server import uvicorn_config

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = create_issuer_app(settings)
    listen = settings.listen
    config = uvicorn_config(app, host or listen.host, port if port is not None else listen.port)
    uvicorn.Server(config).run()
