"""Wall-clock timing with warmup and percentiles (module 15, profiling).

A single timing is noise: the first calls pay for cold caches and lazy allocation, and later
calls are disturbed by the operating system. So we warm up first (calls that are not timed),
then time many runs and summarise their distribution. The median (p50) is the typical cost;
the tail (p95, p99) is what a user waiting on a slow request feels.

Percentile method (numpy's default ``method="linear"``, Hyndman & Fan type 7): sort the n
samples into x[0] <= ... <= x[n-1]; the q-th percentile sits at the fractional index
h = (n - 1) * q / 100 and is interpolated between its neighbours,

    P(q) = x[i] + f * (x[j] - x[i]),    i = floor(h),  f = h - i,  j = min(i + 1, n - 1),

so P(0) = min, P(100) = max, and a single sample is every percentile (j stays inside the
array: with one sample, or at q = 100, there is no x[i + 1], and f is 0 there anyway).
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["TimingResult", "summarize", "Timer"]


@dataclass(frozen=True)
class TimingResult:
    """The summary of n timed runs. Every time is in seconds.

    ``samples`` (shape (n,), float64) keeps the measurement order; the statistics are
    min, mean, the 50th/95th/99th percentiles (method: see the module docstring) and max.
    """

    samples: np.ndarray
    min: float
    mean: float
    p50: float
    p95: float
    p99: float
    max: float

    @property
    def runs(self) -> int:
        return len(self.samples)

    def __str__(self) -> str:
        ms = 1e3
        return (
            f"{self.runs} runs: min {self.min * ms:.3f} ms, mean {self.mean * ms:.3f} ms, "
            f"p50 {self.p50 * ms:.3f} ms, p95 {self.p95 * ms:.3f} ms, p99 {self.p99 * ms:.3f} ms, "
            f"max {self.max * ms:.3f} ms"
        )


def _as_samples(samples: Sequence[float] | np.ndarray) -> np.ndarray:
    """Validate timing samples: a non-empty 1-D sequence of finite, non-negative seconds."""
    try:
        x = np.array(samples, dtype=np.float64)  # a copy: the caller's list is never touched
    except (TypeError, ValueError) as err:
        raise TypeError(f"samples must be a sequence of numbers, got {type(samples).__name__}") from err
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"samples must be a non-empty 1-D sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite: got NaN or inf")
    if np.any(x < 0):
        raise ValueError(f"samples are durations and must be >= 0, got min {x.min()!r}")
    return x


def _check_measure_args(func: object, warmup: object, runs: object) -> None:
    """Argument checks for :meth:`Timer.measure`: a callable, warmup >= 0, runs >= 1 (ints)."""
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    for name, value, low in (("warmup", warmup, 0), ("runs", runs, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")


def summarize(samples: Sequence[float] | np.ndarray) -> TimingResult:
    """Summarise timing samples (seconds) into a :class:`TimingResult`.

    min, mean and max as usual; p50, p95, p99 with linear interpolation between order
    statistics (Hyndman & Fan type 7, numpy's default). The samples are kept in their order.
    Every statistic lies in [min, max], the mean included: a float sum can round a mean of
    equal samples above them (``np.mean([0.1] * 3) > 0.1``), so it is clamped. The statistics
    are plain Python floats; ``samples`` is the validated copy, unsorted.

    Example: summarize([3, 1, 2]) has min 1, mean 2, p50 2, p95 2.9, p99 2.98, max 3
    (n = 3, so p95 sits at index h = 2 * 0.95 = 1.9, between x[1] = 2 and x[2] = 3).
    """
    x = _as_samples(samples)
    p50, p95, p99 = np.percentile(x, [50.0, 95.0, 99.0], method="linear")
    lo, hi = float(x.min()), float(x.max())
    return TimingResult(
        samples=x,
        min=lo,
        mean=min(max(float(x.mean()), lo), hi),  # rounding: mean([0.1] * 3) > 0.1 otherwise
        p50=float(p50),
        p95=float(p95),
        p99=float(p99),
        max=float(x.max()),
    )


class Timer:
    """Times a function: ``Timer().measure(func, warmup=3, runs=100)``.

    ``clock`` is a function returning seconds (default :func:`time.perf_counter`, the
    highest-resolution monotonic clock); tests pass a fake one.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__}")
        self.clock = clock

    def measure(self, func: Callable[[], object], warmup: int = 3, runs: int = 100) -> TimingResult:
        """Call ``func()`` ``warmup`` times untimed, then ``runs`` times timed; summarise.

        Sample i is ``clock()`` after the i-th timed call minus ``clock()`` just before it,
        so only ``func`` itself sits between the two readings.
        """
        _check_measure_args(func, warmup, runs)
        for _ in range(warmup):
            func()
        clock = self.clock
        samples = np.empty(runs, dtype=np.float64)
        for i in range(runs):
            start = clock()
            func()
            samples[i] = clock() - start
        return summarize(samples)
