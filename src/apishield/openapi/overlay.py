"""OpenAPI Overlay Specification 1.0.0: checking Overlay documents and applying them.

The policy may list Overlay documents that apishield applies, in order, to the
API's OpenAPI document when it loads it, so a team can tighten a generated or
third-party description (``pattern``, ``maxLength``, ``additionalProperties:
false``, ``security``...) without editing it.

Implemented (Overlay 1.0.0, https://spec.openapis.org/overlay/v1.0.0.html):

- §4.1 Versions: ``overlay`` is a ``1.0.<patch>`` string; the patch is ignored,
  any other major or minor version is refused (its feature set differs).
- §4.4.1 Overlay Object: ``overlay``, ``info`` and a non-empty ``actions`` array
  are required, ``extends`` is an optional string (informational: the policy
  decides which document an overlay applies to); actions apply in order, each
  to the result of the previous one. Actions must be unique (the 1.0 schema's
  ``uniqueItems``).
- §4.4.2 Info Object: ``title`` and ``version`` strings are required.
- §4.4.3 Action Object: ``target`` is an RFC 9535 JSONPath query; ``update`` is
  merged into each selected object (properties present only in ``update`` are
  added, objects merge recursively, arrays are concatenated, primitives
  replace primitives, any other pairing is an error) or appended, as one
  entry, to each selected array; ``remove: true`` removes each selected node
  from the object or array containing it and makes ``update`` irrelevant.
  Selected nodes must be objects or arrays, never primitives or null. (1.0
  says only that properties are "recursively merged" and "MUST be
  compatible"; the per-type rules above are the ones Overlay 1.1 spells out.)
- §4.6 Specification Extensions: ``x-`` fields are allowed in the Overlay, Info
  and Action objects; any other unknown field is an error.

JSONPath is RFC 9535 (the strict environment of python-jsonpath, with member
name shorthands restricted to the §2.5.1.1 grammar, so ``$.paths.*.x-internal``
must be written ``$.paths.*['x-internal']``); locations in messages are
Normalized Paths (§2.7). A target that selects nothing is not an error but is
reported as a warning, as are actions that cannot change anything.

The input document and overlays are never modified: the document is copied
first, as a tree (YAML anchors shared between two places are copied apart, so
an update at one place never shows up at the other).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonpath import CompoundJSONPath, JSONPath, JSONPathEnvironment, JSONPathError, JSONPathMatch, Lexer

__all__ = [
    "SUPPORTED_VERSIONS",
    "OverlayError",
    "OverlayWarning",
    "apply_overlay",
    "apply_overlays",
    "validate_overlay",
]

SUPPORTED_VERSIONS = "1.0.x"

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-.+)?$")
_ROOT_FIELDS = ("overlay", "info", "extends", "actions")
_INFO_FIELDS = ("title", "version")
_ACTION_FIELDS = ("target", "description", "update", "remove")
_MISSING: Any = object()


class OverlayError(Exception):
    """An Overlay document is invalid or cannot be applied to the document.

    ``source`` names the overlay (its file name or a label), ``action_index``
    is the position of the failing action in ``actions`` (``None`` for a
    problem outside the actions) and ``message`` says what is wrong.
    """

    def __init__(self, source: str, action_index: int | None, message: str) -> None:
        self.source = source
        self.action_index = action_index
        self.message = message
        super().__init__(_render(source, action_index, message))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.action_index, self.message))


@dataclass(frozen=True)
class OverlayWarning:
    """A suspicious but valid action, such as a target that selects nothing."""

    source: str
    action_index: int
    message: str

    def __str__(self) -> str:
        return _render(self.source, self.action_index, self.message)


def _render(source: str, action_index: int | None, message: str) -> str:
    where = f"{source}: actions[{action_index}]" if action_index is not None else source
    return f"{where}: {message}"


# --- JSONPath ---------------------------------------------------------------------------------------


class _RFC9535Lexer(Lexer):
    # RFC 9535 §2.5.1.1 member-name-shorthand: name-first *name-char. python-jsonpath also
    # accepts '-' here, which would let overlays through that other RFC 9535 tools reject.
    key_pattern = r"[a-zA-Z_\u0080-\ud7ff\ue000-\U0010ffff][a-zA-Z0-9_\u0080-\ud7ff\ue000-\U0010ffff]*"


class _RFC9535Environment(JSONPathEnvironment):
    lexer_class = _RFC9535Lexer


_JSONPATH = _RFC9535Environment(strict=True)


def _compile(target: str, source: str, index: int) -> JSONPath | CompoundJSONPath:
    invalid = f"'target' is not a valid RFC 9535 JSONPath query: {target!r}"
    if not target.lstrip().startswith("$"):
        raise OverlayError(
            source, index, f"{invalid}: a query starts with '$', the document root (e.g. $.paths)"
        )
    try:
        return _JSONPATH.compile(target)
    except (JSONPathError, RecursionError) as exc:
        reason = str(exc.args[0]) if exc.args else type(exc).__name__
        # the parser names its tokens TOKEN_INT, TOKEN_COMMA...: say "int", "comma"
        reason = re.sub(r"TOKEN_([A-Z_]+)", lambda m: m.group(1).lower().replace("_", " "), reason)
        token = getattr(exc, "token", None)
        message = f"{invalid}: {reason}"
        if token is not None and 0 <= token.index < len(target):
            message += f" at character {token.index + 1}"
        if token is not None and token.value == "-":
            message += _dash_hint(target, token.index)
        raise OverlayError(source, index, message) from None


def _dash_hint(target: str, index: int) -> str:
    """Suggest bracket notation for a dotted name with a '-' (``.x-internal``), which RFC 9535 forbids."""
    start = target.rfind(".", 0, index) + 1
    name = re.match(r"[\w-]*", target[start:])
    shown = name.group() if name else ""
    return f" (dot notation allows only letters, digits and '_' in names: write ['{shown}'] for .{shown})"


def _normalized_path(parts: Sequence[str | int]) -> str:
    """RFC 9535 §2.7 Normalized Path of a location."""
    return "$" + "".join(_segment(part) for part in parts)


_ESCAPES = {"\\": "\\\\", "'": "\\'", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _segment(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    escaped = (_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in part)
    return "['" + "".join(escaped) + "']"


# --- Checking the Overlay document ------------------------------------------------------------------


@dataclass(frozen=True)
class _Action:
    index: int
    target: str
    query: JSONPath | CompoundJSONPath
    update: Any  # _MISSING when absent
    remove: bool


def _kind(value: object, *, show: bool = True) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        name = "a boolean"
    elif isinstance(value, int | float):
        name = "a number"
    elif isinstance(value, str):
        name = "a string"
    else:
        name = f"a {type(value).__name__} value"
    shown = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    return f"{name} ({shown})" if show else name


def _must_be_string(value: object, field: str, what: str) -> str:
    if isinstance(value, str):
        return value
    hint = "; quote it in YAML" if isinstance(value, int | float) and not isinstance(value, bool) else ""
    raise ValueError(f"{field!r} must be {what}, got {_kind(value)}{hint}")


def _unknown_fields(obj: Mapping[Any, Any], known: tuple[str, ...], where: str) -> None:
    for key in obj:
        if key in known or (isinstance(key, str) and key.startswith("x-")):
            continue
        allowed = ", ".join(repr(k) for k in known)
        hint = (
            " ('copy' is an Overlay 1.1 feature; apishield implements Overlay 1.0)" if key == "copy" else ""
        )
        raise ValueError(f"unknown field {key!r} in {where}{hint}; allowed: {allowed} and 'x-' extensions")


def _check_version(overlay: Mapping[Any, Any]) -> None:
    if "overlay" not in overlay:
        raise ValueError(
            "missing required field 'overlay' (the Overlay Specification version, e.g. overlay: 1.0.0)"
        )
    version = _must_be_string(overlay["overlay"], "overlay", "a version string such as '1.0.0'")
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"'overlay' must be a version number such as '1.0.0', got {version!r}")
    major, minor = int(match.group(1)), int(match.group(2))
    if major != 1:
        raise ValueError(
            f"unsupported Overlay Specification major version {major} ({version!r}); "
            f"apishield supports Overlay {SUPPORTED_VERSIONS}"
        )
    if minor != 0:
        raise ValueError(
            f"unsupported Overlay Specification version {version!r}; apishield implements Overlay "
            f"{SUPPORTED_VERSIONS}, whose semantics differ from 1.{minor} (set overlay: 1.0.0 if the "
            "overlay only uses 1.0 features)"
        )


def _check_info(overlay: Mapping[Any, Any]) -> None:
    if "info" not in overlay:
        raise ValueError("missing required field 'info' (an object with 'title' and 'version')")
    info = overlay["info"]
    if not isinstance(info, Mapping):
        raise ValueError(f"'info' must be an object with 'title' and 'version', got {_kind(info)}")
    for field in _INFO_FIELDS:
        if field not in info:
            raise ValueError(f"'info' is missing required field {field!r}")
        _must_be_string(info[field], f"info.{field}", "a string")
    _unknown_fields(info, _INFO_FIELDS, "'info'")


def _check_root(overlay: object) -> list[Any]:
    """Check everything outside the actions; returns the actions array."""
    if not isinstance(overlay, Mapping):
        raise ValueError(f"an Overlay document must be an object, got {_kind(overlay, show=False)}")
    _check_version(overlay)
    _unknown_fields(overlay, _ROOT_FIELDS, "the Overlay object")
    _check_info(overlay)
    if "extends" in overlay:
        _must_be_string(overlay["extends"], "extends", "a string (a URI reference to the target document)")
    if "actions" not in overlay:
        raise ValueError("missing required field 'actions' (a non-empty array of Action Objects)")
    actions = overlay["actions"]
    if not isinstance(actions, list):
        raise ValueError(f"'actions' must be an array of Action Objects, got {_kind(actions, show=False)}")
    if not actions:
        raise ValueError("'actions' must contain at least one action")
    return actions


def _check_action(raw: object, index: int, source: str) -> _Action:
    try:
        if not isinstance(raw, Mapping):
            raise ValueError(f"an action must be an object, got {_kind(raw)}")
        if "target" not in raw:
            raise ValueError(
                "missing required field 'target' (an RFC 9535 JSONPath query such as $.paths.*.get)"
            )
        target = _must_be_string(raw["target"], "target", "a string (an RFC 9535 JSONPath query)")
        if "description" in raw:
            _must_be_string(raw["description"], "description", "a string")
        remove = raw.get("remove", False)
        if not isinstance(remove, bool):
            raise ValueError(f"'remove' must be a boolean (true or false), got {_kind(remove)}")
        _unknown_fields(raw, _ACTION_FIELDS, "the action")
    except ValueError as exc:
        raise OverlayError(source, index, str(exc)) from None
    query = _compile(target, source, index)
    return _Action(index, target, query, raw.get("update", _MISSING), remove)


def _same_json(a: object, b: object) -> bool:
    """JSON equality: unlike ``==``, true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping | list | tuple) or isinstance(b, Mapping | list | tuple):
        return False
    return a == b


