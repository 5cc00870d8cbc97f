"""The client's IP address, believed from forwarding headers only as far as trusted proxies vouch.

Theory of operation
-------------------
A forwarding header is a list that every proxy on the way *appends* to:
``X-Forwarded-For: client, proxy1, proxy2`` (de facto) or, per RFC 7239 §4,
``Forwarded: for=client, for=proxy1, for=proxy2``. Anyone can send such a
header, so only the right-hand end of the list, the part written by proxies
we operate, can be believed. The list is therefore read right to left,
starting from the socket peer:

1. the peer is not a trusted proxy: the peer is the client, and the headers
   are ignored whatever they say (a rate limit keyed on the client IP cannot
   be dodged by sending ``X-Forwarded-For: 1.2.3.4``);
2. the peer is trusted: the right-most entry is the address that proxy saw.
   If that address is trusted too, step left and repeat; the first address
   that is not trusted is the client;
3. an entry that is not an IP address (``unknown``, an obfuscated
   identifier, garbage) ends the walk: the last trusted address reached is
   taken as the client. Traffic through a proxy that forwards nonsense is
   then limited as that proxy's, which cannot be dodged either;
4. every entry trusted: the left-most one is the client.

Only the configured header (``trusted_proxies.header``, ``X-Forwarded-For``
by default) is read: a proxy that maintains one of the two passes the other
through unchanged, attacker-written, so reading "whichever is present"
would let a caller choose their address.

The verified part of the chain (the client, then each trusted hop, then the
peer) is what :mod:`apishield.core.stages.forward` sends upstream; the
unverifiable entries left of the client are dropped. The result is computed
once per exchange and kept in ``Exchange.resolved``.

IPv4-mapped IPv6 addresses (``::ffff:192.0.2.1``) are reported as IPv4;
IPv6 addresses in their compressed form. ``client_net`` is the address's
network for limits: the address itself for IPv4, its /64 for IPv6 (one
subscriber usually holds a whole /64).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, NamedTuple

from apishield.core.exchange import Exchange, RequestHead

__all__ = ["ClientAddress", "TrustedProxies", "client_address", "client_net", "resolve_client"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ClientAddress(NamedTuple):
    ip: str  # the client, as trusted proxies report it (or the peer); "unknown" without a peer
    chain: tuple[str, ...]  # verified hops, left to right: client, trusted proxies..., socket peer
    via_proxy: bool  # the peer is a trusted proxy


class TrustedProxies:
    """A set of networks whose forwarding header (one of two) is believed."""

    def __init__(self, networks: Iterable[str] = (), header: str = "x-forwarded-for") -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self.header = header.lower().encode("latin-1")
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: IPAddress) -> bool:
        text = str(address)
        known = self._cache.get(text)
        if known is None:
            known = any(address.version == n.version and address in n for n in self.networks)
            if len(self._cache) < 4096:
                self._cache[text] = known
        return known


def _parse_ip(text: str) -> IPAddress | None:
    """An address from a header entry: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``"[::1]"``, ``::1``."""
    value = text.strip().strip('"').strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        value = value[1:end]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for(values: list[bytes]) -> list[str]:
    """The ``for=`` value of every element of ``Forwarded`` (RFC 7239 §4), in order."""
    out: list[str] = []
    for line in values:
        text = line.decode("latin-1")
        for element in _split_quoted(text, ","):
            found = ""
            for pair in _split_quoted(element, ";"):
                name, _, value = pair.partition("=")
                if name.strip().lower() == "for":
                    found = value.strip()
            out.append(found)  # an element without for= is an unknown hop
    return out


def _split_quoted(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p for p in (s.strip() for s in parts) if p]


def resolve_client(head: RequestHead, trusted: TrustedProxies) -> ClientAddress:
    """Who the client is, for this request head (see the module's theory of operation)."""
    if head.client is None:
        return ClientAddress("unknown", (), False)
    raw = head.client[0]
    if not trusted:  # the common case, without parsing: the server gives a textual address
        text = raw[7:] if raw.startswith("::ffff:") and "." in raw else raw
        return ClientAddress(text, (text,), False)
    peer = _parse_ip(raw)
    if peer is None:
        return ClientAddress(raw, (raw,), False)
    peer_text = str(peer)
    if not trusted.trusts(peer):
        return ClientAddress(peer_text, (peer_text,), False)
    values = head.header_values(trusted.header)
    if trusted.header == b"forwarded":
        hops = _forwarded_for(values)
    else:
        hops = [h for line in values for h in (p.strip() for p in line.decode("latin-1").split(",")) if h]
    verified = [peer_text]  # right to left
    for entry in reversed(hops):
        address = _parse_ip(entry)
        if address is None:
            break
        verified.append(str(address))
        if not trusted.trusts(address):
            break
    return ClientAddress(verified[-1], tuple(reversed(verified)), True)


class _Key:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<client address>"


_KEY: Any = _Key()


def client_address(ex: Exchange, trusted: TrustedProxies) -> ClientAddress:
    """The client address of an exchange, resolved once and kept on it."""
    found: ClientAddress | None = ex.resolved.get(_KEY)
    if found is None:
        found = ex.resolved[_KEY] = resolve_client(ex.request, trusted)
    return found


def known_client_ip(ex: Exchange) -> str | None:
    """The client address resolved earlier in the pipeline (behind trusted proxies), else the peer's."""
    found: ClientAddress | None = ex.resolved.get(_KEY)
    if found is not None:
        return found.ip
    return ex.request.client[0] if ex.request.client else None


def client_net(ip: str) -> str:
    """The network a limit keyed on ``client_net`` counts: the IPv4 address, or the IPv6 /64."""
    if ":" not in ip:
        return ip
    try:
        return str(ipaddress.ip_network(ip + "/64", strict=False))
    except ValueError:
        return ip
