"""The investigation console's routes, under ``/console`` on the admin listener.

One prefix route on :class:`~apishield.admin.app.AdminApp`, marked public
there because the console checks its own session (the bearer token of the
admin API is not something a browser sends). Pages (GET, server-rendered):

* ``/console``: overview (requests over time, denials by reason, top
  operations, alerts timeline);
* ``/console/alerts`` and ``/console/alerts/{id}``: alerts with filters, and
  one alert with its evidence, the principal's requests around it and the
  linked audit events;
* ``/console/events`` and ``/console/events/{uid}``: the events explorer
  (the filters of ``apishield events``, keyset pages) and one event's JSON;
* ``/console/principal?key=sub:alice``: a principal's activity, operations,
  objects, denials, alerts, blocks and rate limits;
* ``/console/policy``: the effective policy per operation (``apishield explain``);
* ``/console/api/alerts?since=MS``: alerts seen since then, as JSON, for
  the script that shows new alerts without a reload.

Actions (POST, CSRF token and same-origin checks): sign-in and sign-out,
acknowledge an alert, block a principal (through the detection service's
block store, which every gateway instance enforces), lift a block.
"""

from __future__ import annotations

import logging
import secrets
import time
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import orjson

from apishield.admin.app import AdminRequest, Answer, Route
from apishield.config.duration import parse_duration
from apishield.console.render import Templates
from apishield.console.session import (
    COOKIE,
    LOGIN_COOKIE,
    PATH,
    LoginThrottle,
    Session,
    Sessions,
    cookie,
    expired_cookie,
)
from apishield.console.sources import EventSource, Principal
from apishield.console.timeline import iso
from apishield.console.views import DURATIONS, EVENT_FILTERS, Views
from apishield.console.web import (
    SECURITY_HEADERS,
    cookies,
    html,
    query_params,
    read_form,
    redirect,
    same_origin,
    with_query,
)
from apishield.detect.blocks import make_block

if TYPE_CHECKING:
    from apishield.admin.credential import AdminCredential
    from apishield.detect.service import DetectionService
    from apishield.runtime import Runtime

__all__ = ["Console"]

log = logging.getLogger("apishield.console")

_STATIC_TYPES = {
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".txt": b"text/plain; charset=utf-8",
    ".svg": b"image/svg+xml",
}
_NAV = (
    ("overview", "Overview", PATH),
    ("alerts", "Alerts", PATH + "/alerts"),
    ("events", "Events", PATH + "/events"),
    ("policy", "Policy", PATH + "/policy"),
)


def _line(event: str, **fields: Any) -> str:
    return orjson.dumps({"event": event, **fields}, default=str).decode()


def _safe_next(value: str | None) -> str:
    """A console path to go to after sign-in; anything else goes to the overview."""
    if value and value.startswith(PATH) and "//" not in value and "\\" not in value and "\n" not in value:
        return value
    return PATH


def _json(status: int, value: Any) -> Answer:
    return Answer(status, orjson.dumps(value), b"application/json", list(SECURITY_HEADERS))


