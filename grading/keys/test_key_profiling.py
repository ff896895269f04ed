"""Answer key of module 15 (profiling): held-out checks judged by the grader from their values.

Each check exercises as few kata functions as it can (one public function or method, with the
private helpers it calls), so that the functions it calls on the reference are a subset of those
of every test of that function, and its failure withholds exactly those tests' credit (see
``grading/grade_score.py``, ``decides``): summarize's values, its run count and its printed line
apart; ``Timer.calibrate`` on scripted calls (the count of 1, 2, 5, 10, ... chosen, the calls
and clock readings it takes); ``Timer.measure`` on a scripted fake clock (one call per sample:
warmup excluded, its run count; calibrated loops: the loop count, the calls, the readings and
the per-call samples; fixed loops; the defaults, 20 ms samples included; the real clock) and
the bad arguments of both; ``MemoryProfiler`` on allocations of known size
(peak, net, start/stop around a block, nesting, tracing started by someone else, a raising
function, misuse) and ``MemoryResult``'s line; ``layer_flops`` / ``FLOPCounter`` on single
layers (Linear, Conv2d against its im2col product, 1x1 conv, attention with and without a cache)
and on models (MLP, CNN, attention, GPT, a zoo model, shared, repeated, keyword-called and
rule-less layers, the printed breakdown, failing forwards); ``ProfilerContext`` on a fake clock
(self times, calls, FLOPs, reuse, nesting, the most expensive layer, the report's cells, memory
without a model), its clean-up when the block or the clock fails (a drawn reading of a drawn
kind, in each phase of the block), ``instrument``, and the errors every entry point raises.
Inputs are drawn from ``answer.rng`` (sizes, durations, layer shapes, clock costs).

Durations on the fake clocks are integers or multiples of 2**-6 (2**-10 for the calibrated
timer), so every sum and difference of them is exact in float64 whatever the order: those
outputs are compared exactly, or within a few ulps where a division by the loop count rounds.

One file, whole: it is the module's answer key as the registry names it (``key = ...`` in
tinytorch/course/modules.toml), run by the grader in one child beside the module's suite.
"""

from __future__ import annotations

import contextlib
import gc
import io
import sys
import time
import tracemalloc

import numpy as np
import pytest

from tinytorch.attention import MultiHeadAttention
from tinytorch.conv import Conv2d, MaxPool2d
from tinytorch.layers import GELU, Flatten, LayerNorm, Linear, Module, ReLU, Sequential
from tinytorch.tensor import Tensor
from tinytorch.transformer import GPT

# The kata package is imported at collection, so that what its import runs (a module-level generator
# expression, say) is traced in no check's calls; a package that fails to import fails every check.
with contextlib.suppress(Exception):
    import tinytorch.perf.profiling  # noqa: F401

# Interpreter noise in tracemalloc's counters around a profiled call: a frame, a few small ints and
# tuples (measured: under 1 KiB). 64 KiB is far above that and under 1 % of the 8 MB arrays used.
NOISE = 64 * 1024
BIG = 10**9  # what a warmup call "takes" on the fake clock: a leaked warmup sticks out by far
_TRACING_AT_START = tracemalloc.is_tracing()

MEMORY_TOLERANCE = pytest.mark.tolerance(
    rtol=0.0,
    atol=float(NOISE),
    why="byte counts from tracemalloc include interpreter noise (a frame, small ints and tuples: under "
    "1 KiB measured); 64 KiB is far above it and under 1 % of the >= 8 MB arrays allocated",
)
SUMMARY_TOLERANCE = pytest.mark.tolerance(
    rtol=0.0,
    atol=1e-13,
    why="samples are scaled into [0, 1] s; a correct percentile (numpy's, or x[i] + f (x[i+1] - x[i]) "
    "by hand) is within (2 (n - 1) + 4) eps max|x| < 3e-14 of numpy's for n <= 60, and a mean within "
    "n eps max|x|",
)
TIMER_TOLERANCE = pytest.mark.tolerance(
    rtol=0.0,
    atol=1e-10,
    why="integer durations <= 1000 and multiples of 2**-10 s are exact on the fake clock; a per-call "
    "sample (end - start) / n rounds once, (end - start) * (1 / n) twice: within 2 eps max|x|; a correct "
    "percentile lies within (2 (n - 1) + 4) eps max|x| < 5e-11 of numpy's for n <= 100, a mean within "
    "n eps max|x|",
)


@pytest.fixture(autouse=True)
def clean_profiling_state():
    """Each check starts and ends with tracing as the session found it and no open profiler (what
    tests/conftest.py does for the tests): a half-done MemoryProfiler must not leak into the next
    check. Touches no kata function (only the module's list of open profilers)."""

    def clean() -> None:
        if tracemalloc.is_tracing() and not _TRACING_AT_START:
            tracemalloc.stop()
        memory = sys.modules.get("tinytorch.perf.profiling.memory")
        open_profilers = getattr(memory, "_open", None)
        if isinstance(open_profilers, list):
            open_profilers.clear()

    clean()
    yield
    clean()


@pytest.fixture
def no_gc():
    """A garbage collection during a measurement would free objects earlier code left behind (this
    key may run after a whole test suite) and show them as negative bytes: collect first, then keep
    the collector off while measuring. Arrays are freed by reference counting regardless."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Boom(Exception):
    """Raised on purpose inside profiled code (not a RuntimeError, which a stub raises)."""


class FakeClock:
    """A clock that moves only when told to; it starts at 1000 so that a forgotten start shows."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


class BrokenClock(FakeClock):
    """Reading number ``bad_read`` (1-based) raises, returns a string, or jumps back 60 s."""

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
        return now - 60.0


class Tick(Module):
    """A layer that takes exactly ``cost`` seconds on a fake clock."""

    def __init__(self, clock: FakeClock, cost: float) -> None:
        super().__init__()
        self.clock, self.cost = clock, cost

    def forward(self, x):
        self.clock.now += self.cost
        return x


class TimedLinear(Linear):
    """A Linear that also takes ``cost`` seconds: FLOPs and a time, so a GFLOP/s figure."""

    def __init__(self, clock: FakeClock, cost: float, n_in: int, n_out: int, rng) -> None:
        super().__init__(n_in, n_out, rng=rng)
        self.clock, self.cost = clock, cost

    def forward(self, x):
        self.clock.now += self.cost
        return super().forward(x)


class Square(Module):
    """A leaf layer without a FLOP rule."""

    def forward(self, x):
        return x * x


class SquareTwice(Module):
    def __init__(self) -> None:
        super().__init__()
        self.square = Square()

    def forward(self, x):
        return self.square(self.square(x))


class Twice(Module):
    """One Linear run twice (shared weights)."""

    def __init__(self, width: int, rng) -> None:
        super().__init__()
        self.fc = Linear(width, width, rng=rng)

    def forward(self, x):
        return self.fc(self.fc(x))


class Net(Module):
    """A container with work of its own and four layers: two Ticks, a timed Linear, a rule-less one."""

    def __init__(self, clock: FakeClock, own: float, fast: float, slow: float, proj: float, width: int, rng):
        super().__init__()
        self.clock, self.own = clock, own
        self.fast = Tick(clock, fast)
        self.slow = Tick(clock, slow)
        self.proj = TimedLinear(clock, proj, width, width, rng)
        self.square = Square()

    def forward(self, x):
        self.clock.now += self.own
        return self.square(self.proj(self.slow(self.fast(x))))


