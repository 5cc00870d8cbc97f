"""Run the simulation: generate the days, feed the engine in time order, score the signals.

Scoring. A signal is *true* when its key is one of a scenario's keys and it
came between the scenario's first request and ten minutes after its last
(windows close late); any other signal is a *false alert*, including one
about an attacker's key before or long after its attack. Per detector:

* precision: true signals / all its signals;
* recall: of the scenarios it is meant for, the share it signalled;
* time to detect: from the scenario's first request to the detector's first
  true signal, in simulated seconds and in the scenario's requests up to
  and including the one that tipped it (medians over its scenarios);
* false alerts per 1,000 legitimate principals (mobile users, support
  agents, partners) per simulated day;
* cost: the engine's time over its events (extraction included), µs/event,
  beside a baseline pass over the same batches (read each event's time,
  actor and status) timed in the same run: the machine may be shared, and
  the ratio moves less than the absolute figure.

Per scenario, the first signal of *any* detector decides whether it met the
target: detected within 60 simulated seconds or 200 attack requests,
whichever comes first.
"""

from __future__ import annotations

import random
import statistics
import time as _time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from apishield.config.detectors import DetectorsPolicy
from apishield.detect.engine import DetectionEngine
from apishield.detect.signal import DETECTORS, Signal
from apishield.detect.simulate.api import Api
from apishield.detect.simulate.events import Call, Emitter
from apishield.detect.simulate.scenarios import SCENARIOS, Scenario, make_scenarios
from apishield.detect.simulate.traffic import DAY_MS, Item, day_traffic
from apishield.detect.simulate.world import build_world

__all__ = ["DetectorFigures", "ScenarioFigures", "SimulationReport", "events", "simulate"]

START = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)  # a Monday, 00:00 UTC
GRACE_MS = 600_000
TARGET_S = 60
TARGET_REQUESTS = 200


@dataclass
class DetectorFigures:
    detector: str
    signals: int
    true: int
    false: int
    precision: float | None
    scenarios: int
    detected: int
    recall: float | None
    ttd_s: float | None
    ttd_requests: float | None
    false_per_1000_per_day: float


@dataclass
class ScenarioFigures:
    name: str
    day: int
    detector: str
    requests: int
    detected_by: list[str]
    first_s: float | None
    first_requests: int | None
    own_s: float | None
    own_requests: int | None
    met: bool


@dataclass
class SimulationReport:
    seed: int
    users: int
    days: int
    principals: int
    events: int
    attack_events: int
    signals: int
    true_signals: int
    false_signals: int
    false_per_1000_per_day: float
    us_per_event: float
    baseline_us_per_event: float
    generate_s: float
    detectors: list[DetectorFigures]
    scenarios: list[ScenarioFigures]
    keys: dict[str, int]
    false_samples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def baseline_pass(batch: list[dict[str, Any]]) -> int:
    """The yardstick for the engine's cost: read each event's time, actor and status, nothing else."""
    total = 0
    for event in batch:
        total += event["time"]
        actor = event.get("actor")
        response = event.get("http_response")
        if actor is not None and response is not None:
            total += 1
    return total


def events(
    *,
    users: int = 2000,
    days: int = 1,
    seed: int = 7,
    agents: int = 4,
    scenarios: list[str] | None = None,
    on_day: Callable[[int], None] | None = None,
    attacks: list[Scenario] | None = None,
) -> Iterator[tuple[dict[str, Any], str | None]]:
    """The simulated events in time order, each with its scenario label (``None``: legitimate).

    ``attacks`` (if given) receives the scenarios as they are made, their
    ``times`` filled in as their events are produced.
    """
    rng = random.Random(seed)
    world = build_world(rng, users, agents)
    api = Api(world, rng)
    emitter = Emitter(random.Random(seed + 1))
    by_label: dict[str, Scenario] = {}
    carry: list[Item] = []
    seq = 0
    names = scenarios if scenarios is not None else list(SCENARIOS)
    for day in range(days):
        if on_day is not None:
            on_day(day)
        day_start = START + day * DAY_MS
        weekday = day % 7
        items = carry
        items.extend(day_traffic(world, api, rng, day_start, weekday))
        if names:
            made, attack_items = make_scenarios(world, api, rng, day, day_start, names)
            items.extend(attack_items)
            for sc in made:
                by_label[sc.label] = sc
                if attacks is not None:
                    attacks.append(sc)
        for item in items:
            if item.seq == 0:
                seq += 1
                item.seq = seq
        items.sort(key=lambda i: (i.t, i.seq))
        day_end = day_start + DAY_MS if day < days - 1 else None
        carry = []
        for item in items:
            if day_end is not None and item.t >= day_end:
                carry.append(item)
                continue
            event = emitter.api(item) if isinstance(item, Call) else emitter.auth(item)
            if item.label is not None:
                by_label[item.label].times.append(item.t)
            yield event, item.label


