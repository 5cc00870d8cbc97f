"""Effects: the I/O a stage needs, asked of the adapter instead of performed.

The decision core never opens a socket. When a stage needs something only
I/O can provide (a JWKS refetch, a token introspection, an API key record,
a shared-registry lookup), it sets ``exchange.pending`` to an effect and
returns. The adapter performs it, stores the result in
``exchange.resolved[effect]`` and resumes the pipeline, which runs the same
stage again; the stage now finds its answer. Effects are frozen dataclasses,
so equal requests are one key (and one fetch, when the runner coalesces).

*After-effects* are fire-and-forget writes decided by the core (record an
issued token) that the adapter performs once the reply is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apishield.ratelimit.gcra import LimitCall

__all__ = [
    "AwaitCapacity",
    "CheckIssued",
    "CheckProofReplay",
    "CheckRateLimits",
    "Effect",
    "FetchResource",
    "Introspect",
    "LookupAPIKey",
    "RecordIssued",
    "RecordRateLimits",
    "RefreshKeys",
]


@dataclass(frozen=True, slots=True)
class RefreshKeys:
    """Fetch the JWKS of ``issuer`` now (unknown ``kid``, or no usable keys)."""

    issuer: str


@dataclass(frozen=True, slots=True)
class Introspect:
    """Ask introspection endpoint number ``provider`` about ``token`` (RFC 7662)."""

    provider: int
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class LookupAPIKey:
    key_id: str


@dataclass(frozen=True, slots=True)
class CheckIssued:
    digest: str


@dataclass(frozen=True, slots=True)
class CheckProofReplay:
    """Remember a DPoP proof's ``jti`` for ``ttl`` seconds in the shared store (RFC 9449 §11.1).

    The result is True when this is the first use, False when it was seen before, and None
    when the store is unavailable (the stage refuses the proof).
    """

    key: str
    ttl: float


@dataclass(frozen=True, slots=True)
class RecordIssued:
    digest: str
    ttl: float


@dataclass(frozen=True, slots=True)
class FetchResource:
    """GET ``target`` from the upstream with the gateway's own identity (write pre-checks).

    The result is ``(status, parsed JSON body or None)``.
    """

    target: bytes
    subject: str


@dataclass(frozen=True, slots=True)
class CheckRateLimits:
    """Decide one request's limit calls in the shared store (one script call, batched with others).

    The result is a list of :class:`~apishield.ratelimit.gcra.LimitResult`, one per call, or
    None when the store is unavailable (the stage applies ``on_store_error``).
    """

    calls: tuple[LimitCall, ...]


@dataclass(frozen=True, slots=True)
class AwaitCapacity:
    """Wait up to ``timeout`` seconds for a slot of the in-flight gate; True if one was handed over."""

    timeout: float


@dataclass(frozen=True, slots=True)
class RecordRateLimits:
    """After-effect: charge outcome limits (``count_if``) in the shared store; nothing to wait for."""

    calls: tuple[LimitCall, ...]


Effect = (
    RefreshKeys
    | Introspect
    | LookupAPIKey
    | CheckIssued
    | CheckProofReplay
    | FetchResource
    | CheckRateLimits
    | AwaitCapacity
)
