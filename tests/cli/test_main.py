"""The command line as a user runs it: exit codes, messages with file and line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from tests.support import DATA, eventually, free_port, http

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "customer_api"


def apishield(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apishield", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_check_example_ok() -> None:
    result = apishield("check", "--config", str(EXAMPLE / "apishield.yaml"))
    assert result.returncode == 0, result.stderr
    assert "OK: 12 operations" in result.stderr
    assert "route → rate_limit_early → client_certificate → authentication → authorization → rate_limit" in (
        result.stderr
    )


def test_check_relative_paths_resolve_against_the_policy_folder(tmp_path: Path) -> None:
    result = apishield("check", "--config", str(EXAMPLE / "apishield.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_check_reports_every_error_with_file_line_and_key(tmp_path: Path) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text(
        "openapi: " + str(DATA / "shop31.yaml") + "\n"
        "upstream: ftp://nowhere\n"
        "validation:\n"
        "  requests: enforced\n"
        "  respones: strip\n"
        "limits: {max_json_depth: 0}\n"
    )
    result = apishield("check", "--config", str(policy))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert f"{policy}:2: upstream: must be an http:// or https:// URL such as http://127.0.0.1:9000" in lines
    assert any(line.startswith(f"{policy}:4: validation.requests: Input should be") for line in lines)
    assert f"{policy}:5: validation.respones: unknown key 'respones'" in lines
    assert any(line.startswith(f"{policy}:6: limits.max_json_depth:") for line in lines)
    assert "4 error(s) in the configuration." in lines


def test_check_reports_unknown_operation(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        f"openapi: {DATA / 'shop31.yaml'}\nupstream: http://127.0.0.1:1\n"
        "operations:\n  login: {}\n  logn: {}\n"
    )
    result = apishield("check", "--config", str(policy))
    assert result.returncode == 2
    assert f"{policy}:5: operations.logn: no operation 'logn' in the OpenAPI document" in result.stderr


def test_check_reports_openapi_errors_with_line(tmp_path: Path) -> None:
    doc = tmp_path / "api.yaml"
    doc.write_text(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a/{id}:\n    get:\n"
        "      operationId: a\n      parameters:\n        - {name: other, in: path, schema: {type: string}}\n"
        "      responses: {'200': {description: ok}}\n"
    )
    (tmp_path / "p.yaml").write_text("openapi: api.yaml\nupstream: http://127.0.0.1:1\n")
    result = apishield("check", "--config", str(tmp_path / "p.yaml"))
    assert result.returncode == 2
    assert (
        "api.yaml:8: paths./a/{id}.get.parameters[0]: path parameter 'other' is not in the path template"
        in (result.stderr)
    )


def test_check_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("openapi: x\nupstream: [unclosed\n")
    result = apishield("check", "--config", str(tmp_path / "p.yaml"))
    assert result.returncode == 2
    assert "p.yaml:3: invalid YAML" in result.stderr


def test_print_openapi_shows_overlays_applied(tmp_path: Path) -> None:
    (tmp_path / "tighten.yaml").write_text(
        "overlay: 1.0.0\ninfo: {title: tighten, version: '1'}\nactions:\n"
        "  - target: $.components.schemas.Error.properties.error\n"
        "    update: {maxLength: 200}\n"
    )
    (tmp_path / "p.yaml").write_text(
        f"openapi: {EXAMPLE / 'openapi.yaml'}\nupstream: http://127.0.0.1:1\noverlays: [tighten.yaml]\n"
    )
    result = apishield("check", "--config", str(tmp_path / "p.yaml"), "--print-openapi", "--json")
    assert result.returncode == 0, result.stderr
    doc = orjson.loads(result.stdout)
    bundled = doc["components"]["x-apishield-bundled"]
    # Error lives in a separate file; the overlay targets the main document's components
    assert doc["openapi"] == "3.1.0" and bundled
    assert "maxLength" in str(doc) and "200" in result.stdout


def test_overlay_tightens_validation(tmp_path: Path) -> None:
    (tmp_path / "tighten.yaml").write_text(
        "overlay: 1.0.0\ninfo: {title: tighten, version: '1'}\nactions:\n"
        "  - target: $.components.schemas.Item.properties.name\n"
        "    update: {pattern: '^[a-z]+$'}\n"
    )
    from tests.support import stack

    with stack(tmp_path, DATA / "shop31.yaml", overlays=[str(tmp_path / "tighten.yaml")]) as s:
        assert s.call("PUT", "/items/1", {"name": "lamp"}).status == 200
        r = s.call("PUT", "/items/1", {"name": "Lamp!"})
        assert r.status == 400
        assert r.json()["errors"][0]["pointer"] == "/name"


def test_version() -> None:
    result = apishield("--version")
    assert result.returncode == 0 and "apishield" in result.stdout


def test_demo_end_to_end() -> None:
    port, upstream_port, issuer_port, admin_port = free_port(), free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apishield",
            "demo",
            "--port",
            str(port),
            "--upstream-port",
            str(upstream_port),
            "--issuer-port",
            str(issuer_port),
            "--admin-port",
            str(admin_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if line.startswith("Press Ctrl-C"):
                break
        text = "\n".join(lines)
        assert "refused 401  GET    /v1/customers/1   [anonymous]" in text, text
        assert "refused 404  GET    /v1/internal/debug" in text
        assert "removed by the gateway: internalNotes, passwordHash, riskScore" in text
        assert "refused 404  GET    /v1/customers/2   [alice (mobile app)]" in text
        assert "3 item(s), ids 1, 2, 5" in text
        assert (
            "body /id is read-only and must not be sent; body /isAdmin is not a documented property" in text
        )
        assert "body /email must be a valid email" in text
        assert "body /tier may not be set by this caller" in text
        assert "Her token after she revoked it at the issuer: The access token is invalid." in text
        # the enumeration detector sees bob's walk and blocks him
        assert "refused 404  GET    /v1/customers/{3..20}   [bob (mobile app)]" in text
        assert "refused 403  GET    /v1/customers/2   [bob (mobile app)]" in text
        assert "blocked for 10 minutes by the enumeration detector" in text
        # the demo keeps serving after its walkthrough, and the printed token command works
        command = next(line for line in lines if "TOKEN=$(" in line)
        argv = command.split("TOKEN=$(", 1)[1].rstrip(")").split()
        minted = subprocess.run(
            [sys.executable, "-m", "apishield", *argv[1:]], capture_output=True, text=True, timeout=60
        )
        assert minted.returncode == 0, minted.stderr
        r = http(port, "GET", "/v1/customers", headers={"Authorization": f"Bearer {minted.stdout.strip()}"})
        assert r.status == 200, (minted.stdout, r.body)
        assert {c["id"] for c in r.json()} == {1, 2, 5}
        assert all("passwordHash" not in c and "email" not in c for c in r.json())
        # the audit trail: the gateway's requests and the issuer's sign-ins, in the demo's database
        db = next(line for line in lines if "audit trail" in line).split()[2]
        token_file = next(line for line in lines if "console" in line).split("token in ")[1].rstrip(")")
        admin_token = Path(token_file).read_text().strip()

        def stored() -> list[dict[str, object]]:
            out = subprocess.run(
                [sys.executable, "-m", "apishield", "events", "--db", db, "--json", "--limit", "200"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            return [json.loads(x) for x in out.stdout.splitlines() if x.strip()]

        eventually(lambda: {3002, 6003} <= {e["class_uid"] for e in stored()}, "events of both classes")
        assert any(e["api"]["operation"] == "getCustomer" for e in stored() if e["class_uid"] == 6003)
        metrics = http(admin_port, "GET", "/metrics", headers={"Authorization": f"Bearer {admin_token}"})
        assert metrics.status == 200 and b'apishield_requests_total{operation="getCustomer"' in metrics.body
        assert http(admin_port, "GET", "/metrics").status == 401
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=20)[0]
        assert proc.returncode == 0
        assert "stopped." in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_check_reports_rule_errors_with_line_and_column(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        f"openapi: {DATA / 'shop31.yaml'}\n"
        "upstream: http://127.0.0.1:1\n"
        "authorization:\n"
        "  operations:\n"
        "    getItem:\n"
        '      allow_if: "path.itemId == token.item_id ||"\n'
        "    updateItem:\n"
        '      allow_if: "secrets.admin == true"\n'
        "    deleteItem:\n"
        '      precheck: {operation: createItem, allow_if: "true"}\n'
    )
    result = apishield("check", "--config", str(policy))
    assert result.returncode == 2
    err = result.stderr
    assert f"{policy}:6: authorization.operations.getItem.allow_if: CEL: line 1 column" in err
    assert f"{policy}:8: authorization.operations.updateItem.allow_if: CEL:" in err and "secrets" in err
    assert "createItem is a POST; a pre-check reads with a GET operation" in err
    assert "3 error(s) in the configuration." in err
    # structural errors come first (the rules cannot be compiled without a valid policy)
    policy.write_text(
        f"openapi: {DATA / 'shop31.yaml'}\nupstream: http://127.0.0.1:1\nauthorization:\n  operations:\n"
        '    getThing:\n      items: {allow_if: "item.owner == token.sub", pointer: "items"}\n'
    )
    err = apishield("check", "--config", str(policy)).stderr
    assert (
        f"{policy}:6: authorization.operations.getThing.items.pointer: a JSON pointer starts with '/'" in err
    )


def test_explain_prints_effective_requirements() -> None:
    result = apishield(
        "explain", "--config", str(EXAMPLE / "apishield.yaml"), "--operation", "updateCustomer"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "updateCustomer  PUT /v1/customers/{customerId}" in out
    assert "bearer token (oauth2) with scopes customers:write" in out
    assert "pre-check (reads /v1/customers/{customerId})" in out
    assert "max_body_bytes: 65536" in out
    listing = apishield("explain", "--config", str(EXAMPLE / "apishield.yaml"), "--json")
    doc = orjson.loads(listing.stdout)
    assert doc["deleteCustomer"]["function_level"] == {"require_roles": ["admin"]}
    assert "on the answer" in doc["getCustomer"]["object_level"]
    assert doc["listCustomers"]["object_level"]
    unknown = apishield("explain", "--config", str(EXAMPLE / "apishield.yaml"), "--operation", "nope")
    assert unknown.returncode == 2