class AttentionThenTick(Module):
    def __init__(self, attn: MultiHeadAttention, tail: Tick) -> None:
        super().__init__()
        self.attn, self.tail = attn, tail

    def forward(self, x):
        y, _ = self.attn(x)
        return self.tail(y)


class KeywordCalls(Module):
    """Calls its layers with keyword arguments: ``self.fc(x=x)``, ``self.attn(y, past_kv=kv)``."""

    def __init__(self, width: int, heads: int, rng) -> None:
        super().__init__()
        self.fc = Linear(width, width, rng=rng)
        self.attn = MultiHeadAttention(width, heads, rng=rng)

    def forward(self, x, past_kv=None):
        y, _ = self.attn(self.fc(x=x), past_kv=past_kv)
        return y


def _dyadic(rng, low: int, high: int, size=None):
    """Durations that are multiples of 2**-6 s: sums and differences stay exact in float64."""
    return rng.integers(low, high + 1, size) / 64.0


def _ints(values) -> np.ndarray:
    """A list of counts as an array; an empty list as an empty int64 array (not float64)."""
    values = list(values)
    return np.asarray(values) if values else np.zeros(0, np.int64)


def _cells(text: str) -> str:
    """A printed table with its whitespace normalised: one line per row, cells split on spaces."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def _restored(model: Module) -> bool:
    return all("forward" not in vars(m) for m in model.modules())


# --------------------------------------------------------------------------------------------
# summarize and Timer
# --------------------------------------------------------------------------------------------


# The checks of summarize alone name the tests they decide: every test that calls summarize but
# test_constructors_and_misuse_get_clear_errors, whose only call is summarize(["fast", "slow"]), a
# TypeError that the stub's given validation (_as_samples) already raises. A summarize that only
# validates passes it honestly, so a failed check of summarize's values must not take its credit.


def _sample_sets(rng) -> dict:
    decimal = int(rng.integers(1, 1000)) / 10.0 ** int(rng.integers(1, 4))  # 0.1-like: not dyadic
    spread = rng.lognormal(-7.0, 1.5, int(rng.integers(2, 61)))
    return {
        "spread": list(spread / spread.max() * rng.uniform(0.5, 1.0)),  # a list: must stay untouched
        "ties": rng.permutation(np.repeat(rng.integers(1, 6, 4) / 7.0, rng.integers(1, 9, 4))),  # an array
        "constant": [decimal] * int(rng.integers(2, 41)),
        "constant_array": np.full(int(rng.integers(2, 41)), rng.integers(1, 100) / 100.0),
        "single": [float(rng.uniform(0.0, 1.0))],
        "orders": np.array([1e-9, 1.0, rng.uniform(0.0, 1e-6)])[rng.permutation(3)],
        "zeros_and_one": np.array([0.0] * int(rng.integers(1, 6)) + [1.0]),
        "worked": [3.0 / 8.0, 1.0 / 8.0, 2.0 / 8.0],
    }


def _statistics(result) -> dict:
    """A TimingResult's fields (its ``runs`` property and its line are checked apart)."""
    return {
        "samples": np.asarray(result.samples, dtype=np.float64),
        "min": float(result.min),
        "mean": float(result.mean),
        "p50": float(result.p50),
        "p95": float(result.p95),
        "p99": float(result.p99),
        "max": float(result.max),
        "loops": int(result.loops),
    }


@SUMMARY_TOLERANCE
@pytest.mark.covers("test_summarize_*", "test_the_mean_lies_*", "test_measure_*", "test_results_*")
def test_summarize_drawn_samples(answer):
    from tinytorch.perf.profiling import summarize

    for name, samples in _sample_sets(answer.rng).items():
        before = np.array(samples, dtype=np.float64)
        result = summarize(samples)
        stats = (result.min, result.p50, result.p95, result.p99, result.max)
        answer.record(**{f"{name}_{k}": v for k, v in _statistics(result).items()})
        answer.record(**{
            f"{name}_ordered": all(a <= b for a, b in zip(stats, stats[1:], strict=False)),
            f"{name}_mean_inside": bool(result.min <= result.mean <= result.max),
            f"{name}_input_untouched": bool(np.array_equal(np.array(samples, dtype=np.float64), before)),
        })
        if name.startswith("constant") or name == "single":
            answer.record(**{f"{name}_every_statistic_is_the_value": bool(
                len(set(stats + (result.mean,))) == 1 and result.min == before[0]
            )})


@pytest.mark.covers("test_summarize_*", "test_the_mean_lies_*", "test_measure_*", "test_results_*")
def test_summarize_many_constant_samples(answer):
    # Many constant samples c (0.1-like decimals, not dyadic): every statistic must be c exactly, and
    # the mean clamped into [min, max]. A by-hand (1 - f) c + f c drifts off c for about one set in
    # ten; a mean without the clamp for some n.
    from tinytorch.perf.profiling import summarize

    rng = answer.rng
    stats, exact, ordered = [], [], []
    for _ in range(100):
        c = int(rng.integers(1, 1000)) / 10.0 ** int(rng.integers(1, 4))
        r = summarize([c] * int(rng.integers(2, 61)))
        row = (r.min, r.mean, r.p50, r.p95, r.p99, r.max)
        stats.append(row)
        exact.append(all(v == c for v in row))
        ordered.append(r.min <= r.p50 <= r.p95 <= r.p99 <= r.max and r.min <= r.mean <= r.max)
    answer.record(constants=np.asarray(stats, dtype=np.float64), constants_exact=np.asarray(exact),
                  constants_ordered=np.asarray(ordered))


@pytest.mark.covers("test_summarize_*", "test_the_mean_lies_*", "test_measure_*", "test_results_*")
def test_summarize_counts_its_runs(answer):
    from tinytorch.perf.profiling import summarize

    for name, samples in _sample_sets(answer.rng).items():
        answer.record(**{f"{name}_runs": int(summarize(samples).runs)})


@pytest.mark.covers("test_summarize_*", "test_the_mean_lies_*", "test_measure_*", "test_results_*")
def test_summarize_records_its_loops(answer):
    from tinytorch.perf.profiling import summarize

    rng = answer.rng
    loops = int(rng.integers(2, 10**4))
    samples = list(rng.uniform(0.0, 1.0, int(rng.integers(1, 9))))
    result = summarize(samples, loops=loops)
    answer.record(
        loops_default=int(summarize(samples).loops),
        loops_given=int(result.loops),
        loops_samples_untouched=bool(np.array_equal(np.asarray(result.samples), np.asarray(samples))),
        loops_text=str(summarize([int(rng.integers(1, 2**12)) / 1024.0] * 3, loops=loops)),
        loops_zero=answer.raises(summarize, samples, loops=0),
        loops_float=answer.raises(summarize, samples, loops=2.5),
    )


@pytest.mark.covers("test_summarize_*", "test_the_mean_lies_*", "test_measure_*", "test_results_*")
def test_summarize_prints_a_readable_line(answer):
    from tinytorch.perf.profiling import summarize

    rng = answer.rng
    answer.record(worked_text=str(summarize([3.0 / 8.0, 1.0 / 8.0, 2.0 / 8.0])))
    # n equal samples of k / 1024 s: every statistic is that value exactly, so the line is exact too
    drawn = [int(rng.integers(1, 2**12)) / 1024.0] * int(rng.integers(1, 9))
    answer.record(drawn_text=str(summarize(drawn)))


