"""The leaderboard's SQLite store (tinytorch/course/leaderboard/store.py): entries round-trip,
one transaction per submission (a crash or a killed process leaves no partial rows), concurrent
writers both land, the schema version is kept and older boards are migrated.
"""

from __future__ import annotations

import html
import math
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from leaderboard_support import ROOT, entry, record, rows, with_interval

from tinytorch.course import leaderboard
from tinytorch.course.leaderboard import RANK_NOTE, SCHEMA_VERSION, InvalidEntry, Leaderboard, default_path


@pytest.fixture
def board(tmp_path: Path) -> Leaderboard:
    return Leaderboard(tmp_path / "lb.sqlite3")


def test_an_entry_round_trips(board: Leaderboard) -> None:
    added = entry()
    entry_id = board.add(added)
    (got,) = board.entries()
    assert got.id == entry_id and got.created_at is not None
    assert replace(got, id=None, created_at=None) == added
    assert got.score == pytest.approx(math.sqrt(3.0 * 4.0))
    assert [e.event for e in got.events] == ["MLP_SPRINT", "CNN_MARATHON"]  # the order submitted
    assert len(board) == 1 and board.integrity_problems() == []


def test_entries_best_first_and_limited(board: Leaderboard) -> None:
    for name, cand in (("slow", 0.3), ("fastest", 0.01), ("middle", 0.1)):
        board.add(entry(name, events=[record(cand=cand)]))
    assert [e.name for e in board.entries()] == ["fastest", "middle", "slow"]
    assert [e.name for e in board.entries(limit=1)] == ["fastest"]
    for name, created in (("tie later", 2.0e9), ("tie earlier", 1.0e9)):  # equal scores: earlier first
        board.add(entry(name, events=[record(cand=0.2)], created_at=created))
    assert [e.name for e in board.entries()][2:4] == ["tie earlier", "tie later"]
    with pytest.raises(ValueError, match="limit"):
        board.entries(limit=0)


def test_add_refuses_what_is_not_an_entry(board: Leaderboard) -> None:
    with pytest.raises(TypeError, match="Entry"):
        board.add({"name": "x"})


def test_a_crash_mid_transaction_rolls_back(board: Leaderboard) -> None:
    board.add(entry("first"))

    def crash() -> None:
        raise RuntimeError("crash between the submission row and its events")

    with pytest.raises(RuntimeError, match="crash"):
        board.add(entry("second"), _fault=crash)
    assert rows(board) == (1, 2) and [e.name for e in board.entries()] == ["first"]
    assert board.integrity_problems() == []


CHILD = """
import os, sys
sys.path[:0] = [{tests!r}, {package_root!r}]  # the same tinytorch as the parent's
from leaderboard_support import entry
from tinytorch.course.leaderboard import Leaderboard
board = Leaderboard({path!r})
{body}
"""


def run_child(tmp_path: Path, board: Leaderboard, body: str, name: str) -> subprocess.Popen:
    script = tmp_path / f"{name}.py"
    tests = str(Path(__file__).parent)
    package_root = str(Path(leaderboard.__file__).resolve().parents[3])
    script.write_text(
        CHILD.format(tests=tests, package_root=package_root, path=str(board.path), body=textwrap.dedent(body))
    )
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_process_killed_mid_submission_leaves_the_database_consistent(board: Leaderboard, tmp_path) -> None:
    board.add(entry("first"))
    child = run_child(tmp_path, board, "board.add(entry('killed'), _fault=lambda: os._exit(9))", "killed")
    assert child.wait(timeout=60) == 9, child.stdout.read().decode()
    assert board.integrity_problems() == []
    assert rows(board) == (1, 2) and [e.name for e in board.entries()] == ["first"]
    board.add(entry("after"))  # the lock died with the process
    assert len(board) == 2


