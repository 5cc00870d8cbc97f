"""Tests for :mod:`apishield.config.load` and the policy model in :mod:`apishield.config.model`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apishield.config.load import ConfigError, ConfigIssue, LoadedConfig, format_path, load_config
from apishield.config.model import Config

MINIMAL = "openapi: api.yaml\nupstream: http://127.0.0.1:9000\n"


def write(tmp_path: Path, text: str, name: str = "apishield.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def issues_of(path: Path) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.issues
    return info.value.issues


def by_key(issues: list[ConfigIssue]) -> dict[str, ConfigIssue]:
    return {format_path(i.path): i for i in issues}


# -- defaults -------------------------------------------------------------------------------------


def test_minimal_policy_gets_the_documented_defaults(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, MINIMAL))
    config = loaded.config
    assert config.version == 1
    assert config.openapi == "api.yaml"
    assert config.upstream == "http://127.0.0.1:9000"
    assert config.overlays == []
    assert config.operations == {}
    assert config.validation.requests == "enforce"
    assert config.validation.responses == "strip"
    assert config.validation.unknown_query_params == "reject"
    assert config.limits.max_body_bytes == 1_048_576
    assert config.limits.max_json_depth == 64
    assert config.limits.max_string_length == 65_536
    assert config.limits.max_response_bytes == 16 * 1_048_576
    assert config.listen.host == "127.0.0.1"
    assert config.listen.port == 8080
    assert config.proxy.connect_timeout == 5.0
    assert config.proxy.read_timeout == 30.0
    assert config.proxy.max_connections == 256
    assert config.proxy.replace_upstream_errors is True
    assert config.proxy.preserve_host is False


def test_operation_policy_defaults(tmp_path: Path) -> None:
    text = MINIMAL + "operations:\n  login:\n    uniform_failure: {}\n  other: {}\n"
    ops = load_config(write(tmp_path, text)).config.operations
    failure = ops["login"].uniform_failure
    assert failure is not None
    assert failure.status == 400
    assert failure.title == "Request failed"
    assert failure.detail is None
    assert failure.when_status == ["4XX", "5XX"]
    assert failure.when_body_pointer is None
    assert ops["other"].uniform_failure is None
    assert ops["other"].validation.requests is None
    assert ops["other"].validation.responses is None


def test_yaml11_words_are_mode_names(tmp_path: Path) -> None:
    text = MINIMAL + "validation:\n  requests: off\n  responses: off\n"
    config = load_config(write(tmp_path, text)).config
    assert config.validation.requests == "off"
    assert config.validation.responses == "off"


def test_max_string_length_may_be_disabled(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + "limits:\n  max_string_length: null\n")).config
    assert config.limits.max_string_length is None


# -- every error at once --------------------------------------------------------------------------

BROKEN = """\
openapi: api.yaml
upstream: ftp://example.com
validaton:
  requests: enforce
validation:
  requests: enforce
  responses: nope
  extra: 1
limits:
  max_json_depth: 0
  typo: 1
listen:
  port: "8080"
proxy:
  read_timeout: 0
operations:
  getItem:
    uniform_failure:
      when_status: ["404", "4xx"]
      when_body_pointer: "error"
      bogus: 1
    validation:
      requests: strip