class Console:
    """The console's state (sessions, templates, readers) and its one prefix route."""

    def __init__(
        self,
        credential: AdminCredential,
        runtime: Runtime,
        detection: DetectionService | None = None,
        *,
        secure_cookies: bool = False,
        sessions: Sessions | None = None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.sessions = sessions or Sessions(credential)
        self.throttle = throttle or LoginThrottle()
        self.secure = secure_cookies
        self.detection = detection
        loaded = runtime.loaded
        self.events = EventSource(loaded.config.audit, loaded.base_dir)
        self.views = Views(self.events, detection, runtime)
        self.templates = Templates()
        self.static = self._load_static()
        if not self.sessions.enabled:
            log.warning(
                "%s",
                _line(
                    "console.disabled",
                    reason="no admin credential: set admin.token_file or admin.token_env to use the console",
                ),
            )

    @staticmethod
    def _load_static() -> dict[str, tuple[bytes, bytes]]:
        folder = files("apishield.console") / "static"
        out = {}
        for item in folder.iterdir():
            suffix = "." + item.name.rsplit(".", 1)[-1] if "." in item.name else ""
            if item.is_file() and suffix in _STATIC_TYPES:
                out[item.name] = (item.read_bytes(), _STATIC_TYPES[suffix])
        return out

    def route(self) -> Route:
        return Route(PATH, self.handle, frozenset({"GET", "POST"}), public=True, prefix=True)

    async def close(self) -> None:
        await self.events.close()

    # -- dispatch ------------------------------------------------------------------------------------------

    async def handle(self, request: AdminRequest) -> Answer:
        sub = request.path[len(PATH) :].rstrip("/") or "/"
        if sub.startswith("/static/"):
            return self._static(sub[len("/static/") :])
        if not self.sessions.enabled:
            return self._disabled()
        if sub == "/login":
            if request.method == "POST":
                return await self._login(request)
            return self._login_page(request)
        session_id = cookies(request).get(COOKIE)
        session = self.sessions.get(session_id)
        if session is None:
            if sub.startswith("/api/"):
                return _json(401, {"error": "signed out", "login": PATH + "/login"})
            if request.method == "POST":
                return redirect(PATH + "/login")
            target = request.path + ("?" + request.query.decode("latin-1") if request.query else "")
            return redirect(with_query(PATH + "/login", {"next": _safe_next(target)}))
        if request.method == "POST":
            return await self._action(request, session, session_id or "", sub)
        parts = sub.strip("/").split("/")
        flash, session.flash = session.flash, []
        if sub == "/":
            return await self._overview(request, session, flash)
        if sub == "/api/alerts":
            return await self._poll(request)
        if parts[0] in ("alerts", "events") and len(parts) <= 2:
            handler = {
                ("alerts", 1): self._alerts,
                ("alerts", 2): self._alert,
                ("events", 1): self._events,
                ("events", 2): self._event,
            }[(parts[0], len(parts))]
            return await handler(request, session, flash)
        if sub == "/principal":
            return await self._principal(request, session, flash)
        if sub == "/policy":
            return await self._policy(request, session, flash)
        return self._page(
            404, "error.html", session, flash, section="", title="Not found", message="No page here."
        )

    def _page(self, status: int, template: str, session: Session, flash: list[str], **context: Any) -> Answer:
        body = self.templates.render(
            template,
            nav=_NAV,
            csrf=session.csrf,
            flash=flash,
            poll_since=int(time.time() * 1000),
            detection=self.detection is not None,
            base=PATH,
            **context,
        )
        return html(status, body)

    def _static(self, name: str) -> Answer:
        found = self.static.get(name)
        if found is None:
            return Answer(404, b"not found", b"text/plain; charset=utf-8", list(SECURITY_HEADERS))
        return Answer(200, found[0], found[1], list(SECURITY_HEADERS))

    def _disabled(self) -> Answer:
        body = self.templates.render("disabled.html", base=PATH)
        return html(503, body)

    # -- sign-in ---------------------------------------------------------------------------------------------

    def _login_page(
        self, request: AdminRequest, status: int = 200, error: str | None = None, retry: int = 0
    ) -> Answer:
        if status == 200 and self.sessions.get(cookies(request).get(COOKIE)) is not None:
            return redirect(PATH)
        params = query_params(request)
        nonce = secrets.token_urlsafe(16)
        body = self.templates.render(
            "login.html",
            base=PATH,
            nonce=nonce,
            next=_safe_next(params.get("next")),
            error=error,
            signed_out="signed_out" in params,
        )
        headers = [(b"set-cookie", cookie(LOGIN_COOKIE, nonce, secure=self.secure, max_age=900))]
        if retry:
            headers.append((b"retry-after", str(retry).encode()))
        return html(status, body, headers)

    async def _login(self, request: AdminRequest) -> Answer:
        address = request.client or "unknown"
        if not same_origin(request):
            return self._login_page(request, 403, "This sign-in did not come from the console's own page.")
        form = await read_form(request)
        nonce = cookies(request).get(LOGIN_COOKIE, "")
        presented = (form or {}).get("nonce", "")
        if form is None or not nonce or not secrets.compare_digest(nonce.encode(), presented.encode()):
            return self._login_page(request, 403, "The sign-in form expired; please try again.")
        wait = self.throttle.retry_after(address)
        if wait:
            log.warning("%s", _line("console.login_throttled", client=address, retry_after=wait))
            return self._login_page(request, 429, f"Too many failed sign-ins: try again in {wait} s.", wait)
        if not self.sessions.token_matches(form.get("token", "")):
            self.throttle.failed(address)
            log.warning("%s", _line("console.login_failed", client=address))
            return self._login_page(request, 401, "That is not the admin token.")
        ident, _ = self.sessions.open()
        log.info("%s", _line("console.login", client=address))
        headers = [
            (b"set-cookie", cookie(COOKIE, ident, secure=self.secure)),
            (b"set-cookie", expired_cookie(LOGIN_COOKIE, secure=self.secure)),
        ]
        return redirect(_safe_next(form.get("next")), headers)

    # -- actions (POST) --------------------------------------------------------------------------------------

    async def _action(self, request: AdminRequest, session: Session, ident: str, sub: str) -> Answer:
        form = await read_form(request)
        if not same_origin(request) or form is None or not Sessions.check_csrf(session, form.get("csrf")):
            log.warning("%s", _line("console.csrf_refused", client=request.client, path=request.path))
            return html(
                403,
                self.templates.render(
                    "refused.html", base=PATH, message="This form did not come from this console session."
                ),
            )
        parts = sub.strip("/").split("/")
        if sub == "/logout":
            self.sessions.close(ident)
            log.info("%s", _line("console.logout", client=request.client))
            return redirect(
                PATH + "/login?signed_out=1", [(b"set-cookie", expired_cookie(COOKIE, secure=self.secure))]
            )
        if len(parts) == 3 and parts[0] == "alerts" and parts[2] == "ack":
            return await self._ack(session, parts[1], form, request.client)
        if sub == "/blocks":
            return await self._block(session, form, request.client)
        if sub == "/blocks/remove":
            return await self._unblock(session, form, request.client)
        return html(404, self.templates.render("refused.html", base=PATH, message="No such action."))

    async def _ack(self, session: Session, alert_id: str, form: dict[str, str], client: str | None) -> Answer:
        back = f"{PATH}/alerts/{alert_id}"
        if self.detection is None:
            return redirect(back)
        note = (form.get("note") or "").strip()[:1000] or None
        alert = await self.detection.alerts.ack(alert_id, "console", note, int(time.time() * 1000))
        if alert is None:
            session.flash.append(f"There is no alert {alert_id}.")
            return redirect(PATH + "/alerts")
        log.info("%s", _line("console.ack", alert=alert.id, client=client))
        session.flash.append(f"Alert {alert.id} acknowledged.")
        return redirect(back)

    async def _block(self, session: Session, form: dict[str, str], client: str | None) -> Answer:
        alert_id = form.get("alert") or None
        key = form.get("key", "")
        back = f"{PATH}/alerts/{alert_id}" if alert_id else with_query(PATH + "/principal", {"key": key})
        if self.detection is None:
            session.flash.append("Detection is off: there is no block store.")
            return redirect(back)
        try:
            target = Principal.parse(key).block_target()
            seconds = parse_duration(form.get("duration") or "1h")
            if target is None:
                raise ValueError(f"{key} names no caller that can be blocked")
            if not 0 < seconds <= 366 * 86_400:
                raise ValueError("a block lasts more than 0 s and at most a year")
            now = time.time()
            reason = (form.get("reason") or "").strip()[:500] or "blocked from the console"
            block = make_block(
                target[0],
                target[1],
                until=now + seconds,
                reason=reason,
                alert_id=alert_id,
                created_by="console",
                created_at=now,
            )
        except ValueError as exc:
            session.flash.append(f"Not blocked: {exc}")
            return redirect(back)
        await self.detection.blocks.add(block)
        self.detection.blocklist.put(block)  # this process enforces it at once; others through the store
        if alert_id is not None:
            await self.detection.alerts.set_response(alert_id, f"block {block.id}")
        log.warning(
            "%s", _line("console.block", id=block.id, target=block.target, until=block.until, client=client)
        )
        session.flash.append(
            f"Blocked {block.kind} {block.value} until {iso(block.until * 1000)} ({block.id})."
        )
        return redirect(back)

    async def _unblock(self, session: Session, form: dict[str, str], client: str | None) -> Answer:
        back = _safe_next(form.get("back"))
        if self.detection is None:
            return redirect(back)
        ident = form.get("id", "")
        removed = await self.detection.blocks.remove(ident) if ident else None
        if removed is None:
            session.flash.append(f"There is no active block {ident}.")
            return redirect(back)
        self.detection.blocklist.remove(removed.kind, removed.value)
        log.warning("%s", _line("console.unblock", id=removed.id, target=removed.target, client=client))
        session.flash.append(f"Lifted {removed.id} ({removed.describe()}).")
        return redirect(back)

    # -- pages (GET) -----------------------------------------------------------------------------------------

    async def _overview(self, request: AdminRequest, session: Session, flash: list[str]) -> Answer:
        params = query_params(request)
        data = await self.views.overview(params.get("range"))
        return self._page(200, "overview.html", session, flash, section="overview", title="Overview", **data)

    async def _poll(self, request: AdminRequest) -> Answer:
        since = query_params(request).get("since", "")
        since_ms = int(since) if since.isdigit() else int(time.time() * 1000) - 60_000
        alerts = await self.views.new_alerts(since_ms)
        return _json(200, {"now": int(time.time() * 1000), "alerts": alerts})

    async def _alerts(self, request: AdminRequest, session: Session, flash: list[str]) -> Answer:
        data = await self.views.alerts(query_params(request))
        return self._page(200, "alerts.html", session, flash, section="alerts", title="Alerts", **data)

    async def _alert(self, request: AdminRequest, session: Session, flash: list[str]) -> Answer:
        alert_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        data = await self.views.alert(alert_id)
        if data is None:
            return self._page(
                404,
                "error.html",
                session,
                flash,
                section="alerts",
                title="No such alert",
                message=f"There is no alert {alert_id}.",
            )
        return self._page(
            200,
            "alert.html",
            session,
            flash,
            section="alerts",
            title=f"Alert {alert_id}",
            durations=DURATIONS,
            back_to=f"{PATH}/alerts/{alert_id}",
            **data,
        )

    async def _events(self, request: AdminRequest, session: Session, flash: list[str]) -> Answer:
        data = await self.views.events_page(query_params(request))
        return self._page(
            200, "events.html", session, flash, section="events", title="Events", fields=EVENT_FILTERS, **data
        )

    async def _event(self, request: AdminRequest, session: Session, flash: list[str]) -> Answer:
        uid = request.path.rstrip("/").rsplit("/", 1)[-1]
        t = query_params(request).get("t", "")
        data = await self.views.event(uid, int(t) if t.isdigit() else None)
        if data is None:
            return self._page(
                404,
                "error.html",
                session,
                flash,
                section="events",
                title="No such event",
                message=f"There is no event {uid} in the audit trail.",
            )
        return self._page(
            200, "event.html", session, flash, section="events", title=f"Event {uid}", uid=uid, **data
        )

    async def _principal(self, request: AdminRequest, session: Session, flash: list[str]) -> Answer:
        params = query_params(request)
        try:
            data = await self.views.principal(params.get("key", ""), params.get("range"))
        except ValueError as exc:
            return self._page(
                400, "error.html", session, flash, section="", title="Which principal?", message=str(exc)
            )
        return self._page(
            200,
            "principal.html",
            session,
            flash,
            section="",
            title=f"Principal {data['principal'].key}",
            durations=DURATIONS,
            back_to=with_query(PATH + "/principal", {"key": data["principal"].key}),
            **data,
        )

    async def _policy(self, request: AdminRequest, session: Session, flash: list[str]) -> Answer:
        data = self.views.policy(query_params(request).get("operation"))
        return self._page(
            200, "policy.html", session, flash, section="policy", title="Effective policy", **data
        )
