"""Labelled attack scenarios, mixed into the legitimate traffic.

Each scenario makes its requests (labelled with its name, so the evaluation
knows which events are the attack) and says which keys a signal may name to
count as detecting it: the attacker's subject, token, address, the accounts
it attacks. Attackers work at machine speed but no faster than real tools
do, and look as legitimate as they can (a valid account, the app's user
agent where copying it is free):

* ``bola_sequential``: a customer walks ``/v1/customers/{id}`` from their
  own id upwards, 3 requests/s;
* ``bola_random``: a customer tries random ids on ``/v1/customers/{id}/orders``;
* ``stuffing_single_ip``: a combo list against the sign-in form from one
  hosting address, 1.5 attempts/s, through the issuer's throttle;
* ``stuffing_low_slow``: a combo list from 400 residential proxies, one or
  two attempts each, one attempt every two seconds in total;
* ``brute_force_account``: one account's password guessed from 40 rotating
  proxies, one attempt every two seconds;
* ``token_theft``: a user's access token replayed from another machine
  while the user is still using it;
* ``refresh_replay``: a stolen refresh token presented after the app
  rotated it (the issuer reports the reuse);
* ``scraping_partner``: a partner's client credentials used to harvest its
  customers and their orders, far above its batch jobs' volume;
* ``scraping_support``: a phished support account harvesting customers;
* ``shadow_probe``: an anonymous scanner trying a wordlist of undocumented paths;
* ``rate_limit_hammer``: a partner job stuck in a retry loop without backoff;
* ``volume_burst``: a customer's home-made script polling their orders every second.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from apishield.detect.simulate.api import Api, Who
from apishield.detect.simulate.events import SERVICE, SignIn
from apishield.detect.simulate.traffic import (
    HOUR_MS,
    MOBILE_CLIENT,
    MOBILE_SCOPES,
    PARTNER_SCOPES,
    SUPPORT_SCOPES,
    Item,
    sign_in,
)
from apishield.detect.simulate.world import World, new_token

__all__ = ["SCENARIOS", "Scenario", "make_scenarios"]

SCRIPT_AGENT = "python-requests/2.31.0"


@dataclass
class Scenario:
    name: str
    detector: str  # the detector meant to catch it
    label: str  # the label of its requests (name and day)
    start: int
    keys: set[str] = field(default_factory=set)
    end: int = 0
    times: list[int] = field(default_factory=list)  # its requests' event times, in order

    @property
    def requests(self) -> int:
        return len(self.times)


Maker = Callable[["_Ctx", int, Scenario], list[Item]]


@dataclass
class _Ctx:
    world: World
    api: Api
    rng: random.Random
    day: int
    hosting: list[int]

    def hosting_ip(self) -> str:
        n = self.hosting.pop()
        return f"203.0.113.{n}"

    def proxy_ip(self) -> str:
        r = self.rng
        return f"172.{16 + r.randrange(16)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def spare_customer(self) -> int:
        """A customer without the app in the simulation: an attacker's own valid account."""
        users = {u.customer for u in self.world.users}
        free = [c for c in range(1, self.world.customers + 1) if c not in users and self.world.exists(c)]
        return self.rng.choice(free)

    def combo(self, n: int, real_share: float = 0.4) -> list[str]:
        rng = self.rng
        names = [u.username for u in self.world.users]
        out = []
        for _ in range(n):
            if rng.random() < real_share:
                out.append(rng.choice(names))
            else:
                out.append(f"{rng.choice(('mail', 'acct', 'xx', 'pro', 'the'))}{rng.getrandbits(24):06x}")
        return out


def _customer_who(ctx: _Ctx, customer: int, ip: str, agent: str, label: str) -> Who:
    return Who(
        sub=f"user{customer:06d}",
        client=MOBILE_CLIENT,
        roles=("customer",),
        scopes=MOBILE_SCOPES,
        token=new_token(ctx.rng),
        ip=ip,
        agent=agent,
        customer=customer,
        label=label,
    )


def _gap(rng: random.Random, per_second: float) -> int:
    return max(int(rng.expovariate(per_second) * 1000), 5)


