"""The detection service over real gateways: signals become alerts and responses every instance enforces.

The gateways are built as ``apishield serve`` builds them: the enforcement
stages in the pipeline, the service started with the gateway, fed by the
audit writer's tap. The detection engine is replaced by a scripted one
(the subject is the service, not the detectors): it turns chosen events
into signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from apishield.core.pipeline import Pipeline
from apishield.detect.alerts import Alert, AlertQuery
from apishield.detect.service import DetectionService
from apishield.detect.signal import Signal
from apishield.proxy.gateway import Gateway
from apishield.runtime import load_runtime
from tests.detect.test_blocks import redis_keys, until
from tests.support import DATA, RecordingUpstream, ServerThread, eventually, http, write_policy
from tests.tokens import JWKSServer, claims, ec_key, jwt_auth, sign

T = TypeVar("T")


class ScriptedEngine:
    """Signals for requests to ``trap``: a block (or ``response``) of the caller's address or subject."""

    def __init__(self, trap: str = "/trap", response: str | None = "block", by: str = "ip") -> None:
        self.trap = trap
        self.response = response
        self.by = by
        self.seen: list[dict[str, Any]] = []

    def observe(self, events: list[dict[str, Any]]) -> list[Signal]:
        self.seen.extend(events)
        out = []
        for event in events:
            if event.get("http_request", {}).get("url", {}).get("path") != self.trap:
                continue
            if self.by == "ip":
                key = "ip:" + event["src_endpoint"]["ip"]
            else:
                key = "sub:" + event["actor"]["user"]["uid"]
            out.append(
                Signal(
                    "shadow_api",
                    key,
                    3,
                    event["time"],
                    "asked for a path no operation has",
                    {"paths": [self.trap], "requests": 1},
                    (event["metadata"]["uid"],),
                    self.response,
                )
            )
        return out


@dataclasses.dataclass
class Instance:
    server: ServerThread
    service: DetectionService
    pipeline: Pipeline

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self.server.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.server.loop).result(10)

    def call(self, method: str, target: str, headers: dict[str, str] | None = None) -> Any:
        return http(self.server.port, method, target, headers=headers)

    def recent_events(self) -> list[dict[str, Any]]:
        return list(self.pipeline.recorder.recent)


@contextlib.contextmanager
def instance(policy: Path, name: str, engine: Any = None) -> Iterator[Instance]:
    """A gateway as ``apishield serve`` builds it, on real sockets; ``engine`` replaces the detectors."""
    runtime = load_runtime(policy)
    gateway = Gateway.from_runtime(runtime, admin=False)
    assert gateway.observability is not None
    service = gateway.observability.detection
    assert service is not None
    service.instance = name
    if engine is not None:
        service.engine = engine
    server = ServerThread(gateway).start()
    try:
        yield Instance(server, service, runtime.pipeline)
    finally:
        server.stop()


def now_ms() -> int:
    return int(time.time() * 1000)


def decisions(event: dict[str, Any]) -> list[dict[str, Any]]:
    decided: list[dict[str, Any]] = event["unmapped"].get("decisions", [])
    return decided


@pytest.fixture()
def upstream() -> Iterator[tuple[RecordingUpstream, ServerThread]]:
    recording = RecordingUpstream()
    server = ServerThread(recording).start()
    try:
        yield recording, server
    finally:
        server.stop()


# -- two instances sharing Redis ---------------------------------------------------------------------------


@pytest.fixture()
def redis_prefix() -> Iterator[tuple[str, str]]:
    with redis_keys() as found:
        yield found


