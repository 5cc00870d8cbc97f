"""Performing the decision core's effects, and the background work that feeds it.

:class:`EffectRunner` is owned by an adapter (the gateway, the middleware).
It resolves the effects stages ask for (:mod:`apishield.core.effects`) and
runs three background loops while the adapter lives:

* JWKS refresh: each issuer's key set is refetched when it goes stale;
* revocation sync: the denylist is updated from the shared store every
  ``auth.revocation.poll_interval``;
* API key ``last_used`` timestamps are written in batches.

DPoP replay (RFC 9449 §11.1): with ``auth.dpop.replay_store: redis://...``
each proof's ``jti`` is claimed with ``SET key 1 NX PX ttl``, atomic across
every instance sharing the store; an unreachable store refuses the proof.

Coalescing: concurrent requests that need the same issuer's keys share one
fetch (single flight); the cooldown itself is enforced by the core's
:class:`~apishield.auth.jwks.KeySetState`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from apishield.auth.state import AuthState, IssuerRuntime
from apishield.core.effects import (
    CheckIssued,
    CheckProofReplay,
    Effect,
    Introspect,
    LookupAPIKey,
    RecordIssued,
    RefreshKeys,
)
from apishield.services.apikey_store import APIKeyStore, open_api_key_store
from apishield.services.cancellation import cancelling, stop_tasks
from apishield.services.http_fetch import Fetcher
from apishield.services.revocation_store import RevocationStore, open_revocation_store

__all__ = ["EffectRunner"]

logger = logging.getLogger("apishield.auth")


class EffectRunner:
    def __init__(self, state: AuthState, base_dir: Path) -> None:
        self.state = state
        self.base_dir = base_dir
        settings = state.settings
        self.fetcher = Fetcher(timeout=max((p.jwks_cache.fetch_timeout for p in settings.jwt), default=5.0))
        self.api_keys: APIKeyStore | None = (
            open_api_key_store(settings.api_keys.store, base_dir) if settings.api_keys else None
        )
        self.revocations: RevocationStore = open_revocation_store(settings.revocation.store, base_dir)
        self.issued_redis: Any = None
        if settings.issued_tokens is not None and settings.issued_tokens.store != "memory":
            import redis.asyncio as redis

            self.issued_redis = redis.Redis.from_url(settings.issued_tokens.store, socket_timeout=2)
        self.replay_redis: Any = None
        if settings.dpop.replay_store != "memory":
            import redis.asyncio as redis

            self.replay_redis = redis.Redis.from_url(settings.dpop.replay_store, socket_timeout=2)
        self._flights: dict[str, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._used: dict[str, float] = {}
        self._secrets: dict[int, str] = {}
        # counters for metrics (apishield.admin): introspection calls and the ones that failed
        self.introspections = 0
        self.introspection_failures = 0

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        for runtime in self._fetchable():
            await self._refresh(runtime)  # warm-up; failures are logged and retried in the background
        await self.sync_revocations()
        self._tasks = [
            asyncio.create_task(self._loop(self._refresh_stale, 1.0)),
            asyncio.create_task(
                self._loop(self.sync_revocations, self.state.settings.revocation.poll_interval)
            ),
            asyncio.create_task(self._loop(self._flush_used, 5.0)),
        ]

    async def stop(self) -> None:
        await stop_tasks(self._tasks, "background refresh", logger)
        self._tasks = []
        with contextlib.suppress(Exception):
            await self._flush_used()
        await self.fetcher.aclose()
        if self.api_keys is not None:
            await self.api_keys.close()
        await self.revocations.close()
        if self.issued_redis is not None:
            await self.issued_redis.aclose()
        if self.replay_redis is not None:
            await self.replay_redis.aclose()

    async def _loop(self, work: Any, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the loop alive; the state records failures
                if cancelling():  # redis-py can turn a cancellation into a timeout or connection error
                    raise asyncio.CancelledError from None
                logger.exception("background task failed")

    def _fetchable(self) -> list[IssuerRuntime]:
        return [r for r in self.state.issuers.values() if r.provider.jwks_uri is not None]

    # -- effects -------------------------------------------------------------------------------
    async def run(self, effect: Effect) -> Any:
        if isinstance(effect, RefreshKeys):
            runtime = self.state.issuers.get(effect.issuer)
            if runtime is not None and runtime.provider.jwks_uri is not None:
                await self._refresh(runtime)
            return True
        if isinstance(effect, Introspect):
            return await self._introspect(effect)
        if isinstance(effect, LookupAPIKey):
            record = await self.api_keys.get(effect.key_id) if self.api_keys else None
            if record is not None:
                self._used[record.key_id] = time.time()
            return record
        if isinstance(effect, CheckIssued):
            if self.issued_redis is None:
                return False
            try:
                return bool(await self.issued_redis.exists(f"apishield:issued:{effect.digest}"))
            except Exception:
                logger.warning("issued-token registry unavailable; refusing the token")
                return False
        if isinstance(effect, CheckProofReplay):
            return await self._claim_proof(effect)
        raise TypeError(f"unknown effect {effect!r}")

    async def _claim_proof(self, effect: CheckProofReplay) -> bool | None:
        if self.replay_redis is None:
            return None
        try:
            first = await self.replay_redis.set(
                f"apishield:dpop:{effect.key}", b"1", nx=True, px=max(1, int(effect.ttl * 1000))
            )
        except Exception:
            logger.warning("DPoP replay store unavailable; refusing the proof")
            return None
        return bool(first)

    async def after(self, effects: list[Any]) -> None:
        for effect in effects:
            if isinstance(effect, RecordIssued) and self.issued_redis is not None:
                try:
                    await self.issued_redis.set(
                        f"apishield:issued:{effect.digest}", b"1", ex=max(1, int(effect.ttl))
                    )
                except Exception:
                    logger.warning("issued-token registry unavailable; token recorded locally only")

    # -- JWKS ----------------------------------------------------------------------------------
    async def _refresh(self, runtime: IssuerRuntime) -> None:
        issuer = runtime.provider.issuer
        flight = self._flights.get(issuer)
        if flight is not None:
            await asyncio.shield(flight)
            return
        loop = asyncio.get_running_loop()
        flight = loop.create_future()
        self._flights[issuer] = flight
        runtime.keys.in_flight = True
        try:
            await self._fetch_keys(runtime)
        finally:
            runtime.keys.in_flight = False
            del self._flights[issuer]
            flight.set_result(None)

    async def _refresh_stale(self) -> None:
        now = time.time()
        for runtime in self._fetchable():
            if runtime.keys.refresh_due(now):
                await self._refresh(runtime)

    async def _fetch_keys(self, runtime: IssuerRuntime) -> None:
        from apishield.jose import JOSEError, import_jwks

        uri = runtime.provider.jwks_uri
        assert uri is not None
        now = time.time()
        try:
            result = await self.fetcher.get(uri)
            if result.status != 200:
                raise ValueError(f"JWKS endpoint answered {result.status}")
            keys = import_jwks(orjson.loads(result.body), allowed_algs=frozenset(runtime.provider.algorithms))
        except (JOSEError, ValueError, OSError, orjson.JSONDecodeError, Exception) as exc:
            runtime.keys.failed(str(exc)[:200], time.time())
            logger.warning("JWKS fetch for %s failed: %s", runtime.provider.issuer, str(exc)[:200])
            return
        cache_control = result.headers.get(b"cache-control", b"").decode("latin-1") or None
        runtime.keys.fetched(keys, cache_control, now)

    # -- introspection -------------------------------------------------------------------------
    def _client_secret(self, index: int) -> str:
        if index not in self._secrets:
            provider = self.state.settings.introspection[index]
            if provider.client_secret_env is not None:
                secret = os.environ.get(provider.client_secret_env, "")
            else:
                assert provider.client_secret_file is not None
                path = Path(provider.client_secret_file)
                path = path if path.is_absolute() else self.base_dir / path
                secret = path.read_text().strip()
            self._secrets[index] = secret
        return self._secrets[index]

    async def _introspect(self, effect: Introspect) -> Any:
        provider = self.state.settings.introspection[effect.provider]
        credentials = (
            f"{quote(provider.client_id, safe='')}:{quote(self._client_secret(effect.provider), safe='')}"
        )
        auth = b"Basic " + base64.b64encode(credentials.encode())
        body = f"token={quote(effect.token, safe='')}&token_type_hint=access_token".encode()
        self.introspections += 1
        try:
            result = await asyncio.wait_for(
                self.fetcher.post_form(provider.endpoint, body, [(b"authorization", auth)]), provider.timeout
            )
            if result.status != 200:
                raise ValueError(f"introspection answered {result.status}")
            return orjson.loads(result.body)
        except Exception as exc:
            self.introspection_failures += 1
            logger.warning("introspection at %s failed: %s", provider.endpoint, str(exc)[:200])
            return None

    # -- revocation and key usage --------------------------------------------------------------
    async def sync_revocations(self) -> None:
        denylist = self.state.denylist
        entries, cursor = await self.revocations.since(denylist.cursor)
        for kind, ident, until in entries:
            denylist.add(kind, ident, until)
            if kind == "key":
                self.state.api_key_cache.discard(ident)
        denylist.cursor = cursor
        denylist.purge(time.time())

    async def _flush_used(self) -> None:
        if self.api_keys is not None and self._used:
            used, self._used = self._used, {}
            await self.api_keys.touch(used)