def simulate(
    *,
    users: int = 2000,
    days: int = 1,
    seed: int = 7,
    agents: int = 4,
    policy: DetectorsPolicy | None = None,
    scenarios: list[str] | None = None,
    batch: int = 256,
    progress: Callable[[str], None] | None = None,
    sink: Callable[[dict[str, Any]], None] | None = None,
) -> SimulationReport:
    """Generate ``days`` of traffic with the attack scenarios, run the engine, score its signals."""
    engine = DetectionEngine(policy)
    attacks: list[Scenario] = []
    signals: list[Signal] = []
    started = _time.perf_counter()
    pending: list[dict[str, Any]] = []
    total = attack_events = 0
    baseline_ns = 0
    clock = _time.perf_counter_ns

    def on_day(day: int) -> None:
        if progress is not None:
            progress(f"day {day + 1}/{days}: generating and detecting")

    for event, label in events(
        users=users, days=days, seed=seed, agents=agents, scenarios=scenarios, on_day=on_day, attacks=attacks
    ):
        total += 1
        if label is not None:
            attack_events += 1
        if sink is not None:
            sink(event)
        pending.append(event)
        if len(pending) >= batch:
            signals.extend(engine.observe(pending))
            started_ns = clock()
            baseline_pass(pending)
            baseline_ns += clock() - started_ns
            pending = []
    if pending:
        signals.extend(engine.observe(pending))
        started_ns = clock()
        baseline_pass(pending)
        baseline_ns += clock() - started_ns
    elapsed = _time.perf_counter() - started
    stats = engine.stats()
    principals = users + agents + 2
    return score(
        signals,
        attacks,
        seed=seed,
        users=users,
        days=days,
        principals=principals,
        events=total,
        attack_events=attack_events,
        us_per_event=stats.us_per_event,
        baseline_us_per_event=baseline_ns / max(total, 1) / 1000,
        generate_s=elapsed - (stats.cost_ns + baseline_ns) / 1e9,
        keys=stats.keys,
    )


def _match(signal: Signal, attacks: list[Scenario]) -> list[Scenario]:
    return [sc for sc in attacks if signal.key in sc.keys and sc.start <= signal.time_ms <= sc.end + GRACE_MS]


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def score(
    signals: list[Signal],
    attacks: list[Scenario],
    *,
    seed: int,
    users: int,
    days: int,
    principals: int,
    events: int,
    attack_events: int,
    us_per_event: float,
    baseline_us_per_event: float,
    generate_s: float,
    keys: dict[str, int],
) -> SimulationReport:
    true_by: dict[str, int] = dict.fromkeys(DETECTORS, 0)
    false_by: dict[str, int] = dict.fromkeys(DETECTORS, 0)
    first: dict[tuple[str, str], Signal] = {}  # (scenario label, detector) -> first true signal
    false_samples: list[dict[str, Any]] = []
    for signal in signals:
        matched = _match(signal, attacks)
        if matched:
            true_by[signal.detector] += 1
            for sc in matched:
                key = (sc.label, signal.detector)
                if key not in first:
                    first[key] = signal
        else:
            false_by[signal.detector] += 1
            if len(false_samples) < 40:
                false_samples.append(signal.as_dict())
    scale = principals / 1000 * max(days, 1)
    scenario_rows: list[ScenarioFigures] = []
    for sc in attacks:
        found = {d: s for (label, d), s in first.items() if label == sc.label}

        def when(s: Signal | None, sc: Scenario = sc) -> tuple[float | None, int | None]:
            if s is None:
                return None, None
            return round((s.time_ms - sc.start) / 1000, 1), bisect_right(sc.times, s.time_ms)

        earliest = min(found.values(), key=lambda s: s.time_ms, default=None)
        first_s, first_n = when(earliest)
        own_s, own_n = when(found.get(sc.detector))
        deadline = sc.start + TARGET_S * 1000
        if len(sc.times) >= TARGET_REQUESTS:
            deadline = min(deadline, sc.times[TARGET_REQUESTS - 1])
        met = earliest is not None and earliest.time_ms <= deadline
        scenario_rows.append(
            ScenarioFigures(
                name=sc.name,
                day=int(sc.label.rsplit("@", 1)[1]),
                detector=sc.detector,
                requests=len(sc.times),
                detected_by=sorted(found, key=DETECTORS.index),
                first_s=first_s,
                first_requests=first_n,
                own_s=own_s,
                own_requests=own_n,
                met=met,
            )
        )
    detector_rows = []
    for name in DETECTORS:
        mine = [r for r in scenario_rows if r.detector == name]
        detected = [r for r in mine if r.own_s is not None]
        n = true_by[name] + false_by[name]
        detector_rows.append(
            DetectorFigures(
                detector=name,
                signals=n,
                true=true_by[name],
                false=false_by[name],
                precision=round(true_by[name] / n, 3) if n else None,
                scenarios=len(mine),
                detected=len(detected),
                recall=round(len(detected) / len(mine), 3) if mine else None,
                ttd_s=_median([r.own_s for r in detected if r.own_s is not None]),
                ttd_requests=_median([float(r.own_requests) for r in detected if r.own_requests is not None]),
                false_per_1000_per_day=round(false_by[name] / scale, 3),
            )
        )
    false_total = sum(false_by.values())
    return SimulationReport(
        seed=seed,
        users=users,
        days=days,
        principals=principals,
        events=events,
        attack_events=attack_events,
        signals=len(signals),
        true_signals=sum(true_by.values()),
        false_signals=false_total,
        false_per_1000_per_day=round(false_total / scale, 3),
        us_per_event=round(us_per_event, 3),
        baseline_us_per_event=round(baseline_us_per_event, 3),
        generate_s=round(generate_s, 2),
        detectors=detector_rows,
        scenarios=scenario_rows,
        keys=keys,
        false_samples=false_samples,
    )
