"""Shared fixtures: a recording upstream and a gateway in front of it, on real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import DATA, Stack, stack

# every audit event of the run is scanned for the secrets the tests used (tests/audit_guard.py)
pytest_plugins = ["tests.audit_guard"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The gateway in front of a recording upstream, described by tests/data/shop31.yaml."""
    tmp: Path = tmp_path_factory.mktemp("shop")
    policy = {
        "limits": {"max_body_bytes": 4096, "max_json_depth": 8, "max_string_length": 64},
        "operations": {"login": {"uniform_failure": {"status": 401, "title": "Login failed"}}},
        "proxy": {"read_timeout": 1.0},
    }
    with stack(tmp, DATA / "shop31.yaml", **policy) as s:
        yield s


@pytest.fixture()
def gw(shop: Stack) -> Stack:
    """The module's stack with the upstream's record and answers reset."""
    shop.upstream.received.clear()
    shop.upstream.answers.clear()
    # operations documented to return arrays
    shop.upstream.answer("GET", "/items", body=[])
    shop.upstream.answer("GET", "/items/search", body=[])
    return shop
