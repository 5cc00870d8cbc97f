"""``apishield issuer|clients|users|token`` through click's runner (and ``serve`` as a real process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import requests
from click.testing import CliRunner

from apishield.cli.issuer import clients, token, users
from apishield.cli.issuer import issuer as issuer_group
from apishield.services.revocation_store import open_revocation_store
from tests.issuer.helpers import Issuer
from tests.support import free_port


@click.group()
def cli() -> None:
    """The commands as the main engineer registers them."""


for command in (issuer_group, clients, users, token):
    cli.add_command(command)


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def test_clients_add_list_and_revoke(issuer: Issuer) -> None:
    cfg = str(issuer.demo.settings_path)
    added = run(
        "clients",
        "add",
        "cli-reporting",
        "-c",
        cfg,
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        "orders:read customers:read",
        "--claim",
        "partner_id=p-globex",
        "--claim",
        'roles=["reporting"]',
        "--name",
        "Reporting",
    )
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip()
    assert len(secret) == 43 and "\n" not in secret
    assert "shown once" in added.stderr
    listed = json.loads(run("clients", "list", "-c", cfg, "--json").stdout)
    entry = next(c for c in listed if c["client_id"] == "cli-reporting")
    assert entry["scopes"] == ["orders:read", "customers:read"]
    assert entry["claims"] == {"partner_id": "p-globex", "roles": ["reporting"]}
    assert secret not in json.dumps(listed)
    # the running issuer serves the new client at once
    issuer.secrets["cli-reporting"] = secret
    minted = issuer.client_credentials("cli-reporting")["access_token"]
    claims = issuer.verify(minted).claims
    assert claims["partner_id"] == "p-globex" and claims["roles"] == ["reporting"]
    # revoking it revokes its live tokens, and tells the gateways
    revoked = run("clients", "revoke", "cli-reporting", "-c", cfg)
    assert revoked.exit_code == 0, revoked.output
    assert "1 live access token" in revoked.stderr
    assert issuer.introspect(minted) == {"active": False}

    async def published() -> set[str]:
        store = open_revocation_store(issuer.demo.revocation_store, Path.cwd())
        try:
            return {i for _, i, _ in (await store.since(0))[0]}
        finally:
            await store.close()

    assert claims["jti"] in asyncio.run(published())
    r = issuer.post("token", {"grant_type": "client_credentials"}, auth=("cli-reporting", secret))
    assert r.status_code == 401


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--type", "public", "--grant", "client_credentials"],
            "public client cannot use client_credentials",
        ),
        (["--type", "public", "--grant", "authorization_code"], "needs at least one --redirect-uri"),
        (
            ["--type", "public", "--grant", "authorization_code", "--redirect-uri", "http://evil.example/cb"],
            "loopback",
        ),
        (
            [
                "--type",
                "public",
                "--grant",
                "authorization_code",
                "--redirect-uri",
                "https://app.example/cb#x",
            ],
            "fragment",
        ),
        (
            [
                "--type",
                "public",
                "--grant",
                "authorization_code",
                "--redirect-uri",
                "https://a.example;x/ cb",
            ],
            "without spaces",
        ),
        (
            ["--type", "public", "--grant", "authorization_code", "--redirect-uri", "https://a.example;x/cb"],
            "invalid host",
        ),
        (["--type", "confidential", "--grant", "client_credentials", "--scope", "admin:all"], "not one of"),
        (
            ["--type", "confidential", "--grant", "client_credentials", "--claim", "sub=admin"],
            "registered JWT claim",
        ),
        (["--type", "confidential", "--grant", "refresh_token"], "refresh_token needs authorization_code"),
    ],
)
def test_clients_add_refuses_unsafe_registrations(issuer: Issuer, args: list[str], message: str) -> None:
    result = run("clients", "add", "bad-client", "-c", str(issuer.demo.settings_path), *args)
    assert result.exit_code == 2
    assert message in result.output


def test_clients_add_refuses_a_duplicate(issuer: Issuer) -> None:
    result = run(
        "clients",
        "add",
        "partner-portal",
        "-c",
        str(issuer.demo.settings_path),
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
    )
    assert result.exit_code == 2 and "already exists" in result.output


def test_users_add_list_disable(issuer: Issuer) -> None:
    cfg = str(issuer.demo.settings_path)
    added = run(
        "users",
        "add",
        "zoe",
        "-c",
        cfg,
        "--password-env",
        "ZOE_PASSWORD",
        "--claim",
        "customer_id=7",
        env={"ZOE_PASSWORD": "a long enough password"},
    )
    assert added.exit_code == 0, added.output
    listed = json.loads(run("users", "list", "-c", cfg, "--json").stdout)
    zoe = next(u for u in listed if u["username"] == "zoe")
    assert zoe["claims"] == {"customer_id": 7} and zoe["disabled_at"] is None
    assert "password" not in json.dumps(zoe)
    prompted = run("users", "add", "yann", "-c", cfg, input="another long password\nanother long password\n")
    assert prompted.exit_code == 0, prompted.output
    short = run("users", "add", "xavier", "-c", cfg, input="short\nshort\n")
    assert short.exit_code == 2 and "8 to 1024" in short.output
    disabled = run("users", "disable", "zoe", "-c", cfg)
    assert disabled.exit_code == 0
    assert run("users", "disable", "nobody", "-c", cfg).exit_code == 1


def test_token_command_prints_a_token(issuer: Issuer, tmp_path: Path) -> None:
    secret_file = issuer.demo.secret_file
    result = run(
        "token",
        "--client",
        "partner-portal",
        "--issuer-config",
        str(issuer.demo.settings_path),
        "--secret-file",
        str(secret_file),
        "--scope",
        "customers:read",
    )
    assert result.exit_code == 0, result.output
    access_token = result.stdout.strip()
    assert issuer.verify(access_token).scopes == {"customers:read"}
    by_env = run(
        "token",
        "--client",
        "partner-portal",
        "--issuer",
        issuer.url,
        "--secret-env",
        "PP_SECRET",
        env={"PP_SECRET": issuer.secrets["partner-portal"]},
    )
    assert by_env.exit_code == 0 and issuer.verify(by_env.stdout.strip()).client_id == "partner-portal"
    wrong = run(
        "token",
        "--client",
        "partner-portal",
        "--issuer",
        issuer.url,
        "--secret-env",
        "PP_SECRET",
        env={"PP_SECRET": "wrong"},
    )
    assert wrong.exit_code == 1 and "invalid_client" in wrong.output
    plain = run(
        "token",
        "--client",
        "partner-portal",
        "--issuer",
        "http://issuer.example",
        "--secret-env",
        "X",
        env={"X": "y"},
    )
    assert plain.exit_code == 2 and "https" in plain.output


def test_settings_errors_name_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "issuer.yaml"
    cfg.write_text("issuer: https://auth.example\naudience: api\ntoken_lifetme: 10m\n")
    result = run("clients", "list", "-c", str(cfg))
    assert result.exit_code == 2
    assert f"{cfg}:3: token_lifetme: unknown key" in result.output
    assert run("clients", "list", "-c", str(tmp_path / "missing.yaml")).exit_code == 2


def test_rotate_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "issuer.yaml"
    cfg.write_text(
        "issuer: https://auth.example\naudience: api\nkeys_dir: keys\nstore: sqlite:///issuer.db\n"
    )
    first = run("issuer", "rotate-keys", "-c", str(cfg))
    second = run("issuer", "rotate-keys", "-c", str(cfg), "--alg", "EdDSA")
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    manifest = json.loads((tmp_path / "keys" / "manifest.json").read_text())
    assert manifest["active"] == second.stdout.strip()
    assert [k["alg"] for k in manifest["keys"]] == ["ES256", "ES256", "EdDSA"]


def test_serve_runs_the_issuer(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "issuer.yaml"
    cfg.write_text(
        f"issuer: http://127.0.0.1:{port}\naudience: api\nlisten: {{port: {port}}}\n"
        "store: sqlite:///issuer.db\nkeys_dir: keys\nrevocation_store: sqlite:///revocations.db\n"
    )
    code = "import sys; from apishield.cli.issuer import issuer; issuer(sys.argv[1:])"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "-c", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                meta = requests.get(
                    f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server", timeout=1
                )
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert meta.json()["issuer"] == f"http://127.0.0.1:{port}"
        assert (tmp_path / "keys" / "manifest.json").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        if proc.stdout:
            proc.stdout.close()
