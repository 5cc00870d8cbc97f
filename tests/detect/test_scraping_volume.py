"""Scraping and volume: far above one's own baseline and one's peers'; steady jobs and busy agents are not."""

from __future__ import annotations

from apishield.config.detectors import DetectorsPolicy, ScrapingPolicy
from tests.detect.support import ORDERS, PARTNER_AGENT, Script, of, run

PARTNER = {
    "sub": "partner-portal",
    "client": "partner-portal",
    "roles": ("partner",),
    "agent": PARTNER_AGENT,
    "ip": "198.51.100.10",
    "token": "p" * 32,
}


def _partner_runs(s: Script, hours: float, every: float = 900) -> float:
    """A steady batch job: every 15 minutes two list pages and the orders of 80 customers, 6 a second."""
    t = 0.0
    run_no = 0
    while t < hours * 3600:
        at = t
        for _page in range(2):
            s.api(
                at,
                op="listCustomers",
                route="/v1/customers",
                object_id=None,
                records=50,
                length=21_000,
                **PARTNER,
            )
            at += 1 / 6
        for k in range(80):
            customer = 1 + 2 * ((run_no * 37 + k * 13) % 1200)
            s.api(
                at,
                op="listOrders",
                route=ORDERS,
                object_id=str(customer),
                records=4 + k % 5,
                length=2 + 330 * (4 + k % 5),
                **PARTNER,
            )
            at += 1 / 6
        t += every
        run_no += 1
    return t


def test_a_steady_partner_job_is_neither_scraping_nor_a_volume_anomaly() -> None:
    s = Script()
    _partner_runs(s, 12)
    signals = run(s.events)
    assert of(signals, "scraping") == [] and of(signals, "volume") == []


def test_a_partner_pulling_far_above_its_own_baseline() -> None:
    s = Script()
    t = _partner_runs(s, 6)
    first = len(s.events)
    for i in range(600):  # every page of the customer list, twelve a second
        s.api(
            t + i / 12,
            op="listCustomers",
            route="/v1/customers",
            object_id=None,
            records=50,
            length=21_000,
            **PARTNER,
        )
    signals = run(s.events)
    scraping = of(signals, "scraping", "client:partner-portal")
    assert scraping and scraping[0].time_ms >= s.events[first]["time"]
    requests = sum(1 for e in s.events[first:] if e["time"] <= scraping[0].time_ms)
    assert requests <= 200
    assert scraping[0].evidence["own_baseline_records"] is not None
    volume = of(signals, "volume", "client:partner-portal")
    assert volume and volume[0].scope == "listCustomers"


def _agents(s: Script, hours: float, agents: int = 4) -> None:
    """Support agents: a ticket every few minutes (record, orders, an order), customers all over."""
    for a in range(agents):
        t = 60.0 * a
        n = 0
        while t < hours * 3600:
            customer = str(1 + (n * 7919 + a * 104_729) % 2400)
            who = {
                "sub": f"support{a:02d}",
                "roles": ("support",),
                "ip": f"192.0.2.{20 + a}",
                "token": f"{a}" * 32,
            }
            s.api(t, object_id=customer, **who)
            s.api(
                t + 9,
                route=ORDERS,
                op="listOrders",
                object_id=customer,
                records=n % 9,
                length=2 + 330 * (n % 9),
                **who,
            )
            s.api(
                t + 20, route="/v1/orders/{orderId}", op="getOrder", object_id=f"order-{n}", length=350, **who
            )
            t += 150 + (n * 53) % 300
            n += 1


def test_support_agents_reading_many_customers_all_day() -> None:
    s = Script()
    _agents(s, 8)
    signals = run(s.events)
    assert of(signals, "scraping") == [] and of(signals, "volume") == [] and of(signals, "enumeration") == []


def test_a_phished_support_account_harvesting_customers() -> None:
    s = Script()
    _agents(s, 4)
    start = len(s.events)
    for i in range(300):
        s.api(
            4 * 3600 + i / 3,
            sub="support02",
            roles=("support",),
            ip="203.0.113.80",
            token="x" * 32,
            object_id=str(5000 + i),
        )
    signals = of(run(s.events), "scraping", "sub:support02")
    assert signals
    requests = sum(1 for e in s.events[start:] if e["time"] <= signals[0].time_ms)
    assert requests <= 200
    assert signals[0].evidence["id_span_density"] >= 0.5  # every id in a row


def test_without_any_baseline_only_the_ceiling_judges() -> None:
    policy = DetectorsPolicy(scraping=ScrapingPolicy(ceiling_records=20_000))
    quiet = Script()
    for i in range(100):  # 5,000 records in a minute from a principal nobody knows yet
        quiet.api(
            i * 0.5,
            sub="newcomer",
            client="new-app",
            roles=("x",),
            op="export",
            route="/v1/things",
            object_id=None,
            records=50,
            length=20_000,
        )
    assert of(run(quiet.events, policy), "scraping") == []
    loud = Script()
    for i in range(500):
        loud.api(
            i * 0.1,
            sub="newcomer",
            client="new-app",
            roles=("x",),
            op="export",
            route="/v1/things",
            object_id=None,
            records=50,
            length=20_000,
        )
    assert len(of(run(loud.events, policy), "scraping")) == 1


def _mobile_users(s: Script, users: int, hours: float) -> None:
    """Customers opening the app now and then: a few calls a minute at most, each on their own record."""
    for u in range(users):
        t = (u * 97) % 3600
        n = 0
        while t < hours * 3600:
            who = {"sub": f"user{u:06d}", "ip": f"10.{u // 250}.{u % 250}.7", "token": f"{u:032x}"}
            s.api(t, object_id=str(u + 1), **who)
            s.api(t + 2, route=ORDERS, op="listOrders", object_id=str(u + 1), records=n % 7, **who)
            if n % 3 == 0:
                s.api(t + 30, object_id=str(u + 1), **who)
            t += 2400 + (u * 31 + n * 17) % 3000
            n += 1


def test_a_script_polling_every_second_against_its_peers() -> None:
    s = Script()
    _mobile_users(s, 120, 3)
    start = len(s.events)
    for i in range(120):
        s.api(
            3 * 3600 + i,
            sub="user000007",
            route=ORDERS,
            op="listOrders",
            object_id="8",
            records=3,
            token="s" * 32,
            ip="10.0.7.7",
        )
    signals = run(s.events)
    volume = of(signals, "volume", "sub:user000007")
    assert volume and volume[0].evidence["peer_p99"] is not None
    assert sum(1 for e in s.events[start:] if e["time"] <= volume[0].time_ms) == 30  # the floor
    assert of(signals, "scraping", "sub:user000007") == []  # its own orders, re-read: not harvesting
    legit = [x for x in signals if x.key != "sub:user000007"]
    assert legit == []


def test_volume_waits_for_a_baseline() -> None:
    s = Script()
    for i in range(100):  # 100 calls in a minute, but nobody of its kind was ever seen
        s.api(
            i * 0.6,
            sub="newcomer",
            client="new-app",
            roles=("x",),
            op="ping",
            route="/v1/ping",
            object_id=None,
        )
    assert of(run(s.events), "volume") == []
