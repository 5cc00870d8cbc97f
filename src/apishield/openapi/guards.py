"""Property-level permissions (OWASP API3:2023, broken object property level authorization).

A property may carry who may read it and who may set it, in the document
(``x-apishield-read: [pii:read]``, ``x-apishield-write: [admin]``,
``x-apishield-read-if: "item.username == token.sub"``) or in the policy
(``authorization.properties.<Schema>.<property>``, which wins). A list of
names is satisfied by any one of them held as a scope or a role; a property
with both ``read`` and ``read_if`` is readable when either allows it.

Theory of operation
-------------------
Like the response stripper (:mod:`apishield.openapi.strip`), a *guard* is
compiled once per schema into closures and walks a body in place; unlike
it, its decisions depend on the caller, passed as a :class:`Caller`. Only
schemas that can reach a guarded property get a guard at all: for every
other schema :func:`compile_guard` returns None and costs nothing.

* read: a property the caller may not read is deleted from responses
  (nested objects and array elements included) and its pointer recorded;
* write: a property the caller may not set, present in a request body, is
  reported by pointer (the stage answers 403 naming it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Caller", "Guard", "PropertyPermission", "compile_guard"]

Mode = Literal["read", "write"]


@dataclass(frozen=True)
class PropertyPermission:
    read: frozenset[str] | None = None
    write: frozenset[str] | None = None
    read_if: Any = None  # a compiled rule (apishield.core.stages.object_access.CompiledRule)


@dataclass
class Caller:
    grants: frozenset[str]  # scopes and roles
    rule_vars: dict[str, Any]  # token, principal

    def holds(self, names: frozenset[str]) -> bool:
        return not names.isdisjoint(self.grants)


# guard(value, caller, pointer, found) -> value; `found` collects pointers removed (read) or refused (write)
Guard = Callable[[Any, Caller, str, list[str]], Any]


def _esc(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


class _Compiler:
    def __init__(
        self,
        deref: Callable[[str], Any],
        mode: Mode,
        policy: dict[str, dict[str, PropertyPermission]],
        compile_rule: Callable[[str, str], Any],
    ) -> None:
        self.deref = deref
        self.mode = mode
        self.policy = policy
        self.compile_rule = compile_rule
        self.by_ref: dict[str, Guard | None] = {}
        self.pending: set[str] = set()

    def permission(self, schema_name: str | None, prop: str, sub: Any) -> PropertyPermission | None:
        if schema_name is not None and prop in self.policy.get(schema_name, {}):
            return self.policy[schema_name][prop]
        if not isinstance(sub, dict):
            return None
        read, write, read_if = (
            sub.get("x-apishield-read"),
            sub.get("x-apishield-write"),
            sub.get("x-apishield-read-if"),
        )
        if read is None and write is None and read_if is None:
            return None
        return PropertyPermission(
            read=frozenset(read) if isinstance(read, list) else None,
            write=frozenset(write) if isinstance(write, list) else None,
            read_if=self.compile_rule(read_if, f"x-apishield-read-if of {prop}")
            if isinstance(read_if, str)
            else None,
        )

    def compile(self, schema: Any, name: str | None = None) -> Guard | None:
        if not isinstance(schema, dict):
            return None
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self._ref(ref)
        props: dict[str, tuple[PropertyPermission | None, Guard | None]] = {}
        parts = [schema] + [s for k in ("allOf", "anyOf", "oneOf") for s in schema.get(k, ()) or ()]
        items_guard: Guard | None = None
        extra_guard: Guard | None = None
        for part in parts:
            part_name = name
            if isinstance(part, dict) and isinstance(part.get("$ref"), str):
                part_name = part["$ref"].rsplit("/", 1)[-1]
                target = self._target(part["$ref"])
                if part is not schema:
                    part = target
            if not isinstance(part, dict):
                continue
            for prop, sub in (part.get("properties") or {}).items():
                if prop in props:
                    continue
                perm = self.permission(part_name, prop, sub)
                props[prop] = (perm, self.compile(sub))
            if items_guard is None and isinstance(part.get("items"), dict):
                items_guard = self.compile(part["items"])
            if extra_guard is None and isinstance(part.get("additionalProperties"), dict):
                extra_guard = self.compile(part["additionalProperties"])
        active = {p: (perm, g) for p, (perm, g) in props.items() if perm is not None or g is not None}
        if not active and items_guard is None and extra_guard is None:
            return None
        return self._object(active, items_guard, extra_guard)

    def _target(self, ref: str) -> Any:
        try:
            return self.deref(ref)
        except (KeyError, IndexError):
            return None

    def _ref(self, ref: str) -> Guard | None:
        if ref in self.by_ref:
            return self.by_ref[ref]
        if ref in self.pending:  # recursive: look the guard up when it runs, once it is compiled
            by_ref = self.by_ref

            def lazy(value: Any, caller: Caller, pointer: str, found: list[str]) -> Any:
                guard = by_ref.get(ref)
                return guard(value, caller, pointer, found) if guard is not None else value

            return lazy
        self.pending.add(ref)
        guard = self.compile(self._target(ref), ref.rsplit("/", 1)[-1])
        self.pending.discard(ref)
        self.by_ref[ref] = guard
        return guard

    def _object(
        self,
        props: dict[str, tuple[PropertyPermission | None, Guard | None]],
        items_guard: Guard | None,
        extra_guard: Guard | None,
    ) -> Guard:
        mode = self.mode

        def guard(value: Any, caller: Caller, pointer: str, found: list[str]) -> Any:
            if type(value) is list and items_guard is not None:
                for i, element in enumerate(value):
                    value[i] = items_guard(element, caller, f"{pointer}/{i}", found)
                return value
            if type(value) is not dict:
                return value
            for key in list(value):
                entry = props.get(key)
                if entry is None:
                    if extra_guard is not None:
                        value[key] = extra_guard(value[key], caller, f"{pointer}/{_esc(key)}", found)
                    continue
                perm, sub = entry
                where = f"{pointer}/{_esc(key)}"
                if perm is not None and not _allowed(perm, mode, caller, value):
                    found.append(where)
                    if mode == "read":
                        del value[key]
                    continue
                if sub is not None:
                    value[key] = sub(value[key], caller, where, found)
            return value

        return guard


def _allowed(perm: PropertyPermission, mode: Mode, caller: Caller, holder: dict[str, Any]) -> bool:
    """Write: the caller holds one of ``write``. Read: one of ``read``, or ``read_if`` holds."""
    if mode == "write":
        return perm.write is None or caller.holds(perm.write)
    if perm.read is None and perm.read_if is None:
        return True
    if perm.read is not None and caller.holds(perm.read):
        return True
    if perm.read_if is not None:
        allowed, _ = perm.read_if.decide({**caller.rule_vars, "item": holder})
        return bool(allowed)
    return False


def compile_guard(
    schema: Any,
    deref: Callable[[str], Any],
    mode: Mode,
    policy: dict[str, dict[str, PropertyPermission]],
    compile_rule: Callable[[str, str], Any],
) -> Guard | None:
    """A guard for ``schema`` in ``mode``, or None when no guarded property is reachable."""
    return _Compiler(deref, mode, policy, compile_rule).compile(schema)
