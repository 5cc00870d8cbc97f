"""apishield: an API security layer driven by the API's own OpenAPI document.

The package has one sans-IO decision core (:mod:`apishield.core`) and thin
adapters over it: the reverse-proxy gateway (:mod:`apishield.proxy`) and the
command line (:mod:`apishield.cli`).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
