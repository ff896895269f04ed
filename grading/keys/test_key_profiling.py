"""Answer key of module 15 (profiling): held-out checks judged by the grader from their values.

What it covers, on inputs drawn from ``answer.rng`` (sizes, durations, layer shapes, clock
costs): ``summarize`` (percentiles, ordering, the mean clamp, samples kept in order, single and
constant samples), ``Timer.measure`` on a scripted fake clock (warmup excluded, the defaults, the
real clock), ``MemoryProfiler`` on allocations of known size (peak, net, nesting, tracing started
by someone else, a raising function) and ``ProfilerContext``'s memory, ``layer_flops`` /
``FLOPCounter`` on single layers (Linear, Conv2d against its im2col product, 1x1 conv,
attention with and without a cache) and on models (MLP, CNN, attention, GPT, a zoo model, shared,
repeated, keyword-called and rule-less layers, the printed breakdown), ``ProfilerContext`` on a
fake clock (self times, calls, FLOPs, the most expensive layer, the report's cells, reuse,
nesting, attention's self time) and its clean-up when the block or the clock fails, ``instrument``,
and the errors every entry point raises on bad arguments.

Durations on the fake clocks are integers or multiples of 2**-6, so every sum and difference of
them is exact in float64 whatever the order: those outputs are compared exactly.
"""

from __future__ import annotations

import contextlib
import gc
import io
import time
import tracemalloc

import numpy as np
import pytest

from tinytorch.attention import MultiHeadAttention
from tinytorch.conv import Conv2d, MaxPool2d
from tinytorch.layers import GELU, Flatten, LayerNorm, Linear, Module, ReLU, Sequential
from tinytorch.tensor import Tensor
from tinytorch.transformer import GPT

# Interpreter noise in tracemalloc's counters around a profiled call: a frame, a few small ints and
# tuples (measured: under 1 KiB). 64 KiB is far above that and under 1 % of the 8 MB arrays used.
NOISE = 64 * 1024
BIG = 10**9  # what a warmup call "takes" on the fake clock: a leaked warmup sticks out by far


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


@pytest.mark.tolerance(
    rtol=0.0,
    atol=1e-13,
    why="samples are scaled into [0, 1] s; a correct percentile (numpy's, or x[i] + f (x[i+1] - x[i]) "
    "by hand) is within (2 (n - 1) + 4) eps max|x| < 3e-14 of numpy's for n <= 60, and a mean within "
    "n eps max|x|",
)
@pytest.mark.covers(
    "test_summarize_worked_example",
    "test_summarize_agrees_with_numpy_and_keeps_percentiles_ordered",
    "test_summarize_does_not_sort_an_array_in_place",
    "test_summarize_rejects_bad_samples_and_accepts_a_single_one",
    "test_the_mean_lies_between_min_and_max",
    "test_results_print_as_readable_summaries",
)
def test_summarize_drawn_samples(answer):
    from tinytorch.perf.profiling import summarize

    rng = answer.rng
    spread = rng.lognormal(-7.0, 1.5, int(rng.integers(2, 61)))
    decimal = int(rng.integers(1, 1000)) / 10.0 ** int(rng.integers(1, 4))  # 0.1-like: not dyadic
    sets = {
        "spread": list(spread / spread.max() * rng.uniform(0.5, 1.0)),  # a list: must stay untouched
        "ties": rng.permutation(np.repeat(rng.integers(1, 6, 4) / 7.0, rng.integers(1, 9, 4))),  # an array
        "constant": [decimal] * int(rng.integers(2, 41)),
        "constant_array": np.full(int(rng.integers(2, 41)), rng.integers(1, 100) / 100.0),
        "single": [float(rng.uniform(0.0, 1.0))],
        "orders": np.array([1e-9, 1.0, rng.uniform(0.0, 1e-6)])[rng.permutation(3)],
        "zeros_and_one": np.array([0.0] * int(rng.integers(1, 6)) + [1.0]),
        "worked": [3.0 / 8.0, 1.0 / 8.0, 2.0 / 8.0],
    }
    for name, samples in sets.items():
        before = np.array(samples, dtype=np.float64)
        result = summarize(samples)
        stats = (result.min, result.p50, result.p95, result.p99, result.max)
        answer.record(**{
            f"{name}_samples": np.asarray(result.samples, dtype=np.float64),
            f"{name}_min": float(result.min),
            f"{name}_mean": float(result.mean),
            f"{name}_p50": float(result.p50),
            f"{name}_p95": float(result.p95),
            f"{name}_p99": float(result.p99),
            f"{name}_max": float(result.max),
            f"{name}_runs": int(result.runs),
            f"{name}_ordered": all(a <= b for a, b in zip(stats, stats[1:], strict=False)),
            f"{name}_mean_inside": bool(result.min <= result.mean <= result.max),
            f"{name}_input_untouched": bool(np.array_equal(np.array(samples, dtype=np.float64), before)),
        })
        if name.startswith("constant") or name == "single":
            answer.record(**{f"{name}_every_statistic_is_the_value": bool(
                len(set(stats + (result.mean,))) == 1 and result.min == before[0]
            )})
    answer.record(worked_text=str(summarize(sets["worked"])))
    # Many constant samples c (0.1-like decimals, not dyadic): every statistic must be c exactly, and
    # the mean clamped into [min, max]. A by-hand (1 - f) c + f c drifts off c for about one set in
    # ten; a mean without the clamp for some n.
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


