"""Shield's operation resolution against FastAPI's own router, on real sockets.

The same application is served twice: bare, and with Shield built from its
own ``app.openapi()``. Every target is sent to both. A documented operation
must reach the same endpoint through Shield as without it; whatever the
document does not describe (hidden routes, mounted sub-applications, the
docs pages, a trailing-slash variant the router would redirect, a ``:path``
value spanning segments) is refused even though the framework serves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request
from starlette.applications import Starlette
from starlette.routing import Mount

from apishield import Shield
from tests.support import ServerThread, http

PUBLIC_DOCUMENT = {"security": []}  # every operation public: these tests are about routing


def build_app(policy: Path | None) -> FastAPI:
    app = FastAPI()

    items = APIRouter(prefix="/items")

    @items.get("/{item_id}", operation_id="getShopItem")
    async def get_shop_item(shop_id: int, item_id: int) -> dict[str, Any]:
        return {"op": "getShopItem", "shop": shop_id, "item": item_id}

    shops = APIRouter(prefix="/shops/{shop_id}")
    shops.include_router(items)
    v1 = APIRouter(prefix="/v1")
    v1.include_router(shops)
    app.include_router(v1)

    @app.get("/n/{num:int}", operation_id="getNumber")
    async def get_number(num: int) -> dict[str, Any]:
        return {"op": "getNumber", "num": num}

    @app.get("/files/{file_path:path}", operation_id="getFile")
    async def get_file(file_path: str) -> dict[str, Any]:
        return {"op": "getFile", "path": file_path}

    @app.get("/items", operation_id="listItems")
    async def list_items() -> dict[str, Any]:
        return {"op": "listItems"}

    @app.get("/slash/", operation_id="getSlash")
    async def get_slash() -> dict[str, Any]:
        return {"op": "getSlash"}

    @app.get("/hidden", include_in_schema=False)
    async def hidden() -> dict[str, Any]:
        return {"op": "hidden"}

    # declared in an order where FastAPI and OpenAPI disagree: the template first
    @app.get("/things/{thing}", operation_id="getThing")
    async def get_thing(thing: str) -> dict[str, Any]:
        return {"op": "getThing", "thing": thing}

    @app.get("/things/special", operation_id="getSpecialThing")
    async def get_special_thing() -> dict[str, Any]:
        return {"op": "getSpecialThing"}

    # the literal first: both agree
    @app.get("/gadgets/special", operation_id="getSpecialGadget")
    async def get_special_gadget() -> dict[str, Any]:
        return {"op": "getSpecialGadget"}

    @app.get("/gadgets/{gadget}", operation_id="getGadget")
    async def get_gadget(gadget: str) -> dict[str, Any]:
        return {"op": "getGadget", "gadget": gadget}

    @app.get("/where", operation_id="getWhere")
    async def where(request: Request) -> dict[str, Any]:
        return {"op": "getWhere", "root_path": request.scope.get("root_path"), "url": str(request.url)}

    sub = FastAPI()

    @sub.get("/ping", operation_id="subPing")
    async def sub_ping() -> dict[str, Any]:
        return {"op": "subPing"}

    app.mount("/sub", sub)

    if policy is not None:
        app.add_middleware(
            Shield, config=policy, openapi=lambda: {**app.openapi(), **PUBLIC_DOCUMENT}, decision_log=None
        )
    return app


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("router") / "apishield.yaml"
    path.write_text("validation: {requests: enforce, responses: strip}\n")
    return path


@pytest.fixture(scope="module")
def servers(policy: Path) -> Iterator[tuple[ServerThread, ServerThread]]:
    bare = ServerThread(build_app(None)).start()
    shielded = ServerThread(build_app(policy)).start()
    try:
        yield bare, shielded
    finally:
        bare.stop()
        shielded.stop()


# target, what FastAPI alone answers (status, endpoint), what Shield answers (status, endpoint)
CASES = [
    ("/v1/shops/3/items/4", (200, "getShopItem"), (200, "getShopItem")),  # nested include_router
    ("/n/5", (200, "getNumber"), (200, "getNumber")),  # {num:int} converter
    ("/files/readme.txt", (200, "getFile"), (200, "getFile")),  # {file_path:path}, one segment
    ("/items", (200, "listItems"), (200, "listItems")),
    ("/slash/", (200, "getSlash"), (200, "getSlash")),
    ("/gadgets/special", (200, "getSpecialGadget"), (200, "getSpecialGadget")),
    ("/gadgets/lamp", (200, "getGadget"), (200, "getGadget")),
    ("/things/lamp", (200, "getThing"), (200, "getThing")),
    # undocumented, served by the framework: refused
    ("/hidden", (200, "hidden"), (404, None)),
    ("/sub/ping", (200, "subPing"), (404, None)),  # a mounted sub-application is not in the document
    ("/docs", (200, None), (404, None)),
    ("/openapi.json", (200, None), (404, None)),
    ("/files/a/b.txt", (200, "getFile"), (404, None)),  # a path parameter never spans segments
    # trailing slashes: FastAPI redirects, the document has one path: the other is undocumented
    ("/items/", (307, None), (404, None)),
    ("/slash", (307, None), (404, None)),
    # converters and validation: Shield refuses what the document's types refuse
    ("/n/abc", (404, None), (400, None)),
    ("/v1/shops/x/items/4", (422, None), (400, None)),
    ("/n/-1", (404, None), (404, None)),  # a valid integer for Shield, no match for the converter
]


@pytest.mark.parametrize(("target", "bare_expected", "shield_expected"), CASES)
def test_router_consistency(
    servers: tuple[ServerThread, ServerThread],
    target: str,
    bare_expected: tuple[int, str | None],
    shield_expected: tuple[int, str | None],
) -> None:
    bare, shielded = servers
    plain = http(bare.port, "GET", target)
    guarded = http(shielded.port, "GET", target)
    for response, (status, op) in ((plain, bare_expected), (guarded, shield_expected)):
        assert response.status == status, (target, response.body)
        if op is not None:
            assert response.json()["op"] == op
    if shield_expected[1] is not None:
        assert guarded.json() == plain.json()
    else:
        assert guarded.headers.get("content-type") in ("application/problem+json", "application/json")
        assert b'"op"' not in guarded.body


def test_declaration_order_disagreement_is_refused(servers: tuple[ServerThread, ServerThread]) -> None:
    """FastAPI gives /things/special to getThing (declared first); Shield checked getSpecialThing."""
    bare, shielded = servers
    assert http(bare.port, "GET", "/things/special").json()["op"] == "getThing"
    r = http(shielded.port, "GET", "/things/special")
    assert r.status == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert b"getThing" not in r.body


def test_mounted_under_a_root_path(policy: Path) -> None:
    """The shielded app mounted at /api: the document's paths are relative to the mount point."""
    outer = Starlette(routes=[Mount("/api", app=build_app(policy))])
    server = ServerThread(outer).start()
    try:
        r = http(server.port, "GET", "/api/v1/shops/3/items/4")
        assert r.status == 200 and r.json()["op"] == "getShopItem"
        r = http(server.port, "GET", "/api/where")
        assert r.json()["root_path"] == "/api"
        assert r.json()["url"].endswith("/api/where")
        assert http(server.port, "GET", "/api/hidden").status == 404
        assert http(server.port, "GET", "/api/items/").status == 404
        assert http(server.port, "GET", "/api/n/abc").status == 400
        assert http(server.port, "GET", "/api/%76%31/shops/3/items/4").status == 200  # /api/v1, escaped
    finally:
        server.stop()


