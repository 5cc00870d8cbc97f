"""Removing undocumented data from responses (excessive data exposure).

OWASP API3:2023 (broken object property level authorization) is mostly an
API returning more than it documents: an internal ``riskScore``, a
``passwordHash``. In ``strip`` mode the gateway deletes every JSON object
member the response schema does not declare, and every write-only member,
before a byte leaves; each removed member is reported by JSON pointer.

Theory of operation
-------------------
A *stripper* is compiled once per response schema into a small tree of
closures; at run time it walks the body in place, so cost is linear in the
body and independent of the schema's size.

What counts as declared, for an object value:

* ``properties`` and ``patternProperties`` declare members by name;
* ``additionalProperties`` that is a schema (or ``true``) declares every other
  member, whose values are then stripped by that schema;
* a schema that declares no members at all (``{}``, ``type: object`` alone)
  is a free-form object: its members are left alone;
* ``allOf``/``anyOf``/``oneOf`` declare the union of their branches (a member
  declared by any branch is kept and stripped by the first branch that
  declares it); ``$ref`` is followed, recursion included;
* a member whose schema is ``false`` (a write-only property in the response
  view) is removed.

Arrays are walked with ``items`` (and ``prefixItems`` by position).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["Stripper", "compile_stripper"]

# strip(value, pointer, removed) -> value (mutated in place where possible)
Stripper = Callable[[Any, str, list[str]], Any]


_SHAPE_KEYS = frozenset(
    {
        "properties",
        "patternProperties",
        "additionalProperties",
        "items",
        "prefixItems",
        "allOf",
        "anyOf",
        "oneOf",
    }
)


def _keep(value: Any, pointer: str, removed: list[str]) -> Any:
    return value


def _esc(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


class _Compiler:
    def __init__(self, deref: Callable[[str], Any]) -> None:
        self.deref = deref
        self.by_ref: dict[str, Stripper] = {}

    def compile(self, schema: Any) -> Stripper:
        if not isinstance(schema, dict):
            return _keep
        ref = schema.get("$ref")
        if isinstance(ref, str):
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            if not any(k in siblings for k in _SHAPE_KEYS):
                return self._ref(ref)
            # 3.1: keywords beside $ref apply too; declared members are the union of both
            return self.compile({"allOf": [{"$ref": ref}, siblings]})
        named: dict[str, Any] = {}
        patterns: list[tuple[re.Pattern[str], Any]] = []
        additional: Any = None
        declares = False
        items: Any = None
        prefix: list[Any] = []
        for part in self._parts(schema, set()):
            props = part.get("properties")
            if isinstance(props, dict):
                declares = True
                for name, sub in props.items():
                    named.setdefault(name, sub)
            pprops = part.get("patternProperties")
            if isinstance(pprops, dict):
                declares = True
                for pat, sub in pprops.items():
                    try:
                        patterns.append((re.compile(pat), sub))
                    except re.error:
                        additional = True if additional is None else additional
            add = part.get("additionalProperties")
            if add is not None and add is not False and additional is None:
                additional = add
                if isinstance(add, dict):
                    declares = True  # a map: every member's value is described by this schema
            if items is None and "items" in part:
                items = part["items"]
            if not prefix and isinstance(part.get("prefixItems"), list):
                prefix = part["prefixItems"]
        object_fn = self._object(named, patterns, additional) if declares else None
        array_fn = self._array(items, prefix) if (items is not None or prefix) else None
        if object_fn is None and array_fn is None:
            return _keep

        def strip(value: Any, pointer: str, removed: list[str]) -> Any:
            if object_fn is not None and type(value) is dict:
                return object_fn(value, pointer, removed)
            if array_fn is not None and type(value) is list:
                return array_fn(value, pointer, removed)
            return value

        return strip

    def _parts(self, schema: dict[str, Any], seen: set[str]) -> list[dict[str, Any]]:
        """The schema and, recursively, its combinator branches (refs followed)."""
        out = [schema]
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in schema.get(key, ()) or ():
                while isinstance(sub, dict) and isinstance(sub.get("$ref"), str):
                    ref = sub["$ref"]
                    if ref in seen:
                        sub = None
                        break
                    seen = seen | {ref}
                    sub = self.deref(ref)
                if isinstance(sub, dict):
                    out += self._parts(sub, seen)
        return out

    def _ref(self, ref: str) -> Stripper:
        if ref in self.by_ref:
            return self.by_ref[ref]
        slot: list[Stripper] = []

        def indirect(value: Any, pointer: str, removed: list[str]) -> Any:
            return slot[0](value, pointer, removed)

        self.by_ref[ref] = indirect
        try:
            target = self.deref(ref)
        except KeyError:
            target = {}
        slot.append(self.compile(target))
        return indirect

    def _object(
        self, named: dict[str, Any], patterns: list[tuple[re.Pattern[str], Any]], additional: Any
    ) -> Stripper:
        forbidden = frozenset(n for n, s in named.items() if s is False)
        compiled = {n: self.compile(s) for n, s in named.items() if s is not False}
        # escaped names computed once: pointers are built only for members that are recursed into
        children = {n: (f, "/" + _esc(n)) for n, f in compiled.items() if f is not _keep}
        allowed = frozenset(named) - forbidden
        pattern_fns = [(p, self.compile(s)) for p, s in patterns]
        extra_fn = self.compile(additional) if isinstance(additional, dict) else _keep
        open_object = additional is not None

        def strip_object(value: dict[str, Any], pointer: str, removed: list[str]) -> Any:
            for key in list(value):
                if key in allowed:
                    child = children.get(key)
                    if child is not None:
                        value[key] = child[0](value[key], pointer + child[1], removed)
                    continue
                if key in forbidden:
                    del value[key]
                    removed.append(f"{pointer}/{_esc(key)}")
                    continue
                for pat, fn in pattern_fns:
                    if pat.search(key):
                        value[key] = fn(value[key], f"{pointer}/{_esc(key)}", removed)
                        break
                else:
                    if open_object:
                        value[key] = extra_fn(value[key], f"{pointer}/{_esc(key)}", removed)
                    else:
                        del value[key]
                        removed.append(f"{pointer}/{_esc(key)}")
            return value

        return strip_object

    def _array(self, items: Any, prefix: list[Any]) -> Stripper:
        item_fn = self.compile(items) if isinstance(items, dict) else _keep
        prefix_fns = [self.compile(s) for s in prefix]
        if item_fn is _keep and all(f is _keep for f in prefix_fns):
            return _keep
        n_prefix = len(prefix_fns)

        def strip_array(value: list[Any], pointer: str, removed: list[str]) -> Any:
            for i, item in enumerate(value):
                fn = prefix_fns[i] if i < n_prefix else item_fn
                value[i] = fn(item, f"{pointer}/{i}", removed)
            return value

        return strip_array


def compile_stripper(schema: Any, deref: Callable[[str], Any]) -> Stripper:
    """Compile a stripper for a response-view schema; ``deref`` resolves ``$ref``."""
    return _Compiler(deref).compile(schema)
