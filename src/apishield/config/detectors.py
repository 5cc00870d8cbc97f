"""``detection.detectors``: which streaming detectors run, their thresholds and responses.

Owned by the detectors (:mod:`apishield.detect`); every key has a default
that keeps false alerts rare on the reference traffic (``apishield simulate``).
Each detector has its own section with ``enabled``, ``response`` (``alert``:
signal only; ``block`` or ``throttle``: the signal asks the blocks store to
impose that response on its key), ``block_duration`` and ``resignal_after``
(a detector signals a key at most once per this long while the condition
holds, sooner only when the severity rises), plus its windows and
thresholds. Windows and warm-ups are in event time, never the wall clock.

Example::

    detection:
      detectors:
        enumeration: {min_denied_objects: 30, response: block, block_duration: 1h}
        credential_stuffing: {account_failures: 8}
        volume: {enabled: false}

How each detector judges, and why its defaults are what they are, is in its
module's docstring (:mod:`apishield.detect.enumeration` and its siblings).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from apishield.config.duration import Duration

__all__ = [
    "CredentialStuffingPolicy",
    "DetectorPolicy",
    "DetectorsPolicy",
    "EnumerationPolicy",
    "RateLimitPressurePolicy",
    "Response",
    "ScrapingPolicy",
    "ShadowApiPolicy",
    "TokenSharingPolicy",
    "VolumePolicy",
]

Response = Literal["alert", "block", "throttle"]

Count = Annotated[int, Field(ge=1)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
Factor = Annotated[float, Field(ge=1.0)]
Positive = Annotated[Duration, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DetectorPolicy(_Model):
    """What every detector has: on or off, what its signals ask for, how often it may repeat itself."""

    enabled: bool = True
    # alert: a signal only; block / throttle: the signal carries that response for its key
    response: Response = "alert"
    block_duration: Positive = 900.0
    resignal_after: Positive = 600.0


class EnumerationPolicy(DetectorPolicy):
    """Object enumeration (BOLA probing): many distinct objects of one route refused to one principal."""

    window: Positive = 600.0
    # distinct objects of one route template refused (403/404) to one principal within the window
    min_denied_objects: Count = 20
    # ... and the share of that principal's requests to the route that were refused
    min_denied_share: Share = 0.5
    # refused numeric ids in a row, in steps of 1 or 2 (a sequential walk): signalled at this many
    walk_length: Count = 8
    # the route's population baseline of refused objects per principal and window:
    # once `warmup` windows were seen, the bar is also at least `peer_factor` x its 99th percentile
    peer_factor: Factor = 3.0
    warmup: Count = 200
    severity: Annotated[int, Field(ge=1, le=5)] = 4


class CredentialStuffingPolicy(DetectorPolicy):
    """Credential stuffing and brute force: failed sign-ins per address, per account and in total."""

    window: Positive = 600.0
    # failed authentications (sign-ins, grants, 401s at the API) from one address in the window
    ip_failures: Count = 20
    # distinct accounts with a failed sign-in from one address in the window
    ip_accounts: Count = 6
    # failed sign-ins of one account in the window, from at least account_addresses addresses
    # (from one address it takes ip_failures)
    account_failures: Count = 8
    account_addresses: Count = 2
    # population level (low and slow across many addresses): distinct accounts with a failed sign-in
    # per bucket, against an EWMA of the earlier buckets (empty ones included), after `warmup` buckets;
    # fires at max(population_min, mean + population_sigmas * sd, population_factor * mean)
    population_bucket: Positive = 300.0
    population_min: Count = 15
    population_sigmas: Annotated[float, Field(ge=0.0)] = 6.0
    population_factor: Factor = 4.0
    population_alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    warmup: Count = 12
    severity: Annotated[int, Field(ge=1, le=5)] = 4


class TokenSharingPolicy(DetectorPolicy):
    """Token theft or sharing: one token or API key used from several networks or agents at once."""

    # an address or user agent counts as in use this long after the token's last request from it
    window: Positive = 300.0
    # networks (IPv4 /24, IPv6 /48) in use at once beyond which the token is shared
    max_networks: Count = 4
    # returns to a network after another one was used, while both are in use
    min_interleaves: Count = 4
    # two user agents in use at once, with this many interleaves (1: at the first switch back)
    agent_interleaves: Count = 1
    ipv4_prefix: Annotated[int, Field(ge=8, le=32)] = 24
    ipv6_prefix: Annotated[int, Field(ge=16, le=128)] = 48
    # a refresh token or authorization code presented twice (the issuer revoked its family)
    refresh_reuse: bool = True
    severity: Annotated[int, Field(ge=1, le=5)] = 4


class ScrapingPolicy(DetectorPolicy):
    """Scraping and exfiltration: records or bytes returned to a principal far above its baselines."""

    window: Positive = 300.0
    # records returned in a window, at least
    min_records: Count = 50
    min_bytes: Count = 200_000
    # ... and above own_factor x its own baseline (EWMA mean + 3 sigma of its active windows)
    own_factor: Factor = 4.0
    # ... and above peer_factor x the 99th percentile of its peer group (client and roles)
    peer_factor: Factor = 3.0
    # active windows before a principal's own baseline judges; windows before a peer group's does
    warmup: Count = 6
    peer_warmup: Count = 50
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    # with no warm baseline at all, only this many records in a window is judged
    ceiling_records: Count = 20_000
    severity: Annotated[int, Field(ge=1, le=5)] = 3


class VolumePolicy(DetectorPolicy):
    """Volume anomalies: requests per principal and operation per bucket against EWMA and quantiles."""

    bucket: Positive = 60.0
    min_requests: Count = 30
    own_factor: Factor = 3.0
    peer_factor: Factor = 4.0
    warmup: Count = 10
    peer_warmup: Count = 50
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    # with no warm baseline at all, only this many requests per bucket is judged
    ceiling_requests: Count = 600
    severity: Annotated[int, Field(ge=1, le=5)] = 3


class ShadowApiPolicy(DetectorPolicy):
    """Shadow-API probing: bursts of requests to paths no documented operation matches."""

    window: Positive = 300.0
    # distinct undocumented paths from one principal in the window
    min_paths: Count = 12
    # or this many undocumented requests, whatever the paths
    min_requests: Count = 60
    severity: Annotated[int, Field(ge=1, le=5)] = 3


class RateLimitPressurePolicy(DetectorPolicy):
    """Repeated rate-limit pressure: a principal that keeps being refused with 429."""

    window: Positive = 300.0
    min_refusals: Count = 10
    # refused share of the principal's requests in the window
    min_share: Share = 0.2
    severity: Annotated[int, Field(ge=1, le=5)] = 3


class DetectorsPolicy(_Model):
    """Per-detector settings, and the bounds of the detectors' memory."""

    enumeration: EnumerationPolicy = EnumerationPolicy()
    credential_stuffing: CredentialStuffingPolicy = CredentialStuffingPolicy()
    token_sharing: TokenSharingPolicy = TokenSharingPolicy()
    scraping: ScrapingPolicy = ScrapingPolicy()
    volume: VolumePolicy = VolumePolicy()
    shadow_api: ShadowApiPolicy = ShadowApiPolicy()
    rate_limit_pressure: RateLimitPressurePolicy = RateLimitPressurePolicy()
    # keys tracked at most per table (principals, tokens, addresses, accounts); beyond, the least
    # recently seen are forgotten first
    max_keys: Annotated[int, Field(ge=16)] = 100_000
    # a key not seen for this long is forgotten, with its baseline
    idle_timeout: Positive = 21_600.0

    def settings(self, detector: str) -> DetectorPolicy:
        """The section of one detector by its name in signals (``enumeration``, ``token_sharing``...)."""
        value = getattr(self, detector, None)
        if not isinstance(value, DetectorPolicy):
            raise KeyError(detector)
        return value
