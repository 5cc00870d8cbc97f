"""The reference world the simulator's traffic runs in: the demo's customer API at scale.

The example service (``examples/customer_api``) holds customers, their
accounts and orders; ``apishield demo`` puts the gateway in front of it with
the example policy and an issuer whose clients are ``mobile-app`` (public:
customers and support staff sign in through it), ``partner-portal``
(partner ``p-acme``) and ``globex-portal`` (partner ``p-globex``), both
confidential with ``client_credentials``. The world scales that up: many
customers, each owned by one of the partners, with orders and accounts;
mobile users (one per customer with the app), support agents and the two
partners' batch jobs.

Addresses come from disjoint blocks so that a label never leaks into
another population: residential Wi-Fi (``10.x``, one address per home),
three mobile carriers behind carrier-grade NAT (``100.64.0.0/10``, shared by
many users, a new address per session), the support office and the
partners' egress pools (``192.0.2.0/24``, ``198.51.100.0/24``), and attacker
space (``203.0.113.0/24`` for hosting, ``172.16.0.0/12`` for residential
proxies and botnets).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Agent", "Partner", "User", "World", "build_world"]

PARTNERS = (("partner-portal", "p-acme"), ("globex-portal", "p-globex"))
_IOS = ("17.4", "17.5", "17.6", "18.0", "18.1")
_ANDROID = ("13", "14", "15")
_APP = ("4.2.0", "4.3.1", "4.4.0")
OLD_APP = "3.9.2"


@dataclass
class User:
    """A customer with the mobile app: sign-ins, sessions, devices and networks."""

    index: int
    customer: int
    username: str
    agent: str
    home_ip: str
    carrier: int
    sessions_per_day: float
    flaky_network: bool  # changes networks within sessions
    old_app: bool  # still calls an endpoint the API removed
    typo_rate: float
    tablet_agent: str | None = None
    token: str | None = None
    token_until: int = 0  # ms; the access token's expiry
    tablet_token: str | None = None
    tablet_until: int = 0
    cell_ip: str | None = None  # the carrier NAT's address for this subscriber, while it lasts
    cell_until: int = 0


@dataclass
class Agent:
    """A support agent: reads many customers during working hours, from the office."""

    username: str
    agent: str
    ip: str
    token: str | None = None
    token_until: int = 0


@dataclass
class Partner:
    """A partner's batch job: client_credentials, steady reads at a fixed interval."""

    client: str
    partner: str
    agent: str
    ips: tuple[str, ...]
    interval_s: int  # one run every this long
    sample: int  # customers whose orders a run reads
    rate: float  # requests per second during a run
    token: str | None = None
    token_until: int = 0


@dataclass
class World:
    rng: random.Random
    customers: int
    owner: list[str]  # partner id by customer id (index 0 unused)
    orders: list[list[str]]  # order ids by customer id
    accounts: list[int]  # accounts by customer id
    users: list[User]
    agents: list[Agent]
    partners: list[Partner]
    carriers: int = 3
    deleted: set[int] = field(default_factory=set)  # customers that no longer exist

    def carrier_ip(self, carrier: int, rng: random.Random) -> str:
        """An address of a carrier's NAT pool (a /20: many users share each address)."""
        n = rng.randrange(4096)
        return f"100.{64 + carrier * 8}.{n >> 8}.{n & 255 or 1}"

    def cell_ip(self, user: User, t: int, rng: random.Random, renew: bool = False) -> str:
        """The user's address behind the carrier's NAT at ``t``: kept for a while, as carrier-grade NATs
        pair every flow of a subscriber with one external address (RFC 6888 REQ-2), then another."""
        if renew or user.cell_ip is None or t >= user.cell_until:
            user.cell_ip = self.carrier_ip(user.carrier, rng)
            user.cell_until = t + rng.randrange(20, 180) * 60_000
        return user.cell_ip

    def partner_of(self, customer: int) -> str:
        return self.owner[customer] if 0 < customer <= self.customers else ""

    def exists(self, customer: int) -> bool:
        return 0 < customer <= self.customers and customer not in self.deleted

    def partner_customers(self, partner: str) -> list[int]:
        return [c for c in range(1, self.customers + 1) if self.owner[c] == partner and self.exists(c)]


def _uid(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def order_id(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _mobile_agent(rng: random.Random, version: str | None = None) -> str:
    app = version or rng.choice(_APP)
    if rng.random() < 0.55:
        model = rng.choice(("iPhone14,2", "iPhone15,3", "iPhone16,1", "iPhone13,4"))
        return f"CustomerApp/{app} (iOS {rng.choice(_IOS)}; {model})"
    model = rng.choice(("Pixel 8", "SM-S918B", "SM-A546B", "moto g84"))
    return f"CustomerApp/{app} (Android {rng.choice(_ANDROID)}; {model})"


def build_world(rng: random.Random, users: int, agents: int = 4) -> World:
    customers = int(users * 1.2) + 10
    owner = [""] + [PARTNERS[0][1] if rng.random() < 0.5 else PARTNERS[1][1] for _ in range(customers)]
    orders: list[list[str]] = [[]]
    accounts = [0]
    for _ in range(customers):
        n = min(int(rng.expovariate(1 / 6.0)), 80)
        orders.append([order_id(rng) for _ in range(n)])
        accounts.append(1 + int(rng.random() < 0.4) + int(rng.random() < 0.1))
    deleted = {c for c in range(1, customers + 1) if rng.random() < 0.004}
    with_app = rng.sample([c for c in range(1, customers + 1) if c not in deleted], users)
    people: list[User] = []
    for i, customer in enumerate(with_app):
        old = rng.random() < 0.04
        agent = _mobile_agent(rng, OLD_APP if old else None)
        home = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        people.append(
            User(
                index=i,
                customer=customer,
                username=f"user{customer:06d}",
                agent=agent,
                home_ip=home,
                carrier=rng.randrange(3),
                sessions_per_day=min(rng.lognormvariate(0.6, 0.8), 25.0),
                flaky_network=rng.random() < 0.2,
                old_app=old,
                typo_rate=0.05 + 0.2 * rng.random(),
                tablet_agent=_mobile_agent(rng) if rng.random() < 0.1 else None,
            )
        )
    staff = [
        Agent(
            username=f"support{n:02d}",
            agent=(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                f"Chrome/12{n % 4}.0.0.0 Safari/537.36"
            ),
            ip=f"192.0.2.{20 + n}",
        )
        for n in range(agents)
    ]
    partners = [
        Partner(
            client="partner-portal",
            partner="p-acme",
            agent="acme-sync/2.3 python-httpx/0.27.0",
            ips=("198.51.100.10", "198.51.100.11"),
            interval_s=900,
            sample=80,
            rate=6.0,
        ),
        Partner(
            client="globex-portal",
            partner="p-globex",
            agent="GlobexConnector/1.8 (Java/21)",
            ips=("198.51.100.70", "198.51.100.71", "198.51.100.72"),
            interval_s=600,
            sample=100,
            rate=8.0,
        ),
    ]
    return World(
        rng=rng,
        customers=customers,
        owner=owner,
        orders=orders,
        accounts=accounts,
        users=people,
        agents=staff,
        partners=partners,
        deleted=deleted,
    )


def new_token(rng: random.Random) -> str:
    """A token's fingerprint as audit events carry it (32 hex digits)."""
    return _uid(rng)
