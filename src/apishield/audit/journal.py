"""The spill journal: audit events on local disk until the sink has them.

The writer (:mod:`apishield.audit.writer`) appends here what it cannot hand
to the sink right now (the sink is down or slow, the queue overflowed) and,
with ``durability: acknowledged``, every event before its response is sent.
When the sink is back, the journal is replayed in batches; a segment file is
deleted only after the sink has confirmed every batch in it.

Layout: a folder (``audit.journal``, by default the sink's path plus
``.journal``) holding, per writer run::

    run-<start ns, 16 hex>-<pid>.lock           held with flock while the run lives
    run-<start ns, 16 hex>-<pid>.<n:06>.jsonl   segments: append-only JSON lines

A segment is one line per event (:mod:`apishield.audit.record`), appended
with ``O_APPEND`` and one ``write`` per batch, ``fsync``'d when asked (group
commit: one call covers every line written before it; a new file's folder
entry is synced with its first ``fsync``). It is closed ("rotated") when it
reaches 8 MiB or when the writer wants to replay it, and only closed
segments are replayed.

Several gateway processes may share the folder (``serve --workers``): each
run owns its files. A run whose lock file is no longer locked belongs to a
process that died; the next writer to :meth:`Journal.scan` adopts its
segments (flock makes sure only one does) and replays them. A crash can
leave the last line of the dead run's last segment torn: it is ignored with
a warning. It was never acknowledged: ``durable()`` returns only after the
whole line is written and synced.

The journal is bounded (``max_bytes``, 1 GiB by default, counting this run's
and adopted segments): an append that would pass the bound raises
:class:`JournalFull` and the writer logs it and counts the events as dropped.

Replay progress is kept in memory: if the sink fails part-way through a
segment, the next replay resumes after the last confirmed batch. After a
crash in the middle of a replay, the whole segment is replayed again; the
database sinks store each event once (by ``metadata.uid``).

To spare reading back what was just written, an append may pass the objects
its lines were made from (``keep``): a segment whose every line has its
object in memory is replayed from there. This is an optimisation with the
same result, capped at 50,000 objects.

All methods block (file I/O); the writer calls them in a worker thread. They
are safe to call from several threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writer per journal folder
    fcntl = None  # type: ignore[assignment]

__all__ = ["Journal", "JournalFull", "ReplayBatch"]

log = logging.getLogger("apishield.audit")

_SEGMENT = re.compile(r"run-([0-9a-f]{16}-[0-9]+)\.([0-9]{6})\.jsonl")
_LOCK = re.compile(r"run-([0-9a-f]{16}-[0-9]+)\.lock")
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class JournalFull(Exception):
    """Appending would take the journal past its size bound."""


@dataclass(eq=False)
class _Segment:
    path: Path
    run: str
    size: int
    kept: list[Any] | None = None  # the objects of its lines, in order; None when not all are in memory
    lines: list[bytes] | None = None  # loaded for replay
    done: int = 0  # lines confirmed by the sink
    dirty: bool = False  # written since the last fsync
    synced_once: bool = False


@dataclass(eq=False)
class _Run:
    run: str
    lock_fd: int | None
    segments: list[_Segment] = field(default_factory=list)


@dataclass
class ReplayBatch:
    """Up to ``limit`` lines of one closed segment; :meth:`Journal.confirm` once the sink has them."""

    segment: _Segment
    start: int
    end: int
    lines: list[bytes]  # without their newlines
    kept: list[Any] | None  # the objects the lines were made from, when still in memory

    def __len__(self) -> int:
        return self.end - self.start


class Journal:
    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 8 << 20,
        keep_limit: int = 50_000,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.keep_limit = keep_limit
        self.run = f"{time.time_ns():016x}-{os.getpid()}"
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self._active: _Segment | None = None
        self._active_fd: int | None = None
        self._number = 0
        self._closed: list[_Segment] = []  # replayable, oldest first
        self._adopted: dict[str, _Run] = {}
        self._bytes = 0
        self._kept = 0
        self._dir_fd_synced = False

    # -- state ---------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes in this run's and adopted segments not yet confirmed and deleted."""
        return self._bytes

    @property
    def empty(self) -> bool:
        """Nothing to replay (read without the lock: a hint for the event loop, which must not block)."""
        active = self._active
        return not self._closed and (active is None or active.size == 0)

    # -- opening and adopting ----------------------------------------------------------------

    def open(self) -> None:
        """Create the folder and this run's lock, and adopt what dead runs left; raises OSError."""
        with self._lock:
            if self._lock_fd is not None:
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / f"run-{self.run}.lock", _OPEN_FLAGS, 0o600)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._lock_fd = fd
        self.scan()

    def scan(self) -> int:
        """Adopt the segments of runs whose process is gone; returns how many segments were adopted."""
        with self._lock:
            if self._lock_fd is None:
                return 0
            try:
                names = os.listdir(self.directory)
            except OSError as exc:
                log.warning("audit journal %s cannot be listed: %s", self.directory, exc)
                return 0
            segments: dict[str, list[tuple[int, str]]] = {}
            locks: set[str] = set()
            for name in names:
                if m := _SEGMENT.fullmatch(name):
                    segments.setdefault(m.group(1), []).append((int(m.group(2)), name))
                elif m := _LOCK.fullmatch(name):
                    locks.add(m.group(1))
            adopted = 0
            for run in sorted(set(segments) | locks):
                if run == self.run or run in self._adopted:
                    continue
                lock_fd = self._try_lock(run) if run in locks else None
                if run in locks and lock_fd is None:
                    continue  # its process is alive
                owned = _Run(run, lock_fd)
                for _, name in sorted(segments.get(run, [])):
                    path = self.directory / name
                    try:
                        size = path.stat().st_size
                    except FileNotFoundError:
                        continue
                    owned.segments.append(_Segment(path, run, size))
                if not owned.segments:
                    self._release(owned)
                    continue
                self._adopted[run] = owned
                self._closed[0:0] = owned.segments  # older than ours: replayed first
                self._bytes += sum(s.size for s in owned.segments)
                adopted += len(owned.segments)
                log.info(
                    "audit journal: replaying %d segment(s), %d bytes, left by a stopped process (%s)",
                    len(owned.segments),
                    sum(s.size for s in owned.segments),
                    run,
                )
            return adopted

    def _try_lock(self, run: str) -> int | None:
        try:
            fd = os.open(self.directory / f"run-{run}.lock", os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        if fcntl is None:  # pragma: no cover
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    def _release(self, owned: _Run) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.directory / f"run-{owned.run}.lock")
        if owned.lock_fd is not None:
            os.close(owned.lock_fd)
            owned.lock_fd = None

    # -- appending ---------------------------------------------------------------------------

    def append(self, lines: Sequence[bytes], *, fsync: bool, keep: Sequence[Any] | None = None) -> None:
        """Append complete lines (each ending in a newline); with ``fsync``, sync before returning.

        ``keep``, when given, holds one object per line, remembered for the replay.
        Raises :class:`JournalFull` or ``OSError`` (the file is then cut back to its former end).
        """
        data = b"".join(lines)
        with self._lock:
            if self._lock_fd is None:
                raise OSError("the audit journal is not open")
            if self._bytes + len(data) > self.max_bytes:
                raise JournalFull(
                    f"the audit journal {self.directory} holds {self._bytes} bytes, "
                    f"its bound is {self.max_bytes}"
                )
            if data:
                segment, fd = self._writable()
                written = 0
                try:
                    view = memoryview(data)
                    while view:
                        n = os.write(fd, view)
                        written += n
                        view = view[n:]
                except OSError:
                    try:
                        os.ftruncate(fd, segment.size)
                    except OSError:
                        segment.size += written  # keep the torn line out of later appends' way
                        segment.kept = None
                        self._bytes += written
                        self._rotate()
                    raise
                segment.size += len(data)
                segment.dirty = True
                self._bytes += len(data)
                self._remember(segment, lines, keep)
            if fsync:
                self._sync_active()

    def _writable(self) -> tuple[_Segment, int]:
        if self._active is not None and self._active.size >= self.segment_bytes:
            self._rotate()
        if self._active is None or self._active_fd is None:
            self._number += 1
            path = self.directory / f"run-{self.run}.{self._number:06d}.jsonl"
            self._active_fd = os.open(path, _OPEN_FLAGS, 0o600)
            self._active = _Segment(path, self.run, 0, kept=[])
        return self._active, self._active_fd

    def _remember(self, segment: _Segment, lines: Sequence[bytes], keep: Sequence[Any] | None) -> None:
        if segment.kept is None:
            return
        if keep is None or len(keep) != len(lines) or self._kept + len(keep) > self.keep_limit:
            self._kept -= len(segment.kept)
            segment.kept = None
            return
        segment.kept.extend(keep)
        self._kept += len(keep)

    def sync(self) -> None:
        """``fsync`` what was appended without it."""
        with self._lock:
            self._sync_active()

    def _sync_active(self) -> None:
        segment, fd = self._active, self._active_fd
        if segment is None or fd is None or not segment.dirty:
            return
        os.fsync(fd)
        segment.dirty = False
        if not segment.synced_once:
            segment.synced_once = True
            self._sync_directory()

    def _sync_directory(self) -> None:
        if os.name != "posix":  # pragma: no cover
            return
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rotate(self) -> None:
        """Close the segment being appended to, so that it can be replayed."""
        with self._lock:
            self._rotate()

    def _rotate(self) -> None:
        segment, fd = self._active, self._active_fd
        if segment is None or fd is None:
            return
        if segment.size == 0:
            return
        try:
            self._sync_active()
        finally:
            os.close(fd)
            self._active, self._active_fd = None, None
            self._closed.append(segment)

    # -- replaying ---------------------------------------------------------------------------

    def next_batch(self, limit: int) -> ReplayBatch | None:
        """The next unconfirmed lines of the oldest closed segment, or None when all are confirmed."""
        with self._lock:
            while self._closed:
                segment = self._closed[0]
                if segment.kept is None and segment.lines is None:
                    segment.lines = self._load(segment)
                source = segment.kept if segment.kept is not None else segment.lines
                assert source is not None
                if segment.done >= len(source):
                    self._delete(segment)
                    continue
                start, end = segment.done, min(segment.done + limit, len(source))
                if segment.kept is not None:
                    return ReplayBatch(segment, start, end, [], segment.kept[start:end])
                assert segment.lines is not None
                return ReplayBatch(segment, start, end, segment.lines[start:end], None)
            return None

    def confirm(self, batch: ReplayBatch) -> None:
        """The sink has ``batch``: move past it, and delete its segment once it is all confirmed."""
        with self._lock:
            segment = batch.segment
            if batch.start != segment.done:
                raise ValueError("replay batches must be confirmed in order")
            segment.done = batch.end
            source = segment.kept if segment.kept is not None else segment.lines
            if source is not None and segment.done >= len(source) and segment in self._closed:
                self._delete(segment)

    def replay(self, limit: int) -> Iterator[ReplayBatch]:
        """Batches in order; iteration stops at a batch that was not confirmed before asking for the next."""
        while (batch := self.next_batch(limit)) is not None:
            yield batch
            if batch.segment.done < batch.end:
                return

    def _load(self, segment: _Segment) -> list[bytes]:
        try:
            data = segment.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        if tail:
            log.warning(
                "audit journal %s: ignoring a torn last line (%d bytes) left by a crash; "
                "it was never acknowledged",
                segment.path.name,
                len(tail),
            )
        return [line for line in lines if line]

    def _delete(self, segment: _Segment) -> None:
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        self._closed.remove(segment)
        self._bytes -= segment.size
        if segment.kept is not None:
            self._kept -= len(segment.kept)
        segment.kept, segment.lines = None, None
        owned = self._adopted.get(segment.run)
        if owned is not None:
            owned.segments.remove(segment)
            if not owned.segments:
                del self._adopted[segment.run]
                self._release(owned)

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        """Sync and close; segments not yet replayed stay for the next run (or another process)."""
        with self._lock:
            self._rotate()
            if self._active is not None and self._active_fd is not None:  # opened, never written
                os.close(self._active_fd)
                with contextlib.suppress(OSError):
                    self._active.path.unlink()
                self._active, self._active_fd = None, None
            for owned in list(self._adopted.values()):
                if owned.lock_fd is not None:
                    os.close(owned.lock_fd)
                    owned.lock_fd = None
            self._adopted.clear()
            mine = [s for s in self._closed if s.run == self.run]
            self._closed.clear()
            self._bytes = 0
            self._kept = 0
            if self._lock_fd is not None:
                if not mine:
                    with contextlib.suppress(OSError):
                        os.unlink(self.directory / f"run-{self.run}.lock")
                os.close(self._lock_fd)
                self._lock_fd = None
