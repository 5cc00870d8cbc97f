"""A gateway stopped with SIGTERM under load loses no audit event.

``apishield serve`` runs as its own process with the SQLite sink; client
threads keep requests in flight while SIGTERM arrives. Every request that
got an answer must have its event in the database after the process exits
(the writer flushes everything queued on shutdown), and no event is stored
twice.
"""

from __future__ import annotations

import contextlib
import http.client
import signal
import sqlite3
import threading
from pathlib import Path

import orjson
from tests.support import (
    DATA,
    RecordingUpstream,
    ServerThread,
    free_port,
    serve_process,
    wait_listening,
    write_policy,
)


def test_sigterm_under_load_keeps_every_answered_request(tmp_path: Path) -> None:
    upstream = RecordingUpstream()
    upstream.answer("GET", "/items", body=[])
    up = ServerThread(upstream).start()
    db = tmp_path / "audit.db"
    # a long flush interval: without the flush at shutdown, most events would still be queued
    policy = write_policy(
        tmp_path, DATA / "shop31.yaml", up.port, audit={"path": str(db), "flush_interval": "30s"}
    )
    port = free_port()
    proc = serve_process(policy, port)
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                for _ in range(50):
                    conn.request("GET", "/items")
                    response = conn.getresponse()
                    response.read()
                    with lock:
                        answered.append(response.getheader("x-request-id") or "")
            except (OSError, http.client.HTTPException):
                if proc.poll() is not None:
                    return
            finally:
                conn.close()

    try:
        wait_listening(port, "/items")
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        while len(answered) < 400 and proc.poll() is None:
            stop.wait(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it drained on
        stop.set()
        for t in threads:
            t.join(timeout=10)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        up.stop()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT event FROM audit_events").fetchall()
    stored = [orjson.loads(row[0])["api"]["request"]["uid"] for row in rows]
    assert len(stored) == len(set(stored))  # once each
    answered_ids = {rid for rid in answered if rid}
    assert len(answered_ids) >= 400
    missing = answered_ids - set(stored)
    assert not missing, f"{len(missing)} answered requests have no audit event"
