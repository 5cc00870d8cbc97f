"""From a policy file and an OpenAPI document to the decision core, for the in-process adapter.

The gateway's :func:`apishield.runtime.load_runtime` reads the document the
policy names (``openapi:``) and needs an ``upstream:``. The middleware has no
upstream (it calls the application it wraps), and a FastAPI application can
describe itself (``app.openapi()``). So here:

* ``upstream:`` is optional: when the policy has none, a placeholder stands in
  (the middleware never reads it), and a gateway policy with one works as is;
* the document is the policy's ``openapi:`` file, or the one given to
  :class:`~apishield.middleware.shield.Shield` (a mapping, a callable returning
  one such as ``app.openapi``, or a file path), which takes precedence; the
  policy's ``overlays:`` apply to it either way;
* everything after loading (compiling the document, the cross-checks with the
  policy, the auth state, the security and authorization plans, the stages) is
  the gateway's, step for step, so both adapters decide alike.

Problems are raised together as a :class:`~apishield.config.load.ConfigError`,
with file, line and key path where there is one.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from apishield.config.load import ConfigError, ConfigIssue, LoadedConfig, issues_from_validation, read_mapping
from apishield.config.model import Config
from apishield.config.yamlpos import LoadedDocument, SourceError, load_document
from apishield.openapi.document import OpenAPIDocument, OpenAPIError, load_openapi
from apishield.runtime import Runtime, build_runtime

__all__ = ["APP_DOCUMENT", "NO_UPSTREAM", "DocumentSource", "load_middleware_runtime", "load_policy"]

#: Stands in for ``upstream:`` when the policy has none (the middleware never connects to it).
NO_UPSTREAM = "http://in-process.invalid"
#: Stands in for ``openapi:`` when the document is given to the middleware instead.
APP_DOCUMENT = "(application document)"

DocumentSource = Mapping[str, Any] | Callable[[], Mapping[str, Any]] | str | os.PathLike[str]


def load_policy(path: str | os.PathLike[str], document_given: bool) -> LoadedConfig:
    """Read and validate a policy; ``upstream:`` is optional, ``openapi:`` too when a document is given."""
    p = Path(path)
    doc = read_mapping(p)
    values = dict(doc.value)
    values.setdefault("upstream", NO_UPSTREAM)
    if document_given:
        values.setdefault("openapi", APP_DOCUMENT)
    try:
        config = Config.model_validate(values)
    except ValidationError as exc:
        issues = issues_from_validation(exc, doc)
        if not document_given:
            issues = [
                ConfigIssue(
                    i.source, i.line, i.path, i.message + " (or give the document to Shield: openapi=)"
                )
                if i.path == ("openapi",)
                else i
                for i in issues
            ]
        raise ConfigError(issues) from None
    return LoadedConfig(config=config, path=p.resolve(), document=doc)


def _policy_issue(loaded: LoadedConfig, path: tuple[str | int, ...], message: str) -> ConfigIssue:
    policy = loaded.document
    return ConfigIssue(policy.source, policy.line_of(path), path, message)


def _overlay_paths(loaded: LoadedConfig) -> list[tuple[Path, str]]:
    overlays = [(loaded.resolve(o), o) for o in loaded.config.overlays]
    for i, (overlay_path, name) in enumerate(overlays):
        if not overlay_path.is_file():
            raise ConfigError([_policy_issue(loaded, ("overlays", i), f"file not found: {name}")])
    return overlays


def _document_from_file(loaded: LoadedConfig, path: Path, display: str) -> OpenAPIDocument:
    try:
        return load_openapi(path, _overlay_paths(loaded))
    except OpenAPIError as exc:
        if exc.source is None and exc.line is None:
            raise ConfigError([_policy_issue(loaded, ("openapi",), exc.message)]) from None
        raise ConfigError([ConfigIssue(exc.source or display, exc.line, (), exc.message)]) from None


def _external_ref(node: Any) -> str | None:
    """The first ``$ref`` that is not a local JSON pointer (an in-memory document cannot bundle files)."""
    todo = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                return ref
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return None


def document_from_mapping(
    data: Mapping[str, Any], loaded: LoadedConfig, source: str = "application document"
) -> OpenAPIDocument:
    """An :class:`OpenAPIDocument` from an in-memory mapping (``app.openapi()``), overlays applied."""

    def fail(message: str) -> ConfigError:
        return ConfigError([ConfigIssue(source, None, (), message)])

    if not isinstance(data, Mapping):
        raise fail("an OpenAPI document must be a mapping")
    raw: dict[str, Any] = copy.deepcopy(dict(data))  # the application may cache and reuse its dict
    version_text = raw.get("openapi")
    if not isinstance(version_text, str):
        raise fail("missing 'openapi' version field (Swagger 2.0 is not supported)")
    if version_text.startswith("3.0."):
        version = "3.0"
    elif version_text.startswith("3.1."):
        version = "3.1"
    else:
        raise fail(f"unsupported OpenAPI version {version_text!r}: 3.0.x and 3.1.x are supported")
    warnings: list[str] = []
    overlays = _overlay_paths(loaded)
    if overlays:
        from apishield.openapi.overlay import OverlayError, apply_overlays

        parsed: list[tuple[dict[str, Any], str]] = []
        for overlay_path, display in overlays:
            try:
                overlay = load_document(overlay_path, display=display)
            except SourceError as exc:
                raise ConfigError([ConfigIssue(exc.source, exc.line, (), exc.message)]) from None
            if not isinstance(overlay.value, dict):
                raise ConfigError([ConfigIssue(display, 1, (), "an overlay must be a mapping")])
            parsed.append((overlay.value, display))
        try:
            raw, overlay_warnings = apply_overlays(raw, parsed)
        except OverlayError as exc:
            raise fail(str(exc)) from None
        warnings += [f"{w.source}: actions[{w.action_index}]: {w.message}" for w in overlay_warnings]
    if not isinstance(raw.get("paths", {}), dict):
        raise fail("'paths' must be a mapping")
    external = _external_ref(raw)
    if external is not None:
        raise fail(
            f"reference {external!r} points outside the document; an in-memory document is not bundled"
        )
    main = LoadedDocument(value=raw, source=source)
    return OpenAPIDocument(data=raw, version=version, source=source, main=main, warnings=warnings)


def _document(loaded: LoadedConfig, openapi: DocumentSource | None) -> OpenAPIDocument:
    if openapi is None:
        return _document_from_file(loaded, loaded.resolve(loaded.config.openapi), loaded.config.openapi)
    if isinstance(openapi, (str, os.PathLike)):
        return _document_from_file(loaded, Path(openapi), str(openapi))
    if callable(openapi):
        name = getattr(openapi, "__qualname__", None) or "openapi"
        return document_from_mapping(openapi(), loaded, f"{name}()")
    return document_from_mapping(openapi, loaded)


def load_middleware_runtime(config: str | os.PathLike[str], openapi: DocumentSource | None = None) -> Runtime:
    """The decision core for a policy and a document, built exactly as the gateway builds it."""
    loaded = load_policy(config, document_given=openapi is not None)
    document = _document(loaded, openapi)
    return build_runtime(loaded, document)
