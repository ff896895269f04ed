"""The TinyMLPerf leaderboard: competition results kept in SQLite (standard library only).

Finished infrastructure for module 20 (benchmarking): a student's ``CompetitionSubmission``
turns its measured results into an :class:`Entry` and hands it to :meth:`Leaderboard.add`.

Where it lives. ``Leaderboard()`` opens ``$TINYTORCH_LEADERBOARD`` if set, else a per-user data
folder outside any checkout (:func:`default_path`): ``$XDG_DATA_HOME/tinytorch/leaderboard.sqlite3``
(``~/.local/share/...`` by default), ``~/Library/Application Support/tinytorch/...`` on macOS,
``%APPDATA%\\tinytorch\\...`` on Windows. Pass a path to keep a class's board anywhere.

Guarantees.

* An entry is checked in full before anything is written (:meth:`Entry.problems`): missing
  fields, NaN, infinite, zero or negative times, an unknown optimization, an event listed twice,
  a quality flag that contradicts its value and target, or a score that is not the geometric
  mean of the counted speedups. A rejected entry raises :class:`InvalidEntry` (a ``ValueError``)
  listing every reason, each naming its field, and the database is not touched.
* Figures are plausible measurements (:data:`FIGURE_RANGES`): a time between a nanosecond and
  a million seconds, a speedup between 1e-6 and 1e6; a 400-digit integer, a bool or a string in a
  figure is a reason like any other, never an ``OverflowError``.
* Texts are one line of visible text (:data:`TEXT_LIMITS`): a name and an author of at most 64
  characters; no control characters (``\\r`` or ``\\n`` would end a Markdown table row), no
  invisible format characters (zero-width, bidirectional overrides), no line or paragraph
  separators, no lone surrogates. Rendering escapes every text anyway (:func:`markdown_text`,
  ``html.escape``): a board written before these checks renders one row per entry too.
* One submission is one transaction (``BEGIN IMMEDIATE``: the write lock is taken before the
  first row): its submission row and its event rows land together or not at all. A process
  that crashes mid-submission leaves no partial rows (SQLite's journal rolls it back).
* Concurrent writers wait for each other (WAL journal, a busy timeout): two processes that
  submit at once both land.
* The schema carries a version (``PRAGMA user_version``, :data:`SCHEMA_VERSION`); a database
  written by a newer version is refused rather than misread, an older one is migrated in place
  (its entries keep every field and show "what ran" as not recorded).

Verified and unverified. An entry is ``verified`` only when the leaderboard's own process
measured it: ``tinytorch submit`` without ``--json`` runs the competition in a fresh interpreter
(``benchmarks/submit.py``) and records the score it measured. Every other way onto the board is
self-reported and recorded ``unverified``, whatever the entry says: ``tinytorch submit --json``
(figures from a file) and :meth:`Leaderboard.add`, the path of module 20's
``CompetitionSubmission.submit_to_leaderboard`` (figures from the caller's process).
``tinytorch leaderboard verify`` re-runs recorded entries from the code they name (``impl``, the
``TINYTORCH_IMPL`` of the run with every tree made an absolute folder) and records the score it
measures beside the claimed one, or why it could not (the folder is gone, the run failed). What
verified means and what it does not: who measured, not whether the code is honest. The
submission's own code runs in the measuring process and the database is a file its owner can
edit; the status tells a measurement from a figure someone typed or passed in, and a re-run
shows whether the code still gives the claimed score.

What ran. The optimizations a submission names are its own claim. ``tinytorch submit`` also
records what the code shows (:class:`CodeWatch`, :func:`observe`): which tree served each kata
module (``student``: katas/, ``reference``: solutions/, ``folder``: a folder ``TINYTORCH_IMPL``
names) and, per optimization, the code that ran while the submission was built and while each
event's model ran once more after the timed runs: module 19's cache or the foundation's own
(``GPT.forward`` with ``past_kv``), module 18's pruning, events that ran without a single forward
of the foundation's layers (fused inference), and so on (:data:`EVIDENCE`). The board shows
both next to the names, with the date (UTC) and the machine (CPU model, cores, OS, numpy's BLAS
and the kernels it runs; no host or user name).

Rendering: :meth:`Leaderboard.to_markdown` (a table for a README or a terminal) and
:meth:`Leaderboard.to_html` (one self-contained static page, no scripts, no external files,
every value escaped). The CLI shows it with ``tinytorch leaderboard`` and submits with
``tinytorch submit``.
"""

from __future__ import annotations

import html
import json
import math
import numbers
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "ENV_VAR",
    "EVIDENCE",
    "OPTIMIZATIONS",
    "SCHEMA_VERSION",
    "CodeWatch",
    "Entry",
    "EventRecord",
    "InvalidEntry",
    "Leaderboard",
    "blas_kernel",
    "blas_summary",
    "cpu_model",
    "default_path",
    "format_interval",
    "geometric_mean",
    "kata_module_of",
    "machine_description",
    "observe",
    "served_modules",
    "tie_ranks",
    "watch_events",
]

SCHEMA_VERSION = 4
ENV_VAR = "TINYTORCH_LEADERBOARD"
FILE_NAME = "leaderboard.sqlite3"

# The optimizations a submission may name: modules 16-19 of the course.
OPTIMIZATIONS: dict[str, str] = {
    "optimized-backend": "module 16: an OptimizedBackend dispatching every product to a fast kernel",
    "blocked-matmul": "module 16: tiled matrix products",
    "fused-inference": "module 16: a numpy-only inference path (no autograd graph, fused layers)",
    "int8-quantization": "module 17: INT8 weights with int32 accumulation",
    "magnitude-pruning": "module 18: unstructured magnitude pruning",
    "structured-pruning": "module 18: whole filters / hidden units removed, layers shrunk",
    "sparse-csr": "module 18: CSR weights with a sparse kernel",
    "kv-cache": "module 19: a preallocated key/value cache for generation",
}

# What shows that an optimization ran: optimization -> (the kata module, the functions of it whose
# running shows it). The names are the stubs', the same in every student's tree. fused-inference
# has no function of its own: it shows as events whose model ran without one forward of the
# foundation's layers (FOUNDATION_LAYERS). kv-cache may also be served by the foundation's own
# cache (GPT.forward with past_kv), which is recorded as such, not as module 19.
EVIDENCE: dict[str, tuple[str, tuple[str, ...]]] = {
    "optimized-backend": ("acceleration", ("OptimizedBackend.dispatch",)),
    "blocked-matmul": ("acceleration", ("matmul_blocked",)),
    "int8-quantization": (
        "quantization",
        ("QuantizedLinear.forward", "QuantizedConv2d.forward", "int8_matmul"),
    ),
    "magnitude-pruning": ("compression", ("prune_model", "magnitude_prune", "global_magnitude_masks")),
    "structured-pruning": (
        "compression",
        ("prune_structured", "prune_filters", "prune_neurons", "prune_conv_filters", "prune_linear_units"),
    ),
    "sparse-csr": ("compression", ("SparseLinear.forward", "csr_matmul")),
    "kv-cache": ("caching", ("KVCache.__init__", "cached_attention", "cached_forward", "generate")),
}
FOUNDATION_LAYERS = ("layers.py", "conv.py", "attention.py", "transformer.py")
FOUNDATION_CACHE = "the foundation's cache, not module 19"
NOT_SEEN = "not seen"
NOT_RECORDED = "not recorded"
# Which tree served a kata module: katas/ (the student's), solutions/ (the reference), a folder.
SOURCES = ("student", "reference", "folder")

