"""Settings of the embedded authorization server (``issuer.yaml``).

The issuer identifier follows RFC 8414 §2: an ``https`` URL without query or
fragment (``http`` is accepted for loopback hosts only, for development and
the demo). Lifetimes follow RFC 9700 §2.2.1 and §4.14 (short-lived access
tokens; refresh tokens that expire) and RFC 6749 §4.1.2 (authorization codes
"MUST expire shortly after" issuance). Unknown keys are errors, like
everywhere else in apishield, and :func:`load_issuer_settings` reports every
problem with file and line. Relative paths (``sqlite:///FILE``, ``keys_dir``)
resolve against the folder of the settings file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from apishield.config.audit import AuditPolicy
from apishield.config.auth import loopback_or_https
from apishield.config.duration import Duration
from apishield.config.load import ConfigError, issues_from_validation, read_mapping

__all__ = [
    "SIGNING_ALGORITHMS",
    "DPoPSettings",
    "IssuerSettings",
    "ListenSettings",
    "LoginThrottleSettings",
    "PasswordHashSettings",
    "load_issuer_settings",
]

# JWS algorithms the issuer can sign with (RFC 7518 §3.1, RFC 8037 §3.1); never "none" or HMAC
SIGNING_ALGORITHMS = ("ES256", "ES384", "EdDSA", "RS256", "PS256")
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoginThrottleSettings(_Model):
    """Failed sign-ins allowed per account and per client address within ``window`` (in memory)."""

    window: Duration = 900.0
    max_failures_per_account: Annotated[int, Field(ge=1)] = 5
    max_failures_per_ip: Annotated[int, Field(ge=1)] = 20


class DPoPSettings(_Model):
    """RFC 9449 proofs at the token endpoint: accepted algorithms and the ``iat`` window."""

    enabled: bool = True
    algorithms: Annotated[list[str], Field(min_length=1)] = ["ES256", "ES384", "EdDSA", "PS256", "RS256"]
    max_age: Duration = 60.0
    leeway: Duration = 5.0

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        for alg in value:
            if alg not in SIGNING_ALGORITHMS:
                raise ValueError(f"unsupported DPoP algorithm {alg!r}; use {', '.join(SIGNING_ALGORITHMS)}")
        return value


class PasswordHashSettings(_Model):
    """argon2id cost for new hashes (RFC 9106 §4 second recommended option by default)."""

    time_cost: Annotated[int, Field(ge=1, le=10)] = 3
    memory_cost_kib: Annotated[int, Field(ge=8192, le=1048576)] = 65536
    parallelism: Annotated[int, Field(ge=1, le=16)] = 4


class ListenSettings(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9400


def _check_store(value: str) -> str:
    if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
        return value
    if value.startswith(("postgresql://", "postgres://")):
        return value
    raise ValueError("must be sqlite:///FILE or postgresql://user@host:port/db[?schema=NAME]")


class IssuerSettings(_Model):
    """Everything :func:`apishield.issuer.create_issuer_app` needs."""

    issuer: str
    audience: str
    token_lifetime: Duration = 600.0
    refresh_lifetime: Duration = 86_400.0
    code_lifetime: Duration = 60.0
    store: str = "sqlite:///issuer.db"
    keys_dir: str = "issuer-keys"
    signing_alg: Literal["ES256", "ES384", "EdDSA", "RS256", "PS256"] = "ES256"
    # what the gateways poll (their auth.revocation.store): memory (one process), sqlite:///FILE, redis://
    revocation_store: str = "sqlite:///revocations.db"
    # scopes this issuer knows; empty means any scope a client is allowed
    scopes: list[str] = Field(default_factory=list)
    login_throttle: LoginThrottleSettings = LoginThrottleSettings()
    dpop: DPoPSettings = DPoPSettings()
    password_hash: PasswordHashSettings = PasswordHashSettings()
    listen: ListenSettings = ListenSettings()
    max_body_bytes: Annotated[int, Field(ge=1024, le=1_048_576)] = 65_536
    # where the OCSF Authentication events of sign-ins, grants and revocations go (the gateway's
    # ``audit:`` keys); without it they are kept in memory only, unless a gateway in the same
    # process shares its audit queue (``apishield demo``)
    audit: AuditPolicy | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        loopback_or_https(value)
        parts = urlsplit(value)
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError("the issuer identifier has no query or fragment (RFC 8414 §2)")
        if parts.username is not None or parts.password is not None:
            raise ValueError("the issuer identifier has no user information")
        if value.endswith("/"):
            raise ValueError("write the issuer without a trailing slash (iss is compared as an exact string)")
        return value

    @field_validator("audience")
    @classmethod
    def _audience(cls, value: str) -> str:
        if not value or value != value.strip():
            raise ValueError("must be a non-empty string without surrounding spaces")
        return value

    @field_validator("token_lifetime", "refresh_lifetime", "code_lifetime")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than zero")
        return value

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        return _check_store(value)

    @field_validator("revocation_store")
    @classmethod
    def _revocation_store(cls, value: str) -> str:
        if value == "memory" or value.startswith(("sqlite:///", "redis://", "rediss://")):
            return value
        raise ValueError("must be memory, sqlite:///FILE or redis://host:port/db")

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        for scope in value:
            if not SCOPE_TOKEN.fullmatch(scope):
                raise ValueError(f"{scope!r} is not a scope token (RFC 6749 §3.3)")
        return value

    @model_validator(mode="after")
    def _lifetimes(self) -> IssuerSettings:
        if self.token_lifetime > 86_400:
            raise ValueError("token_lifetime: access tokens live at most one day; use refresh tokens")
        if self.code_lifetime > 600:
            raise ValueError("code_lifetime: at most 10 minutes (RFC 6749 §4.1.2)")
        return self

    # -- derived ---------------------------------------------------------------------------------

    @property
    def path_prefix(self) -> str:
        """The issuer URL's path; endpoints live under it."""
        return urlsplit(self.issuer).path.rstrip("/")

    @property
    def metadata_path(self) -> str:
        """RFC 8414 §3.1: the well-known suffix goes between the host and the issuer's path."""
        return "/.well-known/oauth-authorization-server" + self.path_prefix

    def endpoint(self, name: str) -> str:
        return self.issuer + "/" + name


def _resolve(value: str, base_dir: Path, prefix: str = "") -> str:
    raw = value[len(prefix) :]
    path = Path(raw).expanduser()
    return prefix + str(path if path.is_absolute() else (base_dir / path))


def load_issuer_settings(path: str | Path, **overrides: Any) -> IssuerSettings:
    """Read ``issuer.yaml``; raises :class:`~apishield.config.load.ConfigError` listing every problem."""
    p = Path(path)
    doc = read_mapping(p, "the issuer settings")
    data: dict[str, Any] = {**doc.value, **overrides}
    base_dir = p.resolve().parent
    for key in ("store", "revocation_store"):
        value = data.get(key)
        if isinstance(value, str) and value.startswith("sqlite:///"):
            data[key] = _resolve(value, base_dir, "sqlite:///")
    data.setdefault("keys_dir", IssuerSettings.model_fields["keys_dir"].default)
    data.setdefault("store", _resolve(IssuerSettings.model_fields["store"].default, base_dir, "sqlite:///"))
    data.setdefault(
        "revocation_store",
        _resolve(IssuerSettings.model_fields["revocation_store"].default, base_dir, "sqlite:///"),
    )
    if isinstance(data["keys_dir"], str):
        data["keys_dir"] = _resolve(data["keys_dir"], base_dir)
    try:
        return IssuerSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(exc, doc)) from None