@pytest.mark.covers("test_summarize_*", "test_the_mean_lies_*", "test_measure_*", "test_results_*")
def test_summarize_refuses_bad_samples(answer):
    from tinytorch.perf.profiling import summarize

    rng = answer.rng
    good = list(rng.uniform(0.0, 1.0, int(rng.integers(1, 6))))
    answer.record(
        good_samples=np.asarray(summarize(good).samples, dtype=np.float64),
        empty=answer.raises(summarize, []),
        nan=answer.raises(summarize, good + [float("nan")]),
        inf=answer.raises(summarize, good + [float("inf")]),
        negative=answer.raises(summarize, good + [-float(rng.uniform(0.1, 5.0))]),
        two_d=answer.raises(summarize, [good, good]),
        text=answer.raises(summarize, ["fast", "slow"]),
    )


@pytest.mark.covers("test_summarize_*", "test_the_mean_lies_*", "test_measure_*", "test_results_*")
def test_a_timing_result_is_frozen(answer):
    from tinytorch.perf.profiling import summarize

    result = summarize(list(answer.rng.uniform(0.0, 1.0, 3)))
    answer.record(frozen=answer.raises(setattr, result, "p50", 0))


def _scripted(clock: FakeClock, durations):
    """A function whose i-th call takes durations[i] on ``clock``; returns (func, call counter)."""
    calls = [0]

    def func() -> None:
        clock.now += float(durations[calls[0]])
        calls[0] += 1

    return func, calls


def _measure_scripted(answer, name: str, warmup: int, runs: int, runs_only: bool = False):
    """One call per sample (loops=1, no calibration): warmup calls of 10**9 s, then drawn ones."""
    from tinytorch.perf.profiling import Timer

    clock = FakeClock()
    timed = answer.rng.integers(0, 1001, runs).astype(np.float64)
    func, calls = _scripted(clock, [BIG] * warmup + list(timed))
    result = Timer(clock=clock).measure(func, warmup=warmup, runs=runs, loops=1)
    if runs_only:
        answer.record(**{f"{name}_runs": int(result.runs)})
        return
    answer.record(**{f"{name}_calls": calls[0]})
    answer.record(**{f"{name}_{k}": v for k, v in _statistics(result).items()})


class _Cycling:
    """A function whose calls take ``BIG`` for the first ``cold`` calls, then cycle through
    ``durations`` (multiples of 2**-10 s: every reading and difference stays exact)."""

    def __init__(self, clock: FakeClock, cold: int, durations) -> None:
        self.clock, self.cold, self.durations, self.calls = clock, cold, [float(d) for d in durations], 0

    def __call__(self) -> None:
        k = self.calls - self.cold
        self.clock.now += BIG if k < 0 else self.durations[k % len(self.durations)]
        self.calls += 1


def _calibrated(answer, name: str, func: _Cycling, clock: FakeClock, result) -> None:
    answer.record(**{f"{name}_calls": func.calls, f"{name}_reads": clock.reads})
    answer.record(**{f"{name}_{k}": v for k, v in _statistics(result).items()})


def test_calibrate_on_scripted_calls(answer):
    from tinytorch.perf.profiling import Timer

    rng = answer.rng
    cost = int(rng.integers(1, 64))
    cases = {  # (cost of a call, min_time), in 2**-10 s
        "drawn": (cost, int(rng.integers(1, 50_000))),
        "slower": (cost, int(rng.integers(0, cost))),  # one trial, one call
        "exactly_min_time": (cost, cost),  # >=: one call
        "loop_of_5_exact": (cost, 5 * cost),  # the loop of 5 lasts exactly min_time: 5
        # the trials of 1, 2 and 5 add up to min_time, but only a loop of 10 lasts it: 10
        "sum_of_trials": (cost, int(rng.integers(5 * cost + 1, 8 * cost + 1))),
        "third_decade": (cost, int(rng.integers(100 * cost + 1, 200 * cost + 1))),  # 200
    }
    for name, (c, t) in cases.items():
        clock = FakeClock()
        func = _Cycling(clock, 0, [c / 1024.0])
        n = Timer(clock=clock).calibrate(func, min_time=t / 1024.0)
        answer.record(**{f"{name}_n": int(n), f"{name}_calls": func.calls, f"{name}_reads": clock.reads})


@TIMER_TOLERANCE
def test_measure_calibrates_a_loop_per_sample(answer):
    from tinytorch.perf.profiling import Timer

    rng = answer.rng
    for name in ("drawn", "cold_start"):
        warmup = int(rng.integers(1, 4)) if name == "cold_start" else int(rng.integers(0, 4))
        durations = rng.integers(1, 64, int(rng.integers(1, 8))) / 1024.0
        clock = FakeClock()
        func = _Cycling(clock, warmup, durations)
        min_time = int(rng.integers(1, 2000)) / 1024.0
        runs = int(rng.integers(1, 12))
        result = Timer(clock=clock).measure(func, warmup=warmup, runs=runs, min_time=min_time)
        _calibrated(answer, name, func, clock, result)


@TIMER_TOLERANCE
def test_measure_with_fixed_loops(answer):
    from tinytorch.perf.profiling import Timer

    rng = answer.rng
    warmup = int(rng.integers(0, 4))
    clock = FakeClock()
    func = _Cycling(clock, warmup, rng.integers(0, 1001, int(rng.integers(1, 8))))
    runs, loops = int(rng.integers(1, 12)), int(rng.integers(1, 9))
    result = Timer(clock=clock).measure(func, warmup=warmup, runs=runs, loops=loops)
    _calibrated(answer, "fixed", func, clock, result)


@TIMER_TOLERANCE
def test_measure_on_a_scripted_clock(answer):
    rng = answer.rng
    _measure_scripted(answer, "drawn", int(rng.integers(0, 6)), int(rng.integers(2, 41)))
    _measure_scripted(answer, "boundary", 0, 1)


@TIMER_TOLERANCE
def test_measure_defaults_to_3_warmup_100_runs_and_20_ms_samples(answer):
    # Calls of 1 to 40 ms (multiples of 2**-10 s), drawn: the default 20 ms picks 1, 2, 5 or 10
    # calls per sample, and 3 warmup calls and 100 samples.
    from tinytorch.perf.profiling import Timer

    rng = answer.rng
    clock = FakeClock()
    func = _Cycling(clock, 3, rng.integers(1, 41, int(rng.integers(1, 6))) / 1024.0)
    _calibrated(answer, "defaults", func, clock, Timer(clock=clock).measure(func))


def test_measure_counts_its_runs(answer):
    rng = answer.rng
    _measure_scripted(answer, "drawn", int(rng.integers(0, 6)), int(rng.integers(2, 41)), runs_only=True)
    _measure_scripted(answer, "boundary", 0, 1, runs_only=True)


def test_measure_with_the_real_clock(answer):
    from tinytorch.perf.profiling import Timer

    real = Timer()
    runs = int(answer.rng.integers(2, 8))
    result = real.measure(lambda: sum(range(100)), warmup=1, runs=runs, min_time=0.002)
    digits = str(result.loops).rstrip("0")
    answer.record(
        real_clock_is_perf_counter=real.clock is time.perf_counter,
        real_samples=len(result.samples),
        real_nonnegative=bool(np.all(np.asarray(result.samples) >= 0)),
        real_ordered=bool(result.min <= result.p50 <= result.p95 <= result.p99 <= result.max),
        real_loops_of_1_2_5=digits in ("1", "2", "5"),
    )


