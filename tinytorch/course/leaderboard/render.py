"""The board as a reader sees it: a Markdown table and a static HTML page, ranks shared by ties.

:func:`to_markdown` (for a README or a terminal) and :func:`to_html` (one self-contained page, no
scripts, no external files) show the same columns: the rank, who, the score with its interval,
its status (verified or not) and re-measurement, each event's speedup, the optimizations with
what ran, the code's trees, the date and the machine. Every text comes from a submitter or from
a board written before today's checks, so every text is escaped (:func:`markdown_text`,
``html.escape``): each entry is one row and nothing of a submitter's renders as markup.
:func:`tie_ranks` gives entries whose score intervals overlap the same rank.
"""

from __future__ import annotations

import html
import time
import unicodedata
from collections.abc import Mapping, Sequence

from tinytorch.course.leaderboard.entry import FORBIDDEN_CATEGORIES, Entry, EventRecord, format_interval
from tinytorch.course.leaderboard.watch import NOT_RECORDED, NOT_SEEN, _module_numbers

# Markdown, escaped for renderers that allow raw HTML (GitHub, most static-site generators) and
# for a terminal: <, > and & become entities, so no tag, comment or entity of a submitter's
# reaches the page; the punctuation that starts Markdown syntax inside a table cell is
# backslash-escaped (CommonMark: any ASCII punctuation may be), so no link ([x](javascript:...)),
# autolink (<javascript:...>), image, code span, emphasis, strikethrough, math or cell boundary
# (|) is made of it (an underscore between two letters or digits is left as it is: CommonMark
# never reads one as emphasis, and MLP_SPRINT stays readable in a terminal); and every character
# that is invisible or breaks a line (the categories of FORBIDDEN_CATEGORIES, which a board
# written before the checks may hold) becomes a space, so a row stays one line.
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MD_PUNCTUATION = frozenset("\\`*_[]|~$")


def markdown_text(text: str) -> str:
    """``text`` as the content of one Markdown table cell that renders as exactly that text."""
    out, text = [], str(text)
    for i, char in enumerate(text):
        if char in _MD_ENTITIES:
            out.append(_MD_ENTITIES[char])
        elif char == "_" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum():
            out.append(char)
        elif char in _MD_PUNCTUATION:
            out.append("\\" + char)
        elif unicodedata.category(char) in FORBIDDEN_CATEGORIES:
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


# Columns before the events: the rank, who, the claimed score, who measured it (verified or
# unverified, STATUS_NOTE) and what `tinytorch leaderboard verify` measured when it re-ran it.
LEADING_COLUMNS = ("#", "submission", "author", "score", "status", "re-measured")
VERIFIED, UNVERIFIED = "verified", "unverified"
STATUS_NOTE = (
    f"Status: `{VERIFIED}`: measured by the leaderboard's own process (`tinytorch submit`, which runs "
    f"the competition in a fresh interpreter); `{UNVERIFIED}`: self-reported figures (`tinytorch submit "
    "--json`, module 20's `submit_to_leaderboard`, or an entry older than the status). Re-measured: the "
    "score `tinytorch leaderboard verify` measured when it last re-ran the entry's code (its folder), "
    "with its 95 % interval and the date (UTC), beside the claimed score; or why it could not "
    "(`folder gone`, `failed`); `-`: not re-run."
)

RANK_NOTE = (
    "Rank: scores and speedups are shown with their 95 % interval, e.g. 2.37\u00d7 (2.30\u20132.45). "
    "Entries whose score intervals overlap share a rank, and so do entries linked by a chain of "
    "overlapping intervals: the board does not rank apart what the measurement cannot tell apart."
)

# Columns after the events: the optimizations with what ran, the trees that served the kata
# modules, when and where it was measured.
TRAILING_COLUMNS = ("optimizations (what ran)", "code", "date (UTC)", "machine")
WHAT_RAN_NOTE = (
    "What ran: recorded by `tinytorch submit` from the code that ran while the submission was built "
    "and while each event's model ran once more; `not seen`: named by the submission, no code of it "
    f"ran; `{NOT_RECORDED}`: submitted before the board recorded it, or from a JSON file. Code: the "
    "tree that served each kata module (student: katas/, reference: solutions/)."
)


