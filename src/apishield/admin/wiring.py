"""Building the admin listener from the ``admin:`` policy and the adapter's parts.

One call gives an adapter (the gateway, the middleware, the demo) its admin
server; the adapter then starts and stops it with itself and tells its
readiness when it is up::

    admin = build_admin_server(
        config.admin, base_dir,
        writer=writer, auth=runtime.auth, effects=runner, limiter=ratelimits,
        pipeline=runtime.pipeline, operations=runtime.api.operations,
    )
    await admin.start()          # after the adapter's own startup
    admin.readiness.started()
    ...
    await admin.stop()           # before the adapter's shutdown

Every source is optional: what is not given is not measured. The request
metrics need the audit writer (they are computed from its event batches);
``pipeline`` adds the audit queue's depth and the events produced.

Readiness checks: ``started`` always; ``jwks`` when an issuer's keys are
fetched from a ``jwks_uri`` (every such key set must be usable). Shared
stores (the limiter's Redis, the audit sink) are deliberately not checks:
every instance shares them, so failing readiness on them would take the
whole fleet out of rotation at once; their state is in the metrics
(``apishield_ratelimit_store_up``, ``apishield_audit_sink_up``). Pass
``checks`` to add others.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apishield.admin.app import AdminApp, health_routes, metrics_route
from apishield.admin.credential import load_credential
from apishield.admin.readiness import Check, Readiness
from apishield.admin.registry import Registry
from apishield.admin.request_metrics import RequestMetrics
from apishield.admin.server import AdminServer
from apishield.admin.sources import (
    AuditWriterLike,
    watch_audit,
    watch_auth,
    watch_build,
    watch_effects,
    watch_limiter,
    watch_process,
    watch_registry,
)
from apishield.config.audit import AdminPolicy

if TYPE_CHECKING:
    from apishield.auth.state import AuthState
    from apishield.core.pipeline import Pipeline
    from apishield.ratelimit.service import RateLimitService
    from apishield.services.effects import EffectRunner

__all__ = ["build_admin_server", "build_registry", "jwks_check"]


def build_registry(
    *,
    writer: AuditWriterLike | None = None,
    auth: AuthState | None = None,
    effects: EffectRunner | None = None,
    limiter: RateLimitService | None = None,
    pipeline: Pipeline | None = None,
    operations: Collection[str] | None = None,
) -> tuple[Registry, RequestMetrics]:
    """The registry watching the given sources, and the request-metrics tap (not yet attached)."""
    registry = Registry()
    watch_build(registry)
    watch_process(registry)
    requests = RequestMetrics(registry, operations)
    if auth is None and effects is not None:
        auth = effects.state
    if auth is not None:
        watch_auth(registry, auth)
    if effects is not None:
        watch_effects(registry, effects)
    if limiter is not None:
        watch_limiter(registry, limiter)
    queue = pipeline.recorder if pipeline is not None else None
    if writer is not None or queue is not None:
        watch_audit(registry, writer, queue)
    watch_registry(registry)
    return registry, requests


def jwks_check(auth: Any) -> Check | None:
    """``jwks``: every fetched key set is usable (None when no issuer fetches its keys)."""
    fetched = [r for r in auth.issuers.values() if r.provider.jwks_uri is not None]
    if not fetched:
        return None

    def usable() -> bool:
        now = time.time()
        return all(r.keys.usable(now) is not None for r in fetched)

    return Check("jwks", usable)


def build_admin_server(
    policy: AdminPolicy,
    base_dir: Path,
    *,
    writer: AuditWriterLike | None = None,
    auth: AuthState | None = None,
    effects: EffectRunner | None = None,
    limiter: RateLimitService | None = None,
    pipeline: Pipeline | None = None,
    operations: Collection[str] | None = None,
    checks: Sequence[Check] = (),
) -> AdminServer:
    """The admin server for a policy; raises :class:`AdminConfigError` for an unusable credential.

    ``base_dir`` is the policy's folder (a relative ``token_file`` is read
    from there). The server is not started.
    """
    credential = load_credential(policy, base_dir)
    if auth is None and effects is not None:
        auth = effects.state
    readiness = Readiness(checks)
    if auth is not None:
        check = jwks_check(auth)
        if check is not None and all(c.name != "jwks" for c in checks):
            readiness.add(check)
    app = AdminApp(credential, health_routes(readiness))
    server = AdminServer(app, policy.host, policy.port, readiness=readiness)
    if policy.metrics:
        registry, requests = build_registry(
            writer=writer,
            auth=auth,
            effects=effects,
            limiter=limiter,
            pipeline=pipeline,
            operations=operations,
        )
        app.add(metrics_route(registry))
        server.registry = registry
        if writer is not None:
            writer.taps.append(requests)
            server.on_stop.append(lambda: _detach(writer, requests))
    return server


def _detach(writer: AuditWriterLike, tap: Any) -> None:
    if tap in writer.taps:
        writer.taps.remove(tap)
