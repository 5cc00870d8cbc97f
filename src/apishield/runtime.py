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

from apishield.auth.security import SecurityPlan, compile_security
from apishield.auth.state import AuthConfigError, AuthState, build_auth_state
from apishield.config.load import ConfigError, ConfigIssue, LoadedConfig, load_config
from apishield.config.model import Config
from apishield.core.pipeline import Pipeline, build_pipeline
from apishield.openapi.compile import CompiledAPI, compile_api
from apishield.openapi.document import OpenAPIDocument, OpenAPIError, follow_refs, load_openapi
from apishield.rules import AuthorizationPlans, compile_authorization

__all__ = ["Runtime", "build_runtime", "load_runtime"]


@dataclass
class Runtime:
    loaded: LoadedConfig
    api: CompiledAPI
    pipeline: Pipeline
    warnings: list[ConfigIssue]
    auth: AuthState
    plans: dict[str, SecurityPlan]
    authz: AuthorizationPlans


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
    return build_runtime(loaded, document)


def build_runtime(loaded: LoadedConfig, document: OpenAPIDocument) -> Runtime:
    """Compile the document and cross-check it with the policy; every adapter's runtime comes from here."""
    config = loaded.config
    policy = loaded.document
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
    path: tuple[str | int, ...]
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
    auth_path: tuple[str | int, ...] = ("auth",)
    try:
        auth = build_auth_state(config.auth, loaded.base_dir)
    except AuthConfigError as exc:
        errors.append(ConfigIssue(policy.source, policy.line_of(auth_path), auth_path, str(exc)))
        raise ConfigError(errors + warnings) from None
    warnings += [
        ConfigIssue(policy.source, policy.line_of(auth_path), auth_path, w, "warning") for w in auth.warnings
    ]
    plans, plan_issues = security_plans(config, api)
    errors += [i for i in plan_issues if i.severity == "error"]
    warnings += [i for i in plan_issues if i.severity == "warning"]
    for i, op_id in enumerate(config.auth.public_operations):
        if op_id not in api.operations:
            path = ("auth", "public_operations", i)
            errors.append(ConfigIssue(policy.source, policy.line_of(path), path, f"no operation {op_id!r}"))
    registry = config.auth.issued_tokens
    if registry is not None and registry.login_operation not in api.operations:
        path = ("auth", "issued_tokens", "login_operation")
        errors.append(
            ConfigIssue(
                policy.source, policy.line_of(path), path, f"no operation {registry.login_operation!r}"
            )
        )
    authz = compile_authorization(loaded, api)
    errors += [i for i in authz.issues if i.severity == "error"]
    warnings += [i for i in authz.issues if i.severity == "warning"]
    if errors:
        raise ConfigError(errors + warnings)
    pipeline = build_pipeline(config, api, auth, plans, authz)
    return Runtime(
        loaded=loaded, api=api, pipeline=pipeline, warnings=warnings, auth=auth, plans=plans, authz=authz
    )


def security_plans(config: Config, api: CompiledAPI) -> tuple[dict[str, SecurityPlan], list[ConfigIssue]]:
    """Compile every operation's security requirements, with findings for ``apishield check``."""
    doc = api.document
    schemes = (doc.data.get("components") or {}).get("securitySchemes") or {}
    schemes = {name: follow_refs(doc.data, s) for name, s in schemes.items()}
    public = set(config.auth.public_operations)
    auth = config.auth
    has_bearer = bool(auth.jwt or auth.introspection)
    plans: dict[str, SecurityPlan] = {}
    issues: list[ConfigIssue] = []
    for op_id, op in api.operations.items():
        path = ("paths", op.template, op.method.lower(), "security")
        plan, problems = compile_security(op.security, schemes, op_id in public)
        plans[op_id] = plan
        line = doc.line_of(path)
        issues += [ConfigIssue(doc.source, line, path, p, "warning") for p in problems]
        if plan.mode == "deny":
            issues.append(
                ConfigIssue(
                    doc.source,
                    line,
                    path,
                    f"{op_id}: no security requirement; denied "
                    "(add security: [] or list it in auth.public_operations)",
                    "warning",
                )
            )
        if plan.accepts("bearer") and not has_bearer:
            issues.append(
                ConfigIssue(
                    doc.source,
                    line,
                    path,
                    f"{op_id} needs a bearer token but no auth.jwt or "
                    "auth.introspection provider is configured: every call is refused",
                    "warning",
                )
            )
        if plan.accepts("api_key") and auth.api_keys is None:
            issues.append(
                ConfigIssue(
                    doc.source,
                    line,
                    path,
                    f"{op_id} accepts API keys but auth.api_keys is not configured",
                    "warning",
                )
            )
    return plans, issues
