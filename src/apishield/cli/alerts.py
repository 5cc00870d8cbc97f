"""``apishield alerts`` and ``apishield blocks``: review alerts, and manage blocks by hand.

Both read the stores the policy's ``detection:`` section names: alerts from
``detection.alerts`` (SQLite or PostgreSQL), blocks from
``detection.blocks.store``. A block added or removed here reaches every
gateway instance through the shared store within about a second; a
``memory`` store lives inside one gateway process and cannot be managed
from outside it.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import orjson

from apishield.config.detection import DetectionPolicy, parse_severity
from apishield.config.duration import parse_duration
from apishield.config.ratelimit import parse_rate
from apishield.detect.alerts import Alert, AlertQuery, AlertStore, StoreError
from apishield.detect.blocks import Block, BlockStore, make_block

__all__ = ["alerts", "blocks"]

T = TypeVar("T")


def _policy(config_path: str) -> tuple[Any, DetectionPolicy]:
    from apishield.config.load import ConfigError, load_config

    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    detection = loaded.config.detection
    if detection is None:
        raise click.UsageError("the policy has no detection section")
    return loaded, detection


def _run(store: AlertStore | BlockStore, work: Callable[[], Awaitable[T]]) -> T:
    import redis

    async def go() -> T:
        try:
            return await work()
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, redis.RedisError) as exc:
        raise click.ClickException(f"the store cannot be reached: {exc}") from None


def _alert_store(config_path: str) -> AlertStore:
    from apishield.detect.alerts import open_alert_store

    loaded, detection = _policy(config_path)
    try:
        return open_alert_store(detection.alerts, loaded.base_dir, loaded.config.audit)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _block_store(config_path: str) -> BlockStore:
    from apishield.detect.blocks import open_block_store

    _, detection = _policy(config_path)
    settings = detection.blocks
    if settings.store == "memory":
        raise click.UsageError(
            "detection.blocks.store is memory: blocks live inside one gateway process; "
            "use a redis:// store to manage them from the command line"
        )
    return open_block_store(settings.store, settings.key_prefix, settings.resync_interval)


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        return "unknown"


def _when(ms: int | float | None, unit: float = 1000.0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / unit)) if ms else "-"


def _json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode())


_config_option = click.option(
    "--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False), help="Policy file."
)


@click.group()
def alerts() -> None:
    """Review the alerts the detectors raised."""


@alerts.command(name="list")
@_config_option
@click.option(
    "--status",
    type=click.Choice(["open", "acknowledged", "all"]),
    default="open",
    show_default=True,
    help="Which alerts.",
)
@click.option("--detector", default=None, help="Only this detector's alerts.")
@click.option("--key", default=None, help="Only alerts about this key, e.g. sub:alice or ip:192.0.2.1.")
@click.option("--min-severity", default=None, help="1-6 or low, medium, high, critical.")
@click.option("--since", default=None, help="Last seen within this long, e.g. 24h.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def list_alerts(
    config_path: str,
    status: str,
    detector: str | None,
    key: str | None,
    min_severity: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List alerts, most recently seen first."""
    try:
        severity = None
        if min_severity:
            severity = parse_severity(int(min_severity) if min_severity.isdigit() else min_severity)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--min-severity") from None
    try:
        since_ms = int((time.time() - parse_duration(since)) * 1000) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    query = AlertQuery(
        status=None if status == "all" else status,  # type: ignore[arg-type]  # a click choice
        detector=detector,
        key=key,
        min_severity=severity,
        since=since_ms,
        limit=limit,
    )
    store = _alert_store(config_path)
    found = _run(store, lambda: store.query(query))
    if as_json:
        _json([a.as_dict() for a in found])
        return
    click.echo(
        f"{'ID':14} {'SEVERITY':13} {'STATUS':12} {'COUNT':>5} {'LAST SEEN':20} {'DETECTOR':20} "
        f"{'KEY':30} SUMMARY"
    )
    for a in found:
        click.echo(
            f"{a.id:14} {a.severity_name:13} {a.status:12} {a.count:>5} {_when(a.last_seen):20} "
            f"{a.detector[:20]:20} {a.key[:30]:30} {a.summary}"
        )


def _show(alert: Alert) -> None:
    rows = [
        ("id", alert.id),
        ("detector", alert.detector),
        ("key", alert.key),
        ("scope", alert.scope or "-"),
        ("severity", f"{alert.severity_name} ({alert.severity})"),
        ("status", alert.status),
        ("first seen", _when(alert.first_seen)),
        ("last seen", _when(alert.last_seen)),
        ("signals", str(alert.count)),
        ("summary", alert.summary),
        ("response", alert.response or "-"),
    ]
    if alert.status == "acknowledged":
        rows.append(("acknowledged", f"{_when(alert.acked_at)} by {alert.acked_by}"))
        rows.append(("note", alert.note or "-"))
    for name, value in rows:
        click.echo(f"{name + ':':14}{value}")
    click.echo("evidence:")
    click.echo(orjson.dumps(alert.evidence, option=orjson.OPT_INDENT_2, default=str).decode())
    click.echo(f"linked events ({len(alert.event_ids)}, metadata.uid in the audit trail):")
    for uid in alert.event_ids:
        click.echo(f"  {uid}")


