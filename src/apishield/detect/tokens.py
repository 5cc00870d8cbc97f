"""Token theft or sharing: one token or API key in use from several networks or user agents at once.

**What it watches.** Every request that carries a token (``actor.session.uid``,
the fingerprint of its ``jti``) or an API key (its id), keyed
``token:<fingerprint>`` or ``api_key:<id>``; and the issuer's reports of a
refresh token or authorization code presented twice.

**The signal.** A bearer token is a per-installation secret: the app that
obtained it uses it until it expires. The detector keeps, per token, the
networks (IPv4 /24, IPv6 /48 prefixes, so a partner's pool of egress
addresses in one subnet counts once) and user agents it was used from, each
with the time of its last use, and counts *interleaves*: a request from a
network (or agent) the token had already used, while the one it switched
away from is still in use (used within ``window``). It signals when

* a request comes from a new network *and* a new user agent while the
  previous ones are still in use: a copy of the token in another program
  on another machine, the shape of a stolen token replayed alongside its
  owner (severity 4);
* ``agent_interleaves`` switches back to an agent while another is in use;
* ``min_interleaves`` switches back to a network while another is in use;
* more than ``max_networks`` networks are in use at once.

Sequential moves are not sharing: a phone that leaves the Wi-Fi for the
carrier network (A, A, B, B) never returns to A while B is in use, and a
flap (A, B, A) is one interleave. A stolen token used alongside its owner
ping-pongs on every request.

**Refresh-token replay.** RFC 9700 §4.14.2 has the issuer rotate refresh
tokens and treat a second presentation as theft: it revokes the grant family
and reports ``refresh_token_reuse`` (or ``authorization_code_reuse``). That
is signalled at once, severity 5, on the subject.

**Why these defaults.** Five minutes is longer than the gap between two
requests of an active session, so concurrent use is seen as concurrent, and
shorter than a commute, so a user who moves from home to the office does
not look like two users. Four interleaves tolerate a phone flapping at the
edge of Wi-Fi coverage; four networks at once tolerate Wi-Fi and a carrier
whose NAT hands out a new address every session, for a user who opens the
app several times in five minutes. There is no warm-up: nothing here is
learnt, the invariant (one token, one client) holds from the first request.

**Cost.** The common request (same address, same agent as the token's last
one) costs three hashes and two integer compares: the state keeps the
hashes of the last address and agent, because comparing the event's fresh
strings with stored ones would touch memory that is no longer in the CPU's
cache. A collision of the per-process keyed 64-bit SipHash values is not
something a client can arrange.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from typing import Any

from apishield.config.detectors import TokenSharingPolicy
from apishield.detect.baseline import KeyedStates
from apishield.detect.detector import Detector, new_ids, sample
from apishield.detect.facts import Facts
from apishield.detect.principal import PrincipalState
from apishield.detect.signal import Signal

__all__ = ["TokenSharingDetector", "TokenState"]

_MAX_TRACKED = 16  # networks or agents remembered per token


class TokenState:
    """A token's current network and agent (last used at ``seen``) and when it last used the others."""

    __slots__ = (
        "agent",
        "agent_hash",
        "agent_interleaves",
        "agents",
        "ids",
        "interleaves",
        "ip_hash",
        "net",
        "nets",
        "principal",
        "requests",
        "seen",
    )

    def __init__(
        self, time: int, ip_hash: int, net: str, agent: str, agent_hash: int, principal: str
    ) -> None:
        self.seen = time
        self.ip_hash = ip_hash
        self.net = net
        self.agent = agent
        self.agent_hash = agent_hash
        # made at the first switch (most tokens never have one):
        self.nets: dict[str, int] | None = None  # other networks -> last use
        self.agents: dict[str, int] | None = None  # other agents -> last use
        self.ids: deque[str] | None = None  # the events that switched
        self.interleaves = 0
        self.agent_interleaves = 0
        self.requests = 0
        self.principal = principal


def _switch(
    others: dict[str, int], old: str, last: int, new: str, time: int, window: int
) -> tuple[bool, bool]:
    """Leave ``old`` (last used at ``last``) for ``new``: (was ``old`` still in use, is ``new`` a return)."""
    old_active = time - last <= window
    before = others.pop(new, None)
    returned = before is not None and time - before <= window and old_active
    if len(others) >= _MAX_TRACKED:
        del others[min(others, key=others.__getitem__)]
    others[old] = last
    return old_active, returned


def _network(ip: str, v4: int, v6: int) -> str:
    """``ip``'s network of ``v4`` (IPv4) or ``v6`` (IPv6) bits, e.g. ``192.0.2.0/24``; else ``ip``."""
    parts = ip.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
        value = (int(parts[0]) << 24) | (int(parts[1]) << 16) | (int(parts[2]) << 8) | int(parts[3])
        if value < 2**32 and all(int(p) < 256 for p in parts):
            value &= ~((1 << (32 - v4)) - 1) & 0xFFFFFFFF
            dotted = ".".join(str((value >> shift) & 255) for shift in (24, 16, 8, 0))
            return f"{dotted}/{v4}"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    bits = v4 if addr.version == 4 else v6
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def _in_use(others: dict[str, int], time: int, window: int) -> int:
    """How many values are in use: the current one and the others used within the window."""
    return 1 + sum(1 for t in others.values() if time - t <= window)


