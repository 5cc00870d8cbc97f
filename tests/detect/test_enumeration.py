"""Object enumeration (BOLA probing): scripted walks signal; support agents, partners, stray 404s do not."""

from __future__ import annotations

from apishield.config.detectors import DetectorsPolicy, EnumerationPolicy
from tests.detect.support import CUSTOMER, ORDERS, PARTNER_AGENT, SCRIPT, Script, of, run


def test_a_sequential_walk_by_a_valid_user_is_signalled_within_a_few_requests() -> None:
    s = Script()
    s.api(0, sub="user000500", object_id="500")  # its own record
    for i, target in enumerate(range(501, 561)):
        s.api(1 + i / 3, sub="user000500", object_id=str(target), status=404, agent=SCRIPT, ip="203.0.113.7")
    signals = of(run(s.events), "enumeration")
    assert len(signals) == 1
    signal = signals[0]
    assert signal.key == "sub:user000500" and signal.scope == CUSTOMER
    assert signal.evidence["sequential_walk"] >= 8
    assert signal.evidence["denied_objects"] == 8  # the walk rule: 8 refused ids in a row
    assert signal.time_ms == s.events[8]["time"]
    assert signal.event_ids and set(signal.event_ids) <= {e["metadata"]["uid"] for e in s.events}
    assert signal.severity == 4 and signal.response is None


def test_random_ids_are_signalled_at_the_bar() -> None:
    s = Script()
    ids = [
        str(n)
        for n in (
            917,
            23,
            4410,
            388,
            1204,
            77,
            3012,
            650,
            2999,
            145,
            808,
            1733,
            56,
            2470,
            390,
            1111,
            3456,
            72,
            981,
            2024,
            1313,
            444,
        )
    ]
    for i, target in enumerate(ids):
        s.api(i * 0.7, route=ORDERS, op="listOrders", object_id=target, status=404, records=None)
    signals = of(run(s.events), "enumeration")
    assert len(signals) == 1
    assert signals[0].evidence["denied_objects"] == 20
    assert signals[0].time_ms == s.events[19]["time"]
    assert signals[0].evidence["sequential_walk"] == 0


def test_nineteen_refusals_are_not_enough() -> None:
    s = Script()
    for i in range(19):
        s.api(i, object_id=str(1000 + 37 * i), status=404)
    assert of(run(s.events), "enumeration") == []


def test_a_support_agent_reading_many_customers_is_not_enumerating() -> None:
    s = Script()
    for i in range(400):
        s.api(i * 20, sub="support01", roles=("support",), object_id=str(3 + (i * 7919) % 2400))
    s.api(9000, sub="support01", roles=("support",), object_id="99999", status=404)  # a mistyped id
    assert of(run(s.events), "enumeration") == []


def test_a_partner_job_that_meets_a_few_deleted_customers_is_not_enumerating() -> None:
    s = Script()
    t = 0.0
    for i in range(1500):
        # its customers in id order (a walk of successes), one in fifty deleted since the last run
        status = 404 if i % 50 == 7 else 200
        s.api(
            t,
            sub="partner-portal",
            client="partner-portal",
            roles=("partner",),
            agent=PARTNER_AGENT,
            ip="198.51.100.10",
            route=ORDERS,
            op="listOrders",
            object_id=str(2 * i + 1),
            status=status,
            records=6,
        )
        t += 0.15
    assert of(run(s.events), "enumeration") == []


def test_a_normal_404_or_two() -> None:
    s = Script()
    s.api(0, object_id="1")
    s.api(5, route="/v1/orders/{orderId}", op="getOrder", object_id="6f1c2a4e-0000", status=404)
    s.api(3600, object_id="2", status=404)  # a relative's shared link
    assert of(run(s.events), "enumeration") == []


def test_the_route_baseline_raises_the_bar_after_its_warm_up() -> None:
    policy = DetectorsPolicy(enumeration=EnumerationPolicy(min_denied_objects=5, warmup=30, peer_factor=3.0))

    def route_where_refusals_are_normal(s: Script, windows: int) -> None:
        # an availability check: 40 principals, each refused 4 objects per ten-minute window
        for w in range(windows):
            for p in range(40):
                for k in range(4):
                    s.api(
                        w * 600 + p + k * 0.1,
                        sub=f"user{p:06d}",
                        object_id=str(10_000 + w * 1000 + p * 10 + k),
                        status=404,
                        route="/v1/slots/{slotId}",
                        op="getSlot",
                    )

    def probe(s: Script, start: float) -> None:
        for k in range(7):
            s.api(
                start + k,
                sub="user999999",
                object_id=str(50_000 + 97 * k),
                status=404,
                route="/v1/slots/{slotId}",
                op="getSlot",
            )

    before = Script()
    probe(before, 0)
    assert len(of(run(before.events, policy), "enumeration", "sub:user999999")) == 1  # floor only: 5

    after = Script()
    route_where_refusals_are_normal(after, 3)
    probe(after, 3 * 600 + 100)
    signals = run(after.events, policy)
    # 40 principals x 4 refusals: p99 ~ 4, so the bar is ~ 3 x 4 = 12 > 7
    assert of(signals, "enumeration", "sub:user999999") == []
