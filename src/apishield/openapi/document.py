"""Loading an OpenAPI document: files, relative references, overlays.

OpenAPI 3.0.x and 3.1.x documents are read from YAML or JSON. References to
other files (``$ref: schemas/common.yaml#/Error``) are bundled into the main
document under ``components.x-apishield-bundled`` and rewritten to internal
references, so everything after this module sees a single self-contained
tree whose ``$ref`` values are all local JSON pointers (RFC 6901). Recursive
schemas stay recursive: a bundled target is registered before it is walked.

Remote (``http://``) references are never fetched: a security gateway does
not let its description pull code or data from the network at start.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from apishield.config.yamlpos import LoadedDocument, SourceError, load_document

__all__ = ["OpenAPIDocument", "OpenAPIError", "follow_refs", "load_openapi", "resolve_pointer"]

BUNDLE_KEY = "x-apishield-bundled"
# literal values (not OpenAPI objects) under these keys are copied, not walked for $ref
_SKIP_KEYS = frozenset({"example", "default", "enum", "const"})
# ... unless the key is a *name* in a map of names (a property called "default", responses.default)
_NAME_MAPS = frozenset(
    {
        "properties",
        "patternProperties",
        "responses",
        "schemas",
        "parameters",
        "headers",
        "examples",
        "requestBodies",
        "securitySchemes",
        "links",
        "callbacks",
        "pathItems",
        "paths",
        "content",
        "$defs",
        "definitions",
        "dependentSchemas",
        BUNDLE_KEY,
    }
)
_INDEX = re.compile(r"0|[1-9][0-9]*")


class OpenAPIError(Exception):
    """The API description cannot be used; message names file, line and location."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.message = message
        where = f"{source}:{line}: " if source and line else (f"{source}: " if source else "")
        super().__init__(where + message)


@dataclass
class OpenAPIDocument:
    data: dict[str, Any]
    version: str  # "3.0" or "3.1"
    source: str
    main: LoadedDocument
    warnings: list[str] = field(default_factory=list)

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        return self.main.line_of(path)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def resolve_pointer(document: Any, pointer: str) -> Any:
    """Resolve a JSON pointer (RFC 6901) given as a URI fragment (``#/a/b``)."""
    frag = pointer[1:] if pointer.startswith("#") else pointer
    frag = unquote(frag)
    if frag == "":
        return document
    if not frag.startswith("/"):
        raise KeyError(pointer)
    node = document
    for raw in frag[1:].split("/"):
        token = _unescape(raw)
        if isinstance(node, dict):
            node = node[token]
        elif isinstance(node, list):
            if not _INDEX.fullmatch(token):
                raise KeyError(pointer)
            node = node[int(token)]
        else:
            raise KeyError(pointer)
    return node


def follow_refs(document: Any, node: Any, max_hops: int = 16) -> Any:
    """``node`` with its ``$ref`` chain followed in ``document``; None if it does not resolve or loops."""
    for _ in range(max_hops):
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            return node
        try:
            node = resolve_pointer(document, node["$ref"])
        except (KeyError, IndexError):
            return None
    return None


