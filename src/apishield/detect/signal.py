"""What a detector says: a :class:`Signal` about one key.

A signal is not an alert. Detectors emit signals; the alerting side
(:mod:`apishield.detect` alerts and blocks) aggregates them per key into
alerts, stores and delivers them, and enforces the ``response`` a signal
asks for. The contract between the two:

* ``detector``: one of :data:`DETECTORS`;
* ``key``: the principal it is about, ``<kind>:<value>`` with ``kind`` one
  of :data:`KEY_KINDS`: ``sub`` (a token's subject), ``client`` (an OAuth
  client, also the subject of a ``client_credentials`` token), ``token`` (the
  fingerprint of a token's ``jti`` as in audit events), ``api_key`` (an API
  key's id), ``ip`` (a client address), ``account`` (a username tried at
  sign-in) and ``service`` (a population-level signal about a whole service,
  e.g. low-and-slow credential stuffing spread over many addresses: there is
  no single principal to block, so such a signal never carries a response);
* ``severity``: the OCSF ``severity_id`` 1 (informational) to 5 (critical);
* ``time_ms``: the event time of the event that tipped it (epoch ms);
* ``summary``: one line for an investigator;
* ``evidence``: JSON-serialisable counts, rates, baselines and bounded samples;
* ``event_ids``: ``metadata.uid`` of linked events, a bounded sample, most
  recent last;
* ``response``: ``block``, ``throttle`` or ``None`` (alert only), from the
  detector's policy; the duration is that policy's ``block_duration``
  (:meth:`apishield.config.detectors.DetectorsPolicy.settings`);
* ``scope``: the route template or operation it concerns, if any.

A detector signals one (detector, key) pair at most once per its
``resignal_after`` while the condition holds, and again sooner only when the
severity rises; ``evidence["repeat"]`` counts the signals of the episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DETECTORS", "KEY_KINDS", "Signal"]

DETECTORS = (
    "enumeration",
    "credential_stuffing",
    "token_sharing",
    "scraping",
    "volume",
    "shadow_api",
    "rate_limit_pressure",
)
KEY_KINDS = ("sub", "client", "token", "api_key", "ip", "account", "service")


@dataclass(frozen=True, slots=True)
class Signal:
    detector: str
    key: str
    severity: int
    time_ms: int
    summary: str
    evidence: dict[str, Any]
    event_ids: tuple[str, ...]
    response: str | None = None
    scope: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``event_ids`` as a list)."""
        return {
            "detector": self.detector,
            "key": self.key,
            "severity": self.severity,
            "time_ms": self.time_ms,
            "summary": self.summary,
            "evidence": self.evidence,
            "event_ids": list(self.event_ids),
            "response": self.response,
            "scope": self.scope,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signal:
        return cls(
            detector=str(data["detector"]),
            key=str(data["key"]),
            severity=int(data["severity"]),
            time_ms=int(data["time_ms"]),
            summary=str(data["summary"]),
            evidence=dict(data.get("evidence") or {}),
            event_ids=tuple(str(x) for x in data.get("event_ids") or ()),
            response=data.get("response"),
            scope=data.get("scope"),
        )

    @property
    def kind(self) -> str:
        """The key's kind (``sub``, ``ip``, ...)."""
        return self.key.partition(":")[0]
