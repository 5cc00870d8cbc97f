"""Fixtures of the console tests: one gateway stack and one headless browser for the module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console import browser as chromium
from tests.console.support import ConsoleStack, console_stack


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    tmp: Path = tmp_path_factory.mktemp("console")
    with console_stack(tmp) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium.unavailable("Playwright for Python is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = chromium.launch(playwright)
        try:
            yield launched
        finally:
            launched.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if chromium.written:
        terminalreporter.write_line(
            f"console screenshots ({len(chromium.written)}): {chromium.ARTIFACTS}", bold=True
        )
