"""Shadow-API probing and rate-limit pressure."""

from __future__ import annotations

from tests.detect.support import PARTNER_AGENT, Script, of, run

WORDLIST = [
    "/admin",
    "/api/v2/customers",
    "/v1/internal/debug",
    "/.env",
    "/actuator/env",
    "/v1/users",
    "/v1/config",
    "/graphql",
    "/v1/backup",
    "/swagger.json",
    "/v1/customers/1/export",
    "/server-status",
    "/v1/keys",
    "/v1/token",
]


def test_a_wordlist_scan_of_undocumented_paths() -> None:
    s = Script()
    for i, path in enumerate(WORDLIST):
        s.undocumented(i * 0.25, path)
    signals = of(run(s.events), "shadow_api")
    assert len(signals) == 1
    assert signals[0].key == "ip:203.0.113.9" and signals[0].evidence["distinct_paths"] == 12
    assert "/admin" in signals[0].evidence["sample_paths"] or len(signals[0].evidence["sample_paths"]) == 10


def test_an_outdated_app_calling_a_removed_endpoint() -> None:
    s = Script()
    for i in range(40):  # forty users of the old version behind one carrier address, each session
        s.undocumented(i * 20, "/v1/profile", ip="100.64.9.9", agent="CustomerApp/3.9.2 (iOS 16.7)")
    assert of(run(s.events), "shadow_api") == []


def _partner(s: Script, at: float, status: int = 200) -> None:
    s.api(
        at,
        sub="globex-portal",
        client="globex-portal",
        roles=("partner",),
        agent=PARTNER_AGENT,
        ip="198.51.100.70",
        op="listCustomers",
        route="/v1/customers",
        object_id=None,
        status=status,
        records=50,
        length=21_000,
    )


def test_a_client_hammering_into_its_rate_limit() -> None:
    s = Script()
    t = 0.0
    for i in range(400):
        _partner(s, t, 429 if i >= 100 and i % 3 else 200)
        t += 0.007
    signals = of(run(s.events), "rate_limit_pressure")
    assert len(signals) == 1
    assert signals[0].key == "client:globex-portal" and signals[0].evidence["refusals"] == 10


def test_a_job_that_backs_off_after_a_few_refusals() -> None:
    s = Script()
    for i in range(300):
        _partner(s, i * 0.2, 429 if i in (40, 41, 42, 120, 121) else 200)
    assert of(run(s.events), "rate_limit_pressure") == []
