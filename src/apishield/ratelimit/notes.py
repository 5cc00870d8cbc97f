"""What the rate-limit stages keep about one exchange, and the release hook adapters call.

The :class:`~apishield.core.exchange.Exchange` has no field for this stage's
bookkeeping, so it lives in ``Exchange.resolved`` under a private key: the
limits' key values (computed once, reused when counting the outcome), the
calls built for each phase (so a stage re-run after an effect asks for the
same effect), the results to advertise, and the concurrency slots held.

:func:`release` is the one call an adapter makes when an exchange ends,
however it ends (``finally``): it frees the slots and returns the waiters
to wake (see :mod:`.concurrency`). It is idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apishield.core.exchange import Exchange
from apishield.ratelimit.concurrency import InFlightGate, KeyedCounter
from apishield.ratelimit.gcra import LimitCall, LimitResult

if TYPE_CHECKING:
    from apishield.ratelimit.plan import CompiledLimit

__all__ = ["Notes", "notes_of", "peek", "release"]


class Notes:
    __slots__ = (
        "body",
        "calls",
        "decided",
        "gate",
        "keyed",
        "keyed_key",
        "keys",
        "outcomes",
        "refused",
        "results",
        "violated",
    )

    def __init__(self) -> None:
        self.gate: InFlightGate | None = None  # a global slot is held
        self.keyed: KeyedCounter | None = None  # a per-client slot is held, for keyed_key
        self.keyed_key = ""
        self.keys: dict[int, str | None] = {}  # limit index -> key value (None: exempt)
        self.calls: dict[str, tuple[list[CompiledLimit], list[LimitCall]]] = {}  # by phase
        self.decided: set[str] = set()
        self.results: list[tuple[CompiledLimit, LimitResult]] = []  # advertised limits' results
        self.violated: list[tuple[CompiledLimit, LimitResult]] = []  # the limits that refused (audit)
        self.body: Any = _UNSET
        self.outcomes: dict[int, bool] = {}  # limit index -> count_if on the upstream's own answer
        self.refused = False  # refused by a limit: no outcome to count (backoff counts refusals)


class _Key:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<rate-limit notes>"


_KEY: Any = _Key()
_UNSET: Any = object()


def notes_of(ex: Exchange) -> Notes:
    notes = ex.resolved.get(_KEY)
    if notes is None:
        notes = ex.resolved[_KEY] = Notes()
    return notes


def peek(ex: Exchange) -> Notes | None:
    return ex.resolved.get(_KEY)


def release(ex: Exchange) -> list[Any]:
    """Free the exchange's concurrency slots; returns the waiters handed a slot (the adapter wakes them)."""
    notes = ex.resolved.get(_KEY)
    if notes is None:
        return []
    wake: list[Any] = []
    if notes.gate is not None:
        waiter = notes.gate.leave()
        notes.gate = None
        if waiter is not None:
            wake.append(waiter)
    if notes.keyed is not None:
        notes.keyed.leave(notes.keyed_key)
        notes.keyed = None
    return wake
