"""The one exception the JOSE layer raises (RFC 7515 §5.2, RFC 8725 §3).

Every refusal, whether of a token, a header, a key or a key set, is a
:class:`JOSEError`. Its ``reason`` is short, fixed text chosen by this package:
it never quotes the token, a header value, a ``kid`` or key material, so it can
be logged and returned to a client as is (RFC 6750 §3 ``error_description``)
without reflecting attacker input (RFC 8725 §3.10).
"""

from __future__ import annotations

__all__ = ["JOSEError"]


class JOSEError(ValueError):
    """A token, header, key or key set was refused; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
