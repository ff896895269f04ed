"""TinyMLPerf: every event, baseline and candidate measured side by side (module 20, benchmarking).

``TinyMLPerf().run({"MLP_SPRINT": my_mlp, "CNN_MARATHON": my_cnn, "TRANSFORMER_DECATHLON": my_gen})``
measures each candidate against its event's unoptimized baseline in the same run, interleaved,
and returns one :class:`EventResult` per event; ``score(results)`` turns them into the overall
score (the geometric mean of the speedups that passed their quality gates).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tinytorch.course.leaderboard import EventRecord

from .events import EVENTS, Event
from .measure import BUDGET, BenchmarkResult, Profiler, benchmark_model, measure_paired  # noqa: F401
from .scoring import (
    PRECISION,
    EventScore,
    ScoreCard,
    SpeedupInterval,
    check_precision,
    check_seconds,
    score_events,
)  # noqa: F401

__all__ = ["EventResult", "TinyMLPerf"]


@dataclass(frozen=True)
class EventResult:
    """One event of a run: both measurements and the candidate's speedup over the baseline:
    the median per-round ratio, with its ``interval`` (None: a speedup without one)."""

    event: str
    baseline: BenchmarkResult
    candidate: BenchmarkResult
    speedup: float
    interval: SpeedupInterval | None = None

    def score(self) -> EventScore:
        """The event's speedup with the candidate's quality gate, for :func:`score_events`."""
        return EventScore(
            event=self.event, speedup=self.speedup, quality=self.candidate.quality, interval=self.interval
        )

    def record(self) -> EventRecord:
        """The event as a leaderboard row."""
        quality = self.candidate.quality
        return EventRecord(
            event=self.event,
            baseline_seconds=float(self.baseline.latency.p50),
            candidate_seconds=float(self.candidate.latency.p50),
            speedup=float(self.speedup),
            quality_metric=quality.metric,
            quality_value=float(quality.value),
            quality_target=float(quality.target),
            passed=bool(quality.passed),
            reason=quality.reason,
            speedup_low=None if self.interval is None else float(self.interval.low),
            speedup_high=None if self.interval is None else float(self.interval.high),
        )


class TinyMLPerf:
    """The competition: its events, a profiler, and the baselines (loaded once from the zoo).

    ``warmup`` / ``runs`` override every event's (a quick run; ``runs`` is the least number of
    paired rounds); ``precision`` and ``budget`` are the stopping rule of each event's rounds
    (:func:`measure_paired`); ``baselines`` replaces the zoo baselines (tests pass fakes that
    advance a fake clock).
    """

    def __init__(
        self,
        events: Sequence[Event] = EVENTS,
        profiler: Profiler | None = None,
        warmup: int | None = None,
        runs: int | None = None,
        baselines: Mapping[str, Any] | None = None,
        precision: float = PRECISION,
        budget: float = BUDGET,
    ) -> None:
        events = list(events)
        if not events or not all(isinstance(e, Event) for e in events):
            raise TypeError("events must be a non-empty sequence of Event")
        # an override is checked by Event itself (TypeError / ValueError naming warmup or runs)
        overrides = {k: v for k, v in (("warmup", warmup), ("runs", runs)) if v is not None}
        self.events = {e.name: dataclasses.replace(e, **overrides) for e in events}
        self.profiler = profiler if profiler is not None else Profiler()
        self._baselines = dict(baselines or {})
        self.precision = check_precision(precision)
        self.budget = check_seconds(budget, "budget")

    def event(self, name: str) -> Event:
        """The event called ``name``; ``KeyError`` listing the valid names otherwise."""
        if name not in self.events:
            raise KeyError(f"unknown event {name!r}; the events are: {', '.join(self.events)}")
        return self.events[name]

    def baseline(self, name: str) -> Any:
        """The event's unoptimized model (loaded once)."""
        event = self.event(name)
        if name not in self._baselines:
            self._baselines[name] = event.baseline_model()
        return self._baselines[name]

    def run_event(self, name: str, candidate: Any) -> EventResult:
        """Measure ``candidate`` against the event's baseline; an :class:`EventResult`.

        The baseline is ``self.baseline(name)``. Both must be timed in the *same* run, in paired,
        interleaved rounds: ``measure_paired`` (given, in measure.py) with the event's warmup and
        runs, ``self.profiler.timer``, ``precision=self.precision`` and ``budget=self.budget``. Every
        other figure (quality, memory, FLOPs) comes from module 15's tools through
        ``benchmark_model`` with each side's latency given; nothing is timed twice. The speedup is
        the median per-round ratio (the interval's value), kept with its ``interval``.

        Example: a baseline that costs 3 s a call and a candidate that costs 1 s give speedup 3.0,
        interval 3.00× (3.00–3.00), even if the machine slows down half way through the run.
        """
        event = self.event(name)  # noqa: F841
        baseline = self.baseline(name)  # noqa: F841
        raise NotImplementedError(
            "TinyMLPerf.run_event (module 20, benchmarking): "
            "implement it in katas/benchmarking/competition.py"
        )

    def run(self, candidates: Mapping[str, Any]) -> dict[str, EventResult]:
        """Run every event with its candidate: ``{event name: model}`` covering every event."""
        if not isinstance(candidates, Mapping):
            raise TypeError(
                f"candidates must be a mapping event name -> model, got {type(candidates).__name__}"
            )
        missing = [name for name in self.events if name not in candidates]
        unknown = [name for name in candidates if name not in self.events]
        if missing or unknown:
            raise ValueError(
                f"candidates must name every event exactly: missing {missing}, unknown {unknown}; "
                f"the events are {list(self.events)}"
            )
        return {name: self.run_event(name, candidates[name]) for name in self.events}

    def score(self, results: Mapping[str, EventResult]) -> ScoreCard:
        """The overall score of :meth:`run`'s results."""
        return score_events([result.score() for result in results.values()])