@pytest.mark.tolerance(
    rtol=0.0,
    atol=1e-10,
    why="integer durations <= 1000 are exact on the fake clock; a correct percentile lies within "
    "(2 (n - 1) + 4) eps max|x| < 5e-11 of numpy's for n <= 100, a mean within n eps max|x|",
)
@pytest.mark.covers(
    "test_measure_times_only_the_timed_runs",
    "test_measure_defaults_to_3_warmup_and_100_runs",
    "test_measure_with_the_real_clock",
    "test_measure_rejects_bad_arguments_at_the_boundary",
)
def test_timer_on_a_scripted_clock(answer):
    from tinytorch.perf.profiling import Timer

    rng = answer.rng

    def scripted(clock: FakeClock, durations):
        calls = [0]

        def func() -> None:
            clock.now += float(durations[calls[0]])
            calls[0] += 1

        return func, calls

    for name, warmup, runs in (
        ("drawn", int(rng.integers(0, 6)), int(rng.integers(2, 41))),
        ("boundary", 0, 1),
        ("defaults", None, None),
    ):
        clock = FakeClock()
        timed = rng.integers(0, 1001, 100 if runs is None else runs).astype(np.float64)
        func, calls = scripted(clock, [BIG] * (3 if warmup is None else warmup) + list(timed))
        timer = Timer(clock=clock)
        result = timer.measure(func) if warmup is None else timer.measure(func, warmup=warmup, runs=runs)
        answer.record(**{
            f"{name}_calls": calls[0],
            f"{name}_runs": int(result.runs),
            f"{name}_samples": np.asarray(result.samples, dtype=np.float64),
            f"{name}_min": float(result.min),
            f"{name}_mean": float(result.mean),
            f"{name}_p50": float(result.p50),
            f"{name}_p95": float(result.p95),
            f"{name}_p99": float(result.p99),
            f"{name}_max": float(result.max),
        })
    real = Timer()
    runs = int(rng.integers(2, 8))
    result = real.measure(lambda: sum(range(100)), warmup=1, runs=runs)
    answer.record(
        real_clock_is_perf_counter=real.clock is time.perf_counter,
        real_runs=int(result.runs),
        real_nonnegative=bool(np.all(np.asarray(result.samples) >= 0)),
        real_ordered=bool(result.min <= result.p50 <= result.p95 <= result.p99 <= result.max),
    )


# --------------------------------------------------------------------------------------------
# Memory: known allocations
# --------------------------------------------------------------------------------------------


