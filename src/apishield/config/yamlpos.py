"""YAML and JSON loading that remembers where every value came from.

Configuration errors must name the file, the line and the key path
(``apishield.yaml:12: validation.requests: ...``). PyYAML's composer keeps a
start mark on every node, so we compose the node graph ourselves and build
plain Python values alongside a map from key path to line number.

Only the YAML 1.1 safe subset is accepted (no Python tags), duplicate mapping
keys are rejected (a repeated key silently overriding an earlier one is a
classic way to disable a control by accident), and anchors/aliases are
expanded with a bound on the total number of nodes (billion-laughs guard).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["LoadedDocument", "SourceError", "load_document", "load_text"]

Path_ = tuple[str | int, ...]

MAX_NODES = 2_000_000


class SourceError(Exception):
    """A document could not be read or parsed; carries file and line."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.message = message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


@dataclass
class LoadedDocument:
    """A parsed document, its source name and a key-path → line index."""

    value: Any
    source: str
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """The line of the deepest known prefix of ``path`` (1-based)."""
        p = tuple(path)
        while True:
            if p in self.lines:
                return self.lines[p]
            if not p:
                return None
            p = p[:-1]


_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class _Builder:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Path_, int] = {}
        self.count = 0
        self.constructor = _Constructor()  # per document: constructors remember what they built
        self.active: set[int] = set()  # nodes on the current path: a recursive alias is refused

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        line = node.start_mark.line + 1
        if self.count > MAX_NODES:
            raise SourceError(self.source, line, "document too large (alias expansion?)")
        self.lines.setdefault(path, line)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if node.tag not in _COLLECTION_TAGS:
                raise SourceError(self.source, line, f"YAML tag {node.tag!r} is not allowed")
            if id(node) in self.active:
                raise SourceError(self.source, line, "recursive YAML alias")
            self.active.add(id(node))
            try:
                return self._collection(node, path)
            finally:
                self.active.discard(id(node))
        return self._scalar(node)

    def _collection(self, node: yaml.Node, path: Path_) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise SourceError(
                        self.source, key_node.start_mark.line + 1, "YAML merge keys (<<) are not supported"
                    )
                key = self._scalar(key_node)
                if isinstance(key, (dict, list)):
                    raise SourceError(
                        self.source, key_node.start_mark.line + 1, "mapping keys must be scalars"
                    )
                # status codes like 200 are keys in OpenAPI: keys are kept as strings
                skey = _key_text(key)
                if skey in out:
                    raise SourceError(self.source, key_node.start_mark.line + 1, f"duplicate key {skey!r}")
                self.lines[(*path, skey)] = key_node.start_mark.line + 1
                out[skey] = self.build(value_node, (*path, skey))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self.constructor.construct_object(node, deep=True)
        return self.build(node, ())


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


class _Constructor(yaml.constructor.SafeConstructor):
    pass


# Timestamps stay strings: OpenAPI examples and policy values are compared as text.
_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_str)  # type: ignore[type-var]


def _construct_int(constructor: Any, node: yaml.ScalarNode) -> int:
    """YAML 1.2 core integers: decimal, 0o octal, 0x hex (no 1.1 sexagesimal, no leading-zero octal)."""
    text = str(node.value)
    if text.startswith(("0o", "0O")):
        return int(text[2:], 8)
    if text.startswith(("0x", "0X")):
        return int(text[2:], 16)
    return int(text, 10)


_Constructor.add_constructor("tag:yaml.org,2002:int", _construct_int)
_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE_LOADER):  # type: ignore[misc]
    """Safe loader with YAML 1.2 booleans: ``off``/``no``/``on``/``yes`` stay strings.

    Under YAML 1.1, ``requests: off`` would be the boolean false, and the
    Norway problem (``country: NO``) would turn a country code into false.
    """


_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for first, resolvers in _BASE_LOADER.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_LOADER: Any = _Loader


def load_text(text: str, source: str) -> LoadedDocument:
    """Parse YAML (JSON is a subset) from ``text``; ``source`` names it in errors."""
    try:
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SourceError(source, line, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SourceError(source, None, f"invalid YAML: {exc}") from None
    if len(nodes) > 1:
        raise SourceError(source, nodes[1].start_mark.line + 1, "expected a single document")
    if not nodes or nodes[0] is None:
        return LoadedDocument(value=None, source=source)
    builder = _Builder(source)
    try:
        value = builder.build(nodes[0], ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise SourceError(
            source, mark.line + 1 if mark else None, f"invalid YAML value: {exc.problem}"
        ) from None
    return LoadedDocument(value=value, source=source, lines=builder.lines)


def load_document(path: Path, display: str | None = None) -> LoadedDocument:
    """Read and parse a YAML or JSON file."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(name, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(name, None, f"cannot read file: {exc}") from None
    return load_text(text, name)
