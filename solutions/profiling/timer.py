"""Wall-clock timing with warmup, calibrated loops and percentiles (module 15, profiling).

A single timing is noise: the first calls pay for cold caches and lazy allocation, and later
calls are disturbed by the operating system. So we warm up first (calls that are not timed),
then time many samples and summarise their distribution. The median (p50) is the typical cost;
the tail (p95, p99) is what a user waiting on a slow request feels.

A fast call is too short to time alone: a 0.3 ms forward pass is shorter than one scheduler
time slice (a few ms), so a single preemption makes its sample several times too long, and the
clock readings and the interpreter's own work around them weigh in. Like ``timeit``'s autorange,
one sample times a loop of n calls, n calibrated so that the loop lasts at least ``min_time``
(default :data:`DEFAULT_MIN_TIME`, 20 ms), and reports the time per call:

    sample = (clock after the n calls - clock before them) / n.

Calibration tries n = 1, 2, 5, 10, 20, 50, 100, ... (1, 2 and 5 times each power of ten), timing
each trial as one loop of n calls, and keeps the first n whose loop lasted >= ``min_time``; a
call that alone lasts ``min_time`` or more gets n = 1.

Percentile method (numpy's default ``method="linear"``, Hyndman & Fan type 7): sort the n
samples into x[0] <= ... <= x[n-1]; the q-th percentile sits at the fractional index
h = (n - 1) * q / 100 and is interpolated between its neighbours,

    P(q) = x[i] + f * (x[j] - x[i]),    i = floor(h),  f = h - i,  j = min(i + 1, n - 1),

so P(0) = min, P(100) = max, and a single sample is every percentile (j stays inside the
array: with one sample, or at q = 100, there is no x[i + 1], and f is 0 there anyway).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_MIN_TIME", "TimingResult", "summarize", "Timer"]

# The least duration of one timed sample, in seconds: timeit's autorange uses 0.2 s, pyperf
# 0.1 s. 20 ms spans several scheduler time slices (a few ms each on Linux), so a preemption
# moves a sample by a part of it rather than by many times the call; the clock's resolution
# (1 ns for time.perf_counter on Linux) is nothing beside it; and 100 samples of a fast call
# still take about 2 s (pass a larger min_time for fewer, longer samples). A call that lasts
# 20 ms or more is timed once per sample.
DEFAULT_MIN_TIME = 0.02


@dataclass(frozen=True)
class TimingResult:
    """The summary of n timed samples. Every time is in seconds, per call of the function.

    ``samples`` (shape (n,), float64) keeps the measurement order; the statistics are
    min, mean, the 50th/95th/99th percentiles (method: see the module docstring) and max.
    ``loops`` is the number of calls each sample timed (1: one call per sample); each sample
    is its loop's time divided by ``loops``.
    """

    samples: np.ndarray
    min: float
    mean: float
    p50: float
    p95: float
    p99: float
    max: float
    loops: int = 1

    @property
    def runs(self) -> int:
        return len(self.samples)

    def __str__(self) -> str:
        ms = 1e3
        head = f"{self.runs} runs" if self.loops == 1 else f"{self.runs} runs of {self.loops} calls, per call"
        return (
            f"{head}: min {self.min * ms:.3f} ms, mean {self.mean * ms:.3f} ms, "
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


def _check_count(name: str, value: object, low: int) -> None:
    """An int (not a bool) >= low, else TypeError / ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def _check_calibrate_args(func: object, min_time: object) -> None:
    """Argument checks for :meth:`Timer.calibrate`: a callable, and min_time a finite number of
    seconds >= 0 (an infinite one would never be reached)."""
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    if isinstance(min_time, bool) or not isinstance(min_time, numbers.Real):
        raise TypeError(f"min_time must be a number of seconds, got {type(min_time).__name__}")
    if not math.isfinite(min_time) or min_time < 0:
        raise ValueError(f"min_time must be finite and >= 0 seconds, got {min_time!r}")


def _check_measure_args(func: object, warmup: object, runs: object, min_time: object, loops: object) -> None:
    """Argument checks for :meth:`Timer.measure`: a callable, warmup >= 0, runs >= 1 (ints),
    min_time as for :meth:`Timer.calibrate`, and loops None or an int >= 1."""
    _check_calibrate_args(func, min_time)
    _check_count("warmup", warmup, 0)
    _check_count("runs", runs, 1)
    if loops is not None:
        _check_count("loops", loops, 1)