@pytest.mark.tolerance(
    rtol=0.0,
    atol=float(NOISE),
    why="byte counts from tracemalloc include interpreter noise (a frame, small ints and tuples: under "
    "1 KiB measured); 64 KiB is far above it and under 1 % of the >= 8 MB arrays allocated",
)
@pytest.mark.covers(
    "test_peak_counts_an_array_the_function_frees",
    "test_net_counts_the_array_the_function_returns",
    "test_start_and_stop_around_a_block",
    "test_nested_profilers_keep_the_outer_peak",
    "test_tracing_started_by_someone_else_keeps_running",
    "test_profile_stops_when_the_function_raises",
    "test_profile_rejects_a_non_callable_and_returns_the_result",
    "test_state_leak_1_a_profiler_left_running",
    "test_state_leak_2_the_next_test_starts_clean",
    "test_profiler_context_without_a_model_times_and_tracks_memory",
    "test_a_report_with_memory_names_it_on_the_first_line",
)
def test_memory_of_known_allocations(answer):
    # A garbage collection during a measurement would free objects earlier code left behind (this
    # key may run after a whole test suite) and show them as negative bytes: collect first, then
    # keep the collector off while measuring. Arrays are freed by reference counting regardless.
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        _memory_of_known_allocations(answer)
    finally:
        if enabled:
            gc.enable()


def _memory_of_known_allocations(answer):
    from tinytorch.perf.profiling import MemoryProfiler, ProfilerContext

    rng = answer.rng
    n1, n2, n3, n5 = (int(n) for n in rng.integers(1_000_000, 1_500_001, 4))  # float64: 8-12 MB
    n4 = int(rng.integers(10_000, 30_001))  # 80-240 KB, for the inner of two nested profilers
    was_tracing = tracemalloc.is_tracing()

    def free(n):
        def func() -> None:
            a = np.ones(n)
            a += 1.0
            del a

        return func

    def keep(n):
        return lambda: np.ones(n)

    freed = MemoryProfiler().profile(free(n1))
    kept = MemoryProfiler().profile(keep(n2))
    answer.record(
        free_peak=float(freed.peak_bytes),
        free_net=float(freed.net_bytes),
        free_result_is_none=freed.result is None,
        keep_peak=float(kept.peak_bytes),
        keep_net=float(kept.net_bytes),
        keep_result_size=int(np.asarray(kept.result).size),
        tracing_left_as_found=tracemalloc.is_tracing() == was_tracing,
    )
    del kept

    profiler = MemoryProfiler()
    profiler.start()
    block = np.zeros(n3)
    around = profiler.stop()
    answer.record(block_net=float(around.net_bytes), stop_twice=answer.raises(profiler.stop))
    del block

    def outer():
        free(n1)()
        return MemoryProfiler().profile(keep(n4))

    nested = MemoryProfiler().profile(outer)
    answer.record(
        outer_peak=float(nested.peak_bytes),
        inner_peak=float(nested.result.peak_bytes),
        inner_net=float(nested.result.net_bytes),
    )
    del nested

    tracemalloc.start()
    try:
        held = np.ones(n2)
        kept_while_traced = MemoryProfiler().profile(keep(n3))
        freed_while_traced = MemoryProfiler().profile(free(n1))
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
    del held, kept_while_traced

    def fails():
        raise Boom("inside the profiled function")

    answer.record(
        raising=answer.raises(MemoryProfiler().profile, fails),
        raising_tracing_left_as_found=tracemalloc.is_tracing() == was_tracing,
        after_raising_net=float(MemoryProfiler().profile(keep(n4)).net_bytes),
        non_callable=answer.raises(MemoryProfiler().profile, np.ones(3)),
        returns_result=str(MemoryProfiler().profile(lambda: "done").result),
    )

    clock = FakeClock()
    with ProfilerContext(clock=clock, verbose=False) as prof:
        clock.now += float(rng.integers(1, 50))
        inside = np.ones(n5)
    first, *rest = prof.report().splitlines()
    answer.record(
        context_wall=float(prof.wall_time),
        context_peak=float(prof.memory.peak_bytes),
        context_net=float(prof.memory.net_bytes),
        context_layers=len(prof.layers),
        context_most_expensive=str(prof.most_expensive),
        context_first_line_names_memory=first.startswith("wall time ") and ", memory peak " in first,
        context_other_lines="\n".join(rest),
        context_tracing_left_as_found=tracemalloc.is_tracing() == was_tracing,
    )
    del inside


