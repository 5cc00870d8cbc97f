"""The ``rate_limits:`` and ``trusted_proxies:`` sections: parsing, and errors with their policy line."""

from __future__ import annotations

from pathlib import Path

import pytest

from apishield.config.load import ConfigError, load_config
from apishield.config.ratelimit import parse_rate
from apishield.runtime import load_runtime
from tests.support import DATA


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10/s", (10, 1.0)), ("100/min", (100, 60.0)), ("10000/day", (10000, 86400.0)), ("5/15m", (5, 900.0))],
)
def test_rates(text: str, expected: tuple[int, float]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["10", "0/s", "10/fortnight", "ten/s", "10/0s"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def policy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "apishield.yaml"
    path.write_text(f"openapi: {DATA / 'shop31.yaml'}\nupstream: http://127.0.0.1:9\n" + body)
    return path


def test_cel_errors_carry_the_policy_line(tmp_path: Path) -> None:
    path = policy(
        tmp_path,
        """rate_limits:
  limits:
    - id: ok
      key: client_ip
      rate: 1/s
    - id: bad
      key: [client_ip, body.username +]
      rate: 1/s
      count_if: responze.status == 401
""",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    issues = {i.path: i for i in err.value.issues}
    key = issues[("rate_limits", "limits", 1, "key")]
    assert key.line == 9 and "CEL" in key.message
    count_if = issues[("rate_limits", "limits", 1, "count_if")]
    assert count_if.line == 11 and "responze" in count_if.message


def test_duplicate_ids_store_and_networks_are_checked(tmp_path: Path) -> None:
    path = policy(
        tmp_path,
        """trusted_proxies: [10.0.0.0/8, not-a-network]
rate_limits:
  store: memcached://x
  limits:
    - {id: a, key: client_ip, rate: 1/s}
    - {id: a, key: client_ip, rate: 2/s}
""",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "not-a-network" in text and "redis://" in text
    with pytest.raises(ConfigError) as err:
        load_config(
            policy(
                tmp_path,
                "rate_limits:\n  limits:\n    - {id: a, key: client_ip, rate: 1/s}\n"
                "    - {id: a, key: client_ip, rate: 2/s}\n",
            )
        )
    assert "unique" in str(err.value)


def test_unknown_operations_are_errors(tmp_path: Path) -> None:
    path = policy(
        tmp_path,
        """rate_limits:
  limits:
    - {id: a, key: client_ip, rate: 1/s, operations: [nope], costs: {listItems: 2, gone: 3}}
""",
    )
    with pytest.raises(ConfigError) as err:
        load_runtime(path)
    assert "'nope'" in str(err.value) and "'gone'" in str(err.value)


def test_stages_are_placed_by_what_keys_read(tmp_path: Path) -> None:
    path = policy(
        tmp_path,
        """trusted_proxies: {networks: ["127.0.0.1/32"], header: forwarded}
rate_limits:
  limits:
    - {id: ip, key: client_ip, rate: 1/s}
    - {id: client, key: principal.client_id, rate: 1/s}
    - {id: fail, key: client_ip, rate: 1/m, count_if: "response.status == 401"}
""",
    )
    names = load_runtime(path).pipeline.names
    assert names.index("route") < names.index("rate_limit_early") < names.index("authentication")
    assert names.index("authorization") < names.index("rate_limit") < names.index("request_validation")
    assert names[-1] == "rate_limit_outcome"


def test_without_rate_limits_the_pipeline_is_unchanged(tmp_path: Path) -> None:
    names = load_runtime(policy(tmp_path, "")).pipeline.names
    assert not any(n.startswith("rate_limit") for n in names)
