"""Enforcement of blocks and throttles (responses to alerts, or set by an operator).

Two stages read the same :class:`~apishield.detect.blocks.BlockList`, the
in-memory mirror of the shared block store, with dictionary lookups only:

* :class:`IPBlockStage`, before authentication (and before routing): a
  blocked client address is refused before any credential is looked at or
  any effect is asked for. The address is the one trusted proxies vouch for
  (:func:`apishield.core.client_ip.client_address`), never a forwarding
  header a client wrote itself;
* :class:`PrincipalBlockStage`, right after authentication: the verified
  subject, client, token (by the fingerprint of its ``jti`` that the audit
  events carry) and API key id.

A block answers 403 (problem type ``blocked``); a throttle lets ``rate``
requests per ``per`` seconds through, counted in this process
(:class:`~apishield.detect.blocks.Throttles`), and answers the rest 429
(``quota-exceeded``) with ``Retry-After``. Each refusal records a ``deny``
decision whose rule is the block's id, and each throttled request that
passes an ``allow`` decision with it, so the audit event says which block
applied. The answer never says what was blocked or until when.
"""

from __future__ import annotations

import time

from apishield.audit.event import fingerprint
from apishield.core.client_ip import TrustedProxies, client_address
from apishield.core.exchange import Exchange
from apishield.core.stage import Stage, problem_reply
from apishield.detect.blocks import Block, BlockList, Throttles, retry_after
from apishield.problem import Problem
from apishield.ratelimit.problems import TooManyRequests

__all__ = ["Blocked", "IPBlockStage", "PrincipalBlockStage"]


class Blocked(Problem):
    status = 403
    slug = "blocked"
    title = "Access blocked"


class _BlockStage(Stage):
    def __init__(self, blocklist: BlockList) -> None:
        self.blocklist = blocklist
        self.throttles = Throttles()

    def enforce(self, ex: Exchange, block: Block) -> None:
        if block.mode == "block":
            ex.decide(
                self.name, "deny", f"{block.kind} blocked: {block.reason or 'no reason given'}", block.id
            )
            ex.reply = problem_reply(Blocked(detail="Access is blocked for now."), ex.request_id)
            return
        result = self.throttles.check(block)
        if result.allowed:
            ex.decide(self.name, "allow", f"{block.kind} throttled, within its rate", block.id)
            return
        wait = retry_after(result)
        ex.decide(self.name, "deny", f"{block.kind} throttled, over its rate", block.id)
        problem = TooManyRequests(
            detail="Too many requests; retry later.",
            headers=[(b"retry-after", str(wait).encode())],
            extensions={"violated-policies": [block.id]},
        )
        ex.reply = problem_reply(problem, ex.request_id)


class IPBlockStage(_BlockStage):
    """Blocks and throttles of client addresses, before authentication."""

    name = "ip_blocks"

    def __init__(self, blocklist: BlockList, trusted: TrustedProxies) -> None:
        super().__init__(blocklist)
        self.trusted = trusted

    def on_request_head(self, ex: Exchange) -> None:
        blocks = self.blocklist
        if not blocks:
            return
        block = blocks.match(ip=client_address(ex, self.trusted).ip, now=time.time())
        if block is not None:
            self.enforce(ex, block)


class PrincipalBlockStage(_BlockStage):
    """Blocks and throttles of verified callers: subject, client, token, API key."""

    name = "principal_blocks"

    def on_request_head(self, ex: Exchange) -> None:
        blocks = self.blocklist
        principal = ex.principal
        if not blocks or not principal.authenticated:
            return
        token = principal.token_id
        block = blocks.match(
            subject=principal.subject,
            client_id=principal.client_id,
            token_fp=fingerprint(token) if token is not None else None,
            api_key_id=principal.api_key_id,
            now=time.time(),
        )
        if block is not None:
            self.enforce(ex, block)
