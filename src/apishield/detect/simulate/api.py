"""The demo API's operations, answered as the example policy answers them.

:class:`Api` makes :class:`~apishield.detect.simulate.events.Call` objects
for the example customer API (``examples/customer_api/openapi.yaml``) with
the outcome the example policy (``examples/customer_api/apishield.yaml``)
gives the caller: a customer sees only their own record, accounts and
orders; a partner its own customers, without personal data, and may not
write; support staff see everyone; any other object, and any object that
does not exist, is the same 404 (the object-level rules hide existence);
lists are filtered item by item. Sizes are those of the example service's
JSON (a customer about 560 bytes, 420 without personal data; an order
about 330).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from apishield.detect.simulate.events import Call
from apishield.detect.simulate.world import World

__all__ = ["Api", "Who"]

CUSTOMER = "/v1/customers/{customerId}"
ACCOUNTS = "/v1/customers/{customerId}/accounts"
ORDERS = "/v1/customers/{customerId}/orders"
ORDER = "/v1/orders/{orderId}"
CUSTOMERS = "/v1/customers"
SEARCH = "/v1/customers/search"
_RULE = "authorization.operations.{}.allow_if"
_PRECHECK = "authorization.operations.{}.precheck.allow_if"


@dataclass
class Who:
    """The caller as the gateway sees it after authentication."""

    sub: str
    client: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    token: str | None
    ip: str
    agent: str
    customer: int = 0  # a customer's own id
    partner: str = ""  # a partner's id
    label: str | None = None

    def may_see(self, world: World, customer: int) -> bool:
        if not world.exists(customer):
            return False
        if "support" in self.roles:
            return True
        if "partner" in self.roles:
            return world.owner[customer] == self.partner
        return customer == self.customer


class Api:
    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng

    def _call(
        self, t: int, who: Who, method: str, op: str, route: str | None, path: str, **kw: object
    ) -> Call:
        return Call(
            t,
            sub=who.sub,
            client=who.client,
            roles=who.roles,
            scopes=who.scopes,
            token=who.token,
            ip=who.ip,
            agent=who.agent,
            method=method,
            operation=op,
            route=route,
            path=path,
            label=who.label,
            **kw,  # type: ignore[arg-type]
        )

    def _customer_size(self, who: Who) -> int:
        base = 420 if "partner" in who.roles else 560
        return base + self.rng.randrange(-40, 60)

    def get_customer(self, t: int, who: Who, customer: int) -> Call:
        params = (("customerId", str(customer)),)
        path = f"/v1/customers/{customer}"
        if who.may_see(self.world, customer):
            size = self._customer_size(who)
            return self._call(
                t, who, "GET", "getCustomer", CUSTOMER, path, params=params, records=1, length=size
            )
        rule = _RULE.format("getCustomer") if self.world.exists(customer) else "not-found"
        return self._denied(t, who, "GET", "getCustomer", CUSTOMER, path, params, rule)

    def _denied(
        self,
        t: int,
        who: Who,
        method: str,
        op: str,
        route: str,
        path: str,
        params: tuple[tuple[str, str], ...],
        rule: str,
    ) -> Call:
        return self._call(
            t,
            who,
            method,
            op,
            route,
            path,
            params=params,
            status=404,
            detail="not-found",
            stage="object_access",
            rule=rule,
            length=171,
        )

    def list_accounts(self, t: int, who: Who, customer: int) -> Call:
        params = (("customerId", str(customer)),)
        path = f"/v1/customers/{customer}/accounts"
        if who.may_see(self.world, customer):
            n = self.world.accounts[customer]
            return self._call(
                t, who, "GET", "listAccounts", ACCOUNTS, path, params=params, records=n, length=2 + 150 * n
            )
        return self._denied(
            t, who, "GET", "listAccounts", ACCOUNTS, path, params, _PRECHECK.format("listAccounts")
        )

    def list_orders(self, t: int, who: Who, customer: int) -> Call:
        params = (("customerId", str(customer)),)
        path = f"/v1/customers/{customer}/orders"
        if who.may_see(self.world, customer):
            n = len(self.world.orders[customer])
            return self._call(
                t, who, "GET", "listOrders", ORDERS, path, params=params, records=n, length=2 + 330 * n
            )
        return self._denied(t, who, "GET", "listOrders", ORDERS, path, params, _PRECHECK.format("listOrders"))

    def get_order(self, t: int, who: Who, customer: int, order: str) -> Call:
        """An order of ``customer`` (0: an order id that exists nowhere, e.g. deleted)."""
        params = (("orderId", order),)
        path = f"/v1/orders/{order}"
        visible = customer and who.may_see(self.world, customer) and "partner" not in who.roles
        if visible:
            return self._call(
                t,
                who,
                "GET",
                "getOrder",
                ORDER,
                path,
                params=params,
                records=1,
                length=300 + self.rng.randrange(80),
            )
        rule = _RULE.format("getOrder") if customer else "not-found"
        return self._denied(t, who, "GET", "getOrder", ORDER, path, params, rule)

    def update_customer(self, t: int, who: Who, customer: int) -> Call:
        params = (("customerId", str(customer)),)
        path = f"/v1/customers/{customer}"
        if "partner" in who.roles:
            return self._call(
                t,
                who,
                "PUT",
                "updateCustomer",
                CUSTOMER,
                path,
                params=params,
                status=403,
                detail="insufficient-scope",
                stage="authorization",
                length=190,
            )
        if who.may_see(self.world, customer):
            size = self._customer_size(who)
            return self._call(
                t, who, "PUT", "updateCustomer", CUSTOMER, path, params=params, records=1, length=size
            )
        return self._denied(
            t, who, "PUT", "updateCustomer", CUSTOMER, path, params, _PRECHECK.format("updateCustomer")
        )

    def create_order(self, t: int, who: Who, customer: int) -> Call:
        params = (("customerId", str(customer)),)
        path = f"/v1/customers/{customer}/orders"
        if who.may_see(self.world, customer) and "customer" in who.roles:
            return self._call(
                t, who, "POST", "createOrder", ORDERS, path, params=params, status=201, records=1, length=340
            )
        return self._denied(
            t, who, "POST", "createOrder", ORDERS, path, params, _PRECHECK.format("createOrder")
        )

    def list_customers(self, t: int, who: Who, offset: int, limit: int = 100) -> Call:
        """A page of the customer list, filtered to what the caller may see."""
        world = self.world
        ids = range(offset + 1, min(offset + limit, world.customers) + 1)
        n = sum(1 for c in ids if who.may_see(world, c))
        size = 2 + n * (self._customer_size(who) if n else 0)
        path = f"/v1/customers?limit={limit}&offset={offset}"
        return self._call(
            t, who, "GET", "listCustomers", CUSTOMERS, path.split("?")[0], records=n, length=size
        )

    def search(self, t: int, who: Who, hits: int) -> Call:
        size = 2 + hits * self._customer_size(who)
        return self._call(t, who, "GET", "searchCustomers", SEARCH, SEARCH, records=hits, length=size)

    def undocumented(self, t: int, who: Who, method: str, path: str) -> Call:
        """A path no documented operation matches: the router's 404, before anyone is authenticated."""
        return self._call(
            t,
            who,
            method,
            "undocumented",
            None,
            path,
            status=404,
            detail="not-found",
            stage="route",
            length=160,
        )

    def expired(self, t: int, who: Who, customer: int) -> Call:
        """A request with an expired access token: 401 before anything else is decided."""
        return self._call(
            t,
            who,
            "GET",
            "getCustomer",
            CUSTOMER,
            f"/v1/customers/{customer}",
            params=(("customerId", str(customer)),),
            status=401,
            detail="invalid-token",
            stage="authentication",
            length=150,
        )
