"""The TinyMLPerf leaderboard (tinytorch/course/leaderboard.py): checks, transactions, concurrency, rendering.

Finished infrastructure, tested here without any kata: entries are built by hand. The student's
path onto the board (``CompetitionSubmission.submit_to_leaderboard``) is tested in
tests/test_benchmarking.py.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import math
import re
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import unicodedata
from argparse import Namespace
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tinytorch.course import cli, leaderboard
from tinytorch.course.leaderboard import (
    RANK_NOTE,
    SCHEMA_VERSION,
    Entry,
    EventRecord,
    InvalidEntry,
    Leaderboard,
    default_path,
    geometric_mean,
    tie_ranks,
)
from tinytorch.tensor import Tensor

ROOT = Path(__file__).resolve().parents[2]


def record(
    event: str = "MLP_SPRINT", base: float = 0.3, cand: float = 0.1, passed: bool = True, **kw
) -> EventRecord:
    values = dict(
        event=event,
        baseline_seconds=base,
        candidate_seconds=cand,
        speedup=kw.pop("speedup") if "speedup" in kw else base / cand,
        quality_metric="accuracy",
        quality_value=0.97 if passed else 0.5,
        quality_target=0.95,
        passed=passed,
        reason="" if passed else "accuracy 0.5000 is below the target 0.9500",
    )
    values.update(kw)
    return EventRecord(**values)


def entry(name: str = "fast", events=None, **kw) -> Entry:
    events = tuple(
        (record("MLP_SPRINT", 0.3, 0.1), record("CNN_MARATHON", 0.8, 0.2)) if events is None else events
    )
    values = dict(
        name=name,
        author="ada",
        score=kw.pop("score")
        if "score" in kw
        else geometric_mean(e.counted for e in events)
        if events
        else 1.0,
        optimizations=("structured-pruning", "kv-cache"),
        events=events,
    )
    values.update(kw)
    return Entry(**values)


@pytest.fixture
def board(tmp_path: Path) -> Leaderboard:
    return Leaderboard(tmp_path / "lb.sqlite3")


def rows(board: Leaderboard) -> tuple[int, int]:
    with sqlite3.connect(board.path) as db:
        return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("submissions", "events"))


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


MALFORMED = {
    "missing name": (dict(name=""), "name"),
    "missing author": (dict(author=None), "author"),
    "no optimizations": (dict(optimizations=()), "optimizations"),
    "optimizations as a string": (dict(optimizations="kv-cache"), "optimizations"),
    "unknown optimization": (dict(optimizations=("warp-drive",)), "unknown optimization 'warp-drive'"),
    "optimization twice": (dict(optimizations=("kv-cache", "kv-cache")), "twice"),
    "no events": (dict(events=(), score=1.0), "events"),
    "event twice": (dict(events=(record(), record())), "listed twice"),
    "NaN time": (dict(events=(record(base=math.nan),)), "baseline_seconds"),
    "negative time": (dict(events=(record(cand=-0.1, speedup=3.0),)), "candidate_seconds"),
    "infinite speedup": (dict(events=(record(speedup=math.inf),)), "speedup"),
    "text time": (dict(events=(record(base="fast", speedup=3.0),)), "baseline_seconds must be a number"),
    "speedup not the ratio": (dict(events=(record(speedup=10.0),), score=10.0), "not baseline/candidate"),
    "gate contradicts": (dict(events=(record(passed=True, quality_value=0.1),)), "contradicts"),
    "failed without a reason": (dict(events=(record(passed=False, reason=""),), score=1.0), "say why"),
    "score not the mean": (dict(score=99.0), "geometric mean"),
    "NaN score": (dict(score=math.nan), "score"),
    "no metric": (dict(events=(record(quality_metric=""),)), "quality_metric"),
    "text created_at": (dict(created_at="yesterday"), "created_at"),  # from a hand-written JSON entry
    "NaN created_at": (dict(created_at=math.nan), "created_at"),
    "text id": (dict(id="7"), "id must be"),
    # figures that no clock measured: a clear reason naming the field, never an OverflowError
    "400-digit speedup": (
        dict(events=(record(speedup=10**400),), score=3.0),
        "speedup must be a number a float",
    ),
    "400-digit time": (dict(events=(record(base=10**400, speedup=3.0),)), "baseline_seconds"),
    "400-digit score": (dict(score=10**400), "score must be a number a float can hold"),
    "400-digit quality": (dict(events=(record(quality_value=10**400),)), "quality_value"),
    "400-digit created_at": (dict(created_at=10**400), "created_at"),
    "400-digit id": (dict(id=10**400), "id must be"),
    "1e300x speedup": (
        dict(events=(record(base=1e3, cand=1e-297),), score=1e300),
        "speedup = 1e+300 is not a plausible",
    ),
    "a femtosecond": (dict(events=(record(base=3e-15, cand=1e-15),)), "candidate_seconds = 1e-15 is not"),
    "eleven days and more": (dict(events=(record(base=3e6, cand=1e6),)), "baseline_seconds = 3e+06 is not"),
    "a millionth of the speed": (dict(events=(record(base=1e-3, cand=1e4),)), "speedup = 1e-07 is not"),
    "infinite quality": (dict(events=(record(quality_target=math.inf),)), "quality_target must be a finite"),
    "absurd quality": (dict(events=(record(quality_value=1e300),)), "quality_value = 1e+300 is not"),
    "bool speedup": (dict(events=(record(speedup=True),), score=3.0), "speedup must be a number, got bool"),
    "negative score": (dict(score=-3.0), "score must be finite and > 0"),
    "400-digit re-measured score": (dict(remeasured_score=10**400), "remeasured_score"),
    "text verified": (dict(verified="yes"), "verified must be a bool"),
    # texts: one line of visible text, names and authors at most 64 characters
    "name of 65 characters": (dict(name="n" * 65), "name is 65 characters long; at most 64"),
    "author of 65 characters": (dict(author="a" * 65), "author is 65 characters long; at most 64"),
    "carriage return in a name": (dict(name="fast\r| 1 | fake | row"), "name holds"),
    "newline in an author": (dict(author="ada\n"), "author holds"),
    "terminal escape in a name": (dict(name="\x1b[31mred"), "U+001B"),
    "right-to-left override": (dict(author="ada\u202eevil"), "U+202E"),
    "line separator in an event": (dict(events=(record("A\u2028B"),)), "event holds"),
    "lone surrogate": (dict(name="a\ud800"), "U+D800"),
    "unhashable optimization": (dict(optimizations=(["kv-cache"],)), "unknown optimization"),
    "unhashable event name": (dict(events=(record(["A"]),)), "no name"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=lambda c: c.replace(" ", "-"))
def test_malformed_entry_is_rejected_and_nothing_is_written(board: Leaderboard, case: str) -> None:
    board.add(entry("earlier"))
    before = (rows(board), [e.name for e in board.entries()])
    fields, reason = MALFORMED[case]
    with pytest.raises(InvalidEntry) as error:
        board.add(entry(**fields))
    assert any(reason in r for r in error.value.reasons), error.value.reasons
    assert (rows(board), [e.name for e in board.entries()]) == before


def test_a_failed_gate_counts_one_in_the_score(board: Leaderboard) -> None:
    events = (record("A", 0.4, 0.1), record("B", 0.9, 0.1, passed=False))
    board.add(entry(events=events, score=math.sqrt(4.0 * 1.0)))
    assert "9.00\u00d7 *" in board.to_markdown()
    with pytest.raises(InvalidEntry, match="geometric mean"):
        board.add(entry(events=events, score=math.sqrt(4.0 * 9.0)))


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
from test_leaderboard import entry
from tinytorch.course.leaderboard import Leaderboard
board = Leaderboard({path!r})
{body}
"""


