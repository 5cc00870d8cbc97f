"""Bearer token usage at the resource server (RFC 6750) and its error answers.

§2.1: the token comes in ``Authorization: Bearer <token>``; the scheme name
is case-insensitive (RFC 9110 §11.1). §2: a client "MUST NOT use more than
one method to transmit the token", and RFC 9700 §4.3.2 says tokens must not
travel in the URI query, so a token in the query, or two ``Authorization``
fields, is ``invalid_request`` (400). §3: a 401 carries
``WWW-Authenticate: Bearer realm="..."``, without an error code when no
credentials were sent, with ``error="invalid_token"`` when the token is bad;
a 403 for missing scopes is ``insufficient_scope`` with the ``scope`` needed.

DPoP (RFC 9449 §7.1): ``Authorization: DPoP <token>`` is read by
:func:`access_token` too; its refusals carry
``WWW-Authenticate: DPoP algs="...", error="invalid_dpop_proof"`` (or
``invalid_token``), built by :func:`dpop_challenge`.

``error_description`` values are fixed strings chosen by the gateway: RFC
6750 §3 restricts their characters, and they must never echo the token.
"""

from __future__ import annotations

import re

from apishield.problem import Problem

__all__ = [
    "InsufficientScope",
    "InvalidRequest",
    "InvalidToken",
    "NoCredentials",
    "access_token",
    "bearer_token",
    "dpop_challenge",
    "invalid_dpop",
]

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class NoCredentials(Problem):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"


class InvalidToken(Problem):
    status = 401
    slug = "invalid-token"
    title = "Invalid credentials"


class InvalidRequest(Problem):
    status = 400
    slug = "invalid-request"
    title = "Invalid authentication request"


class InsufficientScope(Problem):
    status = 403
    slug = "insufficient-scope"
    title = "Insufficient scope"


class Forbidden(Problem):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def challenge(
    realm: str,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    scheme: str = "Bearer",
) -> tuple[bytes, bytes]:
    parts = [f'realm="{_quote(realm)}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{_quote(description)}"')
    if scope:
        parts.append(f'scope="{_quote(scope)}"')
    return (b"www-authenticate", f"{scheme} {', '.join(parts)}".encode("ascii", "replace"))


def dpop_challenge(
    realm: str, algs: list[str], error: str | None = None, description: str | None = None
) -> tuple[bytes, bytes]:
    """``WWW-Authenticate: DPoP`` (RFC 9449 §7.1) with the accepted proof algorithms."""
    parts = [f'realm="{_quote(realm)}"', f'algs="{" ".join(algs)}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{_quote(description)}"')
    return (b"www-authenticate", f"DPoP {', '.join(parts)}".encode("ascii", "replace"))


def invalid_dpop(
    realm: str, algs: list[str], error: str = "invalid_dpop_proof", description: str = "Invalid DPoP proof."
) -> InvalidToken:
    """A 401 for the DPoP scheme: ``invalid_dpop_proof`` or ``invalid_token`` (RFC 9449 §7.1)."""
    return InvalidToken(detail=description, headers=[dpop_challenge(realm, algs, error, description)])


def no_credentials(realm: str) -> NoCredentials:
    return NoCredentials(detail="This operation needs credentials.", headers=[challenge(realm)])


def invalid_token(realm: str, description: str = "The access token is invalid.") -> InvalidToken:
    return InvalidToken(detail=description, headers=[challenge(realm, "invalid_token", description)])


def invalid_request(realm: str, description: str) -> InvalidRequest:
    return InvalidRequest(detail=description, headers=[challenge(realm, "invalid_request", description)])


def insufficient_scope(realm: str, scopes: list[str]) -> InsufficientScope:
    needed = " ".join(scopes)
    return InsufficientScope(
        detail=f"This operation needs the scope(s): {needed}.",
        headers=[challenge(realm, "insufficient_scope", "The access token lacks a required scope.", needed)],
        extensions={"required_scopes": scopes},
    )


def bearer_token(values: list[bytes], realm: str) -> str | None:
    """The bearer token of the ``Authorization`` field(s); raises a problem when malformed.

    Returns None when no ``Authorization`` field is present or it uses another scheme.
    """
    found = access_token(values, realm, schemes=("bearer",))
    return found[1] if found else None


def access_token(
    values: list[bytes], realm: str, schemes: tuple[str, ...] = ("bearer", "dpop")
) -> tuple[str, str] | None:
    """``(scheme, token)`` from the ``Authorization`` field(s), scheme lower-cased; None if absent.

    Both schemes carry a b64token (RFC 6750 §2.1, RFC 9449 §7.1).
    """
    if not values:
        return None
    if len(values) > 1:
        raise invalid_request(realm, "Send exactly one Authorization header.")
    raw = values[0].decode("latin-1")
    scheme, _, rest = raw.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in schemes:
        return None
    token = rest.strip()
    if not token or " " in token:
        raise invalid_request(realm, "The Authorization header must carry exactly one token.")
    if not _B64TOKEN.fullmatch(token):
        raise invalid_token(realm, "The access token is malformed.")
    return scheme, token
