"""From a policy file to a ready decision pipeline (shared by every adapter and the CLI).

:func:`load_runtime` reads the policy, loads and overlays the OpenAPI
document, compiles it and cross-checks the two (an ``operations:`` entry
must name an operationId the document has). All problems are collected and
raised together as a :class:`~apishield.config.load.ConfigError` whose issues
carry file, line and key path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from apishield.config.load import ConfigError, ConfigIssue, LoadedConfig, load_config
from apishield.core.pipeline import Pipeline, build_pipeline
from apishield.openapi.compile import CompiledAPI, compile_api
from apishield.openapi.document import OpenAPIError, load_openapi

__all__ = ["Runtime", "load_runtime"]


@dataclass
class Runtime:
    loaded: LoadedConfig
    api: CompiledAPI
    pipeline: Pipeline
    warnings: list[ConfigIssue]


def load_runtime(config_path: str | Path) -> Runtime:
    loaded = load_config(config_path)
    config = loaded.config
    doc_path = loaded.resolve(config.openapi)
    overlays = [(loaded.resolve(o), o) for o in config.overlays]
    policy = loaded.document
    for i, (overlay_path, name) in enumerate(overlays):
        if not overlay_path.is_file():
            raise ConfigError(
                [
                    ConfigIssue(
                        policy.source,
                        policy.line_of(("overlays", i)),
                        ("overlays", i),
                        f"file not found: {name}",
                    )
                ]
            )
    try:
        document = load_openapi(doc_path, overlays)
    except OpenAPIError as exc:
        source = exc.source or config.openapi
        if exc.source is None and exc.line is None:
            line = policy.line_of(("openapi",))
            raise ConfigError([ConfigIssue(policy.source, line, ("openapi",), exc.message)]) from None
        raise ConfigError([ConfigIssue(source, exc.line, (), exc.message)]) from None
    api = compile_api(document, config.limits.max_string_length)
    errors: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = [
        ConfigIssue(document.source, None, (), w, "warning") for w in document.warnings
    ]
    for issue in api.issues:
        target = errors if issue.severity == "error" else warnings
        target.append(
            ConfigIssue(
                document.source, document.line_of(issue.path), issue.path, issue.message, issue.severity
            )
        )
    for op_id in config.operations:
        if op_id not in api.operations:
            path = ("operations", op_id)
            errors.append(
                ConfigIssue(
                    policy.source,
                    policy.line_of(path),
                    path,
                    f"no operation {op_id!r} in the OpenAPI document",
                )
            )
    if errors:
        raise ConfigError(errors + warnings)
    return Runtime(loaded=loaded, api=api, pipeline=build_pipeline(config, api), warnings=warnings)
