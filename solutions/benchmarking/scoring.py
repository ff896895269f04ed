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

__all__ = [
    "EventScore",
    "QualityCheck",
    "ScoreCard",
    "check_seconds",
    "compute_speedup",
    "geometric_mean",
    "median_seconds",
    "score_events",
]


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
    """How many times faster ``optimized`` is than ``baseline``: t_baseline / t_optimized.

    Both are timings of the same event (a ``TimingResult``, a ``BenchmarkResult`` or seconds);
    their medians are compared. A time that is not a finite number > 0 is a ``ValueError`` (not
    a number: ``TypeError``) naming the argument, ``baseline`` or ``optimized``.

    Example: a baseline of 30 ms and a candidate of 10 ms give 3.0; a candidate that is twice as
    slow gives 0.5.
    """
    return median_seconds(baseline, "baseline") / median_seconds(optimized, "optimized")


def geometric_mean(values: Sequence[float]) -> float:
    """(v_1 * ... * v_n) ** (1/n) of n >= 1 positive, finite numbers.

    A ``ValueError`` naming ``values`` for no values or a value that is not finite and > 0.
    Computed as exp(mean(log v)): a product of many ratios would overflow or underflow first.

    Examples: geometric_mean([2, 8]) == 4.0; geometric_mean([2, 0.5]) == 1.0;
    geometric_mean([1e300] * 3) gives 9.999999999999763e+299, 1e300 within rounding (exp and
    log each round; the product 1e900 would be inf).
    """
    values = list(values)
    if not values:
        raise ValueError("values must not be empty: a score needs at least one event")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"values must be finite and > 0, got {v!r}")
    return math.exp(math.fsum(math.log(v) for v in values) / len(values))


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
    """One event's measured speedup and its quality gate."""

    event: str
    speedup: float
    quality: QualityCheck


@dataclass(frozen=True)
class ScoreCard:
    """The overall score and, per event, the speedup that counted (1.0 for a failed gate) and
    why an event did not count."""

    score: float
    counted: dict[str, float]
    reasons: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"score {self.score:.3f}x (geometric mean over {len(self.counted)} events)"]
        for event, speedup in self.counted.items():
            why = self.reasons.get(event)
            lines.append(f"  {event}: {speedup:.3f}x" + (f"  (not counted: {why})" if why else ""))
        return "\n".join(lines)


def score_events(events: Sequence[EventScore]) -> ScoreCard:
    """The overall score of a run: the geometric mean of the per-event speedups, each counted
    only if its quality gate passed (a failed event counts as 1.0 and its reason is kept).

    A ``ValueError`` naming ``events`` for no events or two events with the same name.

    Example: speedups 4 and 9 that both pass score sqrt(4 * 9) = 6.0; if the second one fails
    its gate, the score is sqrt(4 * 1) = 2.0 and ``reasons`` says why.
    """
    events = list(events)
    if not events:
        raise ValueError("events must not be empty: a score needs at least one event")
    names = [e.event for e in events]
    if len(set(names)) != len(names):
        raise ValueError(f"events must have distinct names, got {names}")
    counted, reasons = {}, {}
    for e in events:
        if e.quality.passed:
            counted[e.event] = e.speedup
        else:
            counted[e.event] = 1.0
            reasons[e.event] = e.quality.reason
    return ScoreCard(score=geometric_mean(list(counted.values())), counted=counted, reasons=reasons)
