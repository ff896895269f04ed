"""What one submission to the leaderboard is, and every check it passes before it is recorded.

An :class:`Entry` (its name, author, score and optimizations) holds an :class:`EventRecord` per
event of the competition. :meth:`Entry.problems` lists every reason an entry cannot be recorded,
each naming its field; :meth:`Entry.check` raises them as one :class:`InvalidEntry`. The checks
live beside the data they guard so that every way onto the board (``Leaderboard.add``,
``tinytorch submit``, a JSON file) refuses the same entries with the same words:

* figures are plausible measurements (:data:`FIGURE_RANGES`, :func:`figure_problem`): finite,
  positive, of sane size, never a bool, a string or a 400-digit integer;
* texts are one line of visible text (:data:`TEXT_LIMITS`, :data:`FORBIDDEN_CATEGORIES`,
  :func:`text_problem`);
* the score is the geometric mean of the counted speedups, its interval the geometric means of
  the counted events' bounds (:func:`geometric_mean`), and :func:`format_interval` writes a
  figure with its interval as every board and report shows it.
"""

from __future__ import annotations

import math
import numbers
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

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


def remeasurement_problems(score: Any, low: Any = None, high: Any = None) -> list[str]:
    """Why a re-measured score and its interval cannot be recorded: the score absent (not
    re-measured) with no interval, or a plausible speedup whose interval, if any, holds it."""
    if score is None:
        if low is None and high is None:
            return []
        return ["remeasured_score_low and remeasured_score_high need a remeasured_score"]
    why = figure_problem("remeasured_score", score, *FIGURE_RANGES["speedup"], positive=True)
    if why:
        return [why]
    return _interval_problems("the entry", "remeasured_score", score, low, high)


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
    # (None: not re-measured, or it failed) with its 95 % interval (None: re-measured before
    # intervals were kept) and when, or why it could not (remeasure_note).
    verified: bool = False
    remeasured_score: float | None = None
    remeasured_at: float | None = None
    remeasure_note: str = ""
    remeasured_score_low: float | None = None
    remeasured_score_high: float | None = None

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
        found += remeasurement_problems(
            self.remeasured_score, self.remeasured_score_low, self.remeasured_score_high
        )
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
