"""The client IP: forwarding headers believed only through trusted proxies, read right to left."""

from __future__ import annotations

import pytest

from apishield.core.client_ip import TrustedProxies, client_net, resolve_client
from apishield.core.exchange import RequestHead


def head(peer: str, *headers: tuple[str, str]) -> RequestHead:
    return RequestHead("GET", b"/", b"", [(k.encode(), v.encode()) for k, v in headers], client=(peer, 5000))


PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8:ff::/48"])


def test_untrusted_peer_cannot_choose_its_address() -> None:
    for h in [("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4"), ("x-real-ip", "1.2.3.4")]:
        found = resolve_client(head("203.0.113.9", h), PROXIES)
        assert found.ip == "203.0.113.9" and found.chain == ("203.0.113.9",) and not found.via_proxy


def test_no_trusted_proxies_means_the_socket_peer() -> None:
    assert resolve_client(head("10.1.1.1", ("x-forwarded-for", "1.2.3.4")), TrustedProxies()).ip == "10.1.1.1"


def test_right_to_left_first_untrusted_is_the_client() -> None:
    h = ("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")  # 6.6.6.6 was written by the caller
    found = resolve_client(head("10.0.0.1", h), PROXIES)
    assert found.ip == "198.51.100.7"
    assert found.chain == ("198.51.100.7", "10.0.0.2", "10.0.0.1")


def test_repeated_header_lines_are_one_list() -> None:
    found = resolve_client(
        head("10.0.0.1", ("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.7")), PROXIES
    )
    assert found.ip == "198.51.100.7"


def test_garbage_entry_stops_at_the_last_trusted_hop() -> None:
    found = resolve_client(head("10.0.0.1", ("x-forwarded-for", "1.1.1.1, unknown, 10.0.0.5")), PROXIES)
    assert found.ip == "10.0.0.5"


def test_all_trusted_means_the_leftmost() -> None:
    assert (
        resolve_client(head("10.0.0.1", ("x-forwarded-for", "10.9.9.9, 10.0.0.2")), PROXIES).ip == "10.9.9.9"
    )
    assert resolve_client(head("10.0.0.1"), PROXIES).ip == "10.0.0.1"


def test_ports_brackets_and_mapped_addresses() -> None:
    found = resolve_client(
        head("10.0.0.1", ("x-forwarded-for", "[2001:db8::1]:443, 192.0.2.4:8080")), PROXIES
    )
    assert found.ip == "192.0.2.4"
    assert resolve_client(head("::ffff:192.0.2.8"), PROXIES).ip == "192.0.2.8"


def test_only_the_configured_header_is_read() -> None:
    """A proxy that maintains X-Forwarded-For passes a caller's Forwarded through: it is not read."""
    h = [("forwarded", "for=6.6.6.6"), ("x-forwarded-for", "198.51.100.7")]
    assert resolve_client(head("10.0.0.1", *h), PROXIES).ip == "198.51.100.7"
    forwarded = TrustedProxies(["10.0.0.0/8"], header="forwarded")
    assert resolve_client(head("10.0.0.1", *h), forwarded).ip == "6.6.6.6"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ("for=198.51.100.1, for=10.0.0.3", "198.51.100.1"),
        ('for=_hidden, for="10.0.0.3"', "10.0.0.3"),
        ('For="198.51.100.2";host="a,b", for=10.0.0.3', "198.51.100.2"),
        ("proto=https", "10.0.0.1"),
    ],
)
def test_forwarded_rfc7239(value: str, expected: str) -> None:
    trusted = TrustedProxies(["10.0.0.0/8"], header="forwarded")
    assert resolve_client(head("10.0.0.1", ("forwarded", value)), trusted).ip == expected


def test_client_net_groups_ipv6_by_64() -> None:
    assert client_net("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_net("192.0.2.1") == "192.0.2.1"