# Relative tolerance when checking that a score is the geometric mean of its speedups: the score
# and the speedups are float64 and go through exp/log, a few ulps of error each.
SCORE_RTOL = 1e-9

# Plausible figures, (low, high) inclusive. Times: a timer ticks in nanoseconds at best, and no
# event of the competition runs for 11 days (1e6 s). Speedups and scores: the course's
# optimizations give 1-100x on these models; a million times faster (or slower) than the
# unoptimized model is not a measurement of them but a broken clock or a typed-in number.
FIGURE_RANGES: dict[str, tuple[float, float]] = {
    "seconds": (1e-9, 1e6),
    "speedup": (1e-6, 1e6),
}
# A quality value or target (accuracy, a fraction of identical tokens, ...) is a finite number of
# sane size; created_at a time in seconds since the epoch, before the year 5000.
QUALITY_LIMIT = 1e12
LATEST_TIME = 95_617_584_000.0  # 5000-01-01 UTC

# Longest texts, in characters (code points): a name and an author fill a board column, not a
# paragraph; the rest are written by the machinery (machine, what ran, impl paths) or free notes.
TEXT_LIMITS: dict[str, int] = {
    "name": 64,
    "author": 64,
    "event": 64,
    "quality_metric": 64,
    "reason": 500,
    "notes": 2000,
    "machine": 300,
    "impl": 4096,
    "remeasure_note": 500,
    "observed": 200,  # each key and each value
    "served": 200,
}
# Unicode categories no text of an entry may hold: control characters (Cc: \r, \n, \t, NUL,
# the escape of a terminal colour code), format characters (Cf: zero-width spaces and joiners,
# bidirectional overrides that reorder what a reader sees), lone surrogates (Cs: not encodable
# in UTF-8, so SQLite cannot store them) and the line and paragraph separators (Zl, Zp).
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class InvalidEntry(ValueError):
    """A leaderboard entry that cannot be recorded; ``reasons`` lists every problem found."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("invalid submission: " + "; ".join(self.reasons))


def geometric_mean(values: Iterable[float]) -> float:
    """(prod v)^(1/n) = exp(mean(log v)) of positive numbers (the leaderboard's own check)."""
    values = list(values)
    if not values:
        raise ValueError("geometric_mean of no values")
    return math.exp(math.fsum(math.log(v) for v in values) / len(values))


def format_interval(
    value: float, low: float | None = None, high: float | None = None, digits: int = 2
) -> str:
    """A speedup or a score with its interval, as every board and report shows it:
    ``2.37× (2.30–2.45)``; without an interval (an entry recorded before intervals), ``2.37×``."""
    text = f"{value:.{digits}f}\u00d7"
    if low is None or high is None:
        return text
    return f"{text} ({low:.{digits}f}\u2013{high:.{digits}f})"


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _described(value: Any) -> str:
    """A value for a message: an integer too long to print is described by its length."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + "..." + text[-10:]


def figure_problem(
    field_name: str, value: Any, low: float | None = None, high: float | None = None, positive: bool = False
) -> str | None:
    """Why ``value`` cannot be the figure ``field_name`` (None when it can): it must be a real
    number (not a bool, not a string), representable as a float64 (a 400-digit integer is not),
    finite, > 0 when ``positive``, and within [low, high] when given."""
    if not _is_real(value):
        return f"{field_name} must be a number, got {type(value).__name__}"
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return f"{field_name} must be a number a float can hold, got {_described(value)}"
    if not math.isfinite(number) or (positive and number <= 0):
        wanted = "finite and > 0" if positive else "a finite number"
        return f"{field_name} must be {wanted}, got {_described(value)}"
    if (low is not None and number < low) or (high is not None and number > high):
        return (
            f"{field_name} = {number:.3g} is not a plausible measurement: expected "
            f"{low if low is not None else '-inf':g} to {high if high is not None else 'inf':g}"
        )
    return None


def text_problem(field_name: str, value: Any, required: bool = False, newlines: bool = False) -> str | None:
    """Why ``value`` cannot be the text ``field_name`` (None when it can): a string of at most
    ``TEXT_LIMITS[field_name]`` characters, without the characters of
    :data:`FORBIDDEN_CATEGORIES` (``newlines``: ``\\n`` and ``\\t`` allowed, for free notes);
    ``required``: not blank."""
    if not isinstance(value, str):
        if required:
            return f"missing field {field_name!r}: a non-empty string is required"
        return f"{field_name} must be a string, got {type(value).__name__}"
    if required and not value.strip():
        return f"missing field {field_name!r}: a non-empty string is required"
    limit = TEXT_LIMITS.get(field_name)
    if limit is not None and len(value) > limit:
        return f"{field_name} is {len(value)} characters long; at most {limit} are allowed"
    for position, char in enumerate(value):
        if newlines and char in "\n\t":
            continue
        category = unicodedata.category(char)
        if category in FORBIDDEN_CATEGORIES:
            return (
                f"{field_name} holds the invisible or line-breaking character U+{ord(char):04X} "
                f"({unicodedata.name(char, category)}) at position {position}: one line of visible text "
                "is allowed"
            )
    return None


def _interval_problems(where: str, name: str, value: Any, low: Any, high: Any) -> list[str]:
    """Why (``low``, ``high``) cannot be the interval of the figure ``name`` = ``value``: both
    absent, or both plausible figures with low <= value <= high."""
    if low is None and high is None:
        return []
    if low is None or high is None:
        return [f"{where}: {name}_low and {name}_high come together (one of them is missing)"]
    found = [
        f"{where}: {why}"
        for bound, number in ((f"{name}_low", low), (f"{name}_high", high))
        if (why := figure_problem(bound, number, *FIGURE_RANGES["speedup"], positive=True))
    ]
    if not found and _is_real(value) and not float(low) <= float(value) <= float(high):
        found.append(f"{where}: {name} {value!r} lies outside its interval [{low!r}, {high!r}]")
    return found


@dataclass(frozen=True)
class EventRecord:
    """One event of a submission: its times (seconds, medians measured in the same run), the
    speedup ``baseline_seconds / candidate_seconds`` and its quality gate."""

    event: str
    baseline_seconds: float
    candidate_seconds: float
    speedup: float
    quality_metric: str
    quality_value: float
    quality_target: float
    passed: bool
    reason: str = ""
    # the speedup's 95 % interval (None: recorded before intervals, or self-reported without);
    # with one, ``speedup`` is the median per-round ratio, which lies inside it
    speedup_low: float | None = None
    speedup_high: float | None = None

    @property
    def bounds(self) -> tuple[float, float] | None:
        """(low, high) of the speedup, or None without an interval."""
        if self.speedup_low is None or self.speedup_high is None:
            return None
        return (float(self.speedup_low), float(self.speedup_high))

    @property
    def counted_bounds(self) -> tuple[float, float]:
        """The interval of :attr:`counted`: (1, 1) for a failed gate, the point speedup without one."""
        if not self.passed:
            return (1.0, 1.0)
        return self.bounds or (float(self.speedup), float(self.speedup))

    def problems(self) -> list[str]:
        named = isinstance(self.event, str) and self.event and text_problem("event", self.event) is None
        where = f"event {self.event!r}" if named else "an event"
        found = []
        if not isinstance(self.event, str) or not self.event:
            found.append("an event has no name")
        elif not named:
            found.append(f"an event's name: {text_problem('event', self.event)}")
        figures = [
            figure_problem(name, getattr(self, name), *FIGURE_RANGES[kind], positive=True)
            for name, kind in (
                ("baseline_seconds", "seconds"),
                ("candidate_seconds", "seconds"),
                ("speedup", "speedup"),
            )
        ]
        found += [f"{where}: {why}" for why in figures if why]
        interval = _interval_problems(where, "speedup", self.speedup, self.speedup_low, self.speedup_high)
        found += interval
        if not any(figures) and not interval:
            b, c, s = float(self.baseline_seconds), float(self.candidate_seconds), float(self.speedup)
            if self.bounds is None and not math.isclose(s, b / c, rel_tol=SCORE_RTOL):
                found.append(f"{where}: speedup {s!r} is not baseline/candidate = {b / c!r}")
        if not isinstance(self.quality_metric, str) or not self.quality_metric:
            found.append(f"{where}: quality_metric must be a non-empty string")
        else:
            why = text_problem("quality_metric", self.quality_metric)
            found += [f"{where}: {why}"] if why else []
        quality = {}
        for name in ("quality_value", "quality_target"):
            why = figure_problem(name, getattr(self, name), -QUALITY_LIMIT, QUALITY_LIMIT)
            found += [f"{where}: {why}"] if why else []
            quality[name] = None if why else float(getattr(self, name))
        if not isinstance(self.passed, bool):
            found.append(f"{where}: passed must be a bool, got {type(self.passed).__name__}")
        elif None not in quality.values():
            if self.passed != (quality["quality_value"] >= quality["quality_target"]):
                found.append(
                    f"{where}: passed={self.passed} contradicts quality {self.quality_value!r} "
                    f"against target {self.quality_target!r}"
                )
            if not self.passed and not (isinstance(self.reason, str) and self.reason):
                found.append(f"{where}: a failed quality gate must say why (reason is empty)")
        why = text_problem("reason", self.reason)
        found += [f"{where}: {why}"] if why else []
        return found

    @property
    def counted(self) -> float:
        """The speedup that enters the score: the measured one if the quality gate held, else 1."""
        return self.speedup if self.passed else 1.0


@dataclass(frozen=True)
class Entry:
    """One submission to the leaderboard (``id`` and ``created_at`` are set when it is added)."""

    name: str
    author: str
    score: float
    optimizations: tuple[str, ...]
    events: tuple[EventRecord, ...]
    impl: str = ""
    machine: str = ""
    notes: str = ""
    # what ran (see the module docstring): optimization -> what showed it, and kata module ->
    # the tree that served it (student, reference, folder); empty: not recorded
    observed: Mapping[str, str] = field(default_factory=dict)
    served: Mapping[str, str] = field(default_factory=dict)
    id: int | None = None
    created_at: float | None = None
    # the score's 95 % interval: the geometric means of the counted events' lows and highs
    # (None: recorded before intervals)
    score_low: float | None = None
    score_high: float | None = None
    # Set by the board, never by a submitter (see "Verified and unverified" above): the board
    # records what Leaderboard.add is given as unverified, and only `tinytorch submit`'s own
    # measurement as verified; `tinytorch leaderboard verify` records the score it re-measured
    # (None: not re-measured, or it failed) and when, or why it could not (remeasure_note).
    verified: bool = False
    remeasured_score: float | None = None
    remeasured_at: float | None = None
    remeasure_note: str = ""

    def problems(self) -> list[str]:
        """Every reason this entry cannot be recorded (empty when it can), each naming its field."""
        found = []
        for name in ("name", "author"):
            why = text_problem(name, getattr(self, name), required=True)
            found += [why] if why else []
        for name in ("impl", "machine", "remeasure_note"):
            why = text_problem(name, getattr(self, name))
            found += [why] if why else []
        why = text_problem("notes", self.notes, newlines=True)
        found += [why] if why else []
        for name in ("observed", "served"):
            value = getattr(self, name)
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                found.append(f"{name} must map names to strings, got {_described(value)}")
                continue
            found += [why for text in (*value, *value.values()) if (why := text_problem(name, text))][:1]
            if name == "observed" and any(k not in OPTIMIZATIONS for k in value):
                found.append(
                    f"observed names an unknown optimization: {sorted(set(value) - set(OPTIMIZATIONS))}"
                )
        for name in ("created_at", "remeasured_at"):
            value = getattr(self, name)
            if value is not None and figure_problem(name, value, 0.0, LATEST_TIME):
                found.append(
                    f"{name} must be absent or a time in seconds since the epoch, got {_described(value)}"
                )
        if self.remeasured_score is not None:
            why = figure_problem("remeasured_score", self.remeasured_score, *FIGURE_RANGES["speedup"], True)
            found += [why] if why else []
        if not isinstance(self.verified, bool):
            found.append(f"verified must be a bool, got {type(self.verified).__name__}")
        if self.id is not None and (
            isinstance(self.id, bool) or not isinstance(self.id, int) or not 0 < self.id < 2**63
        ):
            found.append(f"id must be absent or a positive int, got {_described(self.id)}")
        optimizations = self.optimizations
        if isinstance(optimizations, str) or not isinstance(optimizations, Sequence) or not optimizations:
            found.append("missing field 'optimizations': name at least one, e.g. 'kv-cache'")
        else:
            for opt in optimizations:
                if not isinstance(opt, str) or opt not in OPTIMIZATIONS:
                    found.append(f"unknown optimization {_described(opt)}; known: {', '.join(OPTIMIZATIONS)}")
            named = [opt for opt in optimizations if isinstance(opt, str)]
            if len(set(named)) != len(named):
                found.append("an optimization is listed twice")
        events = self.events
        if isinstance(events, str) or not isinstance(events, Sequence) or not events:
            found.append("missing field 'events': a submission reports at least one event")
            events = ()
        names = [e.event for e in events if isinstance(e, EventRecord) and isinstance(e.event, str)]
        if len(set(names)) != len(names):
            found.append("an event is listed twice")
        for record in events:
            if not isinstance(record, EventRecord):
                found.append(f"events must be EventRecords, got {type(record).__name__}")
            else:
                found.extend(record.problems())
        why = figure_problem("score", self.score, *FIGURE_RANGES["speedup"], positive=True)
        interval = [] if why else _interval_problems("the entry", "score", self.score, *self._bounds_given())
        found += interval
        if why:
            found.append(why)
        elif events and not found and self.bounds is not None:
            lows, highs = zip(*(record.counted_bounds for record in events), strict=True)
            expected = (geometric_mean(lows), geometric_mean(highs))
            pairs = zip(self.bounds, expected, strict=True)
            if not all(math.isclose(a, b, rel_tol=SCORE_RTOL) for a, b in pairs):
                found.append(
                    f"score interval {self.bounds!r} is not the geometric means of the counted "
                    f"events' bounds {expected!r}"
                )
        if events and not found:
            expected = geometric_mean(float(record.counted) for record in events)
            if not math.isclose(float(self.score), expected, rel_tol=SCORE_RTOL):
                found.append(
                    f"score {self.score!r} is not the geometric mean of the counted speedups ({expected!r})"
                )
        return found

    def _bounds_given(self) -> tuple[Any, Any]:
        return (self.score_low, self.score_high)

    @property
    def bounds(self) -> tuple[float, float] | None:
        """(low, high) of the score, or None without an interval."""
        if self.score_low is None or self.score_high is None:
            return None
        return (float(self.score_low), float(self.score_high))

    def check(self) -> Entry:
        """This entry if it is valid; :class:`InvalidEntry` with every reason otherwise."""
        found = self.problems()
        if found:
            raise InvalidEntry(found)
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the format of ``tinytorch submit --json``)."""
        record = asdict(self)
        record["optimizations"] = list(self.optimizations)
        record["observed"], record["served"] = dict(self.observed), dict(self.served)
        record["events"] = [asdict(e) for e in self.events]
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Entry:
        """An entry from :meth:`to_dict`'s format; :class:`InvalidEntry` for a missing or unknown
        field (the values are checked by :meth:`check`)."""
        if not isinstance(record, Mapping):
            raise InvalidEntry([f"a submission must be a JSON object, got {type(record).__name__}"])
        known = {f.name: f for f in fields(cls)}
        required = {name for name, f in known.items() if f.default is MISSING}
        reasons = [f"missing field {k!r}" for k in sorted(required - set(record))]
        reasons += [f"unknown field {k!r}" for k in sorted(set(record) - set(known))]
        events = record.get("events", [])
        if not isinstance(events, list):
            reasons.append("events must be a list")
            events = []
        event_fields = set(EventRecord.__dataclass_fields__)
        records = []
        for i, e in enumerate(events):
            if not isinstance(e, Mapping):
                reasons.append(f"event {i} must be an object")
                continue
            missing = event_fields - {"reason", "speedup_low", "speedup_high"} - set(e)
            unknown = set(e) - event_fields
            if missing or unknown:
                reasons.append(f"event {i}: missing {sorted(missing)}, unknown {sorted(unknown)}")
                continue
            records.append(EventRecord(**e))
        if reasons:
            raise InvalidEntry(reasons)
        optimizations = record["optimizations"]
        return cls(
            **{k: v for k, v in record.items() if k not in ("events", "optimizations")},
            optimizations=tuple(optimizations) if isinstance(optimizations, list) else optimizations,
            events=tuple(records),
        )


def default_path() -> Path:
    """``$TINYTORCH_LEADERBOARD``, else the per-user data folder's ``tinytorch/leaderboard.sqlite3``."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":  # pragma: no cover - platform specific
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":  # pragma: no cover - platform specific
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "tinytorch" / FILE_NAME


_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL CHECK (length(name) > 0),
    author        TEXT NOT NULL CHECK (length(author) > 0),
    score         REAL NOT NULL CHECK (score > 0),
    optimizations TEXT NOT NULL,
    impl          TEXT NOT NULL DEFAULT '',
    machine       TEXT NOT NULL DEFAULT '',
    notes         TEXT NOT NULL DEFAULT '',
    created_at    REAL NOT NULL,
    n_events      INTEGER NOT NULL CHECK (n_events > 0)
);
CREATE TABLE IF NOT EXISTS events (
    submission_id     INTEGER NOT NULL REFERENCES submissions(id) ON DELETE CASCADE,
    event             TEXT NOT NULL,
    baseline_seconds  REAL NOT NULL CHECK (baseline_seconds > 0),
    candidate_seconds REAL NOT NULL CHECK (candidate_seconds > 0),
    speedup           REAL NOT NULL CHECK (speedup > 0),
    quality_metric    TEXT NOT NULL,
    quality_value     REAL NOT NULL,
    quality_target    REAL NOT NULL,
    passed            INTEGER NOT NULL CHECK (passed IN (0, 1)),
    reason            TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (submission_id, event)
);
CREATE INDEX IF NOT EXISTS submissions_by_score ON submissions(score DESC);
"""

# version -> the statements that bring a database of the version before it up to it. _SCHEMA
# is version 1 and stays as it was, so a new database and a migrated one end up alike.
_MIGRATIONS = {
    2: """
ALTER TABLE submissions ADD COLUMN observed TEXT NOT NULL DEFAULT '{}';
ALTER TABLE submissions ADD COLUMN served TEXT NOT NULL DEFAULT '{}'
""",
    # who measured (1: the board's own `tinytorch submit`; entries of older boards are
    # unverified) and the last re-measurement of `tinytorch leaderboard verify`
    3: """
ALTER TABLE submissions ADD COLUMN verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1));
ALTER TABLE submissions ADD COLUMN remeasured_score REAL
    CHECK (remeasured_score IS NULL OR remeasured_score > 0);
ALTER TABLE submissions ADD COLUMN remeasured_at REAL;
ALTER TABLE submissions ADD COLUMN remeasure_note TEXT NOT NULL DEFAULT ''
""",
    # 95 % intervals of the score and of each event's speedup (NULL: recorded before them)
    4: """
ALTER TABLE submissions ADD COLUMN score_low REAL CHECK (score_low IS NULL OR score_low > 0);
ALTER TABLE submissions ADD COLUMN score_high REAL CHECK (score_high IS NULL OR score_high > 0);
ALTER TABLE events ADD COLUMN speedup_low REAL CHECK (speedup_low IS NULL OR speedup_low > 0);
ALTER TABLE events ADD COLUMN speedup_high REAL CHECK (speedup_high IS NULL OR speedup_high > 0)
""",
}


class Leaderboard:
    """The leaderboard database at ``path`` (default :func:`default_path`), created on first use.

    >>> board = Leaderboard("/tmp/class.sqlite3")
    >>> board.add(entry)          # the new entry's id; InvalidEntry leaves the board unchanged
    >>> print(board.to_markdown())
    """

    def __init__(self, path: str | os.PathLike | None = None, timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.timeout = float(timeout)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            self._migrate(db)

    def _connect(self) -> _Connection:
        return _Connection(self.path, self.timeout)

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: leaderboard schema version {version} is newer than this tinytorch "
                    f"understands ({SCHEMA_VERSION}); upgrade tinytorch or use another file"
                )
            if version < 1:
                db.executescript_in_transaction(_SCHEMA)
            for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                db.executescript_in_transaction(_MIGRATIONS[step])
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        with self._connect() as db:
            return db.execute("PRAGMA user_version").fetchone()[0]

    def add(self, entry: Entry, _fault: Callable[[], None] | None = None) -> int:
        """Record ``entry`` in one transaction and return its id.

        The entry is self-reported: recorded unverified and not re-measured, whatever its
        ``verified`` and ``remeasured_*`` fields say (only ``tinytorch submit``'s own measurement
        is recorded verified, and only ``tinytorch leaderboard verify`` re-measures). Raises
        :class:`InvalidEntry` (nothing written) when :meth:`Entry.problems` finds any.
        ``_fault`` is for tests: called between the submission row and its event rows, it
        simulates a crash in the middle of a submission.
        """
        return self._add(entry, verified=False, _fault=_fault)

    def _add(self, entry: Entry, verified: bool, _fault: Callable[[], None] | None = None) -> int:
        """:meth:`add`, recording ``verified`` as given (``cli_submit``'s measured path)."""
        if not isinstance(entry, Entry):
            raise TypeError(f"entry must be a leaderboard Entry, got {type(entry).__name__}")
        entry.check()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                cursor = db.execute(
                    "INSERT INTO submissions (name, author, score, optimizations, impl, machine, notes, "
                    "observed, served, created_at, n_events, verified, score_low, score_high) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        entry.name.strip(),
                        entry.author.strip(),
                        float(entry.score),
                        json.dumps(list(entry.optimizations)),
                        entry.impl,
                        entry.machine,
                        entry.notes,
                        json.dumps(dict(entry.observed)),
                        json.dumps(dict(entry.served)),
                        time.time() if entry.created_at is None else float(entry.created_at),
                        len(entry.events),
                        int(bool(verified)),
                        *(entry.bounds or (None, None)),
                    ),
                )
                submission_id = int(cursor.lastrowid)
                if _fault is not None:
                    _fault()
                db.executemany(
                    "INSERT INTO events (submission_id, event, baseline_seconds, candidate_seconds, speedup, "
                    "quality_metric, quality_value, quality_target, passed, reason, speedup_low, "
                    "speedup_high) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            submission_id,
                            e.event,
                            float(e.baseline_seconds),
                            float(e.candidate_seconds),
                            float(e.speedup),
                            e.quality_metric,
                            float(e.quality_value),
                            float(e.quality_target),
                            int(e.passed),
                            e.reason,
                            *(e.bounds or (None, None)),
                        )
                        for e in entry.events
                    ],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return submission_id

    def entries(self, limit: int | None = None) -> list[Entry]:
        """Every complete entry, best score first (ties: earlier first)."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        with self._connect() as db:
            db.execute("BEGIN")  # one consistent snapshot for both queries
            rows = db.execute(
                "SELECT s.* FROM submissions s WHERE s.n_events = "
                "(SELECT count(*) FROM events e WHERE e.submission_id = s.id) "
                "ORDER BY s.score DESC, s.created_at, s.id" + (f" LIMIT {int(limit)}" if limit else "")
            ).fetchall()
            events: dict[int, list[EventRecord]] = {}
            for row in db.execute("SELECT * FROM events ORDER BY submission_id, rowid"):
                record = {k: row[k] for k in row.keys() if k != "submission_id"}
                record["passed"] = bool(record["passed"])
                events.setdefault(row["submission_id"], []).append(EventRecord(**record))
            db.execute("COMMIT")
        return [
            Entry(
                name=r["name"],
                author=r["author"],
                score=r["score"],
                optimizations=tuple(json.loads(r["optimizations"])),
                events=tuple(events.get(r["id"], ())),
                impl=r["impl"],
                machine=r["machine"],
                notes=r["notes"],
                observed=_json_map(r["observed"]),
                served=_json_map(r["served"]),
                id=r["id"],
                created_at=r["created_at"],
                verified=bool(r["verified"]),
                remeasured_score=r["remeasured_score"],
                remeasured_at=r["remeasured_at"],
                remeasure_note=r["remeasure_note"],
                score_low=r["score_low"],
                score_high=r["score_high"],
            )
            for r in rows
        ]

    def _record_remeasurement(
        self, entry_id: int, score: float | None, note: str = "", at: float | None = None
    ) -> None:
        """Record what ``tinytorch leaderboard verify`` measured for entry ``entry_id``: the score
        (None when it could not measure one) and ``note`` (why not; "" when it did), at ``at``
        (default: now). The claimed score and the status stay as they were."""
        if score is not None:
            why = figure_problem("remeasured_score", score, *FIGURE_RANGES["speedup"], positive=True)
            if why:
                raise InvalidEntry([why])
        why = text_problem("remeasure_note", note)
        if why:
            raise InvalidEntry([why])
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                cursor = db.execute(
                    "UPDATE submissions SET remeasured_score = ?, remeasured_at = ?, remeasure_note = ? "
                    "WHERE id = ?",
                    (
                        None if score is None else float(score),
                        time.time() if at is None else at,
                        note,
                        entry_id,
                    ),
                )
                if cursor.rowcount != 1:
                    raise KeyError(f"no submission with id {entry_id}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT count(*) FROM submissions").fetchone()[0]

    def integrity_problems(self) -> list[str]:
        """SQLite's own integrity check plus ours: every submission has exactly its events."""
        with self._connect() as db:
            found = [row[0] for row in db.execute("PRAGMA integrity_check") if row[0] != "ok"]
            for sid, n, have in db.execute(
                "SELECT s.id, s.n_events, (SELECT count(*) FROM events e WHERE e.submission_id = s.id) "
                "FROM submissions s"
            ):
                if n != have:
                    found.append(f"submission {sid}: {have} event rows, expected {n}")
            orphans = db.execute(
                "SELECT count(*) FROM events WHERE submission_id NOT IN (SELECT id FROM submissions)"
            ).fetchone()[0]
            if orphans:
                found.append(f"{orphans} event rows without a submission")
        return found

    # ------------------------------------------------------------------ rendering

    def event_names(self, entries: Sequence[Entry]) -> list[str]:
        names: list[str] = []
        for entry in entries:
            names.extend(e.event for e in entry.events if e.event not in names)
        return names

    def to_markdown(self, limit: int | None = None) -> str:
        """The board as a Markdown table: rank, name, author, score, its status (verified or
        not) and the re-measured score, each event's speedup, the optimizations with what ran,
        the code's trees, the date (UTC) and the machine. Every text is escaped
        (:func:`markdown_text`): each entry is one row, and no HTML or link of a submitter's
        renders."""
        entries = self.entries(limit)
        if not entries:
            return "_The leaderboard is empty: submit with `tinytorch submit`._\n"
        events = self.event_names(entries)
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

    def to_html(self, limit: int | None = None, title: str = "TinyMLPerf leaderboard") -> str:
        """The board as one self-contained static HTML page (inline CSS, no scripts, escaped)."""
        entries = self.entries(limit)
        events = self.event_names(entries)
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