def _parse(overlay: object, source: str) -> list[_Action]:
    try:
        raw_actions = _check_root(overlay)
    except ValueError as exc:
        raise OverlayError(source, None, str(exc)) from None
    actions = [_check_action(raw, i, source) for i, raw in enumerate(raw_actions)]
    seen: dict[str, list[int]] = {}
    for action in actions:
        for earlier in seen.get(action.target, []):
            if _same_json(raw_actions[earlier], raw_actions[action.index]):
                raise OverlayError(
                    source,
                    action.index,
                    f"this action repeats actions[{earlier}]; the actions of an overlay must be unique",
                )
        seen.setdefault(action.target, []).append(action.index)
    return actions


def validate_overlay(overlay: object, source: str) -> None:
    """Check that ``overlay`` is a valid Overlay 1.0.x document; raises :class:`OverlayError`.

    ``source`` names the overlay in messages (usually its file name). Every
    target is compiled, so a JSONPath syntax error is caught here rather than
    when the overlay is applied.
    """
    _parse(overlay, source)


# --- Applying actions -------------------------------------------------------------------------------


def _tree_copy(value: Any) -> Any:
    """A deep copy that never shares a container between two places (unlike ``copy.deepcopy``)."""
    if isinstance(value, Mapping):
        return {key: _tree_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_tree_copy(item) for item in value]
    return value


