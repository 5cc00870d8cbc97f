"""``apishield simulate`` and ``apishield detect replay``: the detectors on simulated and on stored traffic.

* ``apishield simulate`` generates simulated days of the reference scenario
  (the demo's customer API: mobile users, support agents, partners' batch
  jobs) with labelled attack scenarios, runs the detectors over the events
  in time order and prints each detector's precision, recall, time to
  detect and false alerts, and the engine's cost per event. Seeded: the
  same ``--seed`` gives the same events and the same figures (the cost
  aside). ``--json`` prints the whole report as JSON; ``--markdown`` the
  tables as Markdown; ``--write-events FILE`` also writes the events as
  JSON lines, for ``apishield detect replay --jsonl FILE``.
* ``apishield detect replay`` runs the detectors over stored events (the
  policy's audit store with ``--config``, or ``--db``, ``--dsn``,
  ``--jsonl``), in time order, and prints the signals as JSON lines (or a
  table with ``--table``); a summary goes to standard error. With
  ``--config``, the policy's ``detection.detectors`` settings are used.

Machine-readable output goes to standard output, progress to standard error.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from apishield.config.duration import parse_when

__all__ = ["detect", "simulate"]


class _ConfigProblem(click.ClickException):
    exit_code = 2


def _detectors_of(config_path: str | None) -> tuple[Any, Any]:
    """(detectors policy, loaded config) from ``--config``; (None, None) without one."""
    if config_path is None:
        return None, None
    from apishield.config.load import ConfigError, load_config

    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        raise _ConfigProblem(str(exc)) from None
    detection = loaded.config.detection
    return (detection.detectors if detection is not None else None), loaded


@click.command()
@click.option(
    "--users", default=2000, show_default=True, type=click.IntRange(10, 1_000_000), help="Mobile users."
)
@click.option("--days", default=1, show_default=True, type=click.IntRange(1, 365), help="Simulated days.")
@click.option("--seed", default=7, show_default=True, type=int, help="Random seed.")
@click.option("--agents", default=4, show_default=True, type=click.IntRange(1, 1000), help="Support agents.")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    help="Only these attack scenarios (repeatable); --scenario none for legitimate traffic only.",
)
@click.option(
    "--config",
    "-c",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Take detection.detectors from this policy.",
)
@click.option(
    "--batch", default=256, show_default=True, type=click.IntRange(1, 100_000), help="Events per batch."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--markdown", is_flag=True, help="Print the tables as Markdown.")
@click.option(
    "--write-events",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the events (JSON lines).",
)
def simulate(
    users: int,
    days: int,
    seed: int,
    agents: int,
    scenarios: tuple[str, ...],
    config_path: str | None,
    batch: int,
    as_json: bool,
    markdown: bool,
    write_events: str | None,
) -> None:
    """Simulate the reference traffic with labelled attacks; score each detector (precision, recall, TTD)."""
    import orjson

    from apishield.detect.simulate import simulate as run
    from apishield.detect.simulate.report import (
        detector_table,
        plain,
        scenario_summary_table,
        scenario_table,
        summary_lines,
    )
    from apishield.detect.simulate.report import markdown as render_markdown
    from apishield.detect.simulate.scenarios import SCENARIOS

    names: list[str] | None = None
    if scenarios:
        names = [] if scenarios == ("none",) else list(scenarios)
        unknown = sorted(set(names) - set(SCENARIOS))
        if unknown:
            raise click.BadParameter(
                f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}",
                param_hint="--scenario",
            )
    policy, _ = _detectors_of(config_path)
    out_file = open(write_events, "wb") if write_events else None  # noqa: SIM115
    sink = None
    if out_file is not None:
        option = orjson.OPT_APPEND_NEWLINE

        def sink(event: dict[str, Any]) -> None:
            out_file.write(orjson.dumps(event, option=option))

    def progress(message: str) -> None:
        click.echo(message, err=True)

    try:
        report = run(
            users=users,
            days=days,
            seed=seed,
            agents=agents,
            policy=policy,
            scenarios=names,
            batch=batch,
            progress=progress,
            sink=sink,
        )
    finally:
        if out_file is not None:
            out_file.close()
    if as_json:
        click.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    if markdown:
        click.echo(render_markdown(report), nl=False)
        return
    if sys.stdout.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            console = Console()
            for line in summary_lines(report):
                console.print(line, highlight=False)
            for title, (headers, rows) in (
                ("Detectors", detector_table(report)),
                ("Scenarios", scenario_table(report) if days == 1 else scenario_summary_table(report)),
            ):
                table = Table(title=title, title_justify="left", header_style="bold")
                for header in headers:
                    table.add_column(header, overflow="fold")
                for row in rows:
                    table.add_row(*row)
                console.print(table)
            return
    click.echo(plain(report), nl=False)


@click.group()
def detect() -> None:
    """Run the detectors over stored audit events."""


def _ms(text: str | None, option: str, now: float) -> int | None:
    try:
        return parse_when(text, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@detect.command()
@click.option(
    "--config",
    "-c",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Policy: store and detectors.",
)
@click.option("--db", default=None, type=click.Path(dir_okay=False), help="A SQLite audit database.")
@click.option("--dsn", default=None, help="A PostgreSQL URL (postgresql://...?schema=).")
@click.option("--jsonl", default=None, type=click.Path(dir_okay=False), help="A JSON-lines file of events.")
@click.option("--since", default=None, help="From this time: 1h (ago) or 2025-01-31T12:00:00Z.")
@click.option("--until", default=None, help="Until this time (exclusive).")
@click.option("--table", "as_table", is_flag=True, help="Print a table instead of JSON lines.")
def replay(
    config_path: str | None,
    db: str | None,
    dsn: str | None,
    jsonl: str | None,
    since: str | None,
    until: str | None,
    as_table: bool,
) -> None:
    """Run the detectors over stored events in time order; print the signals."""
    import orjson

    from apishield.audit.stores import StoreError, open_store
    from apishield.detect.engine import DetectionEngine
    from apishield.detect.replay import stored_events

    policy, loaded = _detectors_of(config_path)
    if loaded is None and db is None and dsn is None and jsonl is None:
        raise click.UsageError("name the store: --config POLICY, or --db, --dsn or --jsonl")
    now = time.time()
    since_ms, until_ms = _ms(since, "--since", now), _ms(until, "--until", now)
    try:
        store = open_store(
            db=db,
            dsn=dsn,
            jsonl=jsonl,
            policy=loaded.config.audit if loaded is not None else None,
            base_dir=loaded.base_dir if loaded is not None else None,
        )
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    engine = DetectionEngine(policy)
    signals: list[Any] = []

    async def run() -> None:
        batch: list[dict[str, Any]] = []
        try:
            async for event in stored_events(store, since_ms, until_ms):
                batch.append(event)
                if len(batch) >= 1000:
                    emit(engine.observe(batch))
                    batch = []
            if batch:
                emit(engine.observe(batch))
        finally:
            await store.close()

    def emit(found: list[Any]) -> None:
        if as_table:
            signals.extend(found)
            return
        for signal in found:
            sys.stdout.buffer.write(orjson.dumps(signal.as_dict(), option=orjson.OPT_APPEND_NEWLINE))
        sys.stdout.flush()

    try:
        asyncio.run(run())
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if as_table:
        _signal_table(signals)
    stats = engine.stats()
    click.echo(
        f"{stats.events:,} events ({stats.skipped:,} of other classes), {stats.signals:,} signals, "
        f"{stats.us_per_event:.2f} us/event",
        err=True,
    )


def _signal_table(signals: list[Any]) -> None:
    headers = ["TIME", "DETECTOR", "SEV", "KEY", "SCOPE", "RESPONSE", "SUMMARY"]
    rows = [
        [
            datetime.fromtimestamp(s.time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            s.detector,
            str(s.severity),
            s.key,
            s.scope or "-",
            s.response or "-",
            s.summary,
        ]
        for s in signals
    ]
    if not rows:
        click.echo("no signals", err=True)
        return
    widths = [min(max([len(h)] + [len(r[i]) for r in rows]), 48) for i, h in enumerate(headers[:-1])]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers[:-1], widths, strict=True)) + "  " + headers[-1])
    for row in rows:
        cells = [c if len(c) <= w else c[: w - 1] + "…" for c, w in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + "  " + row[-1])
