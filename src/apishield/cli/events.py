"""``apishield events``: list, count and verify the audit trail.

The store is the one the policy names (``--config``, its ``audit:`` section;
relative paths from the policy's folder), or given directly: ``--db`` a
SQLite file, ``--dsn`` a PostgreSQL URL (``?schema=``), ``--jsonl`` a
JSON-lines file. Times (``--since``, ``--until``) are durations back from
now (``15m``, ``1h``, ``7d``) or ISO 8601 times (``2025-01-31T12:00:00Z``;
UTC when no offset is given).

* ``apishield events``: matching events, newest first, as a table (plain
  columns when the output is not a terminal) or, with ``--json``, one stored
  event per line exactly as written. When there are more, the cursor for
  the next page is printed on standard error (``--before CURSOR``).
* ``apishield events stats``: counts, top clients, subjects and addresses by
  denials, operations by errors (status 500 and above), status codes,
  decisions and events per hour.
* ``apishield events verify``: checks the hash chain (``audit.tamper_evidence``);
  exits 1 naming the first broken link.

Filters given before a subcommand apply to it too
(``apishield events --since 1h stats``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from apishield.audit.query import DIMENSIONS, Bucket, Cursor, EventQuery
from apishield.audit.stores import EventStore, StoredEvent, StoreError
from apishield.config.duration import parse_when

__all__ = ["events"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_STORE_KEYS = ("config_path", "db", "dsn", "jsonl")
_FILTER_KEYS = (
    "since",
    "until",
    "subject",
    "client",
    "ip",
    "operation",
    "decision",
    "status",
    "object_id",
    "instance",
)


class _ConfigProblem(click.ClickException):
    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(self.format_message(), err=True)


def _store_options(fn: F) -> F:
    for option in reversed(
        [
            click.option(
                "--config", "-c", "config_path", type=click.Path(dir_okay=False), help="Policy file."
            ),
            click.option("--db", type=click.Path(dir_okay=False), help="A SQLite audit database."),
            click.option("--dsn", help="A PostgreSQL URL (?schema=NAME for the schema)."),
            click.option("--jsonl", type=click.Path(dir_okay=False), help="A JSON-lines audit file."),
        ]
    ):
        fn = option(fn)
    return fn


def _filter_options(fn: F) -> F:
    for option in reversed(
        [
            click.option("--since", help="From this time: 1h (ago) or 2025-01-31T12:00:00Z."),
            click.option("--until", help="Before this time: 10m (ago) or an ISO time."),
            click.option("--subject", help="The user (token sub)."),
            click.option("--client", help="The client id."),
            click.option("--ip", help="The client address."),
            click.option("--operation", help="The operationId."),
            click.option("--decision", type=click.Choice(["allowed", "denied"]), help="Allowed or denied."),
            click.option("--status", help="A status code (403) or class (4xx)."),
            click.option(
                "--object", "object_id", help="An object id the request touched (a path parameter)."
            ),
            click.option("--instance", help="One gateway instance."),
        ]
    ):
        fn = option(fn)
    return fn


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _inherit(ctx: click.Context, values: dict[str, Any]) -> dict[str, Any]:
    """Options not given to a subcommand come from the ``events`` group."""
    parent = ctx.find_object(dict) or {}
    return {k: (v if v is not None else parent.get(k)) for k, v in values.items()}


def _ms(text: str | None, option: str, now: float) -> int | None:
    try:
        return parse_when(text, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _query(values: dict[str, Any]) -> EventQuery:
    now = time.time()
    try:
        return EventQuery(
            since_ms=_ms(values.get("since"), "--since", now),
            until_ms=_ms(values.get("until"), "--until", now),
            subject=values.get("subject"),
            client_id=values.get("client"),
            src_ip=values.get("ip"),
            operation=values.get("operation"),
            decision=values.get("decision"),
            status=values.get("status"),
            object_id=values.get("object_id"),
            instance=values.get("instance"),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--status") from None


def _open(values: dict[str, Any]) -> tuple[EventStore, Any]:
    """The store, and the policy's audit section when ``--config`` named one."""
    from apishield.audit.stores import open_store

    config_path = values.get("config_path")
    direct = [k for k in ("db", "dsn", "jsonl") if values.get(k) is not None]
    if config_path is not None and direct:
        raise click.UsageError(f"give --config or --{direct[0]}, not both")
    if len(direct) > 1:
        raise click.UsageError("give one of --db, --dsn and --jsonl")
    policy = None
    base_dir: Path | None = None
    if config_path is not None:
        from apishield.config.load import ConfigError, load_config

        try:
            loaded = load_config(config_path)
        except ConfigError as exc:
            raise _ConfigProblem(str(exc)) from None
        policy, base_dir = loaded.config.audit, loaded.base_dir
    elif not direct:
        raise click.UsageError("name the store: --config POLICY, or --db, --dsn or --jsonl")
    try:
        store = open_store(
            db=values.get("db"),
            dsn=values.get("dsn"),
            jsonl=values.get("jsonl"),
            policy=policy,
            base_dir=base_dir,
        )
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    return store, policy


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _row(e: StoredEvent) -> list[str]:
    what = e.operation or e.route or ("authentication" if e.class_uid == 3002 else "-")
    return [
        _when(e.time_ms),
        e.action or "-",
        str(e.status) if e.status is not None else "-",
        e.method or "-",
        what,
        e.subject or "-",
        e.client_id or "-",
        e.src_ip or "-",
        e.status_detail or "",
        f"{e.latency_ms:.1f}" if e.latency_ms is not None else "-",
    ]


_HEADERS = ["TIME", "DECISION", "STATUS", "METHOD", "OPERATION", "SUBJECT", "CLIENT", "IP", "DETAIL", "MS"]


