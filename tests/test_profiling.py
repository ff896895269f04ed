"""Module 15 (profiling): a timer with percentiles, a memory profiler, a FLOP counter and a
profiling ``with`` block.

Every test here fails on the untouched stubs (katas/profiling) and passes on the reference
(solutions/profiling). Nothing here depends on how fast the machine is: timings come from fake
clocks that only move when a test says so, and memory from arrays large enough (8 MB) that the
interpreter's own bookkeeping (a few hundred bytes) cannot hide them.

One file, whole: it is the module's suite as the registry names it (``tests = ...`` in
tinytorch/course/modules.toml), the file ``tinytorch test profiling`` runs, the grader collects and
the classic mistakes' ``caught_by`` names; it reads in sections, one per task.
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc

import numpy as np
import pytest
import tinytorch.perf.profiling.context as profiling_context
import tinytorch.perf.profiling.memory as profiling_memory
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import ConvCase, conv_cases, timing_samples
from tinytorch.perf.profiling import (
    FLOPCounter,
    MemoryProfiler,
    MemoryResult,
    ProfilerContext,
    Timer,
    TimingResult,
    instrument,
    layer_flops,
    summarize,
)

from tinytorch import zoo
from tinytorch.attention import MultiHeadAttention
from tinytorch.conv import Conv2d, MaxPool2d, im2col
from tinytorch.layers import GELU, Flatten, LayerNorm, Linear, Module, ReLU, Sequential
from tinytorch.tensor import Tensor
from tinytorch.transformer import GPT

EPS64 = float(np.finfo(np.float64).eps)


class Boom(Exception):
    """Raised on purpose inside profiled code. Not a RuntimeError: the stubs' NotImplementedError
    is one, and must not be mistaken for the exception a test expects."""


class FakeClock:
    """A clock that moves only when a test advances it, so every duration is known exactly.
    It starts at 1000, not 0: a duration measured from a forgotten start of 0 shows."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


# --------------------------------------------------------------------------------------------
# summarize: min, mean, p50, p95, p99, max of timing samples
# --------------------------------------------------------------------------------------------


def assert_summary_of(result: TimingResult, samples: list[float]) -> None:
    """``result`` summarises ``samples``: numpy's linear-interpolation percentiles, exact order.

    Tolerances (samples are >= 0, so |hi - lo| <= max|x|). The fractional index
    h = (n - 1) * q / 100 costs up to two roundings, eps * h <= eps * (n - 1) apart between two
    correct ways of computing it (numpy rounds q / 100 first), which moves the interpolated
    value by up to that times |hi - lo|; the interpolation lo + f * (hi - lo) itself adds three
    roundings of eps/2 * max|x| on each side. Hence (2 (n - 1) + 4) eps max|x|: hundreds of eps,
    far below the gap to any other percentile method. A mean is a sum of n terms: recursive
    summation errs by at most (n - 1) eps * max|x| (Higham, eq. 4.4), pairwise summation less.
    """
    x = np.asarray(samples, dtype=np.float64)
    assert isinstance(result, TimingResult), (
        f"summarize must return a TimingResult, got {type(result).__name__}"
    )
    np.testing.assert_array_equal(result.samples, x, err_msg="samples must be kept, in measurement order")
    scale = float(np.max(np.abs(x)))
    tolerance = (2 * (len(x) - 1) + 4) * EPS64 * scale
    assert result.min == x.min() and result.max == x.max(), (
        f"min/max = {result.min!r}/{result.max!r}, the samples' min/max are {x.min()!r}/{x.max()!r}"
    )
    for q, got in ((50, result.p50), (95, result.p95), (99, result.p99)):
        want = float(np.percentile(x, q, method="linear"))
        assert abs(got - want) <= tolerance, f"p{q} = {got!r}, numpy's linear method gives {want!r}"
    assert abs(result.mean - float(np.mean(x))) <= len(x) * EPS64 * scale, (
        f"mean = {result.mean!r}, numpy's mean of the samples is {float(np.mean(x))!r}"
    )
    assert result.min <= result.p50 <= result.p95 <= result.p99 <= result.max, (
        f"percentiles out of order: min {result.min!r} p50 {result.p50!r} p95 {result.p95!r} "
        f"p99 {result.p99!r} max {result.max!r}"
    )


def test_summarize_worked_example():
    # n = 3 sorted (1, 2, 3): p95 sits at index 2 * 0.95 = 1.9 -> 2 + 0.9 * (3 - 2) = 2.9.
    result = summarize([3.0, 1.0, 2.0])
    assert result.samples.tolist() == [3.0, 1.0, 2.0], (
        f"samples = {result.samples.tolist()}: they must be kept in measurement order"
    )
    assert (result.min, result.mean, result.p50, result.max) == (1.0, 2.0, 2.0, 3.0), (
        f"(min, mean, p50, max) = {(result.min, result.mean, result.p50, result.max)}, expected (1, 2, 2, 3)"
    )
    assert result.p95 == pytest.approx(2.9, rel=4 * EPS64), (
        f"p95 = {result.p95!r}, expected 2.9 (index h = 1.9, between 2 and 3)"
    )
    assert result.p99 == pytest.approx(2.98, rel=4 * EPS64), (
        f"p99 = {result.p99!r}, expected 2.98 (index h = 1.98, between 2 and 3)"
    )
    assert result.runs == 3, f"runs = {result.runs}, expected 3 (one per sample)"


@given(samples=timing_samples())
@example(samples=[0.25])  # one sample is every percentile
@example(samples=[0.1] * 7)  # constant: (1 - f) * lo + f * hi would drift off 0.1
@example(samples=[1.3, 1.3])  # ... and it does here: p95 = 0.05 * 1.3 + 0.95 * 1.3 = 1.2999999999999998 < p50
@example(samples=[0.1] * 3 + [0.2])
@example(samples=[1e-9, 1e6])  # fifteen orders of magnitude
@example(samples=[5.0, 4.0, 3.0, 2.0, 1.0])  # unsorted
@example(samples=[0.0, 0.0, 1.0])
def test_summarize_agrees_with_numpy_and_keeps_percentiles_ordered(samples):
    before = list(samples)
    result = summarize(samples)
    assert samples == before, "summarize must not modify its input"
    assert_summary_of(result, samples)


def test_summarize_does_not_sort_an_array_in_place():
    samples = np.array([3.0, 1.0, 2.0])
    result = summarize(samples)
    np.testing.assert_array_equal(
        samples, [3.0, 1.0, 2.0], err_msg="the caller's array must not be reordered"
    )
    np.testing.assert_array_equal(
        result.samples, [3.0, 1.0, 2.0], err_msg="samples must be kept in measurement order"
    )


def test_summarize_rejects_bad_samples_and_accepts_a_single_one():
    for bad in ([], [1.0, float("nan")], [1.0, float("inf")], [-1.0, 2.0]):
        with pytest.raises(ValueError, match="samples"):
            summarize(bad)
    one = summarize([0.5])
    assert (one.min, one.mean, one.p50, one.p95, one.p99, one.max) == (0.5,) * 6, (
        "one sample: min, mean, p50, p95, p99 and max must all be that sample (0.5)"
    )


# --------------------------------------------------------------------------------------------
# Timer: warmup excluded, a calibrated loop of calls per sample, reported per call
# --------------------------------------------------------------------------------------------


def clocked_function(clock: FakeClock, durations: list[float]):
    """A function whose i-th call takes durations[i] on ``clock``; returns (func, call counter)."""
    calls = [0]

    def func() -> None:
        clock.now += durations[calls[0]]
        calls[0] += 1

    return func, calls


WARMUP_COST = 1e9  # a warmup call that leaked into the samples would stick out by far