def _json_map(text: str) -> dict[str, str]:
    """A stored name -> text map; {} (not recorded) for anything else."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


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
    "with the date (UTC), beside the claimed score; or why it could not (`folder gone`, `failed`); "
    "`-`: not re-run."
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
        remeasured = f"{entry.remeasured_score:.2f}x ({when})"
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


def _module_numbers() -> dict[str, int]:
    """Kata module name -> number, from the registry (none when it cannot be read)."""
    try:
        from tinytorch.course import registry

        return {m.name: m.number for m in registry.modules()}
    except Exception:  # a board is shown from its database alone, even outside a checkout
        return {}


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


class _Connection:
    """A sqlite3 connection opened for one operation and always closed (a context manager).

    Autocommit mode (``isolation_level=None``): transactions are explicit ``BEGIN``/``COMMIT``.
    WAL lets readers run while a writer commits; ``busy_timeout`` makes a second writer wait.
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA synchronous = FULL")

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self.db.executemany(sql, rows)

    def executescript_in_transaction(self, script: str) -> None:
        """Run ``;``-separated statements one by one (``executescript`` would COMMIT first)."""
        for statement in script.split(";"):
            if statement.strip():
                self.db.execute(statement)


# ------------------------------------------------------------------ what ran and where


class CodeWatch:
    """The Python functions that run inside a ``with`` block, as code objects.

    ``sys.settrace`` with a global function that only notes each new frame and returns None (no
    line events): a few times slower for Python calls, so it watches one untimed run, never a
    timed one. ``foundation_cache`` is True once ``GPT.forward`` ran with a ``past_kv``.
    """

    def __init__(self) -> None:
        self.codes: set[Any] = set()
        self.foundation_cache = False
        self._previous: Any = None

    def __enter__(self) -> CodeWatch:
        from tinytorch.transformer import GPT

        gpt_forward, codes = GPT.forward.__code__, self.codes

        def call(frame: Any, event: str, arg: Any) -> None:
            code = frame.f_code
            codes.add(code)
            if code is gpt_forward and frame.f_locals.get("past_kv") is not None:
                self.foundation_cache = True

        self._previous = sys.gettrace()
        sys.settrace(call)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self._previous)

    def kata_functions(self) -> set[tuple[str, str]]:
        """(kata module, qualified name) of every function of a loaded kata module that ran."""
        folders = _kata_folders()
        found = set()
        for code in self.codes:
            module = _kata_module_of(code.co_filename, folders)
            if module is not None:
                found.add((module, code.co_qualname))
        return found

    def used_foundation_layers(self) -> bool:
        """True when a forward of the foundation's layers (tinytorch/layers.py, conv.py, ...) ran."""
        package = Path(__file__).resolve().parents[1]  # tinytorch/
        layer_files = {str(package / name) for name in FOUNDATION_LAYERS}
        return any(
            code.co_name in ("forward", "__call__") and str(Path(code.co_filename).resolve()) in layer_files
            for code in self.codes
        )