def to_markdown(entries: Sequence[Entry]) -> str:
    """The board of ``entries`` (best first) as a Markdown table: rank, name, author, score, its
    status (verified or not) and the re-measured score, each event's speedup, the optimizations
    with what ran, the code's trees, the date (UTC) and the machine. Every text is escaped
    (:func:`markdown_text`): each entry is one row, and no HTML or link of a submitter's
    renders."""
    if not entries:
        return "_The leaderboard is empty: submit with `tinytorch submit`._\n"
    events = event_names(entries)
    header = [*LEADING_COLUMNS, *map(markdown_text, events), *TRAILING_COLUMNS]
    align = ["---:", "---", "---", "---:", "---", "---:"] + ["---:"] * len(events)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(align + ["---"] * len(TRAILING_COLUMNS)) + "|",
    ]
    for rank, entry in zip(tie_ranks(entries), entries, strict=True):
        cells = [str(rank), markdown_text(entry.name), markdown_text(entry.author), _score_text(entry)]
        cells += [markdown_text(text) for text in _status_cells(entry)]
        cells += [_event_cell(entry, name) for name in events]
        cells += [markdown_text(text) for text in _trailing_cells(entry)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Score: geometric mean of the per-event speedups over the unoptimized models, measured in "
        "the same run; an event whose quality gate failed (marked *) counts as 1x."
    )
    lines.append(RANK_NOTE)
    lines.append(STATUS_NOTE)
    lines.append(WHAT_RAN_NOTE)
    return "\n".join(lines) + "\n"


