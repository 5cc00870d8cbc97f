"""Rendering a registry in the Prometheus text format 0.0.4, or OpenMetrics 1.0.

Both formats are line-based: ``# HELP`` and ``# TYPE`` lines, then one
sample per line, ``name{label="value",...} value``. The differences that
matter here:

* a counter's ``# TYPE`` names the family without ``_total`` in OpenMetrics
  and with it in 0.0.4 (samples carry ``_total`` in both);
* OpenMetrics ends with ``# EOF``;
* histograms are the same in both: cumulative ``_bucket`` samples with an
  ``le`` label ending at ``le="+Inf"``, then ``_count`` (equal to the
  ``+Inf`` bucket) and ``_sum``.

Label values are escaped (backslash, double quote, line feed); they come
from operation ids, stage names and configured limit ids, never from a raw
request path, but an operation id is still text from a document.

:func:`negotiate` picks the format from the scraper's ``Accept`` header,
as Prometheus does (it asks for OpenMetrics first).
"""

from __future__ import annotations

import logging
import math

from apishield.admin.registry import Counter, Family, Gauge, Histogram, Labels, Registry

__all__ = ["OPENMETRICS", "TEXT_004", "negotiate", "number", "render"]

logger = logging.getLogger("apishield.admin")

TEXT_004 = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def negotiate(accept: str | None) -> str:
    """The content type to answer with: OpenMetrics when the scraper accepts it, else text 0.0.4."""
    if accept and "application/openmetrics-text" in accept:
        return OPENMETRICS
    return TEXT_004


def _escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    """A sample value as Prometheus writes it: integers without a fraction, ``+Inf``, ``NaN``."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(names: tuple[str, ...], values: Labels, extra: str = "") -> str:
    parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _family(family: Family, openmetrics: bool, out: list[str]) -> None:
    name = family.name
    if isinstance(family, Counter):
        typed = name if openmetrics else name + "_total"
        out.append(f"# HELP {typed} {_escape_help(family.help)}")
        out.append(f"# TYPE {typed} counter")
        for key, value in sorted(family.snapshot()):
            out.append(f"{name}_total{_labels(family.labels, key)} {number(value)}")
    elif isinstance(family, Gauge):
        out.append(f"# HELP {name} {_escape_help(family.help)}")
        out.append(f"# TYPE {name} gauge")
        for key, value in sorted(family.snapshot()):
            out.append(f"{name}{_labels(family.labels, key)} {number(value)}")
    elif isinstance(family, Histogram):
        out.append(f"# HELP {name} {_escape_help(family.help)}")
        out.append(f"# TYPE {name} histogram")
        bounds = ['le="' + repr(b) + '"' for b in family.buckets] + ['le="+Inf"']
        scale = family.per_second
        for key, series in sorted(family.snapshot()):
            running = 0
            for le, count in zip(bounds, series[1:], strict=True):
                running += int(count)
                out.append(f"{name}_bucket{_labels(family.labels, key, le)} {running}")
            labels = _labels(family.labels, key)
            out.append(f"{name}_count{labels} {running}")
            total = series[0] if scale == 1 else series[0] / scale
            out.append(f"{name}_sum{labels} {number(float(total))}")


def render(registry: Registry, content_type: str = TEXT_004) -> bytes:
    """Refresh the collected values and render every family (under the registry's lock)."""
    openmetrics = content_type == OPENMETRICS
    out: list[str] = []
    with registry.locked():
        for refresh in registry.collectors:
            try:
                refresh()
            except Exception:  # a failing source must not take the other metrics down
                logger.exception("metrics collector %s failed", getattr(refresh, "__qualname__", refresh))
        for family in registry.families.values():
            _family(family, openmetrics, out)
    if openmetrics:
        out.append("# EOF")
    return ("\n".join(out) + "\n").encode()
