"""``apishield issuer|clients|users|token``: the embedded authorization server's command line.

Every command reads the issuer's settings from ``--issuer-config`` (alias
``--config``/``-c``; default ``$APISHIELD_ISSUER_CONFIG`` or ``issuer.yaml``);
relative paths in it resolve against its folder. Secrets never travel on the
command line (shell history, ``ps``): a new client secret is printed once on
stdout, passwords come from a hidden prompt or an environment variable.

``apishield token`` runs the ``client_credentials`` grant against the issuer's
token endpoint, found through its RFC 8414 metadata, authenticating with
``client_secret_basic``; the secret comes from ``--secret-env VAR``,
``--secret-file PATH`` or a hidden prompt. It needs no access to the keys or
the store, and the token it prints is issued, recorded and revocable like
any other.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import Request, urlopen

import click

__all__ = ["clients", "issuer", "token", "users"]

CONFIG_ENV = "APISHIELD_ISSUER_CONFIG"


class IssuerConfigProblem(click.ClickException):
    """The issuer settings are invalid: printed with file and line, exit code 2."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(self.format_message(), err=True)


def config_option(func: Any) -> Any:
    return click.option(
        "--issuer-config",
        "--config",
        "-c",
        "config_path",
        envvar=CONFIG_ENV,
        default="issuer.yaml",
        show_default=True,
        type=click.Path(dir_okay=False),
        help=f"Issuer settings file (or ${CONFIG_ENV}).",
    )(func)


def _settings(config_path: str) -> Any:
    from apishield.config.load import ConfigError
    from apishield.issuer.settings import load_issuer_settings

    try:
        return load_issuer_settings(config_path)
    except ConfigError as exc:
        raise IssuerConfigProblem(str(exc)) from None


