"""What runs beside the request path in an adapter: the audit writer, detection, the admin listener.

The gateway, the middleware and the demo own one :class:`Observability`
each. It is built from the runtime (the policy and the pipeline), started
after the adapter's own start and stopped before its own stop, in this order:

* start: the writer (so no event waits), detection (its tap is added to the
  writer's taps; its block list is the one the pipeline's block stages
  read), then the admin listener, which is marked ready last;
* stop: the admin listener first (no scrapes of a half-stopped process),
  then the writer (everything queued reaches the sink or the journal, and
  the taps see the last batches), then detection (it judges what it was
  handed and closes its stores).

In ``durability: acknowledged`` the adapter awaits :meth:`durable` before it
sends each response; :class:`~apishield.audit.writer.AuditUnavailable` means
the event could not be made durable, and the adapter answers 503 instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from apishield.audit.writer import AuditWriter

if TYPE_CHECKING:
    from apishield.admin.server import AdminServer
    from apishield.console import Console
    from apishield.core.exchange import Exchange
    from apishield.core.stages.audit import AuditQueue
    from apishield.detect.service import DetectionService
    from apishield.ratelimit.service import RateLimitService
    from apishield.runtime import Runtime
    from apishield.services.effects import EffectRunner
    from apishield.services.tracing import ExchangeTracer

__all__ = ["Observability"]

log = logging.getLogger("apishield.observability")


class Observability:
    def __init__(
        self,
        writer: AuditWriter | None,
        detection: DetectionService | None = None,
        admin: AdminServer | None = None,
        console: Console | None = None,
    ) -> None:
        self.writer = writer
        self.detection = detection
        self.admin = admin
        self.console = console  # the investigation console, served by the admin listener
        self.acknowledged = writer is not None and writer.acknowledged
        # OpenTelemetry spans of each exchange (audit.traces); the adapters call traced() after answering
        self.tracer: ExchangeTracer | None = None
        self._started = False

    @classmethod
    def for_runtime(
        cls,
        runtime: Runtime,
        *,
        effects: EffectRunner | None = None,
        limiter: RateLimitService | None = None,
        admin: bool = True,
    ) -> Observability:
        """Build the parts a policy asks for (nothing is started).

        Raises :class:`~apishield.audit.writer.AuditSetupError`,
        :class:`~apishield.detect.service.DetectionConfigError` or
        :class:`~apishield.admin.server.AdminConfigError` with the setting named.
        """
        config = runtime.loaded.config
        base_dir = runtime.loaded.base_dir
        pipeline = runtime.pipeline
        queue = pipeline.recorder
        instance = pipeline.audit.instance if pipeline.audit is not None else "local"
        writer = AuditWriter.from_policy(queue, config.audit, base_dir, instance)
        if writer is None and (config.admin is not None or config.detection is not None):
            writer = _tap_only_writer(queue, instance)
        detection = None
        if config.detection is not None:  # its blocks are enforced even with the detectors off
            from apishield.detect.service import DetectionService

            detection = DetectionService.for_pipeline(
                pipeline, config, base_dir, instance, findings=queue.emit
            )
        server = None
        console = None
        if admin and config.admin is not None:
            from apishield.admin import build_admin_server

            server = build_admin_server(
                config.admin,
                base_dir,
                writer=writer,
                auth=runtime.auth,
                effects=effects,
                limiter=limiter,
                pipeline=pipeline,
                operations=runtime.api.operations,
            )
            from apishield.console import mount_console

            console = mount_console(server, runtime, detection)
        if server is not None and detection is not None and server.registry is not None:
            from apishield.admin.sources import watch_detection

            watch_detection(server.registry, detection)
        made = cls(writer, detection, server, console)
        if config.audit.traces:
            from apishield.services.tracing import ExchangeTracer

            made.tracer = ExchangeTracer()  # TracingUnavailable names the setting
            pipeline.tracing = True
        return made

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.writer is not None:
            await self.writer.start()
        if self.detection is not None:
            await self.detection.start()
            if self.writer is not None:
                self.writer.taps.append(self.detection.tap)
        if self.admin is not None:
            await self.admin.start()
            self.admin.readiness.started()
            log.info("admin listener on %s", self.admin.url)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.admin is not None:
            await self.admin.stop()
        if self.console is not None:
            await self.console.close()
        if self.writer is not None:
            await self.writer.stop()
        if self.detection is not None:
            await self.detection.stop()

    def traced(self, ex: Exchange) -> None:
        """Record the spans of an answered exchange (a no-op unless ``audit.traces``)."""
        if self.tracer is not None:
            try:
                self.tracer.record(ex)
            except Exception:  # tracing never fails a request
                log.exception("recording the spans of request %s failed", ex.request_id)

    async def durable(self) -> None:
        if self.writer is not None:
            await self.writer.durable()

    @property
    def parts(self) -> Sequence[Any]:
        return [p for p in (self.writer, self.detection, self.admin) if p is not None]


def _tap_only_writer(queue: AuditQueue, instance: str) -> AuditWriter:
    """``audit.sink: off`` with metrics or detection on: drain the queue to the taps, store nothing."""
    from apishield.audit.sinks.discard import DiscardSink

    return AuditWriter(queue, DiscardSink(), None, instance=instance)