def _is_container(value: object) -> bool:
    return isinstance(value, dict | list)


class _Conflict(Exception):
    def __init__(self, where: str, current: object, new: object) -> None:
        super().__init__(where)
        self.where, self.current, self.new = where, current, new


def _merge(node: dict[Any, Any], update: Mapping[Any, Any], where: str) -> None:
    """Overlay 1.0 §4.4.3: merge the properties of ``update`` into ``node``, recursively."""
    for key, new in update.items():
        if key not in node:
            node[key] = _tree_copy(new)
            continue
        current = node[key]
        here = where + _segment(key) if isinstance(key, str | int) else f"{where}[{key!r}]"
        if isinstance(current, dict) and isinstance(new, Mapping):
            _merge(current, new, here)
        elif isinstance(current, list) and isinstance(new, list | tuple):
            current.extend(_tree_copy(new))
        elif not _is_container(current) and not isinstance(new, Mapping | list | tuple):
            node[key] = new
        else:
            raise _Conflict(here, current, new)


def _primitive_target_error(action: _Action, match: JSONPathMatch, source: str) -> OverlayError:
    found = f"target {action.target!r} selects {_kind(match.obj, show=False)} at {match.path}"
    parent_parts = match.parts[:-1]
    if match.parts and isinstance(match.parts[-1], int):
        advice = (
            "an array item that is not an object or array cannot be changed or removed on its own; "
            "replace the whole array instead (remove it, then add it back with an update of its parent)"
        )
    elif action.remove:
        advice = "Overlay 1.0 cannot remove a primitive value on its own; select an object or array"
    else:
        advice = (
            f"to change it, target the containing object {_normalized_path(parent_parts)} and give "
            f"'update' the property {match.parts[-1]!r}"
            if match.parts
            else "select an object or array"
        )
    return OverlayError(
        source, action.index, f"{found}; Overlay 1.0 targets must be objects or arrays: {advice}"
    )