class TokenSharingDetector(Detector):
    name = "token_sharing"

    def __init__(self, policy: TokenSharingPolicy, max_keys: int, idle_ms: int) -> None:
        super().__init__(policy, max_keys, idle_ms)
        self.p = policy
        self.window = int(policy.window * 1000)
        self.states: KeyedStates[str, TokenState] = KeyedStates(max_keys, idle_ms)
        self.nets: dict[str, str] = {}

    def keys(self) -> int:
        return len(self.states)

    def network(self, ip: str) -> str:
        """The address's network (its /24 or /48 by default), cached."""
        net = self.nets.get(ip)
        if net is not None:
            return net
        if len(self.nets) >= 65_536:
            self.nets.clear()
        net = _network(ip, self.p.ipv4_prefix, self.p.ipv6_prefix)
        self.nets[ip] = net
        return net

    def observe(self, f: Facts, p: PrincipalState, out: list[Signal]) -> None:
        """A request with a token or an API key (of principal ``p``, which caches its last token's state)."""
        token = f.token
        key = token if token is not None else "api_key:" + (f.api_key or "")
        time = f.time
        ip = f.ip
        agent = f.agent or ""
        # hashes, not strings, are compared with the state: the strings of the event are fresh in
        # the CPU's cache, the stored ones are not (a collision of 64-bit SipHash values, keyed per
        # process, is not something a client can arrange)
        key_hash = hash(key)
        ip_hash = hash(ip)
        agent_hash = hash(agent)
        s = p.token_state
        if s is None or key_hash != p.token_hash:
            s = self.states.data.get(key)
            if s is None:
                s = self.states.admit(
                    key, TokenState(time, ip_hash, self.network(ip), agent, agent_hash, f.principal)
                )
            p.token = key
            p.token_hash = key_hash
            p.token_state = s
        s.requests += 1
        if ip_hash == s.ip_hash and agent_hash == s.agent_hash:
            s.seen = time
            return
        net = self.nets.get(ip) or self.network(ip)
        s.ip_hash = ip_hash
        if net == s.net and agent_hash == s.agent_hash:
            s.seen = time  # another address of the same network (a partner's pool of egress addresses)
            return
        self._moved(f, s, key, net, agent, out)
        s.agent_hash = agent_hash

    def _moved(self, f: Facts, s: TokenState, key: str, net: str, agent: str, out: list[Signal]) -> None:
        """The network or the agent differs from the token's previous request."""
        time = f.time
        last = s.seen
        s.seen = time
        nets, agents, ids = s.nets, s.agents, s.ids
        if nets is None or agents is None or ids is None:
            nets = s.nets = {}
            agents = s.agents = {}
            ids = s.ids = new_ids()
        ids.append(f.uid)
        window = self.window
        new_net = new_agent = False
        if net != s.net:
            old_active, returned = _switch(nets, s.net, last, net, time, window)
            new_net = old_active and not returned
            if returned:
                s.interleaves += 1
            s.net = net
        if agent != s.agent:
            old_active, returned = _switch(agents, s.agent, last, agent, time, window)
            new_agent = old_active and not returned
            if returned:
                s.agent_interleaves += 1
            s.agent = agent
        pol = self.p
        networks = _in_use(nets, time, window)
        in_use = _in_use(agents, time, window)
        reasons = []
        if new_net and new_agent:
            reasons.append("a new network and a new user agent while the first are in use")
        if in_use > 1 and s.agent_interleaves >= pol.agent_interleaves:
            reasons.append(f"{in_use} user agents in use at once")
        if s.interleaves >= pol.min_interleaves:
            reasons.append(f"{s.interleaves} switches back between networks")
        if networks > pol.max_networks:
            reasons.append(f"{networks} networks in use at once")
        if not reasons:
            return
        signal_key = "token:" + key if f.token is not None else key
        repeat = self.may_signal(signal_key, time, pol.severity)
        if not repeat:
            return
        recent_nets = sorted((k for k, t in nets.items() if time - t <= window), key=nets.__getitem__)
        recent_agents = sorted((k for k, t in agents.items() if time - t <= window), key=agents.__getitem__)
        evidence: dict[str, Any] = {
            "principal": s.principal,
            "networks": sample([*recent_nets, s.net]),
            "user_agents": sample([*recent_agents, s.agent], 4),
            "interleaves": s.interleaves,
            "agent_interleaves": s.agent_interleaves,
            "requests": s.requests,
            "window_s": window // 1000,
            "ip": f.ip,
        }
        what = "token" if f.token is not None else "API key"
        summary = f"{what} of {s.principal} used concurrently: " + "; ".join(reasons)
        self.emit(out, signal_key, time, pol.severity, summary, evidence, ids, repeat, scope=f.operation)

    def replay(self, f: Facts, out: list[Signal]) -> None:
        """The issuer saw a refresh token or authorization code presented twice."""
        if not self.p.refresh_reuse:
            return
        repeat = self.may_signal(f.principal, f.time, 5)
        if not repeat:
            return
        evidence: dict[str, Any] = {
            "detail": f.detail,
            "client": f.client,
            "ip": f.ip,
            "grant_type": f.grant,
        }
        what = "authorization code" if f.detail == "authorization_code_reuse" else "refresh token"
        summary = (
            f"a {what} of {f.principal} (client {f.client}) was presented again from {f.ip}: "
            "the issuer revoked the grant; one of the two holders had stolen it"
        )
        self.emit(out, f.principal, f.time, 5, summary, evidence, (f.uid,), repeat, scope="token")

    def sweep(self, now: int) -> None:
        super().sweep(now)
        # a token is judged within `window`; its counts are kept a while longer, not for hours
        self.states.sweep(now - min(self.idle_ms, max(2 * self.window, 7_200_000)))
