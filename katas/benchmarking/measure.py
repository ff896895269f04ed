"""Fair measurement with module 15's profiler (module 20, benchmarking).

Two rules make a comparison fair on a shared, noisy machine:

* Warm up, then sample. The first calls pay for cold caches and lazy allocations; they are run
  but never recorded. The median of the timed samples is the figure: robust to the odd slow run.
* Interleave. Baseline and candidate are timed in the same run, alternating call by call
  (baseline, candidate, candidate, baseline, ...), so a burst of load from another process, a
  CPU that heats up and slows down, or a cache flushed by a neighbour hits both alike and
  cancels in their ratio. Timing all baseline runs, then all candidate runs, lets a change in
  the machine between the two halves pass for a speedup.

Timing, memory and FLOPs come from ``tinytorch.perf.profiling`` (module 15): :class:`Timer`,
:class:`MemoryProfiler`, :class:`FLOPCounter` and its per-layer rule ``layer_flops``.
"""

from __future__ import annotations

import copy
import math  # noqa: F401
import numbers
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np  # noqa: F401
from tinytorch.perf.profiling import (
    DEFAULT_MIN_TIME,
    FLOPCounter,
    MemoryProfiler,
    Timer,
    TimingResult,
    layer_flops,
    summarize,
)

from tinytorch.layers import Module
from tinytorch.losses import cross_entropy
from tinytorch.optim import SGD
from tinytorch.tensor import Tensor

from .events import Event
from .scoring import (
    CONFIDENCE,
    PRECISION,
    QualityCheck,
    SpeedupInterval,
    check_precision,
    check_seconds,
    min_rounds,
    precise_enough,
    speedup_interval,
)

__all__ = [
    "BUDGET",
    "BenchmarkResult",
    "PairedTiming",
    "Profiler",
    "benchmark_model",
    "check_repeats",
    "competition_timer",
    "measure_interleaved",
    "measure_paired",
    "train_step_time",
    "underlying_module",
    "workload_flops",
]

TRAIN_BATCH = 32  # images in the (unscored) training-step measurement


def competition_timer() -> Timer:
    """The competition's timer: module 15's Timer on this process's CPU time
    (``time.process_time``), not the wall clock. On a shared machine the scheduler hands the CPU
    to other processes in slices of milliseconds; wall time counts those slices as if the model
    ran, CPU time does not, so a preempted sample is not a slow one. Everything the events run is
    single-threaded (BLAS pinned to one thread), so CPU time is the time of the work itself."""
    return Timer(clock=time.process_time)


@dataclass
class Profiler:
    """Module 15's three tools together (the timer on CPU time: :func:`competition_timer`);
    tests pass a ``Timer`` with a fake clock."""

    timer: Timer = field(default_factory=competition_timer)
    memory: MemoryProfiler = field(default_factory=MemoryProfiler)
    flops: FLOPCounter = field(default_factory=FLOPCounter)


@dataclass(frozen=True)
class BenchmarkResult:
    """Everything measured for one model on one event.

    ``latency``: the timed calls (seconds; p50, p95, p99, ...); ``throughput``: items (images
    or generated tokens) per second at the median latency; ``peak_memory_bytes``: tracemalloc's
    high-water mark over one call; ``flops``: FLOPs of one call counted by module 15's rules
    (None when the model has no tinytorch layers to count); ``quality``: the event's gate;
    ``train_step``: the time of one SGD step on a batch of 32 (an extra, never scored; None
    when the model cannot be trained).
    """

    event: str
    latency: TimingResult
    throughput: float
    peak_memory_bytes: int
    flops: int | None
    quality: QualityCheck
    train_step: TimingResult | None = None

    def __str__(self) -> str:
        flops = "n/a" if self.flops is None else f"{self.flops / 1e6:.2f} MFLOP"
        return (
            f"{self.event}: p50 {self.latency.p50 * 1e3:.3f} ms (p95 {self.latency.p95 * 1e3:.3f} ms), "
            f"{self.throughput:.0f} items/s, peak {self.peak_memory_bytes / 2**20:.2f} MiB, {flops}, "
            f"{self.quality.metric} {self.quality.value:.4f}"
        )