"""


def test_every_error_is_reported_at_once_with_line_and_key_path(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    issues = issues_of(path)
    lines = {format_path(i.path): i.line for i in issues}
    assert lines == {
        "upstream": 2,
        "validaton": 3,
        "validation.responses": 7,
        "validation.extra": 8,
        "limits.max_json_depth": 10,
        "limits.typo": 11,
        "listen.port": 13,
        "proxy.read_timeout": 15,
        "operations.getItem.uniform_failure.when_status": 19,
        "operations.getItem.uniform_failure.when_body_pointer": 20,
        "operations.getItem.uniform_failure.bogus": 21,
        "operations.getItem.validation.requests": 23,
    }
    assert all(i.source == str(path) for i in issues)
    assert all(i.severity == "error" for i in issues)


def test_error_text_names_file_line_and_dotted_key(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value).splitlines()
    assert len(text) == len(info.value.issues)
    assert f"{path}:3: validaton: unknown key 'validaton'" in text
    assert f"{path}:11: limits.typo: unknown key 'typo'" in text
    assert (
        f"{path}:19: operations.getItem.uniform_failure.when_status: "
        "'4xx' is not a status code or class such as 404 or 4XX"
    ) in text
    assert (
        f"{path}:20: operations.getItem.uniform_failure.when_body_pointer: a JSON pointer starts with '/'"
        in (text)
    )
    assert f"{path}:2: upstream: must be an http:// or https:// URL such as http://127.0.0.1:9000" in text


@pytest.mark.parametrize(
    ("extra", "key", "line"),
    [
        ("validaton:\n  requests: off\n", "validaton", 3),
        ("validation:\n  request: off\n", "validation.request", 4),
        ("limits:\n  max_body_byte: 10\n", "limits.max_body_byte", 4),
        ("proxy:\n  preserve_hosts: true\n", "proxy.preserve_hosts", 4),
        ("operations:\n  op:\n    validaton: {}\n", "operations.op.validaton", 5),
        (
            "operations:\n  op:\n    validation:\n      response: off\n",
            "operations.op.validation.response",
            6,
        ),
        (
            "operations:\n  op:\n    uniform_failure:\n      stauts: 404\n",
            "operations.op.uniform_failure.stauts",
            6,
        ),
    ],
)
def test_unknown_keys_are_errors_at_every_depth(tmp_path: Path, extra: str, key: str, line: int) -> None:
    issues = issues_of(write(tmp_path, MINIMAL + extra))
    assert len(issues) == 1
    assert format_path(issues[0].path) == key
    assert issues[0].line == line
    assert issues[0].message == f"unknown key {key.rsplit('.', 1)[-1]!r}"


def test_required_keys_missing(tmp_path: Path) -> None:
    issues = by_key(issues_of(write(tmp_path, "listen: {port: 1}\n")))
    assert set(issues) == {"openapi", "upstream"}
    assert issues["openapi"].message == "required key is missing"
    assert issues["openapi"].line == 1  # the deepest known prefix is the document


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("validation:\n  requests: strip\n", "validation.requests"),
        ("validation:\n  responses: block\n", "validation.responses"),
        ("validation:\n  unknown_query_params: ignore\n", "validation.unknown_query_params"),
        ("validation:\n  requests: Enforce\n", "validation.requests"),
        (
            "operations:\n  op:\n    validation:\n      responses: strip-all\n",
            "operations.op.validation.responses",
        ),
        ("version: 2\n", "version"),
    ],
)
def test_invalid_enum_values(tmp_path: Path, extra: str, key: str) -> None:
    issues = issues_of(write(tmp_path, MINIMAL + extra))
    assert [format_path(i.path) for i in issues] == [key]
    assert issues[0].message.startswith("Input should be")


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("listen:\n  port: 70000\n", "listen.port"),
        ("listen:\n  port: '8080'\n", "listen.port"),
        ("limits:\n  max_json_depth: 1001\n", "limits.max_json_depth"),
        ("limits:\n  max_body_bytes: -1\n", "limits.max_body_bytes"),
        ("limits:\n  max_body_bytes: true\n", "limits.max_body_bytes"),
        ("limits:\n  max_string_length: 0\n", "limits.max_string_length"),
        ("proxy:\n  connect_timeout: 0\n", "proxy.connect_timeout"),
        ("proxy:\n  max_connections: 0\n", "proxy.max_connections"),
        ("proxy:\n  preserve_host: 'yes'\n", "proxy.preserve_host"),
        ("overlays: a.yaml\n", "overlays"),
        (
            "operations:\n  op:\n    uniform_failure:\n      status: 302\n",
            "operations.op.uniform_failure.status",
        ),
    ],
)
def test_out_of_range_and_wrongly_typed_values(tmp_path: Path, extra: str, key: str) -> None:
    issues = issues_of(write(tmp_path, MINIMAL + extra))
    assert [format_path(i.path) for i in issues] == [key]
    assert issues[0].line == 2 + extra.count("\n")  # the offending key is on the last line


# -- upstream -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("https://api.internal", "https://api.internal"),
        ("http://backend:8080/", "http://backend:8080"),
        ("http://backend:8080/v1/", "http://backend:8080/v1"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_valid_upstreams(value: str, stored: str) -> None:
    assert Config.model_validate({"openapi": "x", "upstream": value}).upstream == stored


@pytest.mark.parametrize(
    "value",
    [
        "ftp://example.com",
        "ws://example.com",
        "example.com:9000",
        "http://",
        "http:///path",
        "http://host?x=1",
        "http://host/path?x=1",
        "http://host#frag",
        "http://ho st",
        "http://host/a b",
        "",
    ],
)
def test_invalid_upstreams(tmp_path: Path, value: str) -> None:
    issues = issues_of(write(tmp_path, f"openapi: api.yaml\nupstream: {value!r}\n"))
    assert [format_path(i.path) for i in issues] == ["upstream"]
    assert issues[0].line == 2
    assert "http:// or https:// URL" in issues[0].message


def test_upstream_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    issues = issues_of(write(tmp_path, 'openapi: api.yaml\nupstream: "http://127.0.0.1:9000\\n"\n'))
    assert [format_path(i.path) for i in issues] == ["upstream"]


# -- uniform_failure ------------------------------------------------------------------------------


def uniform_failure(tmp_path: Path, body: str) -> Path:
    return write(tmp_path, MINIMAL + "operations:\n  login:\n    uniform_failure:\n" + body)


@pytest.mark.parametrize("status", ["404", "401", "100", "599", "4XX", "5XX", "1XX"])
def test_when_status_accepts_codes_and_classes(tmp_path: Path, status: str) -> None:
    loaded = load_config(uniform_failure(tmp_path, f"      when_status: ['{status}']\n"))
    policy = loaded.config.operations["login"].uniform_failure
    assert policy is not None
    assert policy.when_status == [status]


@pytest.mark.parametrize("status", ["4xx", "600", "099", "40", "4040", "XX", "4X", "4XXX", "", "404 "])
def test_when_status_refuses_anything_else(tmp_path: Path, status: str) -> None:
    issues = issues_of(uniform_failure(tmp_path, f"      when_status: ['{status}']\n"))
    assert [format_path(i.path) for i in issues] == ["operations.login.uniform_failure.when_status"]
    assert issues[0].line == 6
    assert issues[0].message == f"{status!r} is not a status code or class such as 404 or 4XX"


def test_when_status_items_must_be_strings(tmp_path: Path) -> None:
    issues = issues_of(uniform_failure(tmp_path, "      when_status:\n        - 404\n"))
    assert [i.path for i in issues] == [("operations", "login", "uniform_failure", "when_status", 0)]
    assert issues[0].line == 7


def test_when_status_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    issues_of(uniform_failure(tmp_path, '      when_status: ["404\\n"]\n'))


def test_every_bad_when_status_item_is_reported(tmp_path: Path) -> None:
    issues = issues_of(uniform_failure(tmp_path, "      when_status: ['4xx', '600']\n"))
    text = " ".join(i.message for i in issues)
    assert "'4xx'" in text
    assert "'600'" in text


@pytest.mark.parametrize(("pointer", "ok"), [("/error", True), ("", True), ("/a/0", True), ("error", False)])
def test_when_body_pointer(tmp_path: Path, pointer: str, ok: bool) -> None:
    path = uniform_failure(tmp_path, f"      when_body_pointer: '{pointer}'\n")
    if ok:
        policy = load_config(path).config.operations["login"].uniform_failure
        assert policy is not None
        assert policy.when_body_pointer == pointer
    else:
        issues = issues_of(path)
        assert [format_path(i.path) for i in issues] == ["operations.login.uniform_failure.when_body_pointer"]


# -- paths ----------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_policy_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "deploy"
    folder.mkdir()
    write(folder, MINIMAL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(Path("..") / "deploy" / "apishield.yaml")
    assert loaded.path == (folder / "apishield.yaml").resolve()
    assert loaded.path.is_absolute()
    assert loaded.base_dir == folder.resolve()
    assert loaded.resolve(loaded.config.openapi) == folder.resolve() / "api.yaml"
    assert loaded.resolve("specs/overlay.yaml") == folder.resolve() / "specs" / "overlay.yaml"
    assert loaded.resolve("../shared/api.yaml") == folder.resolve() / ".." / "shared" / "api.yaml"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, MINIMAL))
    absolute = tmp_path / "other" / "api.yaml"
    assert loaded.resolve(str(absolute)) == absolute


def test_loaded_config_keeps_the_document(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, MINIMAL))
    assert isinstance(loaded, LoadedConfig)
    assert loaded.document.value == {"openapi": "api.yaml", "upstream": "http://127.0.0.1:9000"}
    assert loaded.document.line_of(("upstream",)) == 2


# -- file-level problems --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["- openapi: api.yaml\n", "just a string\n", "42\n", ""])
def test_policy_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    issues = issues_of(path)
    assert len(issues) == 1
    assert issues[0].line == 1
    assert issues[0].path == ()
    assert str(issues[0]) == f"{path}:1: the policy must be a YAML mapping"


def test_missing_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    issues = issues_of(path)
    assert len(issues) == 1
    assert issues[0].line is None
    assert str(issues[0]) == f"{path}: file not found"


def test_invalid_yaml_in_the_policy(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "validation: [enforce\n")
    issues = issues_of(path)
    assert len(issues) == 1
    assert issues[0].line == 4
    assert str(issues[0]).startswith(f"{path}:4: invalid YAML")


def test_duplicate_key_in_the_policy(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "upstream: http://10.0.0.1\n")
    issues = issues_of(path)
    assert str(issues[0]) == f"{path}:3: duplicate key 'upstream'"


# -- rendering ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), ""),
        (("a",), "a"),
        (("a", "b"), "a.b"),
        (("overlays", 2), "overlays[2]"),
        (
            ("operations", "op", "uniform_failure", "when_status", 0),
            "operations.op.uniform_failure.when_status[0]",
        ),
    ],
)
def test_format_path(path: tuple[Any, ...], text: str) -> None:
    assert format_path(path) == text


def test_issue_rendering() -> None:
    assert str(ConfigIssue("p.yaml", 3, ("a", "b"), "bad")) == "p.yaml:3: a.b: bad"
    assert str(ConfigIssue("p.yaml", None, (), "bad")) == "p.yaml: bad"
    assert str(ConfigIssue("p.yaml", 3, ("a",), "odd", "warning")) == "p.yaml:3: warning: a: odd"
