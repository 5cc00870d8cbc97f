"""The ``authorization:`` section of the policy: who may touch what.

Public contract (issue "authorization beyond scopes"):
``authorization.operations.<operationId>.allow_if`` (a CEL expression).
Everything else here extends it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["AuthorizationPolicy", "ItemRule", "OperationRules", "PrecheckRule", "PropertyRule"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ItemRule(_Model):
    """A rule applied to every element of an array in the response (lists)."""

    allow_if: str
    pointer: str = ""  # where the array is in the response body; "" is the body itself
    on_denied: Literal["filter", "deny"] = "filter"

    @field_validator("pointer")
    @classmethod
    def _pointer(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("a JSON pointer starts with '/'")
        return value


class PrecheckRule(_Model):
    """Before a write, read the resource with the gateway's own identity and decide on it."""

    operation: str  # the read operation of the same resource (its path parameters are filled by name)
    allow_if: str  # may use `resource` (the read body) as well as the request variables


class OperationRules(_Model):
    # object-level: evaluated before forwarding, or on the upstream's answer when it uses `response`
    allow_if: str | None = None
    # function-level
    deny: bool = False
    require_authentication: bool = False
    require_roles: list[str] = Field(default_factory=list)  # any of these roles
    require_scopes: list[str] = Field(default_factory=list)  # all of these scopes, on top of the document's
    precheck: PrecheckRule | None = None
    items: ItemRule | None = None
    denied_status: Literal[403, 404] | None = None


class PropertyRule(_Model):
    """Who may read or set one property (scopes or roles; any one suffices)."""

    read: list[str] | None = None
    write: list[str] | None = None
    read_if: str | None = None  # CEL over `item` (the object holding the property), `token`, `principal`

    @model_validator(mode="after")
    def _something(self) -> PropertyRule:
        if self.read is None and self.write is None and self.read_if is None:
            raise ValueError("give read, write or read_if")
        return self


class AuthorizationPolicy(_Model):
    operations: dict[str, OperationRules] = Field(default_factory=dict)
    # property permissions by schema name and property: {Customer: {email: {read: [pii:read]}}}
    properties: dict[str, dict[str, PropertyRule]] = Field(default_factory=dict)
    # object-level denials answer 404 by default: do not confirm that the object exists
    denied_status: Literal[403, 404] = 404
    # identity the gateway uses for write pre-checks (sent as the subject header)
    service_subject: Annotated[str, Field(min_length=1)] = "apishield-gateway"