def to_html(entries: Sequence[Entry], title: str = "TinyMLPerf leaderboard") -> str:
    """The board of ``entries`` (best first) as one self-contained static HTML page (inline CSS,
    no scripts, every value escaped)."""
    events = event_names(entries)
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in [*LEADING_COLUMNS, *events, *TRAILING_COLUMNS])
    rows = []
    for rank, entry in zip(tie_ranks(entries), entries, strict=True):
        cells = [str(rank), esc(entry.name), esc(entry.author), esc(_score_text(entry))]
        status, remeasured = (esc(text) for text in _status_cells(entry))
        cells += [f'<span class="{status}">{status}</span>', remeasured]
        for name in events:
            record = next((e for e in entry.events if e.event == name), None)
            if record is None:
                cells.append("&ndash;")
            elif record.passed:
                cells.append(esc(_speedup_text(record)))
            else:
                why = esc(record.reason)
                cells.append(f'<span class="fail" title="{why}">{esc(_speedup_text(record))} *</span>')
        cells += [esc(text) for text in _trailing_cells(entry)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    columns = len(LEADING_COLUMNS) + len(events) + len(TRAILING_COLUMNS)
    body = "\n".join(rows) if rows else f'<tr><td colspan="{columns}">No submissions yet.</td></tr>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 0.3em 0.8em; border-bottom: 1px solid #ccc; text-align: right; }}
th {{ background: #f0f0f0; }}
td:nth-child(2), td:nth-child(3), td:nth-child(5), td:nth-child(n+{7 + len(events)}) {{ text-align: left; }}
.fail, .unverified {{ color: #a00; }}
</style>
</head>
<body>
<h1>{esc(title)}</h1>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<p>Score: geometric mean of the per-event speedups over the unoptimized models, measured in the same
run with baseline and candidate interleaved. An event whose quality gate failed (*) counts as 1&times;.</p>
<p>{esc(RANK_NOTE)}</p>
<p>{esc(STATUS_NOTE)}</p>
<p>{esc(WHAT_RAN_NOTE)}</p>
</body>
</html>
"""


def event_names(entries: Sequence[Entry]) -> list[str]:
    """The events of ``entries``, each once, in the order they first appear (the board's columns)."""
    names: list[str] = []
    for entry in entries:
        names.extend(e.event for e in entry.events if e.event not in names)
    return names


def optimizations_text(named: Sequence[str], observed: Mapping[str, str]) -> str:
    """The optimizations a submission names, each with what ran for it (:func:`observe`); one
    seen running that the submission does not name comes last, marked "not named"."""
    if not observed:
        return ", ".join(named) + f" ({NOT_RECORDED})"
    texts = [f"{name} ({observed.get(name, NOT_SEEN)})" for name in named]
    texts += [
        f"{name} ({what}; not named)"
        for name, what in observed.items()
        if name not in named and what != NOT_SEEN
    ]
    return ", ".join(texts)


def code_text(served: Mapping[str, str]) -> str:
    """Which tree served the kata modules (:func:`served_modules`): "student 15 16 18 20; reference 17"."""
    if not served:
        return NOT_RECORDED
    numbers = _module_numbers()
    by_source: dict[str, list[str]] = {}
    for module, source in served.items():
        by_source.setdefault(source, []).append(str(numbers.get(module, module)))
    return "; ".join(f"{source} {' '.join(sorted(mods, key=_natural))}" for source, mods in by_source.items())


def date_text(entry: Entry) -> str:
    """When the entry was added, UTC to the minute ("" before it is added)."""
    if entry.created_at is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(entry.created_at))


def _status_cells(entry: Entry) -> list[str]:
    """The status (verified, unverified) and the re-measured score, or why there is none."""
    if entry.remeasured_score is not None:
        when = time.strftime("%Y-%m-%d", time.gmtime(entry.remeasured_at or 0))
        low, high = entry.remeasured_score_low, entry.remeasured_score_high
        remeasured = f"{format_interval(entry.remeasured_score, low, high)} on {when}"
    else:
        remeasured = entry.remeasure_note or "-"
    return [VERIFIED if entry.verified else UNVERIFIED, remeasured]


def _trailing_cells(entry: Entry) -> list[str]:
    return [
        optimizations_text(entry.optimizations, entry.observed),
        code_text(entry.served),
        date_text(entry),
        entry.machine or "unknown",
    ]


def _natural(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 30, text)


def _event_cell(entry: Entry, name: str) -> str:
    record = next((e for e in entry.events if e.event == name), None)
    if record is None:
        return "-"
    return _speedup_text(record) + ("" if record.passed else " *")


def _score_text(entry: Entry) -> str:
    """``2.37× (2.30–2.45)``, or ``2.37×`` for an entry recorded without an interval."""
    return format_interval(entry.score, *(entry.bounds or (None, None)))


def _speedup_text(record: EventRecord) -> str:
    return format_interval(record.speedup, *(record.bounds or (None, None)))


def tie_ranks(entries: Sequence[Entry]) -> list[int]:
    """The rank of each entry of ``entries`` (sorted best score first), ties shared (RANK_NOTE).

    Two entries whose score intervals overlap are not told apart, and neither is a chain of
    them: the ties are the groups of entries linked by overlapping intervals (A overlaps B, B
    overlaps C: A, B and C tie even if A and C do not overlap). Each interval holds its score,
    so a group is a run of consecutive entries; its rank is 1 + the number of entries above it
    (1, 1, 1, 4, ...). An entry without an interval is the point [score, score]. Walking down,
    an entry joins the groups above whose lowest bound it reaches (its high >= their low).
    """
    groups: list[tuple[int, float]] = []  # (index of the group's first entry, its lowest low)
    for i, entry in enumerate(entries):
        low, high = entry.bounds or (float(entry.score), float(entry.score))
        start, lowest = i, low
        while groups and groups[-1][1] <= high:
            start, lowest = groups[-1][0], min(lowest, groups[-1][1])
            groups.pop()
        groups.append((start, lowest))
    starts = [start for start, _ in groups]
    return [max(start for start in starts if start <= i) + 1 for i in range(len(entries))]
