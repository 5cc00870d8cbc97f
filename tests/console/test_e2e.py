"""The console end to end, in headless Chromium, against a real gateway and its admin listener.

An investigator signs in with the keyboard, watches the alerts page while an
authenticated user walks order ids, sees the alert arrive without a reload,
opens it, follows it to the audit events, blocks the principal, and the
gateway refuses that principal's next request while another still gets
through. Every page is screenshotted; markup planted in a user agent never
runs; controls are labelled and reachable from the keyboard.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.browser import pwned, screenshot
from tests.console.support import MARKUP_AGENT, ConsoleStack, stored
from tests.support import eventually

expect: Any
try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    expect = None

WAIT_MS = 20_000


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page = context.new_page()
    page.problems = []  # console errors (a CSP violation is one) and uncaught exceptions
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    try:
        yield page
    finally:
        context.close()


def sign_in(page: Any, console: ConsoleStack) -> None:
    page.goto(console.console_url)
    page.get_by_label("Admin token").fill(console.token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console$"))


def test_investigation_from_alert_to_block(page: Any, console: ConsoleStack) -> None:
    # sign in with the keyboard only: Tab to the token field, type, Enter
    page.goto(console.console_url)
    expect(page).to_have_url(re.compile(r"/console/login"))
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == "token":
            break
    assert page.evaluate("() => document.activeElement.id") == "token", (
        "the token field is not reachable by Tab"
    )
    screenshot(page, "01-login")
    page.keyboard.type(console.token)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console$"))
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    screenshot(page, "02-overview-before")

    # the alerts page is open while the attack runs
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("heading", name="Alerts")).to_be_visible()
    page.evaluate("() => { window.__sameDocument = true; }")
    assert console.api("alice", "/orders/1").status == 200
    for order in range(2, 10):  # an authenticated user walking other customers' order ids
        assert console.api("mallory", f"/orders/{order}", agent=MARKUP_AGENT).status == 404

    alert_link = page.locator("#alerts-table").get_by_role(
        "link", name=re.compile(r"sub:mallory was refused")
    )
    expect(alert_link).to_be_visible()
    assert page.evaluate("() => window.__sameDocument") is True, "the page was reloaded"
    expect(page.locator("#live")).to_contain_text("New high alert")
    expect(page.locator("#alert-count")).to_have_text("1")
    screenshot(page, "03-alert-arrived")
    eventually(lambda: stored(console, "mallory") >= 8, "mallory's events in the audit store")

    # the alert: evidence (with the planted markup as text), timeline, linked events
    alert_link.click()
    page.wait_for_url(re.compile(r"/console/alerts/al-[0-9a-f]+$"))
    alert_url = page.url
    expect(page.locator("pre.json")).to_contain_text("<script>window.__pwned=1</script>")
    expect(page.locator("[data-source='timeline-data'] canvas").first).to_be_attached()
    expect(
        page.locator("#linked-events").get_by_role("link", name=re.compile("details")).first
    ).to_be_visible()
    assert pwned(page) is None
    screenshot(page, "04-alert")

    # follow a linked event, then all the principal's events around the alert
    page.locator("#linked-events").get_by_role("link", name=re.compile("details")).first.click()
    expect(page.get_by_role("heading", name=re.compile(r"^Event [0-9a-f]+"))).to_be_visible()
    expect(page.locator("dd.agent")).to_have_text(MARKUP_AGENT)
    assert pwned(page) is None
    screenshot(page, "05-event")
    page.goto(alert_url)
    page.locator("#around-link").click()
    expect(page.get_by_role("heading", name="Events")).to_be_visible()
    expect(page.get_by_label("Subject (user)")).to_have_value("mallory")
    expect(page.locator("#events-table tbody tr.refused").first).to_be_visible()
    assert page.locator("#events-table tbody tr.refused").count() >= 8  # the walk, answered 404
    assert pwned(page) is None
    screenshot(page, "06-events")

    # block the principal from the alert page
    page.goto(alert_url)
    page.get_by_label(re.compile(r"Block subject mallory for")).select_option("1h")
    page.get_by_role("button", name="Block sub:mallory").click()
    expect(page.locator(".flash")).to_contain_text("Blocked subject mallory")
    expect(page.locator(".blocks")).to_contain_text("block subject mallory")
    screenshot(page, "07-blocked")

    # the gateway refuses mallory's next request; alice still gets through
    refused = console.api("mallory", "/orders/1")
    assert refused.status == 403
    assert refused.json()["type"].endswith("/blocked")
    assert console.api("alice", "/orders/1").status == 200

    # the principal's page and the effective policy
    page.goto(f"{console.console_url}/principal?key=sub:mallory")
    expect(page.get_by_role("heading", name="User mallory")).to_be_visible()
    expect(page.locator("[data-source='activity-data'] canvas").first).to_be_attached()
    expect(page.locator(".blocks")).to_contain_text("block subject mallory")
    screenshot(page, "08-principal")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Policy").click()
    expect(page.get_by_role("heading", name="getOrder GET /orders/{orderId}")).to_be_visible()
    expect(page.locator("pre.explain", has_text="getOrder")).to_contain_text("bearer token")
    screenshot(page, "09-policy")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Overview").click()
    expect(page.locator("#overview-alerts")).to_contain_text("sub:mallory")
    screenshot(page, "10-overview-after")
    assert page.problems == []


def test_markup_in_events_renders_as_text(page: Any, console: ConsoleStack) -> None:
    assert console.api("trudy", "/orders/1", agent=MARKUP_AGENT).status == 200
    eventually(lambda: stored(console, "trudy") >= 1, "trudy's event in the audit store")
    sign_in(page, console)
    page.goto(f"{console.console_url}/events?subject=trudy")
    row = page.locator("#events-table tbody tr").filter(has=page.locator("td.agent"))
    expect(row.first.locator("td.agent")).to_have_text(MARKUP_AGENT)
    assert page.locator("#events-table script, #events-table img").count() == 0
    assert pwned(page) is None
    screenshot(page, "11-markup-events")
    row.first.get_by_role("link", name=re.compile("details")).click()
    expect(page.locator("dd.agent")).to_have_text(MARKUP_AGENT)
    expect(page.locator("pre.json")).to_contain_text("<script>window.__pwned=1</script>")
    assert page.locator("main script, main img").count() == 0
    assert pwned(page) is None
    page.goto(f"{console.console_url}/principal?key=sub:trudy")
    expect(page.get_by_role("heading", name="User trudy")).to_be_visible()
    assert pwned(page) is None
    assert page.problems == []


_UNLABELLED = """() => Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.name || el.id)"""


def test_accessibility_basics(page: Any, console: ConsoleStack) -> None:
    sign_in(page, console)
    for path in ("", "/alerts", "/events", "/policy", "/principal?key=sub:alice"):
        page.goto(console.console_url + path)
        assert page.evaluate(_UNLABELLED) == [], f"unlabelled controls on {path or '/'}"
        for landmark in ("banner", "navigation", "main"):
            assert page.get_by_role(landmark).count() >= 1, f"no {landmark} landmark on {path or '/'}"
        for chart in page.locator("[data-chart]").all():
            assert chart.get_attribute("role") == "img" and chart.get_attribute("aria-labelledby")
            assert chart.locator("xpath=..").locator("details table").count() == 1  # the numbers as a table
        # the first Tab reaches the skip link, which moves the focus to the main content
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.textContent.trim()") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "main"
    # a chart's numbers are one keypress away
    page.goto(console.console_url)
    page.locator("details.numbers summary").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("details.numbers table").first).to_be_visible()
    assert page.problems == []
