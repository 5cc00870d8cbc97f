"""What each console page shows, read from the shared query layers (audit events, alerts, blocks).

Every function returns plain data for a template; nothing here writes HTML
or SQL. Audit events come from :mod:`apishield.audit.query` (the layer
``apishield events`` uses), alerts from the detection service's
:class:`~apishield.detect.alerts.AlertStore`, blocks from its
:class:`~apishield.detect.blocks.BlockStore` (the store the gateways
enforce), effective policy from :func:`apishield.explain.explain`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from apishield.audit.query import HOUR_MS, Cursor, EventQuery, search, stats
from apishield.audit.stores import EventStore, StoredEvent
from apishield.config.detection import parse_severity
from apishield.console.sources import EventSource, Principal, find_event, scan
from apishield.console.timeline import MINUTE_MS, counts, counts_of, iso, parse_when, pick_range
from apishield.detect.alerts import Alert, AlertQuery
from apishield.detect.blocks import Block

if TYPE_CHECKING:
    from apishield.detect.service import DetectionService
    from apishield.runtime import Runtime

__all__ = [
    "DURATIONS",
    "EVENT_FILTERS",
    "Views",
    "event_row",
    "principal_of",
]

# the events explorer's filters: (name in the page, label), as `apishield events` names them
EVENT_FILTERS: tuple[tuple[str, str], ...] = (
    ("since", "Since (30m, 1h, 7d or an ISO time)"),
    ("until", "Until"),
    ("subject", "Subject (user)"),
    ("client", "Client id"),
    ("ip", "Client address"),
    ("operation", "Operation"),
    ("decision", "Decision"),
    ("status", "Status (403 or 4xx)"),
    ("object", "Object id"),
    ("instance", "Instance"),
)
PAGE_SIZES = (25, 50, 100, 200)
DURATIONS: tuple[tuple[str, str], ...] = (
    ("15m", "15 minutes"),
    ("1h", "1 hour"),
    ("6h", "6 hours"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
)
_STEPS = (
    10_000,
    30_000,
    MINUTE_MS,
    2 * MINUTE_MS,
    5 * MINUTE_MS,
    10 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    2 * HOUR_MS,
    6 * HOUR_MS,
    24 * HOUR_MS,
)
_DENIED_SAMPLE = 2_000
API_ACTIVITY = 6003  # OCSF API Activity: one per gateway exchange (the trail also holds sign-ins, findings)
_OBJECT_SAMPLE = 1_000


def _agent(event: dict[str, Any]) -> str:
    request = event.get("http_request")
    agent = request.get("user_agent") if isinstance(request, dict) else None
    return agent if isinstance(agent, str) else ""


def principal_of(e: StoredEvent) -> str | None:
    """The detector key naming who made a request (as :mod:`apishield.detect.facts` names it)."""
    if e.subject and e.subject != e.client_id:
        return f"sub:{e.subject}"
    if e.api_key_id:
        return f"api_key:{e.api_key_id}"
    if e.client_id:
        return f"client:{e.client_id}"
    if e.src_ip and e.src_ip != "unknown":
        return f"ip:{e.src_ip}"
    return None


def event_row(e: StoredEvent) -> dict[str, Any]:
    """One event as a table row (every value is text for the template to escape)."""
    event = e.event()
    return {
        "uid": e.uid,
        "time_ms": e.time_ms,
        "time": iso(e.time_ms),
        "decision": e.action or "-",
        "status": e.status,
        "method": e.method or "",
        "operation": e.operation or e.route or ("authentication" if e.class_uid == 3002 else "-"),
        "documented": bool(e.operation and e.operation != "undocumented"),
        "subject": e.subject,
        "client": e.client_id,
        "ip": e.src_ip,
        "detail": e.status_detail or "",
        "latency": f"{e.latency_ms:.1f}" if e.latency_ms is not None else "",
        "objects": list(e.object_ids),
        "agent": _agent(event),
        "principal": principal_of(e),
    }


def _alert_row(a: Alert) -> dict[str, Any]:
    row = a.as_dict()
    row["first"] = iso(a.first_seen)
    row["last"] = iso(a.last_seen)
    row["acked"] = iso(a.acked_at) if a.acked_at else None
    return row


def _block_row(b: Block, now: float) -> dict[str, Any]:
    row = b.as_dict()
    row["target"] = b.target
    row["describe"] = b.describe()
    row["until_text"] = iso(b.until * 1000)
    row["left"] = _left(b.until - now)
    return row


def _left(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} d left"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} h left"
    if seconds >= 60:
        return f"{int(seconds // 60)} min left"
    return f"{max(0, int(seconds))} s left"


def _step(span_ms: int, buckets: int = 30) -> int:
    wanted = max(1, span_ms // buckets)
    return next((s for s in _STEPS if s >= wanted), _STEPS[-1])


@dataclass
class Views:
    events: EventSource
    detection: DetectionService | None
    runtime: Runtime

    # -- overview ----------------------------------------------------------------------------------------

    async def overview(self, range_name: str | None) -> dict[str, Any]:
        chosen = pick_range(range_name)
        now_ms = int(time.time() * 1000)
        start = now_ms - chosen.span_ms
        out: dict[str, Any] = {"range": chosen.name, "problem": None}
        store = await self.events.store()
        if store is None:
            out["problem"] = self.events.problem
        else:
            window = EventQuery(since_ms=start, class_uid=API_ACTIVITY)
            totals = await stats(store, window, ("operation", "status"), top=100)
            out["totals"] = totals.total
            api = EventQuery(class_uid=API_ACTIVITY)
            out["requests"] = (await counts(store, api, start, now_ms, chosen.step_ms)).as_dict()
            operations = sorted(totals.by["operation"], key=lambda b: (-b.count, str(b.key)))[:10]
            out["operations"] = operations
            out["operations_peak"] = max((b.count for b in operations), default=0)
            out["reasons"], out["reasons_sampled"] = await self._reasons(store, window, totals.total.denied)
            out["statuses"] = [b for b in totals.by["status"] if b.key is not None and b.key >= 400]
        alerts = await self._alerts(AlertQuery(since=start, limit=500))
        out["alerts"] = [_alert_row(a) for a in alerts[:10]]
        out["alert_count"] = len(alerts)
        out["open_count"] = sum(a.status == "open" for a in alerts)
        out["alert_series"] = self._alert_series(alerts, start, now_ms, chosen.step_ms)
        return out

    async def _reasons(self, store: EventStore, window: EventQuery, denied: int) -> tuple[list[Any], bool]:
        """Denials by reason (the problem type) in the latest denials; the flag: more exist."""
        query = EventQuery(since_ms=window.since_ms, decision="denied", class_uid=window.class_uid)
        page = await search(store, query, _DENIED_SAMPLE)
        reasons = Counter(e.status_detail or f"status {e.status}" for e in page.events)
        return reasons.most_common(12), denied > len(page.events)

    @staticmethod
    def _alert_series(alerts: list[Alert], start: int, end: int, step: int) -> dict[str, Any]:
        first = start - start % step
        n = max(1, -(-(end - first) // step))
        opened = [0] * n
        severe = [0] * n
        for a in alerts:
            i = (a.first_seen - first) // step
            if 0 <= i < n:
                opened[i] += 1
                severe[i] += a.severity >= 4
        return {"times": [(first + i * step) // 1000 for i in range(n)], "alerts": opened, "high": severe}

    async def _alerts(self, query: AlertQuery) -> list[Alert]:
        if self.detection is None:
            return []
        return await self.detection.alerts.query(query)

    # -- alerts ------------------------------------------------------------------------------------------

    async def alerts(self, params: dict[str, str]) -> dict[str, Any]:
        errors: list[str] = []
        status = params.get("status", "open")
        if status not in ("open", "acknowledged", "all"):
            errors.append("status: open, acknowledged or all")
            status = "open"
        severity = None
        if params.get("severity"):
            text = params["severity"]
            try:
                severity = parse_severity(int(text) if text.isdigit() else text)
            except ValueError as exc:
                errors.append(f"severity: {exc}")
        since = None
        try:
            since = parse_when(params.get("since"))
        except ValueError as exc:
            errors.append(f"since: {exc}")
        query = AlertQuery(
            status=None if status == "all" else status,  # type: ignore[arg-type]  # checked above
            detector=params.get("detector") or None,
            key=params.get("key") or None,
            min_severity=severity,
            since=since,
            limit=200,
        )
        found = await self._alerts(query)
        detectors = []
        if self.detection is not None:
            policy = self.detection.policy.detectors
            detectors = [n for n, v in policy if hasattr(v, "enabled")]
        return {
            "filters": {
                "status": status,
                "detector": params.get("detector", ""),
                "severity": params.get("severity", ""),
                "since": params.get("since", ""),
                "key": params.get("key", ""),
            },
            "errors": errors,
            "alerts": [_alert_row(a) for a in found],
            "detectors": detectors,
            "now_ms": int(time.time() * 1000),
        }

    async def new_alerts(self, since_ms: int) -> list[dict[str, Any]]:
        """Alerts seen at or after ``since_ms`` (what the pages poll for), newest first."""
        found = await self._alerts(AlertQuery(since=since_ms, limit=50))
        fields = ("id", "detector", "key", "severity", "severity_name", "status", "summary", "count")
        return [
            {**{f: row[f] for f in fields}, "first_seen": a.first_seen, "last_seen": a.last_seen}
            for a, row in ((a, _alert_row(a)) for a in found)
        ]

    async def alert(self, alert_id: str) -> dict[str, Any] | None:
        if self.detection is None:
            return None
        alert = await self.detection.alerts.get(alert_id)
        if alert is None:
            return None
        out: dict[str, Any] = {
            "alert": _alert_row(alert),
            "evidence": orjson.dumps(alert.evidence, option=orjson.OPT_INDENT_2, default=str).decode(),
            "problem": None,
            "linked": [],
            "missing": 0,
        }
        try:
            principal: Principal | None = Principal.parse(alert.key)
        except ValueError:
            principal = None
        out["principal"] = principal
        out["target"] = principal.block_target() if principal is not None else None
        out["blocks"] = await self._blocks_of(out["target"])
        pad = max(5 * MINUTE_MS, (alert.last_seen - alert.first_seen) // 4)
        start, end = alert.first_seen - pad, alert.last_seen + pad
        step = _step(end - start)
        out["marks"] = [alert.first_seen // 1000, alert.last_seen // 1000]
        out["around"] = {"since": iso(start).replace(" ", "T"), "until": iso(end).replace(" ", "T")}
        store = await self.events.store()
        if store is None:
            out["problem"] = self.events.problem
            return out
        wanted = set(alert.event_ids)
        window = EventQuery(since_ms=start - HOUR_MS, until_ms=end + 1)
        if principal is not None and principal.filterable:
            out["timeline"] = (await counts(store, principal.query(), start, end, step)).as_dict()
            linked, _ = await scan(store, principal.query(window), lambda e: e.uid in wanted)
        else:
            test = principal.test if principal is not None else (lambda e: False)
            around, _ = await scan(store, EventQuery(since_ms=start, until_ms=end + 1), test)
            out["timeline"] = counts_of(around, start, end, step).as_dict()
            linked, _ = await scan(store, window, lambda e: e.uid in wanted)
        linked.sort(key=lambda e: (e.time_ms, e.uid))
        out["linked"] = [event_row(e) for e in linked]
        out["missing"] = len(wanted) - len(linked)
        return out

    async def _blocks_of(self, target: tuple[str, str] | None) -> list[dict[str, Any]]:
        if self.detection is None:
            return []
        now = time.time()
        blocks = await self.detection.blocks.list()
        return [_block_row(b, now) for b in blocks if target is None or (b.kind, b.value) == target]

    async def blocks(self) -> list[dict[str, Any]]:
        return await self._blocks_of(None)

    # -- events ------------------------------------------------------------------------------------------

    @staticmethod
    def event_query(params: dict[str, str]) -> tuple[EventQuery, list[str]]:
        errors: list[str] = []
        now = time.time()
        times: dict[str, int | None] = {}
        for name in ("since", "until"):
            try:
                times[name] = parse_when(params.get(name), now)
            except ValueError as exc:
                errors.append(f"{name}: {exc}")
                times[name] = None
        decision = params.get("decision") or None
        if decision not in (None, "allowed", "denied"):
            errors.append("decision: allowed or denied")
            decision = None
        status = params.get("status") or None
        try:
            query = EventQuery(
                since_ms=times["since"],
                until_ms=times["until"],
                subject=params.get("subject") or None,
                client_id=params.get("client") or None,
                src_ip=params.get("ip") or None,
                operation=params.get("operation") or None,
                decision=decision,  # type: ignore[arg-type]  # checked above
                status=status,
                object_id=params.get("object") or None,
                instance=params.get("instance") or None,
            )
        except ValueError as exc:
            errors.append(f"status: {exc}")
            query = EventQuery(since_ms=times["since"], until_ms=times["until"])
        return query, errors

    async def events_page(self, params: dict[str, str]) -> dict[str, Any]:
        query, errors = self.event_query(params)
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 50
        limit = limit if limit in PAGE_SIZES else 50
        before = None
        if params.get("before"):
            try:
                before = Cursor.parse(params["before"])
            except ValueError as exc:
                errors.append(f"page: {exc}")
        filters = {name: params.get(name, "") for name, _ in EVENT_FILTERS}
        out: dict[str, Any] = {
            "filters": filters,
            "limit": limit,
            "sizes": PAGE_SIZES,
            "errors": errors,
            "rows": [],
            "next": None,
            "problem": None,
            "paged": before is not None,
        }
        store = await self.events.store()
        if store is None:
            out["problem"] = self.events.problem
            return out
        page = await search(store, query, limit, before)
        out["rows"] = [event_row(e) for e in page.events]
        out["next"] = str(page.next) if page.next is not None else None
        return out

    async def event(self, uid: str, time_ms: int | None) -> dict[str, Any] | None:
        store = await self.events.store()
        if store is None:
            return {"problem": self.events.problem}
        found = await find_event(store, uid, time_ms)
        if found is None:
            return None
        value = found.event()
        return {
            "problem": None,
            "row": event_row(found),
            "json": orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode(),
            "decisions": (value.get("unmapped") or {}).get("decisions") or [],
            "chain": {"instance": found.instance, "seq": found.seq, "hash": found.hash},
        }

    # -- principals --------------------------------------------------------------------------------------

    async def principal(self, key: str, range_name: str | None) -> dict[str, Any]:
        principal = Principal.parse(key)
        chosen = pick_range(range_name)
        now_ms = int(time.time() * 1000)
        start = now_ms - chosen.span_ms
        target = principal.block_target()
        out: dict[str, Any] = {
            "principal": principal,
            "range": chosen.name,
            "target": target,
            "blocks": await self._blocks_of(target) if target is not None else [],
            "alerts": [_alert_row(a) for a in await self._alerts(AlertQuery(key=principal.key, limit=50))],
            "problem": None,
            "sampled": False,
        }
        store = await self.events.store()
        if store is None:
            out["problem"] = self.events.problem
            return out
        window = principal.query(EventQuery(since_ms=start))
        if principal.filterable:
            out["activity"] = (
                await counts(store, principal.query(), start, now_ms, chosen.step_ms)
            ).as_dict()
            found = await stats(store, window, ("operation",), top=50)
            out["total"] = found.total
            out["operations"] = sorted(found.by["operation"], key=lambda b: (-b.count, str(b.key)))
            recent, _ = await scan(store, window, lambda e: True, _OBJECT_SAMPLE)
            refused = await search(store, principal.query(EventQuery(since_ms=start, status="4xx")), 25)
            denials = refused.events
            out["sampled"] = found.total.count > len(recent)
        else:
            recent, out["sampled"] = await scan(store, window, principal.test)
            out["activity"] = counts_of(recent, start, now_ms, chosen.step_ms).as_dict()
            ops: dict[str, list[int]] = {}
            for e in recent:
                entry = ops.setdefault(e.operation or "-", [0, 0, 0])
                entry[0] += 1
                entry[1] += e.action in ("denied", "failure")
                entry[2] += e.status is not None and e.status >= 500
            out["total"] = None
            out["operations"] = [
                {"key": k, "count": v[0], "denied": v[1], "errors": v[2]}
                for k, v in sorted(ops.items(), key=lambda kv: -kv[1][0])
            ]
            denials = [e for e in recent if _refused(e)][:25]
        out["objects"] = _objects(recent)
        out["denials"] = [event_row(e) for e in denials]
        out["limits"] = _limits(recent)
        out["recent"] = [event_row(e) for e in recent[:10]]
        return out

    # -- policy ------------------------------------------------------------------------------------------

    def policy(self, operation: str | None) -> dict[str, Any]:
        from apishield.explain import explain, render_text

        operations = sorted(self.runtime.api.operations)
        selected = operation if operation in self.runtime.api.operations else None
        data = explain(self.runtime, selected)
        sections = []
        for op_id, entry in data.items():
            sections.append(
                {
                    "id": op_id,
                    "method": entry.get("method", ""),
                    "path": entry.get("path", ""),
                    "text": render_text({op_id: entry}).rstrip(),
                }
            )
        return {"operations": operations, "selected": selected, "sections": sections}


def _objects(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """Object ids the principal touched, with how often and how often refused, the most touched first."""
    touched: dict[tuple[str, str], list[int]] = {}
    for e in events:
        for oid in e.object_ids:
            entry = touched.setdefault((e.route or e.operation or "-", oid), [0, 0])
            entry[0] += 1
            entry[1] += _refused(e)
    ordered = sorted(touched.items(), key=lambda kv: (-kv[1][0], kv[0]))[:30]
    return [{"route": r, "id": oid, "count": c, "denied": d} for (r, oid), (c, d) in ordered]


def _refused(e: StoredEvent) -> bool:
    """Denied by the gateway, or answered 4xx (an object the API says does not exist, too)."""
    return e.action in ("denied", "failure") or (e.status is not None and 400 <= e.status < 500)


def _limits(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """The latest state of each rate limit the principal met (from its newest events)."""
    seen: dict[str, dict[str, Any]] = {}
    for e in events[:200]:
        if '"rate_limits"' not in e.text:
            continue
        limits = (e.event().get("unmapped") or {}).get("rate_limits") or []
        for limit in limits:
            if isinstance(limit, dict) and isinstance(limit.get("id"), str) and limit["id"] not in seen:
                seen[limit["id"]] = {**limit, "time": iso(e.time_ms)}
    return list(seen.values())