def run_child(tmp_path: Path, board: Leaderboard, body: str, name: str) -> subprocess.Popen:
    script = tmp_path / f"{name}.py"
    tests = str(Path(__file__).parent)
    package_root = str(Path(leaderboard.__file__).resolve().parents[2])
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


def test_markdown_and_html_render_and_escape(board: Leaderboard) -> None:
    assert "empty" in board.to_markdown() and "No submissions yet" in board.to_html()
    board.add(entry("a|b <script>alert(1)</script>", author="Zoë & co"))
    md = board.to_markdown()
    assert "a\\|b" in md and "| 3.46\u00d7 |" in md and "| 3.00\u00d7 | 4.00\u00d7 |" in md
    page = board.to_html()
    assert page.startswith("<!DOCTYPE html>") and "<script>" not in page
    assert "&lt;script&gt;" in page and "Zoë &amp; co" in page
    assert "http" not in page and "<link" not in page  # self-contained


def test_hostile_text_is_stored_as_data_and_rendered_inert(board: Leaderboard) -> None:
    # Every string of an entry comes from a submitter: SQL must take it as a parameter (a quote
    # ends a literal built by string formatting), and HTML must escape it everywhere it appears:
    # the cells, the column headers (event names) and the title attribute of a failed event.
    name = "Robert'); DROP TABLE submissions; --"
    hostile_event = '<img src=x onerror="alert(1)"> | x'
    reason = '" onmouseover="alert(2)"><script>alert(3)</script>'
    events = (record("MLP_SPRINT"), record(hostile_event, passed=False, reason=reason))
    board.add(entry(name, events=events, author="O'Brien", notes="'; DELETE FROM events; --"))
    (got,) = board.entries()
    assert (got.name, got.author, got.notes) == (name, "O'Brien", "'; DELETE FROM events; --")
    assert [e.event for e in got.events] == ["MLP_SPRINT", hostile_event] and got.events[1].reason == reason
    page = board.to_html()
    for raw in ("<script", "<img", 'onmouseover="', 'onerror="'):
        assert raw not in page, f"{raw!r} reached the page unescaped"
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; | x" in page
    table = [line for line in board.to_markdown().splitlines() if line.startswith("|")]
    cells = {len(re.split(r"(?<!\\)\|", line)) for line in table}  # unescaped pipes
    assert len(table) == 3 and len(cells) == 1, table  # header, rule, one row: same columns
    assert 'title="&quot; onmouseover=&quot;alert(2)&quot;&gt;&lt;script&gt;' in page
    assert "Robert&#x27;); DROP TABLE submissions; --" in page


def test_json_round_trip_and_malformed_json(tmp_path: Path) -> None:
    original = entry()
    assert Entry.from_dict(json.loads(json.dumps(original.to_dict()))) == original
    with pytest.raises(InvalidEntry, match="missing field 'score'"):
        Entry.from_dict({k: v for k, v in original.to_dict().items() if k != "score"})
    with pytest.raises(InvalidEntry, match="unknown field 'bonus'"):
        Entry.from_dict({**original.to_dict(), "bonus": 1})
    with pytest.raises(InvalidEntry, match="object"):
        Entry.from_dict([1, 2])
    with pytest.raises(InvalidEntry, match="event 0"):
        Entry.from_dict({**original.to_dict(), "events": [{"event": "X"}]})
    with pytest.raises(InvalidEntry, match="event 0 must be an object"):
        Entry.from_dict({**original.to_dict(), "events": [3]})
    with pytest.raises(InvalidEntry, match="events must be a list"):
        Entry.from_dict({**original.to_dict(), "events": "none"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidEntry, match="not a readable JSON"):
        leaderboard.load_entry_json(bad)


def test_cli_leaderboard_and_submit_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "cli.sqlite3"
    monkeypatch.setenv(leaderboard.ENV_VAR, str(db))
    good = tmp_path / "entry.json"
    good.write_text(json.dumps(entry().to_dict()))
    out = io.StringIO()
    assert (
        cli.main(
            ["submit", "--json", str(good), "--name", "renamed", "--save-json", str(tmp_path / "c.json")], out
        )
        == 0
    )
    assert "rank 1 of 1" in out.getvalue() and (tmp_path / "c.json").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**entry().to_dict(), "optimizations": ["teleport"]}))
    out = io.StringIO()
    assert cli.main(["submit", "--json", str(bad)], out) == 1
    assert "unknown optimization 'teleport'" in out.getvalue() and "unchanged" in out.getvalue()
    out = io.StringIO()
    assert cli.main(["leaderboard"], out) == 0 and "| 1 | renamed | ada |" in out.getvalue()
    html = tmp_path / "board.html"
    assert (
        cli.main(["leaderboard", "--format", "html", "--output", str(html), "--limit", "5"], io.StringIO())
        == 0
    )
    assert "renamed" in html.read_text()
    assert cli.main(["leaderboard", "--limit", "0"], io.StringIO()) == 2


def test_cli_submit_reports_an_unfinished_kata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unfinished(args, out):
        raise NotImplementedError("build_submission (module 20, benchmarking): implement it")

    monkeypatch.setattr(leaderboard, "_run_submission", unfinished)
    out = io.StringIO()
    args = Namespace(
        json=None, name=None, author=None, save_json=None, db=str(tmp_path / "x.sqlite3"), quick=True
    )
    assert leaderboard.cli_submit(args, out) == 1 and "cannot run yet" in out.getvalue()
    rejected = InvalidEntry(["MLP_SPRINT: quality gate failed"])

    def invalid(args, out):
        raise rejected

    monkeypatch.setattr(leaderboard, "_run_submission", invalid)
    out = io.StringIO()
    assert leaderboard.cli_submit(args, out) == 1 and "quality gate failed" in out.getvalue()
    monkeypatch.setattr(leaderboard, "_run_submission", lambda args, out: entry(score=42.0))
    out = io.StringIO()
    assert leaderboard.cli_submit(args, out) == 1 and "geometric mean" in out.getvalue()


