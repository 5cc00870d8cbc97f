"""The console's Jinja2 templates: autoescaped, strictly undefined, loaded from the package.

Autoescaping is on for every template, so a value from an event (a user
agent, a path, a subject) is always text in the page. Chart data goes into
``<script type="application/json">`` blocks through ``tojson``, which
escapes ``<``, ``>``, ``&`` and quotes; the browser never runs those blocks.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from apishield.console.timeline import iso
from apishield.console.web import with_query

__all__ = ["Templates"]

_SEVERITY_CLASS = {
    1: "sev-info",
    2: "sev-low",
    3: "sev-medium",
    4: "sev-high",
    5: "sev-critical",
    6: "sev-critical",
}


class Templates:
    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("apishield.console", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["iso"] = iso
        self.env.filters["severity_class"] = lambda s: _SEVERITY_CLASS.get(int(s), "sev-medium")
        self.env.globals["with_query"] = with_query

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**context)
