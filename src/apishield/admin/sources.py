"""Metrics read at scrape time from the objects that already count things.

The token caches, the key sets, the effect runner, the limiter service and
the audit writer keep plain integer counters, incremented where the work
happens (an attribute increment, nothing more). These collectors copy them
into the registry when ``/metrics`` is scraped, so the request path never
touches the registry. Each ``watch_*`` function registers one collector.

Counters mirrored from elsewhere are exported with :meth:`Counter.set_total`;
they restart from zero with the process, as Prometheus counters may.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable
from typing import Any, Protocol

from apishield import __version__
from apishield.admin.registry import Registry

__all__ = [
    "AuditWriterLike",
    "watch_audit",
    "watch_auth",
    "watch_build",
    "watch_effects",
    "watch_limiter",
    "watch_process",
    "watch_registry",
]

Tap = Callable[[list[dict[str, Any]]], None]


class AuditWriterLike(Protocol):
    """What the metrics need of the audit writer: its taps, and counters in ``stats``.

    ``stats`` may have ``written``, ``spilled``, ``replayed``, ``dropped``
    (counts since start), ``queue_depth`` (events waiting) and ``sink_up``
    (bool); missing ones are not exported.
    """

    taps: list[Tap]

    @property
    def stats(self) -> Any: ...


def watch_build(registry: Registry) -> None:
    """``apishield_build_info``: always 1, labelled with the versions running."""
    info = registry.gauge(
        "apishield_build_info", "The apishield build running (always 1).", ("version", "python")
    )
    info.set((__version__, platform.python_version()), 1)


def watch_process(registry: Registry) -> None:
    """The standard ``process_*`` metrics: start time, CPU seconds, resident memory, open descriptors."""
    start = registry.gauge("process_start_time_seconds", "Start time of the process since the epoch.")
    cpu = registry.counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.")
    rss = registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
    fds = registry.gauge("process_open_fds", "Number of open file descriptors.")
    started = _process_start()
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def refresh() -> None:
        start.set((), started)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu.set_total((), usage.ru_utime + usage.ru_stime)
        try:
            with open("/proc/self/statm", "rb") as statm:
                rss.set((), int(statm.read().split()[1]) * page)
            fds.set((), len(os.listdir("/proc/self/fd")))
        except OSError:  # not Linux: the peak resident size is the best available
            rss.set((), usage.ru_maxrss * 1024)

    registry.collector(refresh)


def _process_start() -> float:
    """The process start in seconds since the epoch (Linux: boot time + start ticks; elsewhere: now)."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/stat", "rb") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return time.time()


def watch_auth(registry: Registry, auth: Any) -> None:
    """Token caches (hits, misses, entries) and each JWKS issuer's fetches and key usability.

    ``auth`` is an :class:`apishield.auth.state.AuthState`. A cache's hit
    ratio is ``rate(hits) / (rate(hits) + rate(misses))`` in PromQL.
    """
    hits = registry.counter(
        "apishield_token_cache_hits_total", "Verified-credential cache hits, by cache.", ("cache",)
    )
    misses = registry.counter(
        "apishield_token_cache_misses_total",
        "Verified-credential cache misses (absent or expired), by cache.",
        ("cache",),
    )
    entries = registry.gauge("apishield_token_cache_entries", "Entries in each cache.", ("cache",))
    fetches = registry.counter(
        "apishield_jwks_fetches_total",
        "JWKS fetches, by issuer and outcome (success, failure).",
        ("issuer", "outcome"),
        100,
    )
    usable = registry.gauge(
        "apishield_jwks_keys_usable",
        "1 when the issuer's key set may be used (fresh, or stale within stale_if_error).",
        ("issuer",),
        100,
    )
    caches = {
        "jwt": auth.token_cache,
        "introspection": auth.introspection_cache,
        "api_key": auth.api_key_cache,
    }

    def refresh() -> None:
        for name, cache in caches.items():
            hits.set_total((name,), cache.hits)
            misses.set_total((name,), cache.misses)
            entries.set((name,), len(cache))
        now = time.time()
        for runtime in auth.issuers.values():
            if runtime.provider.jwks_uri is None:
                continue  # keys from a file or a secret: never fetched
            keys = runtime.keys
            issuer = str(runtime.provider.issuer)
            fetches.set_total((issuer, "success"), keys.fetches - keys.fetch_failures)
            fetches.set_total((issuer, "failure"), keys.fetch_failures)
            usable.set((issuer,), 1 if keys.usable(now) is not None else 0)

    registry.collector(refresh)


def watch_effects(registry: Registry, effects: Any) -> None:
    """Token introspection calls (RFC 7662) made by an :class:`apishield.services.effects.EffectRunner`."""
    calls = registry.counter(
        "apishield_introspection_requests_total",
        "Token introspection requests, by outcome (success, failure).",
        ("outcome",),
    )

    def refresh() -> None:
        calls.set_total(("success",), effects.introspections - effects.introspection_failures)
        calls.set_total(("failure",), effects.introspection_failures)

    registry.collector(refresh)


_LIMITER_COUNTERS = {
    "queued": ("apishield_ratelimit_queued_total", "Requests that waited for a concurrency slot."),
    "queue_timeouts": (
        "apishield_ratelimit_queue_timeouts_total",
        "Requests that gave up waiting for a concurrency slot.",
    ),
    "batches": ("apishield_ratelimit_store_batches_total", "Round trips to the shared limiter store."),
    "store_errors": ("apishield_ratelimit_store_errors_total", "Failed round trips to the shared store."),
    "short_circuited": (
        "apishield_ratelimit_store_short_circuited_total",
        "Decisions made without the store while it was marked down.",
    ),
    "records_dropped": (
        "apishield_ratelimit_store_records_dropped_total",
        "Usage records dropped because the store was unreachable.",
    ),
}
_LIMITER_GAUGES = {
    "in_flight": ("apishield_ratelimit_in_flight", "Requests holding a concurrency slot."),
    "waiting": ("apishield_ratelimit_waiting", "Requests waiting for a concurrency slot."),
    "store_healthy": ("apishield_ratelimit_store_up", "1 when the shared limiter store answers."),
}