def test_every_field_is_checked() -> None:
    with pytest.raises(ValueError, match="no values"):
        geometric_mean([])
    bad = record(event="", quality_value=math.nan, passed="yes", reason=None)
    problems = entry(events=(bad,), score=3.0, impl=None).problems()
    for part in (
        "no name",
        "quality_value must be a finite",
        "passed must be a bool",
        "reason must be",
        "impl",
    ):
        assert any(part in p for p in problems), (part, problems)
    assert any("EventRecords" in p for p in entry(events=({"event": "x"},), score=1.0).problems())


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


def test_boards_with_different_events_render(board: Leaderboard) -> None:
    board.add(
        entry("one", events=(record("A", 0.2, 0.1), record("B", 0.9, 0.1, passed=False)), score=math.sqrt(2))
    )
    board.add(entry("two", events=(record("C", 0.3, 0.1),)))
    md = board.to_markdown()
    # events in order of first appearance, best first
    assert "| re-measured | C | A | B |" in md.splitlines()[0], f"the columns: {md.splitlines()[0]}"
    assert "| - |" in md and "9.00\u00d7 *" in md
    page = board.to_html()
    assert "&ndash;" in page and 'class="fail"' in page and "below the target" in page


# --------------------------------------------------------------------------- when, where, what ran


def test_entries_of_the_same_name_are_told_apart_by_date_and_machine(board: Leaderboard) -> None:
    board.add(entry("same", created_at=1.7e9, machine="AMD EPYC 7B13, 2 cores, Linux x86_64"))
    board.add(entry("same", created_at=1.8e9, machine="Apple M2, 8 cores, Darwin arm64"))
    rows = [line for line in board.to_markdown().splitlines() if line.startswith("| ") and "same" in line]
    assert len(rows) == 2 and rows[0] != rows[1], f"two rows of the same name must differ: {rows}"
    for date, machine in (("2023-11-14 22:13", "AMD EPYC 7B13"), ("2027-01-15 08:00", "Apple M2")):
        assert any(date in row and machine in row for row in rows), f"a row with {date} (UTC) and {machine}"
        page = board.to_html()
        assert date in page and machine in page, f"the HTML page shows {date} and {machine}"
    header = board.to_markdown().splitlines()[0]
    assert "date (UTC)" in header and "machine" in header, f"the columns named: {header}"


def test_blas_kernel_names_the_openblas_core_numpy_runs() -> None:
    import os

    built = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    info = leaderboard.blas_kernel()
    if "openblas" not in str(built.get("name", "")).lower():
        pytest.skip(f"numpy's BLAS is {built.get('name')!r}, not OpenBLAS: no core name to read")
    assert info["library"] == "OpenBLAS", f"library of numpy's BLAS: {info}"
    assert isinstance(info["architecture"], str) and info["architecture"] not in ("", "unknown"), (
        f"OpenBLAS core name (openblas_get_corename): {info}"
    )
    assert info["version"] and str(built.get("version", "")).startswith(info["version"]), (
        f"OpenBLAS version (openblas_get_config) against numpy's build's {built.get('version')!r}: {info}"
    )
    assert isinstance(info["threads"], int) and info["threads"] >= 1, f"OpenBLAS threads: {info}"
    assert "/" not in info["file"] and os.sep not in info["file"], f"library file name, no folder: {info}"
    summary = leaderboard.blas_summary(info)
    assert summary == f"OpenBLAS {info['version']} {info['architecture']}", f"short BLAS line: {summary!r}"
    assert summary in leaderboard.machine_description(), "the machine line names BLAS and its kernels"


def test_blas_kernel_never_raises_on_a_missing_library_or_missing_symbols(tmp_path: Path) -> None:
    import _ctypes

    unknown = {"version": None, "architecture": "unknown", "threads": None, "config": None}
    missing = leaderboard.blas_kernel(str(tmp_path / "libopenblas.so"))
    assert missing == {"library": "OpenBLAS", "file": "libopenblas.so", **unknown}, (
        f"a library file that does not exist: {missing}"
    )
    real = getattr(_ctypes, "__file__", None)
    if real:  # a real shared library without any openblas_* symbol, under an OpenBLAS name
        fake = tmp_path / "libscipy_openblas64_-fake.so"
        fake.symlink_to(real)
        no_symbols = leaderboard.blas_kernel(str(fake))
        assert no_symbols == {"library": "OpenBLAS", "file": fake.name, **unknown}, (
            f"a library without OpenBLAS's symbols: {no_symbols}"
        )
    mkl = leaderboard.blas_kernel("/opt/intel/libmkl_rt.so.2")
    assert mkl == {"library": "MKL", "file": "libmkl_rt.so.2", **unknown}, f"MKL, kernels unknown: {mkl}"
    assert leaderboard.blas_summary(mkl) == "MKL (kernels unknown)", "short line, no core name"
    assert leaderboard.blas_kernel("") == {"library": "unknown", "file": None, **unknown}, "no library at all"


def test_the_machine_is_described_by_its_cpu_and_cores_without_host_or_user_names() -> None:
    import getpass
    import os
    import platform

    text = leaderboard.machine_description()
    assert leaderboard.cpu_model() in text and f"{os.cpu_count()} cores" in text, f"cpu and cores: {text}"
    for private in (platform.node(), getpass.getuser()):
        if len(private) >= 4:  # a name that short could be part of a CPU model by chance
            assert private not in text, f"the machine line must not carry {private!r}: {text}"


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
    assert board.schema_version == SCHEMA_VERSION == 4, "the version after the migration"
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


def kata_function(module: str, name: str) -> Any:
    """A function named ``name`` compiled as if it were in a file of kata module ``module`` (the
    folder the switch serves it from): running it is running that module's code."""
    import importlib

    package = importlib.import_module(f"tinytorch.perf.{module}")
    where = str(Path(package.__path__[0]) / "_compiled_by_a_test.py")  # no file: coverage omits it
    namespace: dict[str, Any] = {}
    exec(compile(f"def {name}(*args):\n    return args[0] if args else None\n", where, "exec"), namespace)
    return namespace[name]


