"""Module 20 (benchmarking): TinyMLPerf scoring, fair measurement, submissions and the leaderboard.

Nothing here is timed. Every clock is fake: a "machine" whose time moves only when a fake
workload runs (by a cost we choose, times a load factor that can change mid-run), or a clock
that ticks by one at every reading. So the scoring laws are checked exactly, and the fairness
rules (interleaving, warmup) are checked by what they are for: a machine that slows down half
way through must not change a speedup. Speed itself is measured by `tinytorch bench benchmarking`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import multiprocessing
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import SCALE_FACTORS, SPEEDUPS, event_timings, speedup_lists
from tinytorch.perf.benchmarking import (
    EVENTS,
    MLP_SPRINT,
    TRANSFORMER_DECATHLON,
    BenchmarkResult,
    CompetitionSubmission,
    EventScore,
    FullRecomputeGenerator,
    InvalidSubmission,
    Profiler,
    QualityCheck,
    TinyMLPerf,
    benchmark_model,
    build_submission,
    check_weights_file,
    compute_speedup,
    geometric_mean,
    measure_interleaved,
    score_events,
    workload_flops,
)
from tinytorch.perf.profiling import FLOPCounter, Timer, summarize

from tinytorch import zoo
from tinytorch.leaderboard import OPTIMIZATIONS, Leaderboard
from tinytorch.tensor import Tensor, no_grad

# Relative tolerance of the scoring laws. A score is exp(fsum(log s_i) / n): each log carries an
# absolute error of a few ulps of |log s| <= log(1e3) ~ 7 (~1e-15), exp turns an absolute error
# of its argument into the same relative error; medians of scaled samples and their ratios add a
# few more float64 roundings (2**-53 ~ 1.1e-16 each). 1e-12 leaves a 100x margin.
RTOL = 1e-12

PASS = QualityCheck(metric="accuracy", value=0.97, target=0.95)
FAIL = QualityCheck(metric="accuracy", value=0.50, target=0.95)


def scores(speedups, passed=None) -> list[EventScore]:
    passed = passed or [True] * len(speedups)
    return [
        EventScore(event=f"E{i}", speedup=s, quality=PASS if ok else FAIL)
        for i, (s, ok) in enumerate(zip(speedups, passed, strict=True))
    ]


def score_of(speedups, passed=None) -> float:
    return score_events(scores(speedups, passed)).score


# --------------------------------------------------------------------------------------------
# Speedups and the score: the laws of a hardware-independent score
# --------------------------------------------------------------------------------------------


@given(SPEEDUPS, SPEEDUPS)
@example(2.0, 1.0)  # twice as fast is 2, not 0.5
@example(1.0, 4.0)  # four times slower is 0.25
def test_speedup_is_baseline_time_over_candidate_time(baseline: float, candidate: float) -> None:
    assert compute_speedup(baseline, candidate) == pytest.approx(baseline / candidate, rel=RTOL)


def test_speedup_compares_medians_of_timings() -> None:
    # A single slow outlier (the OS, a cache flush) moves the mean but not the median.
    baseline = summarize([3.0, 3.0, 3.0, 3.0, 300.0])
    candidate = summarize([1.0, 1.0, 1.0, 1.0, 1.0])
    assert compute_speedup(baseline, candidate) == 3.0
    result = BenchmarkResult("E", baseline, 1.0, 0, None, PASS)
    assert compute_speedup(result, candidate) == 3.0


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_speedup_rejects_times_that_are_not_durations(bad: float) -> None:
    with pytest.raises(ValueError, match="baseline"):
        compute_speedup(bad, 1.0)
    with pytest.raises(ValueError, match="optimized"):
        compute_speedup(1.0, bad)
    with pytest.raises(TypeError, match="baseline"):
        compute_speedup("1 s", 1.0)


@given(event_timings(), SCALE_FACTORS)
@example([([1.0, 2.0, 30.0], [0.5]), ([4.0], [8.0, 9.0])], 1e3)
def test_score_unchanged_when_every_time_is_scaled(timings, factor: float) -> None:
    # A machine `factor` times slower (or faster) scales every time alike: the score must not move.
    def score(scale: float) -> float:
        events = [
            EventScore(
                f"E{i}",
                compute_speedup(summarize(np.multiply(b, scale)), summarize(np.multiply(c, scale))),
                PASS,
            )
            for i, (b, c) in enumerate(timings)
        ]
        return score_events(events).score

    assert score(factor) == pytest.approx(score(1.0), rel=RTOL)


@given(SPEEDUPS, st.integers(1, 6))
@example(3.0, 3)
@example(1e-3, 6)
def test_every_speedup_k_gives_score_k(k: float, n: int) -> None:
    assert score_of([k] * n) == pytest.approx(k, rel=RTOL)


@given(speedup_lists(min_size=1))
@example([2.0, 0.5])  # a gain and an equal loss cancel: 1, where the arithmetic mean says 1.25
@example([2.0, 8.0])
@example([1e3, 1e-3, 1.0])
def test_reciprocal_speedups_give_reciprocal_score(speedups: list[float]) -> None:
    assert score_of([1 / s for s in speedups]) == pytest.approx(1 / score_of(speedups), rel=RTOL)


def test_score_is_the_geometric_mean() -> None:
    assert score_of([2.0, 8.0]) == pytest.approx(4.0, rel=RTOL)
    assert score_of([2.0, 0.5]) == pytest.approx(1.0, rel=RTOL)
    assert geometric_mean([4.0, 2.25]) == pytest.approx(3.0, rel=RTOL)
    assert geometric_mean([1e300, 1e300, 1e300]) == pytest.approx(1e300, rel=1e-9)  # no overflow


@given(speedup_lists(min_size=1), st.integers(0, 5), st.floats(1.01, 100.0))
@example([1.0, 1.0], 1, 1.01)
@example([1e3, 1e-3], 0, 1.01)
def test_score_is_monotone_in_each_speedup(speedups: list[float], index: int, gain: float) -> None:
    i = index % len(speedups)
    faster = list(speedups)
    faster[i] *= gain
    assert score_of(faster) > score_of(speedups)
    # ... unless that event failed its quality gate: then it scores nothing either way.
    passed = [j != i for j in range(len(speedups))]
    assert score_of(faster, passed) == pytest.approx(score_of(speedups, passed), rel=RTOL)


@given(speedup_lists(min_size=2), st.integers(0, 5))
@example([4.0, 2.25], 1)
def test_event_below_its_target_scores_nothing_and_says_why(speedups: list[float], index: int) -> None:
    i = index % len(speedups)
    speedups = list(speedups)
    speedups[i] = max(speedups[i], 3.0)  # a fast event that broke its model
    passed = [j != i for j in range(len(speedups))]
    card = score_events(scores(speedups, passed))
    assert card.counted[f"E{i}"] == 1.0, "a failed event must count as 1 (log 1 = 0: nothing)"
    others = [1.0 if j == i else s for j, s in enumerate(speedups)]
    assert card.score == pytest.approx(geometric_mean(others), rel=RTOL)
    assert set(card.reasons) == {f"E{i}"}
    assert "accuracy" in card.reasons[f"E{i}"] and "0.95" in card.reasons[f"E{i}"]


def test_score_counts_a_nan_gate_value_as_failed() -> None:
    # A model whose quality came out NaN (a metric over no outputs, a NaN loss) has not shown
    # that it reaches its target: every comparison with NaN is False, so "value < target" does
    # not flag it; the gate is "value >= target" (QualityCheck.passed).
    nan = QualityCheck(metric="accuracy", value=math.nan, target=0.95)
    card = score_events([EventScore("E0", 4.0, PASS), EventScore("E1", 9.0, nan)])
    assert card.counted == {"E0": 4.0, "E1": 1.0} and set(card.reasons) == {"E1"}
    assert card.score == pytest.approx(2.0, rel=RTOL)


def test_score_rejects_nothing_to_score() -> None:
    with pytest.raises(ValueError, match="empty"):
        score_events([])
    with pytest.raises(ValueError, match="empty"):
        geometric_mean([])
    with pytest.raises(ValueError, match="> 0"):
        geometric_mean([1.0, -2.0])
    with pytest.raises(ValueError, match="distinct"):
        score_events(scores([1.0]) * 2)


# --------------------------------------------------------------------------------------------
# Fair measurement: a fake machine
# --------------------------------------------------------------------------------------------


class Machine:
    """A fake machine. Its clock moves only when a workload runs: by ``cost`` times the load.

    The load is 1 for the first ``slow_after`` workload calls and ``factor`` afterwards (another
    process started, the CPU throttled); ``cold`` calls of each workload cost 100x more (cold
    caches: what warmup is for). ``log`` records which workload ran, in order.
    """

    def __init__(self, slow_after: int | None = None, factor: float = 2.0, cold: int = 0) -> None:
        self.now, self.calls, self.log = 0.0, 0, []
        self.slow_after, self.factor, self.cold = slow_after, factor, cold
        self.seen: dict[str, int] = {}

    def clock(self) -> float:
        return self.now

    def work(self, name: str, cost: float) -> None:
        self.calls += 1
        self.seen[name] = self.seen.get(name, 0) + 1
        load = self.factor if self.slow_after is not None and self.calls > self.slow_after else 1.0
        cold = 100.0 if self.seen[name] <= self.cold else 1.0
        self.now += cost * load * cold
        self.log.append(name)

    def workload(self, name: str, cost: float):
        return lambda: self.work(name, cost)


@given(
    warmup=st.integers(0, 4), rounds=st.integers(1, 6), costs=st.tuples(st.integers(1, 8), st.integers(1, 8))
)
@example(warmup=3, rounds=4, costs=(3, 1))
def test_interleaved_speedup_survives_a_machine_that_slows_down(warmup: int, rounds: int, costs) -> None:
    # The machine doubles its load exactly half way through the timed calls. Interleaved, each
    # function gets half its samples at each load, so the ratio of medians is the true ratio;
    # timed one after the other, the candidate would run entirely on the slow half.
    runs = 2 * rounds
    machine = Machine(slow_after=2 * warmup + runs)
    timings = measure_interleaved(
        {
            "baseline": machine.workload("baseline", costs[0]),
            "candidate": machine.workload("candidate", costs[1]),
        },
        warmup=warmup,
        runs=runs,
        timer=Timer(clock=machine.clock),
    )
    assert compute_speedup(timings["baseline"], timings["candidate"]) == pytest.approx(
        costs[0] / costs[1], rel=RTOL
    )


def test_interleaved_calls_alternate_and_warm_up_first() -> None:
    machine = Machine()
    measure_interleaved(
        {"baseline": machine.workload("b", 1), "candidate": machine.workload("c", 1)},
        warmup=2,
        runs=6,
        timer=Timer(clock=machine.clock),
    )
    timed = machine.log[4:]
    assert sorted(machine.log[:4]) == ["b", "b", "c", "c"], "warmup: each function, before any timed call"
    assert len(timed) == 12
    rounds = [timed[i : i + 2] for i in range(0, 12, 2)]
    assert all(sorted(r) == ["b", "c"] for r in rounds), f"every round times each function once: {timed}"
    firsts = {r[0] for r in rounds}
    assert firsts == {"b", "c"}, (
        f"the order alternates between rounds, so no function always goes first: {timed}"
    )


@given(warmup=st.integers(0, 5), runs=st.integers(1, 9), cost=st.integers(1, 5))
@example(warmup=3, runs=1, cost=1)
def test_warmup_calls_never_enter_the_samples(warmup: int, runs: int, cost: int) -> None:
    # The first `warmup` calls of each function are cold (100x slower): none may be a sample.
    machine = Machine(cold=warmup)
    timings = measure_interleaved(
        {"a": machine.workload("a", cost), "b": machine.workload("b", 2 * cost)},
        warmup=warmup,
        runs=runs,
        timer=Timer(clock=machine.clock),
    )
    assert timings["a"].runs == runs and timings["b"].runs == runs
    assert np.all(timings["a"].samples == cost) and np.all(timings["b"].samples == 2 * cost)
    assert machine.calls == 2 * (warmup + runs)


def test_measure_interleaved_checks_its_arguments() -> None:
    timer = Timer(clock=itertools.count().__next__)
    assert measure_interleaved({"a": lambda: None}, warmup=0, runs=2, timer=timer)["a"].runs == 2
    with pytest.raises(ValueError, match="funcs"):
        measure_interleaved({}, 1, 1, timer)
    with pytest.raises(TypeError, match="funcs"):
        measure_interleaved({"a": 3}, 1, 1, timer)
    with pytest.raises(ValueError, match="runs"):
        measure_interleaved({"a": lambda: None}, 1, 0, timer)
    with pytest.raises(TypeError, match="warmup"):
        measure_interleaved({"a": lambda: None}, 1.5, 1, timer)


# --------------------------------------------------------------------------------------------
# benchmark_model and the events, on the real zoo models
# --------------------------------------------------------------------------------------------

QUICK_MLP = dataclasses.replace(MLP_SPRINT, warmup=1, runs=3)
# Generation is the slow event (the baseline recomputes the prefix at every step): 2 prompts, 8 tokens.
QUICK_GEN = dataclasses.replace(
    TRANSFORMER_DECATHLON,
    warmup=0,
    runs=1,
    batch_size=2,
    max_new_tokens=min(8, TRANSFORMER_DECATHLON.max_new_tokens),
)


@pytest.fixture(scope="module")
def mlp():
    return zoo.load_model("mlp_digits")


@pytest.fixture(scope="module")
def mlp_logits(mlp) -> np.ndarray:
    with no_grad():
        return mlp(Tensor(MLP_SPRINT.inputs())).data


def ticking_profiler() -> Profiler:
    """A profiler whose clock moves by exactly 1 at every reading: every sample is 1 s."""
    return Profiler(timer=Timer(clock=itertools.count().__next__))


def test_benchmark_model_measures_with_module_15(mlp) -> None:
    result = benchmark_model(mlp, QUICK_MLP, ticking_profiler())
    assert result.event == "MLP_SPRINT"
    assert result.latency.runs == QUICK_MLP.runs and np.all(result.latency.samples == 1.0)
    assert result.throughput == pytest.approx(MLP_SPRINT.batch_size / 1.0)
    assert result.flops == FLOPCounter().count_ops(mlp, MLP_SPRINT.inputs()).total
    assert result.peak_memory_bytes > 0  # the logits alone are 359 x 10 float32
    recorded = zoo.load_metrics()["models"]["mlp_digits"]["test_accuracy"]
    assert result.quality.passed and result.quality.value == pytest.approx(recorded, abs=0.5 / 359)
    assert result.train_step is not None and result.train_step.runs >= 1  # an extra, unscored


def test_benchmark_model_keeps_a_latency_measured_side_by_side(mlp) -> None:
    latency = summarize([0.25, 0.5, 2.0])  # median 0.5, mean 0.917: throughput is at the median
    result = benchmark_model(mlp, QUICK_MLP, ticking_profiler(), latency=latency)
    assert result.latency is latency
    assert result.throughput == pytest.approx(MLP_SPRINT.batch_size / 0.5)


def test_benchmark_model_warms_up_before_timing(mlp_logits) -> None:
    # The first 2 calls of the model are cold (100x slower): the event's 2 warmup calls absorb
    # them, so every one of the 3 timed samples is the warm cost.
    machine = Machine(cold=2)
    model = FakeClassifier(machine, "model", 1.0, mlp_logits)
    event = dataclasses.replace(MLP_SPRINT, warmup=2, runs=3)
    result = benchmark_model(model, event, Profiler(timer=Timer(clock=machine.clock)))
    assert list(result.latency.samples) == [1.0, 1.0, 1.0]
    assert result.flops is None and result.train_step is None  # not a tinytorch network


def test_quality_gate_rejects_a_broken_model(mlp) -> None:
    broken = zoo.load_model("mlp_digits")
    for p in broken.parameters():
        p.data[...] = np.random.default_rng(0).permutation(p.data.ravel()).reshape(p.data.shape)
    result = benchmark_model(broken, QUICK_MLP, ticking_profiler())
    assert not result.quality.passed
    card = score_events([EventScore("MLP_SPRINT", 5.0, result.quality)])
    assert card.score == 1.0 and "accuracy" in card.reasons["MLP_SPRINT"]


def test_generation_quality_is_identical_tokens_and_throughput_counts_tokens() -> None:
    gpt = zoo.load_model(TRANSFORMER_DECATHLON.model)
    good = benchmark_model(FullRecomputeGenerator(gpt), QUICK_GEN, ticking_profiler())
    assert good.quality.passed and good.quality.value == 1.0
    # throughput counts generated tokens (every sequence of the batch), not sequences: 1 s per call
    assert good.throughput == pytest.approx(QUICK_GEN.batch_size * QUICK_GEN.max_new_tokens / 1.0)

    class OffByOne:
        model = gpt

        def generate(self, prompts, max_new_tokens):
            tokens = gpt.generate(prompts, max_new_tokens)
            tokens[0, -1] = (tokens[0, -1] + 1) % gpt.vocab_size
            return tokens

    bad = benchmark_model(OffByOne(), QUICK_GEN, ticking_profiler())
    assert not bad.quality.passed and bad.quality.value < 1.0


class FakeClassifier:
    """Returns fixed logits and costs `cost` on the fake machine."""

    def __init__(self, machine: Machine, name: str, cost: float, logits: np.ndarray) -> None:
        self.machine, self.name, self.cost, self.logits = machine, name, cost, logits

    def __call__(self, x):
        self.machine.work(self.name, self.cost)
        return self.logits


def test_tinymlperf_times_baseline_and_candidate_in_the_same_run(mlp_logits) -> None:
    # run_event must interleave: the machine slows down half way through the timed calls.
    event = dataclasses.replace(MLP_SPRINT, warmup=2, runs=8)
    machine = Machine(slow_after=2 * 2 + 8)
    bench = TinyMLPerf(
        events=[event],
        profiler=Profiler(timer=Timer(clock=machine.clock)),
        baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", 3.0, mlp_logits)},
    )
    result = bench.run_event("MLP_SPRINT", FakeClassifier(machine, "candidate", 1.0, mlp_logits))
    assert result.speedup == pytest.approx(3.0, rel=RTOL)
    # The latencies are those of the one interleaved run: half the samples on each side of the slowdown.
    assert sorted(result.baseline.latency.samples) == [3.0] * 4 + [6.0] * 4
    assert sorted(result.candidate.latency.samples) == [1.0] * 4 + [2.0] * 4
    assert result.candidate.quality.passed
    assert bench.score({"MLP_SPRINT": result}).score == pytest.approx(3.0, rel=RTOL)


def test_tinymlperf_speedup_is_the_ratio_of_medians(mlp_logits) -> None:
    # One hiccup: the 6th timed call (b c | c b | b c: the candidate's last) costs 10x. The median
    # ignores it (speedup 3 / 1 = 3); a mean would count it (3 / 4 = 0.75: a "slowdown").
    machine = Machine(slow_after=5, factor=10.0)
    bench = TinyMLPerf(
        events=[dataclasses.replace(MLP_SPRINT, warmup=0, runs=3)],
        profiler=Profiler(timer=Timer(clock=machine.clock)),
        baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", 3.0, mlp_logits)},
    )
    result = bench.run_event("MLP_SPRINT", FakeClassifier(machine, "candidate", 1.0, mlp_logits))
    assert sorted(result.candidate.latency.samples) == [1.0, 1.0, 10.0]
    assert result.speedup == pytest.approx(3.0, rel=RTOL)


def test_tinymlperf_gate_fails_a_fast_broken_candidate(mlp_logits) -> None:
    machine = Machine()
    event = dataclasses.replace(MLP_SPRINT, warmup=0, runs=3)
    bench = TinyMLPerf(
        events=[event],
        profiler=Profiler(timer=Timer(clock=machine.clock)),
        baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", 4.0, mlp_logits)},
    )
    broken = FakeClassifier(machine, "candidate", 1.0, np.zeros_like(mlp_logits))
    results = bench.run({"MLP_SPRINT": broken})
    assert results["MLP_SPRINT"].speedup == pytest.approx(4.0)
    card = bench.score(results)
    assert card.score == 1.0 and "below the target" in card.reasons["MLP_SPRINT"]
    with pytest.raises(ValueError, match="missing"):
        bench.run({})


# --------------------------------------------------------------------------------------------
# Submissions and the leaderboard
# --------------------------------------------------------------------------------------------


@pytest.fixture
def board(tmp_path: Path) -> Leaderboard:
    return Leaderboard(tmp_path / "board.sqlite3")


def quick_bench(mlp_logits, cost: float = 2.0) -> TinyMLPerf:
    """A one-event competition on a fake machine: the baseline costs `cost`, nothing is timed."""
    machine = Machine()
    return TinyMLPerf(
        events=[dataclasses.replace(MLP_SPRINT, warmup=0, runs=3)],
        profiler=Profiler(timer=Timer(clock=machine.clock)),
        baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", cost, mlp_logits)},
    ), machine


def a_submission(mlp_logits, machine=None, **fields) -> CompetitionSubmission:
    machine = machine or Machine()
    values = {
        "name": "fast",
        "author": "ada",
        "optimizations": ["structured-pruning"],
        "models": {"MLP_SPRINT": FakeClassifier(machine, "candidate", 1.0, mlp_logits)},
    }
    values.update(fields)
    return CompetitionSubmission(**values)


def snapshot(board: Leaderboard) -> list:
    return [(e.name, e.score, e.events) for e in board.entries()]


def test_a_valid_submission_lands_with_its_score(mlp_logits, board) -> None:
    bench, machine = quick_bench(mlp_logits, cost=2.0)
    submission = a_submission(mlp_logits, machine)
    assert submission.validate(bench) == []
    card = submission.compute_score(bench)
    assert card.score == pytest.approx(2.0, rel=RTOL)
    entry_id = submission.submit_to_leaderboard(board, bench)
    (entry,) = board.entries()
    assert entry.id == entry_id and entry.name == "fast" and entry.score == pytest.approx(2.0, rel=RTOL)
    assert entry.events[0].speedup == pytest.approx(2.0) and entry.events[0].passed
    assert "| fast | ada | 2.00x |" in board.to_markdown()


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def bad_weights(tmp_path: Path) -> dict[str, Path]:
    """Weights files that are not well-formed .npz archives of numeric arrays."""
    good = tmp_path / "good.npz"
    np.savez(good, w=np.ones((2, 2), np.float32))
    objects = tmp_path / "objects.npz"
    np.savez(objects, w=np.array([{"run": "code"}], dtype=object))
    npy = tmp_path / "bare.npy"
    np.save(npy, np.ones(3))
    empty = tmp_path / "empty.npz"
    np.savez(empty)
    nan = tmp_path / "nan.npz"
    np.savez(nan, w=np.array([1.0, np.nan]))
    text = tmp_path / "text.npz"
    np.savez(text, w=np.array(["a", "b"]))
    complex_ = tmp_path / "complex.npz"
    np.savez(complex_, w=np.ones(2, np.float32), phase=np.array([1 + 2j]))
    truncated = write_bytes(tmp_path / "truncated.npz", good.read_bytes()[:40])
    pickled = write_bytes(tmp_path / "pickled.npz", pickle.dumps({"w": [1.0]}))
    not_zip = write_bytes(tmp_path / "random.npz", b"\x00\x01 definitely not a zip archive")
    return {
        "pickled objects": objects,
        "single .npy": npy,
        "no arrays": empty,
        "NaN": nan,
        "non-numeric": text,
        "complex": complex_,
        "truncated": truncated,
        "pickle": pickled,
        "not a zip": not_zip,
        "missing": tmp_path / "missing.npz",
    }


def test_check_weights_file_accepts_npz_and_refuses_everything_else(tmp_path: Path) -> None:
    good = tmp_path / "w.npz"
    np.savez(good, weight=np.arange(6, dtype=np.float32).reshape(2, 3), steps=np.array([3], np.int64))
    arrays = check_weights_file(good)
    assert set(arrays) == {"weight", "steps"} and arrays["weight"].shape == (2, 3)
    for what, path in bad_weights(tmp_path).items():
        with pytest.raises(ValueError, match=str(path.name)):
            check_weights_file(path)
        assert what  # the case's name says which problem it is


class _Touch:
    """Unpickling this creates a file: a stand-in for the arbitrary code a pickle can run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_check_weights_file_never_unpickles(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    pickled = write_bytes(tmp_path / "evil.npz", pickle.dumps(_Touch(str(marker))))
    objects = tmp_path / "evil_objects.npz"
    np.savez(objects, w=np.array([_Touch(str(marker))], dtype=object))
    for path in (pickled, objects):
        with pytest.raises(ValueError, match=path.name):
            check_weights_file(path)
        assert not marker.exists(), f"loading {path.name} ran the code in its pickle"


MALFORMED = {
    "missing name": ({"name": ""}, "name"),
    "missing author": ({"author": "  "}, "author"),
    "no optimizations": ({"optimizations": []}, "optimizations"),
    "unknown optimization": (
        {"optimizations": ["quantum-annealing"]},
        "unknown optimization 'quantum-annealing'",
    ),
    "optimization twice": ({"optimizations": ["kv-cache", "kv-cache"]}, "twice"),
    "missing event": ({"models": {}}, "no model for event MLP_SPRINT"),
    "unknown event": ({"models": "extra"}, "unknown event 'BOBSLEIGH'"),
    "model crashes": ({"models": "crash"}, "does not run"),
    "model below target": ({"models": "zeros"}, "quality gate failed"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=lambda c: c.replace(" ", "-"))
def test_malformed_submission_is_rejected_with_a_reason_and_changes_nothing(case, mlp_logits, board) -> None:
    bench, machine = quick_bench(mlp_logits)
    a_submission(mlp_logits, machine, name="earlier").submit_to_leaderboard(board, bench)
    before = snapshot(board)
    fields, reason = MALFORMED[case]
    good_model = FakeClassifier(machine, "candidate", 1.0, mlp_logits)

    def crash(x):
        raise RuntimeError("boom")

    models = {
        "extra": {"MLP_SPRINT": good_model, "BOBSLEIGH": good_model},
        "crash": {"MLP_SPRINT": crash},
        "zeros": {"MLP_SPRINT": FakeClassifier(machine, "candidate", 1.0, np.zeros_like(mlp_logits))},
    }
    if isinstance(fields.get("models"), str):
        fields = {**fields, "models": models[fields["models"]]}
    submission = a_submission(mlp_logits, machine, **fields)
    assert any(reason in problem for problem in submission.validate(bench)), submission.validate(bench)
    with pytest.raises(InvalidSubmission) as error:
        submission.submit_to_leaderboard(board, bench)
    assert any(reason in r for r in error.value.reasons)
    assert snapshot(board) == before


@pytest.mark.parametrize("which", ["pickled objects", "not a zip", "truncated", "missing"])
def test_submission_with_bad_weights_is_rejected(which, mlp_logits, board, tmp_path) -> None:
    bench, machine = quick_bench(mlp_logits)
    path = bad_weights(tmp_path)[which]
    submission = a_submission(mlp_logits, machine, weights={"MLP_SPRINT": path})
    with pytest.raises(InvalidSubmission, match=path.name):
        submission.submit_to_leaderboard(board, bench)
    assert len(board) == 0


@pytest.mark.parametrize("time", [math.nan, -0.5, 0.0, math.inf])
def test_submission_with_bad_times_is_rejected(time, mlp_logits, board) -> None:
    bench, machine = quick_bench(mlp_logits)
    submission = a_submission(mlp_logits, machine)
    submission.compute_score(bench)
    result = submission.results["MLP_SPRINT"]
    bad_latency = dataclasses.replace(result.candidate.latency, p50=time)
    submission.results["MLP_SPRINT"] = dataclasses.replace(
        result, candidate=dataclasses.replace(result.candidate, latency=bad_latency)
    )
    with pytest.raises(InvalidSubmission, match="candidate time"):
        submission.submit_to_leaderboard(board, bench)
    assert len(board) == 0


def test_crash_mid_submission_leaves_the_leaderboard_consistent(mlp_logits, board) -> None:
    bench, machine = quick_bench(mlp_logits)
    a_submission(mlp_logits, machine, name="first").submit_to_leaderboard(board, bench)
    before = snapshot(board)

    class CrashingBoard(Leaderboard):
        def add(self, entry, _fault=None):
            def crash():
                raise KeyboardInterrupt("power cut between the submission row and its events")

            return super().add(entry, _fault=crash)

    with pytest.raises(KeyboardInterrupt):
        a_submission(mlp_logits, machine, name="second").submit_to_leaderboard(
            CrashingBoard(board.path), bench
        )
    assert snapshot(board) == before
    assert board.integrity_problems() == []
    a_submission(mlp_logits, machine, name="third").submit_to_leaderboard(board, bench)
    assert sorted(e.name for e in board.entries()) == ["first", "third"]


def _submit_in_child(path: str, name: str, logits: np.ndarray, barrier) -> None:
    bench, machine = quick_bench(logits)
    submission = a_submission(logits, machine, name=name)
    submission.compute_score(bench)
    barrier.wait(timeout=20)  # both processes reach the database at the same moment
    submission.submit_to_leaderboard(Leaderboard(path), bench)


def test_two_processes_submitting_at_once_both_land(mlp_logits, board) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    children = [
        context.Process(target=_submit_in_child, args=(str(board.path), f"proc{i}", mlp_logits, barrier))
        for i in range(2)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
    assert [child.exitcode for child in children] == [0, 0]
    assert sorted(e.name for e in board.entries()) == ["proc0", "proc1"]
    assert board.integrity_problems() == []


# --------------------------------------------------------------------------------------------
# The reference submission (modules 16-19 applied to the zoo)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> CompetitionSubmission:
    return build_submission()


def test_reference_submission_validates(reference) -> None:
    assert reference.validate(TinyMLPerf()) == []
    assert set(reference.models) == {e.name for e in EVENTS}
    assert all(opt in OPTIMIZATIONS for opt in reference.optimizations)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.name)
def test_reference_submission_does_less_work_on_every_event(reference, event) -> None:
    # Hardware independent: FLOPs of one event call by module 15's rules (time is the benchmark's).
    if event.task == "generate":
        event = QUICK_GEN  # the same model and prompts, fewer tokens: the baseline is slow
    candidate = workload_flops(reference.models[event.name], event)
    baseline = workload_flops(event.baseline_model(), event)
    assert candidate is not None and baseline is not None
    assert candidate < baseline, f"{event.name}: {candidate} FLOPs, baseline {baseline}"


def test_reference_weights_files_are_well_formed(reference, tmp_path) -> None:
    from tinytorch.perf.benchmarking import save_weights_files

    paths = save_weights_files({**reference.models, "NO_NETWORK": object()}, tmp_path)  # skipped
    assert set(paths) == {e.name for e in EVENTS}
    for path in paths.values():
        assert zipfile.is_zipfile(path) and check_weights_file(path)


def test_reference_runs_in_the_competition_against_the_zoo_baseline(reference) -> None:
    # The baseline comes from the zoo; a fake clock, so the speedup is 1 and only the rest is checked.
    bench = TinyMLPerf(events=[QUICK_MLP], profiler=ticking_profiler())
    result = bench.run_event("MLP_SPRINT", reference.models["MLP_SPRINT"])
    assert result.baseline.quality.passed and result.candidate.quality.passed
    assert result.candidate.flops < result.baseline.flops
    assert "MLP_SPRINT" in str(result.candidate) and "MFLOP" in str(result.baseline)
    with pytest.raises(KeyError, match="unknown event 'BOBSLEIGH'"):
        bench.run_event("BOBSLEIGH", reference.models["MLP_SPRINT"])
    with pytest.raises(TypeError, match="events"):
        TinyMLPerf(events=[])
    with pytest.raises(TypeError, match="candidates"):
        bench.run([reference.models["MLP_SPRINT"]])


def test_fused_inference_computes_the_network(reference) -> None:
    from tinytorch.perf.benchmarking import FusedInference

    from tinytorch.layers import Linear, ReLU, Sequential

    fused = reference.models["CNN_MARATHON"]
    x = MLP_SPRINT.inputs()[:16]
    with no_grad():
        expected = fused.model(Tensor(x)).data
    # float32 through the same products in another order: a few ulps of the logits' scale
    np.testing.assert_allclose(fused(x), expected, rtol=1e-4, atol=1e-4)
    no_bias = Sequential(Linear(4, 3, bias=False), ReLU())
    v = np.arange(8, dtype=np.float32).reshape(2, 4)
    with no_grad():
        np.testing.assert_allclose(FusedInference(no_bias)(v), no_bias(Tensor(v)).data, rtol=1e-6)
    # The event's inputs are cached and shared by every call: fused inference must never write
    # into its input (a ReLU done in place on it, or on a Flatten view of it, would).
    first_relu = Sequential(ReLU(), Linear(4, 3))
    signed = v - 3.5
    before = signed.copy()
    with no_grad():
        expected = first_relu(Tensor(signed)).data
    np.testing.assert_allclose(FusedInference(first_relu)(signed), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(signed, before)
    with pytest.raises(TypeError, match="Sequential"):
        FusedInference(Linear(2, 2))
    from tinytorch.layers import GELU

    with pytest.raises(TypeError, match="GELU"):
        FusedInference(Sequential(Linear(2, 2), GELU()))
    from tinytorch.conv import MaxPool2d

    with pytest.raises(ValueError, match="non-overlapping"):
        FusedInference(Sequential(MaxPool2d(3, stride=1)))


def test_validate_reports_containers_of_the_wrong_type(mlp_logits) -> None:
    bench, machine = quick_bench(mlp_logits)
    submission = a_submission(mlp_logits, machine, models=["a model"], weights="w.npz")
    problems = submission.validate(bench)
    assert any("models must map" in p for p in problems) and any("weights must map" in p for p in problems)
    with pytest.raises(ValueError, match="compute_score"):
        a_submission(mlp_logits, machine).to_entry()


def test_benchmark_model_and_events_check_their_arguments(mlp) -> None:
    assert benchmark_model(mlp, QUICK_MLP, ticking_profiler()).latency.runs == QUICK_MLP.runs
    with pytest.raises(TypeError, match="event"):
        benchmark_model(mlp, "MLP_SPRINT", ticking_profiler())
    with pytest.raises(TypeError, match="profiler"):
        benchmark_model(mlp, QUICK_MLP, Timer())
    with pytest.raises(ValueError, match="task"):
        dataclasses.replace(MLP_SPRINT, task="dance")
    with pytest.raises(ValueError, match="batch_size"):
        dataclasses.replace(MLP_SPRINT, batch_size=0)
    with pytest.raises(TypeError, match="runs"):
        dataclasses.replace(MLP_SPRINT, runs=2.5)


def test_score_card_reads_as_text() -> None:
    card = score_events(scores([4.0, 9.0], [True, False]))
    text = str(card)
    assert "score 2.000x" in text and "E1: 1.000x" in text and "not counted" in text


def test_corrupt_array_inside_a_valid_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corrupt_member.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", b"\x93NUMPY garbage that is not an array header")
    with pytest.raises(ValueError, match="corrupt_member.npz"):
        check_weights_file(path)


def test_tinytorch_submit_runs_validates_and_records(mlp_logits, board, monkeypatch) -> None:
    import io
    from argparse import Namespace

    from tinytorch import leaderboard

    bench, machine = quick_bench(mlp_logits, cost=3.0)
    args = Namespace(json=None, name="cli", author=None, save_json=None, db=str(board.path), quick=True)
    out = io.StringIO()
    entry = leaderboard._run_submission(
        args, out, submission=a_submission(mlp_logits, machine), benchmark=bench
    )
    assert entry.name == "cli" and entry.score == pytest.approx(3.0, rel=RTOL)
    assert "score 3.000x" in out.getvalue()
    broken = a_submission(mlp_logits, machine, optimizations=["teleport"])
    with pytest.raises(InvalidSubmission, match="teleport"):
        leaderboard._run_submission(args, out, submission=broken, benchmark=bench)
    monkeypatch.setenv("TINYTORCH_IMPL", "solutions")  # restored after the test
    monkeypatch.setattr(leaderboard, "_run_submission", lambda a, o: entry)
    assert leaderboard.cli_submit(args, out, impl="solutions") == 0
    assert [e.name for e in board.entries()] == ["cli"]
