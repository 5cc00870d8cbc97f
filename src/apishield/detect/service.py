"""The adapter's side of detection: events in, alerts and responses out, off the request path.

One :class:`DetectionService` per gateway (or middleware) process. The
audit writer hands it every batch of events it drains (:meth:`tap`, one of
the writer's ``taps``); the service then, on its own tasks:

1. feeds the events to the detection engine: directly, or, with
   ``detection.stream``, through the Redis stream that pools every
   instance's events for the one runner holding the lease
   (:mod:`apishield.detect.stream`);
2. records each signal in the alert store, where it opens an alert or joins
   the open one (:mod:`apishield.detect.alerts`); logs every new, joined or
   escalated alert as one JSON line on the ``apishield.alerts`` logger,
   sends new and escalated ones to the webhooks
   (:mod:`apishield.detect.webhook`) and, when given a ``findings``
   callable, hands them over as OCSF Detection Findings (class 2004);
3. carries out the response a signal asks for (``block`` or ``throttle`` of
   its key, for the detector's ``block_duration``) through the block store,
   unless the key already has a response as strong, or, with ``dry_run``,
   only logs what it would have done (once per alert).

It also keeps :attr:`blocklist`, the mirror of the block store that the
enforcement stages read (:mod:`apishield.core.stages.blocklist`), in step
with the store. The tap never waits: batches beyond a bound are dropped
and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from apishield.config.detection import DetectionPolicy
from apishield.config.ratelimit import parse_rate
from apishield.detect.alerts import (
    Alert,
    AlertStore,
    Recorded,
    SignalFacts,
    StoreError,
    detection_finding,
    open_alert_store,
)
from apishield.detect.blocks import BlockList, BlockStore, make_block, open_block_store, target_of
from apishield.detect.webhook import WebhookSender
from apishield.services.cancellation import stop_tasks

if TYPE_CHECKING:
    from apishield.config.model import Config
    from apishield.detect.stream import EventStream

__all__ = ["DetectionConfigError", "DetectionService", "Engine"]

logger = logging.getLogger("apishield.alerts")
_runner_log = logging.getLogger("apishield.detect")

_MAX_QUEUED_EVENTS = 100_000
_FINDING_CLASS = 2004
_DEFAULT_DURATION = 900.0  # a signal from a detector the policy does not know (never, in practice)

Event = dict[str, Any]


class Engine(Protocol):
    """The detection engine (:class:`apishield.detect.engine.DetectionEngine`): events in, signals out."""

    def observe(self, events: list[Event]) -> Sequence[SignalFacts]: ...


class DetectionConfigError(Exception):
    """A ``detection:`` setting that cannot be used (a webhook secret that is not there, ...)."""


def build_engine(policy: DetectionPolicy) -> Engine | None:
    """The engine for ``policy.detectors``; None when detection is off or no engine is installed."""
    if not policy.enabled:
        return None
    try:
        module: Any = importlib.import_module("apishield.detect.engine")
    except ImportError:
        _runner_log.warning("no detection engine in this build: alerts come only from what is recorded")
        return None
    engine: Engine = module.DetectionEngine(policy.detectors)
    return engine


def _line(event: str, **fields: Any) -> str:
    return orjson.dumps({"event": event, **fields}, default=str).decode()


class DetectionService:
    def __init__(
        self,
        policy: DetectionPolicy,
        *,
        alerts: AlertStore,
        blocks: BlockStore,
        blocklist: BlockList | None = None,
        webhooks: WebhookSender | None = None,
        engine: Engine | None = None,
        instance: str = "local",
        findings: Callable[[Event], object] | None = None,
    ) -> None:
        self.policy = policy
        self.alerts = alerts
        self.blocks = blocks
        self.blocklist = blocklist if blocklist is not None else BlockList()
        self.webhooks = webhooks or WebhookSender([])
        self.engine = engine
        self.instance = instance
        self.findings = findings
        self.window_ms = int(policy.alerts.dedup_window * 1000)
        self.throttle_rate = parse_rate(policy.blocks.throttle_rate)
        self.stream: EventStream | None = None
        self.counters = {"events": 0, "dropped": 0, "signals": 0, "alerts": 0, "responses": 0}
        self._queue: deque[list[Event]] = deque()
        self._queued = 0
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: asyncio.Task[None] | None = None  # judges the local queue (without a stream)
        self._stopping = False

    # -- construction ----------------------------------------------------------------------------------

    @classmethod
    def from_policy(
        cls,
        config: Config,
        base_dir: Path,
        instance: str,
        *,
        blocklist: BlockList | None = None,
        findings: Callable[[Event], object] | None = None,
        engine: Engine | None = None,
    ) -> DetectionService | None:
        """The service for a policy's ``detection:`` section; None without one.

        ``blocklist`` is the mirror the enforcement stages read (one is made
        when not given); ``findings`` receives each new or escalated alert as
        an OCSF Detection Finding (e.g. the audit queue's ``emit``);
        ``engine`` replaces the one built from ``detection.detectors``.
        Raises :class:`DetectionConfigError` for settings that cannot be used.
        """
        policy = config.detection
        if policy is None:
            return None
        try:
            webhooks = WebhookSender.from_policies(policy.alerts.webhooks, base_dir)
        except ValueError as exc:
            raise DetectionConfigError(f"detection.alerts.webhooks: {exc}") from None
        try:
            alerts = open_alert_store(policy.alerts, base_dir, config.audit)
        except StoreError as exc:
            raise DetectionConfigError(f"detection.alerts: {exc}") from None
        blocks = open_block_store(
            policy.blocks.store, policy.blocks.key_prefix, policy.blocks.resync_interval
        )
        return cls(
            policy,
            alerts=alerts,
            blocks=blocks,
            blocklist=blocklist,
            webhooks=webhooks,
            engine=engine if engine is not None else build_engine(policy),
            instance=instance,
            findings=findings,
        )

    @classmethod
    def for_pipeline(
        cls,
        pipeline: Any,
        config: Config,
        base_dir: Path,
        instance: str,
        *,
        findings: Callable[[Event], object] | None = None,
        engine: Engine | None = None,
    ) -> DetectionService | None:
        """:meth:`from_policy` with the block list of ``pipeline``'s enforcement stages."""
        from apishield.core.stages.blocklist import IPBlockStage, PrincipalBlockStage

        blocklist = next(
            (s.blocklist for s in pipeline.stages if isinstance(s, (IPBlockStage, PrincipalBlockStage))), None
        )
        return cls.from_policy(
            config, base_dir, instance, blocklist=blocklist, findings=findings, engine=engine
        )

    # -- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the blocks, then keep them in step, deliver webhooks and judge events until :meth:`stop`."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._wake = asyncio.Event()
        try:
            self.blocklist.replace(await self.blocks.list())
        except Exception as exc:  # the sync task retries; the gateway starts without the shared blocks
            logger.warning("blocks could not be loaded at start: %s", exc)
        self._tasks.append(asyncio.create_task(self.blocks.sync(self.blocklist)))
        await self.webhooks.start()
        if self.engine is not None:
            if self.policy.stream is not None:
                from apishield.detect.stream import EventStream

                self.stream = EventStream(self.policy.stream, self.instance, self.judge)
                await self.stream.start()
            else:
                self._stopping = False
                self._runner = asyncio.create_task(self._run_local())

    async def stop(self) -> None:
        """Judge what is queued, then stop every task and close the stores."""
        if self._loop is None:
            return
        if self._runner is not None and self._wake is not None:
            # not cancelled: an engine call in its worker thread would outlive the cancellation
            self._stopping = True
            self._wake.set()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        if self.stream is not None:
            await self.stream.stop()
            self.stream = None
        await stop_tasks(self._tasks, "detection service", logger)
        self._tasks.clear()
        await self.webhooks.stop()
        await self.blocks.close()
        await self.alerts.close()
        self._loop = None

    # -- events in ---------------------------------------------------------------------------------------

    def tap(self, batch: list[Event]) -> None:
        """Take a batch of audit events (``writer.taps``); never waits, callable from any thread."""
        loop = self._loop
        if loop is None or self.engine is None or not batch:
            return
        events = [e for e in batch if e.get("class_uid") != _FINDING_CLASS]  # not our own findings
        if not events:
            return
        if threading.get_ident() == self._thread:
            self._accept(events)
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self._accept, events)

    def _accept(self, events: list[Event]) -> None:
        self.counters["events"] += len(events)
        if self.stream is not None:
            self.stream.publish(events)
            return
        if self._queued + len(events) > _MAX_QUEUED_EVENTS:
            self.counters["dropped"] += len(events)
            return
        self._queue.append(events)
        self._queued += len(events)
        if self._wake is not None:
            self._wake.set()

    def _take(self) -> list[Event]:
        events = [e for batch in self._queue for e in batch]
        self._queue.clear()
        self._queued = 0
        return events

    async def _run_local(self) -> None:
        """Judge the queued batches as they come; at stop, what is left, then return."""
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._queue:
                await self.judge(self._take())
            if self._stopping and not self._queue:
                return

    async def judge(self, events: list[Event]) -> None:
        """Run the engine over ``events`` and handle its signals; errors are logged, never raised."""
        engine = self.engine
        if engine is None or not events:
            return
        try:
            signals = await asyncio.to_thread(engine.observe, events)
        except Exception:
            _runner_log.exception("the detection engine failed on a batch of %d events", len(events))
            return
        if signals:
            await self.handle(signals)

    # -- signals out -------------------------------------------------------------------------------------

    async def handle(self, signals: Sequence[SignalFacts]) -> list[Alert]:
        """Record, announce and respond to each signal; the alerts as stored."""
        out: list[Alert] = []
        for signal in signals:
            self.counters["signals"] += 1
            try:
                recorded = await self.alerts.record(signal, self.window_ms)
            except Exception as exc:
                logger.error(
                    "%s", _line("alert.unrecorded", detector=signal.detector, key=signal.key, error=str(exc))
                )
                recorded = None
            if recorded is not None:
                self._announce(recorded)
                out.append(recorded.alert)
            if signal.response in ("block", "throttle"):
                try:
                    await self._respond(signal, recorded.alert if recorded is not None else None)
                except Exception as exc:
                    logger.error("%s", _line("response.failed", key=signal.key, error=str(exc)))
        return out

    def _announce(self, recorded: Recorded) -> None:
        alert = recorded.alert
        event = (
            "alert.created"
            if recorded.created
            else "alert.escalated"
            if recorded.escalated
            else "alert.updated"
        )
        logger.log(
            logging.INFO if event == "alert.updated" else logging.WARNING,
            "%s",
            _line(
                event,
                id=alert.id,
                detector=alert.detector,
                key=alert.key,
                severity=alert.severity_name,
                count=alert.count,
                summary=alert.summary,
                first_seen=alert.first_seen,
                last_seen=alert.last_seen,
                scope=alert.scope,
                event_ids=list(alert.event_ids[-5:]),
            ),
        )
        if event == "alert.updated":
            return
        self.counters["alerts"] += recorded.created
        self.webhooks.submit(event, alert)
        if self.findings is not None:
            try:
                self.findings(detection_finding(alert, recorded.created, self.instance))
            except Exception:
                logger.exception("could not record the detection finding of alert %s", alert.id)

    async def _respond(self, signal: SignalFacts, alert: Alert | None) -> None:
        mode = signal.response
        assert mode in ("block", "throttle")
        alert_id = alert.id if alert is not None else None
        target = target_of(signal.key)
        if target is None:
            if alert is not None and alert.response is None:
                note = f"none: {signal.key} names no caller that can be blocked"
                await self.alerts.set_response(alert.id, note)
            return
        kind, value = target
        now = time.time()
        existing = self.blocklist.get(kind, value, now)
        if existing is not None and (existing.mode == "block" or mode == "throttle"):
            return  # already answered as strongly
        duration = self._duration(signal.detector)
        rate, per = self.throttle_rate
        if self.policy.dry_run:
            if alert is None or alert.response is None:
                logger.warning(
                    "%s",
                    _line(
                        "response.dry_run",
                        action=mode,
                        kind=kind,
                        value=value,
                        seconds=duration,
                        alert=alert_id,
                    ),
                )
                if alert is not None:
                    await self.alerts.set_response(alert.id, f"dry-run: would {mode} {kind} {value}")
            return
        block = make_block(
            kind,
            value,
            until=now + duration,
            mode=mode,
            rate=rate if mode == "throttle" else None,
            per=per,
            reason=f"{signal.detector}: {signal.summary}",
            alert_id=alert_id,
            created_by=f"detector:{signal.detector}@{self.instance}",
            created_at=now,
        )
        await self.blocks.add(block)
        self.blocklist.put(block)  # this instance enforces it at once
        self.counters["responses"] += 1
        logger.warning(
            "%s",
            _line(f"response.{mode}", id=block.id, kind=kind, value=value, until=block.until, alert=alert_id),
        )
        if alert is not None:
            await self.alerts.set_response(alert.id, f"{mode} {block.id}")

    def _duration(self, detector: str) -> float:
        try:
            return float(self.policy.detectors.settings(detector).block_duration)
        except (KeyError, AttributeError):
            return _DEFAULT_DURATION
