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

from tinytorch.leaderboard import EventRecord

from .events import EVENTS, Event
from .measure import BenchmarkResult, Profiler, benchmark_model, measure_interleaved
from .scoring import EventScore, ScoreCard, compute_speedup, score_events

__all__ = ["EventResult", "TinyMLPerf"]


@dataclass(frozen=True)
class EventResult:
    """One event of a run: both measurements and the candidate's speedup over the baseline."""

    event: str
    baseline: BenchmarkResult
    candidate: BenchmarkResult
    speedup: float

    def score(self) -> EventScore:
        """The event's speedup with the candidate's quality gate, for :func:`score_events`."""
        return EventScore(event=self.event, speedup=self.speedup, quality=self.candidate.quality)

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
        )


class TinyMLPerf:
    """The competition: its events, a profiler, and the baselines (loaded once from the zoo).

    ``warmup`` / ``runs`` override every event's (a quick run); ``baselines`` replaces the zoo
    baselines (tests pass fakes that advance a fake clock).
    """

    def __init__(
        self,
        events: Sequence[Event] = EVENTS,
        profiler: Profiler | None = None,
        warmup: int | None = None,
        runs: int | None = None,
        baselines: Mapping[str, Any] | None = None,
    ) -> None:
        events = list(events)
        if not events or not all(isinstance(e, Event) for e in events):
            raise TypeError("events must be a non-empty sequence of Event")
        # an override is checked by Event itself (TypeError / ValueError naming warmup or runs)
        overrides = {k: v for k, v in (("warmup", warmup), ("runs", runs)) if v is not None}
        self.events = {e.name: dataclasses.replace(e, **overrides) for e in events}
        self.profiler = profiler if profiler is not None else Profiler()
        self._baselines = dict(baselines or {})

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
        """Measure ``candidate`` against the event's baseline in one run, interleaved.

        Both latencies come from one :func:`measure_interleaved` call (the event's warmup and
        runs); each model is then profiled by :func:`benchmark_model` with its latency given;
        the speedup is :func:`compute_speedup` of baseline over candidate.
        """
        event = self.event(name)
        baseline = self.baseline(name)
        timings = measure_interleaved(
            {"baseline": lambda: event.run(baseline), "candidate": lambda: event.run(candidate)},
            event.warmup,
            event.runs,
            self.profiler.timer,
        )
        base = benchmark_model(baseline, event, self.profiler, latency=timings["baseline"])
        cand = benchmark_model(candidate, event, self.profiler, latency=timings["candidate"])
        return EventResult(
            event=event.name, baseline=base, candidate=cand, speedup=compute_speedup(base, cand)
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