def bola_sequential(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    rng, api = ctx.rng, ctx.api
    me = ctx.spare_customer()
    ip = ctx.hosting_ip()
    who = _customer_who(ctx, me, ip, ctx.world.users[0].agent, sc.label)
    out: list[Item] = [
        SignIn(
            t - 2000,
            endpoint="token",
            client=MOBILE_CLIENT,
            ip=ip,
            success=True,
            grant="authorization_code",
            user_uid=who.sub,
            label=sc.label,
        )
    ]
    sc.keys |= {f"sub:{who.sub}", f"token:{who.token}", f"ip:{ip}"}
    out.append(api.get_customer(t, who, me))
    for target in range(max(me - 5, 1), max(me - 5, 1) + 150):
        t += _gap(rng, 3.0)
        out.append(api.get_customer(t, who, target))
    return out


def bola_random(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    rng, api, world = ctx.rng, ctx.api, ctx.world
    me = ctx.spare_customer()
    ip = ctx.hosting_ip()
    who = _customer_who(ctx, me, ip, SCRIPT_AGENT, sc.label)
    sc.keys |= {f"sub:{who.sub}", f"token:{who.token}", f"ip:{ip}"}
    out: list[Item] = [api.list_orders(t, who, me)]
    for _ in range(120):
        t += _gap(rng, 1.5)
        out.append(api.list_orders(t, who, rng.randrange(1, world.customers + 200)))
    return out


def stuffing_single_ip(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    rng = ctx.rng
    ip = ctx.hosting_ip()
    sc.keys |= {f"ip:{ip}", f"service:{SERVICE}"}
    out: list[Item] = []
    names = ctx.combo(300)
    hits = set(rng.sample(range(300), 2))
    for i, name in enumerate(names):
        t += _gap(rng, 1.5)
        ok = i in hits and name.startswith("user")
        sc.keys.add(f"account:{name}")
        out.append(
            SignIn(
                t,
                endpoint="authorize",
                client=MOBILE_CLIENT,
                ip=ip,
                success=ok,
                user_name=name,
                detail=None if ok else "login_failed",
                label=sc.label,
            )
        )
    return out


def stuffing_low_slow(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    rng = ctx.rng
    sc.keys.add(f"service:{SERVICE}")
    out: list[Item] = []
    names = ctx.combo(450)
    ips = [ctx.proxy_ip() for _ in range(400)]
    for name in names:
        t += _gap(rng, 0.5)
        ip = rng.choice(ips)
        sc.keys |= {f"ip:{ip}", f"account:{name}"}
        out.append(
            SignIn(
                t,
                endpoint="authorize",
                client=MOBILE_CLIENT,
                ip=ip,
                success=False,
                user_name=name,
                detail="login_failed",
                label=sc.label,
            )
        )
    return out


def brute_force_account(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    rng = ctx.rng
    victim = rng.choice(ctx.world.users).username
    sc.keys |= {f"account:{victim}", f"service:{SERVICE}"}
    ips = [ctx.proxy_ip() for _ in range(40)]
    out: list[Item] = []
    for _ in range(120):
        t += _gap(rng, 0.5)
        ip = rng.choice(ips)
        sc.keys.add(f"ip:{ip}")
        out.append(
            SignIn(
                t,
                endpoint="authorize",
                client=MOBILE_CLIENT,
                ip=ip,
                success=False,
                user_name=victim,
                detail="login_failed",
                label=sc.label,
            )
        )
    return out


def token_theft(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    rng, api, world = ctx.rng, ctx.api, ctx.world
    user = rng.choice(world.users)
    me = user.customer
    token = new_token(rng)
    victim = Who(
        sub=user.username,
        client=MOBILE_CLIENT,
        roles=("customer",),
        scopes=MOBILE_SCOPES,
        token=token,
        ip=user.home_ip,
        agent=user.agent,
        customer=me,
    )
    sc.keys |= {f"token:{token}", f"sub:{user.username}"}
    out: list[Item] = [
        SignIn(
            t - 60_000,
            endpoint="token",
            client=MOBILE_CLIENT,
            ip=user.home_ip,
            success=True,
            grant="refresh_token",
            user_uid=user.username,
        )
    ]
    # the owner keeps using the app for twelve minutes
    v = t - 55_000
    while v < t + 12 * 60_000:
        out.append(api.list_orders(v, victim, me) if rng.random() < 0.4 else api.get_customer(v, victim, me))
        v += int(rng.uniform(8.0, 25.0) * 1000)
    thief = Who(
        sub=user.username,
        client=MOBILE_CLIENT,
        roles=("customer",),
        scopes=MOBILE_SCOPES,
        token=token,
        ip=ctx.hosting_ip(),
        agent=SCRIPT_AGENT,
        customer=me,
        label=sc.label,
    )
    orders = world.orders[me]
    for _ in range(100):
        r = rng.random()
        if r < 0.3:
            out.append(api.get_customer(t, thief, me))
        elif r < 0.6 or not orders:
            out.append(api.list_orders(t, thief, me))
        else:
            out.append(api.get_order(t, thief, me, rng.choice(orders)))
        t += int(rng.uniform(2.0, 5.0) * 1000)
    return out


def refresh_replay(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    user = ctx.rng.choice(ctx.world.users)
    sc.keys.add(f"sub:{user.username}")
    return [
        SignIn(
            t,
            endpoint="token",
            client=MOBILE_CLIENT,
            ip=ctx.hosting_ip(),
            success=False,
            grant="refresh_token",
            user_uid=user.username,
            detail="refresh_token_reuse",
            severity=5,
            label=sc.label,
        ),
        SignIn(
            t + 600_000,
            endpoint="token",
            client=MOBILE_CLIENT,
            ip=user.home_ip,
            success=False,
            grant="refresh_token",
            detail="invalid_grant",
        ),
    ]


def scraping_partner(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    rng, api, world = ctx.rng, ctx.api, ctx.world
    partner = world.partners[0]
    ip = ctx.hosting_ip()
    who = Who(
        sub=partner.client,
        client=partner.client,
        roles=("partner",),
        scopes=PARTNER_SCOPES,
        token=new_token(rng),
        ip=ip,
        agent=partner.agent,
        partner=partner.partner,
        label=sc.label,
    )
    sc.keys |= {f"client:{partner.client}", f"token:{who.token}", f"ip:{ip}"}
    out: list[Item] = [
        SignIn(
            t - 1500,
            endpoint="token",
            client=partner.client,
            ip=ip,
            success=True,
            grant="client_credentials",
            user_uid=partner.client,
            label=sc.label,
        )
    ]
    mine = world.partner_customers(partner.partner)
    offsets = list(range(0, world.customers, 100))
    end = t + 4 * 60_000
    i = 0
    while t < end:
        if i % 2 == 0:
            out.append(api.list_customers(t, who, offsets[(i // 2) % len(offsets)]))
        else:
            out.append(api.list_orders(t, who, mine[(i // 2) % len(mine)]))
        i += 1
        t += _gap(rng, 12.0)
    return out


def scraping_support(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    rng, api, world = ctx.rng, ctx.api, ctx.world
    agent = rng.choice(world.agents)
    ip = ctx.hosting_ip()
    items, t = sign_in(rng, t, agent.username, ip, 0.0, label=sc.label)
    who = Who(
        sub=agent.username,
        client=MOBILE_CLIENT,
        roles=("support",),
        scopes=SUPPORT_SCOPES,
        token=new_token(rng),
        ip=ip,
        agent=agent.agent,
        label=sc.label,
    )
    sc.keys |= {f"sub:{agent.username}", f"token:{who.token}", f"ip:{ip}"}
    out: list[Item] = list(items)
    end = t + 8 * 60_000
    while t < end:
        customer = rng.randrange(1, world.customers + 1)
        out.append(api.get_customer(t, who, customer))
        t += _gap(rng, 3.0)
        out.append(api.list_orders(t, who, customer))
        t += _gap(rng, 3.0)
    return out


_WORDLIST = [
    "/admin",
    "/admin/login",
    "/api",
    "/api/v1",
    "/api/v2/customers",
    "/v2/customers",
    "/v1/admin",
    "/v1/internal/debug",
    "/v1/internal/metrics",
    "/v1/customers/1/export",
    "/v1/customers/export",
    "/v1/users",
    "/v1/users/1",
    "/v1/accounts",
    "/v1/orders",
    "/v1/orders/export",
    "/v1/debug",
    "/v1/config",
    "/v1/health/details",
    "/v1/swagger.json",
    "/openapi.json",
    "/swagger-ui.html",
    "/v3/api-docs",
    "/.env",
    "/.git/config",
    "/actuator",
    "/actuator/env",
    "/metrics",
    "/graphql",
    "/v1/graphql",
    "/console",
    "/server-status",
    "/wp-login.php",
    "/v1/customers/1/password",
    "/v1/customers/1/tokens",
    "/v1/login/reset",
    "/v1/backup",
    "/backup.zip",
    "/v1/test",
    "/v0/customers",
    "/v1/customers/1/internal",
    "/v1/payments",
    "/v1/reports",
    "/v1/exports",
    "/internal",
    "/private",
    "/v1/customers/1/riskScore",
    "/v1/token",
    "/oauth/token",
    "/v1/keys",
    "/v1/settings",
    "/status",
]


def shadow_probe(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    rng, api = ctx.rng, ctx.api
    ip = ctx.hosting_ip()
    sc.keys.add(f"ip:{ip}")
    who = Who(
        sub="",
        client="",
        roles=(),
        scopes=(),
        token=None,
        ip=ip,
        agent="Mozilla/5.0 (compatible; Nuclei - Open-source project)",
        label=sc.label,
    )
    out: list[Item] = []
    for path in _WORDLIST + rng.sample(_WORDLIST, 20):
        out.append(api.undocumented(t, who, rng.choice(("GET", "GET", "GET", "POST")), path))
        t += _gap(rng, 4.0)
    return out


def rate_limit_hammer(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    rng, api, world = ctx.rng, ctx.api, ctx.world
    partner = world.partners[1]
    who = Who(
        sub=partner.client,
        client=partner.client,
        roles=("partner",),
        scopes=PARTNER_SCOPES,
        token=new_token(rng),
        ip=partner.ips[0],
        agent=partner.agent,
        partner=partner.partner,
        label=sc.label,
    )
    sc.keys |= {f"client:{partner.client}", f"token:{who.token}"}
    out: list[Item] = [
        SignIn(
            t - 800,
            endpoint="token",
            client=partner.client,
            ip=partner.ips[0],
            success=True,
            grant="client_credentials",
            user_uid=partner.client,
            label=sc.label,
        )
    ]
    end = t + 45_000
    while t < end:
        out.append(api.list_customers(t, who, 0))
        t += _gap(rng, 150.0)
    return out


def volume_burst(ctx: _Ctx, t: int, sc: Scenario) -> list[Item]:
    rng, api, world = ctx.rng, ctx.api, ctx.world
    user = rng.choice(world.users)
    who = Who(
        sub=user.username,
        client=MOBILE_CLIENT,
        roles=("customer",),
        scopes=MOBILE_SCOPES,
        token=new_token(rng),
        ip=user.home_ip,
        agent=SCRIPT_AGENT,
        customer=user.customer,
        label=sc.label,
    )
    sc.keys |= {f"sub:{user.username}", f"token:{who.token}"}
    items, t = sign_in(rng, t, user.username, user.home_ip, 0.0, label=sc.label)
    out: list[Item] = list(items)
    end = t + 15 * 60_000
    while t < end:
        out.append(api.list_orders(t, who, user.customer))
        t += int(rng.uniform(0.9, 1.1) * 1000)
    return out


# name -> (detector meant to catch it, maker, earliest and latest start hour)
SCENARIOS: dict[str, tuple[str, Maker, float, float]] = {
    "bola_sequential": ("enumeration", bola_sequential, 7, 22),
    "bola_random": ("enumeration", bola_random, 7, 22),
    "stuffing_single_ip": ("credential_stuffing", stuffing_single_ip, 7, 22),
    "stuffing_low_slow": ("credential_stuffing", stuffing_low_slow, 7, 22),
    "brute_force_account": ("credential_stuffing", brute_force_account, 7, 22),
    "token_theft": ("token_sharing", token_theft, 7, 22),
    "refresh_replay": ("token_sharing", refresh_replay, 7, 22),
    "scraping_partner": ("scraping", scraping_partner, 7, 22),
    "scraping_support": ("scraping", scraping_support, 10, 16),
    "shadow_probe": ("shadow_api", shadow_probe, 7, 22),
    "rate_limit_hammer": ("rate_limit_pressure", rate_limit_hammer, 7, 22),
    "volume_burst": ("volume", volume_burst, 7, 22),
}


def make_scenarios(
    world: World, api: Api, rng: random.Random, day: int, day_start: int, names: list[str] | None = None
) -> tuple[list[Scenario], list[Item]]:
    """The day's attacks: every scenario once, at a random time of its allowed hours."""
    ctx = _Ctx(world, api, rng, day, hosting=rng.sample(range(2, 254), 60))
    scenarios: list[Scenario] = []
    items: list[Item] = []
    for name in names or list(SCENARIOS):
        detector, maker, lo, hi = SCENARIOS[name]
        start = day_start + int((lo + rng.random() * (hi - lo)) * HOUR_MS)
        sc = Scenario(name=name, detector=detector, label=f"{name}@{day}", start=start)
        made = maker(ctx, start, sc)
        items.extend(made)
        labelled = [i.t for i in made if i.label == sc.label]
        sc.start = min([start, *labelled])
        sc.end = max(labelled, default=start)
        scenarios.append(sc)
    return scenarios, items
