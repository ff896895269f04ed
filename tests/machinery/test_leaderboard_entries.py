"""A leaderboard entry's checks (tinytorch/course/leaderboard/entry.py): every malformed field is
a reason naming it and nothing is written; implausible figures, invisible or line-breaking
characters and over-long names are refused; JSON entries and score intervals are checked.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from argparse import Namespace
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from leaderboard_support import entry, record, rows, with_interval

from tinytorch.course import cli, leaderboard
from tinytorch.course.leaderboard import Entry, EventRecord, InvalidEntry, Leaderboard, geometric_mean


@pytest.fixture
def board(tmp_path: Path) -> Leaderboard:
    return Leaderboard(tmp_path / "lb.sqlite3")


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

    monkeypatch.setattr(leaderboard.commands, "_run_submission", must_not_run)
    for flag in ("name", "author"):
        args = Namespace(json=None, name=None, author=None, save_json=None, db=str(board.path), quick=True)
        setattr(args, flag, "x" * 65)
        out = io.StringIO()
        status = leaderboard.cli_submit(args, out)
        assert status == 1 and f"--{flag}: {flag} is 65 characters long; at most 64" in out.getvalue(), (
            f"tinytorch submit --{flag} of 65 characters: exit {status}, said {out.getvalue()!r}"
        )
    assert len(board) == 1, "a refused submission leaves the board as it was"


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
    "remeasured_score_low", "remeasured_score_high",
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


def test_notes_may_hold_lines_and_tabs_other_texts_may_not() -> None:
    assert entry(notes="line one\n\tline two").problems() == [], "free notes keep their lines and tabs"
    assert any("notes holds" in p for p in entry(notes="bell\x07").problems()), (
        "but no other control character"
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