def _table(title: str | None, headers: list[str], rows: list[list[str]]) -> None:
    """A rich table on a terminal, aligned plain columns otherwise."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left", header_style="bold")
        for header in headers:
            table.add_column(
                header,
                overflow="fold",
                justify="right" if header in {"COUNT", "DENIED", "ERRORS", "MS", "STATUS"} else "left",
            )
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    if title:
        click.echo(f"# {title}")
    widths = [min(max([len(h)] + [len(r[i]) for r in rows]), 40) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@click.group(invoke_without_command=True)
@_store_options
@_filter_options
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="Events per page."
)
@click.option("--before", help="The cursor printed after the previous page.")
@click.option("--json", "as_json", is_flag=True, help="One stored event per line, exactly as written.")
@click.pass_context
def events(ctx: click.Context, /, limit: int, before: str | None, as_json: bool, **values: Any) -> None:
    """List audit events, newest first; see also 'events stats' and 'events verify'."""
    ctx.obj = {k: v for k, v in values.items() if v is not None}
    if ctx.invoked_subcommand is not None:
        return
    from apishield.audit.query import search

    query = _query(values)
    try:
        cursor = Cursor.parse(before) if before else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--before") from None
    store, _ = _open(values)

    async def go() -> Any:
        try:
            return await search(store, query, limit, cursor)
        finally:
            await store.close()

    page = _run(go())
    if as_json:
        out = sys.stdout
        for e in page.events:
            out.write(e.text + "\n")
        out.flush()
    else:
        _table(None, _HEADERS, [_row(e) for e in page.events])
    if page.next is not None:
        click.echo(f"more: --before {page.next}", err=True)


def _bucket_key(name: str, bucket: Bucket) -> str:
    if bucket.key is None:
        return "-"
    if name == "hour":
        return _when(bucket.key)[:13] + ":00Z"
    return str(bucket.key)


@events.command(name="stats")
@_store_options
@_filter_options
@click.option(
    "--by", "by", multiple=True, type=click.Choice(DIMENSIONS), help="Only these breakdowns (repeatable)."
)
@click.option(
    "--top", default=10, show_default=True, type=click.IntRange(1, 1000), help="Rows per breakdown."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def stats_command(ctx: click.Context, /, by: tuple[str, ...], top: int, as_json: bool, **values: Any) -> None:
    """Counts: top clients, subjects and IPs by denials, operations by errors, statuses, per hour."""
    from apishield.audit.query import stats

    values = _inherit(ctx, values)
    query = _query(values)
    store, _ = _open(values)
    dimensions = by or DIMENSIONS

    async def go() -> Any:
        try:
            return await stats(store, query, dimensions, top)
        finally:
            await store.close()

    result = _run(go())
    if as_json:
        import orjson

        data = {
            "total": result.total.count,
            "denied": result.total.denied,
            "errors": result.total.errors,
            "first": _when(result.first_ms) if result.first_ms is not None else None,
            "last": _when(result.last_ms) if result.last_ms is not None else None,
            "by": {
                name: [
                    {"key": b.key, "count": b.count, "denied": b.denied, "errors": b.errors} for b in buckets
                ]
                for name, buckets in result.by.items()
            },
        }
        click.echo(orjson.dumps(data).decode())
        return
    click.echo(
        f"{result.total.count} events, {result.total.denied} denied, {result.total.errors} errors "
        f"(from {_when(result.first_ms)} to {_when(result.last_ms)})"
    )
    titles = {
        "client": "clients by denials",
        "subject": "subjects by denials",
        "ip": "addresses by denials",
        "operation": "operations by errors",
        "status": "status codes",
        "decision": "decisions",
        "hour": "events per hour (UTC)",
    }
    for name, buckets in result.by.items():
        click.echo("")
        rows = [[_bucket_key(name, b), str(b.count), str(b.denied), str(b.errors)] for b in buckets]
        _table(titles[name], [name.upper(), "COUNT", "DENIED", "ERRORS"], rows)


@events.command(name="verify")
@_store_options
@click.option("--instance", help="Only this instance's chain.")
@click.option(
    "--allow-expired-start/--no-allow-expired-start",
    default=None,
    help="Accept a first stored event chaining from an expired one (default: if the policy has a retention).",
)
@click.pass_context
def verify_command(
    ctx: click.Context, /, instance: str | None, allow_expired_start: bool | None, **values: Any
) -> None:
    """Check the hash chain (audit.tamper_evidence); exit 1 naming the first broken link."""
    from apishield.audit.chain import verify
    from apishield.audit.query import chain_rows

    values = _inherit(ctx, values)
    instance = instance or (ctx.find_object(dict) or {}).get("instance")
    store, policy = _open(values)
    if allow_expired_start is None:
        allow_expired_start = policy is not None and policy.retention is not None

    async def go() -> Any:
        try:
            rows = [row async for row in chain_rows(store, instance)]
        finally:
            await store.close()
        return verify(rows, expired_start_ok=allow_expired_start)

    result = _run(go())
    if result.checked == 0:
        click.echo("nothing to verify: no chained events (is audit.tamper_evidence on?)", err=True)
        sys.exit(1)
    for name in result.expired_starts:
        click.echo(f"note: the chain of {name!r} starts at an event whose predecessor expired", err=True)
    if not result.ok:
        first = result.first
        click.echo(f"BROKEN: {first}", err=True)
        if result.broken > 1:
            click.echo(f"({result.broken} broken links in all)", err=True)
        sys.exit(1)
    click.echo(
        f"OK: {result.checked} chained events, {len(result.instances)} instance(s), {result.runs} run(s)"
    )
    for name, (first_seq, last_seq, head) in sorted(result.instances.items()):
        click.echo(f"  {name}: seq {first_seq}..{last_seq}, head {head}")