def _kata_folders() -> dict[Path, tuple[str, str]]:
    """The folder of every kata module loaded in this process -> (module name, source)."""
    from tinytorch.course import registry

    try:
        root = registry.repo_root()
    except FileNotFoundError:  # no checkout (the grader's stage): every module comes from a folder
        root = None
    found = {}
    for module in registry.modules():
        paths = getattr(sys.modules.get(f"tinytorch.perf.{module.name}"), "__path__", None)
        if not paths:
            continue
        folder = Path(paths[0]).resolve()
        if root is None:
            source = "folder"
        elif folder == (root / module.kata).resolve():
            source = "student"
        elif folder == (root / module.solution).resolve():
            source = "reference"
        else:
            source = "folder"
        found[folder] = (module.name, source)
    return found


def _kata_module_of(filename: str, folders: Mapping[Path, tuple[str, str]]) -> str | None:
    path = Path(filename).resolve()
    return next((name for folder, (name, _) in folders.items() if folder in path.parents), None)


def kata_module_of(filename: str) -> str | None:
    """The kata module whose loaded folder holds ``filename``, None for any other file."""
    return _kata_module_of(filename, _kata_folders())


def served_modules() -> dict[str, str]:
    """Kata module -> the tree that served it (student, reference, folder), for every kata
    module loaded in this process."""
    return {name: source for name, source in sorted(_kata_folders().values())}


