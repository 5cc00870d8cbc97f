"""apishield: an API security layer driven by the API's own OpenAPI document.

The package has one sans-IO decision core (:mod:`apishield.core`) and thin
adapters over it: the reverse-proxy gateway (:mod:`apishield.proxy`), the
ASGI middleware (:mod:`apishield.middleware`, exported here as
:class:`Shield`) and the command line (:mod:`apishield.cli`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Shield", "__version__"]

if TYPE_CHECKING:
    from apishield.middleware import Shield


def __getattr__(name: str) -> Any:
    # imported on first use: the CLI and the gateway do not pay for the middleware
    if name == "Shield":
        from apishield.middleware import Shield

        return Shield
    raise AttributeError(f"module 'apishield' has no attribute {name!r}")