def _store(settings: Any) -> Any:
    from apishield.issuer.store import StoreError, open_issuer_store

    try:
        return open_issuer_store(settings.store)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _claims(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``name=value`` pairs; a value that parses as JSON (1, true, ["a"]) is used as such, else a string."""
    claims: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not name=value", param_hint="--claim")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        claims[name] = value
    return claims


def _words(values: tuple[str, ...]) -> list[str]:
    return [w for v in values for w in v.replace(",", " ").split()]


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else "-"


def _publish(settings: Any, revoked: list[tuple[str, float]]) -> None:
    from apishield.issuer.admin import publish_revocations
    from apishield.services.revocation_store import open_revocation_store

    async def go() -> None:
        store = open_revocation_store(settings.revocation_store, Path.cwd())
        try:
            await publish_revocations(store, revoked)
        finally:
            await store.close()

    asyncio.run(go())


# -- apishield issuer ------------------------------------------------------------------------------


@click.group()
def issuer() -> None:
    """Run the embedded OAuth 2.0 authorization server and manage its signing keys."""


@issuer.command()
@config_option
@click.option("--host", default=None, help="Listen address (default: listen.host of the settings).")
@click.option("--port", default=None, type=int, help="Listen port (default: listen.port of the settings).")
def serve(config_path: str, host: str | None, port: int | None) -> None:
    """Serve the issuer; signing keys are created at first start."""
    from apishield.issuer.asgi import serve as run
    from apishield.issuer.keys import KeyFileError
    from apishield.issuer.store import StoreError

    settings = _settings(config_path)
    try:
        run(settings, host, port)
    except (KeyFileError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None


@issuer.command(name="rotate-keys")
@config_option
@click.option(
    "--alg",
    type=click.Choice(["ES256", "ES384", "EdDSA", "RS256", "PS256"]),
    default=None,
    help="Algorithm of the new key (default: signing_alg of the settings).",
)
def rotate_keys(config_path: str, alg: str | None) -> None:
    """Publish a new signing key and sign with it; the old key stays published until its tokens expire."""
    from apishield.issuer.keys import KeyFileError, KeyRing

    settings = _settings(config_path)
    keep_for = settings.token_lifetime + 300
    try:
        ring = KeyRing(Path(settings.keys_dir), settings.signing_alg, keep_for=keep_for)
        new = ring.rotate(alg)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(new.kid)
    click.echo(
        f"signing with {new.alg} key {new.kid}; previous keys stay in the JWKS for {int(keep_for)} s "
        "(running issuers switch within a second)",
        err=True,
    )


# -- apishield clients -----------------------------------------------------------------------------


@click.group()
def clients() -> None:
    """Register, list and revoke OAuth clients of the embedded issuer."""


@clients.command(name="add")
@config_option
@click.argument("client_id")
@click.option(
    "--type", "client_type", type=click.Choice(["public", "confidential"]), required=True, help="Client type."
)
@click.option(
    "--grant",
    "grants",
    multiple=True,
    type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]),
    required=True,
    help="A grant type the client may use (repeat the option for several).",
)
@click.option("--scope", "scopes", multiple=True, help="Allowed scopes (repeatable, or space-separated).")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="An exact redirect URI (repeatable).")
@click.option(
    "--claim", "claim_pairs", multiple=True, help="A claim for its tokens, name=value (repeatable)."
)
@click.option("--name", default="", help="Name shown on the sign-in page.")
@click.option(
    "--introspect-all", is_flag=True, help="May introspect every client's tokens (resource servers)."
)
def clients_add(
    config_path: str,
    client_id: str,
    client_type: str,
    grants: tuple[str, ...],
    scopes: tuple[str, ...],
    redirect_uris: tuple[str, ...],
    claim_pairs: tuple[str, ...],
    name: str,
    introspect_all: bool,
) -> None:
    """Register a client. A confidential client's secret is printed once, on stdout."""
    from apishield.issuer.admin import AdminError, new_client
    from apishield.issuer.passwords import PasswordHasher

    settings = _settings(config_path)
    claims = _claims(claim_pairs)
    store = _store(settings)
    try:
        record, secret = new_client(
            store,
            PasswordHasher(settings.password_hash),
            client_id=client_id,
            client_type=client_type,  # type: ignore[arg-type]
            grant_types=grants,
            scopes=_words(scopes),
            redirect_uris=redirect_uris,
            claims=claims,
            name=name,
            introspect_all=introspect_all,
            now=time.time(),
            known_scopes=settings.scopes,
        )
    except AdminError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        store.close()
    click.echo(f"registered {record.client_type} client {record.client_id}", err=True)
    if secret is not None:
        click.echo(secret)
        click.echo(
            "This is the client secret. It is shown once and stored only as a hash: keep it now.", err=True
        )


@clients.command(name="list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def clients_list(config_path: str, as_json: bool) -> None:
    """List clients (secrets are never shown)."""
    settings = _settings(config_path)
    store = _store(settings)
    try:
        records = store.list_clients()
    finally:
        store.close()
    if as_json:
        rows = [
            {
                "client_id": c.client_id,
                "name": c.name,
                "type": c.client_type,
                "grants": list(c.grant_types),
                "scopes": list(c.scopes),
                "redirect_uris": list(c.redirect_uris),
                "claims": dict(c.claims),
                "introspect_all": c.introspect_all,
                "created_at": c.created_at,
                "revoked_at": c.revoked_at,
            }
            for c in records
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for c in records:
        status = f"revoked {_when(c.revoked_at)}" if c.revoked_at else "active"
        click.echo(
            f"{c.client_id}\t{c.client_type}\t{status}\tgrants={','.join(c.grant_types)}\t"
            f"scopes={' '.join(c.scopes)}\tredirect_uris={' '.join(c.redirect_uris) or '-'}"
        )


@clients.command(name="revoke")
@config_option
@click.argument("client_id")
def clients_revoke(config_path: str, client_id: str) -> None:
    """Revoke a client and every live token it holds (gateways refuse them within a second)."""
    settings = _settings(config_path)
    store = _store(settings)
    try:
        revoked = store.revoke_client(client_id, time.time())
    finally:
        store.close()
    if revoked is None:
        raise click.ClickException(f"no client {client_id!r}")
    _publish(settings, revoked)
    click.echo(f"revoked client {client_id} and {len(revoked)} live access token(s)", err=True)


# -- apishield users -------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """Manage the users who sign in at the issuer's authorization endpoint."""


@users.command(name="add")
@config_option
@click.argument("username")
@click.option(
    "--claim", "claim_pairs", multiple=True, help="A claim for their tokens, name=value (repeatable)."
)
@click.option(
    "--password-env", default=None, metavar="VAR", help="Read the password from this environment variable."
)
def users_add(
    config_path: str, username: str, claim_pairs: tuple[str, ...], password_env: str | None
) -> None:
    """Add a user; the password is prompted for (hidden) unless --password-env is given."""
    from apishield.issuer.admin import AdminError, new_user
    from apishield.issuer.passwords import PasswordHasher

    settings = _settings(config_path)
    claims = _claims(claim_pairs)
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            raise click.UsageError(f"the environment variable {password_env} is not set")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = _store(settings)
    try:
        new_user(
            store,
            PasswordHasher(settings.password_hash),
            username=username,
            password=password,
            claims=claims,
            now=time.time(),
        )
    except AdminError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        store.close()
    click.echo(f"added user {username}", err=True)


@users.command(name="list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def users_list(config_path: str, as_json: bool) -> None:
    """List users (password hashes are never shown)."""
    settings = _settings(config_path)
    store = _store(settings)
    try:
        records = store.list_users()
    finally:
        store.close()
    if as_json:
        rows = [
            {
                "username": u.username,
                "claims": dict(u.claims),
                "created_at": u.created_at,
                "disabled_at": u.disabled_at,
            }
            for u in records
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for u in records:
        status = f"disabled {_when(u.disabled_at)}" if u.disabled_at else "active"
        click.echo(f"{u.username}\t{status}\t{json.dumps(dict(u.claims), sort_keys=True)}")


@users.command(name="disable")
@config_option
@click.argument("username")
def users_disable(config_path: str, username: str) -> None:
    """Disable a user and revoke every live token issued for them."""
    settings = _settings(config_path)
    store = _store(settings)
    try:
        revoked = store.disable_user(username, time.time())
    finally:
        store.close()
    if revoked is None:
        raise click.ClickException(f"no user {username!r}")
    _publish(settings, revoked)
    click.echo(f"disabled user {username} and revoked {len(revoked)} live access token(s)", err=True)


# -- apishield token -------------------------------------------------------------------------------


def _get_json(url: str, timeout: float) -> Any:
    with urlopen(Request(url, headers={"Accept": "application/json"}), timeout=timeout) as resp:
        return json.loads(resp.read())


def _secret(secret_env: str | None, secret_file: str | None) -> str:
    if secret_env and secret_file:
        raise click.UsageError("give --secret-env or --secret-file, not both")
    if secret_file:
        try:
            return Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise click.UsageError(f"cannot read {secret_file}: {exc.strerror}") from None
    if secret_env:
        value = os.environ.get(secret_env)
        if not value:
            raise click.UsageError(f"the environment variable {secret_env} is not set")
        return value
    return str(click.prompt("Client secret", hide_input=True, err=True))


@click.command()
@click.option("--client", "client_id", required=True, help="A confidential client using client_credentials.")
@click.option(
    "--scope", "scopes", multiple=True, help="Scopes to ask for (default: all the client may have)."
)
@click.option("--issuer", "issuer_url", default=None, help="Issuer URL (default: issuer of --issuer-config).")
@click.option(
    "--issuer-config",
    "config_path",
    envvar=CONFIG_ENV,
    default=None,
    type=click.Path(dir_okay=False),
    help=f"Issuer settings file, to find the issuer URL (or ${CONFIG_ENV}).",
)
@click.option("--secret-env", default=None, metavar="VAR", help="Read the client secret from this variable.")
@click.option("--secret-file", default=None, type=click.Path(dir_okay=False), help="Read it from this file.")
@click.option("--timeout", default=10.0, show_default=True, help="HTTP timeout in seconds.")
def token(
    client_id: str,
    scopes: tuple[str, ...],
    issuer_url: str | None,
    config_path: str | None,
    secret_env: str | None,
    secret_file: str | None,
    timeout: float,
) -> None:
    """Print an access token from the issuer (client_credentials grant), for quick use with curl."""
    from apishield.config.auth import loopback_or_https

    if issuer_url is None:
        issuer_url = _settings(config_path or "issuer.yaml").issuer
    try:
        loopback_or_https(issuer_url)
    except ValueError as exc:
        raise click.UsageError(f"--issuer: {exc}") from None
    issuer_url = issuer_url.rstrip("/")
    secret = _secret(secret_env, secret_file)
    parts = urlsplit(issuer_url)
    well_known = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"
    try:
        meta = _get_json(well_known, timeout)
    except (HTTPError, URLError, OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read the issuer's metadata at {well_known}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("issuer") != issuer_url:
        raise click.ClickException("the metadata names another issuer (RFC 8414 §3.3); refusing to use it")
    endpoint = meta.get("token_endpoint")
    if not isinstance(endpoint, str):
        raise click.ClickException("the issuer's metadata has no token_endpoint")
    loopback_or_https(endpoint)
    form = {"grant_type": "client_credentials"}
    words = _words(scopes)
    if words:
        form["scope"] = " ".join(words)
    basic = base64.b64encode(f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()).decode()
    request = Request(
        endpoint,
        data=urlencode(form).encode(),
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        method="POST",
    )
    try:
        with urlopen(request, timeout=timeout) as resp:
            answer = json.loads(resp.read())
    except HTTPError as err:
        try:
            problem = json.loads(err.read())
        except ValueError:
            problem = {}
        detail = problem.get("error_description") or ""
        raise click.ClickException(f"{problem.get('error', err.code)}: {detail}".rstrip(": ")) from None
    except (URLError, OSError, ValueError) as exc:
        raise click.ClickException(f"token request failed: {exc}") from None
    access_token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(access_token, str):
        raise click.ClickException("the token response has no access_token")
    click.echo(access_token)
    if sys.stderr.isatty():
        click.echo(f"expires in {answer.get('expires_in')} s; scope: {answer.get('scope', '')}", err=True)
