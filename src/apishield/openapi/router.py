"""Matching a request path to an OpenAPI path template.

OAS 3.1 §4.8.8 (Paths Object): "When matching URLs, concrete (non-templated)
paths would be matched before their templated counterparts", and templated
paths with the same hierarchy but different parameter names are invalid.
We generalise that rule segment by segment: at each segment a literal match
is preferred to a template, so ``/customers/search`` beats
``/customers/{id}``, and ``/a/{x}/c`` beats ``/a/{x}/{y}``.

The router works on *decoded* segments produced by
:func:`apishield.core.normalize.split_path`, so routing, validation and the
request that is forwarded all agree on one reading of the path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Route", "RouteConflict", "Router"]

T = TypeVar("T")

_PARAM = re.compile(r"\{([^{}/]+)\}")


class RouteConflict(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Route(Generic[T]):
    template: str
    target: T
    params: tuple[str, ...]


@dataclass
class _Node(Generic[T]):
    literal: dict[str, _Node[T]] = field(default_factory=dict)
    # (compiled matcher or None for a whole-segment parameter, parameter names, child)
    templated: list[tuple[re.Pattern[str] | None, tuple[str, ...], _Node[T]]] = field(default_factory=list)
    route: Route[T] | None = None


def _segment_matcher(segment: str) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
    names = tuple(_PARAM.findall(segment))
    if segment == "{" + names[0] + "}" and len(names) == 1:
        return None, names
    pattern = ""
    last = 0
    for m in _PARAM.finditer(segment):
        pattern += re.escape(segment[last : m.start()]) + "(.+?)"
        last = m.end()
    pattern += re.escape(segment[last:])
    return re.compile(pattern + r"\Z"), names


class Router(Generic[T]):
    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._shapes: dict[str, str] = {}

    def add(self, template: str, target: T) -> None:
        if not template.startswith("/"):
            raise RouteConflict(f"path {template!r} must start with '/'")
        if _PARAM.sub("", template).count("{") or _PARAM.sub("", template).count("}"):
            raise RouteConflict(f"path {template!r} has an unbalanced or empty template expression")
        shape = _PARAM.sub("{}", template)
        if shape in self._shapes:
            raise RouteConflict(f"paths {self._shapes[shape]!r} and {template!r} are identical templates")
        self._shapes[shape] = template
        node = self._root
        params: list[str] = []
        for segment in template.split("/")[1:]:
            if "{" not in segment:
                node = node.literal.setdefault(segment, _Node())
                continue
            matcher, names = _segment_matcher(segment)
            params.extend(names)
            for existing_matcher, existing_names, child in node.templated:
                same = (existing_matcher is None and matcher is None) or (
                    existing_matcher is not None
                    and matcher is not None
                    and existing_matcher.pattern == matcher.pattern
                )
                if same and existing_names == names:
                    node = child
                    break
            else:
                child = _Node[T]()
                node.templated.append((matcher, names, child))
                # whole-segment parameters are tried after partial templates (more specific first)
                node.templated.sort(key=lambda t: t[0] is None)
                node = child
        node.route = Route(template, target, tuple(params))

    def match(self, segments: list[str]) -> tuple[Route[T], dict[str, str]] | None:
        return self._match(self._root, segments, 0, {})

    def _match(
        self, node: _Node[T], segments: list[str], i: int, found: dict[str, str]
    ) -> tuple[Route[T], dict[str, str]] | None:
        if i == len(segments):
            return (node.route, found) if node.route is not None else None
        segment = segments[i]
        child = node.literal.get(segment)
        if child is not None:
            hit = self._match(child, segments, i + 1, found)
            if hit is not None:
                return hit
        if segment == "":
            return None  # a template parameter never matches an empty segment
        for matcher, names, child in node.templated:
            if matcher is None:
                values = {names[0]: segment}
            else:
                m = matcher.match(segment)
                if m is None:
                    continue
                values = dict(zip(names, m.groups(), strict=True))
            hit = self._match(child, segments, i + 1, {**found, **values})
            if hit is not None:
                return hit
        return None

    def templates(self) -> list[str]:
        return list(self._shapes.values())
