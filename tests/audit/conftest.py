"""Fixtures of the audit tests: a private PostgreSQL cluster that a test may stop and start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.audit.support import PrivateCluster, start_private_cluster


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivateCluster]:
    yield from start_private_cluster()