def test_block_through_instance_a_is_enforced_by_instance_b_on_the_next_request(
    tmp_path: Path, upstream: tuple[RecordingUpstream, ServerThread], redis_prefix: tuple[str, str]
) -> None:
    recording, up = upstream
    url, prefix = redis_prefix
    key = ec_key("k1")
    jwks = ServerThread(JWKSServer(key)).start()
    auth = jwt_auth(jwks.port)
    detection = {
        "alerts": {"path": "alerts.db"},
        "blocks": {"store": url, "key_prefix": prefix + "blocks:", "resync_interval": "30s"},
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    policy_a = write_policy(tmp_path / "a", DATA / "secure31.yaml", up.port, auth=auth, detection=detection)
    policy_b = write_policy(tmp_path / "b", DATA / "secure31.yaml", up.port, auth=auth, detection=detection)
    mallory = {"Authorization": "Bearer " + sign(key, claims(sub="mallory"))}
    alice = {"Authorization": "Bearer " + sign(key, claims(sub="alice"))}
    try:
        with instance(policy_a, "gw-a") as a, instance(policy_b, "gw-b") as b:
            assert b.call("GET", "/things", mallory).status == 200
            alerts = a.run(
                a.service.handle(
                    [
                        Signal(
                            "enumeration",
                            "sub:mallory",
                            4,
                            now_ms(),
                            "refused 40 customer ids",
                            {"denied_objects": 40},
                            ("ev-1",),
                            "block",
                            "/customers/{id}",
                        )
                    ]
                )
            )
            alert = alerts[0]
            stored = a.run(a.service.alerts.get(alert.id))
            assert (
                stored is not None and stored.response is not None and stored.response.startswith("block bl-")
            )
            block_id = stored.response.split()[1]

            eventually(
                lambda: b.service.blocklist.get("subject", "mallory", time.time()) is not None, "B learns"
            )
            recording.received.clear()
            refused = b.call("GET", "/things", mallory)
            assert refused.status == 403
            assert refused.json()["type"].endswith("/blocked")
            assert recording.received == []  # never reached the upstream
            assert b.call("GET", "/things", alice).status == 200
            assert a.call("GET", "/things", mallory).status == 403  # A enforces its own block at once
            denial = next(
                d
                for e in reversed(b.recent_events())
                for d in decisions(e)
                if d["stage"] == "principal_blocks" and d["outcome"] == "deny"
            )
            assert denial["rule"] == block_id

            # lifted through the shared store (as `apishield blocks remove` does): B serves mallory again
            removed = a.run(a.service.blocks.remove(block_id))
            assert removed is not None and removed.alert_id == alert.id
            eventually(lambda: b.service.blocklist.get("subject", "mallory", time.time()) is None, "B lifts")
            assert b.call("GET", "/things", mallory).status == 200
    finally:
        jwks.stop()


def test_block_survives_a_gateway_restart(
    tmp_path: Path, upstream: tuple[RecordingUpstream, ServerThread], redis_prefix: tuple[str, str]
) -> None:
    _, up = upstream
    url, prefix = redis_prefix
    detection = {"blocks": {"store": url, "key_prefix": prefix + "blocks:"}, "alerts": {"path": "alerts.db"}}
    policy = write_policy(tmp_path, DATA / "shop31.yaml", up.port, detection=detection)
    with instance(policy, "gw-1", ScriptedEngine()) as first:
        assert first.call("GET", "/trap").status == 404
        eventually(lambda: len(first.service.blocklist) == 1, "blocked")
        assert first.call("GET", "/items").status == 403
    with instance(policy, "gw-1-restarted") as second:
        assert second.call("GET", "/items").status == 403


# -- one instance ----------------------------------------------------------------------------------------


def test_request_events_become_an_alert_a_finding_and_a_block(
    tmp_path: Path, upstream: tuple[RecordingUpstream, ServerThread]
) -> None:
    recording, up = upstream
    recording.answer("GET", "/items", body=[])
    policy = write_policy(
        tmp_path, DATA / "shop31.yaml", up.port, detection={"alerts": {"path": "alerts.db"}}
    )
    engine = ScriptedEngine()
    with instance(policy, "gw", engine) as gw:
        assert gw.call("GET", "/items").status == 200
        assert gw.call("GET", "/trap").status == 404
        # the audit writer hands the events to the service's tap; the engine's signal becomes a block
        eventually(lambda: len(gw.service.blocklist) == 1, "the block")
        assert gw.call("GET", "/items").status == 403
        trap_uid = next(
            e["metadata"]["uid"]
            for e in gw.recent_events()
            if e["class_uid"] == 6003 and e["http_request"]["url"]["path"] == "/trap"
        )

        # the block is enforced first, then the response is noted on the alert: wait for the note
        def responded() -> list[Alert]:
            listed = gw.run(gw.service.alerts.query(AlertQuery()))
            return listed if listed and listed[0].response is not None else []

        eventually(lambda: bool(responded()), "the response noted on the alert")
        listed = responded()
        assert len(listed) == 1
        alert = listed[0]
        assert (alert.detector, alert.key, alert.event_ids) == ("shadow_api", "ip:127.0.0.1", (trap_uid,))
        assert alert.response is not None and alert.response.startswith("block ")
        # the alert is in the audit trail too, as an OCSF Detection Finding linked to the event
        eventually(lambda: any(e["class_uid"] == 2004 for e in gw.recent_events()), "the finding")
        finding = next(e for e in gw.recent_events() if e["class_uid"] == 2004)
        assert (finding["activity_id"], finding["severity_id"]) == (1, 3)
        assert finding["finding_info"]["uid"] == alert.id
        assert finding["finding_info"]["related_events"] == [{"uid": trap_uid}]
        # findings handed to the tap (from any thread) are not judged again; other events are
        marker = {"class_uid": 6003, "time": now_ms(), "metadata": {"uid": "marker"}}
        gw.service.tap([finding, marker])
        eventually(lambda: any(e["metadata"]["uid"] == "marker" for e in engine.seen), "the marker judged")
        assert all(e["class_uid"] != 2004 for e in engine.seen)
    assert (tmp_path / "alerts.db").exists()


def test_repeated_signals_make_one_alert_and_one_response(
    tmp_path: Path, upstream: tuple[RecordingUpstream, ServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    _, up = upstream
    policy = write_policy(
        tmp_path, DATA / "shop31.yaml", up.port, detection={"alerts": {"path": "alerts.db"}}
    )
    signals = [
        Signal(
            "enumeration", "sub:eve", 3, now_ms() + i, f"refusal {i}", {"denied": 20 + i}, (f"e{i}",), "block"
        )
        for i in range(4)
    ]
    signals.insert(2, dataclasses.replace(signals[1], severity=5, time_ms=signals[1].time_ms + 1))
    signals.append(
        Signal("credential_stuffing", "service:shop", 4, now_ms(), "low and slow", {}, (), "block")
    )
    with caplog.at_level(logging.INFO, logger="apishield.alerts"), instance(policy, "gw") as gw:
        alerts = gw.run(gw.service.handle(signals))
        assert len({a.id for a in alerts[:-1]}) == 1
        eve = gw.run(gw.service.alerts.get(alerts[0].id))
        assert eve is not None and eve.count == 5 and eve.severity == 5
        assert eve.evidence == {"denied": 23} and eve.event_ids == ("e0", "e1", "e2", "e3")
        assert gw.service.counters["responses"] == 1
        assert len(gw.service.blocklist) == 1
        population = gw.run(gw.service.alerts.get(alerts[-1].id))
        assert (
            population is not None
            and population.response == "none: service:shop names no caller that can be blocked"
        )
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "apishield.alerts"]
    kinds = [line["event"] for line in lines]
    assert kinds.count("alert.created") == 2 and kinds.count("alert.escalated") == 1
    assert kinds.count("alert.updated") == 3 and kinds.count("response.block") == 1
    created = next(line for line in lines if line["event"] == "alert.created")
    assert created["key"] == "sub:eve" and created["severity"] == "medium"


def test_dry_run_logs_what_it_would_block_and_blocks_nothing(
    tmp_path: Path, upstream: tuple[RecordingUpstream, ServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    _, up = upstream
    policy = write_policy(
        tmp_path, DATA / "shop31.yaml", up.port, detection={"dry_run": True, "alerts": {"path": "alerts.db"}}
    )
    with (
        caplog.at_level(logging.WARNING, logger="apishield.alerts"),
        instance(policy, "gw", ScriptedEngine()) as gw,
    ):
        assert gw.call("GET", "/trap").status == 404
        assert gw.call("GET", "/trap").status == 404
        eventually(lambda: gw.service.counters["signals"] == 2, "both signals handled")
        assert len(gw.service.blocklist) == 0
        assert gw.call("GET", "/trap").status == 404  # not 403
        listed = gw.run(gw.service.alerts.query(AlertQuery()))
        assert [a.response for a in listed] == ["dry-run: would block ip 127.0.0.1"]
    would = [orjson.loads(r.getMessage()) for r in caplog.records if "response.dry_run" in r.getMessage()]
    assert len(would) == 1  # once per alert
    assert (would[0]["action"], would[0]["kind"], would[0]["value"]) == ("block", "ip", "127.0.0.1")
    assert would[0]["seconds"] == 900.0 and would[0]["alert"] == listed[0].id


def test_throttle_answers_429_with_retry_after(
    tmp_path: Path, upstream: tuple[RecordingUpstream, ServerThread]
) -> None:
    recording, up = upstream
    recording.answer("GET", "/items", body=[])
    detection = {"alerts": {"path": "alerts.db"}, "blocks": {"throttle_rate": "2/min"}}
    policy = write_policy(tmp_path, DATA / "shop31.yaml", up.port, detection=detection)
    with instance(policy, "gw", ScriptedEngine(response="throttle")) as gw:
        assert gw.call("GET", "/trap").status == 404
        eventually(lambda: len(gw.service.blocklist) == 1, "throttled")
        answers = [gw.call("GET", "/items") for _ in range(3)]
        assert [a.status for a in answers] == [200, 200, 429]
        refused = answers[2]
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        problem = refused.json()
        assert problem["type"].endswith("#quota-exceeded") and problem["status"] == 429
        block = gw.service.blocklist.blocks(time.time())[0]
        assert (block.mode, block.rate, block.per) == ("throttle", 2, 60.0)
        assert problem["violated-policies"] == [block.id]
        last = gw.recent_events()[-1]
        assert {
            "stage": "ip_blocks",
            "outcome": "deny",
            "reason": "ip throttled, over its rate",
            "rule": block.id,
        } in (decisions(last))
        # a stronger response replaces the throttle; a weaker one does not replace a block
        gw.service.engine = ScriptedEngine(response="block")
        assert gw.call("GET", "/trap").status == 429
        eventually(lambda: gw.service.blocklist.blocks(time.time())[0].mode == "block", "escalated")
        assert gw.call("GET", "/items").status == 403


# -- detection across instances: the stream and its lease ------------------------------------------------


def test_stream_pools_events_for_one_runner_and_hands_over_the_lease(
    tmp_path: Path, redis_prefix: tuple[str, str]
) -> None:
    from apishield.config.model import Config

    url, prefix = redis_prefix
    config = Config.model_validate(
        {
            "openapi": "unused.yaml",
            "upstream": "http://127.0.0.1:9",
            "detection": {
                "alerts": {"path": "alerts.db"},
                "blocks": {"store": url, "key_prefix": prefix + "blocks:"},
                "stream": {"url": url, "name": prefix + "events", "lease": "1s"},
            },
        }
    )

    def event(n: int) -> dict[str, Any]:
        return {
            "class_uid": 6003,
            "time": now_ms(),
            "metadata": {"uid": f"ev-{n}", "product": {"name": "apishield"}},
            "src_endpoint": {"ip": "192.0.2.1"},
            "http_request": {"url": {"path": "/items"}},
            "unmapped": {"stage_us": {"route": 3}},
        }

    async def go(base: Path) -> None:
        engines = [ScriptedEngine(), ScriptedEngine()]
        services = []
        for n, engine in enumerate(engines):
            service = DetectionService.from_policy(config, base, f"gw-{n}", engine=engine)
            assert service is not None
            await service.start()
            services.append(service)
        try:
            await until(lambda: any(s.stream and s.stream.leader for s in services), "a runner")
            leader = next(i for i, s in enumerate(services) if s.stream and s.stream.leader)
            other = 1 - leader
            services[other].tap([event(1), event(2)])
            services[leader].tap([event(3)])
            await until(lambda: len(engines[leader].seen) == 3, "the runner sees every instance's events")
            assert engines[other].seen == []
            seen = {e["metadata"]["uid"] for e in engines[leader].seen}
            assert seen == {"ev-1", "ev-2", "ev-3"}
            projected = engines[leader].seen[0]
            assert "stage_us" not in projected["unmapped"] and "product" not in projected["metadata"]
            # the runner stops: the other takes the lease and reads on from the last acknowledged entry
            await services[leader].stop()
            services[other].tap([event(4)])
            await until(lambda: bool(services[other].stream and services[other].stream.leader), "takeover")
            await until(lambda: len(engines[other].seen) == 1, "events published meanwhile are judged")
            assert engines[other].seen[0]["metadata"]["uid"] == "ev-4"
        finally:
            for service in services:
                await service.stop()

    asyncio.run(go(tmp_path))
