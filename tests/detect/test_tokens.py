"""Token theft or sharing: concurrent use from another network and agent; moving networks is not sharing."""

from __future__ import annotations

from tests.detect.support import APP, PARTNER_AGENT, SCRIPT, Script, of, run

TOKEN = "c" * 32


def test_a_stolen_token_used_alongside_its_owner() -> None:
    s = Script()
    for i in range(30):
        s.api(i * 10, token=TOKEN, ip="10.20.30.40", agent=APP)
    for i in range(20):
        s.api(95 + i * 3, token=TOKEN, ip="203.0.113.50", agent=SCRIPT)
    signals = of(run(s.events), "token_sharing")
    assert len(signals) == 1
    signal = signals[0]
    assert (
        signal.key == "token:" + TOKEN and signal.time_ms == s.events[30]["time"]
    )  # the thief's first request
    assert signal.evidence["principal"] == "sub:user000001"
    assert set(signal.evidence["user_agents"]) == {APP, SCRIPT}
    assert "a new network and a new user agent" in signal.summary


def test_a_phone_moving_between_networks_is_not_sharing() -> None:
    s = Script()
    ips = ["10.1.1.5"] * 5 + ["100.64.17.3"] * 5 + ["100.64.201.9"] * 5 + ["10.1.1.5"] * 3
    for i, ip in enumerate(ips):  # home Wi-Fi, the carrier, a new carrier address, home again
        s.api(i * 20, token=TOKEN, ip=ip)
    assert of(run(s.events), "token_sharing") == []


def test_a_phone_flapping_at_the_edge_of_wifi() -> None:
    s = Script()
    for i, ip in enumerate(["10.1.1.5", "100.64.17.3", "10.1.1.5", "100.64.17.3", "10.1.1.5"]):
        s.api(i * 15, token=TOKEN, ip=ip)
    assert of(run(s.events), "token_sharing") == []  # three returns, four needed


def test_one_token_ping_ponging_between_networks() -> None:
    s = Script()
    for i in range(12):
        s.api(i * 5, token=TOKEN, ip="10.1.1.5" if i % 2 == 0 else "198.18.0.77")
    signals = of(run(s.events), "token_sharing")
    assert len(signals) == 1 and signals[0].evidence["interleaves"] == 4


def test_a_partner_job_on_a_pool_of_egress_addresses() -> None:
    s = Script()
    for i in range(600):
        s.api(
            i * 0.2,
            sub="partner-portal",
            client="partner-portal",
            roles=("partner",),
            token=TOKEN,
            ip=f"198.51.100.{10 + i % 3}",
            agent=PARTNER_AGENT,
            op="listOrders",
            object_id=str(i),
        )
    assert of(run(s.events), "token_sharing") == []


def test_a_replayed_refresh_token() -> None:
    s = Script()
    s.sign_in(
        0,
        "",
        "203.0.113.60",
        endpoint="token",
        grant="refresh_token",
        user_uid="user000042",
        detail="refresh_token_reuse",
        severity=5,
    )
    signals = of(run(s.events), "token_sharing")
    assert len(signals) == 1
    assert (signals[0].key, signals[0].severity, signals[0].scope) == ("sub:user000042", 5, "token")
    assert signals[0].event_ids == (s.events[0]["metadata"]["uid"],)