class Generator:
    """A decathlon model: greedy decoding with the foundation's own cache (GPT.generate with
    use_cache=True), the fallback a submission takes when module 19 is not there."""

    def __init__(self) -> None:
        from tinytorch.transformer import GPT

        self.gpt = GPT(
            vocab_size=7, max_seq_len=8, embed_dim=8, n_heads=2, n_layers=1, rng=np.random.default_rng(0)
        )

    def generate(self, prompts: np.ndarray, max_new_tokens: int) -> np.ndarray:
        return self.gpt.generate(prompts, max_new_tokens, use_cache=True)


class WatchedEvent:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, model: Any) -> Any:
        if hasattr(model, "generate"):
            return model.generate(np.array([[1, 2]]), 3)
        return model(np.ones((2, 4), dtype=np.float32))


class WatchedCompetition:
    """The TinyMLPerf interface ``_run_submission`` uses, without timing anything."""

    def __init__(
        self, warmup: int | None = None, runs: int | None = None, budget: float | None = None
    ) -> None:
        self.events = {n: WatchedEvent(n) for n in ("MLP_SPRINT", "CNN_MARATHON", "TRANSFORMER_DECATHLON")}

    def event(self, name: str) -> WatchedEvent:
        return self.events[name]


class WatchedSubmission:
    """Names four optimizations; its build runs module 18's prune_neurons; its MLP runs in numpy
    alone (and through module 18's csr_matmul, which it does not name); its CNN runs the
    foundation's Linear; its generator falls back to the foundation's cache."""

    name, author = "watched", "ada"
    optimizations = ("structured-pruning", "fused-inference", "kv-cache", "int8-quantization")

    def __init__(self) -> None:
        from tinytorch.layers import Linear

        kata_function("compression", "prune_neurons")()
        csr_matmul, weight = kata_function("compression", "csr_matmul"), np.ones((4, 3), np.float32)
        linear = Linear(4, 3, rng=np.random.default_rng(0))
        self.models = {
            "MLP_SPRINT": lambda x: csr_matmul(x @ weight),
            "CNN_MARATHON": lambda x: linear(Tensor(x)),
            "TRANSFORMER_DECATHLON": Generator(),
        }

    def validate(self, benchmark: Any) -> list[str]:
        return []

    def compute_score(self, benchmark: Any) -> str:
        return "score 3.464x"

    def to_entry(self) -> Entry:
        return entry(self.name, optimizations=self.optimizations)


