"""Credential stuffing and brute force: per address, per account and low-and-slow; typos are not attacks."""

from __future__ import annotations

from apishield.config.detectors import CredentialStuffingPolicy, DetectorsPolicy
from tests.detect.support import Script, of, run

SERVICE = "service:customer-api"


def test_many_accounts_from_one_address() -> None:
    s = Script()
    for i in range(30):
        s.sign_in(i * 0.7, f"acct{i:04x}", "203.0.113.20")
    signals = of(run(s.events), "credential_stuffing", "ip:203.0.113.20")
    assert len(signals) == 1
    assert signals[0].evidence["accounts"] == 6 and signals[0].time_ms == s.events[5]["time"]
    assert signals[0].severity == 4


def test_failures_from_one_address_include_the_gateways_401s() -> None:
    s = Script()
    for i in range(25):
        s.api(
            i * 2,
            sub=None,
            client=None,
            token=None,
            ip="203.0.113.21",
            status=401,
            detail="invalid-token",
            stage="authentication",
        )
    signals = of(run(s.events), "credential_stuffing", "ip:203.0.113.21")
    assert len(signals) == 1 and signals[0].evidence["failures"] == 20


def test_a_takeover_after_failures_raises_the_severity() -> None:
    s = Script()
    for i in range(10):
        s.sign_in(i, f"user{i:06d}", "203.0.113.22")
    s.sign_in(10.5, "user000003", "203.0.113.22", ok=True)
    s.sign_in(11, "user000777", "203.0.113.22")
    signals = of(run(s.events), "credential_stuffing", "ip:203.0.113.22")
    assert [x.severity for x in signals] == [4, 5]  # the rise lets the second through at once
    assert signals[1].evidence["signed_in_after_failures"] == ["user000003"]


def test_brute_force_of_one_account_from_rotating_proxies() -> None:
    s = Script()
    for i in range(12):
        s.sign_in(i * 3, "user000042", f"172.16.{i}.9")
    signals = of(run(s.events), "credential_stuffing")
    assert [x.key for x in signals] == ["account:user000042"]
    assert signals[0].evidence["failures"] == 8 and signals[0].evidence["addresses"] == 8


def test_a_user_with_a_few_typos() -> None:
    s = Script()
    s.sign_in(0, "user000042", "10.9.8.7")
    s.sign_in(9, "user000042", "10.9.8.7")
    s.sign_in(20, "user000042", "10.9.8.7", ok=True)
    assert of(run(s.events), "credential_stuffing") == []


def test_a_forgotten_password_tried_into_the_throttle() -> None:
    s = Script()
    for i in range(5):
        s.sign_in(i * 8, "user000042", "10.9.8.7")
    for i in range(4):
        s.sign_in(60 + i * 10, "user000042", "10.9.8.7", detail="throttled")
    assert of(run(s.events), "credential_stuffing") == []


def test_typos_of_several_users_behind_one_carrier_address() -> None:
    s = Script()
    for i in range(5):  # five different people, one carrier-grade NAT address, within ten minutes
        s.sign_in(i * 100, f"user{i:06d}", "100.64.3.4")
        s.sign_in(i * 100 + 8, f"user{i:06d}", "100.64.3.4", ok=True)
        s.api(
            i * 100 + 30,
            sub=None,
            client=None,
            token=None,
            ip="100.64.3.4",
            status=401,
            detail="invalid-token",
            stage="authentication",
        )
    assert of(run(s.events), "credential_stuffing") == []


def _background(s: Script, hours: float) -> None:
    """A failed sign-in every few minutes, all day: the population's baseline."""
    t, n = 0.0, 0
    while t < hours * 3600:
        s.sign_in(t, f"user{n % 997:06d}", f"10.{n % 200}.{n % 7}.{n % 250 + 1}")
        t += 170 + (n * 37) % 90
        n += 1


def _low_and_slow(s: Script, start: float, attempts: int = 40) -> None:
    for i in range(attempts):
        s.sign_in(start + i * 2, f"combo{i:05d}", f"172.{16 + i % 16}.{i}.{i % 200 + 1}")


def test_low_and_slow_stuffing_is_seen_at_the_population_level() -> None:
    s = Script()
    _background(s, 3)
    _low_and_slow(s, 3 * 3600)
    signals = of(run(s.events), "credential_stuffing")
    assert {x.key for x in signals} == {SERVICE}  # no address and no account stands out
    signal = signals[0]
    assert signal.response is None  # nobody to block, whatever the policy says
    assert signal.evidence["failing_accounts"] >= 15
    assert signal.time_ms <= s.events[-40 + 15]["time"]  # within 16 attempts
    # once it is spread over as many addresses as the bar, one level more, signalled at once
    assert signals[-1].severity == 5 and signals[-1].evidence["addresses"] >= 15


def test_the_population_rule_waits_for_its_warm_up() -> None:
    s = Script()
    s.sign_in(0, "user000001", "10.0.0.1")
    _low_and_slow(s, 400)  # one five-minute bucket later: far too early for the default warm-up
    assert of(run(s.events), "credential_stuffing", SERVICE) == []
    policy = DetectorsPolicy(credential_stuffing=CredentialStuffingPolicy(warmup=1, response="block"))
    signals = of(run(s.events, policy), "credential_stuffing", SERVICE)
    assert len(signals) == 1 and signals[0].response is None


def test_a_block_response_comes_from_the_policy() -> None:
    s = Script()
    for i in range(8):
        s.sign_in(i, f"acct{i}", "203.0.113.23")
    policy = DetectorsPolicy(
        credential_stuffing=CredentialStuffingPolicy(response="block", block_duration=3600)
    )
    (signal,) = of(run(s.events, policy), "credential_stuffing")
    assert signal.response == "block" and signal.key == "ip:203.0.113.23"
    assert policy.settings(signal.detector).block_duration == 3600
