"""The class leaderboard on Gradescope: module 20's competition, run in the sandbox, shown by Gradescope.

When the grader grades module 20 (benchmarking) and every one of its tests earns its points, it
runs the competition once more, in quick mode, inside the same sandbox as the tests
(``grading/sandbox.py``: the confined child, never the grader's own process), and writes
Gradescope's ``leaderboard`` array into ``results.json``::

    "leaderboard": [
        {"name": "Score", "value": 3.21, "order": "desc"},
        {"name": "MLP_SPRINT", "value": 2.37, "order": "desc"},
        {"name": "CNN_MARATHON", "value": 2.34, "order": "desc"},
        {"name": "TRANSFORMER_DECATHLON", "value": 17.0, "order": "desc"}
    ]

Gradescope's specification (docs "Leaderboards" and "Autograder Specifications"): a top-level,
optional ``leaderboard`` array of objects with a ``name``, a ``value`` (a number, or a string) and
an optional ``order``, ``"desc"`` (the default: higher ranks higher) or ``"asc"``; students appear
under a pseudonym they choose when they submit. Every value here is a speedup or the score (their
geometric mean), so higher is better and ``order`` is ``"desc"``, written out. The specification
says nothing about an entry missing from one submission, so the grader writes either every entry
(the score and each event, always in this order) or no ``leaderboard`` at all, with a note saying
why (``extra_data.leaderboard`` and the last line of ``output``).

**Display only.** The figures never change a point of the grade: the grade is computed from the
tests and answer keys before the competition runs, and nothing below reads or writes it.

Two halves, in this one file:

* :func:`test_competition`, the child's entry point: staged (as
  ``competition/test_competition.py``) and run by pytest in the sandboxed child, with the
  submission's module 20 served as its tests were. It calls module 20's public API and nothing
  else -- ``build_submission()``, ``TinyMLPerf(warmup=1, runs=3, budget=QUICK_BUDGET)`` (the quick
  mode of ``tinytorch submit --quick``, its per-event time budget from ``tinytorch.course.leaderboard``),
  ``CompetitionSubmission.validate(bench)`` and ``.compute_score(bench)``,
  whose ``ScoreCard`` gives ``score`` and ``counted`` (each event's speedup as the score counts
  it: 1.0 for an event whose quality gate failed) -- and writes those figures, as they come, to
  a JSON file in its scratch folder (the path in ``$TINYTORCH_LEADERBOARD_OUT``).
* :func:`read_figures` and :func:`entries`, the grader's: the file is written by a process that
  runs the student's code, so it is untrusted input. It is opened without following a link,
  must be a regular file of at most :data:`MAX_FIGURES_BYTES`, valid JSON without ``NaN`` or
  ``Infinity``, exactly ``{"score": x, "events": {...}}`` with every event of :data:`EVENTS` and
  no other name, each value a real number (not a bool, not a string) inside :data:`FIGURE_RANGE`.
  Anything else is refused whole, with a reason naming the field.

Limits, honestly: the figures are measured in the process that runs the student's code, so a
submission can report any figure inside the bounds (a ``compute_score`` that returns made-up
numbers is not tampering the sandbox can see). The checks keep the board readable and the grader
safe, not the ranks true; measure the top submissions again on one machine (``TINYTORCH_IMPL=<their
katas folder> tinytorch submit``) before a rank decides anything.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

MODULE = "benchmarking"  # the registry name of module 20, whose grading runs the competition
EVENTS = ("MLP_SPRINT", "CNN_MARATHON", "TRANSFORMER_DECATHLON")  # module 20's EVENTS, in order
SCORE = "Score"  # the leaderboard column of the overall score
OUT_ENV = "TINYTORCH_LEADERBOARD_OUT"
FIGURES_FILE = "leaderboard.json"  # in the child's scratch folder
STAGED = "competition/test_competition.py"  # where the grader stages this file for the child
# The real file is about 120 bytes; 64 KiB leaves room for any honest formatting, and bounds
# what the grader reads from an untrusted writer.
MAX_FIGURES_BYTES = 64 * 1024
# A speedup or a score, inclusive: the local leaderboard's plausible range
# (tinytorch/course/leaderboard/entry.py FIGURE_RANGES["speedup"]): the course's optimizations give 1-100x
# on these models; a million times faster or slower is a broken clock or a typed-in number.
FIGURE_RANGE = (1e-6, 1e6)
SIGNIFICANT = 4  # digits of a value shown on the board: the quick run's noise is far above them


# --------------------------------------------------------------------------- the child's half


def _plain(value):
    """A figure as JSON can hold it, unchanged where it already can (the grader judges it)."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    try:
        return float(value)  # numpy scalars
    except (TypeError, ValueError, OverflowError):
        return repr(value)[:100]