@alerts.command()
@_config_option
@click.argument("alert_id")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def show(config_path: str, alert_id: str, as_json: bool) -> None:
    """Show one alert with its evidence and the ids of its linked audit events."""
    store = _alert_store(config_path)
    alert = _run(store, lambda: store.get(alert_id))
    if alert is None:
        raise click.ClickException(f"no alert {alert_id!r}")
    if as_json:
        _json(alert.as_dict())
    else:
        _show(alert)


@alerts.command()
@_config_option
@click.argument("alert_id")
@click.option("--note", default=None, help="Why, or what was done.")
@click.option("--by", "by", default=None, help="Who acknowledges it (default: the login name).")
def ack(config_path: str, alert_id: str, note: str | None, by: str | None) -> None:
    """Acknowledge an alert; further signals about its key open a new one."""
    store = _alert_store(config_path)
    who = by or _login()
    alert = _run(store, lambda: store.ack(alert_id, who, note, int(time.time() * 1000)))
    if alert is None:
        raise click.ClickException(f"no alert {alert_id!r}")
    click.echo(f"acknowledged {alert.id} ({alert.detector} {alert.key})", err=True)


@click.group()
def blocks() -> None:
    """List, add and remove the blocks and throttles every gateway enforces."""


def _describe_until(block: Block) -> str:
    left = block.until - time.time()
    when = _when(block.until, 1.0)
    return f"{when} ({int(left // 60)}m left)" if left >= 60 else when


@blocks.command(name="list")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def list_blocks(config_path: str, as_json: bool) -> None:
    """List the active blocks and throttles, the soonest to end first."""
    store = _block_store(config_path)
    found = _run(store, store.list)
    if as_json:
        _json([b.as_dict() for b in found])
        return
    click.echo(f"{'ID':14} {'MODE':14} {'KIND':8} {'VALUE':34} {'UNTIL':34} {'ALERT':14} REASON")
    for b in found:
        mode = f"throttle {b.rate}/{b.per:g}s" if b.mode == "throttle" else "block"
        click.echo(
            f"{b.id:14} {mode:14} {b.kind:8} {b.value[:34]:34} {_describe_until(b):34} "
            f"{b.alert_id or '-':14} {b.reason}"
        )


@blocks.command()
@_config_option
@click.option("--ip", default=None, help="A client address.")
@click.option("--subject", default=None, help="A token subject (sub).")
@click.option("--client", default=None, help="An OAuth client id.")
@click.option("--token", default=None, help="A token fingerprint, as actor.session.uid in audit events.")
@click.option("--jti", default=None, help="A token id (jti); blocked by its fingerprint.")
@click.option("--api-key", "api_key", default=None, help="An API key id.")
@click.option("--for", "duration", default="1h", show_default=True, help="How long, e.g. 30m, 1h, 7d.")
@click.option("--throttle", default=None, help="Throttle to this rate (e.g. 10/min) instead of blocking.")
@click.option("--reason", default="", help="Why; shown in the list and in audit decisions.")
def add(
    config_path: str,
    ip: str | None,
    subject: str | None,
    client: str | None,
    token: str | None,
    jti: str | None,
    api_key: str | None,
    duration: str,
    throttle: str | None,
    reason: str,
) -> None:
    """Block (403) or throttle (429) one caller on every gateway instance."""
    from apishield.audit.event import fingerprint

    chosen = [
        (kind, value)
        for kind, value in (
            ("ip", ip),
            ("subject", subject),
            ("client", client),
            ("token", token),
            ("token", fingerprint(jti) if jti else None),
            ("api_key", api_key),
        )
        if value
    ]
    if len(chosen) != 1:
        raise click.UsageError("name exactly one of --ip, --subject, --client, --token, --jti, --api-key")
    kind, value = chosen[0]
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than 0", param_hint="--for")
    rate, per = None, 60.0
    if throttle is not None:
        try:
            rate, per = parse_rate(throttle)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--throttle") from None
    now = time.time()
    try:
        block = make_block(
            kind,
            value,
            until=now + seconds,
            mode="throttle" if throttle else "block",
            rate=rate,
            per=per,
            reason=reason,
            created_by=f"cli:{_login()}",
            created_at=now,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    store = _block_store(config_path)
    _run(store, lambda: store.add(block))
    click.echo(block.id)
    click.echo(f"{block.describe()} until {_when(block.until, 1.0)}", err=True)


@blocks.command()
@_config_option
@click.argument("ident")
def remove(config_path: str, ident: str) -> None:
    """Lift a block by its id (or its target, e.g. ip:192.0.2.1)."""
    store = _block_store(config_path)
    removed = _run(store, lambda: store.remove(ident))
    if removed is None:
        raise click.ClickException(f"no active block {ident!r}")
    click.echo(f"removed {removed.id} ({removed.describe()})", err=True)
