"""``detection:`` detection of unusual access patterns, alerts and automatic responses.

Four parts: ``detectors`` (what is judged unusual, :mod:`apishield.config.detectors`),
``alerts`` (where alerts are stored and delivered), ``blocks`` (where the
blocks and throttles that responses impose are kept, so every instance
enforces them) and ``stream`` (how several gateway instances pool their
events so the detectors see all of them). Key names are a public contract::

    detection:
      enabled: true              # false: no detectors; blocks made by hand are still enforced
      dry_run: false             # responses are logged ("would block ...") but not imposed
      alerts:
        store: sqlite            # sqlite | postgresql
        path: apishield-alerts.db    # default: next to the audit database
        dsn: postgresql://db/apishield?schema=apishield   # store: postgresql
        dedup_window: 1h         # signals of one detector about one key join the open alert this long
        webhooks:
          - url: https://hooks.example.com/apishield
            secret_env: APISHIELD_WEBHOOK_SECRET   # or secret_file; signs X-Apishield-Signature
            min_severity: high   # 1-6 or informational, low, medium, high, critical, fatal
            timeout: 5s
            retries: 5
      blocks:
        store: redis://127.0.0.1:6379/0   # memory (this process only) | redis:// URL
        key_prefix: "apishield:blocks:"
        throttle_rate: 60/min    # what a throttled caller keeps (how long: the detector's block_duration)
        resync_interval: 10s
      stream:                    # several instances: events pooled in a Redis stream
        url: redis://127.0.0.1:6379/0
        name: apishield:events
        max_length: 100000
        lease: 10s
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from apishield.audit.schema import valid_identifier
from apishield.config.detectors import DetectorsPolicy
from apishield.config.duration import Duration
from apishield.config.ratelimit import parse_rate

__all__ = [
    "SEVERITY_NAMES",
    "AlertsPolicy",
    "BlocksPolicy",
    "DetectionPolicy",
    "Severity",
    "StreamPolicy",
    "WebhookPolicy",
    "parse_severity",
]

# OCSF severity_id: 1 Informational ... 6 Fatal
SEVERITY_NAMES = {1: "informational", 2: "low", 3: "medium", 4: "high", 5: "critical", 6: "fatal"}
_SEVERITY_IDS = {name: number for number, name in SEVERITY_NAMES.items()}
_REDIS_URL = re.compile(r"^(rediss?|unix)://")


def parse_severity(value: Any) -> int:
    """An OCSF severity: 1-6 or its name (``high``)."""
    if isinstance(value, str) and value.strip().lower() in _SEVERITY_IDS:
        return _SEVERITY_IDS[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 6:
        return value
    raise ValueError("a severity is 1-6 or one of " + ", ".join(_SEVERITY_IDS))


Severity = Annotated[int, BeforeValidator(parse_severity)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _redis_url(value: str, what: str, also: str = "") -> str:
    if not _REDIS_URL.match(value):
        raise ValueError(f"{what} is {also}a redis:// (rediss://, unix://) URL, got {value!r}")
    return value


def check_postgres_dsn(value: str) -> str:
    """A libpq URL whose optional ``?schema=`` is a lower-case SQL identifier."""
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"dsn is a postgresql:// URL, got {value.split('://', 1)[0]!r}")
    schema = dict(parse_qsl(urlsplit(value).query)).get("schema")
    if schema is not None and not valid_identifier(schema):
        raise ValueError("schema= must be a lower-case SQL identifier")
    return value


class WebhookPolicy(_Model):
    """One receiver of alerts: a signed JSON POST per new or escalated alert."""

    url: str
    # the HMAC-SHA256 key of X-Apishield-Signature: an environment variable or a file holding it
    secret_env: str | None = None
    secret_file: str | None = None
    min_severity: Severity = 1
    timeout: Duration = 5.0
    # further attempts after a failure (connection error, timeout, 408, 429, 5xx), with backoff
    retries: Annotated[int, Field(ge=0, le=20)] = 5

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from apishield.proxy.base_url import parse_base_url

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"a webhook url is http:// or https://, got {value!r}")
        parse_base_url(f"{parts.scheme}://{parts.netloc}")  # refuses user information, bad ports
        return value

    @model_validator(mode="after")
    def _secret(self) -> WebhookPolicy:
        if self.secret_env and self.secret_file:
            raise ValueError("give secret_env or secret_file, not both")
        if self.timeout <= 0:
            raise ValueError("timeout must be longer than 0")
        return self


class AlertsPolicy(_Model):
    """``detection.alerts``: where alerts are kept and who hears of them."""

    store: Literal["sqlite", "postgresql"] = "sqlite"
    # the SQLite file (relative paths: the policy's folder); default: apishield-alerts.db beside the
    # audit database
    path: str | None = None
    # postgresql: a libpq URL; ``?schema=NAME`` picks the schema (created if missing)
    dsn: str | None = None
    dedup_window: Duration = 3600.0
    webhooks: list[WebhookPolicy] = Field(default_factory=list)

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str | None) -> str | None:
        return None if value is None else check_postgres_dsn(value)

    @model_validator(mode="after")
    def _store(self) -> AlertsPolicy:
        if self.store == "postgresql" and not self.dsn:
            raise ValueError("store: postgresql needs dsn (e.g. postgresql://127.0.0.1/apishield)")
        if self.store == "sqlite" and self.dsn:
            raise ValueError("dsn is for store: postgresql")
        if self.dedup_window <= 0:
            raise ValueError("dedup_window must be longer than 0")
        return self


class BlocksPolicy(_Model):
    """``detection.blocks``: the blocks and throttles every instance enforces."""

    # memory: this process only (a single gateway process); redis://: shared by every instance,
    # kept across restarts, changes reach every instance through pub/sub
    store: str = "memory"
    key_prefix: str = "apishield:blocks:"
    # the rate a throttled caller keeps (COUNT/PERIOD, per gateway process); how long a response
    # lasts is the detector's block_duration (detection.detectors.<name>.block_duration)
    throttle_rate: str = "60/min"
    # a full reload of the shared store this often, besides the change notifications
    resync_interval: Duration = 10.0

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        return value if value == "memory" else _redis_url(value, "blocks.store", "memory or ")

    @field_validator("throttle_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @model_validator(mode="after")
    def _interval(self) -> BlocksPolicy:
        if self.resync_interval <= 0:
            raise ValueError("resync_interval must be longer than 0")
        return self


class StreamPolicy(_Model):
    """``detection.stream``: every instance's events in one Redis stream, read by one detection runner."""

    url: str
    name: str = "apishield:events"
    # approximate cap on the stream's length (XADD MAXLEN ~)
    max_length: Annotated[int, Field(ge=1000)] = 100_000
    # the runner's lease: another instance takes over this long after the runner stops renewing it
    lease: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _redis_url(value, "stream.url")

    @model_validator(mode="after")
    def _lease(self) -> StreamPolicy:
        if self.lease < 1:
            raise ValueError("lease must be at least 1s")
        return self


class DetectionPolicy(_Model):
    enabled: bool = True
    # dry_run: detectors alert, responses are logged but not enforced
    dry_run: bool = False
    detectors: DetectorsPolicy = DetectorsPolicy()
    alerts: AlertsPolicy = AlertsPolicy()
    blocks: BlocksPolicy = BlocksPolicy()
    # several instances: pool events in Redis; without it each instance judges its own events
    stream: StreamPolicy | None = None
