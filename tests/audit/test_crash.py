"""Acknowledged durability survives SIGKILL: every event acknowledged before the kill is stored later.

A child process runs the writer with ``durability: acknowledged`` and 16
concurrent "requests", each emitting an event, awaiting ``durable()`` and
only then printing the event's uid (as an adapter would send its response).
The parent kills the child with SIGKILL once it has read enough uids, starts
a new writer on the same policy folder and checks that every uid it read is
in the sink, once. With the sink down in the child, the acknowledged events
exist only in the dead process's journal segments, which the new writer
adopts and replays.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.audit.support import until

from apishield.audit.writer import AuditWriter
from apishield.config.audit import AuditPolicy
from apishield.core.stages.audit import AuditQueue

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, sys
from pathlib import Path
from apishield.audit.writer import AuditWriter
from apishield.config.audit import AuditPolicy
from apishield.core.stages.audit import AuditQueue
from tests.audit.support import api_event

async def main(base: Path, path: str) -> None:
    queue = AuditQueue()
    policy = AuditPolicy(path=path, journal="journal", durability="acknowledged", flush_interval=0.05)
    writer = AuditWriter.from_policy(queue, policy, base, "child")
    await writer.start()
    numbers = iter(range(10**9))

    async def request() -> None:
        while True:
            event = api_event(next(numbers), instance="child")
            queue.emit(event)
            await writer.durable()
            sys.stdout.write(event["metadata"]["uid"] + "\\n")
            sys.stdout.flush()

    await asyncio.gather(*(request() for _ in range(16)))

asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
"""


def acknowledged_then_killed(base: Path, path: str, count: int) -> list[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(base), path],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    acked: list[str] = []
    try:
        while len(acked) < count:
            line = child.stdout.readline()
            if not line:
                raise AssertionError("the child stopped: " + child.stderr.read().decode()[-2000:])
            acked.append(line.decode().strip())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    rest = child.stdout.read()
    child.stdout.close()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    # uids printed before the kill and still in the pipe were acknowledged too
    acked += [line.decode().strip() for line in rest.splitlines(keepends=True) if line.endswith(b"\n")]
    return acked


def restart(base: Path, path: str) -> AuditWriter:
    async def run() -> AuditWriter:
        policy = AuditPolicy(path=path, journal="journal", durability="acknowledged", flush_interval=0.02)
        writer = AuditWriter.from_policy(AuditQueue(), policy, base, "restarted")
        assert writer is not None
        await writer.start()
        await until(
            lambda: writer.stats.sink_up and writer.stats.journal_bytes == 0, "the journal is replayed"
        )
        await writer.stop()
        return writer

    return asyncio.run(run())


@pytest.mark.parametrize("sink", ["up", "down"])
def test_every_acknowledged_event_survives_sigkill(tmp_path: Path, sink: str) -> None:
    path = "audit.db" if sink == "up" else "down/audit.db"
    if sink == "down":
        (tmp_path / "down").write_text("a file where the database folder should be")
    acked = acknowledged_then_killed(tmp_path, path, 800)
    assert len(acked) >= 800 and len(set(acked)) == len(acked)
    if sink == "down":
        (tmp_path / "down").unlink()
    writer = restart(tmp_path, path)
    with sqlite3.connect(tmp_path / path) as conn:
        stored = [uid for (uid,) in conn.execute("SELECT uid FROM audit_events")]
    assert len(stored) == len(set(stored))
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost"
    if sink == "down":
        assert writer.stats.replayed >= len(acked)  # they came from the dead process's journal
    assert list((tmp_path / "journal").glob("*.jsonl")) == []