def test_measure_refuses_bad_arguments(answer):
    from tinytorch.perf.profiling import Timer

    rng = answer.rng
    timer = Timer(clock=FakeClock())
    answer.record(
        runs_zero=answer.raises(timer.measure, lambda: None, runs=0),
        runs_negative=answer.raises(timer.measure, lambda: None, runs=-int(rng.integers(1, 100))),
        warmup_negative=answer.raises(timer.measure, lambda: None, warmup=-int(rng.integers(1, 100))),
        runs_float=answer.raises(timer.measure, lambda: None, runs=float(rng.integers(1, 9)) + 0.5),
        runs_bool=answer.raises(timer.measure, lambda: None, runs=True),
        not_callable=answer.raises(timer.measure, int(rng.integers(0, 100))),
        timer_clock=answer.raises(Timer, clock=float(rng.uniform(0.0, 9.0))),
        min_time_negative=answer.raises(timer.measure, lambda: None, min_time=-float(rng.uniform(1e-6, 1.0))),
        min_time_nan=answer.raises(timer.measure, lambda: None, min_time=float("nan")),
        min_time_inf=answer.raises(timer.measure, lambda: None, min_time=float("inf")),
        min_time_text=answer.raises(timer.measure, lambda: None, min_time="20 ms"),
        loops_zero=answer.raises(timer.measure, lambda: None, loops=0),
        loops_float=answer.raises(timer.measure, lambda: None, loops=float(rng.integers(1, 9)) + 0.5),
        loops_bool=answer.raises(timer.measure, lambda: None, loops=True),
        calibrate_not_callable=answer.raises(timer.calibrate, int(rng.integers(0, 100))),
        calibrate_min_time_negative=answer.raises(timer.calibrate, lambda: None, min_time=-1.0),
    )
    calls: list[int] = []  # ... and the boundary itself is valid: no warmup, a single run of one call
    result = timer.measure(lambda: calls.append(1), warmup=0, runs=1, loops=1)
    answer.record(boundary_calls=len(calls), boundary_samples=len(result.samples))
    clock = FakeClock()  # min_time 0 is valid too: the first trial of one call lasts >= 0 s
    func = _Cycling(clock, 0, [1.0])
    result = Timer(clock=clock).measure(func, warmup=0, runs=2, min_time=0.0)
    answer.record(min_time_zero_calls=func.calls, min_time_zero_loops=int(result.loops))


# --------------------------------------------------------------------------------------------
# Memory: known allocations
# --------------------------------------------------------------------------------------------


def _free(n: int):
    def func() -> None:
        a = np.ones(n)
        a += 1.0
        del a

    return func


def _keep(n: int):
    return lambda: np.ones(n)


def _megabytes(rng, count: int = 1) -> list[int]:
    """Sizes of float64 arrays of 8-12 MB."""
    return [int(n) for n in rng.integers(1_000_000, 1_500_001, count)]


@MEMORY_TOLERANCE
@pytest.mark.usefixtures("no_gc")
def test_profile_counts_the_peak_of_an_array_it_frees(answer):
    from tinytorch.perf.profiling import MemoryProfiler

    was_tracing = tracemalloc.is_tracing()
    (n,) = _megabytes(answer.rng)
    freed = MemoryProfiler().profile(_free(n))
    answer.record(
        free_peak=float(freed.peak_bytes),
        free_net=float(freed.net_bytes),
        free_result_is_none=freed.result is None,
        tracing_left_as_found=tracemalloc.is_tracing() == was_tracing,
    )


@MEMORY_TOLERANCE
@pytest.mark.usefixtures("no_gc")
def test_profile_counts_the_array_a_function_returns(answer):
    from tinytorch.perf.profiling import MemoryProfiler

    (n,) = _megabytes(answer.rng)
    kept = MemoryProfiler().profile(_keep(n))
    answer.record(
        keep_peak=float(kept.peak_bytes),
        keep_net=float(kept.net_bytes),
        keep_result_size=int(np.asarray(kept.result).size),
    )


@MEMORY_TOLERANCE
@pytest.mark.usefixtures("no_gc")
def test_start_and_stop_around_a_block(answer):
    from tinytorch.perf.profiling import MemoryProfiler

    (n,) = _megabytes(answer.rng)
    profiler = MemoryProfiler()
    profiler.start()
    block = np.zeros(n)
    around = profiler.stop()
    answer.record(block_net=float(around.net_bytes), block_size=int(block.size),
                  stop_twice=answer.raises(profiler.stop))


@MEMORY_TOLERANCE
@pytest.mark.usefixtures("no_gc")
def test_nested_profilers_keep_the_outer_peak(answer):
    from tinytorch.perf.profiling import MemoryProfiler

    rng = answer.rng
    (n,) = _megabytes(rng)
    small = int(rng.integers(10_000, 30_001))  # 80-240 KB, for the inner of two nested profilers
    was_tracing = tracemalloc.is_tracing()

    def outer():
        _free(n)()
        return MemoryProfiler().profile(_keep(small))

    nested = MemoryProfiler().profile(outer)
    answer.record(
        outer_peak=float(nested.peak_bytes),
        inner_peak=float(nested.result.peak_bytes),
        inner_net=float(nested.result.net_bytes),
        tracing_left_as_found=tracemalloc.is_tracing() == was_tracing,
    )


@MEMORY_TOLERANCE
@pytest.mark.usefixtures("no_gc")
def test_tracing_started_by_someone_else_keeps_running(answer):
    from tinytorch.perf.profiling import MemoryProfiler

    n1, n2, n3 = _megabytes(answer.rng, 3)
    was_tracing = tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        held = np.ones(n2)
        kept_while_traced = MemoryProfiler().profile(_keep(n3))
        freed_while_traced = MemoryProfiler().profile(_free(n1))
        still_tracing = tracemalloc.is_tracing()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    answer.record(
        traced_keep_net=float(kept_while_traced.net_bytes),
        traced_free_peak=float(freed_while_traced.peak_bytes),
        traced_free_net=float(freed_while_traced.net_bytes),
        traced_still_tracing=still_tracing,
        held_bytes=float(held.nbytes),
    )


@MEMORY_TOLERANCE
@pytest.mark.usefixtures("no_gc")
def test_profile_stops_when_the_function_raises(answer):
    from tinytorch.perf.profiling import MemoryProfiler

    small = int(answer.rng.integers(10_000, 30_001))
    was_tracing = tracemalloc.is_tracing()

    def fails():
        raise Boom("inside the profiled function")

    answer.record(
        raising=answer.raises(MemoryProfiler().profile, fails),
        raising_tracing_left_as_found=tracemalloc.is_tracing() == was_tracing,
        after_raising_net=float(MemoryProfiler().profile(_keep(small)).net_bytes),
    )


def test_profile_refuses_a_non_callable_and_returns_the_result(answer):
    from tinytorch.perf.profiling import MemoryProfiler

    word = str(answer.rng.choice(["done", "finished", "ok"]))
    answer.record(
        non_callable=answer.raises(MemoryProfiler().profile, np.ones(3)),
        none=answer.raises(MemoryProfiler().profile, None),
        returns_result=str(MemoryProfiler().profile(lambda: word).result),
    )


