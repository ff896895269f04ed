"""Scoring TinyMLPerf: speedups, a quality gate and their geometric mean (module 20, benchmarking).

Absolute times say more about the machine than about the optimization: the same model runs 3x
faster on a laptop than on a busy CI box. A *ratio* measured on one machine in one run cancels
the machine out. So every event is scored by its speedup over the unoptimized baseline,

    speedup = t_baseline / t_candidate        (> 1: the candidate is faster)

with t the median latency of each, both measured in the same run. The overall score is the
geometric mean of the n per-event speedups,

    score = (s_1 * s_2 * ... * s_n) ** (1 / n) = exp( (log s_1 + ... + log s_n) / n ).

Why geometric and not arithmetic: a speedup is a ratio, and ratios multiply. The geometric mean
is the only mean that is unchanged when every time is scaled by the same factor (a faster
machine), gives k when every speedup is k, and treats a 2x gain and a 2x loss symmetrically:
geomean(2, 1/2) = 1, whereas the arithmetic mean says 1.25, a "gain" made of nothing.

Uncertainty: a speedup measured on a shared machine is a random quantity. Each event is timed in
paired rounds (baseline and candidate back to back, their order alternating), and round i gives
one ratio r_i = t_baseline,i / t_candidate,i; load that hits a round hits both halves of it and
cancels in r_i. The event's speedup is the median of the r_i, reported with a 95 % confidence
interval for the median (:func:`speedup_interval`); rounds are added until the interval is
narrow enough (:func:`precise_enough`) or a time budget runs out. The score's interval is the
geometric mean of the events' bounds (:func:`score_interval`).

The quality gate: an optimization that breaks the model is not an optimization. An event's
speedup counts only if its quality target holds (accuracy within a bound of the baseline's,
generated tokens identical to the baseline's); otherwise the event scores nothing, a factor 1
(log 1 = 0 in the sum), and says why.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tinytorch.perf.profiling import TimingResult

from tinytorch.course.leaderboard import format_interval

__all__ = [
    "CONFIDENCE",
    "PRECISION",
    "EventScore",
    "QualityCheck",
    "ScoreCard",
    "SpeedupInterval",
    "check_seconds",
    "compute_speedup",
    "geometric_mean",
    "median_seconds",
    "min_rounds",
    "precise_enough",
    "score_events",
    "score_interval",
    "speedup_interval",
]

# The confidence of every interval the competition reports, and the precision it aims for: rounds
# are added until the interval's half-width is at most PRECISION times the speedup (5 %: two
# entries 10 % apart are then told apart), or the event's time budget runs out.
CONFIDENCE = 0.95
PRECISION = 0.05


def check_seconds(value: Any, name: str) -> float:
    """A duration in seconds as a float, finite and > 0 (TypeError / ValueError naming ``name``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite time > 0 seconds, got {value!r}")
    return value


def median_seconds(timing: Any, name: str) -> float:
    """The median latency of ``timing``: a :class:`TimingResult` (its p50), any result with a
    ``latency`` TimingResult (a ``BenchmarkResult``), or a number of seconds."""
    if isinstance(getattr(timing, "latency", None), TimingResult):
        timing = timing.latency
    if isinstance(timing, TimingResult):
        timing = timing.p50
    return check_seconds(timing, name)


def compute_speedup(baseline: Any, optimized: Any) -> float:
    """How many times faster ``optimized`` is than ``baseline``.

    Both are timings of the same event: a ``TimingResult``, a ``BenchmarkResult`` or a number
    of seconds. Compare their *medians* (``median_seconds`` gives them, checked):

        speedup = t_baseline / t_optimized        (> 1: faster, < 1: slower)

    A time that is not a finite number > 0 is a ``ValueError`` (not a number: ``TypeError``)
    naming the argument, ``baseline`` or ``optimized``: ``median_seconds(baseline, "baseline")``
    raises it.

    Example: a baseline of 30 ms and a candidate of 10 ms give 3.0; a candidate twice as slow
    as its baseline gives 0.5.
    """
    raise NotImplementedError(
        "compute_speedup (module 20, benchmarking): implement it in katas/benchmarking/scoring.py"
    )


def geometric_mean(values: Sequence[float]) -> float:
    """(v_1 * ... * v_n) ** (1/n) of n >= 1 positive, finite numbers.

    Raise a ``ValueError`` naming ``values`` for no values (an empty list) or for a value that
    is not finite and > 0 (0 included: log 0 is undefined). The product of many ratios can
    overflow float64 long before its n-th root does (1e300 * 1e300): stay in log space,
    exp(mean(log v)) is the same number up to rounding.

    Examples: geometric_mean([2, 8]) == 4.0; geometric_mean([2, 0.5]) == 1.0 (the arithmetic
    mean would say 1.25); geometric_mean([1e300] * 3) gives 9.999999999999763e+299, 1e300 within
    rounding (exp and log each round; the product 1e900 would be inf).
    """
    raise NotImplementedError(
        "geometric_mean (module 20, benchmarking): implement it in katas/benchmarking/scoring.py"
    )


@dataclass(frozen=True)
class SpeedupInterval:
    """A speedup with its confidence interval: ``value`` (the median per-round ratio), ``low`` <=
    value <= ``high``, from ``rounds`` paired rounds at ``confidence``. Shown as
    ``2.37× (2.30–2.45)``."""

    value: float
    low: float
    high: float
    rounds: int
    confidence: float = CONFIDENCE

    def __str__(self) -> str:
        return format_interval(self.value, self.low, self.high)


def check_confidence(confidence: Any) -> float:
    """A confidence level strictly between 0 and 1 (TypeError / ValueError naming ``confidence``)."""
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise TypeError(f"confidence must be a number, got {type(confidence).__name__}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    return float(confidence)


def paired_samples(baseline: Any, candidate: Any) -> tuple[list[float], list[float]]:
    """The per-round times of both sides as two lists of equal length, round i of one beside
    round i of the other: each a ``TimingResult`` (its ``samples``, in measurement order) or a
    sequence of seconds. Every time finite and > 0 (ValueError / TypeError naming ``baseline``
    or ``candidate``); different lengths: ValueError naming ``candidate``."""
    sides = []
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        samples = side.samples if isinstance(side, TimingResult) else side
        if isinstance(samples, str) or not hasattr(samples, "__len__"):
            raise TypeError(
                f"{name} must be a TimingResult or a sequence of seconds, got {type(side).__name__}"
            )
        sides.append([check_seconds(t, name) for t in samples])
    if len(sides[0]) != len(sides[1]):
        raise ValueError(
            f"candidate has {len(sides[1])} rounds, baseline {len(sides[0])}: paired rounds come in pairs"
        )
    return sides[0], sides[1]


def min_rounds(confidence: float = CONFIDENCE) -> int:
    """The fewest rounds for which :func:`speedup_interval` has an interval at ``confidence``: the
    smallest n with 2 * (1/2)**n <= 1 - confidence (the widest interval, the smallest ratio to the
    largest, misses the median only when every ratio falls on the same side of it). 6 for 95 %."""
    alpha = 1 - check_confidence(confidence)
    n = 1
    while 2 * 0.5**n > alpha:
        n += 1
    return n


def score_interval(intervals: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The score's interval from the counted events' intervals (low_i, high_i): the geometric mean
    of the lows and the geometric mean of the highs, i.e. in log space the mean of the log bounds.

    Why this rule: log score = mean(log s_i), and it is monotone in each s_i, so whenever every
    event's interval holds its true speedup, [geomean(low_i), geomean(high_i)] holds the true
    score; it needs no assumption about how the events' errors are distributed or correlated.
    It is conservative (its half-width in log space is the mean of the events' log
    half-widths, where independent errors would partly cancel): a score interval that says
    "these two entries are not told apart" is the safe side for a ranking.
    """
    intervals = list(intervals)
    if not intervals:
        raise ValueError("intervals must not be empty: a score needs at least one event")
    return geometric_mean([low for low, _ in intervals]), geometric_mean([high for _, high in intervals])


def check_precision(precision: Any) -> float:
    """A relative precision, finite and > 0 (TypeError / ValueError naming ``precision``)."""
    if isinstance(precision, bool) or not isinstance(precision, numbers.Real):
        raise TypeError(f"precision must be a number, got {type(precision).__name__}")
    if not math.isfinite(precision) or precision <= 0:
        raise ValueError(f"precision must be finite and > 0, got {precision!r}")
    return float(precision)


def speedup_interval(baseline: Any, candidate: Any, confidence: float = CONFIDENCE) -> SpeedupInterval:
    """The speedup of paired rounds with its confidence interval, by order statistics.

    ``baseline`` and ``candidate`` are the per-round times of the same rounds (round i of one was
    timed right beside round i of the other). Each round gives a ratio r_i = b_i / c_i; the
    speedup is the median of the n ratios, and the interval is [r_(k), r_(n+1-k)] of the
    sorted ratios r_(1) <= ... <= r_(n), with k the largest count such that

        P(B <= k - 1) <= (1 - confidence) / 2,        B ~ Binomial(n, 1/2).

    Why it holds: each ratio falls below the true median with probability 1/2, so the number
    below it is B; the interval misses the median only when k or more fall on one side. It is
    distribution-free (no normal law assumed: timing noise is skewed, with long tails) and
    exact, deterministic and needs nothing but a sort, where a bootstrap resamples at random
    and is only approximate for the few rounds a slow event affords. Its coverage is
    1 - 2 P(B <= k - 1) >= confidence.

    Pairing matters: the ratio of the two medians, or ratios of separately sorted samples,
    throw away that round i of both sides saw the same machine.

    Fewer rounds than :func:`min_rounds` (6 at 95 %): no such k exists, a ``ValueError`` naming
    ``rounds`` and the minimum. Times checked by :func:`paired_samples`, ``confidence`` by
    :func:`check_confidence`.

    Hint: sum the binomial terms math.comb(n, i) / 2**n for i = 0, 1, ... while the sum stays
    <= alpha / 2; the number of terms you could add is k (0: too few rounds). Python indexes from
    0: r_(k) is ratios[k - 1].

    Examples: ratios 1, 2, 3, 4, 5, 6 (n = 6, k = 1): 3.50× (1.00–6.00); 20 rounds all of
    ratio 2: 2.00× (2.00–2.00); n = 20 gives k = 6 (P(B <= 5) = 0.0207), the 6th and 15th.
    """
    b, c = paired_samples(baseline, candidate)  # noqa: F841
    alpha = 1 - check_confidence(confidence)  # noqa: F841
    raise NotImplementedError(
        "speedup_interval (module 20, benchmarking): implement it in katas/benchmarking/scoring.py"
    )


def precise_enough(interval: SpeedupInterval, precision: float = PRECISION) -> bool:
    """The stopping rule of the rounds: True when the interval's half-width, (high - low) / 2,
    is at most ``precision`` times the speedup (``interval.value``).

    ``precision`` a finite number > 0 (default :data:`PRECISION`, 5 %), else a ``ValueError``
    (not a number: ``TypeError``) naming ``precision``.

    Examples: 2.37× (2.30–2.45): half-width 0.075 <= 0.05 * 2.37 = 0.1185, True;
    2.0× (1.5–2.5): 0.5 > 0.1, False; an interval of equal bounds is always precise enough.
    """
    check_precision(precision)
    raise NotImplementedError(
        "precise_enough (module 20, benchmarking): implement it in katas/benchmarking/scoring.py"
    )


@dataclass(frozen=True)
class QualityCheck:
    """An event's quality gate: ``metric`` measured as ``value`` must reach ``target``
    (``value >= target``; a NaN value never passes)."""

    metric: str
    value: float
    target: float

    @property
    def passed(self) -> bool:
        return bool(self.value >= self.target)

    @property
    def reason(self) -> str:
        """Why the gate failed ("" when it passed)."""
        if self.passed:
            return ""
        return f"{self.metric} {self.value:.4f} is below the target {self.target:.4f}"


@dataclass(frozen=True)
class EventScore:
    """One event's measured speedup, its quality gate and its interval (``None``: a speedup
    known exactly, whose interval is the point [speedup, speedup])."""

    event: str
    speedup: float
    quality: QualityCheck
    interval: SpeedupInterval | None = None

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of the speedup: its interval's, or (speedup, speedup) without one."""
        if self.interval is None:
            return (self.speedup, self.speedup)
        return (self.interval.low, self.interval.high)


@dataclass(frozen=True)
class ScoreCard:
    """The overall score and, per event, the speedup that counted (1.0 for a failed gate) and
    why an event did not count."""

    score: float
    counted: dict[str, float]
    reasons: dict[str, str] = field(default_factory=dict)
    # per event, the (low, high) of the counted speedup: its interval, (1, 1) for a failed gate
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def bounds(self) -> tuple[float, float]:
        """The score's interval (:func:`score_interval` of the counted events' bounds; an event
        without bounds counts as its point speedup)."""
        return score_interval([self.intervals.get(e, (s, s)) for e, s in self.counted.items()])

    def __str__(self) -> str:
        low, high = self.bounds
        lines = [
            f"score {format_interval(self.score, low, high)} "
            f"(geometric mean over {len(self.counted)} events; 95 % intervals)"
        ]
        for event, speedup in self.counted.items():
            why = self.reasons.get(event)
            text = format_interval(speedup, *self.intervals.get(event, (None, None)))
            lines.append(f"  {event}: {text}" + (f"  (not counted: {why})" if why else ""))
        return "\n".join(lines)


def score_events(events: Sequence[EventScore]) -> ScoreCard:
    """The overall score of a run, with the quality gate.

    An event's speedup counts only if ``event.quality.passed``; a failed event contributes a
    factor 1 (log 1 = 0: it scores nothing) and ``reasons[event]`` says why
    (``quality.reason``). score = geometric mean of the counted speedups over *all* events.
    ``intervals[event]`` is the counted speedup's (low, high): ``event.bounds`` when it passed,
    (1.0, 1.0) when it failed (the ScoreCard turns them into the score's interval).
    A ``ValueError`` naming ``events`` for no events (an empty list) or for two events with the
    same name.

    Example: speedups 4 and 9, both passing: score sqrt(4 * 9) = 6.0, counted {"A": 4, "B": 9},
    no reasons. If B fails its gate: score sqrt(4 * 1) = 2.0, counted {"A": 4, "B": 1.0},
    reasons {"B": "accuracy 0.5000 is below the target 0.9500"}, intervals {"A": A's bounds,
    "B": (1.0, 1.0)}.
    """
    raise NotImplementedError(
        "score_events (module 20, benchmarking): implement it in katas/benchmarking/scoring.py"
    )
