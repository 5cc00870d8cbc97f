"""The spill journal on real files: append, replay, confirm, adopt what a dead process left."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from apishield.audit.journal import Journal, JournalFull


def lines(start: int, n: int) -> list[bytes]:
    return [b'{"n":%d}\n' % i for i in range(start, start + n)]


def replay_all(journal: Journal, limit: int = 7) -> list[bytes]:
    out: list[bytes] = []
    for batch in journal.replay(limit):
        out += batch.lines if batch.kept is None else batch.kept
        journal.confirm(batch)
    return out


def segments(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.jsonl"))


def test_appended_lines_are_replayed_in_order_then_deleted(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.open()
    journal.append(lines(0, 10), fsync=True)
    journal.append(lines(10, 5), fsync=False)
    assert journal.size == sum(len(x) for x in lines(0, 15))
    assert replay_all(journal) == []  # the segment being appended to is not replayed
    journal.rotate()
    assert replay_all(journal) == [x[:-1] for x in lines(0, 15)]
    assert journal.empty and journal.size == 0
    assert segments(tmp_path / "j") == []
    journal.close()
    assert list((tmp_path / "j").iterdir()) == []  # nothing left, not even the lock


def test_objects_kept_with_the_lines_are_replayed_without_reading_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.open()
    journal.append(lines(0, 3), fsync=False, keep=["a", "b", "c"])
    journal.rotate()
    (batch,) = list(journal.replay(10))
    assert batch.kept == ["a", "b", "c"] and batch.lines == []
    journal.confirm(batch)
    # past the cap, a segment is read back from its file
    small = Journal(tmp_path / "k", keep_limit=2)
    small.open()
    small.append(lines(0, 3), fsync=False, keep=["a", "b", "c"])
    small.rotate()
    (batch,) = list(small.replay(10))
    assert batch.kept is None and batch.lines == [x[:-1] for x in lines(0, 3)]
    journal.close()
    small.close()


def test_a_batch_not_confirmed_is_offered_again_and_confirmed_ones_are_not(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.open()
    journal.append(lines(0, 10), fsync=False)
    journal.rotate()
    first = journal.next_batch(4)
    assert first is not None
    journal.confirm(first)
    second = journal.next_batch(4)
    assert second is not None and second.lines == [x[:-1] for x in lines(4, 4)]
    # the sink failed: not confirmed; the next replay starts at the same place
    again = journal.next_batch(4)
    assert again is not None and again.start == second.start
    with pytest.raises(ValueError, match="in order"):
        journal.confirm(first)  # confirmed already
    journal.confirm(again)
    assert [len(b) for b in journal.replay(4)] == [2]
    journal.close()


def test_the_size_bound_refuses_appends(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", max_bytes=100)
    journal.open()
    journal.append([b"x" * 59 + b"\n"], fsync=False)
    with pytest.raises(JournalFull, match="bound is 100"):
        journal.append([b"y" * 59 + b"\n"], fsync=False)
    journal.rotate()
    replay_all(journal)
    journal.append([b"y" * 59 + b"\n"], fsync=False)  # room again once replayed
    journal.close()


def test_segments_rotate_at_their_size(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", segment_bytes=64)
    journal.open()
    for i in range(10):
        journal.append(lines(i * 4, 4), fsync=False)
    assert len(segments(tmp_path / "j")) >= 5
    journal.rotate()
    assert replay_all(journal) == [x[:-1] for x in lines(0, 40)]
    journal.close()


_DEAD_RUN = """
import os, sys
from apishield.audit.journal import Journal
journal = Journal(sys.argv[1])
journal.open()
journal.append([b'{"n":%d}\\n' % i for i in range(20)], fsync=True)
fd = journal._active_fd
os.write(fd, b'{"n":20,"torn')  # killed in the middle of a write
os._exit(9)
"""


def test_segments_of_a_dead_process_are_adopted_and_a_torn_line_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "j"
    done = subprocess.run([sys.executable, "-c", _DEAD_RUN, str(folder)], check=False)
    assert done.returncode == 9
    assert len(segments(folder)) == 1 and len(list(folder.glob("*.lock"))) == 1
    journal = Journal(folder)
    with caplog.at_level(logging.INFO, logger="apishield.audit"):
        journal.open()
        replayed = replay_all(journal)
    assert replayed == [x[:-1] for x in lines(0, 20)]
    assert any("torn last line" in r.getMessage() for r in caplog.records)
    assert any("left by a stopped process" in r.getMessage() for r in caplog.records)
    assert segments(folder) == []
    journal.close()
    assert list(folder.iterdir()) == []  # the dead run's lock went with its last segment


def test_a_live_run_is_not_adopted(tmp_path: Path) -> None:
    live = Journal(tmp_path / "j")
    live.open()
    live.append(lines(0, 5), fsync=False)
    live.rotate()
    other = Journal(tmp_path / "j")
    other.open()
    assert other.empty and replay_all(other) == []
    other.close()
    live.close()  # it stops with a segment left: the next writer adopts it
    third = Journal(tmp_path / "j")
    third.open()
    assert replay_all(third) == [x[:-1] for x in lines(0, 5)]
    third.close()


def test_an_unwritable_folder_is_an_os_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError):
        Journal(tmp_path / "file" / "j").open()
