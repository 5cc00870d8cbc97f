"""``apishield simulate``: labelled traffic of the reference scenario, and the detectors' figures on it.

:func:`simulate` generates simulated days of the demo's API in use (mobile
users, support agents, partners' batch jobs: :mod:`.traffic`) with attack
scenarios mixed in (:mod:`.scenarios`), builds the audit events the gateway
and the issuer would write (:mod:`.events`), feeds them to a
:class:`~apishield.detect.engine.DetectionEngine` in time order and scores
its signals (:mod:`.run`). Seeded and deterministic: the same seed gives the
same events and the same signals.
"""

from apishield.detect.simulate.run import SimulationReport, events, simulate

__all__ = ["SimulationReport", "events", "simulate"]