def test_competition():
    """Run the submission's competition in quick mode and write its figures (run in the child)."""
    out = os.environ[OUT_ENV]
    from tinytorch.perf.benchmarking import TinyMLPerf, build_submission

    from tinytorch.course.leaderboard import QUICK_BUDGET

    submission = build_submission()
    bench = TinyMLPerf(warmup=1, runs=3, budget=QUICK_BUDGET)  # `tinytorch submit --quick`'s
    problems = submission.validate(bench)
    assert not problems, "the submission is not valid: " + "; ".join(map(str, problems))[:500]
    card = submission.compute_score(bench)
    counted = card.counted
    figures = {
        "score": _plain(card.score),
        "events": {str(name): _plain(value) for name, value in counted.items()},
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(figures, f)


# --------------------------------------------------------------------------- the grader's half


class FiguresError(ValueError):
    """A figures file the grader refuses (the reason names the field)."""


def _refuse_constant(name: str):
    raise FiguresError(f"the figures file holds {name}, not a number a leaderboard can show")


def _figure(value, field: str) -> float:
    # bool is an int; a huge int is compared as an int (float() of a 400-digit one overflows)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FiguresError(f"{field} must be a number, got {type(value).__name__}")
    low, high = FIGURE_RANGE
    if isinstance(value, float) and not math.isfinite(value):
        raise FiguresError(f"{field} must be finite")
    if not low <= value <= high:
        digits = len(str(abs(value))) if isinstance(value, int) else 0
        shown = (
            f"{value:.3g}" if not digits else f"an integer of {digits} digits" if digits > 20 else str(value)
        )
        raise FiguresError(f"{field} is {shown}, outside the plausible range [{low:g}, {high:g}]")
    return float(value)


def read_figures(path: str | os.PathLike) -> dict[str, float]:
    """The score and each event's speedup from the child's file, validated; ``FiguresError`` else.

    Returns ``{"Score": s, "MLP_SPRINT": ..., ...}`` in :data:`EVENTS` order."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise FiguresError(f"no figures were written ({error.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise FiguresError("the figures file is not a regular file")
        data = f.read(MAX_FIGURES_BYTES + 1)
    if len(data) > MAX_FIGURES_BYTES:
        raise FiguresError(f"the figures file is larger than {MAX_FIGURES_BYTES // 1024} KiB")
    try:
        figures = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except FiguresError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        # ValueError: not JSON, or an integer literal past Python's 4300-digit limit
        raise FiguresError(f"the figures file is not readable JSON ({str(error)[:120]})") from None
    if not isinstance(figures, dict) or set(figures) != {"score", "events"}:
        raise FiguresError('the figures must be exactly {"score": ..., "events": {...}}')
    events = figures["events"]
    if not isinstance(events, dict):
        raise FiguresError("events must map event names to speedups")
    unknown = sorted(str(name)[:40] for name in events if name not in EVENTS)
    if unknown:
        raise FiguresError(f"events names unknown event(s) {unknown}; the events are {list(EVENTS)}")
    missing = [name for name in EVENTS if name not in events]
    if missing:
        raise FiguresError(f"events lacks {missing}")
    result = {SCORE: _figure(figures["score"], "score")}
    result.update({name: _figure(events[name], f"events.{name}") for name in EVENTS})
    return result


def entries(figures: dict[str, float]) -> list[dict]:
    """Gradescope's ``leaderboard`` array of validated figures (:func:`read_figures`)."""
    return [
        {"name": name, "value": float(f"{value:.{SIGNIFICANT}g}"), "order": "desc"}
        for name, value in figures.items()
    ]


def describe(board: list[dict]) -> str:
    """One line for the summary: ``Score 3.21x, MLP_SPRINT 2.37x, ...``."""
    return ", ".join(f"{entry['name']} {entry['value']:g}x" for entry in board)


def stage(destination: Path) -> Path:
    """Copy this file where the child's pytest runs it (``<stage>/competition/test_competition.py``)."""
    target = Path(destination) / STAGED
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(Path(__file__).read_bytes())
    return target
