"""The engine's table of principals: one record per key, holding every per-principal detector's state.

Four detectors keep state per principal (volume per operation, scraping,
enumeration per route, shadow-API probing, rate-limit pressure). Keeping it
in one :class:`PrincipalState` per key costs one dict lookup per event
instead of one per detector, gives one bound and one idle timeout for all
of it (:class:`~apishield.detect.baseline.KeyedStates`: forgetting a
principal forgets its state in every detector at once), and one ring of the
principal's most recent event ids for the signals' ``event_ids``.

Detector state slots are ``None`` until the detector needs them: most
principals are never refused an object, never hit an undocumented path and
never meet a rate limit, so those detectors cost them nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apishield.detect.detector import SAMPLE_IDS, ring_values
from apishield.detect.facts import Facts, peer_of

if TYPE_CHECKING:
    from apishield.detect.enumeration import RouteState
    from apishield.detect.pressure import PressureState
    from apishield.detect.scraping import ScrapingState
    from apishield.detect.shadow import ShadowState
    from apishield.detect.tokens import TokenState
    from apishield.detect.volume import VolumeState

__all__ = ["PrincipalState"]


class PrincipalState:
    __slots__ = (
        "count",
        "ids",
        "ops",
        "peer",
        "pressure",
        "routes",
        "scraping",
        "seen",
        "shadow",
        "token",
        "token_hash",
        "token_state",
    )

    def __init__(self, time: int) -> None:
        self.seen = time
        # recent event ids: a ring of SAMPLE_IDS slots, written `count` times by the engine (the events
        # of the principal once busy or refused: those a signal about it may link)
        self.ids: list[str] = [""] * SAMPLE_IDS
        self.count = 0
        self.ops: dict[str, VolumeState] = {}
        self.peer: str | None = None  # the peer group, once a detector needed it
        self.scraping: ScrapingState | None = None
        self.routes: dict[str, RouteState] | None = None
        self.shadow: ShadowState | None = None
        self.pressure: PressureState | None = None
        # the token (or API key) of the principal's last request, and its state in the token detector
        self.token: str | None = None
        self.token_hash = 0  # hash(token): compared instead of the string, which is cold by now
        self.token_state: TokenState | None = None

    def recent(self) -> list[str]:
        """The principal's most recent event ids, oldest first."""
        return ring_values(self.ids, self.count)

    def peer_group(self, f: Facts) -> str:
        """The principal's peer group (:func:`apishield.detect.facts.peer_of`), computed once."""
        peer = self.peer
        if peer is None:
            peer = self.peer = peer_of(f)
        return peer