def watch_events(benchmark: Any, models: Mapping[str, Any]) -> dict[str, CodeWatch]:
    """Run each event's model once (``benchmark.event(name).run(model)``, untimed) under a
    :class:`CodeWatch`; event name -> its watch. An exception of a model propagates."""
    watches = {}
    for name in benchmark.events:
        if name in models:
            with CodeWatch() as watch:
                benchmark.event(name).run(models[name])
            watches[name] = watch
    return watches


def observe(
    named: Sequence[str], runs: Mapping[str, CodeWatch], build: CodeWatch | None = None
) -> dict[str, str]:
    """What ran, per optimization: every optimization ``named`` by the submission and every other
    one whose code ran, in :data:`OPTIMIZATIONS`' order, each -> a short text.

    ``runs``: a watch per event (:func:`watch_events`); ``build``: the watch around building the
    submission (pruning runs then), if there was one. The texts: ``student module 19`` (the tree
    that served the code that ran, and its module), the foundation's cache (``GPT.forward`` with
    ``past_kv``), the events that ran without the foundation's layers (fused inference), or
    ``not seen``.
    """
    watches = [*runs.values(), *([build] if build is not None else [])]
    ran: set[tuple[str, str]] = set().union(*(w.kata_functions() for w in watches)) if watches else set()
    sources = served_modules()
    numbers = _module_numbers()
    seen: dict[str, str] = {}
    for optimization, (module, functions) in EVIDENCE.items():
        if any((module, function) in ran for function in functions):
            seen[optimization] = f"{sources.get(module, 'unknown')} module {numbers.get(module, module)}"
    if "kv-cache" not in seen and any(w.foundation_cache for w in runs.values()):
        seen["kv-cache"] = FOUNDATION_CACHE
    fused = [name for name, watch in runs.items() if not watch.used_foundation_layers()]
    if fused:
        seen["fused-inference"] = f"{', '.join(fused)} without the foundation's layers"
    return {name: seen.get(name, NOT_SEEN) for name in OPTIMIZATIONS if name in seen or name in named}


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, sysctl on macOS), else platform's guess."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value and not value.isdigit():
                    return value
    except OSError:
        pass
    if sys.platform == "darwin":  # pragma: no cover - platform specific
        import subprocess

        done = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, check=False
        )
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return platform.processor() or platform.machine() or "unknown"


