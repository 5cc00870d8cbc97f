"""FastAPI conveniences over :class:`~apishield.middleware.shield.Shield` (needs the ``fastapi`` extra).

Shield decides before FastAPI sees the request; these helpers only read what
it established and describe the API so that ``app.openapi()`` is a document
Shield can enforce. They are dependencies, not decorators (Starlette's
``requires()`` pattern of sniffing signatures is avoided on purpose).

The verified caller, typed::

    from apishield.middleware.fastapi import CurrentPrincipal

    @app.get("/v1/me")
    async def me(who: CurrentPrincipal) -> dict[str, str | None]:
        return {"subject": who.subject}

A security scheme that Shield enforces and FastAPI documents: the scopes of
``Security(...)`` go into the operation's ``security`` requirement in
``app.openapi()``, which is where Shield reads them from; the dependency
returns the principal and checks nothing more itself::

    oauth2 = oauth2_scheme({"clientCredentials": {"tokenUrl": "https://idp/token", "scopes": {...}}})

    @app.get("/v1/customers/{customerId}")
    async def get_customer(customerId: int, who: Principal = Security(oauth2, scopes=["customers:read"])):
        ...

Operations without a security requirement are refused by Shield (default
deny); mark public ones with ``openapi_extra=PUBLIC`` (``security: []``).
Do not use FastAPI's own ``OAuth2PasswordBearer``/``HTTPBearer`` behind
Shield: Shield does not pass the ``Authorization`` header on (see
``auth.identity_headers.forward_authorization``), so they would refuse every
request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.openapi.models import APIKey, APIKeyIn, HTTPBearer, OAuth2, OAuthFlows
from fastapi.openapi.models import SecurityBase as SecuritySchemeModel
from fastapi.security.base import SecurityBase

from apishield.auth.principal import Principal
from apishield.middleware.shield import principal_of

__all__ = [
    "PUBLIC",
    "CurrentPrincipal",
    "ShieldScheme",
    "api_key_scheme",
    "bearer_scheme",
    "oauth2_scheme",
    "principal",
]

#: ``openapi_extra`` for an operation anyone may call: ``security: []`` in the document.
PUBLIC: dict[str, Any] = {"security": []}


def principal(request: Request) -> Principal:
    """Dependency: the caller Shield verified. Fails (500) if Shield is not in front of the app."""
    found = principal_of(request.scope)
    if found is None:
        raise RuntimeError("no apishield principal in the request scope: is Shield the outermost middleware?")
    return found


#: ``who: CurrentPrincipal`` in an endpoint's parameters gives the verified caller.
CurrentPrincipal = Annotated[Principal, Depends(principal)]


class ShieldScheme(SecurityBase):
    """A security scheme enforced by Shield: documented by FastAPI, returns the principal."""

    def __init__(self, model: SecuritySchemeModel, scheme_name: str) -> None:
        self.model = model
        self.scheme_name = scheme_name

    async def __call__(self, request: Request) -> Principal:
        return principal(request)


def oauth2_scheme(
    flows: OAuthFlows | Mapping[str, Any], name: str = "oauth2", description: str | None = None
) -> ShieldScheme:
    """An OAuth 2.0 scheme (``flows`` as in OpenAPI: ``{"clientCredentials": {...}}``)."""
    model_flows = flows if isinstance(flows, OAuthFlows) else OAuthFlows.model_validate(dict(flows))
    return ShieldScheme(OAuth2(flows=model_flows, description=description), name)


def bearer_scheme(name: str = "bearer", bearer_format: str | None = "JWT") -> ShieldScheme:
    """An HTTP bearer scheme (``Authorization: Bearer <token>``)."""
    return ShieldScheme(HTTPBearer(bearerFormat=bearer_format), name)


def api_key_scheme(header: str = "X-API-Key", name: str = "apiKey") -> ShieldScheme:
    """An API key in a request header (``auth.api_keys`` in the policy)."""
    return ShieldScheme(APIKey.model_validate({"in": APIKeyIn.header, "name": header}), name)