def test_a_profiler_cannot_start_twice(answer):
    from tinytorch.perf.profiling import MemoryProfiler

    profiler = MemoryProfiler()
    profiler.start()
    try:
        answer.record(start_twice=answer.raises(profiler.start))
    finally:
        profiler.stop()
    answer.record(running_after_stop=bool(profiler.running))


def test_a_profiler_cannot_stop_before_it_starts(answer):
    from tinytorch.perf.profiling import MemoryProfiler

    profiler = MemoryProfiler()
    answer.record(stop_before_start=answer.raises(profiler.stop))
    profiler.start()  # and the same profiler still starts and stops
    answer.record(stopped=type(profiler.stop()).__name__, running=bool(profiler.running))


def test_a_started_profiler_is_running_and_traced(answer):
    # What test_state_leak_1 checks: start() alone (the clean-up fixture stops what it left).
    import tinytorch.perf.profiling.memory as profiling_memory
    from tinytorch.perf.profiling import MemoryProfiler

    profiler = MemoryProfiler()
    before = bool(profiler.running)
    profiler.start()
    answer.record(
        running_before=before,
        running=bool(profiler.running),
        tracing=tracemalloc.is_tracing(),
        listed_as_open=len(getattr(profiling_memory, "_open", [])) >= 1,
    )


def test_a_memory_result_is_frozen(answer):
    from tinytorch.perf.profiling import MemoryProfiler

    result = MemoryProfiler().profile(lambda: None)
    answer.record(frozen=answer.raises(setattr, result, "peak_bytes", int(answer.rng.integers(0, 9))))


@MEMORY_TOLERANCE
@pytest.mark.usefixtures("no_gc")
def test_memory_results_print_their_mebibytes(answer):
    from tinytorch.perf.profiling import MemoryProfiler, MemoryResult

    rng = answer.rng
    (n,) = _megabytes(rng)
    measured = MemoryProfiler().profile(_keep(n))
    text = str(measured)
    peak, net = int(rng.integers(0, 2**30)), int(rng.integers(-(2**29), 2**29))
    answer.record(
        drawn_text=str(MemoryResult(peak_bytes=peak, net_bytes=net)),
        measured_net=float(measured.net_bytes),
        measured_text_names_peak_and_mib=text.startswith("peak ") and text.count("MiB") == 2,
    )


# --------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------


def _record_flops(answer, prefix: str, result) -> None:
    answer.record(**{
        f"{prefix}_total": result.total,
        f"{prefix}_names": "|".join(result.per_layer),
        f"{prefix}_values": _ints(result.per_layer.values()),
        f"{prefix}_unsupported": "|".join(result.unsupported),
    })


def test_flops_of_linear_layers(answer):
    from tinytorch.perf.profiling import FLOPCounter

    rng = answer.rng
    counter = FLOPCounter()
    d_in, d_out = (int(v) for v in rng.integers(1, 17, 2))
    lead = tuple(int(v) for v in rng.integers(1, 6, int(rng.integers(1, 4))))
    x = np.zeros(lead + (d_in,), np.float32)
    for bias in (True, False):
        layer = Linear(d_in, d_out, bias=bias, rng=rng)
        _record_flops(answer, f"linear_bias{bias}", counter.count_ops(layer, x))
    _record_flops(answer, "linear_tensor_input", counter.count_ops(Linear(d_in, d_out, rng=rng), Tensor(x)))


def test_flops_of_convolutions(answer):
    from tinytorch.perf.profiling import FLOPCounter

    rng = answer.rng
    for i in range(3):
        n, c_in, c_out = (int(v) for v in rng.integers(1, 4, 3))
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        stride, padding = int(rng.integers(1, 4)), int(rng.integers(0, 3))
        h = int(rng.integers(max(1, kh - 2 * padding), 10))
        w = int(rng.integers(max(1, kw - 2 * padding), 10))
        conv = Conv2d(c_in, c_out, (kh, kw), stride, padding, bias=bool(rng.integers(0, 2)), rng=rng)
        x = np.zeros((n, c_in, h, w), np.float32)
        _record_flops(answer, f"conv{i}", FLOPCounter().count_ops(conv, x))


def test_flops_of_a_1x1_convolution_and_its_linear(answer):
    from tinytorch.perf.profiling import FLOPCounter

    rng = answer.rng
    counter = FLOPCounter()
    n, c_in, c_out, h, w = (int(v) for v in rng.integers(1, 6, 5))
    bias = bool(rng.integers(0, 2))
    pixels, rows = np.zeros((n, c_in, h, w), np.float32), np.zeros((n * h * w, c_in), np.float32)
    conv = counter.count_ops(Conv2d(c_in, c_out, 1, bias=bias, rng=rng), pixels)
    linear = counter.count_ops(Linear(c_in, c_out, bias=bias, rng=rng), rows)
    answer.record(conv1x1=conv.total, conv1x1_as_linear=linear.total)


def test_flops_of_an_attention_layer(answer):
    from tinytorch.perf.profiling import FLOPCounter

    rng = answer.rng
    heads, head_dim = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    batch, tokens = int(rng.integers(1, 4)), int(rng.integers(1, 7))
    mha = MultiHeadAttention(heads * head_dim, heads, rng=rng)
    seq = rng.standard_normal((batch, tokens, heads * head_dim)).astype(np.float32)
    _record_flops(answer, "attention", FLOPCounter().count_ops(mha, seq))


def test_layer_flops_of_attention_with_and_without_a_cache(answer):
    from tinytorch.perf.profiling import layer_flops

    rng = answer.rng
    heads, head_dim = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    batch, tokens = int(rng.integers(1, 4)), int(rng.integers(1, 7))
    mha = MultiHeadAttention(heads * head_dim, heads, rng=rng)
    seq = rng.standard_normal((batch, tokens, heads * head_dim)).astype(np.float32)
    inputs = (Tensor(seq),)
    past = int(rng.integers(1, 7))
    cached = MultiHeadAttention(4, 2, rng=rng)
    full = rng.standard_normal((1, past + 1, 4)).astype(np.float32)
    _, cache = cached(Tensor(full[:, :past]))
    step = (Tensor(full[:, past:]), cache)
    answer.record(
        attention_own=layer_flops(mha, inputs, mha(*inputs)),
        attention_full=layer_flops(cached, (Tensor(full),), cached(Tensor(full))),
        attention_cached_step=layer_flops(cached, step, cached(*step)),
        zero_rule_relu=layer_flops(ReLU(), (Tensor(seq),), ReLU()(Tensor(seq))),
        no_rule_is_none=layer_flops(Square(), (Tensor(seq),), Square()(Tensor(seq))) is None,
    )


def test_count_ops_refuses_what_is_not_a_module(answer):
    from tinytorch.perf.profiling import FLOPCounter

    x = np.ones((1, int(answer.rng.integers(1, 5))), np.float32)
    answer.record(
        function=answer.raises(FLOPCounter().count_ops, lambda t: t, x),
        name=answer.raises(FLOPCounter().count_ops, "mlp", x),
        # and a module without products is counted (no FLOP rule that reads a shape runs)
        relu_names="|".join(FLOPCounter().count_ops(Sequential(ReLU()), x).per_layer),
    )