# The BLAS libraries numpy may load, by a word of the file name (threadpoolctl's prefixes).
_BLAS_FILE_WORDS = (
    ("openblas", "OpenBLAS"),
    ("mkl_rt", "MKL"),
    ("flexiblas", "FlexiBLAS"),
    ("blis", "BLIS"),
    ("accelerate", "Accelerate"),
)
# scipy-openblas (numpy's wheels) renames its symbols, e.g. scipy_openblas_get_corename64_: every
# prefix and suffix threadpoolctl's OpenBLASController tries.
_OPENBLAS_PREFIXES = ("", "scipy_")
_OPENBLAS_SUFFIXES = ("", "64_", "_64")


def _blas_library_path() -> str | None:
    """The BLAS shared library this process loaded for numpy: the first mapped file whose name
    holds a known BLAS word (/proc/self/maps, Linux), else one shipped inside numpy's wheel."""
    import numpy  # noqa: F401  - loads its BLAS, so the mapping below lists it

    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            fields = line.split(maxsplit=5)  # address, perms, offset, dev, inode, path
            path = fields[5] if len(fields) == 6 else ""
            if any(word in Path(path).name.lower() for word, _ in _BLAS_FILE_WORDS):
                return path
    except OSError:
        pass
    root = Path(numpy.__file__).parent  # wheels: numpy.libs/ (Linux), numpy/.dylibs (macOS)
    for folder in (root.parent / "numpy.libs", root / ".dylibs", root / ".libs"):
        for candidate in sorted(folder.glob("*")) if folder.is_dir() else ():
            if any(word in candidate.name.lower() for word, _ in _BLAS_FILE_WORDS):
                return str(candidate)
    return None


def blas_kernel(library: str | None = None) -> dict[str, Any]:
    """Which BLAS numpy uses and which kernels it runs, as threadpoolctl reports it (its
    ``internal_api`` and ``architecture``) without depending on it: a dict with ``library``
    ("OpenBLAS", "MKL", ..., or "unknown"), ``file`` (the library's file name, no folder),
    ``version``, ``architecture`` (OpenBLAS's core name, e.g. "Haswell": a DYNAMIC_ARCH build
    picks its kernels at load and may run AVX2 kernels on an AVX-512 CPU, which matters beside
    an INT8 GEMM that uses VNNI), ``threads`` and ``config``. Only OpenBLAS tells its kernels;
    other libraries give "unknown" there.

    ``library``: the shared library's path (default: the one numpy loaded). Never raises: a
    missing file, an unreadable library or a missing symbol give "unknown" fields.
    """
    info: dict[str, Any] = {
        "library": "unknown",
        "file": None,
        "version": None,
        "architecture": "unknown",
        "threads": None,
        "config": None,
    }
    try:
        path = library if library is not None else _blas_library_path()
        if not path:
            return info
        name = Path(path).name
        info["file"] = name
        info["library"] = next((label for word, label in _BLAS_FILE_WORDS if word in name.lower()), "unknown")
        if info["library"] != "OpenBLAS":
            return info
        import ctypes
        import itertools

        dynlib = ctypes.CDLL(path)

        def symbol(base: str) -> Any:
            for prefix, suffix in itertools.product(_OPENBLAS_PREFIXES, _OPENBLAS_SUFFIXES):
                found = getattr(dynlib, f"{prefix}{base}{suffix}", None)
                if found is not None:
                    return found
            return None

        for key, base, restype in (
            ("architecture", "openblas_get_corename", ctypes.c_char_p),
            ("config", "openblas_get_config", ctypes.c_char_p),
            ("threads", "openblas_get_num_threads", ctypes.c_int),
        ):
            function = symbol(base)
            if function is None:
                continue
            function.restype = restype
            function.argtypes = []
            value = function()
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace").strip()
            if value not in (None, ""):
                info[key] = value
        words = (info["config"] or "").split()
        if len(words) >= 2 and words[0] == "OpenBLAS":  # "OpenBLAS 0.3.31 DYNAMIC_ARCH ..."
            info["version"] = words[1]
    except Exception:  # informative only: a machine description must never stop a run
        pass
    return info