def autorange_trials(cost: float, min_time: float) -> list[int]:
    """The loop counts calibration tries for a call lasting ``cost``, the chosen one last: the
    k-th count is (1, 2, 5)[k % 3] * 10 ** (k // 3), and the first whose loop lasts >= min_time
    is chosen (timeit's autorange). Exact for the integer and dyadic costs used here."""
    trials: list[int] = []
    for k in range(60):
        trials.append((1, 2, 5)[k % 3] * 10 ** (k // 3))
        if trials[-1] * cost >= min_time:
            return trials
    raise AssertionError(f"no count up to {trials[-1]} lasts {min_time} at {cost} per call")


@given(warmup=st.integers(0, 5), timed=st.lists(st.integers(0, 10**6).map(float), min_size=1, max_size=30))
@example(warmup=0, timed=[7.0])  # the smallest valid measurement
@example(warmup=3, timed=[5.0, 5.0, 5.0])
def test_measure_times_only_the_timed_runs(warmup, timed):
    # loops=1: one call per sample, no calibration, so sample i is the i-th timed call itself.
    # Integer durations: every clock reading and difference is exact in float64 (< 2**53).
    clock = FakeClock()
    func, calls = clocked_function(clock, [WARMUP_COST] * warmup + timed)
    result = Timer(clock=clock).measure(func, warmup=warmup, runs=len(timed), loops=1)
    assert calls[0] == warmup + len(timed), (
        "func must be called warmup + runs times (loops=1: no calibration)"
    )
    assert result.runs == len(timed), (
        f"runs = {result.runs}, expected {len(timed)} timed samples (warmup calls are not samples)"
    )
    assert result.loops == 1, f"result.loops = {result.loops}, expected 1 (loops=1 was given)"
    assert_summary_of(result, timed)


@given(cost=st.integers(1, 1000).map(float), min_time=st.integers(0, 20_000).map(float))
@example(cost=30.0, min_time=20.0)  # a call slower than min_time: one trial, count 1
@example(cost=20.0, min_time=20.0)  # exactly min_time counts: >=, not >
@example(cost=2.0, min_time=10.0)  # the loop of 5 lasts exactly min_time: 5, not 10
@example(cost=1.0, min_time=3.0)  # 1, 2, 5: doubling (1, 2, 4) would stop at 4
@example(cost=1.0, min_time=2.0)  # 2: powers of ten alone (1, 10) would give 10
@example(cost=1.0, min_time=6.0)  # 10: adding the trials up (1 + 2 + 5 = 8 >= 6) would stop at 5
@example(cost=1.0, min_time=150.0)  # 200, in the third decade
@example(cost=3.0, min_time=0.0)  # min_time 0: the first trial, count 1
def test_calibrate_picks_the_first_count_of_1_2_5_10_20_50_that_lasts_min_time(cost, min_time):
    clock = FakeClock()
    trials = autorange_trials(cost, min_time)
    func, calls = clocked_function(clock, [cost] * sum(trials))
    n = Timer(clock=clock).calibrate(func, min_time=min_time)
    assert n == trials[-1], (
        f"calibrate = {n}: a call of {cost} s and min_time {min_time} s need {trials[-1]} calls, "
        f"the first count of 1, 2, 5, 10, 20, 50, ... whose loop lasts >= min_time (tried {trials})"
    )
    assert calls[0] == sum(trials), (
        f"func called {calls[0]} times; each trial is a fresh loop, {' + '.join(map(str, trials))} "
        f"= {sum(trials)} calls"
    )
    assert clock.reads == 2 * len(trials), (
        f"{clock.reads} clock readings; two per trial (before and after its loop) = {2 * len(trials)}"
    )


@given(
    warmup=st.integers(0, 3),
    cost=st.integers(1, 50).map(float),
    min_time=st.integers(1, 400).map(float),
    runs=st.integers(1, 8),
    pattern=st.lists(st.integers(0, 10**4).map(float), min_size=1, max_size=7),
)
@example(warmup=1, cost=1.0, min_time=6.0, runs=3, pattern=[1.0, 3.0, 8.0])  # 10 calls per sample
@example(warmup=0, cost=100.0, min_time=20.0, runs=4, pattern=[100.0, 300.0])  # slower: one call
@example(warmup=2, cost=2.0, min_time=10.0, runs=2, pattern=[0.0, 0.0, 0.0, 0.0, 10.0])  # a 0 s call
def test_measure_times_a_calibrated_loop_per_sample_and_reports_per_call(
    warmup, cost, min_time, runs, pattern
):
    # Warmup calls cost 10**9 s, calibration calls `cost`, and the timed calls cycle through
    # `pattern`. All integers: every reading, difference and sum is exact in float64.
    trials = autorange_trials(cost, min_time)
    n = trials[-1]
    timed = [pattern[k % len(pattern)] for k in range(runs * n)]
    clock = FakeClock()
    func, calls = clocked_function(clock, [WARMUP_COST] * warmup + [cost] * sum(trials) + timed)
    result = Timer(clock=clock).measure(func, warmup=warmup, runs=runs, min_time=min_time)
    assert result.loops == n, (
        f"result.loops = {result.loops}, expected {n}: calibrated after the warmup on calls of {cost} s "
        f"(min_time {min_time} s)"
    )
    assert calls[0] == warmup + sum(trials) + runs * n, (
        f"func called {calls[0]} times, expected warmup {warmup} + calibration {sum(trials)} "
        f"+ runs {runs} x loops {n} = {warmup + sum(trials) + runs * n}"
    )
    assert clock.reads == 2 * (len(trials) + runs), (
        f"{clock.reads} clock readings, expected two per calibration trial and two per sample "
        f"(none inside a sample's loop) = {2 * (len(trials) + runs)}"
    )
    per_call = [sum(timed[i * n : (i + 1) * n]) / n for i in range(runs)]
    # One correctly rounded division of an exact loop time by n; (end - start) * (1 / n) rounds
    # twice: within 2 eps relative.
    np.testing.assert_allclose(
        result.samples, per_call, rtol=2 * EPS64, atol=0,
        err_msg=f"each sample is its loop's time divided by loops = {n} (seconds per call)",
    )
    assert_summary_of(result, result.samples.tolist())  # statistics of the samples, in order


def test_measure_warms_up_before_calibrating():
    # The first two calls are cold (10**9 s). Calibrating first, the cold call alone would last
    # min_time and fix the count at 1; warmed up, a call lasts 1 s and min_time 6 s needs 10.
    clock = FakeClock()
    func, calls = clocked_function(clock, [WARMUP_COST] * 2 + [1.0] * (18 + 5 * 10))
    result = Timer(clock=clock).measure(func, warmup=2, runs=5, min_time=6.0)
    assert result.loops == 10, (
        f"result.loops = {result.loops}, expected 10: warm up first, then calibrate on warm calls of 1 s"
    )
    assert result.samples.tolist() == [1.0] * 5, (
        f"samples = {result.samples.tolist()}, expected five samples of 1 s per call"
    )


def test_a_call_slower_than_min_time_is_timed_once_per_sample():
    clock = FakeClock()
    func, calls = clocked_function(clock, [WARMUP_COST] * 3 + [1.0] * (1 + 100))
    result = Timer(clock=clock).measure(func)  # a 1 s call, the default min_time (20 ms)
    assert result.loops == 1, f"result.loops = {result.loops}: a 1 s call lasts min_time alone, expected 1"
    assert calls[0] == 3 + 1 + 100, (
        f"func called {calls[0]} times, expected 3 warmup + 1 calibration trial + 100 samples of 1 call"
    )
    assert result.samples.tolist() == [1.0] * 100, "samples must be the 100 timed calls of 1 s each"


def test_measure_with_fixed_loops_skips_calibration():
    clock = FakeClock()
    func, calls = clocked_function(clock, [WARMUP_COST] + [1.0, 2.0, 3.0, 6.0] * 3)
    result = Timer(clock=clock).measure(func, warmup=1, runs=3, loops=4)
    assert calls[0] == 1 + 3 * 4, f"func called {calls[0]} times, expected 1 warmup + 3 samples x 4 loops"
    assert clock.reads == 2 * 3, f"{clock.reads} clock readings, expected 2 per sample and no calibration"
    assert result.loops == 4, f"result.loops = {result.loops}, expected the given 4"
    assert result.samples.tolist() == [3.0] * 3, (
        f"samples = {result.samples.tolist()}: each loop lasts 1 + 2 + 3 + 6 = 12 s, 3 s per call"
    )


def test_measure_defaults_to_3_warmup_100_runs_and_20_ms_samples():
    # A call of 2**-8 s (3.9 ms): loops of 1, 2, 5 last 3.9, 7.8, 19.5 ms < 20 ms; 10 calls 39 ms.
    cost = 2.0**-8
    clock = FakeClock()
    func, calls = clocked_function(clock, [WARMUP_COST] * 3 + [cost] * (1 + 2 + 5 + 10 + 100 * 10))
    result = Timer(clock=clock).measure(func)
    assert result.loops == 10, (
        f"result.loops = {result.loops}: a call of 3.9 ms needs 10 calls to last the default 20 ms"
    )
    assert calls[0] == 3 + 18 + 1000, (
        f"func called {calls[0]} times, expected 3 warmup + 18 calibration + 100 runs x 10 loops = 1021"
    )
    assert result.samples.tolist() == [cost] * 100, "samples: 100 samples of 2**-8 s per call"


def test_summarize_records_the_loop_count():
    assert summarize([2.0, 1.0]).loops == 1, "summarize's loops defaults to 1 (one call per sample)"
    result = summarize([2.0, 1.0], loops=50)
    assert result.loops == 50, f"result.loops = {result.loops}, expected the given 50"
    assert result.samples.tolist() == [2.0, 1.0] and result.p50 == 1.5, (
        "summarize(samples, loops) summarises the samples as given: they are per call already"
    )
    assert str(result).startswith("2 runs of 50 calls, per call: min 1000.000 ms"), (
        f"str of a TimingResult with loops: {str(result)!r}"
    )


def test_measure_with_the_real_clock():
    timer = Timer()
    assert timer.clock is time.perf_counter, "Timer().clock must default to time.perf_counter"
    result = timer.measure(lambda: sum(range(100)), warmup=1, runs=5, min_time=0.002)
    assert result.runs == 5, f"runs = {result.runs}, expected 5"
    assert result.loops in autorange_trials(1.0, 10**12), (
        f"result.loops = {result.loops}: must be one of 1, 2, 5, 10, 20, 50, ..."
    )
    assert np.all(result.samples >= 0), "every sample read from the real clock must be a duration >= 0"
    assert result.min <= result.p50 <= result.p95 <= result.p99 <= result.max, (
        "percentiles out of order: min <= p50 <= p95 <= p99 <= max must hold"
    )


def test_measure_rejects_bad_arguments_at_the_boundary():
    timer = Timer(clock=FakeClock())
    with pytest.raises(ValueError, match="runs"):
        timer.measure(lambda: None, runs=0)
    with pytest.raises(ValueError, match="warmup"):
        timer.measure(lambda: None, warmup=-1)
    with pytest.raises(TypeError, match="runs"):
        timer.measure(lambda: None, runs=2.5)
    with pytest.raises(TypeError, match="func"):
        timer.measure(42)
    # ... and the boundary itself is valid: no warmup, a single run of one call.
    calls = []
    result = timer.measure(lambda: calls.append(1), warmup=0, runs=1, loops=1)
    assert len(calls) == 1 and result.runs == 1, (
        f"warmup=0, runs=1, loops=1 called func {len(calls)} times and kept {result.runs} samples, "
        "expected 1 and 1"
    )


def test_min_time_and_loops_are_checked_and_min_time_0_is_valid():
    timer = Timer(clock=FakeClock())
    for bad in (-0.001, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="min_time"):
            timer.measure(lambda: None, min_time=bad)
        with pytest.raises(ValueError, match="min_time"):
            timer.calibrate(lambda: None, min_time=bad)
    for bad in ("20 ms", True, None):
        with pytest.raises(TypeError, match="min_time"):
            timer.measure(lambda: None, min_time=bad)
    with pytest.raises(ValueError, match="loops"):
        timer.measure(lambda: None, loops=0)
    for bad in (2.5, True):
        with pytest.raises(TypeError, match="loops"):
            timer.measure(lambda: None, loops=bad)
    with pytest.raises(TypeError, match="func"):
        timer.calibrate("not a function")
    with pytest.raises(ValueError, match="loops"):
        summarize([1.0], loops=0)
    # min_time 0 is valid: the first trial (one call) lasts >= 0 s, so one call per sample.
    clock = FakeClock()
    func, calls = clocked_function(clock, [1.0] * 3)
    result = Timer(clock=clock).measure(func, warmup=0, runs=2, min_time=0.0)
    assert (result.loops, calls[0]) == (1, 3), (
        f"min_time=0: loops {result.loops} after {calls[0]} calls, expected 1 after 1 trial call + 2 samples"
    )


# --------------------------------------------------------------------------------------------
# MemoryProfiler: peak and net bytes with tracemalloc
# --------------------------------------------------------------------------------------------

N = 1_000_000  # float64 elements: an 8 MB array
NBYTES = 8 * N
# Interpreter noise: a profiled call allocates a frame, a few small ints and tuples, a few hundred
# bytes in all (measured: under 1 KiB). 64 KiB is far above that and still under 1 % of NBYTES.
NOISE = 64 * 1024


def allocate_and_free() -> None:
    a = np.ones(N)
    a += 1.0
    del a


def allocate_and_keep() -> np.ndarray:
    return np.ones(N)


def test_peak_counts_an_array_the_function_frees():
    was_tracing = tracemalloc.is_tracing()
    mem = MemoryProfiler().profile(allocate_and_free)
    assert mem.peak_bytes >= NBYTES, "numpy's buffer must show in the peak"
    assert abs(mem.net_bytes) <= NOISE, "a freed array leaves nothing behind"
    assert mem.peak_bytes <= NBYTES + NOISE, (
        f"peak_bytes = {mem.peak_bytes}, more than the 8 MB array plus {NOISE} bytes of noise"
    )
    assert mem.result is None, f"result = {mem.result!r}: the profiled function returned None"
    assert tracemalloc.is_tracing() == was_tracing, "tracing must be left as it was found"


def test_net_counts_the_array_the_function_returns():
    mem = MemoryProfiler().profile(allocate_and_keep)
    assert isinstance(mem.result, np.ndarray) and mem.result.shape == (N,), (
        "result must be the array the profiled function returned"
    )
    assert NBYTES <= mem.net_bytes <= NBYTES + NOISE, (
        f"net_bytes = {mem.net_bytes}, expected the returned 8 MB array ({NBYTES}) plus at most {NOISE}"
    )
    assert mem.peak_bytes >= mem.net_bytes, (
        f"peak_bytes = {mem.peak_bytes} < net_bytes = {mem.net_bytes}: the peak is at least what is kept"
    )


def test_start_and_stop_around_a_block():
    profiler = MemoryProfiler()
    profiler.start()
    kept = np.zeros(N)
    mem = profiler.stop()
    assert NBYTES <= mem.net_bytes <= NBYTES + NOISE, (
        f"net_bytes = {mem.net_bytes}, expected the 8 MB array kept between start and stop ({NBYTES})"
    )
    assert kept.nbytes == NBYTES, "the array kept in the block"
    with pytest.raises(RuntimeError, match="start"):
        profiler.stop()  # stopped already


def test_nested_profilers_keep_the_outer_peak():
    def inner() -> np.ndarray:
        return np.ones(N // 100)  # 80 KB

    def outer():
        allocate_and_free()  # 8 MB come and go before the inner profiler resets the peak
        return MemoryProfiler().profile(inner)

    was_tracing = tracemalloc.is_tracing()
    mem = MemoryProfiler().profile(outer)
    inner_mem = mem.result
    assert mem.peak_bytes >= NBYTES, "the inner profiler erased the outer one's peak"
    assert NBYTES // 100 <= inner_mem.peak_bytes <= NBYTES // 100 + NOISE, "the inner peak is its own"
    assert tracemalloc.is_tracing() == was_tracing, "tracing must be left as it was found"


def test_tracing_started_by_someone_else_keeps_running():
    # Someone traces already and holds 8 MB: the profiler measures from where it starts, so
    # neither those bytes nor that caller's peak leak into its numbers.
    was_tracing = tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        held = np.ones(N)
        kept = MemoryProfiler().profile(allocate_and_keep)
        freed = MemoryProfiler().profile(allocate_and_free)
        assert tracemalloc.is_tracing(), "the profiler stopped tracing it did not start"
    finally:
        if not was_tracing:
            tracemalloc.stop()
    assert held.nbytes == NBYTES, "the array held by the caller"
    assert NBYTES <= kept.net_bytes <= NBYTES + NOISE, (
        f"net_bytes = {kept.net_bytes}, expected the returned 8 MB ({NBYTES}) alone, not the caller's"
    )
    assert NBYTES <= freed.peak_bytes <= NBYTES + NOISE, "the peak is relative to the start"
    assert abs(freed.net_bytes) <= NOISE, (
        f"net_bytes = {freed.net_bytes} of a function that frees what it allocates, expected about 0"
    )


def test_profile_stops_when_the_function_raises():
    was_tracing = tracemalloc.is_tracing()

    def fails():
        raise Boom("inside the profiled function")

    with pytest.raises(Boom):
        MemoryProfiler().profile(fails)
    assert tracemalloc.is_tracing() == was_tracing, (
        "tracing must be left as it was found when the function raises"
    )
    assert MemoryProfiler().profile(allocate_and_keep).net_bytes >= NBYTES, (
        "a profiler used after a failed profile() must measure the returned 8 MB in net_bytes"
    )


def test_profile_rejects_a_non_callable_and_returns_the_result():
    with pytest.raises(TypeError, match="func"):
        MemoryProfiler().profile(np.ones(3))
    assert MemoryProfiler().profile(lambda: "done").result == "done", (
        "result must be the profiled function's return value"
    )


# --------------------------------------------------------------------------------------------
# FLOPCounter: 2 FLOPs per multiply-add, one per bias add, per layer
# --------------------------------------------------------------------------------------------


def count(model: Module, x) -> dict:
    return FLOPCounter().count_ops(model, x)


def test_linear_worked_example():
    # x (2, 3) @ W (3, 4): 2 * 4 dot products of length 3 = 24 multiply-adds = 48 FLOPs;
    # the bias adds one FLOP per output element: 8 more.
    x = np.ones((2, 3), dtype=np.float32)
    assert count(Linear(3, 4, bias=False), x).total == 48, (
        "FLOPs of Linear(3, 4, bias=False) on (2, 3): 2 * 2 * 3 * 4 = 48"
    )
    result = count(Linear(3, 4), x)
    assert result.total == 56, f"total = {result.total}, expected 48 + 8 bias adds = 56"
    assert result.per_layer == {"Linear": 56}, "a bare layer is named after its class"
    # leading dimensions are rows: (2, 5, 3) is 10 rows of 3
    assert count(Linear(3, 4), np.ones((2, 5, 3), dtype=np.float32)).total == 5 * 56, (
        "FLOPs of Linear(3, 4) on (2, 5, 3): 10 rows, 5 * 56"
    )


@given(case=conv_cases(max_kernel=4), bias=st.booleans())
@example(case=ConvCase(n=1, c_in=1, c_out=1, h=1, w=1, kh=1, kw=1), bias=False)
@example(case=ConvCase(n=2, c_in=3, c_out=2, h=3, w=3, kh=3, kw=3), bias=True)  # one output pixel
@example(case=ConvCase(n=1, c_in=2, c_out=3, h=7, w=5, kh=2, kw=3, stride=3, padding=2), bias=True)
def test_conv_flops_equal_its_im2col_product(case, bias):
    conv = Conv2d(case.c_in, case.c_out, (case.kh, case.kw), case.stride, case.padding, bias=bias)
    x = np.zeros((case.n, case.c_in, case.h, case.w), dtype=np.float32)
    cols = im2col(x, (case.kh, case.kw), case.stride, case.padding)  # the (M, K) patch matrix
    M, K = cols.shape
    gemm = 2 * M * K * case.c_out  # (M, K) @ (K, c_out)
    bias_adds = M * case.c_out if bias else 0  # one per element of the (M, c_out) product
    assert count(conv, x).total == gemm + bias_adds, (
        f"Conv2d FLOPs, expected its im2col product: 2 * {M} * {K} * {case.c_out} + {bias_adds} bias adds"
    )


@given(
    n=st.integers(1, 3),
    c_in=st.integers(1, 6),
    c_out=st.integers(1, 6),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    bias=st.booleans(),
)
def test_a_1x1_convolution_counts_as_the_equivalent_linear(n, c_in, c_out, h, w, bias):
    # A 1x1 convolution is a Linear(c_in, c_out) applied at each of the n * h * w pixels.
    conv = count(Conv2d(c_in, c_out, 1, bias=bias), np.zeros((n, c_in, h, w), dtype=np.float32))
    linear = count(Linear(c_in, c_out, bias=bias), np.zeros((n * h * w, c_in), dtype=np.float32))
    assert conv.total == linear.total, (
        f"FLOPs of a 1x1 conv {conv.total} != FLOPs of the equivalent Linear {linear.total}"
    )


def build_model(kind: str, width: int, seed: int) -> tuple[Module, object]:
    """A small model of ``kind`` and a function batch -> input of that batch size."""
    rng = np.random.default_rng(seed)
    if kind == "mlp":
        model = Sequential(Linear(width, 2 * width, rng=rng), ReLU(), Linear(2 * width, 3, rng=rng), GELU())
        return model, lambda b: rng.standard_normal((b, width)).astype(np.float32)
    if kind == "cnn":
        model = Sequential(
            Conv2d(2, width, 3, padding=1, rng=rng),
            ReLU(),
            MaxPool2d(2),
            Flatten(),
            Linear(width * 2 * 2, 3, rng=rng),
        )
        return model, lambda b: rng.standard_normal((b, 2, 4, 4)).astype(np.float32)
    if kind == "attention":
        model = MultiHeadAttention(2 * width, 2, rng=rng)
        return model, lambda b: rng.standard_normal((b, 3, 2 * width)).astype(np.float32)
    model = GPT(vocab_size=11, max_seq_len=6, embed_dim=2 * width, n_heads=2, n_layers=2, rng=rng)
    return model, lambda b: rng.integers(0, 11, size=(b, 5))


@given(
    kind=st.sampled_from(["mlp", "cnn", "attention", "gpt"]),
    width=st.integers(1, 4),
    batch=st.integers(1, 6),
)
@example(kind="gpt", width=1, batch=1)
@example(kind="cnn", width=3, batch=5)
def test_flops_scale_linearly_with_batch(kind, width, batch):
    model, make_input = build_model(kind, width, seed=width)
    one = count(model, make_input(1))
    many = count(model, make_input(batch))
    assert list(many.per_layer) == list(one.per_layer), (
        "per_layer names (and their order) must not depend on the batch size"
    )
    assert many.per_layer == {name: batch * flops for name, flops in one.per_layer.items()}, (
        f"per_layer at batch {batch} must be {batch} x per_layer at batch 1"
    )
    assert many.total == batch * one.total, (
        f"total at batch {batch} = {many.total}, expected {batch} x {one.total}"
    )
    assert one.total > 0 and one.unsupported == (), (
        f"total = {one.total} (must be > 0), unsupported = {one.unsupported} (must be empty)"
    )


def test_per_layer_breakdown_names_layers_in_order_and_sums_to_the_total():
    model = Sequential(Linear(4, 8), ReLU(), LayerNorm(8), Linear(8, 2))
    result = count(model, np.ones((3, 4), dtype=np.float32))
    names = [name for name, _ in model.named_modules()]
    assert list(result.per_layer) == ["layers.0", "layers.1", "layers.2", "layers.3"], (
        f"per_layer names {list(result.per_layer)}: every layer with a rule, in forward order"
    )
    assert set(result.per_layer) <= set(names), "per_layer names must come from model.named_modules()"
    assert result.per_layer["layers.1"] == 0 and result.per_layer["layers.2"] == 0, "ReLU, LayerNorm count 0"
    assert result.per_layer["layers.0"] == count(Linear(4, 8), np.ones((3, 4), dtype=np.float32)).total, (
        "per_layer['layers.0'] must be the FLOPs of Linear(4, 8) on (3, 4)"
    )
    assert sum(result.per_layer.values()) == result.total, "total must be the sum of per_layer"


def test_gpt_breakdown_covers_every_block():
    model, make_input = build_model("gpt", width=2, seed=0)
    result = count(model, make_input(2))
    assert sum(result.per_layer.values()) == result.total, "total must be the sum of per_layer"
    for i in range(2):
        for part in ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "attn", "mlp.layers.0"):
            assert result.per_layer[f"blocks.{i}.{part}"] > 0, f"blocks.{i}.{part} not counted"
    assert result.per_layer["head"] > 0 and result.per_layer["tok_emb"] == 0, (
        "per_layer['head'] (a Linear) must be > 0, per_layer['tok_emb'] (an Embedding) 0"
    )
    assert result.unsupported == (), f"unsupported = {result.unsupported}: every layer of the GPT has a rule"


def zoo_input(name: str, batch: int) -> np.ndarray:
    """An input for a zoo model: (batch, 1, 8, 8) digit images, or (batch, 7) token prompts
    (6 digits and the separator) for the sorting GPT. FLOPs depend on shapes, not values."""
    if zoo.get(name).task == "digits":
        return np.zeros((batch, 1, 8, 8), dtype=np.float32)
    return np.zeros((batch, 7), dtype=np.int64)


@pytest.mark.parametrize("name", zoo.list_models())
def test_zoo_models_are_fully_counted_and_scale_with_batch(name):
    model = zoo.build_model(name)  # untrained: FLOPs do not depend on the weights
    one = count(model, zoo_input(name, 1))
    three = count(model, zoo_input(name, 3))
    assert one.unsupported == (), "every layer type of the zoo has a rule"
    assert sum(one.per_layer.values()) == one.total > 0, "total must be the sum of per_layer, and > 0"
    for layer_name, layer in model.named_modules():
        if isinstance(layer, (Linear, Conv2d, MultiHeadAttention)):
            assert one.per_layer[layer_name or type(layer).__name__] > 0, f"{layer_name} not counted"
    assert three.per_layer == {k: 3 * v for k, v in one.per_layer.items()}, (
        "per_layer at batch 3 must be 3 x per_layer at batch 1"
    )


def attention_own_flops(mha: MultiHeadAttention, x: np.ndarray, past=None) -> int:
    """The FLOPs the attention layer itself adds (QK^T and AV), its projections apart."""
    inputs = (Tensor(x),) if past is None else (Tensor(x), past)
    output = mha(*inputs)
    return layer_flops(mha, inputs, output)


def test_attention_counts_its_projections_and_two_products():
    rng = np.random.default_rng(0)
    # The smallest case: one head of size 1, one token: QK^T and AV are 1x1 products, 2 FLOPs each.
    assert attention_own_flops(MultiHeadAttention(1, 1, rng=rng), np.ones((1, 1, 1), np.float32)) == 4, (
        "attention's own FLOPs with one head of size 1 and one token: QK^T 2 + AV 2 = 4"
    )
    mha = MultiHeadAttention(8, 2, rng=rng)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    result = count(mha, x)
    projection = count(Linear(8, 8), x).total
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        assert result.per_layer[name] == projection, (
            f"per_layer[{name!r}] must be the FLOPs of a Linear(8, 8) on (2, 5, 8)"
        )
    own = result.per_layer["MultiHeadAttention"]
    assert own == attention_own_flops(mha, x), (
        "per_layer['MultiHeadAttention'] must be layer_flops of the attention call itself"
    )
    assert result.total == 4 * projection + own, (
        "total must be the four projections plus the attention's own two products"
    )
    # H heads of size d = E / H: each product is 2·B·H·T·T·d = 2·B·T·T·E FLOPs, whatever the split
    # (B=2, T=5, E=8: 800 each). A count that forgets H (or uses E as the head size) breaks this.
    assert own == 2 * (2 * 2 * 5 * 5 * 8), (
        f"attention's own FLOPs = {own}, expected 2 products x 2*B*T*T*E = 1600 (B=2, T=5, E=8)"
    )
    for heads in (1, 4, 8):
        assert attention_own_flops(MultiHeadAttention(8, heads, rng=rng), x) == own, (
            f"attention's own FLOPs with {heads} heads must not depend on the number of heads"
        )
    # the score matrix is T x T: twice the tokens, four times the products
    assert attention_own_flops(mha, np.concatenate([x, x], axis=1)) == 4 * own, (
        "attention's own FLOPs for twice the tokens must be 4 x (the score matrix is T x T)"
    )


@given(past=st.integers(1, 6))
def test_attention_with_a_cache_counts_the_cached_keys(past):
    # Decoding one token against `past` cached positions: its query meets past + 1 keys, one row
    # of the full (past + 1) x (past + 1) score matrix of the whole sequence.
    rng = np.random.default_rng(past)
    mha = MultiHeadAttention(4, 2, rng=rng)
    seq = rng.standard_normal((1, past + 1, 4)).astype(np.float32)
    full = attention_own_flops(mha, seq)
    _, cache = mha(Tensor(seq[:, :past]))
    step = attention_own_flops(mha, seq[:, past:], past=cache)
    assert step * (past + 1) == full, (
        f"one decoding step costs {step} FLOPs; times {past + 1} positions it must equal "
        f"the full sequence's {full}"
    )


class Twice(Module):
    """Runs one Linear twice (shared weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = Linear(4, 4)

    def forward(self, x):
        return self.fc(self.fc(x))


def test_a_layer_called_twice_counts_twice():
    x = np.ones((2, 4), dtype=np.float32)
    once = count(Linear(4, 4), x).total
    assert count(Twice(), x).per_layer == {"fc": 2 * once}, (
        "a layer called twice must be listed once, with the FLOPs of both calls"
    )


class Square(Module):
    """A layer FLOPCounter has no rule for."""

    def forward(self, x):
        return x * x


def test_a_layer_without_a_rule_is_named_unsupported_and_gets_no_per_layer_entry():
    model = Sequential(Linear(3, 4), Square(), ReLU(), Linear(4, 2))
    x = np.ones((2, 3), dtype=np.float32)
    result = count(model, x)
    assert result.unsupported == ("layers.1",), (
        f"unsupported = {result.unsupported}, expected ('layers.1',): the Square layer has no rule"
    )
    assert "layers.1" not in result.per_layer, (
        "a layer without a rule must get no per_layer entry (not even 0)"
    )
    linears = count(Linear(3, 4), x).total + count(Linear(4, 2), np.ones((2, 4), np.float32)).total
    assert result.total == linears, f"total = {result.total}, expected the two Linears alone ({linears})"


class SquareTwice(Module):
    """Runs one layer without a FLOP rule twice."""

    def __init__(self) -> None:
        super().__init__()
        self.square = Square()

    def forward(self, x):
        return self.square(self.square(x))


def test_a_layer_without_a_rule_is_listed_once_however_often_it_runs():
    result = count(SquareTwice(), np.ones((2, 3), dtype=np.float32))
    assert result.unsupported == ("square",), (
        f"unsupported = {result.unsupported}: a layer without a rule is listed once, however often it runs"
    )
    assert result.per_layer == {} and result.total == 0, (
        f"per_layer = {result.per_layer}, total = {result.total}: expected nothing counted"
    )


def test_count_ops_takes_tensors_and_arrays_and_rejects_non_modules():
    x = np.ones((2, 3), dtype=np.float32)
    layer = Linear(3, 4)
    assert count(layer, Tensor(x)).total == count(layer, x).total == 56, (
        "count_ops must give 56 FLOPs for Linear(3, 4) on (2, 3), from a Tensor and from an array"
    )
    with pytest.raises(TypeError, match="model"):
        count(lambda t: t, x)


def test_count_ops_removes_its_hooks_even_when_the_forward_fails():
    model = Sequential(Linear(3, 4), ReLU())
    assert count(model, np.ones((1, 3), np.float32)).total == 2 * 3 * 4 + 4, (
        "FLOPs of Linear(3, 4) + ReLU on (1, 3): 2 * 3 * 4 + 4 = 28"
    )
    with pytest.raises(ValueError):
        count(model, np.ones((1, 5), np.float32))  # wrong in_features
    # `_forward_hooks` is the foundation's hook table (tinytorch/layers.py): empty again.
    assert all(not m._forward_hooks for m in model.modules()), (
        "forward hooks left on the model after a forward that raised"
    )


# --------------------------------------------------------------------------------------------
# ProfilerContext: a with block that reports time, memory and the most expensive layer
# --------------------------------------------------------------------------------------------


class Tick(Module):
    """A layer that takes exactly ``cost`` seconds on a fake clock."""

    def __init__(self, clock: FakeClock, cost: float) -> None:
        super().__init__()
        self.clock, self.cost = clock, cost

    def forward(self, x):
        self.clock.now += self.cost
        return x


class Net(Module):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.fast = Tick(clock, 1.0)
        self.slow = Tick(clock, 5.0)
        self.proj = Linear(4, 4)

    def forward(self, x):
        self.clock.now += 2.0  # the container's own work: in no layer
        return self.proj(self.slow(self.fast(x)))


def test_profiler_context_reports_self_times_and_the_most_expensive_layer(capsys):
    clock = FakeClock()
    model = Net(clock)
    x = np.ones((3, 4), dtype=np.float32)
    with ProfilerContext(model, clock=clock) as prof:
        model(x)
        model(x)
        clock.now += 3.0  # work in the block outside the model
        kept = np.ones(N)
    # wall = 2 calls * (fast 1 + slow 5 + Net's own 2) + 3 outside = 19 fake seconds
    assert prof.wall_time == 19.0, (
        f"wall_time = {prof.wall_time}, expected 19 fake seconds (2 x (1 + 5 + 2) + 3)"
    )
    assert list(prof.layers) == ["fast", "slow", "proj"], "one row per layer, containers excluded"
    assert [(s.calls, s.time) for s in prof.layers.values()] == [(2, 2.0), (2, 10.0), (2, 0.0)], (
        "(calls, self time) per layer: fast (2, 2 s), slow (2, 10 s), proj (2, 0 s)"
    )
    assert prof.layers["proj"].flops == 2 * count(Linear(4, 4), x).total, (
        "proj's FLOPs must be summed over its two calls"
    )
    assert prof.layers["slow"].flops is None, "no FLOP rule: None, not 0"
    assert prof.most_expensive == "slow", (
        f"most_expensive = {prof.most_expensive!r}, expected 'slow' (the largest self time)"
    )
    assert prof.memory.peak_bytes >= kept.nbytes, (
        "memory.peak_bytes must count the 8 MB array allocated in the block"
    )
    printed = capsys.readouterr().out
    assert printed == prof.report() + "\n", "the report is printed on exit"
    assert "most expensive layer: slow" in printed, "the printed report must name the most expensive layer"
    for name in ("fast", "proj"):
        assert name in printed, f"the printed report must have a row for {name}"


def test_profiler_context_without_a_model_times_and_tracks_memory(capsys):
    clock = FakeClock()
    with ProfilerContext(clock=clock, verbose=False) as prof:
        clock.now += 7.0
        kept = np.ones(N)
    assert prof.wall_time == 7.0, f"wall_time = {prof.wall_time}, expected 7 fake seconds"
    assert prof.memory.peak_bytes >= kept.nbytes, (
        "memory.peak_bytes must count the 8 MB array allocated in the block"
    )
    assert prof.layers == {} and prof.most_expensive is None, (
        "without a model: no layers, and most_expensive None"
    )
    assert capsys.readouterr().out == "", "verbose=False prints nothing"
    assert "wall time" in prof.report(), "the report must start with the wall time"


def test_profiler_context_cleans_up_when_the_block_raises(capsys):
    clock = FakeClock()
    model = Net(clock)
    was_tracing = tracemalloc.is_tracing()
    with pytest.raises(Boom):
        with ProfilerContext(model, clock=clock) as prof:
            model(np.ones((1, 4), dtype=np.float32))
            raise Boom("inside the block")
    assert prof.wall_time == 8.0, (
        f"wall_time = {prof.wall_time}: measured up to the exception, expected 8 fake seconds"
    )
    assert all("forward" not in vars(m) for m in model.modules()), "every forward must be restored"
    assert tracemalloc.is_tracing() == was_tracing, "tracing must be left as it was found"
    assert capsys.readouterr().out == "", "no report for a block that raised"
    # the model runs as before, and a new block profiles it afresh
    with ProfilerContext(model, clock=clock, verbose=False) as again:
        model(np.ones((1, 4), dtype=np.float32))
    assert again.layers["slow"].calls == 1, "a new block must count the layers afresh: 1 call of slow"


class FakeMemory:
    """Stands in for the context's MemoryProfiler; its start and stop each cost 1000 fake seconds."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def start(self) -> None:
        self.clock.now += 1000.0

    def stop(self) -> str:
        self.clock.now += 1000.0
        return "measured"


def test_profiler_context_times_only_the_block_and_starts_afresh_each_time(monkeypatch):
    # Setup (memory start, instrumenting) must come before the first clock reading and clean-up
    # (undo, memory stop) after the last one: here each of them costs 100 or 1000 fake seconds.
    clock = FakeClock()

    def slow_instrument(model, on_enter, on_exit):
        clock.now += 100.0
        undo = instrument(model, on_enter, on_exit)

        def slow_undo():
            clock.now += 100.0
            undo()

        return slow_undo

    monkeypatch.setattr(profiling_context, "instrument", slow_instrument)
    model = Net(clock)
    x = np.ones((1, 4), dtype=np.float32)
    prof = ProfilerContext(model, clock=clock, verbose=False)
    prof._memory = FakeMemory(clock)
    with prof:
        model(x)
        model(x)
    assert (prof.wall_time, prof.layers["slow"].calls, prof.memory) == (16.0, 2, "measured"), (
        "(wall_time, slow's calls, memory): setup and clean-up must not be timed (16 s, 2 calls)"
    )
    with prof:  # the same context again: its results are the second block's alone
        model(x)
    assert (prof.wall_time, prof.layers["slow"].calls, prof.layers["slow"].time) == (8.0, 1, 5.0), (
        "(wall_time, slow's calls, slow's self time) of the second block alone: (8 s, 1, 5 s)"
    )


def test_most_expensive_keeps_the_first_of_equal_layers():
    clock = FakeClock()
    model = Sequential(Tick(clock, 2.0), Tick(clock, 2.0), Tick(clock, 1.0))
    with ProfilerContext(model, clock=clock, verbose=False, track_memory=False) as prof:
        model(np.ones((1, 4), dtype=np.float32))
    assert prof.most_expensive == "layers.0", (
        f"most_expensive = {prof.most_expensive!r}: of two equal self times, the first layer"
    )


class AttentionThenTick(Module):
    def __init__(self, attn: MultiHeadAttention, tail: Tick) -> None:
        super().__init__()
        self.attn, self.tail = attn, tail

    def forward(self, x):
        y, _ = self.attn(x)
        return self.tail(y)


def test_a_layer_with_sublayers_gets_its_self_time_not_its_inclusive_time():
    # Attention has a FLOP rule of its own *and* sublayers. Swap its four projections for
    # 1-second Ticks (a Tick passes (B, T, E) through, like a Linear(E, E)): the attention's own
    # products take no fake time, so its self time is 4 - 4 * 1 = 0, not the inclusive 4, and the
    # 3-second tail is the most expensive layer.
    clock = FakeClock()
    mha = MultiHeadAttention(4, 2, rng=np.random.default_rng(0))
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        setattr(mha, name, Tick(clock, 1.0))
    net = AttentionThenTick(mha, Tick(clock, 3.0))
    x = np.ones((1, 3, 4), dtype=np.float32)
    with ProfilerContext(net, clock=clock, verbose=False) as prof:
        net(x)
    assert prof.wall_time == 7.0, (
        f"wall_time = {prof.wall_time}, expected 7 fake seconds (4 projections + a 3 s tail)"
    )
    assert prof.layers["attn"].time == 0.0, (
        f"attn self time = {prof.layers['attn'].time}, expected 0: inclusive 4 s minus its projections' 4 s"
    )
    assert prof.layers["attn.q_proj"].time == 1.0, "attn.q_proj self time: its 1 s"
    assert prof.layers["attn"].flops == attention_own_flops(mha, x), (
        "attn's FLOPs must be its own two products"
    )
    assert prof.most_expensive == "tail", (
        f"most_expensive = {prof.most_expensive!r}, expected 'tail' (attention's self time is 0)"
    )
    assert sum(s.time for s in prof.layers.values()) == prof.wall_time, (
        "the self times must add up to the wall time (no time outside layers here)"
    )


def test_nested_profiler_contexts_on_one_model_both_see_its_layers():
    clock = FakeClock()
    model = Net(clock)
    x = np.ones((1, 4), dtype=np.float32)
    with ProfilerContext(model, clock=clock, verbose=False, track_memory=False) as outer:
        model(x)
        with ProfilerContext(model, clock=clock, verbose=False, track_memory=False) as inner:
            model(x)
    assert inner.layers["slow"].calls == 1 and outer.layers["slow"].calls == 2, (
        "slow's calls: 1 in the inner block, 2 in the outer"
    )
    assert (inner.wall_time, outer.wall_time) == (8.0, 16.0), (
        "(inner, outer) wall times, expected (8, 16) fake seconds"
    )
    assert outer.memory is None, "track_memory=False measures no memory"
    assert all("forward" not in vars(m) for m in model.modules()), "every forward must be restored"
    # a model that did not run inside the block has no layers to name
    with ProfilerContext(model, clock=clock, verbose=False) as idle:
        pass
    assert idle.layers == {} and idle.most_expensive is None, (
        "a model that did not run: no layers, and most_expensive None"
    )
    assert "most expensive layer: none" in idle.report(), "the report of a block where the model did not run"


def test_results_print_as_readable_summaries():
    timing = str(summarize([0.001, 0.002, 0.004]))
    # p95 at h = 2 * 0.95 = 1.9: 2 + 0.9 * (4 - 2) = 3.8 ms; p99 at h = 1.98: 3.96 ms
    expected = "3 runs: min 1.000 ms, mean 2.333 ms, p50 2.000 ms, p95 3.800 ms, p99 3.960 ms, max 4.000 ms"
    assert timing == expected, "str(TimingResult): every statistic in ms"
    assert str(MemoryResult(peak_bytes=3 * 2**20, net_bytes=-(2**19))) == "peak 3.000 MiB, net -0.500 MiB", (
        "str(MemoryResult) in MiB"
    )
    memory = str(MemoryProfiler().profile(allocate_and_keep))
    assert "peak" in memory and "MiB" in memory, f"str of a MemoryResult: {memory!r}"
    flops = str(count(Sequential(Linear(3, 4), ReLU()), np.ones((2, 3), np.float32)))
    assert "layers.0" in flops and "56" in flops and "total" in flops, f"str of a FLOPResult: {flops!r}"


def test_constructors_and_misuse_get_clear_errors():
    with pytest.raises(TypeError, match="clock"):
        Timer(clock=3.0)
    with pytest.raises(TypeError, match="model"):
        ProfilerContext(model="not a model")
    with pytest.raises(TypeError, match="clock"):
        ProfilerContext(clock=None)
    with pytest.raises(TypeError, match="samples"):
        summarize(["fast", "slow"])
    prof = ProfilerContext(clock=FakeClock(), verbose=False)
    with pytest.raises(RuntimeError, match="with"):
        prof.report()  # nothing measured yet
    profiler = MemoryProfiler()
    profiler.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            profiler.start()
    finally:
        mem = profiler.stop()
    assert abs(mem.net_bytes) <= NOISE, f"net_bytes = {mem.net_bytes} of an empty block, expected about 0"


# --------------------------------------------------------------------------------------------
# Leaked state, shared and keyword-called layers, the report's lines
# --------------------------------------------------------------------------------------------


def test_state_leak_1_a_profiler_left_running():
    # What a half-done kata does: start() works, stop() is never reached. tests/conftest.py must
    # give the next test a clean state anyway (test_state_leak_2 checks it: keep the two adjacent).
    profiler = MemoryProfiler()
    profiler.start()
    assert profiler.running and tracemalloc.is_tracing(), (
        "start() must start tracing and leave the profiler running"
    )
    assert len(profiling_memory._open) >= 1, "start() must put its watermark into _open"


def test_state_leak_2_the_next_test_starts_clean():
    assert not tracemalloc.is_tracing(), "tracemalloc left running by an earlier test"
    assert profiling_memory._open == [], "watermarks of profilers an earlier test left open"
    result = MemoryProfiler().profile(allocate_and_free)
    assert NBYTES <= result.peak_bytes <= NBYTES + NOISE, (
        f"peak_bytes = {result.peak_bytes}, expected the 8 MB array ({NBYTES}) plus at most {NOISE}"
    )
    assert not tracemalloc.is_tracing(), "profile() must stop the tracing it started"


@given(samples=timing_samples())
@example(samples=[0.1] * 3)  # np.mean([0.1] * 3) rounds to 0.10000000000000002 > 0.1
@example(samples=[1e-7] * 7)
def test_the_mean_lies_between_min_and_max(samples):
    result = summarize(samples)
    assert result.min <= result.mean <= result.max, f"mean {result.mean!r} not in [min, max]"


class BrokenClock(FakeClock):
    """A fake clock whose reading number ``bad_read`` (1-based) misbehaves: raises, returns a
    string, or jumps back in time."""

    def __init__(self, bad_read: int, how: str) -> None:
        super().__init__()
        self.bad_read, self.how = bad_read, how

    def __call__(self):
        now = super().__call__()
        if self.reads != self.bad_read:
            return now
        if self.how == "raises":
            raise Boom("the clock broke")
        if self.how == "garbage":
            return "twelve o'clock"
        return now - 60.0  # backwards


def assert_untouched(model: Module, was_tracing: bool) -> None:
    assert all("forward" not in vars(m) for m in model.modules()), "every forward must be restored"
    assert tracemalloc.is_tracing() == was_tracing, "tracemalloc must be left as it was found"
    assert profiling_memory._open == [], "the context's memory profiler must be stopped"


@pytest.mark.parametrize("how, error", [("raises", Boom), ("garbage", TypeError), ("backwards", ValueError)])
def test_profiler_context_cleans_up_when_its_clock_fails_on_exit(how, error, capsys):
    # Reading 1 is __enter__'s start, 2-9 the enter and exit of Net and its three layers, 10 __exit__'s.
    clock = BrokenClock(bad_read=10, how=how)
    model = Net(clock)
    was_tracing = tracemalloc.is_tracing()
    with pytest.raises(error):
        with ProfilerContext(model, clock=clock):
            model(np.ones((1, 4), dtype=np.float32))
    assert clock.reads == 10, (
        f"the clock was read {clock.reads} times, expected 10: once in __enter__, once on "
        "entering and once on leaving each of the 4 modules, once in __exit__"
    )
    assert_untouched(model, was_tracing)
    assert capsys.readouterr().out == "", "no report from a broken clock"
    # the model works as before and profiles afresh
    with ProfilerContext(model, clock=clock, verbose=False) as prof:  # past its bad reading
        model(np.ones((1, 4), dtype=np.float32))
    assert prof.wall_time == 8.0 and prof.layers["slow"].calls == 1, (
        "(wall_time, slow's calls) of a block after the broken reading: (8 s, 1)"
    )


@pytest.mark.parametrize("how, error", [("raises", Boom), ("backwards", ValueError)])
def test_profiler_context_cleans_up_when_its_clock_fails_inside_a_layer(how, error):
    clock = BrokenClock(bad_read=4, how=how)  # 1 start, 2 Net enters, 3 fast enters, 4 fast exits
    model = Net(clock)
    was_tracing = tracemalloc.is_tracing()
    with pytest.raises(error):
        with ProfilerContext(model, clock=clock, verbose=False):
            model(np.ones((1, 4), dtype=np.float32))
    assert_untouched(model, was_tracing)


def test_profiler_context_cleans_up_when_its_clock_fails_on_enter():
    clock = BrokenClock(bad_read=1, how="raises")
    model = Net(clock)
    was_tracing = tracemalloc.is_tracing()
    with pytest.raises(Boom):
        with ProfilerContext(model, clock=clock, verbose=False):
            pytest.fail("the block must not run when __enter__ fails")
    assert_untouched(model, was_tracing)


def test_a_broken_clock_does_not_hide_the_blocks_own_exception():
    clock = BrokenClock(bad_read=2, how="backwards")  # no model: reading 2 is __exit__'s
    with pytest.raises(Boom, match="inside"):
        with ProfilerContext(clock=clock, verbose=False, track_memory=False):
            raise Boom("inside the block")


def test_a_layer_shared_under_two_names_counts_once_per_call():
    shared = Linear(4, 4)
    model = Sequential(shared, ReLU(), shared)
    x = np.ones((3, 4), dtype=np.float32)
    once = count(Linear(4, 4), x).total
    result = count(model, x)
    assert result.per_layer == {"layers.0": 2 * once, "layers.1": 0}, "two calls, under the first name"
    assert result.total == 2 * once, "total: two calls of the shared Linear"
    with ProfilerContext(model, clock=FakeClock(), verbose=False, track_memory=False) as prof:
        model(x)
    rows = [(n, s.calls, s.flops) for n, s in prof.layers.items()]
    assert rows == [("layers.0", 2, 2 * once), ("layers.1", 1, 0)], "one row per layer, each call once"
    assert all("forward" not in vars(m) for m in model.modules()), "every forward must be restored"


class KeywordCalls(Module):
    """Calls its layers with keyword arguments, as ``self.fc(x=x)`` and ``mha(x, past_kv=kv)``."""

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__()
        self.fc = Linear(4, 4, rng=rng)
        self.attn = MultiHeadAttention(4, 2, rng=rng)

    def forward(self, x, past_kv=None):
        y, _ = self.attn(self.fc(x=x), past_kv=past_kv)
        return y


def test_layers_called_with_keyword_arguments_are_counted():
    rng = np.random.default_rng(3)
    model = KeywordCalls(rng)
    prompt = rng.standard_normal((1, 2, 4)).astype(np.float32)
    _, cache = model.attn(model.fc(Tensor(prompt)))  # two cached positions
    step = rng.standard_normal((1, 1, 4)).astype(np.float32)
    projected = model.fc(Tensor(step)).data
    plain = count(model, step)  # self.fc(x=x) and self.attn(y, past_kv=None)
    assert plain.per_layer["fc"] == count(Linear(4, 4), step).total, "fc(x=x) must be counted"
    assert plain.per_layer["attn"] == attention_own_flops(model.attn, projected), (
        "per_layer['attn'] with past_kv=None given as a keyword"
    )

    class WithCache(Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x):
            return self.inner(x, past_kv=cache)

    cached = count(WithCache(), step)
    assert cached.per_layer["inner.attn"] == attention_own_flops(model.attn, projected, past=cache), (
        "per_layer['inner.attn'] with past_kv given as a keyword: the cached keys count"
    )
    assert cached.per_layer["inner.attn"] == 3 * plain.per_layer["attn"], "1 query against 2 + 1 keys"
    wrapped = WithCache()
    with ProfilerContext(wrapped, clock=FakeClock(), verbose=False, track_memory=False) as prof:
        wrapped(step)
    assert prof.layers["inner.attn"].flops == cached.per_layer["inner.attn"], (
        "ProfilerContext FLOPs of inner.attn must match FLOPCounter's"
    )
    assert prof.layers["inner.fc"].flops == plain.per_layer["fc"], (
        "ProfilerContext FLOPs of inner.fc (called as fc(x=x)) must match FLOPCounter's"
    )


class TimedLinear(Linear):
    """A Linear that also takes ``cost`` seconds on a fake clock: FLOPs and time, so a rate."""

    def __init__(self, clock: FakeClock, cost: float, n_in: int, n_out: int) -> None:
        super().__init__(n_in, n_out, rng=np.random.default_rng(0))
        self.clock, self.cost = clock, cost

    def forward(self, x):
        self.clock.now += self.cost
        return super().forward(x)


class ReportNet(Module):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.fast = Tick(clock, 2**-6)
        self.slow = Tick(clock, 2**-3)
        self.proj = TimedLinear(clock, 2**-10, 64, 64)
        self.square = Square()

    def forward(self, x):
        self.clock.now += 2**-5  # the container's own work
        return self.square(self.proj(self.slow(self.fast(x))))


def report_rows(report: str) -> dict[str, list[str]]:
    """The report's lines split into whitespace-separated cells, keyed by their first cell."""
    return {line.split()[0]: line.split() for line in report.splitlines()}


def test_the_report_lists_every_column_on_a_sub_second_block():
    # Powers of two keep every fake duration exact. In units of 2**-10 s: fast 16, slow 128,
    # proj 1, square 0, the container 32 and 32 more outside the model: wall 209 (0.204 s).
    clock = FakeClock()
    model = ReportNet(clock)
    x = np.ones((64, 64), dtype=np.float32)
    with ProfilerContext(model, clock=clock, verbose=False, track_memory=False) as prof:
        model(x)
        clock.now += 2**-5
    rows = report_rows(prof.report())
    assert rows["wall"] == ["wall", "time", "204.102", "ms"], "track_memory=False: no memory"
    assert rows["layer"] == ["layer", "type", "calls", "self", "ms", "share", "FLOPs", "GFLOP/s"], (
        "the report's header row"
    )
    assert rows["fast"] == ["fast", "Tick", "1", "15.625", "7.7%", "-", "-"], (
        "the report's row of fast (no FLOP rule)"
    )
    assert rows["slow"] == ["slow", "Tick", "1", "125.000", "61.2%", "-", "-"], (
        "the report's row of slow (no FLOP rule)"
    )
    # 2 * 64**3 + 64**2 = 528,384 FLOPs in 2**-10 s: 0.54 GFLOP/s
    assert rows["proj"] == ["proj", "TimedLinear", "1", "0.977", "0.5%", "528,384", "0.54"], (
        "the report's row of proj: 528,384 FLOPs in 2**-10 s"
    )
    assert rows["square"] == ["square", "Square", "1", "0.000", "0.0%", "-", "-"], (
        "the report's row of square"
    )
    # outside = wall - sum of self times = 209 - 145 = 64 units = 62.5 ms, 30.6 % of the wall
    assert rows["(outside"] == ["(outside", "layers)", "62.500", "30.6%"], (
        "the report's (outside layers) row: 62.5 ms, 30.6 %"
    )
    assert rows["most"] == [
        "most",
        "expensive",
        "layer:",
        "slow",
        "(Tick,",
        "61.2%",
        "of",
        "the",
        "wall",
        "time)",
    ], "the report's last line names the most expensive layer"
    assert len(rows) == 8, f"the report has {len(rows)} lines, expected 8"


def test_the_report_of_a_block_that_took_no_time_shows_no_shares():
    clock = FakeClock()
    model = Sequential(Linear(4, 4), ReLU())
    with ProfilerContext(model, clock=clock, verbose=False, track_memory=False) as prof:
        model(np.ones((2, 4), np.float32))
    rows = report_rows(prof.report())
    assert rows["wall"] == ["wall", "time", "0.000", "ms"], (
        "the report's first line: a block that took no time"
    )
    assert rows["layers.0"] == ["layers.0", "Linear", "1", "0.000", "-", "72", "-"], (
        "the report's row of layers.0: no share of a zero wall time"
    )
    assert rows["(outside"] == ["(outside", "layers)", "0.000", "-"], "the report's (outside layers) row"
    assert rows["most"][:4] == ["most", "expensive", "layer:", "layers.0"], (
        "the report's last line names the most expensive layer"
    )


def test_a_report_with_memory_names_it_on_the_first_line():
    with ProfilerContext(clock=FakeClock(), verbose=False) as prof:
        kept = np.ones(N)
    first, second = prof.report().splitlines()
    assert first.startswith("wall time 0.000 ms, memory peak ") and "MiB" in first, (
        f"the report's first line: {first!r}"
    )
    assert second == "no model given: per-layer times not recorded", f"the report's second line: {second!r}"
    assert kept.size == N, "the array kept in the block"


def test_a_flop_result_prints_shares_totals_and_layers_without_a_rule():
    result = count(Sequential(Linear(3, 4), Square(), ReLU()), np.ones((2, 3), np.float32))
    assert [line.split() for line in str(result).splitlines()] == [
        ["layer", "FLOPs", "share"],
        ["layers.0", "56", "100.0%"],
        ["layers.2", "0", "0.0%"],
        ["total", "56"],
        ["no", "FLOP", "rule", "(counted", "0):", "layers.1"],
    ], "str(FLOPResult): its rows, the total and the layers without a rule"
    nothing = count(SquareTwice(), np.ones((2, 3), np.float32))
    assert [line.split() for line in str(nothing).splitlines()] == [
        ["layer", "FLOPs", "share"],
        ["total", "0"],
        ["no", "FLOP", "rule", "(counted", "0):", "square"],
    ], "str(FLOPResult) of a model with no counted layer"


def recorder(events: list, tag: str):
    def on_enter(name, module):
        events.append((tag, "enter", name))

    def on_exit(name, module, args, output):
        events.append((tag, "exit", name, len(args)))

    return on_enter, on_exit


def test_instrument_calls_back_around_every_forward_and_undo_restores_it():
    model = Net(FakeClock())
    x = np.ones((1, 4), dtype=np.float32)
    expected_output = model(x).data
    events: list = []
    undo = instrument(model, *recorder(events, "a"))
    assert all("forward" in vars(m) for m in model.modules()), "instrument() must wrap every module's forward"
    np.testing.assert_array_equal(
        model(x).data, expected_output, err_msg="the instrumented model's output must not change"
    )
    assert events == [
        ("a", "enter", "Net"),
        ("a", "enter", "fast"),
        ("a", "exit", "fast", 1),
        ("a", "enter", "slow"),
        ("a", "exit", "slow", 1),
        ("a", "enter", "proj"),
        ("a", "exit", "proj", 1),
        ("a", "exit", "Net", 1),
    ], f"callbacks {events}: enter and exit around every forward, inner calls nested"
    undo()
    assert all("forward" not in vars(m) for m in model.modules()), "undo() must restore every forward"
    model(x)
    assert len(events) == 8, "no callbacks after undo"
    # ProfilerContext is built on it: one row per leaf that exited, in the same order
    with ProfilerContext(model, clock=FakeClock(), verbose=False, track_memory=False) as prof:
        model(x)
    assert list(prof.layers) == [e[2] for e in events if e[1] == "exit" and e[2] != "Net"], (
        "ProfilerContext rows: one per leaf layer, in the order they finished"
    )


def test_nested_instrumentation_unwinds_one_level_at_a_time():
    model = Sequential(Linear(2, 2), ReLU())
    own = model.layers[1].forward  # a layer with a forward of its own (already patched)
    model.layers[1].forward = own
    x = np.ones((1, 2), dtype=np.float32)
    events: list = []
    undo_outer = instrument(model, *recorder(events, "outer"))
    undo_inner = instrument(model, *recorder(events, "inner"))
    model(x)
    assert [e for e in events if e[1] == "exit"] == [
        ("outer", "exit", "layers.0", 1),  # the inner wrapper wraps the outer one
        ("inner", "exit", "layers.0", 1),
        ("outer", "exit", "layers.1", 1),
        ("inner", "exit", "layers.1", 1),
        ("outer", "exit", "Sequential", 1),
        ("inner", "exit", "Sequential", 1),
    ], "exit callbacks of nested instrumentation: the inner wrapper wraps the outer one"
    events.clear()
    undo_inner()  # the outer profiler keeps seeing every layer
    model(x)
    assert {e[0] for e in events} == {"outer"} and len(events) == 6, (
        "after the inner undo, only the outer callbacks remain, 6 of them"
    )
    # a ProfilerContext opened inside the outer instrumentation must hand it back intact
    events.clear()
    with ProfilerContext(model, clock=FakeClock(), verbose=False, track_memory=False) as prof:
        model(x)
    assert list(prof.layers) == ["layers.0", "layers.1"], (
        "ProfilerContext rows inside an outer instrumentation"
    )
    assert len(events) == 6, "the outer callbacks still run inside a ProfilerContext"
    events.clear()
    model(x)
    assert {e[0] for e in events} == {"outer"} and len(events) == 6, "the outer wrappers are back"
    events.clear()
    undo_outer()
    model(x)
    assert events == [], "no callbacks after the outer undo"
    assert vars(model.layers[1])["forward"] is own, "a forward of its own is put back, not deleted"
    assert "forward" not in vars(model.layers[0]) and "forward" not in vars(model), (
        "undo() must delete the wrappers it added"
    )


def test_results_are_immutable_records():
    timing = summarize([0.001, 0.002])
    memory = MemoryProfiler().profile(allocate_and_free)
    flops = count(Linear(2, 2), np.ones((1, 2), np.float32))
    for result, field in ((timing, "p50"), (memory, "peak_bytes"), (flops, "total")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(result, field, 0)
