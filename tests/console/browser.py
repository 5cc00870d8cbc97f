"""Headless Chromium for the console's end-to-end tests: Debian's package, driven by Playwright.

No browser is ever downloaded: Playwright launches ``/usr/bin/chromium``.
When it (or Playwright) is missing, the tests skip with the reason, or fail
under ``CI=true``, where a skipped browser test would hide a missing install.
Screenshots go to ``tests/artifacts/console/`` (ignored by git).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
written: list[Path] = []


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: the console's browser tests cannot run under CI=true", pytrace=False)
    pytest.skip(reason)


def launch(playwright: Any) -> Any:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    written.append(path)
    return path


def pwned(page: Any) -> Any:
    """What the markup planted in an event would have set, had it run (None: it did not)."""
    return page.evaluate("() => window.__pwned === undefined ? null : window.__pwned")
