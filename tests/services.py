"""Real Redis and PostgreSQL for tests: skip with a reason locally, fail under CI when unreachable."""

from __future__ import annotations

import os
import socket

import pytest

REDIS_URL = os.environ.get("APISHIELD_TEST_REDIS", "redis://127.0.0.1:6379/15")
POSTGRES_DSN = os.environ.get("APISHIELD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (under CI, tests needing it fail instead of skipping)")
    pytest.skip(message)


def require_redis() -> str:
    require("Redis", "127.0.0.1", 6379)
    return REDIS_URL


def require_postgres() -> str:
    require("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_DSN
