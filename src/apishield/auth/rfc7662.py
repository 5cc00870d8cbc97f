"""Token introspection answers (RFC 7662 §2.2), validated before they are believed.

An answer is a JSON object whose ``active`` member must be the boolean
``true``; anything else is an inactive token (§2.2: "If the introspection
call is properly authorized but the token is not active ... the
authorization server MUST return ... active: false"). Optional members are
type-checked: ``scope`` a space-separated string, ``exp``/``iat``/``nbf``
numbers, ``client_id``/``sub``/``iss``/``jti`` strings, ``aud`` a string or
array of strings. An expired answer is inactive whatever ``active`` says.
"""

from __future__ import annotations

import math
from typing import Any

from apishield.auth.principal import Principal, token_fingerprint

__all__ = ["IntrospectionRejected", "principal_from_introspection"]


class IntrospectionRejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise IntrospectionRejected(f"'{name}' is not a number")
    return float(value)


def _string(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise IntrospectionRejected(f"'{name}' is not a string")
    return value


def principal_from_introspection(
    answer: Any, token: str, now: float, audience: str | None, issuer: str | None
) -> Principal:
    if not isinstance(answer, dict):
        raise IntrospectionRejected("the answer is not a JSON object")
    if answer.get("active") is not True:
        raise IntrospectionRejected("the token is not active")
    exp = _number(answer.get("exp"), "exp")
    nbf = _number(answer.get("nbf"), "nbf")
    _number(answer.get("iat"), "iat")
    if exp is not None and now >= exp:
        raise IntrospectionRejected("the token has expired")
    if nbf is not None and now < nbf:
        raise IntrospectionRejected("the token is not valid yet")
    scope = _string(answer.get("scope"), "scope")
    aud = answer.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
    if aud is not None and (auds is None or not all(isinstance(a, str) for a in auds)):
        raise IntrospectionRejected("'aud' is not a string or an array of strings")
    if audience is not None and (auds is None or audience not in auds):
        raise IntrospectionRejected("the token is not meant for this API")
    iss = _string(answer.get("iss"), "iss")
    if issuer is not None and iss != issuer:
        raise IntrospectionRejected("the token comes from another issuer")
    roles = answer.get("roles")
    return Principal(
        method="introspection",
        subject=_string(answer.get("sub"), "sub"),
        client_id=_string(answer.get("client_id"), "client_id"),
        issuer=iss,
        scopes=frozenset(scope.split()) if scope else frozenset(),
        roles=frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset(),
        token_id=_string(answer.get("jti"), "jti") or token_fingerprint(token),
        expires_at=exp,
        claims={k: v for k, v in answer.items() if k != "active"},
        credentials=frozenset({"bearer"}),
    )
