"""Ownership callables: the application's own code supplies ``resource`` to a write pre-check.

At the gateway, a write's pre-check (``authorization.operations.<id>.precheck``)
reads the resource from the upstream with the gateway's identity and decides
on it (``resource`` in the rule). In process, the application can answer that
question directly, from its own database, without an HTTP round trip::

    def customer_owner(request: ResourceRequest) -> dict | None:
        row = db.execute("SELECT id, partner_id FROM customers WHERE id = ?", (request.path["customerId"],))
        ...
        return {"id": row[0], "partnerId": row[1]}  # None: no such object (denied as not found)

    Shield(app, config="apishield.yaml", resources={"updateCustomer": customer_owner})

A loader may be a plain function (run in a worker thread, as FastAPI runs
``def`` dependencies, so it may block) or a coroutine function (awaited on
the event loop). Its result is converted to JSON values, exactly what the
rule would have seen had the resource been read over HTTP: dicts, lists,
strings, numbers, booleans; dataclasses, pydantic models, dates, UUIDs and
enums are encoded as JSON encodes them. ``None`` means the object does not
exist; the write is then refused as the pre-check refuses a 404 read.

An exception in a loader is logged with the request id and answered with a
500 problem that carries no traceback.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from apishield.auth.principal import Principal
from apishield.config.load import ConfigError, ConfigIssue
from apishield.middleware.types import Scope
from apishield.runtime import Runtime

__all__ = ["ResourceLoader", "ResourceRequest", "check_loaders", "load_resource"]


@dataclass(frozen=True, slots=True)
class ResourceRequest:
    """What a loader is asked about: the operation, its typed path parameters and the caller."""

    operation_id: str
    path: Mapping[str, Any]  # path parameters as validated (an integer id is an int)
    principal: Principal
    scope: Scope  # the incoming request's ASGI scope (``scope["state"]`` holds lifespan state)


ResourceLoader = Callable[[ResourceRequest], Any]


def _is_async(loader: Any) -> bool:
    while isinstance(loader, functools.partial):
        loader = loader.func
    return inspect.iscoroutinefunction(loader) or inspect.iscoroutinefunction(
        getattr(loader, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _json_default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"a resource loader returned a {type(value).__name__}, which is not JSON")


async def load_resource(loader: ResourceLoader, request: ResourceRequest) -> tuple[int, Any]:
    """Call ``loader``: ``(200, JSON value)``, or ``(404, None)`` when it found nothing."""
    if _is_async(loader):
        value = await loader(request)
    else:
        value = await asyncio.to_thread(loader, request)
        if inspect.isawaitable(value):
            value = await value
    if value is None:
        return 404, None
    return 200, orjson.loads(orjson.dumps(value, default=_json_default))


def check_loaders(
    loaders: Mapping[str, ResourceLoader] | None, runtime: Runtime
) -> dict[str, ResourceLoader]:
    """Refuse loaders that would never be called: unknown operations, operations without a pre-check."""
    if not loaders:
        return {}
    issues: list[ConfigIssue] = []
    source = "Shield(resources=...)"
    for op_id, loader in loaders.items():
        path: tuple[str | int, ...] = ("resources", op_id)
        if not callable(loader):
            issues.append(ConfigIssue(source, None, path, "a resource loader must be callable"))
        elif op_id not in runtime.api.operations:
            issues.append(ConfigIssue(source, None, path, f"no operation {op_id!r} in the OpenAPI document"))
        else:
            access = runtime.authz.operations.get(op_id)
            if access is None or access.precheck is None:
                issues.append(
                    ConfigIssue(
                        source,
                        None,
                        path,
                        f"the policy has no authorization.operations.{op_id}.precheck, "
                        "so this loader would never be called",
                    )
                )
    if issues:
        raise ConfigError(issues)
    return dict(loaders)