def check_repeats(warmup: Any, runs: Any) -> None:
    """``warmup`` >= 0 and ``runs`` >= 1, both ints (TypeError / ValueError naming the argument)."""
    for name, value, low in (("warmup", warmup, 0), ("runs", runs, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")


def measure_interleaved(
    funcs: Mapping[str, Callable[[], object]], warmup: int, runs: int, timer: Timer
) -> dict[str, TimingResult]:
    """Time several functions side by side in one run; a ``TimingResult`` per name.

    Each function is called ``warmup`` times untimed first, then ``runs`` times timed, and
    the timed calls are *interleaved*: round r times every function once, in the given order
    for even r and in reverse order for odd r, so a change in the machine during the run
    (load from another process, a CPU slowing down) hits every function alike. One sample is
    one ``timer.measure(func, warmup=0, runs=1, loops=1)`` (module 15's Timer, one call per sample
    and no calibration; a fake clock works);
    build each result with ``summarize`` from its ``runs`` samples (warmup calls are never
    samples).

    Example: funcs {"baseline": b, "candidate": c}, warmup=1, runs=4 calls
    b c (warmup) | b c | c b | b c | c b (timed), and returns two results of 4 samples each.
    """
    if not isinstance(funcs, Mapping) or not funcs:
        raise ValueError("funcs must be a non-empty mapping of name -> function")
    for name, func in funcs.items():
        if not callable(func):
            raise TypeError(f"funcs[{name!r}] must be callable, got {type(func).__name__}")
    check_repeats(warmup, runs)
    names = list(funcs)  # noqa: F841
    raise NotImplementedError(
        "measure_interleaved (module 20, benchmarking): implement it in katas/benchmarking/measure.py"
    )


# The time budget of one event's paired rounds, in seconds of the timer's clock (calibration
# and warmup not counted): rounds stop when the interval is precise enough or the budget is spent,
# whichever comes first, and never before the event's runs (at least min_rounds()). 10 s holds
# ~250 rounds of 2 x 20 ms samples, far more than 5 % needs on a quiet machine; a loaded one
# stops at the budget with a wider interval, which it reports.
BUDGET = 10.0  # pragma: no mutate


@dataclass(frozen=True)
class PairedTiming:
    """What :func:`measure_paired` measured: both sides' per-call timings (one sample per round,
    in round order, each a loop of ``loops`` calls) and the speedup's interval."""

    baseline: TimingResult
    candidate: TimingResult
    interval: SpeedupInterval
    loops: int


def measure_paired(
    baseline: Callable[[], object],
    candidate: Callable[[], object],
    timer: Timer,
    warmup: int,
    runs: int,
    *,
    precision: float = PRECISION,
    budget: float = BUDGET,
    min_time: float = DEFAULT_MIN_TIME,
    confidence: float = CONFIDENCE,
) -> PairedTiming:
    """Time ``baseline`` against ``candidate`` in paired rounds until the speedup is known.

    1. Warm up: ``warmup`` untimed calls of each.
    2. One loop count n for both, calibrated once per event: the larger of
       ``timer.calibrate(baseline, min_time)`` and ``timer.calibrate(candidate, min_time)``,
       so every sample of either side lasts >= ``min_time`` (module 15's autorange).
    3. Round r: one sample of each, ``timer.measure(f, warmup=0, runs=1, loops=n)``, baseline
       first in even rounds and candidate first in odd ones.
    4. After each round, once there are max(``runs``, :func:`min_rounds`) rounds: the interval
       :func:`speedup_interval`; stop when :func:`precise_enough` (half-width <= ``precision``
       times the speedup) or when ``budget`` seconds of ``timer.clock`` have passed since the
       first round.

    A fake clock that only moves when a fake workload runs makes every part of it testable.
    """
    for name, func in (("baseline", baseline), ("candidate", candidate)):
        if not callable(func):
            raise TypeError(f"{name} must be callable, got {type(func).__name__}")
    check_repeats(warmup, runs)
    check_precision(precision)
    check_seconds(budget, "budget")
    least = max(runs, min_rounds(confidence))
    for _ in range(warmup):
        baseline()
        candidate()
    loops = max(timer.calibrate(baseline, min_time), timer.calibrate(candidate, min_time))
    pair = (("baseline", baseline), ("candidate", candidate))
    samples: dict[str, list[float]] = {"baseline": [], "candidate": []}
    start = timer.clock()
    while True:
        for name, func in pair if len(samples["baseline"]) % 2 == 0 else pair[::-1]:
            samples[name].append(float(timer.measure(func, warmup=0, runs=1, loops=loops).samples[0]))
        if len(samples["baseline"]) < least:
            continue
        interval = speedup_interval(samples["baseline"], samples["candidate"], confidence)
        if precise_enough(interval, precision) or timer.clock() - start >= budget:
            break
    return PairedTiming(
        baseline=summarize(samples["baseline"], loops=loops),
        candidate=summarize(samples["candidate"], loops=loops),
        interval=interval,
        loops=loops,
    )


def underlying_module(model: Any) -> Module | None:
    """The tinytorch Module that does a model's work: the model itself, or its ``model``
    attribute (a generator wrapping a GPT); None if there is none."""
    if isinstance(model, Module):
        return model
    inner = getattr(model, "model", None)
    return inner if isinstance(inner, Module) else None


def workload_flops(model: Any, event: Event, counter: FLOPCounter | None = None) -> int | None:
    """FLOPs of one call of the event's work, by module 15's rules.

    Classification: ``counter.count_ops`` on the model's tinytorch network and the event's
    images (a fused numpy path computes the same function as the network it was built from).
    Generation: ``layer_flops`` summed over every layer call during one generation, so each
    decoding step counts, cached or not. None when ``model`` has no tinytorch layers to count.
    """
    module = underlying_module(model)
    if module is None:
        return None
    if event.task == "classify":
        counter = counter if counter is not None else FLOPCounter()
        return counter.count_ops(module, event.inputs()).total
    counts: list[int] = []

    def hook(layer: Module, inputs: tuple, output: Any) -> None:
        flops = layer_flops(layer, inputs, output)  # None for containers and layers without a rule
        if flops is not None:
            counts.append(flops)

    handles = [m.register_forward_hook(hook) for _, m in module.named_modules()]
    try:
        event.run(model)
    finally:
        for handle in handles:
            handle.remove()
    return sum(counts)


def train_step_time(model: Any, event: Event, timer: Timer, runs: int = 3) -> TimingResult | None:
    """Time one SGD step (zero_grad, forward, cross-entropy, backward, update) on a copy of
    ``model`` with the event's first 32 images: ``timer.measure(step, warmup=1, runs=runs)``.
    Unscored: inference events are judged on inference. None for a generation event or a model
    without trainable tinytorch parameters."""
    module = underlying_module(model)
    if event.task != "classify" or module is None or not module.parameters():
        return None
    trainee = copy.deepcopy(module).train()
    optimizer = SGD(trainee.parameters(), lr=1e-3)  # a copy: the submitted model never changes
    x = Tensor(event.inputs()[:TRAIN_BATCH])
    labels = event.labels()[:TRAIN_BATCH]

    def step() -> None:
        optimizer.zero_grad()
        loss = cross_entropy(trainee(x), labels)
        loss.backward()
        optimizer.step()

    return timer.measure(step, warmup=1, runs=runs)


def benchmark_model(
    model: Any, event: Event, profiler: Profiler, latency: TimingResult | None = None
) -> BenchmarkResult:
    """Measure ``model`` on ``event`` with module 15's tools; a :class:`BenchmarkResult`.

    * ``latency``: ``profiler.timer.measure`` of one event call (``event.run(model)``) with
      ``event.warmup`` and ``event.runs``, unless a ``latency`` measured elsewhere (side by
      side with the baseline) is given: then use that one and time nothing;
    * ``throughput`` = ``event.items_per_call / latency.p50`` (``math.inf`` if p50 is 0);
    * ``peak_memory_bytes`` from one call under ``profiler.memory.profile``, whose result (the
      outputs) also feeds ``event.check_quality`` for ``quality``;
    * ``flops`` = ``workload_flops(model, event, profiler.flops)``; ``train_step`` =
      ``train_step_time(model, event, profiler.timer)`` (an extra, never scored).

    Example: with a clock that ticks by 1 at every reading, every sample is 1.0 s and the MLP
    sprint's throughput is 359 images/s.
    """
    if not isinstance(event, Event):
        raise TypeError(f"event must be an Event, got {type(event).__name__}")
    if not isinstance(profiler, Profiler):
        raise TypeError(f"profiler must be a Profiler, got {type(profiler).__name__}")
    raise NotImplementedError(
        "benchmark_model (module 20, benchmarking): implement it in katas/benchmarking/measure.py"
    )