def blas_summary(info: dict[str, Any] | None = None) -> str:
    """:func:`blas_kernel` on a few words: "OpenBLAS 0.3.31 Haswell", "MKL (kernels unknown)"."""
    info = blas_kernel() if info is None else info
    words = [str(info.get("library") or "unknown")]
    if info.get("version"):
        words.append(str(info["version"]))
    architecture = info.get("architecture")
    words.append(str(architecture) if architecture and architecture != "unknown" else "(kernels unknown)")
    return " ".join(words)


def machine_description() -> str:
    """Where a submission was measured, on one line and without host or user names: the CPU
    model, the cores, the OS and architecture, numpy, its BLAS with the kernels it runs, and
    its threads."""
    import platform

    numpy = sys.modules.get("numpy")
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or "unpinned"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"numpy {getattr(numpy, '__version__', '?')}, {blas_summary()}, BLAS threads {threads}"
    )


# ------------------------------------------------------------ CLI: tinytorch leaderboard / submit


def add_leaderboard_arguments(parser: Any) -> None:
    """The options of ``tinytorch leaderboard [verify]`` (an argparse parser)."""
    parser.add_argument(
        "action",
        nargs="?",
        choices=("show", "verify"),
        default="show",
        help="show the board (the default), or verify: re-run recorded entries from their code and "
        "record the re-measured score beside the claimed one",
    )
    parser.add_argument("--db", default=None, help=f"the database (default: ${ENV_VAR} or {default_path()})")
    parser.add_argument("--format", choices=("markdown", "html"), default="markdown", help="default markdown")
    parser.add_argument("--output", default=None, help="write to this file instead of printing")
    parser.add_argument("--limit", type=int, default=None, help="show the best N entries only")
    parser.add_argument(
        "--top", type=int, default=None, metavar="N", help="verify: re-run the best N entries (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="verify: fewer timed runs per event")
    parser.add_argument(
        "--timeout",
        type=float,
        default=VERIFY_TIMEOUT,
        metavar="SECONDS",
        help=f"verify: give up on one entry's run after this long (default {VERIFY_TIMEOUT:g})",
    )


def add_submit_arguments(parser: Any) -> None:
    """The options of ``tinytorch submit`` (an argparse parser; ``--impl`` is the CLI's own)."""
    parser.add_argument("--db", default=None, help=f"the database (default: ${ENV_VAR} or {default_path()})")
    parser.add_argument("--name", default=None, help="the entry's name (default: the submission's)")
    parser.add_argument("--author", default=None, help="who submits (default: the submission's)")
    parser.add_argument(
        "--json",
        default=None,
        help="submit recorded results (an entry as JSON) instead of running; recorded unverified",
    )
    parser.add_argument("--save-json", default=None, help="also write the entry as JSON to this file")
    parser.add_argument("--quick", action="store_true", help="fewer timed runs per event")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="measure and print the score (and --save-json), add nothing to the board",
    )


def cli_leaderboard(args: Any, out: TextIO) -> int:
    """``tinytorch leaderboard``: print (or write) the board as Markdown or HTML;
    ``tinytorch leaderboard verify``: :func:`cli_verify`."""
    if getattr(args, "action", "show") == "verify":
        return cli_verify(args, out)
    if args.limit is not None and args.limit < 1:
        print("tinytorch leaderboard: --limit must be >= 1", file=out)
        return 2
    board = Leaderboard(args.db)
    text = board.to_html(args.limit) if args.format == "html" else board.to_markdown(args.limit)
    if args.output:
        target = Path(args.output)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
        print(f"wrote {target} ({len(board)} submissions; database {board.path})", file=out)
    else:
        print(f"leaderboard: {board.path}\n", file=out)
        print(text, file=out, end="")
    return 0


