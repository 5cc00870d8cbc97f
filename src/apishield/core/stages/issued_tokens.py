"""The issued-token registry: bind legacy tokens to what the application really issued.

Many applications sign their own HS256 JWTs, and a leaked or guessed secret
lets anyone mint valid-looking tokens. When the policy names the login
operation and where its answer carries the token
(``auth.issued_tokens``), the gateway records the SHA-256 of every token
that operation issues; providers with ``require_issued_by_gateway: true``
then accept only recorded tokens. A forged token, however well signed, was
never issued and is refused.

Recording happens here, on the login operation's successful answer; the
shared store (Redis, when configured) is written by the adapter as an
after-effect.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from apishield.auth.state import AuthState
from apishield.config.auth import IssuedTokenRegistry
from apishield.core.effects import RecordIssued
from apishield.core.exchange import Exchange
from apishield.core.stage import Stage
from apishield.core.stages.authentication import token_digest
from apishield.openapi.document import resolve_pointer

__all__ = ["IssuedTokensStage"]


class IssuedTokensStage(Stage):
    name = "issued_tokens"

    def __init__(
        self, settings: IssuedTokenRegistry | None, state: AuthState, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.state = state
        self.clock = clock

    def on_upstream_response(self, ex: Exchange) -> None:
        settings = self.settings
        reply = ex.reply
        if settings is None or reply is None or ex.operation_id != settings.login_operation:
            return
        if not (200 <= reply.status < 300) or reply.problem is not None:
            return
        try:
            token = resolve_pointer(reply.json(), settings.token_pointer)
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
            return
        if not isinstance(token, str) or not token:
            return
        digest = token_digest(token)
        self.state.issued.put(digest, True, self.clock() + settings.ttl)
        ex.after_effects.append(RecordIssued(digest, settings.ttl))
        ex.decide(self.name, "modify", "recorded an issued token")