def _remove(document: dict[str, Any], action: _Action, matches: list[JSONPathMatch], source: str) -> None:
    # Locate every container before deleting anything: deleting shifts array indices.
    by_container: dict[int, tuple[dict[Any, Any] | list[Any], set[Any]]] = {}
    for match in matches:
        if not match.parts:
            raise OverlayError(source, action.index, "'remove' cannot remove the document root ($)")
        container: Any = document
        for part in match.parts[:-1]:
            container = container[part]
        key = match.parts[-1]
        if isinstance(container, list) and isinstance(key, int) and key < 0:
            key += len(container)
        by_container.setdefault(id(container), (container, set()))[1].add(key)
    for container, keys in by_container.values():
        if isinstance(container, list):
            for position in sorted(keys, reverse=True):
                del container[position]
        else:
            for key in keys:
                container.pop(key, None)


def _update(
    action: _Action, matches: list[JSONPathMatch], source: str, warnings: list[OverlayWarning]
) -> None:
    update = action.update
    appended_array = False
    for match in matches:
        node = match.obj
        if isinstance(node, list):
            # §4.4.3: "the value of this field MUST be an entry to append to the array"
            node.append(_tree_copy(update))
            appended_array = appended_array or isinstance(update, list | tuple)
            continue
        assert isinstance(node, dict)
        if not isinstance(update, Mapping):
            raise OverlayError(
                source,
                action.index,
                f"target {action.target!r} selects an object at {match.path}, so 'update' must be an "
                f"object of properties to merge into it, got {_kind(update)}",
            )
        try:
            _merge(node, update, match.path)
        except _Conflict as exc:
            raise OverlayError(
                source,
                action.index,
                f"cannot merge 'update' into {exc.where}: the document has {_kind(exc.current, show=False)} "
                f"there and 'update' has {_kind(exc.new, show=False)} (objects merge into objects, arrays "
                "are concatenated with arrays, primitives replace primitives; to replace a value of "
                "another type, first remove the object that contains it, then add it back)",
            ) from None
    if appended_array:
        warnings.append(
            OverlayWarning(
                source,
                action.index,
                "'update' is an array and was appended to the selected array as a single nested entry, "
                "as Overlay 1.0 specifies; to add several entries, use one action per entry or update "
                "the parent object with the array as a property (arrays are concatenated when merged)",
            )
        )