def load_entry_json(path: str | os.PathLike) -> Entry:
    """An :class:`Entry` from a JSON file (``tinytorch submit --json``); InvalidEntry if malformed."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        # ValueError: JSONDecodeError, and an integer literal past Python's 4300-digit limit
        raise InvalidEntry([f"{path}: not a readable JSON file ({err})"]) from err
    return Entry.from_dict(record)


def _rejected(reasons: Sequence[str], out: TextIO) -> int:
    print("submission rejected; the leaderboard is unchanged:", file=out)
    for reason in reasons:
        print(f"  - {reason}", file=out)
    return 1


def _run_submission(args: Any, out: TextIO, submission: Any = None, benchmark: Any = None) -> Entry:
    """Build the submission of the implementation chosen by TINYTORCH_IMPL (or take the given
    one), validate it, run the competition (or the given ``TinyMLPerf``) and return its entry."""
    from tinytorch.perf.benchmarking import InvalidSubmission, TinyMLPerf, build_submission

    build = None
    if submission is None:
        with CodeWatch() as build:  # the pruning of modules 18 runs here, before any event
            submission = build_submission()
    for field_name in ("name", "author"):
        if getattr(args, field_name):
            setattr(submission, field_name, getattr(args, field_name))
    bench = (
        benchmark
        if benchmark is not None
        else TinyMLPerf(warmup=1, runs=3, budget=QUICK_BUDGET)
        if args.quick
        else TinyMLPerf()
    )
    problems = submission.validate(bench)
    if problems:
        raise InvalidSubmission(problems)
    print("running the competition (baseline and submission interleaved) ...", file=out)
    card = submission.compute_score(bench)
    print(card, file=out)
    runs = watch_events(bench, submission.models)  # after the timed runs: the watch slows calls
    entry = submission.to_entry()
    return replace(
        entry,
        impl=resolved_impl(),
        machine=machine_description(),
        observed=observe(entry.optimizations, runs, build),
        served=served_modules(),
    )


def resolved_impl(value: str | None = None) -> str:
    """``value`` (default: this process's ``TINYTORCH_IMPL``) with every tree made an absolute
    folder, so that the code can be found again from anywhere (``tinytorch leaderboard verify``):
    ``solutions,caching=katas`` -> ``/checkout/solutions,caching=/checkout/katas/caching``. A
    checkout whose path holds a ``,`` or ``=`` cannot be written so, and a process without a
    checkout (the grader's stage) has nothing to resolve against: the value is kept as given."""
    from tinytorch import perf
    from tinytorch.course import registry

    value = os.environ.get(perf.ENV_VAR, "") if value is None else value
    default, overrides = perf.parse_impl(value)
    try:
        root = registry.repo_root().resolve()
    except FileNotFoundError:  # no checkout (a grader's stage serves folders): nothing to resolve against
        return value.strip() or perf.DEFAULT_IMPL
    if any(c in str(root) for c in ",="):
        return value.strip() or perf.DEFAULT_IMPL
    trees = [default if perf.is_folder(default) else str(root / default)]
    for module, tree in sorted(overrides.items()):
        trees.append(f"{module}={tree if perf.is_folder(tree) else root / registry.get(module).tree(tree)}")
    return ",".join(trees)


def _submitter_problems(args: Any) -> list[str]:
    """What is wrong with ``--name`` and ``--author`` (checked before anything runs)."""
    found = []
    for name in ("name", "author"):
        value = getattr(args, name, None)
        why = None if value is None else text_problem(name, value, required=True)
        found += [f"--{name}: {why}"] if why else []
    return found


def cli_submit(args: Any, out: TextIO, impl: str | None = None) -> int:
    """``tinytorch submit``: run the submission (or read ``--json``) and add it to the board.

    Measured here (no ``--json``): recorded verified. ``--json``: the file's figures are
    self-reported, recorded unverified whatever the file says. ``--dry-run``: nothing is added.
    """
    problems = _submitter_problems(args)
    if problems:
        return _rejected(problems, out)
    measured = not args.json
    try:
        if args.json:
            entry = load_entry_json(args.json)
            entry = replace(entry, **{k: getattr(args, k) for k in ("name", "author") if getattr(args, k)})
            if entry.verified or entry.remeasured_score is not None or entry.remeasure_note:
                print(
                    f"{args.json}: a file cannot make an entry verified or re-measured; recorded as "
                    f"{UNVERIFIED}",
                    file=out,
                )
            # what ran is what `tinytorch submit` saw run, which a file cannot show: not recorded
            entry = replace(
                entry,
                observed={},
                served={},
                verified=False,
                remeasured_score=None,
                remeasured_at=None,
                remeasure_note="",
            )
        else:
            if impl:
                os.environ["TINYTORCH_IMPL"] = impl  # before tinytorch.perf.benchmarking is imported
            entry = _run_submission(args, out)
    except InvalidEntry as err:
        return _rejected(err.reasons, out)
    except NotImplementedError as err:
        print(f"tinytorch submit: your submission cannot run yet: {err}", file=out)
        return 1
    problems = entry.problems()
    if problems:
        return _rejected(problems, out)
    if args.save_json:
        Path(args.save_json).write_text(json.dumps(entry.to_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.save_json}", file=out)
    if getattr(args, "dry_run", False):
        done = "measured" if measured else "checked"
        score = format_interval(entry.score, *(entry.bounds or (None, None)), digits=3)
        print(f"{done} {entry.name!r}: score {score} (dry run: the board is unchanged)", file=out)
        return 0
    board = Leaderboard(args.db)
    entry_id = board._add(entry, verified=measured)
    entries = board.entries()
    rank = next(r for r, e in zip(tie_ranks(entries), entries, strict=True) if e.id == entry_id)
    status = f"{VERIFIED}: measured here" if measured else f"{UNVERIFIED}: self-reported figures"
    score = format_interval(entry.score, *(entry.bounds or (None, None)), digits=3)
    print(
        f"submitted {entry.name!r} by {entry.author}: score {score} ({status}), "
        f"rank {rank} of {len(board)} (entries whose intervals overlap share a rank)",
        file=out,
    )
    print(f"database: {board.path}", file=out)
    return 0


# ------------------------------------------------------------- CLI: tinytorch leaderboard verify

# How long one entry's re-run may take: a full competition takes about a minute on 2 cores
# (`tinytorch bench benchmarking` runs three in one to two), 15 minutes leave room for a loaded
# machine.
VERIFY_TIMEOUT = 900.0
# The time budget of each event's paired rounds in a quick run (`tinytorch submit --quick`,
# `tinytorch bench benchmarking --quick`), in seconds; a full run uses the competition's own
# (tinytorch.perf.benchmarking.BUDGET, 10 s). An event never stops before the rounds a 95 %
# interval needs, so a slow event may take longer.
QUICK_BUDGET = 3.0
FOLDER_GONE = "folder gone"
NO_FOLDER = "no folder recorded"


def _impl_folders(impl: str) -> list[Path]:
    """The folders a ``TINYTORCH_IMPL`` value names (a tree name: that tree of this checkout)."""
    from tinytorch import perf
    from tinytorch.course import registry

    folders = []
    for item in impl.split(","):
        tree = item.partition("=")[2] if "=" in item else item
        tree = tree.strip()
        if tree:
            folders.append(Path(tree).expanduser() if perf.is_folder(tree) else registry.repo_root() / tree)
    return folders


def remeasure(entry: Entry, quick: bool = False, timeout: float = VERIFY_TIMEOUT) -> tuple[float | None, str]:
    """Re-run ``entry``'s code as ``tinytorch submit`` measures it (``benchmarks/submit.py`` in a
    fresh interpreter, ``TINYTORCH_IMPL`` = the entry's ``impl``), adding nothing to any board;
    (the score measured, "") or (None, why not): ``no folder recorded``, ``folder gone: PATH``,
    ``failed: ...`` (the run's last words, or its timeout)."""
    from tinytorch import perf
    from tinytorch.course import registry

    impl = entry.impl.strip() if isinstance(entry.impl, str) else ""
    if not impl:
        return None, NO_FOLDER
    gone = [folder for folder in _impl_folders(impl) if not folder.is_dir()]
    if gone:
        return None, f"{FOLDER_GONE}: {gone[0]}"
    try:
        perf.parse_impl(impl)
    except ValueError as err:
        return None, _one_line(f"failed: the recorded code cannot be served ({err})")
    script = registry.repo_root() / "benchmarks" / "submit.py"
    with tempfile.TemporaryDirectory(prefix="tinytorch-verify-") as tmp:
        result = Path(tmp) / "entry.json"
        command = [sys.executable, str(script), "--dry-run", "--save-json", str(result), *["--quick"] * quick]
        env = {**os.environ, perf.ENV_VAR: impl}
        try:
            done = subprocess.run(
                command, cwd=registry.repo_root(), env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return None, f"failed: no result within {timeout:g} s"
        said = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        if done.returncode != 0 or not result.is_file():
            last = said[-1] if said else f"exit status {done.returncode}"
            return None, _one_line(f"failed: {last}")
        try:
            measured = load_entry_json(result).check()
        except InvalidEntry as err:
            return None, _one_line(f"failed: the run gave an invalid entry ({'; '.join(err.reasons)})")
    return float(measured.score), ""


def _one_line(text: str) -> str:
    """``text`` as a remeasure note: visible characters only, cut to its limit."""
    limit = TEXT_LIMITS["remeasure_note"]
    text = "".join(" " if unicodedata.category(c) in FORBIDDEN_CATEGORIES else c for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cli_verify(args: Any, out: TextIO) -> int:
    """``tinytorch leaderboard verify [--top N]``: re-run the best N entries (all by default)
    from their recorded code and record each re-measured score beside the claimed one (or why
    there is none). Exit status 0 when every entry was re-measured, 1 when one could not be."""
    top = getattr(args, "top", None)
    if top is not None and top < 1:
        print("tinytorch leaderboard verify: --top must be >= 1", file=out)
        return 2
    if not args.timeout > 0:
        print("tinytorch leaderboard verify: --timeout must be > 0 seconds", file=out)
        return 2
    board = Leaderboard(args.db)
    entries = board.entries(top)
    if not entries:
        print(f"leaderboard: {board.path}: no entries to verify", file=out)
        return 0
    count = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    print(f"leaderboard: {board.path}: re-running {count}, one at a time", file=out)
    failed = 0
    for rank, entry in enumerate(entries, 1):
        print(
            f"{rank}. {entry.name!r} by {entry.author} (claimed {entry.score:.3f}x) ...", file=out, flush=True
        )
        score, note = remeasure(entry, quick=args.quick, timeout=args.timeout)
        board._record_remeasurement(entry.id, score, note)
        if score is None:
            failed += 1
            print(f"   not re-measured: {note}", file=out)
        else:
            print(f"   re-measured {score:.3f}x (claimed {entry.score:.3f}x)", file=out)
    print(f"recorded; {len(entries) - failed} re-measured, {failed} could not be", file=out)
    return 1 if failed else 0
