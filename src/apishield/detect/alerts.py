"""Alerts: what the detectors' signals become once aggregated, stored and shown to people.

A detector emits a *signal* each time it judges something unusual, and a
busy attacker makes it emit many: one per sliding window, per batch. People
need one thing to look at per incident, so signals are aggregated into
*alerts*, keyed by ``(detector, key)``:

* a signal whose detector and key match an **open** alert last seen within
  ``dedup_window`` of the signal joins it: ``count`` grows by one,
  ``last_seen``/``first_seen`` widen, the severity is the highest seen, the
  summary is the latest, and the evidence and linked event ids are merged;
* otherwise (no open alert, only an acknowledged one, or one quiet for
  longer than the window) a new alert opens.

Merging is bounded so that an attack that lasts days costs the store a
fixed amount: numbers in the evidence keep their largest value (detectors
count over overlapping windows, so adding them would double count), lists
(sample object ids) keep at most :data:`MAX_LIST_ITEMS` distinct items,
nested objects merge member by member, anything else takes the latest
value; an evidence object that still serialises to more than
:data:`MAX_EVIDENCE_BYTES` is replaced by the latest signal's (marked
``"truncated": true``). Linked event ids are a sample of at most
:data:`MAX_EVENT_IDS`: the first half ever seen and the latest half, so the
start of an incident and its current state can both be looked up in the
audit trail.

This module is plain data and pure functions; the stores
(:mod:`.alerts_sqlite`, :mod:`.alerts_postgres`) run the same aggregation
inside a transaction, so two processes recording at once still make one
alert. The query API (:class:`AlertQuery`, :class:`AlertStore`) is the one
the command line and a web console share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import orjson

from apishield.config.detection import SEVERITY_NAMES

if TYPE_CHECKING:
    from apishield.config.audit import AuditPolicy
    from apishield.config.detection import AlertsPolicy

__all__ = [
    "AGGREGATE_COLUMNS",
    "COLUMNS",
    "MAX_EVENT_IDS",
    "MAX_EVIDENCE_BYTES",
    "MAX_LIST_ITEMS",
    "Alert",
    "AlertQuery",
    "AlertStatus",
    "AlertStore",
    "Recorded",
    "SignalFacts",
    "StoreError",
    "aggregate_values",
    "alert_from_row",
    "alert_row",
    "detection_finding",
    "merge",
    "merge_evidence",
    "new_alert",
    "open_alert_store",
    "sample_ids",
]

MAX_LIST_ITEMS = 20
MAX_EVENT_IDS = 100
MAX_EVIDENCE_BYTES = 16_384
_MAX_DEPTH = 4
_MAX_TEXT = 1024

AlertStatus = Literal["open", "acknowledged"]


class StoreError(Exception):
    """The alert store cannot be opened or reached."""


class SignalFacts(Protocol):
    """What an alert needs of a detector's signal (:class:`apishield.detect.signal.Signal`)."""

    @property
    def detector(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def severity(self) -> int: ...
    @property
    def time_ms(self) -> int: ...
    @property
    def summary(self) -> str: ...
    @property
    def evidence(self) -> dict[str, Any]: ...
    @property
    def event_ids(self) -> tuple[str, ...]: ...
    @property
    def response(self) -> str | None: ...
    @property
    def scope(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Alert:
    """One incident: the aggregate of a detector's signals about one key. Times are epoch milliseconds."""

    id: str
    detector: str
    key: str  # "sub:<subject>", "ip:<address>", "token:<fingerprint>", ...
    severity: int  # OCSF severity_id, 1 informational ... 6 fatal
    status: AlertStatus
    first_seen: int
    last_seen: int
    count: int  # signals aggregated
    summary: str
    evidence: dict[str, Any]
    event_ids: tuple[str, ...]  # a sample of the audit events (metadata.uid) behind it
    scope: str | None = None
    # what was done about it: "block <id>", "throttle <id>", "dry-run: would block ...", "none: ..."
    response: str | None = None
    acked_by: str | None = None
    acked_at: int | None = None
    note: str | None = None

    @property
    def severity_name(self) -> str:
        return SEVERITY_NAMES.get(self.severity, str(self.severity))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "detector": self.detector,
            "key": self.key,
            "severity": self.severity,
            "severity_name": self.severity_name,
            "status": self.status,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "count": self.count,
            "summary": self.summary,
            "evidence": self.evidence,
            "event_ids": list(self.event_ids),
            "scope": self.scope,
            "response": self.response,
            "acked_by": self.acked_by,
            "acked_at": self.acked_at,
            "note": self.note,
        }


class Recorded(NamedTuple):
    """The outcome of recording a signal: the alert as stored, and what changed."""

    alert: Alert
    created: bool
    escalated: bool  # an existing alert's severity went up


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """Filters of :meth:`AlertStore.query`; newest (by ``last_seen``) first."""

    status: AlertStatus | None = None
    detector: str | None = None
    key: str | None = None
    min_severity: int | None = None
    since: int | None = None  # last_seen at or after, epoch ms
    limit: int = 100


class AlertStore(Protocol):
    """Where alerts live (SQLite or PostgreSQL); every method is safe to call from several processes."""

    async def record(self, signal: SignalFacts, window_ms: int) -> Recorded: ...
    async def query(self, query: AlertQuery) -> list[Alert]: ...
    async def get(self, alert_id: str) -> Alert | None: ...
    async def ack(self, alert_id: str, by: str, note: str | None, now_ms: int) -> Alert | None: ...
    async def set_response(self, alert_id: str, response: str) -> None: ...
    async def close(self) -> None: ...


# -- aggregation -------------------------------------------------------------------------------------


def new_alert_id() -> str:
    return "al-" + os.urandom(5).hex()


def _text(value: str) -> str:
    return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "…"


def new_alert(signal: SignalFacts, alert_id: str | None = None) -> Alert:
    """The alert a signal opens."""
    return Alert(
        id=alert_id or new_alert_id(),
        detector=signal.detector,
        key=signal.key,  # not cut: it is what the next signal is matched on
        severity=signal.severity,
        status="open",
        first_seen=signal.time_ms,
        last_seen=signal.time_ms,
        count=1,
        summary=_text(signal.summary),
        evidence=merge_evidence({}, dict(signal.evidence)),
        event_ids=sample_ids((), signal.event_ids),
        scope=signal.scope,
    )


def merge(alert: Alert, signal: SignalFacts) -> Alert:
    """``alert`` with ``signal`` aggregated into it (see the module documentation)."""
    return replace(
        alert,
        severity=max(alert.severity, signal.severity),
        first_seen=min(alert.first_seen, signal.time_ms),
        last_seen=max(alert.last_seen, signal.time_ms),
        count=alert.count + 1,
        summary=_text(signal.summary) if signal.time_ms >= alert.last_seen else alert.summary,
        evidence=merge_evidence(alert.evidence, dict(signal.evidence)),
        event_ids=sample_ids(alert.event_ids, signal.event_ids),
        scope=signal.scope or alert.scope,
    )


def sample_ids(
    old: tuple[str, ...], new: tuple[str, ...] | list[str], limit: int = MAX_EVENT_IDS
) -> tuple[str, ...]:
    """Distinct ids of ``old`` then ``new``; past ``limit``, the first half and the latest half."""
    seen = set(old)
    combined = list(old)
    for item in new:
        if item not in seen:
            seen.add(item)
            combined.append(item)
    if len(combined) <= limit:
        return tuple(combined)
    head = limit // 2
    return tuple(combined[:head] + combined[len(combined) - (limit - head) :])


def merge_evidence(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The bounded merge of two evidence objects (see the module documentation)."""
    merged = _merge_object(old, new, 0)
    if len(orjson.dumps(merged, default=str)) <= MAX_EVIDENCE_BYTES:
        return merged
    latest = _merge_object({}, new, 0)
    latest["truncated"] = True
    if len(orjson.dumps(latest, default=str)) <= MAX_EVIDENCE_BYTES:
        return latest
    return {"truncated": True}


def _merge_object(old: dict[str, Any], new: dict[str, Any], depth: int) -> dict[str, Any]:
    out = dict(old)
    for name, value in new.items():
        name = str(name)
        out[name] = _merge_value(out[name], value, depth + 1) if name in out else _bound(value, depth + 1)
    return out


def _merge_value(old: Any, new: Any, depth: int) -> Any:
    if _is_number(old) and _is_number(new):
        return max(old, new)
    if isinstance(old, list) and isinstance(new, list):
        return _union(old, [_bound(v, depth + 1) for v in new])
    if isinstance(old, dict) and isinstance(new, dict) and depth < _MAX_DEPTH:
        return _merge_object(old, new, depth)
    return _bound(new, depth)


def _bound(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return _union([], [_bound(v, depth + 1) for v in value])
    if isinstance(value, dict):
        if depth >= _MAX_DEPTH:
            return _text(orjson.dumps(value, default=str).decode())
        return _merge_object({}, value, depth)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _text(str(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _union(old: list[Any], new: list[Any]) -> list[Any]:
    out = list(old[:MAX_LIST_ITEMS])
    seen = {orjson.dumps(v, default=str) for v in out}
    for item in new:
        if len(out) >= MAX_LIST_ITEMS:
            break
        mark = orjson.dumps(item, default=str)
        if mark not in seen:
            seen.add(mark)
            out.append(item)
    return out


# -- storage rows (shared by the SQL stores) -----------------------------------------------------------

COLUMNS = (
    "id, detector, key, severity, status, first_seen, last_seen, count, summary, evidence, event_ids, "
    "scope, response, acked_by, acked_at, note"
)


# what aggregating a signal changes (then the id, for the WHERE)
AGGREGATE_COLUMNS = (
    "severity",
    "first_seen",
    "last_seen",
    "count",
    "summary",
    "evidence",
    "event_ids",
    "scope",
)


def aggregate_values(alert: Alert) -> tuple[Any, ...]:
    """The values of :data:`AGGREGATE_COLUMNS`, then the alert's id."""
    row = alert_row(alert)
    return (row[3], *row[5:12], alert.id)


def alert_row(alert: Alert) -> tuple[Any, ...]:
    """The values of :data:`COLUMNS` for ``alert`` (evidence and event ids as JSON text)."""
    return (
        alert.id,
        alert.detector,
        alert.key,
        alert.severity,
        alert.status,
        alert.first_seen,
        alert.last_seen,
        alert.count,
        alert.summary,
        orjson.dumps(alert.evidence, default=str).decode(),
        orjson.dumps(list(alert.event_ids)).decode(),
        alert.scope,
        alert.response,
        alert.acked_by,
        alert.acked_at,
        alert.note,
    )


def alert_from_row(row: tuple[Any, ...] | Any) -> Alert:
    (ident, detector, key, severity, status, first, last, count, summary, evidence, event_ids) = tuple(row)[
        :11
    ]
    scope, response, acked_by, acked_at, note = tuple(row)[11:16]
    return Alert(
        id=ident,
        detector=detector,
        key=key,
        severity=int(severity),
        status=status,
        first_seen=int(first),
        last_seen=int(last),
        count=int(count),
        summary=summary,
        evidence=orjson.loads(evidence) if evidence else {},
        event_ids=tuple(orjson.loads(event_ids)) if event_ids else (),
        scope=scope,
        response=response,
        acked_by=acked_by,
        acked_at=int(acked_at) if acked_at is not None else None,
        note=note,
    )


def detection_finding(alert: Alert, created: bool, instance: str) -> dict[str, Any]:
    """The alert as an OCSF 1.8.0 Detection Finding (class 2004), for the audit trail."""
    from apishield.audit.event import _PRODUCT, OCSF_VERSION

    activity = 1 if created else 2  # Create | Update
    return {
        "class_uid": 2004,
        "category_uid": 2,
        "activity_id": activity,
        "type_uid": 200400 + activity,
        "severity_id": alert.severity,
        "time": alert.last_seen,
        "status_id": 1 if alert.status == "open" else 2,  # New | In Progress
        "is_alert": True,
        "metadata": {
            "version": OCSF_VERSION,
            "product": _PRODUCT,
            "uid": os.urandom(16).hex(),
            "log_name": "detection_finding",
        },
        "finding_info": {
            "uid": alert.id,
            "title": alert.summary,
            "types": [alert.detector],
            "analytic": {"name": alert.detector, "type_id": 1},  # Rule
            "first_seen_time": alert.first_seen,
            "last_seen_time": alert.last_seen,
            "related_events": [{"uid": uid} for uid in alert.event_ids],
        },
        "unmapped": {
            "instance": instance,
            "key": alert.key,
            "scope": alert.scope,
            "count": alert.count,
            "evidence": alert.evidence,
            "response": alert.response,
        },
    }


def default_alerts_path(audit: AuditPolicy | None) -> str:
    """Beside the audit database when there is one, else in the policy's folder."""
    if audit is not None and audit.sink == "sqlite":
        return str(Path(audit.path).parent / "apishield-alerts.db")
    return "apishield-alerts.db"


def open_alert_store(policy: AlertsPolicy, base_dir: Path, audit: AuditPolicy | None = None) -> AlertStore:
    """The store ``detection.alerts`` names (relative SQLite paths: the policy's folder)."""
    if policy.store == "postgresql":
        from apishield.detect.alerts_postgres import PostgresAlertStore

        assert policy.dsn is not None  # checked by the policy model
        return PostgresAlertStore(policy.dsn)
    from apishield.detect.alerts_sqlite import SQLiteAlertStore

    path = Path(policy.path or default_alerts_path(audit)).expanduser()
    return SQLiteAlertStore(path if path.is_absolute() else base_dir / path)
