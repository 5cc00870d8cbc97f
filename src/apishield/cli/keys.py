"""``apishield keys``: create, list and revoke API keys.

The key is printed once, on creation; only its hash is stored, in the store
named by ``auth.api_keys.store`` in the policy. Revoking a key marks it in
the key store and writes the revocation store, so every gateway instance
refuses it within a poll interval (0.25 s by default).
"""

from __future__ import annotations

import asyncio
import time

import click

from apishield.auth.apikeys import APIKeyRecord, generate_key
from apishield.config.duration import parse_duration
from apishield.services.apikey_store import APIKeyStore
from apishield.services.revocation_store import RevocationStore

__all__ = ["keys"]


def _stores(config_path: str) -> tuple[APIKeyStore, RevocationStore]:
    from apishield.config.load import ConfigError, load_config
    from apishield.services.apikey_store import open_api_key_store
    from apishield.services.revocation_store import open_revocation_store

    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    settings = loaded.config.auth
    if settings.api_keys is None:
        raise click.UsageError("the policy has no auth.api_keys section")
    return (
        open_api_key_store(settings.api_keys.store, loaded.base_dir),
        open_revocation_store(settings.revocation.store, loaded.base_dir),
    )


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else "-"


@click.group()
def keys() -> None:
    """Manage API keys (stored hashed)."""


@keys.command()
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--client", required=True, help="The client the key belongs to.")
@click.option("--scopes", default="", help="Space- or comma-separated scopes.")
@click.option("--expires", default=None, help="Lifetime such as 90d or 12h (default: no expiry).")
@click.option("--description", default="", help="A note for the key list.")
def create(config_path: str, client: str, scopes: str, expires: str | None, description: str) -> None:
    """Create a key; it is printed once and never stored in clear."""
    store, revocations = _stores(config_path)
    try:
        lifetime = parse_duration(expires) if expires else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from None
    full, key_id, secret_hash = generate_key()
    now = time.time()
    record = APIKeyRecord(
        key_id=key_id,
        client=client,
        scopes=frozenset(s for s in scopes.replace(",", " ").split() if s),
        secret_hash=secret_hash,
        created_at=now,
        expires_at=now + lifetime if lifetime else None,
        description=description,
    )

    async def go() -> None:
        try:
            await store.add(record)
        finally:
            await store.close()
            await revocations.close()

    asyncio.run(go())
    click.echo(full)
    click.echo(
        f"key id {key_id} for client {client!r}; store this key now, it cannot be shown again", err=True
    )


@keys.command(name="list")
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False))
def list_keys(config_path: str) -> None:
    """List keys (ids, clients, scopes, dates); never the keys themselves."""
    store, revocations = _stores(config_path)

    async def go() -> list[APIKeyRecord]:
        try:
            return await store.list()
        finally:
            await store.close()
            await revocations.close()

    records = asyncio.run(go())
    click.echo(
        f"{'KEY ID':14} {'CLIENT':20} {'STATE':8} {'CREATED':20} {'EXPIRES':20} {'LAST USED':20} SCOPES"
    )
    now = time.time()
    for r in records:
        state = "revoked" if r.revoked_at else ("expired" if not r.active(now) else "active")
        click.echo(
            f"{r.key_id:14} {r.client[:20]:20} {state:8} {_when(r.created_at):20} {_when(r.expires_at):20} "
            f"{_when(r.last_used_at):20} {' '.join(sorted(r.scopes))}"
        )


@keys.command()
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False))
@click.argument("key_id")
def revoke(config_path: str, key_id: str) -> None:
    """Revoke a key by id; every gateway instance refuses it within a second."""
    store, revocations = _stores(config_path)

    async def go() -> APIKeyRecord | None:
        try:
            record = await store.revoke(key_id, time.time())
            if record is not None:
                until = record.expires_at or time.time() + 10 * 365 * 86400
                await revocations.revoke("key", key_id, until)
            return record
        finally:
            await store.close()
            await revocations.close()

    if asyncio.run(go()) is None:
        raise click.ClickException(f"no key {key_id!r}")
    click.echo(f"revoked {key_id}", err=True)
