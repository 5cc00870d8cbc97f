"""The ASGI middleware adapter: the decision core in the application's own process.

:class:`Shield` wraps any ASGI application (Starlette, FastAPI, Litestar,
raw ASGI); :mod:`apishield.middleware.fastapi` adds FastAPI dependencies
(the typed principal, security schemes documented in ``app.openapi()``).
See ``docs/middleware.md``.
"""

from __future__ import annotations

from apishield.middleware.loader import load_middleware_runtime
from apishield.middleware.resources import ResourceLoader, ResourceRequest
from apishield.middleware.shield import Shield, principal_of

__all__ = ["ResourceLoader", "ResourceRequest", "Shield", "load_middleware_runtime", "principal_of"]
