"""The ``apishield`` command line.

Exit codes follow the usual convention: 0 success, 1 runtime failure,
2 usage or configuration error. Machine-readable output goes to stdout,
messages and progress to stderr.
"""

from __future__ import annotations

import sys

import click

from apishield import __version__

__all__ = ["main"]


class ConfigProblem(click.ClickException):
    """A configuration error: printed with file and line, exit code 2."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(self.format_message(), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="apishield")
def main() -> None:
    """apishield: API security controls driven by your OpenAPI document."""


@main.command()
@click.option(
    "--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False), help="Policy file."
)
@click.option(
    "--print-openapi", is_flag=True, help="Print the effective OpenAPI document (overlays applied)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the effective document as JSON instead of YAML.")
def check(config_path: str, print_openapi: bool, as_json: bool) -> None:
    """Validate the policy and the OpenAPI document; list every problem with file and line."""
    from apishield.config.load import ConfigError
    from apishield.runtime import load_runtime

    try:
        runtime = load_runtime(config_path)
    except ConfigError as exc:
        errors = [i for i in exc.issues if i.severity == "error"]
        raise ConfigProblem(
            "\n".join(str(i) for i in exc.issues) + f"\n{len(errors)} error(s) in the configuration."
        ) from None
    for warning in runtime.warnings:
        click.echo(str(warning), err=True)
    if print_openapi:
        data = runtime.api.document.data
        if as_json:
            import orjson

            click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        else:
            import yaml

            click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
        return
    config = runtime.loaded.config
    click.echo(
        f"OK: {len(runtime.api.operations)} operations from {config.openapi} "
        f"(OpenAPI {runtime.api.document.version}), upstream {config.upstream}",
        err=True,
    )
    click.echo("pipeline: " + " → ".join(runtime.pipeline.names), err=True)


@main.command()
@click.option(
    "--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False), help="Policy file."
)
@click.option("--host", default=None, help="Listen address (default: listen.host from the policy).")
@click.option("--port", default=None, type=int, help="Listen port (default: listen.port from the policy).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
def serve(config_path: str, host: str | None, port: int | None, workers: int) -> None:
    """Run the gateway in front of the upstream named in the policy."""
    from apishield.config.load import ConfigError, load_config
    from apishield.proxy.server import run

    try:
        listen = load_config(config_path).config.listen
        run(config_path, host or listen.host, port if port is not None else listen.port, workers)
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None


@main.command()
@click.option("--port", default=8080, show_default=True, type=int, help="Gateway port.")
@click.option("--upstream-port", default=9000, show_default=True, type=int, help="Example service port.")
@click.option("--issuer-port", default=8081, show_default=True, type=int, help="Embedded issuer port.")
@click.option(
    "--admin-port", default=9090, show_default=True, type=int, help="Admin listener port (metrics)."
)
@click.option("--no-walkthrough", is_flag=True, help="Do not run the example requests at start.")
def demo(port: int, upstream_port: int, issuer_port: int, admin_port: int, no_walkthrough: bool) -> None:
    """Run the example customer API behind the gateway, with its issuer and a walkthrough."""
    from apishield.demo import run_demo

    sys.exit(
        run_demo(
            port,
            upstream_port,
            walkthrough=not no_walkthrough,
            issuer_port=issuer_port,
            admin_port=admin_port,
        )
    )


from apishield.cli.alerts import alerts, blocks  # noqa: E402
from apishield.cli.detect import detect, simulate  # noqa: E402
from apishield.cli.events import events  # noqa: E402
from apishield.cli.issuer import clients, issuer, token, users  # noqa: E402
from apishield.cli.keys import keys  # noqa: E402


@main.command()
@click.option(
    "--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False), help="Policy file."
)
@click.option("--operation", "-o", default=None, help="Only this operationId.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def explain(config_path: str, operation: str | None, as_json: bool) -> None:
    """Print each operation's effective requirements: authentication, scopes, rules, properties, limits."""
    from apishield.config.load import ConfigError
    from apishield.explain import explain as build
    from apishield.explain import render_text
    from apishield.runtime import load_runtime

    try:
        runtime = load_runtime(config_path)
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None
    try:
        data = build(runtime, operation)
    except KeyError:
        raise click.UsageError(f"no operation {operation!r}; see 'apishield explain' for the list") from None
    if as_json:
        import orjson

        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_text(data))


for _command in (keys, issuer, clients, users, token, events, alerts, blocks, detect, simulate):
    main.add_command(_command)


@main.command(name="revoke")
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--jti", required=True, help="The token id (jti) to refuse from now on.")
@click.option("--until", "until", default="1d", show_default=True, help="How long to keep refusing it.")
def revoke_token(config_path: str, jti: str, until: str) -> None:
    """Revoke an access token by its jti on every gateway instance."""
    import asyncio
    import time

    from apishield.config.duration import parse_duration
    from apishield.config.load import ConfigError, load_config
    from apishield.services.revocation_store import open_revocation_store

    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None
    store = open_revocation_store(loaded.config.auth.revocation.store, loaded.base_dir)

    async def go() -> None:
        try:
            await store.revoke("jti", jti, time.time() + parse_duration(until))
        finally:
            await store.close()

    asyncio.run(go())
    click.echo(f"revoked jti {jti}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
