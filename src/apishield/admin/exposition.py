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
from typing import Any

from apishield.admin.registry import Counter, Family, Histogram, Labels, Registry

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


def _heads(family: Family, key: Labels) -> Any:
    """The text before the value of each line of one series, formatted once and kept on the family."""
    heads = family.line_heads.get(key)
    if heads is not None:
        return heads
    name, names = family.name, family.labels
    if isinstance(family, Histogram):
        bounds = ['le="' + repr(b) + '"' for b in family.buckets] + ['le="+Inf"']
        labels = _labels(names, key)
        heads = (
            [f"{name}_bucket{_labels(names, key, le)} " for le in bounds],
            f"{name}_count{labels} ",
            f"{name}_sum{labels} ",
        )
    elif isinstance(family, Counter):
        heads = f"{name}_total{_labels(names, key)} "
    else:
        heads = f"{name}{_labels(names, key)} "
    family.line_heads[key] = heads
    return heads


def _family(family: Family, snapshot: list[tuple[Labels, Any]], openmetrics: bool, out: list[str]) -> None:
    name = family.name
    if isinstance(family, Counter):
        typed = name if openmetrics else name + "_total"
        kind = "counter"
    else:
        typed, kind = name, family.kind
    out.append(f"# HELP {typed} {_escape_help(family.help)}")
    out.append(f"# TYPE {typed} {kind}")
    if isinstance(family, Histogram):
        scale = family.per_second
        for key, series in sorted(snapshot):
            buckets, count, total = _heads(family, key)
            running = 0
            for head, observed in zip(buckets, series[1:], strict=True):
                running += int(observed)
                out.append(head + str(running))
            out.append(count + str(running))
            out.append(total + number(float(series[0] if scale == 1 else series[0] / scale)))
    else:
        for key, value in sorted(snapshot):
            out.append(_heads(family, key) + number(value))


def render(registry: Registry, content_type: str = TEXT_004) -> bytes:
    """Refresh the collected values and render every family.

    The lock is held while the collectors run and the numbers are copied,
    not while the text is formatted.
    """
    openmetrics = content_type == OPENMETRICS
    with registry.locked():
        for refresh in registry.collectors:
            try:
                refresh()
            except Exception:  # a failing source must not take the other metrics down
                logger.exception("metrics collector %s failed", getattr(refresh, "__qualname__", refresh))
        snapshots = [(family, family.snapshot()) for family in registry.families.values()]
    out: list[str] = []
    for family, snapshot in snapshots:
        _family(family, snapshot, openmetrics, out)
    if openmetrics:
        out.append("# EOF")
    return ("\n".join(out) + "\n").encode()
