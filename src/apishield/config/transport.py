"""Policy sections for secure transport and hardened edges.

``listen.tls`` (TLS termination, Mozilla server-side TLS profiles),
``proxy.tls`` (TLS to the upstream), ``headers`` (security response headers),
and ``cors`` (cross-origin policy, Fetch standard §3.2). Key names are a
public contract.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CorsPolicy",
    "HeadersPolicy",
    "HstsPolicy",
    "ListenTLS",
    "UpstreamTLS",
]

_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ListenTLS(_Model):
    """TLS termination in ``apishield serve`` (reloaded on SIGHUP)."""

    cert_file: str
    key_file: str
    # Mozilla server-side TLS v6: intermediate = TLS 1.2 + 1.3 with AEAD/ECDHE suites; modern = TLS 1.3 only
    profile: Literal["intermediate", "modern"] = "intermediate"
    # mTLS: client certificates verified against this CA (PEM) during the handshake
    client_ca_file: str | None = None
    client_auth: Literal["optional", "required"] = "optional"


class UpstreamTLS(_Model):
    """TLS to an ``https://`` upstream: always verified; a private CA and a client certificate optional."""

    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> UpstreamTLS:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        return self


class HstsPolicy(_Model):
    """RFC 6797 ``Strict-Transport-Security``, sent only on answers to requests that came over TLS."""

    max_age: Annotated[int, Field(ge=0)] = 63_072_000
    include_subdomains: bool = True
    preload: bool = False


class HeadersPolicy(_Model):
    """Security response headers, on every answer (rejections included). ``null`` leaves a header alone."""

    profile: Literal["api", "off"] = "api"
    hsts: HstsPolicy | None = HstsPolicy()
    content_security_policy: str | None = "default-src 'none'; frame-ancestors 'none'"
    referrer_policy: str | None = "no-referrer"
    frame_options: Literal["DENY", "SAMEORIGIN"] | None = "DENY"
    cross_origin_resource_policy: Literal["same-origin", "same-site", "cross-origin"] | None = "same-origin"
    # "authenticated": Cache-Control: no-store on answers to authenticated requests; "always"; "off"
    no_store: Literal["authenticated", "always", "off"] = "authenticated"
    # extra upstream headers to remove, besides the built-in disclosure list (Server, X-Powered-By, ...)
    remove: list[str] = Field(default_factory=list)

    @field_validator("remove")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _TOKEN.fullmatch(v)]
        if bad:
            raise ValueError(f"not header names: {', '.join(map(repr, bad))}")
        return [v.lower() for v in value]


class CorsPolicy(_Model):
    """Cross-origin access for browsers: exact origins only; preflights answered by the gateway."""

    allow_origins: list[str]
    allow_credentials: bool = False
    # request headers a preflight may ask for (besides CORS-safelisted ones); matched case-insensitively
    allow_headers: list[str] = Field(default_factory=lambda: ["authorization", "content-type"])
    expose_headers: list[str] = Field(default_factory=list)
    max_age: Annotated[int, Field(ge=0, le=86_400)] = 600

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "null":
                raise ValueError(
                    "the 'null' origin is never allowed (sandboxed documents, file: URLs share it)"
                )
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.com (no path)")
        if "*" in value and len(value) > 1:
            raise ValueError("'*' cannot be combined with explicit origins")
        return [o.lower() for o in value]

    @field_validator("allow_headers", "expose_headers")
    @classmethod
    def _header_names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _TOKEN.fullmatch(v)]
        if bad:
            raise ValueError(f"not header names: {', '.join(map(repr, bad))}")
        return [v.lower() for v in value]

    @model_validator(mode="after")
    def _no_wildcard_credentials(self) -> CorsPolicy:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError("allow_credentials cannot be used with allow_origins ['*'] (browsers refuse it)")
        return self