def watch_limiter(registry: Registry, limiter: Any) -> None:
    """Queueing at the in-flight gate and the shared store's health, from a ``RateLimitService``.

    Allowed and refused decisions per limit come from the audit events
    (``apishield_ratelimit_decisions_total``), for both store kinds.
    """
    counters = {key: registry.counter(name, text) for key, (name, text) in _LIMITER_COUNTERS.items()}
    gauges = {key: registry.gauge(name, text) for key, (name, text) in _LIMITER_GAUGES.items()}

    def refresh() -> None:
        figures = limiter.metrics()
        for key, counter in counters.items():
            if key in figures:
                counter.set_total((), figures[key])
        for key, gauge in gauges.items():
            if key in figures:
                gauge.set((), float(figures[key]))

    registry.collector(refresh)


_WRITER_COUNTERS = {
    "apishield_audit_events_written_total": ("written", "Audit events the sink accepted."),
    "apishield_audit_events_spilled_total": (
        "spilled",
        "Audit events written to the spill journal (sink down or slow, or queue full).",
    ),
    "apishield_audit_events_replayed_total": (
        "replayed",
        "Audit events replayed from the spill journal into the sink (part of written).",
    ),
    "apishield_audit_events_dropped_total": (
        "dropped",
        "Audit events lost (journal full or unwritable, unreadable journal lines).",
    ),
    "apishield_audit_events_acknowledged_total": (
        "acknowledged",
        "Audit events made durable before their response was sent (durability: acknowledged).",
    ),
    "apishield_audit_batches_total": ("batches", "Batches the sink accepted."),
    "apishield_audit_tap_errors_total": ("tap_errors", "Batches a tap (metrics, detectors) failed on."),
}
_WRITER_GAUGES = {
    "apishield_audit_queue_depth": ("queue_depth", "Audit events waiting in memory for the writer."),
    "apishield_audit_journal_bytes": (
        "journal_bytes",
        "Bytes in the spill journal the sink has not confirmed.",
    ),
    "apishield_audit_sink_up": ("sink_up", "1 when the audit sink accepts writes."),
}


def watch_audit(registry: Registry, writer: AuditWriterLike | None, queue: Any = None) -> None:
    """The audit trail's health: queue depth, events written, spilled, replayed, dropped; sink up.

    Read from the writer's ``stats`` (:class:`apishield.audit.writer.WriterStats`);
    a member it lacks is not exported. ``queue`` is the pipeline's
    :class:`~apishield.core.stages.audit.AuditQueue`: the events produced,
    and the queue depth when there is no writer (``audit.sink: off``).
    """
    counters = {
        attribute: registry.counter(name, text) for name, (attribute, text) in _WRITER_COUNTERS.items()
    }
    gauges = {attribute: registry.gauge(name, text) for name, (attribute, text) in _WRITER_GAUGES.items()}
    emitted = registry.counter("apishield_audit_events_emitted_total", "Audit events produced by requests.")

    def refresh() -> None:
        stats = writer.stats if writer is not None else None
        for attribute, counter in counters.items():
            value = getattr(stats, attribute, None)
            if value is not None:
                counter.set_total((), value)
        for attribute, gauge in gauges.items():
            value = getattr(stats, attribute, None)
            if value is not None:
                gauge.set((), float(value))
        if queue is not None:
            emitted.set_total((), queue.emitted)
            if stats is None:
                gauges["queue_depth"].set((), len(queue))

    registry.collector(refresh)


_DETECTION_COUNTERS = {
    "events": ("apishield_detection_events_total", "Audit events handed to the detectors."),
    "dropped": ("apishield_detection_events_dropped_total", "Events dropped: the detectors fell behind."),
    "signals": ("apishield_detection_signals_total", "Signals the detectors raised."),
    "alerts": ("apishield_detection_alerts_total", "Alerts opened (signals of a new detector and key)."),
    "responses": ("apishield_detection_responses_total", "Blocks and throttles imposed by detectors."),
}


def watch_detection(registry: Registry, service: Any) -> None:
    """The detection service (:class:`apishield.detect.service.DetectionService`): events judged,
    signals, alerts, responses, and the blocks in force in this process's mirror."""
    counters = {key: registry.counter(name, text) for key, (name, text) in _DETECTION_COUNTERS.items()}
    blocks = registry.gauge("apishield_detection_blocks_active", "Blocks and throttles in force here.")

    def refresh() -> None:
        for key, counter in counters.items():
            counter.set_total((), float(service.counters.get(key, 0)))
        blocks.set((), float(len(service.blocklist)))

    registry.collector(refresh)


def watch_registry(registry: Registry) -> None:
    """``apishield_metrics_overflow_total{metric}``: observations folded into an overflow series."""
    overflow = registry.counter(
        "apishield_metrics_overflow_total",
        "Observations counted under the _overflow label set because a metric reached its series cap.",
        ("metric",),
    )

    def refresh() -> None:
        for name, family in registry.families.items():
            if family.overflowed:
                overflow.set_total((name,), family.overflowed)

    registry.collector(refresh)