def test_submit_records_what_ran_and_a_foundation_cache_is_not_module_19(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kv-cache named by a submission whose generator fell back to the foundation's cache is shown as
    the foundation's cache; an optimization named and never run as not seen; one run and not named
    as not named; module 18's pruning by the tree that served it."""
    import tinytorch.perf.benchmarking as perf_benchmarking

    monkeypatch.setattr(perf_benchmarking, "build_submission", WatchedSubmission)
    monkeypatch.setattr(perf_benchmarking, "TinyMLPerf", WatchedCompetition)
    args = Namespace(
        json=None, name=None, author=None, save_json=None, db=str(tmp_path / "w.sqlite3"), quick=True
    )
    out = io.StringIO()
    assert leaderboard.cli_submit(args, out) == 0, out.getvalue()
    (got,) = Leaderboard(args.db).entries()
    compression = got.served["compression"]
    assert compression in leaderboard.SOURCES, f"the tree that served module 18: {got.served}"
    assert got.observed == {
        "fused-inference": "MLP_SPRINT without the foundation's layers",
        "int8-quantization": leaderboard.NOT_SEEN,
        "structured-pruning": f"{compression} module 18",
        "sparse-csr": f"{compression} module 18",
        "kv-cache": leaderboard.FOUNDATION_CACHE,
    }, f"what ran, as recorded: {got.observed}"
    assert got.machine == leaderboard.machine_description(), "the machine line of the CLI's path"
    cell = leaderboard.optimizations_text(got.optimizations, got.observed)
    for shown in (
        "kv-cache (the foundation's cache, not module 19)",
        "int8-quantization (not seen)",
        f"sparse-csr ({compression} module 18; not named)",
    ):
        assert shown in cell and shown in Leaderboard(args.db).to_markdown(), f"the board shows {shown!r}"


def test_a_watch_sees_module_19_before_the_foundation_and_restores_the_tracer() -> None:
    import sys

    previous = sys.gettrace()
    cached_forward = kata_function("caching", "cached_forward")
    with leaderboard.CodeWatch() as watch:
        cached_forward()
        Generator().generate(np.array([[1, 2]]), 3)
    assert sys.gettrace() is previous, "the watch leaves the tracer as it found it"
    assert watch.foundation_cache and ("caching", "cached_forward") in watch.kata_functions()
    source = leaderboard.served_modules()["caching"]
    observed = leaderboard.observe(["kv-cache"], {"TRANSFORMER_DECATHLON": watch})
    assert observed == {"kv-cache": f"{source} module 19"}, f"module 19's code ran: {observed}"


FAKE_BENCHMARKING = """
import os


class InvalidSubmission(ValueError):
    pass


class TinyMLPerf:
    pass


def build_submission():
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    threads = ",".join(f"{v}={os.environ.get(v)}" for v in names)
    raise NotImplementedError(f"measured with {threads}")
"""


def test_tinytorch_submit_measures_with_blas_pinned_like_bench(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`tinytorch submit` runs the submission where every benchmark runs: a fresh interpreter
    whose BLAS threads were pinned before numpy loaded (benchmarks/submit.py), one thread unless
    the caller chose. A fake module 20 reports the threads its build_submission saw."""
    fake = tmp_path / "benchmarking"
    fake.mkdir()
    (fake / "__init__.py").write_text(FAKE_BENCHMARKING)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the caller's own choice is kept
    out = io.StringIO()
    code = cli.main(
        ["submit", "--quick", "--impl", f"katas,benchmarking={fake}", "--db", str(tmp_path / "b.db")], out
    )
    said = out.getvalue() + capfd.readouterr().out
    assert code == 1 and "cannot run yet" in said, f"the fake's unfinished build: {said}"
    assert "measured with OPENBLAS_NUM_THREADS=1,OMP_NUM_THREADS=3,MKL_NUM_THREADS=1" in said, (
        f"the BLAS threads the submission was measured with: {said}"
    )


# --------------------------------------------------------------------------- input hygiene

# The Unicode categories a text of an entry may not hold (leaderboard.FORBIDDEN_CATEGORIES).
FORBIDDEN = st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp"])
VISIBLE = st.text(st.characters(exclude_categories=["Cc", "Cf", "Cs", "Zl", "Zp"]), max_size=8)
TEXT_FIELDS = ("name", "author", "machine", "impl", "event", "quality_metric", "reason")


def with_text(field: str, text: str) -> Entry:
    """A valid entry whose text ``field`` (of the entry or of its one event) is ``text``."""
    if field in ("event", "quality_metric", "reason"):
        failed = field == "reason"
        return entry(events=(record(passed=not failed, **{field: text}),), score=1.0 if failed else None)
    return entry(**{field: text})


@given(field=st.sampled_from(TEXT_FIELDS), before=VISIBLE, bad=FORBIDDEN, after=VISIBLE)
@example(field="name", before="fast", bad="\r", after="| 1 | fake | 9.99x |")  # the row it added
@example(field="author", before="ada", bad="\n", after="")
@example(field="name", before="", bad="\x1b", after="[2J")  # a terminal's clear screen
@example(field="author", before="ada", bad="\u202e", after="live")  # shown reversed
@example(field="event", before="A", bad="\u2028", after="B")
@example(field="name", before="a", bad="\ud800", after="")  # not encodable: SQLite would raise
@example(field="reason", before="slow", bad="\x00", after="")
def test_invisible_and_line_breaking_characters_are_rejected_naming_the_field(
    field: str, before: str, bad: str, after: str
) -> None:
    problems = with_text(field, before + bad + after).problems()
    assert any(field in p and f"U+{ord(bad):04X}" in p for p in problems), (
        f"the reasons for {field} = {before + bad + after!r} must name the field and U+{ord(bad):04X}: "
        f"{problems}"
    )


def test_names_and_authors_are_limited_to_64_characters(board: Leaderboard, monkeypatch) -> None:
    board.add(entry("n" * 64, author="a" * 64))  # at the limit: it lands
    assert [len(e.name) for e in board.entries()] == [64], "a name of 64 characters is recorded whole"

    def must_not_run(args, out):
        raise AssertionError("the competition ran for a submission whose name is refused")

    monkeypatch.setattr(leaderboard, "_run_submission", must_not_run)
    for flag in ("name", "author"):
        args = Namespace(json=None, name=None, author=None, save_json=None, db=str(board.path), quick=True)
        setattr(args, flag, "x" * 65)
        out = io.StringIO()
        status = leaderboard.cli_submit(args, out)
        assert status == 1 and f"--{flag}: {flag} is 65 characters long; at most 64" in out.getvalue(), (
            f"tinytorch submit --{flag} of 65 characters: exit {status}, said {out.getvalue()!r}"
        )
    assert len(board) == 1, "a refused submission leaves the board as it was"


# Text that must reach a reader as itself, never as markup: tags, comments, entities, links of
# every kind, code, emphasis, math, cell boundaries, escapes and a row break.
MARKUP = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "<javascript:alert(1)>",
    "![x](http://e.x/a.png)",
    "[x][1]\n\n[1]: javascript:alert(1)",
    "a|b\\|c\\",
    "`code` **bold** _it_ ~~gone~~ $x^2$",
    "&lt;b&gt; &amp; &#60;i&#62; &copy",
    "<!-- hidden -->",
    "fast\r| 1 | fake | 9.99x |",
]


def unescaped(cell: str) -> str:
    """What a CommonMark renderer shows for a cell: backslash escapes and entities resolved."""
    return html.unescape(re.sub(r"\\(.)", r"\1", cell))


def table_of(markdown: str) -> list[list[str]]:
    """The table's lines (CommonMark line endings: \\n, \\r\\n, \\r) split into cells at the
    unescaped pipes, up to the first blank line."""
    lines = re.split(r"\r\n|\r|\n", markdown)
    table = lines[: lines.index("")]
    return [re.split(r"(?<!\\)\|", line)[1:-1] for line in table]


def raw_markup(text: str) -> list[str]:
    """The characters of ``text`` that a renderer could read as markup: <, > and every one of
    `*_[]~$| not preceded by an escaping backslash (but an underscore between two letters or
    digits, which CommonMark never reads as emphasis)."""
    found, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        intraword = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        if text[i] in "<>`*_[]~$|" and not (text[i] == "_" and intraword):
            found.append(text[i])
        i += 1
    return found


@given(text=st.text(max_size=80))
@example(text="")
@example(text="\\")
@example(text="\\|")
@example(text="a\r\nb\u2028c\x85d\x0be")
@example(text="".join(MARKUP))
@example(text="MLP_SPRINT _it_ a__b x_")
def test_markdown_text_is_one_inert_cell_that_shows_the_text(text: str) -> None:
    """Any text, even one an old board holds unchecked: one line, no raw <, >, link, code or
    cell boundary, and a renderer shows the text itself (invisible and line-breaking
    characters as spaces)."""
    cell = leaderboard.markdown_text(text)
    assert re.search(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", cell) is None, f"a line break in {cell!r}"
    assert raw_markup(cell) == [], f"markup left in the cell of {text!r}: {cell!r}"
    shown = "".join(" " if unicodedata.category(c) in leaderboard.FORBIDDEN_CATEGORIES else c for c in text)
    assert unescaped(cell) == shown, f"the cell of {text!r} shows {unescaped(cell)!r}"


@settings(max_examples=20)  # a board per example (SQLite, WAL): the cell-level test above covers the text
@given(
    name=st.text(min_size=1, max_size=70),
    author=st.text(min_size=1, max_size=70),
    event=st.text(min_size=1, max_size=70),
)
@example(name=MARKUP[0], author=MARKUP[2], event=MARKUP[1])
@example(name=MARKUP[3], author=MARKUP[6], event=MARKUP[7])
@example(name=MARKUP[8], author=MARKUP[9], event=MARKUP[4])
@example(name=MARKUP[10], author="ada", event="MLP_SPRINT")
def test_the_board_has_one_row_per_entry_and_shows_its_texts_as_text(
    name: str, author: str, event: str
) -> None:
    """Arbitrary names, authors and event names: an entry is refused with a reason naming the
    field, or recorded and rendered as exactly one table row whose cells show the texts as
    given, with no raw <, link or cell boundary of theirs."""
    with tempfile.TemporaryDirectory() as folder:
        board = Leaderboard(Path(folder) / "lb.sqlite3")
        board.add(entry("plain"))
        candidate = entry(name, author=author, events=(record(event),))
        problems = candidate.problems()
        if problems:
            with pytest.raises(InvalidEntry):
                board.add(candidate)
            assert all(any(f in p for f in ("name", "author", "event")) for p in problems), problems
            return
        board.add(candidate)
        markdown = board.to_markdown()
    assert "<" not in markdown and ">" not in markdown, f"a raw < or > in the board:\n{markdown}"
    table = table_of(markdown)
    assert len(table) == 2 + 2, f"header, rule and one row per entry (2), got {len(table)}:\n{markdown}"
    assert len({len(row) for row in table}) == 1, f"every row has the header's columns:\n{markdown}"
    for row in table:
        assert all(raw_markup(cell) == [] for cell in row), f"markup in a row: {row}"
    (got,) = [row for row in table[2:] if unescaped(row[1].strip(" ")) != "plain"]
    assert (unescaped(got[1].strip(" ")), unescaped(got[2].strip(" "))) == (name.strip(), author.strip()), (
        f"the row shows name and author as given: {got}"
    )
    header = [unescaped(cell.strip(" ")) for cell in table[0]]
    assert event in header or event.strip(" ") in header, f"the event's column is named {event!r}: {header}"


def test_an_old_board_holding_a_carriage_return_still_renders_one_row_per_entry(board: Leaderboard) -> None:
    board.add(entry("plain"))
    board.add(entry("hostile"))
    with sqlite3.connect(board.path) as db:  # as a board written before the checks may hold it
        db.execute("UPDATE submissions SET name = ? WHERE name = 'hostile'", ("fast\r| 1 | fake | 9.99x |",))
    table = table_of(board.to_markdown())
    assert len(table) == 2 + 2, f"header, rule and one row per entry (2), got {len(table)}: {table}"
    assert any(unescaped(row[1].strip(" ")) == "fast | 1 | fake | 9.99x |" for row in table), table


def test_a_json_file_with_a_400_digit_figure_is_refused_with_a_reason(tmp_path: Path) -> None:
    record = entry().to_dict()
    record["events"][0]["speedup"] = "DIGITS"
    valid = json.dumps(record)
    huge = tmp_path / "huge.json"
    huge.write_text(valid.replace('"DIGITS"', "1" + "0" * 399))
    too_long = tmp_path / "too_long.json"  # past Python's 4300-digit limit for int("...")
    too_long.write_text(valid.replace('"DIGITS"', "1" + "0" * 5000))
    for path, reason in (
        (huge, "speedup must be a number a float can hold"),
        (too_long, "not a readable JSON"),
    ):
        assert path.read_text() != valid, "the test edits the speedup of the file"
        out = io.StringIO()
        status = cli.main(["submit", "--json", str(path), "--db", str(tmp_path / "j.sqlite3")], out)
        assert status == 1 and reason in out.getvalue() and "unchanged" in out.getvalue(), (
            f"tinytorch submit --json {path.name}: exit {status}, said {out.getvalue()!r}"
        )


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**500)
    | st.floats()
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
ENTRY_FIELDS = (
    "name", "author", "score", "optimizations", "impl", "machine", "notes", "observed", "served",
    "id", "created_at", "verified", "remeasured_score", "remeasured_at", "remeasure_note",
)  # fmt: skip
EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(EventRecord))


@given(field=st.sampled_from(ENTRY_FIELDS + EVENT_FIELDS), value=JSON_VALUES)
@example(field="speedup", value=10**400)
@example(field="score", value=10**400)
@example(field="created_at", value=10**400)
@example(field="id", value=10**400)
@example(field="optimizations", value=[["kv-cache"]])
@example(field="optimizations", value=[{"kv-cache": 1}])
@example(field="event", value=["MLP_SPRINT"])
@example(field="observed", value={"kv-cache": 10**400})
@example(field="quality_value", value=float("nan"))
@example(field="passed", value="true")
def test_any_json_value_in_any_field_is_a_reason_or_an_entry(field: str, value: Any) -> None:
    """A hand-written JSON entry with anything in one field: InvalidEntry with reasons, or an
    entry that is valid; never another exception (OverflowError, TypeError of an unhashable)."""
    record = entry().to_dict()
    if field in EVENT_FIELDS:
        record["events"][0][field] = value
    else:
        record[field] = value
    try:
        Entry.from_dict(record).check()
    except InvalidEntry as error:
        assert error.reasons and all(isinstance(r, str) and r for r in error.reasons), error.reasons


# --------------------------------------------------------------------------- verified entries


def test_only_the_boards_own_measurement_is_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaderboard.add (module 20's path) and `submit --json` record unverified whatever the entry
    says; `tinytorch submit`'s measured path records verified; both boards show the status in a
    column and say what it means."""
    db = tmp_path / "v.sqlite3"
    Leaderboard(db).add(entry("claims", verified=True, remeasured_score=9.0, remeasure_note="fine"))
    claim = tmp_path / "claim.json"
    claim.write_text(json.dumps({**entry("from json").to_dict(), "verified": True}))
    out = io.StringIO()
    assert cli.main(["submit", "--json", str(claim), "--db", str(db)], out) == 0, out.getvalue()
    assert "cannot make an entry verified" in out.getvalue(), (
        f"--json says it is unverified: {out.getvalue()}"
    )
    monkeypatch.setattr(leaderboard, "_run_submission", lambda args, out: entry("measured"))
    args = Namespace(json=None, name=None, author=None, save_json=None, db=str(db), quick=True)
    out = io.StringIO()
    assert leaderboard.cli_submit(args, out) == 0 and "verified: measured here" in out.getvalue(), (
        out.getvalue()
    )
    board = Leaderboard(db)
    status = {e.name: (e.verified, e.remeasured_score, e.remeasure_note) for e in board.entries()}
    assert status == {
        "claims": (False, None, ""),
        "from json": (False, None, ""),
        "measured": (True, None, ""),
    }, f"(verified, re-measured score, note) as recorded: {status}"
    table = table_of(board.to_markdown())
    columns = [cell.strip() for cell in table[0]]
    assert columns[3:6] == ["score", "status", "re-measured"], f"the columns: {columns}"
    shown = {row[1].strip(): (row[4].strip(), row[5].strip()) for row in table[2:]}
    assert shown == {
        "claims": ("unverified", "-"),
        "from json": ("unverified", "-"),
        "measured": ("verified", "-"),
    }, f"status and re-measured cells: {shown}"
    legend = board.to_markdown()
    for said in ("`verified`: measured by the leaderboard's own process", "`unverified`: self-reported"):
        assert said in legend, f"the legend says {said!r}"
    page = board.to_html()
    for status in ("verified", "unverified"):
        assert f'<span class="{status}">{status}</span>' in page, f"the HTML page's status cell {status}"
    assert html.escape("`unverified`: self-reported") in page, "the HTML page's legend"


def test_module_20s_submit_to_leaderboard_records_unverified(board: Leaderboard) -> None:
    from tinytorch.perf.benchmarking import CompetitionSubmission

    class Scored(CompetitionSubmission):
        """Already scored (not measured again), its entry claiming to be verified."""

        def validate(self, benchmark: Any = None) -> list[str]:
            return []

        def to_entry(self) -> Entry:
            return entry(self.name, verified=True)

    submission = Scored(name="api", author="ada", optimizations=["kv-cache"], models={})
    submission.results, submission.scorecard = {}, "scored"
    submission.submit_to_leaderboard(board)
    (got,) = board.entries()
    assert (got.name, got.verified) == ("api", False), f"module 20's entry as recorded: {got}"


FAKE_SUBMISSION = """
from tinytorch.course.leaderboard import Entry, EventRecord


class InvalidSubmission(ValueError):
    pass


class TinyMLPerf:
    events = {{}}

    def __init__(self, warmup=None, runs=None, budget=None):
        pass


class Submission:
    name, author, optimizations, models = "fake", "ada", ("kv-cache",), {{}}

    def validate(self, benchmark):
        return []

    def compute_score(self, benchmark):
        return "score 2.000x"

    def to_entry(self):
        event = EventRecord("MLP_SPRINT", 0.4, 0.2, 2.0, "accuracy", 0.97, 0.95, True)
        return Entry("fake", "ada", 2.0, ("kv-cache",), (event,))


def build_submission():
    {build}
"""


def fake_module_20(folder: Path, build: str) -> Path:
    """A module 20 folder whose submission scores 2.0 (``build``: build_submission's body)."""
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(FAKE_SUBMISSION.format(build=build))
    return folder


def test_verify_re_runs_recorded_entries_and_records_the_score_beside_the_claim(tmp_path: Path) -> None:
    """`tinytorch leaderboard verify [--top N]` re-runs each entry from its recorded code, in a
    fresh interpreter: the re-measured score lands beside the claimed one; an entry whose folder
    is gone, whose run fails, or that names no code says so, and keeps its claim."""
    honest = fake_module_20(tmp_path / "honest" / "benchmarking", "return Submission()")
    crash = fake_module_20(tmp_path / "crash" / "benchmarking", "raise RuntimeError('the model crashed')")
    gone = fake_module_20(tmp_path / "gone" / "benchmarking", "return Submission()")
    db = tmp_path / "verify.sqlite3"
    board = Leaderboard(db)
    for name, cand, impl in (
        ("gone", 0.0003, f"katas,benchmarking={gone}"),
        ("no code", 0.003, ""),
        ("claims 1000x", 0.03, f"katas,benchmarking={honest}"),
        ("crashes", 0.1, f"solutions,benchmarking={crash}"),
    ):
        board.add(entry(name, events=(record(base=30.0, cand=cand),), impl=impl))
    for path in sorted(gone.rglob("*"), reverse=True) + [gone]:
        path.unlink() if path.is_file() else path.rmdir()
    out = io.StringIO()
    status = cli.main(["leaderboard", "verify", "--top", "2", "--db", str(db)], out)
    assert status == 1, f"an entry could not be re-measured: exit 1, got {status}: {out.getvalue()}"
    notes = {e.name: (e.remeasured_score, e.remeasure_note) for e in board.entries()}
    assert notes == {
        "gone": (None, f"folder gone: {gone}".replace(str(Path.home()), "~", 1)),
        "no code": (None, "no folder recorded"),
        "claims 1000x": (None, ""),
        "crashes": (None, ""),
    }, f"--top 2 re-runs the best two only: {notes}"
    out = io.StringIO()
    status = cli.main(["leaderboard", "verify", "--quick", "--db", str(db)], out)
    said = out.getvalue()
    got = {e.name: e for e in board.entries()}
    assert got["claims 1000x"].remeasured_score == pytest.approx(2.0, rel=1e-12), (
        f"the fake submission scores 2.0 when re-run: {got['claims 1000x']}; said {said}"
    )
    assert got["claims 1000x"].score == pytest.approx(1000.0) and not got["claims 1000x"].verified, (
        "the claim and the status stay as they were"
    )
    assert got["crashes"].remeasured_score is None, f"a failed run has no score: {got['crashes']}"
    assert got["crashes"].remeasure_note == "failed: RuntimeError: the model crashed", got["crashes"]
    assert status == 1 and "re-measured 2.000x (claimed 1000.000x)" in said, said
    rows = {row[1].strip(): row[5].strip() for row in table_of(board.to_markdown())[2:]}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert rows["claims 1000x"] == f"2.00x ({today})", f"re-measured cells: {rows}"
    assert rows["crashes"].startswith("failed: RuntimeError"), f"re-measured cells: {rows}"
    assert rows["gone"].startswith("folder gone") and rows["no code"] == "no folder recorded", rows
    for bad in (["--top", "0"], ["--timeout", "0"]):
        status = cli.main(["leaderboard", "verify", *bad, "--db", str(db)], io.StringIO())
        assert status == 2, f"leaderboard verify {' '.join(bad)}: a usage error, exit 2, got {status}"


def test_verify_says_why_it_could_not_re_measure(tmp_path: Path, monkeypatch) -> None:
    """Code the switch cannot serve, a run past its timeout and a run whose result is not a
    valid entry are each recorded as failed, with why; an empty board has nothing to verify."""
    board = Leaderboard(tmp_path / "why.sqlite3")
    out = io.StringIO()
    args = Namespace(action="verify", db=str(board.path), top=None, quick=True, timeout=0.5)
    assert leaderboard.cli_leaderboard(args, out) == 0 and "no entries to verify" in out.getvalue(), (
        f"verify on an empty board: {out.getvalue()!r}"
    )

    def run(command, **kwargs):
        """benchmarks/submit.py as the entry named by its impl behaves: too slow, or lying."""
        if kwargs["env"]["TINYTORCH_IMPL"] == "solutions":
            raise subprocess.TimeoutExpired(command, kwargs["timeout"])
        saved = Path(command[command.index("--save-json") + 1])
        saved.write_text(json.dumps({**entry().to_dict(), "score": 10**400}))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(leaderboard.subprocess, "run", run)
    for name, impl in (("slow", "solutions"), ("lies", "katas"), ("unserved", "katas,teleport=solutions")):
        board.add(entry(name, impl=impl))
    out = io.StringIO()
    assert leaderboard.cli_leaderboard(args, out) == 1, f"entries could not be re-measured: {out.getvalue()}"
    notes = {e.name: (e.remeasured_score, e.remeasure_note) for e in board.entries()}
    assert notes["slow"] == (None, "failed: no result within 0.5 s"), f"a run past its timeout: {notes}"
    assert notes["lies"][0] is None and notes["lies"][1].startswith(
        "failed: the run gave an invalid entry ("
    ), f"a run whose result is not a valid entry: {notes}"
    assert "score must be a number a float can hold" in notes["lies"][1], f"the reason is kept: {notes}"
    assert notes["unserved"][0] is None and "cannot be served" in notes["unserved"][1], (
        f"code the switch cannot serve (unknown module teleport): {notes}"
    )


def test_notes_may_hold_lines_and_tabs_other_texts_may_not() -> None:
    assert entry(notes="line one\n\tline two").problems() == [], "free notes keep their lines and tabs"
    assert any("notes holds" in p for p in entry(notes="bell\x07").problems()), (
        "but no other control character"
    )


def test_the_code_watch_needs_no_checkout(monkeypatch) -> None:
    """The grader runs module 20 in a stage without katas/: naming each module's source must not
    need the checkout (every module is then served from a folder)."""
    import tinytorch.perf.profiling  # noqa: F401  (one kata module loaded, to be named)

    from tinytorch.course import registry

    def no_checkout() -> Path:
        raise FileNotFoundError("no katas/ folder")

    monkeypatch.setattr(registry, "repo_root", no_checkout)
    found = leaderboard._kata_folders()
    assert ("profiling", "folder") in found.values(), f"the loaded module named without a checkout: {found}"


def test_submit_records_the_code_it_ran_as_absolute_folders(tmp_path: Path, monkeypatch) -> None:
    """The measured path records impl with every tree an absolute folder (what verify re-runs);
    --dry-run measures and adds nothing."""
    monkeypatch.setenv("TINYTORCH_IMPL", "solutions,caching=katas")
    assert leaderboard.resolved_impl() == f"{ROOT / 'solutions'},caching={ROOT / 'katas' / 'caching'}", (
        f"the recorded code: {leaderboard.resolved_impl()}"
    )
    from tinytorch.course import registry

    with monkeypatch.context() as patch:  # a checkout path TINYTORCH_IMPL cannot hold: kept as given
        patch.setattr(registry, "repo_root", lambda: Path("/tmp/a,b"))
        assert leaderboard.resolved_impl() == "solutions,caching=katas", "a root with a comma"

    def no_checkout() -> Path:
        raise FileNotFoundError("no katas/ folder")

    with monkeypatch.context() as patch:  # the grader's stage: no checkout, the value kept as given
        patch.setattr(registry, "repo_root", no_checkout)
        patch.setenv("TINYTORCH_IMPL", str(tmp_path))
        assert leaderboard.resolved_impl() == str(tmp_path), "a run without a checkout records its value"
    import tinytorch.perf.benchmarking as perf_benchmarking

    monkeypatch.setattr(perf_benchmarking, "build_submission", WatchedSubmission)
    monkeypatch.setattr(perf_benchmarking, "TinyMLPerf", WatchedCompetition)
    saved = tmp_path / "dry.json"
    args = Namespace(
        json=None, name=None, author=None, save_json=str(saved), db=str(tmp_path / "d.sqlite3"), quick=True,
        dry_run=True,
    )  # fmt: skip
    out = io.StringIO()
    assert leaderboard.cli_submit(args, out) == 0 and "dry run" in out.getvalue(), out.getvalue()
    assert len(Leaderboard(args.db)) == 0, "a dry run adds nothing"
    assert leaderboard.load_entry_json(saved).impl == leaderboard.resolved_impl(), "the entry names its code"


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
    assert board.schema_version == SCHEMA_VERSION == 4, "the version after the migration"
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
    assert board.integrity_problems() == [] and "| unverified | 2.50x (2027-01-15) |" in board.to_markdown()


# ------------------------------------------------------------------ intervals and shared ranks


def with_interval(name: str, score: float, low: float, high: float) -> Entry:
    """A one-event entry whose speedup (and so score) is ``score`` with the interval (low, high)."""
    event = record("MLP_SPRINT", 0.3, 0.3 / score, speedup=score, speedup_low=low, speedup_high=high)
    return entry(name, events=(event,), score=score, score_low=low, score_high=high)


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


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        (dict(score_low=2.5, score_high=3.0), "score 2.37 lies outside its interval"),
        (dict(score_low=2.0, score_high=None), "come together"),
        (dict(score_low=0.0, score_high=3.0), "score_low must be finite and > 0"),
        (dict(score_low=2.0, score_high=2.45), "not the geometric means"),
    ],
)
def test_a_score_interval_must_hold_its_score_and_follow_the_events(fields, needle) -> None:
    bad = replace(with_interval("x", 2.37, 2.30, 2.45), **fields)
    problems = bad.problems()
    assert any(needle in p for p in problems), (
        f"problems of an entry with {fields}: {problems}, expected {needle!r}"
    )
    outside = record(speedup=3.0, speedup_low=1.0, speedup_high=2.0)
    assert any("speedup 3.0 lies outside" in p for p in outside.problems()), (
        f"problems of a speedup outside its interval: {outside.problems()}"
    )


def ranked(*intervals: tuple[float, float, float]) -> list[int]:
    return tie_ranks([with_interval(f"e{i}", *iv) for i, iv in enumerate(intervals)])


def test_entries_whose_intervals_overlap_share_a_rank() -> None:
    # disjoint intervals: ranked apart, 1, 2, 3
    assert ranked((9, 8, 10), (5, 4, 6), (2, 1, 3)) == [1, 2, 3], "disjoint intervals are ranked apart"
    # B overlaps A: tie for 1; C is below both: third (two entries above it)
    assert ranked((9, 8, 10), (8.5, 7.5, 9), (2, 1, 3)) == [1, 1, 3], "an overlap shares the rank"
    # a chain: A overlaps B, B overlaps C, A and C do not: all three tie
    assert ranked((11, 10, 12), (10, 9, 10.5), (9, 8, 9.5)) == [1, 1, 1], "a chain of overlaps ties"
    # touching bounds overlap (equal at one point)
    assert ranked((3, 2, 4), (1.5, 1, 2)) == [1, 1], "intervals that touch overlap"
    # a wide interval further down joins two groups above it into one: A | B were apart until C
    assert ranked((15, 14, 16), (12, 11.9, 12.1), (11, 5, 17)) == [1, 1, 1], (
        "an entry whose interval reaches two groups above it merges them"
    )
    # entries without an interval are points: equal scores tie, different ones do not
    assert tie_ranks([entry("a"), entry("b")]) == [1, 1], "two points with the same score tie"
    apart = [
        entry("a", events=(record(base=0.4, cand=0.1),)),
        entry("b", events=(record(base=0.2, cand=0.1),)),
    ]
    assert tie_ranks(apart) == [1, 2], "two points with different scores are ranked apart"


def test_the_board_shows_shared_ranks(board: Leaderboard) -> None:
    for name, iv in (("a", (9, 8, 10)), ("b", (8.5, 7.5, 9)), ("c", (2, 1, 3))):
        board.add(with_interval(name, *iv))
    rows = [line.split(" | ")[:2] for line in board.to_markdown().splitlines() if line.startswith("| ")][1:]
    assert rows == [["| 1", "a"], ["| 1", "b"], ["| 3", "c"]], f"rank and name of each row: {rows}"