class _Bundler:
    """Rewrites every external ``$ref`` to a pointer into the bundle."""

    def __init__(self, main_path: Path, main: LoadedDocument) -> None:
        self.main_path = main_path.resolve()
        self.files: dict[Path, LoadedDocument] = {self.main_path: main}
        self.names: dict[tuple[Path, str], str] = {}
        self.bundle: dict[str, Any] = {}

    def load(self, path: Path) -> LoadedDocument:
        path = path.resolve()
        if path not in self.files:
            try:
                self.files[path] = load_document(path, display=str(path.name))
            except SourceError as exc:
                raise OpenAPIError(exc.message, exc.source, exc.line) from None
        return self.files[path]

    def name_for(self, path: Path, pointer: str) -> str:
        key = (path, pointer)
        if key in self.names:
            return self.names[key]
        base = pointer.rstrip("/").rsplit("/", 1)[-1] or path.stem
        name = _escape(f"{path.stem}.{_unescape(base)}") if base != path.stem else _escape(path.stem)
        candidate, n = name, 2
        while candidate in self.bundle:
            candidate, n = f"{name}.{n}", n + 1
        self.names[key] = candidate
        doc = self.load(path)
        try:
            target = copy.deepcopy(resolve_pointer(doc.value, pointer or "#"))
        except (KeyError, IndexError):
            raise OpenAPIError(f"$ref target {pointer or '#'} not found", doc.source) from None
        self.bundle[candidate] = None  # registered before walking: recursion terminates
        self.bundle[candidate] = self.walk(target, path)
        return candidate

    def walk(self, node: Any, base: Path, parent: str | None = None) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            names = parent in _NAME_MAPS
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and not names:
                    out[key] = self.rewrite(value, base)
                elif key in _SKIP_KEYS and not names:
                    out[key] = value
                else:
                    out[key] = self.walk(value, base, key)
            return out
        if isinstance(node, list):
            return [self.walk(item, base) for item in node]
        return node

    def rewrite(self, ref: str, base: Path) -> str:
        file_part, _, fragment = ref.partition("#")
        if "://" in file_part:
            raise OpenAPIError(f"remote reference {ref!r} is not fetched; bundle it into a local file")
        target = (base.parent / unquote(file_part)).resolve() if file_part else base
        if target == self.main_path:
            return "#" + fragment
        name = self.name_for(target, fragment)
        return f"#/components/{BUNDLE_KEY}/{name}"


def load_openapi(path: Path, overlays: list[tuple[Path, str]] | None = None) -> OpenAPIDocument:
    """Load, overlay and bundle the OpenAPI document at ``path``.

    ``overlays`` is a list of (file path, display name); they are applied in order
    to the main document before references are bundled.
    """
    try:
        main = load_document(path, display=str(path.name))
    except SourceError as exc:
        raise OpenAPIError(exc.message, exc.source, exc.line) from None
    if not isinstance(main.value, dict):
        raise OpenAPIError("an OpenAPI document must be a mapping", main.source, 1)
    raw = main.value
    version_text = raw.get("openapi")
    if isinstance(version_text, (int, float)) and not isinstance(version_text, bool):
        raise OpenAPIError(
            f"the 'openapi' field must be a string: write openapi: \"{version_text}.x\" (quoted)",
            main.source,
            main.line_of(("openapi",)),
        )
    if not isinstance(version_text, str):
        raise OpenAPIError(
            "missing 'openapi' version field (Swagger 2.0 is not supported)", main.source, main.line_of(())
        )
    if version_text.startswith("3.0."):
        version = "3.0"
    elif version_text.startswith("3.1."):
        version = "3.1"
    else:
        raise OpenAPIError(
            f"unsupported OpenAPI version {version_text!r}: 3.0.x and 3.1.x are supported",
            main.source,
            main.line_of(("openapi",)),
        )
    warnings: list[str] = []
    data = raw
    if overlays:
        from apishield.openapi.overlay import OverlayError, apply_overlays

        loaded: list[tuple[dict[str, Any], str]] = []
        for overlay_path, display in overlays:
            try:
                doc = load_document(overlay_path, display=display)
            except SourceError as exc:
                raise OpenAPIError(exc.message, exc.source, exc.line) from None
            if not isinstance(doc.value, dict):
                raise OpenAPIError("an overlay must be a mapping", display, 1)
            loaded.append((doc.value, display))
        try:
            data, overlay_warnings = apply_overlays(data, loaded)
        except OverlayError as exc:
            raise OpenAPIError(str(exc)) from None
        warnings += [f"{w.source}: actions[{w.action_index}]: {w.message}" for w in overlay_warnings]
    if not isinstance(data.get("paths", {}), dict):
        raise OpenAPIError("'paths' must be a mapping", main.source, main.line_of(("paths",)))
    bundler = _Bundler(path, main)
    bundled = bundler.walk(data, bundler.main_path)
    if bundler.bundle:
        components = bundled.setdefault("components", {})
        components[BUNDLE_KEY] = bundler.bundle
    return OpenAPIDocument(data=bundled, version=version, source=main.source, main=main, warnings=warnings)