# --------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------


@pytest.mark.covers(
    "test_linear_worked_example",
    "test_conv_flops_equal_its_im2col_product",
    "test_a_1x1_convolution_counts_as_the_equivalent_linear",
    "test_attention_counts_its_projections_and_two_products",
    "test_attention_with_a_cache_counts_the_cached_keys",
    "test_count_ops_takes_tensors_and_arrays_and_rejects_non_modules",
)
def test_flops_of_single_layers(answer):
    from tinytorch.perf.profiling import FLOPCounter, layer_flops

    rng = answer.rng
    counter = FLOPCounter()

    def count(model, x):
        result = counter.count_ops(model, x)
        return result.total, "|".join(result.per_layer), _ints(result.per_layer.values())

    d_in, d_out = (int(v) for v in rng.integers(1, 17, 2))
    lead = tuple(int(v) for v in rng.integers(1, 6, int(rng.integers(1, 4))))
    x = np.zeros(lead + (d_in,), np.float32)
    for bias in (True, False):
        total, names, values = count(Linear(d_in, d_out, bias=bias, rng=rng), x)
        answer.record(**{f"linear_bias{bias}_total": total, f"linear_bias{bias}_names": names,
                         f"linear_bias{bias}_values": values})
    answer.record(linear_tensor_input=count(Linear(d_in, d_out, rng=rng), Tensor(x))[0])

    for i in range(3):
        n, c_in, c_out = (int(v) for v in rng.integers(1, 4, 3))
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        stride, padding = int(rng.integers(1, 4)), int(rng.integers(0, 3))
        h = int(rng.integers(max(1, kh - 2 * padding), 10))
        w = int(rng.integers(max(1, kw - 2 * padding), 10))
        bias = bool(rng.integers(0, 2))
        conv = Conv2d(c_in, c_out, (kh, kw), stride, padding, bias=bias, rng=rng)
        total, names, values = count(conv, np.zeros((n, c_in, h, w), np.float32))
        answer.record(**{f"conv{i}_total": total, f"conv{i}_names": names, f"conv{i}_values": values})

    n, c_in, c_out, h, w = (int(v) for v in rng.integers(1, 6, 5))
    bias = bool(rng.integers(0, 2))
    answer.record(
        conv1x1=count(Conv2d(c_in, c_out, 1, bias=bias, rng=rng), np.zeros((n, c_in, h, w), np.float32))[0],
        conv1x1_as_linear=count(Linear(c_in, c_out, bias=bias, rng=rng),
                                np.zeros((n * h * w, c_in), np.float32))[0],
    )

    heads, head_dim = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    batch, tokens = int(rng.integers(1, 4)), int(rng.integers(1, 7))
    mha = MultiHeadAttention(heads * head_dim, heads, rng=rng)
    seq = rng.standard_normal((batch, tokens, heads * head_dim)).astype(np.float32)
    total, names, values = count(mha, seq)
    inputs = (Tensor(seq),)
    own = layer_flops(mha, inputs, mha(*inputs))
    answer.record(attention_total=total, attention_names=names, attention_values=values, attention_own=own)

    past = int(rng.integers(1, 7))
    cached = MultiHeadAttention(4, 2, rng=rng)
    full = rng.standard_normal((1, past + 1, 4)).astype(np.float32)
    _, cache = cached(Tensor(full[:, :past]))
    step = (Tensor(full[:, past:]), cache)
    answer.record(
        attention_full=layer_flops(cached, (Tensor(full),), cached(Tensor(full))),
        attention_cached_step=layer_flops(cached, step, cached(*step)),
        zero_rule_relu=layer_flops(ReLU(), (Tensor(seq),), ReLU()(Tensor(seq))),
        no_rule_is_none=layer_flops(Square(), (Tensor(seq),), Square()(Tensor(seq))) is None,
        rejects_non_module=answer.raises(counter.count_ops, lambda t: t, x),
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


@pytest.mark.covers(
    "test_flops_scale_linearly_with_batch",
    "test_per_layer_breakdown_names_layers_in_order_and_sums_to_the_total",
    "test_gpt_breakdown_covers_every_block",
    "test_zoo_models_are_fully_counted_and_scale_with_batch",
    "test_a_layer_called_twice_counts_twice",
    "test_a_layer_without_a_rule_is_named_unsupported_and_gets_no_per_layer_entry",
    "test_a_layer_without_a_rule_is_listed_once_however_often_it_runs",
    "test_count_ops_removes_its_hooks_even_when_the_forward_fails",
    "test_a_layer_shared_under_two_names_counts_once_per_call",
    "test_layers_called_with_keyword_arguments_are_counted",
    "test_a_flop_result_prints_shares_totals_and_layers_without_a_rule",
)
def test_flops_of_models(answer):
    from tinytorch.perf.profiling import FLOPCounter

    from tinytorch import zoo

    rng = answer.rng
    counter = FLOPCounter()

    def record(prefix: str, result) -> None:
        answer.record(**{
            f"{prefix}_total": result.total,
            f"{prefix}_names": "|".join(result.per_layer),
            f"{prefix}_values": _ints(result.per_layer.values()),
            f"{prefix}_unsupported": "|".join(result.unsupported),
        })

    for kind in ("mlp", "cnn", "attention", "gpt"):
        model, make_input = _build(kind, int(rng.integers(1, 5)), rng)
        record(f"{kind}_batch1", counter.count_ops(model, make_input(1)))
        record(f"{kind}_batchb", counter.count_ops(model, make_input(int(rng.integers(2, 7)))))

    name = str(rng.choice(zoo.list_models()))
    batch = int(rng.integers(1, 4))
    model = zoo.build_model(name)
    x = (np.zeros((batch, 1, 8, 8), np.float32) if zoo.get(name).task == "digits"
         else rng.integers(0, 5, (batch, 7)))
    record("zoo", counter.count_ops(model, x))

    width = int(rng.integers(1, 7))
    rows = np.ones((int(rng.integers(1, 5)), width), np.float32)
    record("twice", counter.count_ops(Twice(width, rng), rows))
    shared = Linear(width, width, rng=rng)
    record("shared", counter.count_ops(Sequential(shared, ReLU(), shared), rows))
    mixed = Sequential(Linear(width, 4, rng=rng), Square(), ReLU(), LayerNorm(4), Linear(4, 2, rng=rng))
    result = counter.count_ops(mixed, rows)
    record("rule_less", result)
    answer.record(rule_less_text=_cells(str(result)))
    result = counter.count_ops(SquareTwice(), rows)
    record("square_twice", result)
    answer.record(square_twice_text=_cells(str(result)))

    failing = Sequential(Linear(width, 3, rng=rng), ReLU())
    answer.record(
        failing_forward=answer.raises(counter.count_ops, failing, np.ones((1, width + 1), np.float32)),
        failing_hooks_removed=all(not m._forward_hooks for m in failing.modules()),
    )

    heads = int(rng.integers(1, 3))
    keyword = KeywordCalls(2 * heads, heads, rng)
    prompt = rng.standard_normal((1, int(rng.integers(1, 4)), 2 * heads)).astype(np.float32)
    _, cache = keyword.attn(keyword.fc(Tensor(prompt)))
    step = rng.standard_normal((1, 1, 2 * heads)).astype(np.float32)
    record("keyword_plain", counter.count_ops(keyword, step))

    class WithCache(Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = keyword

        def forward(self, x):
            return self.inner(x, past_kv=cache)

    record("keyword_cached", counter.count_ops(WithCache(), step))


# --------------------------------------------------------------------------------------------
# ProfilerContext on a fake clock
# --------------------------------------------------------------------------------------------


def _layers(prof) -> dict[str, np.ndarray]:
    stats = list(prof.layers.values())
    return {
        "names": "|".join(prof.layers),
        "kinds": "|".join(s.kind for s in stats),
        "calls": _ints(s.calls for s in stats),
        "times": np.asarray([float(s.time) for s in stats], dtype=np.float64),
        "flops": _ints(-1 if s.flops is None else s.flops for s in stats),
        "wall": float(prof.wall_time),
        "most_expensive": str(prof.most_expensive),
    }


@pytest.mark.covers(
    "test_profiler_context_reports_self_times_and_the_most_expensive_layer",
    "test_profiler_context_without_a_model_times_and_tracks_memory",
    "test_profiler_context_times_only_the_block_and_starts_afresh_each_time",
    "test_most_expensive_keeps_the_first_of_equal_layers",
    "test_a_layer_with_sublayers_gets_its_self_time_not_its_inclusive_time",
    "test_nested_profiler_contexts_on_one_model_both_see_its_layers",
    "test_the_report_lists_every_column_on_a_sub_second_block",
    "test_the_report_of_a_block_that_took_no_time_shows_no_shares",
    "test_a_layer_shared_under_two_names_counts_once_per_call",
    "test_layers_called_with_keyword_arguments_are_counted",
)
def test_profiler_context_on_a_fake_clock(answer):
    from tinytorch.perf.profiling import ProfilerContext

    rng = answer.rng

    def record(prefix: str, prof) -> None:
        answer.record(**{f"{prefix}_{k}": v for k, v in _layers(prof).items()})

    clock = FakeClock()
    width = int(rng.integers(2, 9))
    own, fast, slow, proj = (float(v) for v in _dyadic(rng, 0, 64, 4))
    model = Net(clock, own, fast, slow, proj, width, rng)
    x = rng.standard_normal((int(rng.integers(1, 5)), width)).astype(np.float32)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        with ProfilerContext(model, clock=clock, track_memory=False) as prof:
            for _ in range(int(rng.integers(1, 4))):
                model(x)
            clock.now += float(_dyadic(rng, 0, 64))
    record("net", prof)
    report = prof.report()
    answer.record(net_report=_cells(report), net_printed_is_the_report=printed.getvalue() == report + "\n")

    with contextlib.redirect_stdout(io.StringIO()) as quiet:  # the same context again: a fresh block
        with prof:
            model(x)
    record("again", prof)
    answer.record(again_report=_cells(prof.report()), again_printed=quiet.getvalue() == prof.report() + "\n")

    with ProfilerContext(model, clock=clock, verbose=False, track_memory=False) as outer:
        model(x)
        with ProfilerContext(model, clock=clock, verbose=False, track_memory=False) as inner:
            model(x)
    record("outer", outer)
    record("inner", inner)
    answer.record(nested_restored=_restored(model), nested_memory_is_none=outer.memory is None)

    with ProfilerContext(model, clock=clock, verbose=False, track_memory=False) as idle:
        pass
    answer.record(idle_layers=len(idle.layers), idle_most_expensive=str(idle.most_expensive),
                  idle_report=_cells(idle.report()))

    cost = float(_dyadic(rng, 1, 64))
    ties = Sequential(Tick(clock, cost), Tick(clock, cost), Tick(clock, cost - 1 / 64))
    with ProfilerContext(ties, clock=clock, verbose=False, track_memory=False) as prof:
        ties(x)
    record("ties", prof)

    heads = int(rng.integers(1, 3))
    mha = MultiHeadAttention(2 * heads, heads, rng=rng)
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        setattr(mha, name, Tick(clock, float(_dyadic(rng, 1, 64))))
    net = AttentionThenTick(mha, Tick(clock, float(_dyadic(rng, 1, 64))))
    seq = rng.standard_normal((1, int(rng.integers(1, 5)), 2 * heads)).astype(np.float32)
    with ProfilerContext(net, clock=clock, verbose=False) as prof:
        net(seq)
    record("attention", prof)

    shared = Linear(width, width, rng=rng)
    twice = Sequential(shared, ReLU(), shared)
    with ProfilerContext(twice, clock=FakeClock(), verbose=False, track_memory=False) as prof:
        twice(x)
    record("shared", prof)
    answer.record(shared_report=_cells(prof.report()))

    keyword = KeywordCalls(2 * heads, heads, rng)
    _, cache = keyword.attn(keyword.fc(Tensor(seq)))

    class WithCache(Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = keyword

        def forward(self, x):
            return self.inner(x, past_kv=cache)

    wrapped = WithCache()
    with ProfilerContext(wrapped, clock=FakeClock(), verbose=False, track_memory=False) as prof:
        wrapped(seq[:, :1])
    record("keyword", prof)

    no_model_clock = FakeClock()
    with ProfilerContext(clock=no_model_clock, verbose=False, track_memory=False) as prof:
        no_model_clock.now += float(_dyadic(rng, 0, 640))
    answer.record(no_model_wall=float(prof.wall_time), no_model_report=_cells(prof.report()),
                  no_model_layers=len(prof.layers))


@pytest.mark.covers(
    "test_profiler_context_cleans_up_when_the_block_raises",
    "test_profiler_context_cleans_up_when_its_clock_fails_on_exit",
    "test_profiler_context_cleans_up_when_its_clock_fails_inside_a_layer",
    "test_profiler_context_cleans_up_when_its_clock_fails_on_enter",
    "test_a_broken_clock_does_not_hide_the_blocks_own_exception",
    "test_instrument_calls_back_around_every_forward_and_undo_restores_it",
    "test_nested_instrumentation_unwinds_one_level_at_a_time",
)
def test_profiler_context_cleans_up_after_failures(answer):
    import tinytorch.perf.profiling.memory as profiling_memory
    from tinytorch.perf.profiling import ProfilerContext, instrument

    rng = answer.rng
    was_tracing = tracemalloc.is_tracing()
    width = int(rng.integers(2, 7))
    x = np.ones((1, width), np.float32)

    def untouched(model) -> bool:
        return _restored(model) and tracemalloc.is_tracing() == was_tracing and profiling_memory._open == []

    clock = FakeClock()
    model = Net(clock, *(float(v) for v in _dyadic(rng, 0, 64, 4)), width, rng)
    printed = io.StringIO()

    def raising_block():
        with ProfilerContext(model, clock=clock):
            model(x)
            raise Boom("inside the block")

    with contextlib.redirect_stdout(printed):
        error = answer.raises(raising_block)
    answer.record(block_raises=error, block_untouched=untouched(model), block_printed=printed.getvalue())
    with ProfilerContext(model, clock=clock, verbose=False) as again:
        model(x)
    answer.record(**{f"after_block_{k}": v for k, v in _layers(again).items()})

    # Readings: 1 is __enter__'s start, 2-11 the enters and exits of Net and its four layers,
    # 12 __exit__'s. Each drawn reading misbehaves in a drawn way.
    for i, bad_read in enumerate(sorted(set(int(r) for r in rng.integers(1, 13, 3)) | {1, 12})):
        how = str(rng.choice(["raises", "garbage", "backwards"]))
        broken = BrokenClock(bad_read, how)
        model = Net(broken, *(float(v) for v in _dyadic(rng, 0, 64, 4)), width, rng)

        def block(model=model, broken=broken):
            with ProfilerContext(model, clock=broken, verbose=False):
                model(x)

        answer.record(**{
            f"broken{i}_read": bad_read,
            f"broken{i}_how": how,
            f"broken{i}_raises": answer.raises(block),
            f"broken{i}_untouched": untouched(model),
        })

    def block_and_clock_fail():
        with ProfilerContext(clock=BrokenClock(2, "backwards"), verbose=False, track_memory=False):
            raise Boom("inside the block")

    answer.record(own_exception_wins=answer.raises(block_and_clock_fail))

    events: list[str] = []

    def recorder(tag: str):
        def on_enter(name, module):
            events.append(f"{tag}:enter:{name}")

        def on_exit(name, module, args, output):
            events.append(f"{tag}:exit:{name}:{len(args)}")

        return on_enter, on_exit

    model = Net(FakeClock(), *(float(v) for v in _dyadic(rng, 0, 64, 4)), width, rng)
    expected = model(x).data
    undo = instrument(model, *recorder("a"))
    same = bool(np.array_equal(model(x).data, expected))
    undo()
    model(x)
    answer.record(instrument_events="|".join(events), instrument_same_output=same,
                  instrument_restored=_restored(model))

    events.clear()
    stack = Sequential(Linear(width, width, rng=rng), ReLU())
    own = stack.layers[1].forward
    stack.layers[1].forward = own
    undo_outer = instrument(stack, *recorder("outer"))
    undo_inner = instrument(stack, *recorder("inner"))
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


# --------------------------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------------------------


@pytest.mark.covers(
    "test_summarize_rejects_bad_samples_and_accepts_a_single_one",
    "test_measure_rejects_bad_arguments_at_the_boundary",
    "test_profile_rejects_a_non_callable_and_returns_the_result",
    "test_count_ops_takes_tensors_and_arrays_and_rejects_non_modules",
    "test_constructors_and_misuse_get_clear_errors",
    "test_results_are_immutable_records",
)
def test_bad_arguments_are_refused(answer):
    from tinytorch.perf.profiling import FLOPCounter, MemoryProfiler, ProfilerContext, Timer, summarize

    rng = answer.rng
    good = list(rng.uniform(0.0, 1.0, int(rng.integers(1, 6))))
    answer.record(
        summarize_good_runs=int(summarize(good).runs),
        summarize_empty=answer.raises(summarize, []),
        summarize_nan=answer.raises(summarize, good + [float("nan")]),
        summarize_inf=answer.raises(summarize, good + [float("inf")]),
        summarize_negative=answer.raises(summarize, good + [-float(rng.uniform(0.1, 5.0))]),
        summarize_2d=answer.raises(summarize, [good, good]),
        summarize_text=answer.raises(summarize, ["fast", "slow"]),
    )
    calls: list[int] = []
    timer = Timer(clock=FakeClock())
    answer.record(
        measure_boundary_runs=int(timer.measure(lambda: calls.append(1), warmup=0, runs=1).runs),
        measure_boundary_calls=len(calls),
        measure_runs_zero=answer.raises(timer.measure, lambda: None, runs=0),
        measure_runs_negative=answer.raises(timer.measure, lambda: None, runs=-int(rng.integers(1, 100))),
        measure_warmup_negative=answer.raises(timer.measure, lambda: None, warmup=-int(rng.integers(1, 100))),
        measure_runs_float=answer.raises(timer.measure, lambda: None, runs=float(rng.integers(1, 9)) + 0.5),
        measure_runs_bool=answer.raises(timer.measure, lambda: None, runs=True),
        measure_not_callable=answer.raises(timer.measure, int(rng.integers(0, 100))),
        timer_clock=answer.raises(Timer, clock=float(rng.uniform(0.0, 9.0))),
        context_model=answer.raises(ProfilerContext, model="not a model"),
        context_clock=answer.raises(ProfilerContext, clock=None),
        context_report_first=answer.raises(ProfilerContext(clock=FakeClock(), verbose=False).report),
        count_ops_model=answer.raises(FLOPCounter().count_ops, "mlp", np.ones((1, 2), np.float32)),
        profile_not_callable=answer.raises(MemoryProfiler().profile, None),
        stop_before_start=answer.raises(MemoryProfiler().stop),
    )
    profiler = MemoryProfiler()
    profiler.start()
    try:
        answer.record(start_twice=answer.raises(profiler.start))
    finally:
        profiler.stop()
    timing = summarize(good)
    memory = MemoryProfiler().profile(lambda: None)
    flops = FLOPCounter().count_ops(Linear(2, 2, rng=rng), np.ones((1, 2), np.float32))
    for name, (result, field) in {"timing": (timing, "p50"), "memory": (memory, "peak_bytes"),
                                  "flops": (flops, "total")}.items():
        answer.record(**{f"{name}_frozen": answer.raises(setattr, result, field, 0)})
