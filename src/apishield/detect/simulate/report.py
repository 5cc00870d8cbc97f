"""The simulation's report as tables: plain aligned columns, Markdown, or ``rich`` on a terminal."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from apishield.detect.simulate.run import TARGET_REQUESTS, TARGET_S, ScenarioFigures, SimulationReport

__all__ = ["detector_table", "markdown", "plain", "scenario_summary_table", "scenario_table", "summary_lines"]

Table = tuple[list[str], list[list[str]]]


def _num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def detector_table(report: SimulationReport) -> Table:
    headers = [
        "detector",
        "signals",
        "true",
        "false",
        "precision",
        "recall",
        "TTD s",
        "TTD requests",
        "false /1k/day",
    ]
    rows = []
    for d in report.detectors:
        rows.append(
            [
                d.detector,
                _num(d.signals),
                _num(d.true),
                _num(d.false),
                _num(d.precision, 3),
                f"{d.detected}/{d.scenarios}" + (f" ({d.recall:.2f})" if d.recall is not None else ""),
                _num(d.ttd_s),
                _num(d.ttd_requests, 0),
                _num(d.false_per_1000_per_day, 2),
            ]
        )
    return headers, rows


def scenario_table(report: SimulationReport) -> Table:
    headers = [
        "scenario",
        "day",
        "meant for",
        "requests",
        "first signal s / req",
        "own s / req",
        "detected by",
        "target",
    ]
    rows = []
    for s in report.scenarios:
        first = "missed" if s.first_s is None else f"{s.first_s:.1f} / {s.first_requests}"
        own = "missed" if s.own_s is None else f"{s.own_s:.1f} / {s.own_requests}"
        rows.append(
            [
                s.name,
                str(s.day + 1),
                s.detector,
                _num(s.requests),
                first,
                own,
                ", ".join(s.detected_by) or "-",
                "met" if s.met else "MISSED",
            ]
        )
    return headers, rows


def scenario_summary_table(report: SimulationReport) -> Table:
    """One row per scenario over every simulated day: medians of the time to detect."""
    headers = [
        "scenario",
        "meant for",
        "runs",
        "met",
        "first signal s",
        "first signal req",
        "own s",
        "own req",
        "detected by",
    ]
    rows = []
    names: dict[str, list[ScenarioFigures]] = {}
    for s in report.scenarios:
        names.setdefault(s.name, []).append(s)
    for name, runs in names.items():
        first = [r for r in runs if r.first_s is not None]
        own = [r for r in runs if r.own_s is not None]
        by: dict[str, int] = {}
        for r in runs:
            for d in r.detected_by:
                by[d] = by.get(d, 0) + 1
        rows.append(
            [
                name,
                runs[0].detector,
                str(len(runs)),
                str(sum(1 for r in runs if r.met)),
                _num(_median([r.first_s for r in first if r.first_s is not None])),
                _num(_median([float(r.first_requests) for r in first if r.first_requests is not None]), 0),
                _num(_median([r.own_s for r in own if r.own_s is not None])),
                _num(_median([float(r.own_requests) for r in own if r.own_requests is not None]), 0),
                ", ".join(f"{d} {n}" if n < len(runs) else d for d, n in by.items()) or "-",
            ]
        )
    return headers, rows


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summary_lines(report: SimulationReport) -> list[str]:
    met = sum(1 for s in report.scenarios if s.met)
    total = len(report.scenarios)
    return [
        f"seed {report.seed}: {report.days} simulated day(s), {report.users:,} mobile users, "
        f"{report.principals:,} legitimate principals; {report.events:,} events "
        f"({report.attack_events:,} from {len(report.scenarios)} attack scenarios)",
        f"signals: {report.signals:,} ({report.true_signals:,} true, {report.false_signals:,} false); "
        f"false alerts per 1,000 principals per day: {report.false_per_1000_per_day:.2f} (target <= 1)",
        f"scenarios detected within {TARGET_S} s or {TARGET_REQUESTS} requests: {met}/{total}",
        f"engine cost: {report.us_per_event:.2f} us/event (total engine time / events; target <= 5); "
        f"a baseline pass over the same events {report.baseline_us_per_event:.2f} us/event "
        f"({report.us_per_event / max(report.baseline_us_per_event, 1e-9):.0f}x); "
        f"traffic generation {report.generate_s:.1f} s",
    ]


def _plain(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    numeric = [all(_numeric(r[i]) for r in rows) and bool(rows) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _numeric(cell: str) -> bool:
    return cell == "-" or cell.replace(",", "").replace(".", "", 1).isdigit()


def _scenarios(report: SimulationReport) -> Table:
    return scenario_table(report) if report.days == 1 else scenario_summary_table(report)


def plain(report: SimulationReport, scenarios: bool = True) -> str:
    out = [*summary_lines(report), "", *_plain(*detector_table(report))]
    if scenarios:
        out += ["", *_plain(*_scenarios(report))]
    return "\n".join(out) + "\n"


def _markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    numeric = [all(_numeric(r[i]) for r in rows) and bool(rows) for i in range(len(headers))]
    out = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---:" if n else "---" for n in numeric) + " |",
    ]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def markdown(report: SimulationReport, scenarios: bool = True) -> str:
    out = [*(f"{line}  " for line in summary_lines(report)), "", *_markdown(*detector_table(report))]
    if scenarios:
        out += ["", *_markdown(*_scenarios(report))]
    return "\n".join(out) + "\n"