def test_two_processes_adding_at_once_both_land(board: Leaderboard, tmp_path: Path) -> None:
    # Both wait for a start file, then add 10 entries each: every one must land, none twice.
    # Each add holds the write lock for 20 ms (its _fault hook sleeps between the submission row
    # and its events), so the other process surely finds the database locked and must wait.
    go = tmp_path / "go"
    body = f"""
    import time
    while not os.path.exists({str(go)!r}):
        time.sleep(0.005)
    for i in range(10):
        board.add(entry(f"{{sys.argv[0][-4]}}{{i}}"), _fault=lambda: time.sleep(0.02))
    """
    children = [run_child(tmp_path, board, body, f"proc{k}") for k in "ab"]
    go.touch()
    for child in children:
        assert child.wait(timeout=60) == 0, child.stdout.read().decode()
    names = sorted(e.name for e in board.entries())
    assert names == sorted(f"{k}{i}" for k in "ab" for i in range(10))
    assert board.integrity_problems() == []


def test_schema_version_is_recorded_and_a_newer_one_refused(tmp_path: Path) -> None:
    board = Leaderboard(tmp_path / "v.sqlite3")
    assert board.schema_version == SCHEMA_VERSION
    Leaderboard(board.path)  # reopening an up-to-date database changes nothing
    with sqlite3.connect(board.path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        Leaderboard(board.path)


def test_default_path_is_outside_the_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(leaderboard.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_path() == tmp_path / "data" / "tinytorch" / "leaderboard.sqlite3"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert ROOT not in default_path().parents
    monkeypatch.setenv(leaderboard.ENV_VAR, str(tmp_path / "class.sqlite3"))
    assert default_path() == tmp_path / "class.sqlite3"
    assert Leaderboard().path == tmp_path / "class.sqlite3"


def test_integrity_problems_finds_partial_and_orphan_rows(board: Leaderboard) -> None:
    board.add(entry())
    with sqlite3.connect(board.path) as db:
        db.execute("DELETE FROM events WHERE event = 'CNN_MARATHON'")  # a half-written submission
        db.execute(
            "INSERT INTO events VALUES (99, 'X', 1.0, 1.0, 1.0, 'accuracy', 1.0, 1.0, 1, '', NULL, NULL)"
        )  # foreign keys are off in a plain connection: an orphan
    problems = board.integrity_problems()
    assert any("1 event rows, expected 2" in p for p in problems)
    assert any("without a submission" in p for p in problems)
    assert board.entries() == []  # an incomplete submission is never shown


V1_SCHEMA = """
CREATE TABLE submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL CHECK (length(name) > 0),
    author TEXT NOT NULL CHECK (length(author) > 0), score REAL NOT NULL CHECK (score > 0),
    optimizations TEXT NOT NULL, impl TEXT NOT NULL DEFAULT '', machine TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, n_events INTEGER NOT NULL CHECK (n_events > 0));
CREATE TABLE events (
    submission_id INTEGER NOT NULL REFERENCES submissions(id) ON DELETE CASCADE, event TEXT NOT NULL,
    baseline_seconds REAL NOT NULL CHECK (baseline_seconds > 0),
    candidate_seconds REAL NOT NULL CHECK (candidate_seconds > 0), speedup REAL NOT NULL CHECK (speedup > 0),
    quality_metric TEXT NOT NULL, quality_value REAL NOT NULL, quality_target REAL NOT NULL,
    passed INTEGER NOT NULL CHECK (passed IN (0, 1)), reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (submission_id, event));
CREATE INDEX submissions_by_score ON submissions(score DESC);
INSERT INTO submissions VALUES (1, 'old', 'ada', 3.0, '["kv-cache"]', 'katas', 'x86_64', '', 1.7e9, 1);
INSERT INTO events VALUES (1, 'MLP_SPRINT', 0.3, 0.1, 3.0, 'accuracy', 0.97, 0.95, 1, '');
PRAGMA user_version = 1;
"""


def test_a_board_of_schema_1_is_migrated_and_keeps_its_entries(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
    board = Leaderboard(path)
    assert board.schema_version == SCHEMA_VERSION == 5, "the version after the migration"
    (old,) = board.entries()
    assert (old.name, old.score, old.optimizations, old.observed, old.served, old.verified) == (
        "old",
        3.0,
        ("kv-cache",),
        {},
        {},
        False,
    ), f"the old entry as read back: {old}"
    assert "kv-cache (not recorded)" in board.to_markdown(), "an old entry's optimizations: not recorded"
    seen = {"kv-cache": leaderboard.FOUNDATION_CACHE}
    board.add(entry("new", optimizations=("kv-cache",), observed=seen, served={"benchmarking": "student"}))
    new = next(e for e in board.entries() if e.name == "new")
    assert (new.observed, new.served) == (seen, {"benchmarking": "student"}), "what ran, round-tripped"
    assert Leaderboard(path).schema_version == SCHEMA_VERSION and board.integrity_problems() == []


V2_MIGRATION = """
ALTER TABLE submissions ADD COLUMN observed TEXT NOT NULL DEFAULT '{}';
ALTER TABLE submissions ADD COLUMN served TEXT NOT NULL DEFAULT '{}';
PRAGMA user_version = 2;
"""


def test_a_board_of_schema_2_is_migrated_unverified_and_can_be_re_measured(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA + V2_MIGRATION)
    board = Leaderboard(path)
    assert board.schema_version == SCHEMA_VERSION == 5, "the version after the migration"
    (old,) = board.entries()
    assert (old.name, old.verified, old.remeasured_score, old.remeasure_note) == ("old", False, None, ""), (
        f"an entry of schema 2 is unverified and not re-measured: {old}"
    )
    board._record_remeasurement(old.id, 2.5, at=1.8e9)
    (old,) = board.entries()
    assert (old.remeasured_score, old.remeasured_at) == (2.5, 1.8e9), f"re-measured: {old}"
    with pytest.raises(InvalidEntry, match="remeasured_score"):
        board._record_remeasurement(old.id, math.inf)
    with pytest.raises(KeyError, match="no submission"):
        board._record_remeasurement(999, 2.0)
    with pytest.raises(InvalidEntry, match="remeasure_note holds"):
        board._record_remeasurement(old.id, None, "failed\rrow")
    assert board.integrity_problems() == [], board.integrity_problems()
    assert "| unverified | 2.50\u00d7 on 2027-01-15 |" in board.to_markdown(), board.to_markdown()
    assert (old.remeasured_score_low, old.remeasured_score_high) == (None, None), "no interval was given"
    # the re-measured score with its interval, stored and shown as every score is
    board._record_remeasurement(old.id, 2.5, at=1.8e9, bounds=(2.4, 2.6))
    (old,) = board.entries()
    assert (old.remeasured_score, old.remeasured_score_low, old.remeasured_score_high) == (2.5, 2.4, 2.6), old
    assert "| unverified | 2.50\u00d7 (2.40\u20132.60) on 2027-01-15 |" in board.to_markdown()
    for score, bounds, why in (
        (2.5, (2.6, 2.7), "remeasured_score 2.5 lies outside its interval"),
        (None, (2.4, 2.6), "need a remeasured_score"),
        (2.5, (0.0, 2.6), "remeasured_score_low must be finite and > 0"),
    ):
        with pytest.raises(InvalidEntry, match=why):
            board._record_remeasurement(old.id, score, bounds=bounds)
    (kept,) = board.entries()
    assert kept == old, "a refused re-measurement leaves the entry as it was"


def test_intervals_are_stored_shown_and_migrated(board: Leaderboard) -> None:
    board.add(with_interval("fast", 2.37, 2.30, 2.45))
    (got,) = board.entries()
    assert (got.score_low, got.score_high) == (2.30, 2.45), f"score interval read back: {got}"
    assert got.events[0].bounds == (2.30, 2.45), f"speedup interval read back: {got.events[0]}"
    md, page = board.to_markdown(), board.to_html()
    shown = "2.37\u00d7 (2.30\u20132.45)"
    assert md.count(f"| {shown} |") == 2, f"score and speedup cells in Markdown show {shown!r}: {md}"
    assert page.count(f"<td>{shown}</td>") == 2, f"score and speedup cells in HTML show {shown!r}: {page}"
    assert RANK_NOTE in md and html.escape(RANK_NOTE) in page, (
        "the board's legend says that entries whose intervals overlap share a rank"
    )
