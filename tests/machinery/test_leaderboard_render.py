"""The leaderboard's boards (tinytorch/course/leaderboard/render.py): Markdown and HTML, every text
escaped so that each entry is one inert row, the date and the machine shown, shared ranks.
"""

from __future__ import annotations

import html
import math
import re
import sqlite3
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from leaderboard_support import entry, record, table_of, with_interval

from tinytorch.course import leaderboard
from tinytorch.course.leaderboard import InvalidEntry, Leaderboard, tie_ranks


@pytest.fixture
def board(tmp_path: Path) -> Leaderboard:
    return Leaderboard(tmp_path / "lb.sqlite3")


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
