"""The admin listener: Prometheus metrics, liveness and readiness, on a socket of its own.

It is separate from the API listener so that metrics and health never share
a port, a credential or a rate limit with the traffic they describe; it
listens on loopback unless ``admin.token_file``/``admin.token_env`` sets a
credential (:class:`apishield.config.audit.AdminPolicy`).

* :mod:`.registry`: counters, gauges and histograms with bounded label sets;
* :mod:`.exposition`: the Prometheus text format 0.0.4 and OpenMetrics 1.0;
* :mod:`.request_metrics`: request metrics computed from audit-event batches;
* :mod:`.sources`: counters read at scrape time (caches, key sets, limiter, writer);
* :mod:`.credential`, :mod:`.readiness`, :mod:`.app`: the ASGI application;
* :mod:`.server`: its uvicorn server inside the adapter's event loop;
* :mod:`.wiring`: :func:`build_admin_server`, the one call an adapter makes.
"""

from apishield.admin.app import AdminApp, AdminRequest, Answer, Route
from apishield.admin.credential import AdminConfigError
from apishield.admin.readiness import Check, Readiness
from apishield.admin.registry import Registry
from apishield.admin.request_metrics import RequestMetrics
from apishield.admin.server import AdminServer
from apishield.admin.wiring import build_admin_server

__all__ = [
    "AdminApp",
    "AdminConfigError",
    "AdminRequest",
    "AdminServer",
    "Answer",
    "Check",
    "Readiness",
    "Registry",
    "RequestMetrics",
    "Route",
    "build_admin_server",
]
