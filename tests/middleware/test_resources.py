"""Ownership callables: the application's own code supplies ``resource`` to write pre-checks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Security
from pydantic import BaseModel, ConfigDict

from apishield import Shield
from apishield.auth.principal import Principal
from apishield.config.load import ConfigError
from apishield.middleware import ResourceRequest
from apishield.middleware.fastapi import oauth2_scheme
from tests.middleware.conftest import Issuer
from tests.support import ServerThread, http

OAUTH2 = oauth2_scheme(
    {"clientCredentials": {"tokenUrl": "https://issuer.test/token", "scopes": {"notes:write": "write"}}}
)
Writer = Annotated[Principal, Security(OAUTH2, scopes=["notes:write"])]


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class Owned(BaseModel):
    owner: str
    id: int


@dataclass
class Notes:
    owners: dict[int, str]
    calls: list[tuple[str, Any, str, bool]]
    reads: list[tuple[str, str | None]]
    writes: list[tuple[str, int]]


def build(notes: Notes) -> FastAPI:
    app = FastAPI()

    @app.get("/notes/{note_id}", operation_id="getNote")
    async def get_note(note_id: int, who: Writer) -> dict[str, Any]:
        notes.reads.append((who.method, who.subject))
        if note_id not in notes.owners:
            from fastapi import HTTPException

            raise HTTPException(404)
        return {"id": note_id, "owner": notes.owners[note_id]}

    for method, op_id in (
        ("put", "syncNote"),
        ("patch", "asyncNote"),
        ("post", "modelNote"),
        ("delete", "failingNote"),
    ):

        async def write(
            note_id: int, who: Writer, body: Note | None = None, _op: str = op_id
        ) -> dict[str, Any]:
            notes.writes.append((_op, note_id))
            return {"id": note_id, "owner": notes.owners.get(note_id, "")}

        write.__name__ = op_id
        getattr(app, method)("/notes/{note_id}", operation_id=op_id)(write)

    @app.put("/plain/{note_id}", operation_id="plainNote")
    async def plain(note_id: int, body: Note, who: Writer) -> dict[str, Any]:
        notes.writes.append(("plainNote", note_id))
        return {"id": note_id, "owner": notes.owners.get(note_id, "")}

    return app


RULE = "resource.owner == token.sub"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, issuer: Issuer
) -> Iterator[tuple[ServerThread, Notes, Issuer]]:
    notes = Notes({1: "alice", 2: "bob"}, [], [], [])
    app = build(notes)
    ops = ("syncNote", "asyncNote", "modelNote", "failingNote", "plainNote")
    policy = issuer.policy(
        tmp_path_factory.mktemp("resources"),
        authorization={
            "operations": {op: {"precheck": {"operation": "getNote", "allow_if": RULE}} for op in ops}
        },
    )

    loop_thread: list[threading.Thread] = []

    def sync_owner(request: ResourceRequest) -> dict[str, Any] | None:
        in_worker = threading.current_thread() not in loop_thread
        notes.calls.append(
            (request.operation_id, request.path["note_id"], str(request.principal.subject), in_worker)
        )
        owner = notes.owners.get(request.path["note_id"])
        return None if owner is None else {"owner": owner}

    async def async_owner(request: ResourceRequest) -> dict[str, Any] | None:
        notes.calls.append(
            (request.operation_id, request.path["note_id"], str(request.principal.subject), False)
        )
        owner = notes.owners.get(request.path["note_id"])
        return None if owner is None else {"owner": owner}

    async def model_owner(request: ResourceRequest) -> Owned:
        return Owned(owner=notes.owners[request.path["note_id"]], id=request.path["note_id"])

    def failing_owner(request: ResourceRequest) -> Any:
        raise RuntimeError("database is locked: SELECT owner FROM notes WHERE id = 1")

    resources = {
        "syncNote": sync_owner,
        "asyncNote": async_owner,
        "modelNote": model_owner,
        "failingNote": failing_owner,
    }
    shielded = Shield(app, config=policy, openapi=app.openapi, resources=resources, decision_log=None)
    server = ServerThread(shielded)
    loop_thread.append(server.thread)
    server.start()
    try:
        yield server, notes, issuer
    finally:
        server.stop()


@pytest.fixture()
def notes(served: tuple[ServerThread, Notes, Issuer]) -> tuple[ServerThread, Notes, Issuer]:
    _, n, _ = served
    n.calls.clear()
    n.reads.clear()
    n.writes.clear()
    return served


def writer(issuer: Issuer, sub: str) -> dict[str, str]:
    return issuer.bearer(sub=sub, scope="notes:write")


@pytest.mark.parametrize(("method", "op_id"), [("PUT", "syncNote"), ("PATCH", "asyncNote")])
def test_loader_decides_the_write(notes: tuple[ServerThread, Notes, Issuer], method: str, op_id: str) -> None:
    server, n, issuer = notes
    r = http(server.port, method, "/notes/1", {"text": "hi"}, writer(issuer, "alice"))
    assert r.status == 200, r.body
    assert n.writes == [(op_id, 1)]
    assert n.calls == [(op_id, 1, "alice", method == "PUT")]  # typed id; a def loader runs in a worker thread
    assert n.reads == []  # no HTTP-style read of the application
    n.writes.clear()
    r = http(server.port, method, "/notes/2", {"text": "hi"}, writer(issuer, "alice"))
    assert r.status == 404
    assert r.json()["detail"] == "The requested object was not found."
    missing = http(server.port, method, "/notes/99", {"text": "hi"}, writer(issuer, "alice"))
    assert missing.status == 404
    assert missing.body.split(b'"request_id"')[0] == r.body.split(b'"request_id"')[0]
    assert n.writes == []


def test_loader_may_return_a_model(notes: tuple[ServerThread, Notes, Issuer]) -> None:
    server, n, issuer = notes
    assert http(server.port, "POST", "/notes/2", {"text": "x"}, writer(issuer, "bob")).status == 200
    assert http(server.port, "POST", "/notes/2", {"text": "x"}, writer(issuer, "alice")).status == 404
    assert n.writes == [("modelNote", 2)]


def test_failing_loader_is_a_500_without_traceback(
    notes: tuple[ServerThread, Notes, Issuer], caplog: pytest.LogCaptureFixture
) -> None:
    server, n, issuer = notes
    with caplog.at_level(logging.ERROR, logger="apishield.middleware"):
        r = http(server.port, "DELETE", "/notes/1", headers=writer(issuer, "alice"))
    assert r.status == 500
    assert r.headers["content-type"] == "application/problem+json"
    for secret in (b"Traceback", b"database is locked", b"SELECT", b"RuntimeError"):
        assert secret not in r.body
    assert n.writes == []
    request_id = r.json()["request_id"]
    logged = [rec for rec in caplog.records if request_id in rec.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "failingNote" in logged[0].getMessage()


def test_without_a_loader_the_app_is_read_in_process(notes: tuple[ServerThread, Notes, Issuer]) -> None:
    server, n, issuer = notes
    assert http(server.port, "PUT", "/plain/1", {"text": "x"}, writer(issuer, "alice")).status == 200
    assert n.reads == [("service", "apishield-gateway")]  # the pre-check read, with the service identity
    assert http(server.port, "PUT", "/plain/2", {"text": "x"}, writer(issuer, "alice")).status == 404
    assert http(server.port, "PUT", "/plain/9", {"text": "x"}, writer(issuer, "alice")).status == 404
    assert n.writes == [("plainNote", 1)]


def test_loaders_are_checked_at_start(tmp_path: Path, issuer: Issuer) -> None:
    notes = Notes({}, [], [], [])
    app = build(notes)
    policy = issuer.policy(
        tmp_path,
        authorization={"operations": {"syncNote": {"precheck": {"operation": "getNote", "allow_if": RULE}}}},
    )
    with pytest.raises(ConfigError) as info:
        Shield(
            app,
            config=policy,
            openapi=app.openapi,
            resources={"nope": lambda r: None, "asyncNote": lambda r: None, "syncNote": "not callable"},  # type: ignore[dict-item]
        )
    messages = {i.path: i.message for i in info.value.issues}
    assert "no operation 'nope'" in messages[("resources", "nope")]
    assert "precheck" in messages[("resources", "asyncNote")]
    assert "callable" in messages[("resources", "syncNote")]
