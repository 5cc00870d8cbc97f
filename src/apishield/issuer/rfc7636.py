"""PKCE for every authorization request, S256 only (RFC 7636, RFC 9700 §2.1.1 and §4.8).

Authlib's :class:`~authlib.oauth2.rfc7636.CodeChallenge` extension does the
work at the token endpoint (verifier syntax, S256 comparison, and the
downgrade rule of RFC 9700 §4.8: a ``code_verifier`` is refused when the
authorization request had no ``code_challenge``). This subclass makes it
stricter at the authorization endpoint, per RFC 9700 and OAuth 2.1:

* a ``code_challenge`` is required from every client (§4.4.1 of RFC 7636 says
  a server that requires PKCE answers ``invalid_request``);
* ``code_challenge_method`` must be ``S256``: ``plain``, and an absent method
  (which RFC 7636 §4.3 defaults to ``plain``), are refused.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge

__all__ = ["S256CodeChallenge"]


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)

    def __init__(self) -> None:
        super().__init__(required=True)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)