def test_server_root_path(policy: Path) -> None:
    """``uvicorn --root-path /prefix``: the server adds the prefix, Shield routes what follows it."""
    server = ServerThread(build_app(policy), root_path="/prefix").start()
    try:
        r = http(server.port, "GET", "/v1/shops/3/items/4")
        assert r.status == 200 and r.json()["op"] == "getShopItem"
        assert http(server.port, "GET", "/where").json()["url"].endswith("/prefix/where")
        assert http(server.port, "GET", "/hidden").status == 404
    finally:
        server.stop()


def test_shield_on_a_mounted_sub_application(policy: Path) -> None:
    """A sub-application protects itself with its own document, relative to its mount point."""
    sub = FastAPI()

    @sub.get("/ping", operation_id="subPing")
    async def ping() -> dict[str, str]:
        return {"op": "subPing"}

    @sub.get("/secret", include_in_schema=False)
    async def secret() -> dict[str, str]:
        return {"op": "secret"}

    sub.add_middleware(
        Shield, config=policy, openapi=lambda: {**sub.openapi(), **PUBLIC_DOCUMENT}, decision_log=None
    )
    parent = FastAPI()
    parent.mount("/sub", sub)
    server = ServerThread(parent).start()
    try:
        assert http(server.port, "GET", "/sub/ping").json() == {"op": "subPing"}
        assert http(server.port, "GET", "/sub/secret").status == 404
    finally:
        server.stop()