def summarize(samples: Sequence[float] | np.ndarray, loops: int = 1) -> TimingResult:
    """Summarise timing samples (seconds per call) into a :class:`TimingResult`.

    min, mean and max as usual; p50, p95, p99 with linear interpolation between order
    statistics (Hyndman & Fan type 7, numpy's default). The samples are kept in their order.
    Every statistic lies in [min, max], the mean included: a float sum can round a mean of
    equal samples above them (``np.mean([0.1] * 3) > 0.1``), so it is clamped. The statistics
    are plain Python floats; ``samples`` is the validated copy, unsorted. ``loops`` (an int
    >= 1) is recorded as the result's ``loops``: the samples are already per call.

    Example: summarize([3, 1, 2]) has min 1, mean 2, p50 2, p95 2.9, p99 2.98, max 3
    (n = 3, so p95 sits at index h = 2 * 0.95 = 1.9, between x[1] = 2 and x[2] = 3).
    """
    x = _as_samples(samples)
    _check_count("loops", loops, 1)
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
        loops=int(loops),
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

    def calibrate(self, func: Callable[[], object], min_time: float = DEFAULT_MIN_TIME) -> int:
        """The number of calls of ``func`` one sample should time: ``timeit``'s autorange.

        Try n = 1, 2, 5, 10, 20, 50, 100, ... in turn; each trial reads ``clock()``, calls
        ``func()`` n times in a row, reads ``clock()`` again. Return the first n whose trial
        lasted >= ``min_time`` seconds (each trial on its own: earlier trials' times are not
        added up). A call that alone lasts ``min_time`` or more gives 1, after one trial.

        Example: a call of 3 ms and min_time 20 ms: trials of 1, 2, 5 calls last 3, 6 and 15
        ms, the trial of 10 calls 30 ms >= 20 ms, so 10 (after 1 + 2 + 5 + 10 = 18 calls).

        Hint: an endless outer loop over the powers of ten (1, 10, 100, ...) and an inner
        ``for step in (1, 2, 5)``; return n from inside as soon as a trial is long enough.
        """
        _check_calibrate_args(func, min_time)
        clock = self.clock
        power = 1
        while True:
            for step in (1, 2, 5):
                n = step * power
                start = clock()
                for _ in range(n):
                    func()
                if clock() - start >= min_time:
                    return n
            power *= 10

    def measure(
        self,
        func: Callable[[], object],
        warmup: int = 3,
        runs: int = 100,
        *,
        min_time: float = DEFAULT_MIN_TIME,
        loops: int | None = None,
    ) -> TimingResult:
        """Time ``func()``: ``runs`` samples, each a loop of n calls, reported per call.

        1. Warm up: call ``func()`` ``warmup`` times, untimed. Warmup counts calls, not loops,
           and comes before calibration, so a slow first call cannot choose n.
        2. n = ``loops`` if given, else ``self.calibrate(func, min_time)`` (its trials are
           untimed warmup too: they never become samples).
        3. Sample i: read ``clock()``, call ``func()`` n times, read ``clock()``; the sample is
           (second reading - first) / n. Two readings per sample, none inside the loop.
        4. ``summarize(samples, loops=n)``.

        ``loops=1`` times one call per sample and skips calibration. Calls in all:
        warmup + (the calibration's 1 + 2 + 5 + ... + n) + runs * n.

        Example: warmup 3, a call of 3 ms, min_time 20 ms, runs 100: 3 warmup calls, 18
        calibration calls (n = 10), then 100 loops of 10 calls of 30 ms each; every sample is
        30 ms / 10 = 3 ms, and the result's ``loops`` is 10.
        """
        _check_measure_args(func, warmup, runs, min_time, loops)
        for _ in range(warmup):
            func()
        n = self.calibrate(func, min_time) if loops is None else loops
        clock = self.clock
        samples = np.empty(runs, dtype=np.float64)
        for i in range(runs):
            start = clock()
            for _ in range(n):
                func()
            samples[i] = (clock() - start) / n
        return summarize(samples, loops=n)
