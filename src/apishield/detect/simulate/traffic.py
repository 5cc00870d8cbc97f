"""Legitimate traffic of the reference scenario, one simulated day at a time.

Three populations, modelled on how such an API is used:

* **Mobile users** (customers with the app). Sessions per day drawn per
  user from a log-normal (median about two, a long tail of heavy users),
  started along a diurnal curve (a morning rise, a lunch bump and an
  evening peak; quiet nights). A session opens the app (own record,
  accounts, orders), then browses a few of the user's own orders, now and
  then edits the profile or places an order, with log-normal think times.
  Networks: the home Wi-Fi or the carrier's NAT (an address shared with many
  subscribers, kept for 20 minutes to 3 hours, then another); a fifth of the
  users move between networks within sessions (Wi-Fi to carrier, a new
  carrier address, a rare flap back). A tenth
  also have a tablet, with its own token. Access tokens live an hour and
  are refreshed at the issuer; a few apps first send an expired token and
  get a 401; a few sessions start with a password sign-in, some with a typo
  or two, now and then a forgotten password tried until the issuer's
  throttle answers; an outdated app version still calls an endpoint the API
  removed; stale links give the odd 404; on a flaky network the app retries
  a request a few times within a second or two; while an order is pending
  the app polls its status every 20 to 30 seconds.
* **Support agents** sign in at the office every working day and work
  tickets until the evening: search a customer, read the record, the orders,
  an order or two, sometimes edit; a mistyped id is a 404. Some days the
  queue is twice as long.
* **Partners' batch jobs** (``client_credentials``): every 15 or 10
  minutes, a page or two of changed customers and the orders of a sample of
  their customers, at a steady few requests per second from two or three
  egress addresses of one subnet; one run in twenty catches up after a
  failed one with two to three times the work.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Iterator

from apishield.detect.simulate.api import Api, Who
from apishield.detect.simulate.events import Call, SignIn
from apishield.detect.simulate.world import Agent, Partner, User, World, new_token, order_id

__all__ = ["DAY_MS", "day_traffic", "diurnal_time"]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
TOKEN_MS = HOUR_MS
MOBILE_CLIENT = "mobile-app"
MOBILE_SCOPES = ("customers:read", "customers:write", "orders:read", "orders:write")
SUPPORT_SCOPES = ("customers:read", "customers:write", "orders:read", "pii:read")
PARTNER_SCOPES = ("customers:read", "orders:read")
REMOVED_PATH = "/v1/profile"

# relative activity by hour of day (local time)
_DIURNAL = (
    0.25, 0.12, 0.07, 0.05, 0.06, 0.15, 0.45, 1.0, 1.35, 1.15, 1.0, 1.1,
    1.4, 1.25, 1.0, 0.95, 1.05, 1.3, 1.6, 1.9, 2.0, 1.7, 1.1, 0.55,
)  # fmt: skip
_CUMULATIVE = [sum(_DIURNAL[: i + 1]) for i in range(24)]

Item = Call | SignIn


def diurnal_time(rng: random.Random) -> int:
    """A time of day (ms) drawn from the diurnal curve."""
    hour = bisect(_CUMULATIVE, rng.random() * _CUMULATIVE[-1])
    return int((min(hour, 23) + rng.random()) * HOUR_MS)


def _think(rng: random.Random, median_s: float = 4.0) -> int:
    return int(rng.lognormvariate(math.log(median_s), 0.8) * 1000) + 150


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def sign_in(
    rng: random.Random,
    t: int,
    username: str,
    ip: str,
    typo_rate: float,
    client: str = MOBILE_CLIENT,
    label: str | None = None,
) -> tuple[list[Item], int]:
    """A password sign-in at the authorization endpoint (typos first, maybe), then the code grant."""
    out: list[Item] = []
    if rng.random() < typo_rate:
        typos = 1 + int(rng.random() < 0.3) + int(rng.random() < 0.1)
        if rng.random() < 0.1:
            typos = rng.randint(4, 7)  # a forgotten password: tries, meets the throttle, finds it
        for _ in range(typos):
            out.append(
                SignIn(
                    t,
                    endpoint="authorize",
                    client=client,
                    ip=ip,
                    success=False,
                    user_name=username,
                    detail="login_failed",
                    label=label,
                )
            )
            t += _think(rng, 7.0)
    out.append(
        SignIn(t, endpoint="authorize", client=client, ip=ip, success=True, user_name=username, label=label)
    )
    t += 400 + rng.randrange(900)
    out.append(
        SignIn(
            t,
            endpoint="token",
            client=client,
            ip=ip,
            success=True,
            grant="authorization_code",
            user_uid=username,
            label=label,
        )
    )
    return out, t + 200


def _refresh(rng: random.Random, t: int, username: str, ip: str) -> SignIn:
    return SignIn(
        t,
        endpoint="token",
        client=MOBILE_CLIENT,
        ip=ip,
        success=True,
        grant="refresh_token",
        user_uid=username,
    )


class _Session:
    """One app session of a mobile user: token upkeep, networks, then the requests."""

    def __init__(self, world: World, api: Api, rng: random.Random, user: User, start: int) -> None:
        self.world = world
        self.api = api
        self.rng = rng
        self.user = user
        self.t = start
        self.out: list[Item] = []
        tablet = user.tablet_agent is not None and rng.random() < 0.3
        self.tablet = tablet
        ip = user.home_ip if rng.random() < 0.55 else world.cell_ip(user, start, rng)
        self.who = Who(
            sub=user.username,
            client=MOBILE_CLIENT,
            roles=("customer",),
            scopes=MOBILE_SCOPES,
            token=None,
            ip=ip,
            agent=(user.tablet_agent or user.agent) if tablet else user.agent,
            customer=user.customer,
        )
        self.ips = [ip]

    def _token(self) -> None:
        user, rng, who = self.user, self.rng, self.who
        token, until = (
            (user.tablet_token, user.tablet_until) if self.tablet else (user.token, user.token_until)
        )
        if token is not None and self.t < until - 60_000:
            who.token = token
            return
        if token is not None and rng.random() < 0.05:
            self.out.append(self.api.expired(self.t, who, user.customer))
            self.t += 300 + rng.randrange(500)
        if token is None or rng.random() < 0.015:
            items, self.t = sign_in(rng, self.t, user.username, who.ip, user.typo_rate)
            self.out.extend(items)
        elif rng.random() < 0.01:
            # the refresh token expired: refused, then a password sign-in
            self.out.append(
                SignIn(
                    self.t,
                    endpoint="token",
                    client=MOBILE_CLIENT,
                    ip=who.ip,
                    success=False,
                    grant="refresh_token",
                    detail="invalid_grant",
                )
            )
            items, self.t = sign_in(rng, self.t + 500, user.username, who.ip, user.typo_rate)
            self.out.extend(items)
        else:
            self.out.append(_refresh(rng, self.t, user.username, who.ip))
            self.t += 250 + rng.randrange(400)
        token = new_token(rng)
        until = self.t + TOKEN_MS
        if self.tablet:
            user.tablet_token, user.tablet_until = token, until
        else:
            user.token, user.token_until = token, until
        who.token = token

    def _move(self) -> None:
        """A network change within the session (sequential: the old network is left)."""
        rng, who = self.rng, self.who
        if len(self.ips) >= 2 and rng.random() < 0.2:
            who.ip = self.ips[-2]  # a flap back
        elif who.ip == self.user.home_ip or rng.random() < 0.5:
            # to the carrier, whose NAT sometimes hands out another address on the way
            who.ip = self.world.cell_ip(self.user, self.t, rng, renew=rng.random() < 0.3)
        else:
            who.ip = self.user.home_ip
        self.ips.append(who.ip)

    def run(self) -> list[Item]:
        rng, api, who, user = self.rng, self.api, self.who, self.user
        world = self.world
        self._token()
        me = user.customer
        own_orders = world.orders[me]
        steps: list[str] = []
        if user.old_app:
            steps.append("removed")
        steps += ["customer", "accounts", "orders"]
        extra = min(int(rng.expovariate(1 / 3.0)), 40)
        for _ in range(extra):
            r = rng.random()
            if r < 0.55:
                steps.append("order")
            elif r < 0.72:
                steps.append("orders")
            elif r < 0.84:
                steps.append("customer")
            elif r < 0.9:
                steps.append("accounts")
            elif r < 0.94:
                steps.append("update")
            elif r < 0.97:
                steps.append("create")
            elif r < 0.99:
                steps.append("stale")
            else:
                steps.append("link")
        moves = user.flaky_network and rng.random() < 0.35
        move_at = rng.randrange(1, len(steps) + 1) if moves else -1
        for i, step in enumerate(steps):
            if i == move_at:
                self._move()
            if self.t >= (user.tablet_until if self.tablet else user.token_until) - 30_000:
                self._token()
            t = self.t
            if step == "removed":
                self.out.append(api.undocumented(t, who, "GET", REMOVED_PATH))
            elif step == "customer":
                self.out.append(api.get_customer(t, who, me))
            elif step == "accounts":
                self.out.append(api.list_accounts(t, who, me))
            elif step == "orders":
                self.out.append(api.list_orders(t, who, me))
            elif step == "order":
                if own_orders:
                    self.out.append(api.get_order(t, who, me, rng.choice(own_orders)))
                else:
                    self.out.append(api.list_orders(t, who, me))
            elif step == "update":
                self.out.append(api.update_customer(t, who, me))
            elif step == "create":
                self.out.append(api.create_order(t, who, me))
            elif step == "stale":
                self.out.append(api.get_order(t, who, 0, order_id(rng)))
            else:
                # a link to someone else's record, shared by a relative
                other = rng.randrange(1, world.customers + 1)
                self.out.append(api.get_customer(t, who, other))
            if rng.random() < 0.01:
                # a flaky network: the app retries the request a few times within a second or two
                last = self.out[-1]
                if isinstance(last, Call):
                    for _ in range(rng.randint(2, 5)):
                        self.t += 150 + rng.randrange(400)
                        again = api.get_customer(self.t, who, me) if last.operation == "getCustomer" else None
                        self.out.append(again or api.list_orders(self.t, who, me))
            self.t += _think(rng) if step not in ("customer", "accounts") else 200 + rng.randrange(900)
        if own_orders and rng.random() < 0.05:
            # waiting for an order: the app polls its status every 20 to 30 seconds for a few minutes
            order = own_orders[-1]
            for _ in range(rng.randint(4, 15)):
                self.t += rng.randint(20_000, 30_000)
                if self.t >= (user.tablet_until if self.tablet else user.token_until) - 30_000:
                    self._token()
                self.out.append(api.get_order(self.t, who, me, order))
        return self.out


def mobile_day(
    world: World, api: Api, rng: random.Random, user: User, day_start: int, weekday: int
) -> list[Item]:
    factor = 0.85 if weekday >= 5 else 1.0
    n = _poisson(rng, user.sessions_per_day * factor)
    starts = sorted(day_start + diurnal_time(rng) for _ in range(n))
    out: list[Item] = []
    not_before = 0
    for start in starts:
        start = max(start, not_before)
        session = _Session(world, api, rng, user, start)
        out.extend(session.run())
        not_before = session.t + 30_000
    return out


def agent_day(
    world: World, api: Api, rng: random.Random, agent: Agent, day_start: int, weekday: int
) -> list[Item]:
    if weekday >= 5:
        return []
    out: list[Item] = []
    t = day_start + int((8.4 + rng.random() * 0.6) * HOUR_MS)
    end = day_start + int((17.0 + rng.random()) * HOUR_MS)
    lunch = day_start + int((12.0 + rng.random()) * HOUR_MS)
    who = Who(
        sub=agent.username,
        client=MOBILE_CLIENT,
        roles=("support",),
        scopes=SUPPORT_SCOPES,
        token=None,
        ip=agent.ip,
        agent=agent.agent,
    )
    lunch_done = False
    pace = rng.choice((1.0, 1.0, 1.0, 0.5))  # some days the queue is twice as long
    while t < end:
        if not lunch_done and t >= lunch:
            t += int((0.5 + rng.random() * 0.5) * HOUR_MS)
            lunch_done = True
        if agent.token is None or t >= agent.token_until - 60_000:
            if agent.token is None or t - agent.token_until > 4 * HOUR_MS:
                items, t = sign_in(rng, t, agent.username, agent.ip, 0.15)
                out.extend(items)
            else:
                out.append(_refresh(rng, t, agent.username, agent.ip))
                t += 300
            agent.token, agent.token_until = new_token(rng), t + TOKEN_MS
        who.token = agent.token
        customer = rng.randrange(1, world.customers + 1)
        if rng.random() < 0.5:
            out.append(api.search(t, who, 1 + int(rng.expovariate(0.6))))
            t += _think(rng, 6.0)
        if rng.random() < 0.01:
            out.append(api.get_customer(t, who, world.customers + 1 + rng.randrange(500)))  # a mistyped id
            t += _think(rng, 5.0)
        out.append(api.get_customer(t, who, customer))
        t += _think(rng, 10.0)
        out.append(api.list_orders(t, who, customer))
        t += _think(rng, 6.0)
        orders = world.orders[customer]
        for _ in range(min(int(rng.expovariate(0.8)), 4)):
            if orders:
                out.append(api.get_order(t, who, customer, rng.choice(orders)))
                t += _think(rng, 8.0)
        if rng.random() < 0.1:
            out.append(api.update_customer(t, who, customer))
        t += int(rng.uniform(2.0, 9.0) * 60_000 * pace)
    agent.token_until = min(agent.token_until, t)
    return out


def _partner_token(rng: random.Random, partner: Partner, t: int) -> SignIn | None:
    if partner.token is not None and t < partner.token_until - 120_000:
        return None
    partner.token, partner.token_until = new_token(rng), t + TOKEN_MS
    return SignIn(
        t,
        endpoint="token",
        client=partner.client,
        ip=partner.ips[0],
        success=True,
        grant="client_credentials",
        user_uid=partner.client,
    )


def partner_who(partner: Partner, label: str | None = None) -> Who:
    return Who(
        sub=partner.client,
        client=partner.client,
        roles=("partner",),
        scopes=PARTNER_SCOPES,
        token=partner.token,
        ip=partner.ips[0],
        agent=partner.agent,
        partner=partner.partner,
        label=label,
    )


def partner_day(world: World, api: Api, rng: random.Random, partner: Partner, day_start: int) -> list[Item]:
    out: list[Item] = []
    mine = world.partner_customers(partner.partner)
    phase = rng.randrange(partner.interval_s) * 1000
    t = day_start + phase
    gap = 1000.0 / partner.rate
    while t < day_start + 86_400_000:
        grant = _partner_token(rng, partner, t)
        if grant is not None:
            out.append(grant)
            t += 300
        who = partner_who(partner)
        run_t = float(t)
        pages = 1 + int(rng.random() < 0.6)
        for page in range(pages):
            who.ip = rng.choice(partner.ips)
            out.append(
                api.list_customers(
                    int(run_t), who, rng.randrange(0, max(world.customers - 100, 1)) if page else 0
                )
            )
            run_t += gap * rng.uniform(0.7, 1.3)
        size = partner.sample * rng.uniform(0.85, 1.15)
        if rng.random() < 0.05:
            size *= rng.uniform(2.0, 3.0)  # a catch-up run after a failed one
        sample = sorted(rng.sample(mine, min(int(size), len(mine))))
        for customer in sample:
            who.ip = rng.choice(partner.ips)
            target = customer if rng.random() > 0.003 else world.customers + 1 + rng.randrange(100)
            out.append(api.list_orders(int(run_t), who, target))
            run_t += gap * rng.uniform(0.7, 1.3)
        t += partner.interval_s * 1000 + rng.randrange(-20_000, 20_000)
    return out


def day_traffic(world: World, api: Api, rng: random.Random, day_start: int, weekday: int) -> Iterator[Item]:
    """Every legitimate request of one day (unordered)."""
    for user in world.users:
        yield from mobile_day(world, api, rng, user, day_start, weekday)
    for agent in world.agents:
        yield from agent_day(world, api, rng, agent, day_start, weekday)
    for partner in world.partners:
        yield from partner_day(world, api, rng, partner, day_start)