def _build(kind: str, width: int, rng):
    """A small model of ``kind`` and a function batch -> input of that batch size."""
    if kind == "mlp":
        model = Sequential(Linear(width, 2 * width, rng=rng), ReLU(), Linear(2 * width, 3, rng=rng), GELU())
        return model, lambda b: rng.standard_normal((b, width)).astype(np.float32)
    if kind == "cnn":
        model = Sequential(
            Conv2d(2, width, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Flatten(),
            Linear(width * 4, 3, rng=rng),
        )
        return model, lambda b: rng.standard_normal((b, 2, 4, 4)).astype(np.float32)
    if kind == "attention":
        model = MultiHeadAttention(2 * width, 2, rng=rng)
        return model, lambda b: rng.standard_normal((b, 3, 2 * width)).astype(np.float32)
    model = GPT(vocab_size=11, max_seq_len=6, embed_dim=2 * width, n_heads=2, n_layers=2, rng=rng)
    return model, lambda b: rng.integers(0, 11, size=(b, 5))


def _flops_at_two_batch_sizes(answer, kind: str) -> None:
    from tinytorch.perf.profiling import FLOPCounter

    rng = answer.rng
    counter = FLOPCounter()
    model, make_input = _build(kind, int(rng.integers(1, 5)), rng)
    _record_flops(answer, "batch1", counter.count_ops(model, make_input(1)))
    _record_flops(answer, "batchb", counter.count_ops(model, make_input(int(rng.integers(2, 7)))))


def test_flops_of_an_mlp_at_two_batch_sizes(answer):
    _flops_at_two_batch_sizes(answer, "mlp")


def test_flops_of_a_cnn_at_two_batch_sizes(answer):
    _flops_at_two_batch_sizes(answer, "cnn")


def test_flops_of_attention_at_two_batch_sizes(answer):
    _flops_at_two_batch_sizes(answer, "attention")


def test_flops_of_a_gpt_at_two_batch_sizes(answer):
    _flops_at_two_batch_sizes(answer, "gpt")


def test_flops_of_a_zoo_model(answer):
    from tinytorch.perf.profiling import FLOPCounter

    from tinytorch import zoo

    rng = answer.rng
    name = str(rng.choice(zoo.list_models()))
    batch = int(rng.integers(1, 4))
    x = (np.zeros((batch, 1, 8, 8), np.float32) if zoo.get(name).task == "digits"
         else rng.integers(0, 5, (batch, 7)))
    _record_flops(answer, "zoo", FLOPCounter().count_ops(zoo.build_model(name), x))


def test_flops_of_a_layer_run_twice_or_shared(answer):
    from tinytorch.perf.profiling import FLOPCounter

    rng = answer.rng
    counter = FLOPCounter()
    width = int(rng.integers(1, 7))
    rows = np.ones((int(rng.integers(1, 5)), width), np.float32)
    _record_flops(answer, "twice", counter.count_ops(Twice(width, rng), rows))
    shared = Linear(width, width, rng=rng)
    _record_flops(answer, "shared", counter.count_ops(Sequential(shared, ReLU(), shared), rows))


def _rule_less(rng):
    width = int(rng.integers(1, 7))
    rows = np.ones((int(rng.integers(1, 5)), width), np.float32)
    mixed = Sequential(Linear(width, 4, rng=rng), Square(), ReLU(), LayerNorm(4), Linear(4, 2, rng=rng))
    return mixed, rows


def test_flops_of_a_model_with_a_layer_without_a_rule(answer):
    from tinytorch.perf.profiling import FLOPCounter

    mixed, rows = _rule_less(answer.rng)
    _record_flops(answer, "rule_less", FLOPCounter().count_ops(mixed, rows))


def test_flops_of_a_layer_without_a_rule_run_twice(answer):
    from tinytorch.perf.profiling import FLOPCounter

    rows = np.ones((int(answer.rng.integers(1, 5)), int(answer.rng.integers(1, 7))), np.float32)
    _record_flops(answer, "square_twice", FLOPCounter().count_ops(SquareTwice(), rows))


def test_flop_results_print_their_breakdown(answer):
    from tinytorch.perf.profiling import FLOPCounter

    mixed, rows = _rule_less(answer.rng)
    answer.record(
        rule_less_text=_cells(str(FLOPCounter().count_ops(mixed, rows))),
        square_twice_text=_cells(str(FLOPCounter().count_ops(SquareTwice(), rows))),
    )


def test_count_ops_removes_its_hooks_when_the_forward_fails(answer):
    from tinytorch.perf.profiling import FLOPCounter

    rng = answer.rng
    width = int(rng.integers(1, 7))
    failing = Sequential(Linear(width, 3, rng=rng), ReLU())
    answer.record(
        good_total=FLOPCounter().count_ops(failing, np.ones((1, width), np.float32)).total,
        failing_forward=answer.raises(FLOPCounter().count_ops, failing, np.ones((1, width + 1), np.float32)),
        failing_hooks_removed=all(not m._forward_hooks for m in failing.modules()),
    )


def _keyword_model(rng):
    """A KeywordCalls model, a cache of a drawn prompt, a one-token step, and the cached wrapper."""
    heads = int(rng.integers(1, 3))
    keyword = KeywordCalls(2 * heads, heads, rng)
    prompt = rng.standard_normal((1, int(rng.integers(1, 4)), 2 * heads)).astype(np.float32)
    _, cache = keyword.attn(keyword.fc(Tensor(prompt)))
    step = rng.standard_normal((1, 1, 2 * heads)).astype(np.float32)

    class WithCache(Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = keyword

        def forward(self, x):
            return self.inner(x, past_kv=cache)

    return keyword, step, WithCache()


def test_flops_of_layers_called_with_keyword_arguments(answer):
    from tinytorch.perf.profiling import FLOPCounter

    keyword, step, wrapped = _keyword_model(answer.rng)
    _record_flops(answer, "keyword_plain", FLOPCounter().count_ops(keyword, step))
    _record_flops(answer, "keyword_cached", FLOPCounter().count_ops(wrapped, step))


def test_a_flop_result_is_frozen(answer):
    from tinytorch.perf.profiling import FLOPCounter

    width = int(answer.rng.integers(1, 5))
    result = FLOPCounter().count_ops(Linear(width, 2, rng=answer.rng), np.ones((1, width), np.float32))
    answer.record(frozen=answer.raises(setattr, result, "total", 0))


# --------------------------------------------------------------------------------------------
# ProfilerContext on a fake clock
# --------------------------------------------------------------------------------------------


def _rows(prof) -> dict[str, np.ndarray]:
    """What a block measured, per layer and in all (its most expensive layer is checked apart)."""
    stats = list(prof.layers.values())
    return {
        "names": "|".join(prof.layers),
        "kinds": "|".join(s.kind for s in stats),
        "calls": _ints(s.calls for s in stats),
        "times": np.asarray([float(s.time) for s in stats], dtype=np.float64),
        "flops": _ints(-1 if s.flops is None else s.flops for s in stats),
        "wall": float(prof.wall_time),
    }


def _record_rows(answer, prefix: str, prof) -> None:
    answer.record(**{f"{prefix}_{k}": v for k, v in _rows(prof).items()})


def _net(rng, clock: FakeClock | None = None):
    """A Net on ``clock`` (a fresh FakeClock by default) with drawn costs, and an input for it."""
    clock = clock or FakeClock()
    width = int(rng.integers(2, 9))
    own, fast, slow, proj = (float(v) for v in _dyadic(rng, 0, 64, 4))
    model = Net(clock, own, fast, slow, proj, width, rng)
    x = rng.standard_normal((int(rng.integers(1, 5)), width)).astype(np.float32)
    return model, x


def test_context_self_times_on_a_fake_clock(answer):
    from tinytorch.perf.profiling import ProfilerContext

    rng = answer.rng
    model, x = _net(rng)
    clock = model.clock
    prof = ProfilerContext(model, clock=clock, verbose=False, track_memory=False)
    with prof:
        for _ in range(int(rng.integers(1, 4))):
            model(x)
        clock.now += float(_dyadic(rng, 0, 64))
    _record_rows(answer, "net", prof)
    with prof:  # the same context again: a fresh block
        model(x)
    _record_rows(answer, "again", prof)
    answer.record(restored=_restored(model), memory_is_none=prof.memory is None)


def test_context_report_on_a_fake_clock(answer):
    from tinytorch.perf.profiling import ProfilerContext

    rng = answer.rng
    model, x = _net(rng)
    clock = model.clock
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        with ProfilerContext(model, clock=clock, track_memory=False) as prof:
            for _ in range(int(rng.integers(1, 4))):
                model(x)
            clock.now += float(_dyadic(rng, 0, 64))
    report = prof.report()
    answer.record(net_report=_cells(report), net_printed_is_the_report=printed.getvalue() == report + "\n",
                  net_most_expensive=str(prof.most_expensive))

    with contextlib.redirect_stdout(io.StringIO()) as quiet:  # the same context again: a fresh block
        with prof:
            model(x)
    answer.record(again_report=_cells(prof.report()), again_printed=quiet.getvalue() == prof.report() + "\n")

    with ProfilerContext(model, clock=clock, verbose=False, track_memory=False) as idle:
        pass
    answer.record(idle_layers=len(idle.layers), idle_most_expensive=str(idle.most_expensive),
                  idle_report=_cells(idle.report()))

    width = x.shape[1]
    shared = Linear(width, width, rng=rng)
    twice = Sequential(shared, ReLU(), shared)
    with ProfilerContext(twice, clock=FakeClock(), verbose=False, track_memory=False) as prof:
        twice(x)
    answer.record(shared_report=_cells(prof.report()))


def test_most_expensive_keeps_the_first_of_equal_layers(answer):
    from tinytorch.perf.profiling import ProfilerContext

    rng = answer.rng
    clock = FakeClock()
    cost = float(_dyadic(rng, 1, 64))
    ties = Sequential(Tick(clock, cost), Tick(clock, cost), Tick(clock, cost - 1 / 64))
    with ProfilerContext(ties, clock=clock, verbose=False, track_memory=False) as prof:
        ties(np.ones((1, int(rng.integers(1, 5))), np.float32))
    _record_rows(answer, "ties", prof)
    answer.record(ties_most_expensive=str(prof.most_expensive))


def test_nested_contexts_on_one_model_both_see_its_layers(answer):
    from tinytorch.perf.profiling import ProfilerContext

    model, x = _net(answer.rng)
    clock = model.clock
    with ProfilerContext(model, clock=clock, verbose=False, track_memory=False) as outer:
        model(x)
        with ProfilerContext(model, clock=clock, verbose=False, track_memory=False) as inner:
            model(x)
    _record_rows(answer, "outer", outer)
    _record_rows(answer, "inner", inner)
    answer.record(nested_restored=_restored(model), nested_memory_is_none=outer.memory is None)


def test_context_gives_attention_its_self_time(answer):
    from tinytorch.perf.profiling import ProfilerContext

    rng = answer.rng
    clock = FakeClock()
    heads = int(rng.integers(1, 3))
    mha = MultiHeadAttention(2 * heads, heads, rng=rng)
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        setattr(mha, name, Tick(clock, float(_dyadic(rng, 1, 64))))
    net = AttentionThenTick(mha, Tick(clock, float(_dyadic(rng, 1, 64))))
    seq = rng.standard_normal((1, int(rng.integers(1, 5)), 2 * heads)).astype(np.float32)
    with ProfilerContext(net, clock=clock, verbose=False) as prof:
        net(seq)
    _record_rows(answer, "attention", prof)
    answer.record(attention_most_expensive=str(prof.most_expensive), restored=_restored(net))


def test_context_of_a_layer_shared_under_two_names(answer):
    from tinytorch.perf.profiling import ProfilerContext

    rng = answer.rng
    width = int(rng.integers(2, 9))
    x = rng.standard_normal((int(rng.integers(1, 5)), width)).astype(np.float32)
    shared = Linear(width, width, rng=rng)
    twice = Sequential(shared, ReLU(), shared)
    with ProfilerContext(twice, clock=FakeClock(), verbose=False, track_memory=False) as prof:
        twice(x)
    _record_rows(answer, "shared", prof)
    answer.record(restored=_restored(twice))


def test_context_of_layers_called_with_keyword_arguments(answer):
    from tinytorch.perf.profiling import ProfilerContext

    _, step, wrapped = _keyword_model(answer.rng)
    with ProfilerContext(wrapped, clock=FakeClock(), verbose=False, track_memory=False) as prof:
        wrapped(step)
    _record_rows(answer, "keyword", prof)


@MEMORY_TOLERANCE
@pytest.mark.usefixtures("no_gc")
def test_context_without_a_model_times_and_tracks_memory(answer):
    from tinytorch.perf.profiling import ProfilerContext

    rng = answer.rng
    (n,) = _megabytes(rng)
    was_tracing = tracemalloc.is_tracing()
    clock = FakeClock()
    with ProfilerContext(clock=clock, verbose=False) as prof:
        clock.now += float(rng.integers(1, 50))
        inside = np.ones(n)
    answer.record(
        wall=float(prof.wall_time),
        peak=float(prof.memory.peak_bytes),
        net=float(prof.memory.net_bytes),
        layers=len(prof.layers),
        most_expensive=str(prof.most_expensive),
        tracing_left_as_found=tracemalloc.is_tracing() == was_tracing,
        inside=int(inside.size),
    )
    no_memory_clock = FakeClock()
    with ProfilerContext(clock=no_memory_clock, verbose=False, track_memory=False) as prof:
        no_memory_clock.now += float(_dyadic(rng, 0, 640))
    answer.record(no_memory_wall=float(prof.wall_time), no_memory_is_none=prof.memory is None)


@pytest.mark.usefixtures("no_gc")
def test_context_report_names_memory_on_its_first_line(answer):
    from tinytorch.perf.profiling import ProfilerContext

    rng = answer.rng
    (n,) = _megabytes(rng)
    clock = FakeClock()
    with ProfilerContext(clock=clock, verbose=False) as prof:
        clock.now += float(rng.integers(1, 50))
        inside = np.ones(n)
    first, *rest = prof.report().splitlines()
    answer.record(
        first_line_names_memory=first.startswith("wall time ") and ", memory peak " in first,
        first_line_time=first.split(",")[0],
        other_lines="\n".join(rest),
        inside=int(inside.size),
    )
    no_memory_clock = FakeClock()
    with ProfilerContext(clock=no_memory_clock, verbose=False, track_memory=False) as prof:
        no_memory_clock.now += float(_dyadic(rng, 0, 640))
    answer.record(no_memory_report=_cells(prof.report()))


def _untouched(model, was_tracing: bool) -> bool:
    import tinytorch.perf.profiling.memory as profiling_memory

    return (_restored(model) and tracemalloc.is_tracing() == was_tracing
            and getattr(profiling_memory, "_open", None) == [])


def test_context_cleans_up_when_the_block_raises(answer):
    from tinytorch.perf.profiling import ProfilerContext

    model, x = _net(answer.rng)
    clock = model.clock
    was_tracing = tracemalloc.is_tracing()
    printed = io.StringIO()

    def raising_block():
        with ProfilerContext(model, clock=clock):
            model(x)
            raise Boom("inside the block")

    with contextlib.redirect_stdout(printed):
        error = answer.raises(raising_block)
    answer.record(block_raises=error, block_untouched=_untouched(model, was_tracing),
                  block_printed=printed.getvalue())
    with ProfilerContext(model, clock=clock, verbose=False) as again:
        model(x)
    _record_rows(answer, "after_block", again)


# Readings of a Net's clock in a block: 1 is __enter__'s start, 2 Net enters, 3-4 fast enters and
# exits, 5-6 slow, 7-8 proj, 9-10 square, 11 Net exits, 12 __exit__'s reading. Each check below
# breaks a reading of one phase in a drawn way; the phases call different kata functions (no
# FLOP rule runs before the first layer exits, the Linear's rule only once proj has exited).


def _broken_block(answer, bad_read: int, how: str, prefix: str = "") -> None:
    from tinytorch.perf.profiling import ProfilerContext

    rng = answer.rng
    width = int(rng.integers(2, 7))
    x = np.ones((1, width), np.float32)
    broken = BrokenClock(bad_read, how)
    model = Net(broken, *(float(v) for v in _dyadic(rng, 0, 64, 4)), width, rng)
    was_tracing = tracemalloc.is_tracing()

    def block():
        with ProfilerContext(model, clock=broken, verbose=False):
            model(x)

    error = answer.raises(block)
    answer.record(**{f"{prefix}read": bad_read, f"{prefix}how": how, f"{prefix}raises": error,
                     f"{prefix}untouched": _untouched(model, was_tracing)})


def test_context_cleans_up_when_its_clock_fails_on_enter(answer):
    _broken_block(answer, 1, "raises")


def test_context_cleans_up_when_its_clock_fails_entering_a_layer(answer):
    _broken_block(answer, int(answer.rng.integers(2, 4)), "raises")


def test_context_cleans_up_when_its_clock_raises_in_the_first_layer(answer):
    _broken_block(answer, 4, "raises")


# A clock that returns garbage or runs backwards as the first layer exits is refused by _elapsed
# (TypeError, ValueError). test_profiler_context_cleans_up_when_its_clock_fails_inside_a_layer
# runs the same block with a raising clock as well, under the same name (its parameters differ, not
# its calls), and a stub of _elapsed passes that case honestly: this check leaves that test to the
# one above.
@pytest.mark.covers(
    "test_profiler_context_reports_self_times_and_the_most_expensive_layer",
    "test_profiler_context_cleans_up_when_the_block_raises",
    "test_a_layer_with_sublayers_gets_its_self_time_not_its_inclusive_time",
    "test_nested_profiler_contexts_on_one_model_both_see_its_layers",
    "test_profiler_context_cleans_up_when_its_clock_fails_on_exit",
)
def test_context_cleans_up_when_its_clock_misreads_in_the_first_layer(answer):
    _broken_block(answer, 4, str(answer.rng.choice(["garbage", "backwards"])))


def test_context_cleans_up_when_its_clock_fails_in_a_middle_layer(answer):
    rng = answer.rng
    _broken_block(answer, int(rng.choice([6, 8])), str(rng.choice(["raises", "garbage", "backwards"])))


def test_context_cleans_up_when_its_clock_fails_late_or_on_exit(answer):
    rng = answer.rng
    for i in range(2):
        bad_read = int(rng.choice([1, 9, 10, 11, 12]))
        kinds = ["garbage", "backwards"] if bad_read == 1 else ["raises", "garbage", "backwards"]
        how = str(rng.choice(kinds))
        _broken_block(answer, bad_read, how, prefix=f"late{i}_")


def test_a_broken_clock_does_not_hide_the_blocks_own_exception(answer):
    from tinytorch.perf.profiling import ProfilerContext

    how = str(answer.rng.choice(["garbage", "backwards"]))

    def block_and_clock_fail():
        clock = BrokenClock(2, how)  # no model: reading 2 is __exit__'s
        with ProfilerContext(clock=clock, verbose=False, track_memory=False):
            raise Boom("inside the block")

    answer.record(own_exception_wins=answer.raises(block_and_clock_fail))


def test_context_refuses_bad_arguments_and_a_report_before_its_block(answer):
    from tinytorch.perf.profiling import ProfilerContext

    rng = answer.rng
    clock = FakeClock()
    prof = ProfilerContext(clock=clock, verbose=False, track_memory=False)
    answer.record(
        context_model=answer.raises(ProfilerContext, model="not a model"),
        context_clock=answer.raises(ProfilerContext, clock=None),
        context_clock_number=answer.raises(ProfilerContext, clock=float(rng.uniform(0.0, 9.0))),
        report_first=answer.raises(prof.report),
    )
    with prof:
        clock.now += float(_dyadic(rng, 0, 640))
    answer.record(wall=float(prof.wall_time), report_after=prof.report())


def _recorder(events: list, tag: str):
    def on_enter(name, module):
        events.append(f"{tag}:enter:{name}")

    def on_exit(name, module, args, output):
        events.append(f"{tag}:exit:{name}:{len(args)}")

    return on_enter, on_exit


def test_instrument_calls_back_around_every_forward(answer):
    from tinytorch.perf.profiling import ProfilerContext, instrument

    model, x = _net(answer.rng)
    events: list[str] = []
    expected = model(x).data
    undo = instrument(model, *_recorder(events, "a"))
    same = bool(np.array_equal(model(x).data, expected))
    undo()
    model(x)
    answer.record(events="|".join(events), same_output=same, restored=_restored(model))
    with ProfilerContext(model, clock=FakeClock(), verbose=False, track_memory=False) as prof:
        model(x)
    answer.record(rows="|".join(prof.layers), restored_after_block=_restored(model))


def test_nested_instrumentation_unwinds_one_level_at_a_time(answer):
    from tinytorch.perf.profiling import ProfilerContext, instrument

    rng = answer.rng
    width = int(rng.integers(2, 7))
    x = np.ones((1, width), np.float32)
    events: list[str] = []
    stack = Sequential(Linear(width, width, rng=rng), ReLU())
    own = stack.layers[1].forward
    stack.layers[1].forward = own
    undo_outer = instrument(stack, *_recorder(events, "outer"))
    undo_inner = instrument(stack, *_recorder(events, "inner"))
    stack(x)
    undo_inner()
    stack(x)
    with ProfilerContext(stack, clock=FakeClock(), verbose=False, track_memory=False) as prof:
        stack(x)
    stack(x)
    undo_outer()
    stack(x)
    answer.record(
        nested_events="|".join(events),
        nested_rows="|".join(prof.layers),
        nested_own_forward_kept=vars(stack.layers[1]).get("forward") is own,
        nested_others_restored="forward" not in vars(stack.layers[0]) and "forward" not in vars(stack),
    )