def _apply_action(
    document: dict[str, Any], action: _Action, source: str, warnings: list[OverlayWarning]
) -> None:
    has_update = action.update is not _MISSING
    if not action.remove and not has_update:
        warnings.append(
            OverlayWarning(
                source, action.index, "the action has neither 'update' nor 'remove: true'; it changes nothing"
            )
        )
        return
    if action.remove and has_update:
        warnings.append(OverlayWarning(source, action.index, "'update' is ignored because 'remove' is true"))
    try:
        found = list(action.query.finditer(document))
    except (JSONPathError, RecursionError) as exc:
        reason = str(exc.args[0]) if exc.args else type(exc).__name__
        raise OverlayError(
            source, action.index, f"evaluating target {action.target!r} failed: {reason}"
        ) from None
    # A nodelist may hold a node twice ($.a[0,0]); act once on each location.
    matches = list({match.parts: match for match in found}.values())
    if not matches:
        warnings.append(
            OverlayWarning(
                source,
                action.index,
                f"target {action.target!r} selects nothing, so the action changes nothing "
                "(a typo in the path?)",
            )
        )
        return
    for match in matches:
        if not _is_container(match.obj):
            raise _primitive_target_error(action, match, source)
    if action.remove:
        _remove(document, action, matches, source)
    else:
        _update(action, matches, source, warnings)


def _copy_document(document: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(document, Mapping):
        raise TypeError(f"the OpenAPI document must be an object, got {type(document).__name__}")
    copied: dict[str, Any] = _tree_copy(document)
    return copied


def apply_overlay(
    document: dict[str, Any], overlay: dict[str, Any], source: str
) -> tuple[dict[str, Any], list[OverlayWarning]]:
    """Apply one Overlay document to an OpenAPI document.

    Returns a new document (``document`` and ``overlay`` are left untouched)
    and the warnings, in action order. Raises :class:`OverlayError` if the
    overlay is invalid or an action cannot be applied.
    """
    return apply_overlays(document, [(overlay, source)])


def apply_overlays(
    document: dict[str, Any], overlays: Sequence[tuple[dict[str, Any], str]]
) -> tuple[dict[str, Any], list[OverlayWarning]]:
    """Apply several ``(overlay, source)`` pairs in order, each to the result of the previous.

    All overlays are checked before any is applied. Returns a new document
    and the warnings of every overlay, in order.
    """
    parsed = [(_parse(overlay, source), source) for overlay, source in overlays]
    result = _copy_document(document)
    warnings: list[OverlayWarning] = []
    for actions, source in parsed:
        for action in actions:
            _apply_action(result, action, source, warnings)
    return result, warnings
