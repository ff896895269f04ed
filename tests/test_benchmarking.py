"""Module 20 (benchmarking): TinyMLPerf scoring, fair measurement, submissions and the leaderboard.

Nothing here is timed. Every clock is fake: a "machine" whose time moves only when a fake
workload runs (by a cost we choose, times a load factor that can change mid-run), or a clock
that ticks by one at every reading. So the scoring laws are checked exactly, and the fairness
rules (interleaving, warmup) are checked by what they are for: a machine that slows down half
way through must not change a speedup. Speed itself is measured by `tinytorch bench benchmarking`.

One file, whole: it is the module's suite as the registry names it (``tests = ...`` in
tinytorch/course/modules.toml), the file ``tinytorch test benchmarking`` runs, the grader collects and
the classic mistakes' ``caught_by`` names; it reads in sections, one per task.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import multiprocessing
import pickle
import time
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
    SpeedupInterval,
    TinyMLPerf,
    benchmark_model,
    build_submission,
    check_weights_file,
    compute_speedup,
    geometric_mean,
    measure_interleaved,
    measure_paired,
    min_rounds,
    precise_enough,
    score_events,
    score_interval,
    speedup_interval,
    workload_flops,
)
from tinytorch.perf.profiling import FLOPCounter, Timer, summarize

from tinytorch import zoo
from tinytorch.course.leaderboard import OPTIMIZATIONS, Leaderboard
from tinytorch.tensor import Tensor, no_grad

# Relative tolerance of the scoring laws. A score is exp(fsum(log s_i) / n): each log carries an
# absolute error of a few ulps of |log s| <= log(1e3) ~ 7 (~1e-15), exp turns an absolute error
# of its argument into the same relative error; medians of scaled samples and their ratios add a
# few more float64 roundings (2**-53 ~ 1.1e-16 each). 1e-12 leaves a 100x margin.
RTOL = 1e-12


@pytest.fixture(autouse=True)
def default_leaderboard_in_tmp(tmp_path_factory, monkeypatch) -> None:
    """Leaderboard() opens $TINYTORCH_LEADERBOARD: a submission that ignores the board it is given
    writes to a throwaway file (where the test finds nothing), never to the user's own board."""
    monkeypatch.setenv("TINYTORCH_LEADERBOARD", str(tmp_path_factory.mktemp("default") / "board.sqlite3"))


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
    speedup = compute_speedup(baseline, candidate)
    assert speedup == pytest.approx(baseline / candidate, rel=RTOL), (
        f"speedup of a {candidate} s candidate over a {baseline} s baseline: {speedup}, "
        f"expected t_baseline / t_candidate = {baseline / candidate}"
    )


def test_speedup_compares_medians_of_timings() -> None:
    # A single slow outlier (the OS, a cache flush) moves the mean but not the median.
    baseline = summarize([3.0, 3.0, 3.0, 3.0, 300.0])
    candidate = summarize([1.0, 1.0, 1.0, 1.0, 1.0])
    speedup = compute_speedup(baseline, candidate)
    assert speedup == 3.0, f"speedup of TimingResults: {speedup}, expected median 3 / median 1 = 3.0"
    result = BenchmarkResult("E", baseline, 1.0, 0, None, PASS)
    speedup = compute_speedup(result, candidate)
    assert speedup == 3.0, f"speedup of a BenchmarkResult (its latency's median): {speedup}, expected 3.0"


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

    assert score(factor) == pytest.approx(score(1.0), rel=RTOL), (
        f"score with every time scaled by {factor}: {score(factor)}, unscaled {score(1.0)}"
    )


@given(SPEEDUPS, st.integers(1, 6))
@example(3.0, 3)
@example(1e-3, 6)
def test_every_speedup_k_gives_score_k(k: float, n: int) -> None:
    score = score_of([k] * n)
    assert score == pytest.approx(k, rel=RTOL), f"score of {n} events of speedup {k}: {score}, expected {k}"


@given(speedup_lists(min_size=1))
@example([2.0, 0.5])  # a gain and an equal loss cancel: 1, where the arithmetic mean says 1.25
@example([2.0, 8.0])
@example([1e3, 1e-3, 1.0])
def test_reciprocal_speedups_give_reciprocal_score(speedups: list[float]) -> None:
    reciprocal = score_of([1 / s for s in speedups])
    assert reciprocal == pytest.approx(1 / score_of(speedups), rel=RTOL), (
        f"score of the reciprocal speedups of {speedups}: {reciprocal}, expected 1 / score = "
        f"{1 / score_of(speedups)}"
    )


def test_score_is_the_geometric_mean() -> None:
    for speedups, expected in (([2.0, 8.0], 4.0), ([2.0, 0.5], 1.0), ([4.0, 9.0], 6.0)):
        score = score_of(speedups)
        assert score == pytest.approx(expected, rel=RTOL), (
            f"score of {speedups}: {score}, expected {expected}"
        )
    mean = geometric_mean([4.0, 2.25])
    assert mean == pytest.approx(3.0, rel=RTOL), f"geometric_mean([4, 2.25]): {mean}, expected 3.0"
    # No overflow: the product 1e900 is inf in float64, its cube root is not. In log space the
    # result is 1e300 within rounding: log(1e300) ~ 691 carries an error of a few ulps
    # (ulp(691) ~ 1.1e-13), which exp turns into the same relative error, ~2.4e-14 here.
    mean = geometric_mean([1e300, 1e300, 1e300])
    assert mean == pytest.approx(1e300, rel=RTOL), f"geometric_mean([1e300] * 3): {mean}, expected 1e300"


@given(speedup_lists(min_size=1), st.integers(0, 5), st.floats(1.01, 100.0))
@example([1.0, 1.0], 1, 1.01)
@example([1e3, 1e-3], 0, 1.01)
def test_score_is_monotone_in_each_speedup(speedups: list[float], index: int, gain: float) -> None:
    i = index % len(speedups)
    faster = list(speedups)
    faster[i] *= gain
    assert score_of(faster) > score_of(speedups), (
        f"score after event {i} got {gain}x faster: {score_of(faster)}, before {score_of(speedups)}"
    )
    # ... unless that event failed its quality gate: then it scores nothing either way.
    passed = [j != i for j in range(len(speedups))]
    assert score_of(faster, passed) == pytest.approx(score_of(speedups, passed), rel=RTOL), (
        f"score after the failed event {i} got {gain}x faster: {score_of(faster, passed)}, "
        f"before {score_of(speedups, passed)} (a failed event counts 1 either way)"
    )


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
    assert card.score == pytest.approx(geometric_mean(others), rel=RTOL), (
        f"score with E{i} failed: {card.score}, expected the geometric mean of {others}"
    )
    assert set(card.reasons) == {f"E{i}"}, f"events with a reason: {set(card.reasons)}, expected only E{i}"
    reason = card.reasons[f"E{i}"]
    assert "accuracy" in reason and "0.95" in reason, (
        f"reason of E{i}: {reason!r}, expected its quality.reason (metric and target)"
    )


def test_score_counts_a_nan_gate_value_as_failed() -> None:
    # A model whose quality came out NaN (a metric over no outputs, a NaN loss) has not shown
    # that it reaches its target: every comparison with NaN is False, so "value < target" does
    # not flag it; the gate is "value >= target" (QualityCheck.passed).
    nan = QualityCheck(metric="accuracy", value=math.nan, target=0.95)
    card = score_events([EventScore("E0", 4.0, PASS), EventScore("E1", 9.0, nan)])
    assert card.counted == {"E0": 4.0, "E1": 1.0}, f"counted speedups: {card.counted}, E1 (NaN) must count 1"
    assert set(card.reasons) == {"E1"}, f"events with a reason: {set(card.reasons)}, expected only E1"
    assert card.score == pytest.approx(2.0, rel=RTOL), f"score: {card.score}, expected sqrt(4 * 1) = 2"


def test_score_rejects_nothing_to_score() -> None:
    # Each is a ValueError naming the argument (the docstrings): events or values.
    with pytest.raises(ValueError, match="events"):
        score_events([])
    with pytest.raises(ValueError, match="events"):
        score_events(scores([1.0]) * 2)  # two events with one name
    with pytest.raises(ValueError, match="values"):
        geometric_mean([])
    with pytest.raises(ValueError, match="values"):
        geometric_mean([1.0, -2.0])
    with pytest.raises(ValueError, match="values"):
        geometric_mean([2.0, 0.0])  # log 0 is undefined: refused like any value that is not > 0


def test_scores_and_measurements_are_frozen_records(mlp_logits) -> None:
    # A measured figure is a record the leaderboard trusts: it cannot be edited in place (a
    # changed copy comes from dataclasses.replace).
    card = score_events(scores([2.0]))
    bench, machine = quick_bench(mlp_logits)
    result = bench.run_event("MLP_SPRINT", FakeClassifier(machine, "candidate", 1.0, mlp_logits))
    paired = measure_paired(lambda: None, lambda: None, Timer(clock=itertools.count().__next__), 0, 6)
    records = {
        "ScoreCard": (card, "score"),
        "EventScore": (scores([2.0])[0], "speedup"),
        "QualityCheck": (PASS, "value"),
        "EventResult": (result, "speedup"),
        "BenchmarkResult": (result.candidate, "throughput"),
        "Event": (MLP_SPRINT, "runs"),
        "SpeedupInterval": (result.interval, "value"),
        "PairedTiming": (paired, "loops"),
    }
    for name, (record, attribute) in records.items():
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, attribute, 0)
        assert getattr(record, attribute) != 0, f"{name}.{attribute} was changed in place"


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
    speedup = compute_speedup(timings["baseline"], timings["candidate"])
    assert speedup == pytest.approx(costs[0] / costs[1], rel=RTOL), (
        f"speedup measured on a machine that slows down half way: {speedup}, expected the true cost "
        f"ratio {costs[0]} / {costs[1]} (baseline samples {list(timings['baseline'].samples)}, "
        f"candidate {list(timings['candidate'].samples)})"
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
    assert len(timed) == 12, f"timed calls: {len(timed)}, expected 6 runs x 2 functions: {machine.log}"
    rounds = [timed[i : i + 2] for i in range(0, 12, 2)]
    assert all(sorted(r) == ["b", "c"] for r in rounds), f"every round times each function once: {timed}"
    assert rounds == [["b", "c"], ["c", "b"]] * 3, (
        f"rounds {rounds}: expected the given order in even rounds (0, 2, 4) and the reverse in odd "
        "ones, so no function always goes first"
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
    counts = (timings["a"].runs, timings["b"].runs)
    assert counts == (runs, runs), f"samples per function: {counts}, expected runs = {runs} each"
    assert np.all(timings["a"].samples == cost) and np.all(timings["b"].samples == 2 * cost), (
        f"samples {list(timings['a'].samples)} and {list(timings['b'].samples)}: a cold warmup call "
        f"(100x) became a sample, expected only the warm costs {cost} and {2 * cost}"
    )
    assert machine.calls == 2 * (warmup + runs), (
        f"calls: {machine.calls}, expected (warmup + runs) x 2 functions = {2 * (warmup + runs)}"
    )


def test_measure_interleaved_checks_its_arguments() -> None:
    timer = Timer(clock=itertools.count().__next__)
    runs = measure_interleaved({"a": lambda: None}, warmup=0, runs=2, timer=timer)["a"].runs
    assert runs == 2, f"samples with warmup=0, runs=2: {runs}"
    with pytest.raises(ValueError, match="funcs"):
        measure_interleaved({}, 1, 1, timer)
    with pytest.raises(TypeError, match="funcs"):
        measure_interleaved({"a": 3}, 1, 1, timer)
    with pytest.raises(ValueError, match="runs"):
        measure_interleaved({"a": lambda: None}, 1, 0, timer)
    with pytest.raises(TypeError, match="warmup"):
        measure_interleaved({"a": lambda: None}, 1.5, 1, timer)


# --------------------------------------------------------------------------------------------
# A speedup with its uncertainty: paired rounds, the median ratio and its interval
# --------------------------------------------------------------------------------------------

# k of the 95 % interval [r_(k), r_(n+1-k)] for n rounds, from the binomial tables: the largest k
# with P(Binomial(n, 1/2) <= k - 1) <= 0.025 (n = 100: r_(40) to r_(61), the textbook's).
ORDER_STATISTIC_K = {6: 1, 7: 1, 8: 1, 9: 2, 10: 2, 20: 6, 41: 14, 100: 40}


def exact_coverage(n: int) -> float:
    """1 - 2 P(B <= k - 1), B ~ Binomial(n, 1/2): the order-statistics interval's coverage."""
    k = ORDER_STATISTIC_K[n]
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n


@given(st.sampled_from(sorted(ORDER_STATISTIC_K)), st.integers(0, 2**32 - 1))
@example(6, 0)  # the fewest rounds with a 95 % interval: the smallest and the largest ratio
@example(100, 1)  # r_(40) and r_(61)
def test_round_ratio_interval_is_the_median_between_order_statistics(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    candidate = rng.uniform(0.5, 2.0, n)
    baseline = candidate * rng.lognormal(1.0, 0.3, n)  # ratio ~ e: any distribution will do
    interval = speedup_interval(list(baseline), list(candidate))
    ratios = sorted(baseline / candidate)
    k = ORDER_STATISTIC_K[n]
    expected = (float(np.median(ratios)), ratios[k - 1], ratios[n - k])
    got = (interval.value, interval.low, interval.high)
    # the same divisions of the same floats: equal up to the median's one addition (1 ulp)
    assert got == pytest.approx(expected, rel=1e-15), (
        f"(median ratio, low, high) of {n} rounds: {got}, expected the median and the order "
        f"statistics r_({k}) and r_({n + 1 - k}) of the sorted per-round ratios: {expected}"
    )
    assert interval.rounds == n, f"rounds of the interval: {interval.rounds}, expected {n}"


def test_round_ratio_interval_pairs_rounds_and_takes_the_median() -> None:
    # Round i of both sides saw the same machine: the ratios are 2, 2, 2, 2, 2, 20.
    baseline = [2.0, 20.0, 4.0, 200.0, 8.0, 20.0]
    candidate = [1.0, 10.0, 2.0, 100.0, 4.0, 1.0]
    interval = speedup_interval(baseline, candidate)
    # median ratio 2; the ratio of the medians would say 14 / 3 = 4.67, the mean ratio 5, and
    # ratios of the separately sorted samples (2/1, 4/1, 8/2, 20/4, 20/10, 200/100) a median of 3
    assert interval.value == 2.0, (
        f"speedup of rounds with ratios 2, 2, 2, 2, 2, 20: {interval.value}, expected their median 2 "
        "(not the ratio of medians 4.67, the mean ratio 5 or unpaired ratios' median 3)"
    )
    assert (interval.low, interval.high) == (2.0, 20.0), (
        f"95 % interval of 6 rounds: ({interval.low}, {interval.high}), expected the smallest and "
        "largest ratio (2, 20)"
    )
    from_timings = speedup_interval(summarize(baseline), summarize(candidate))
    assert from_timings == interval, (
        f"interval from TimingResults {from_timings}, from the same samples as lists {interval}"
    )
    assert str(interval) == "2.00\u00d7 (2.00\u201320.00)", f"the interval as text: {interval}"


@pytest.mark.parametrize("n", [6, 9, 20, 41])
def test_round_ratio_interval_covers_the_true_ratio_at_its_stated_rate(n: int) -> None:
    # Synthetic rounds with a known ratio r = 2.5: a load shared by both halves of a round
    # (cancels in the ratio) and noise of each side's own, skewed (lognormal); the per-round
    # ratio's median is r because the two noises have the same law. Over T trials the interval
    # must hold r at its exact rate 1 - 2 P(B <= k - 1) (>= 95 %): the observed rate is within
    # 4 standard errors sqrt(p (1 - p) / T) of it (a false alarm about once in 15,000 runs; the
    # draws are seeded, so the outcome is fixed). Too narrow (wrong order statistics, off by
    # one) or too wide (percentiles of the ratios) both miss it.
    trials, ratio = 2000, 2.5
    rng = np.random.default_rng(20 + n)
    load = rng.lognormal(0.0, 0.5, (trials, n))
    candidate = load * rng.lognormal(0.0, 0.3, (trials, n))
    baseline = ratio * load * rng.lognormal(0.0, 0.3, (trials, n))
    held = 0
    for b, c in zip(baseline, candidate, strict=True):
        interval = speedup_interval(list(b), list(c))
        held += interval.low <= ratio <= interval.high
    expected = exact_coverage(n)
    rate, error = held / trials, 4 * math.sqrt(expected * (1 - expected) / trials)
    assert expected >= 0.95 and abs(rate - expected) <= error, (
        f"share of {trials} intervals of {n} rounds holding the true ratio {ratio}: {rate:.4f}, "
        f"expected {expected:.4f} +- {error:.4f} (the order statistics' exact coverage, >= 95 %)"
    )


@given(st.lists(st.floats(0.1, 10.0), min_size=6, max_size=30), st.randoms(use_true_random=False))
@example([3.0] * 6, None)  # all rounds equal: the point 3x (3.00-3.00)
def test_round_ratio_interval_ignores_round_order_and_holds_its_median(ratios, shuffler) -> None:
    candidate = [1.0] * len(ratios)
    interval = speedup_interval(ratios, candidate)
    shuffled = list(ratios)
    if shuffler is not None:
        shuffler.shuffle(shuffled)
    again = speedup_interval(shuffled, candidate)
    assert (again.value, again.low, again.high) == (interval.value, interval.low, interval.high), (
        f"interval of the same rounds in another order: {again}, first {interval}"
    )
    assert interval.low <= interval.value <= interval.high, (
        f"speedup {interval.value} outside its own interval ({interval.low}, {interval.high})"
    )
    if len(set(ratios)) == 1:
        assert (interval.low, interval.value, interval.high) == (ratios[0],) * 3, (
            f"interval of rounds that all give {ratios[0]}: {interval}, expected the point"
        )


def test_round_ratio_interval_refuses_too_few_rounds_and_bad_input() -> None:
    assert min_rounds() == 6 and min_rounds(0.99) == 8, (
        f"fewest rounds for an interval: {min_rounds()} at 95 % (expected 6: 2 / 2**6 <= 0.05), "
        f"{min_rounds(0.99)} at 99 % (expected 8)"
    )
    with pytest.raises(ValueError, match=r"rounds.*at least 6"):
        speedup_interval([2.0] * 5, [1.0] * 5)  # 2 / 2**5 = 6.25 % > 5 %: no 95 % interval
    with pytest.raises(ValueError, match="rounds"):
        speedup_interval([], [])
    with pytest.raises(ValueError, match="candidate"):
        speedup_interval([2.0] * 6, [1.0] * 7)
    with pytest.raises(ValueError, match="baseline"):
        speedup_interval([2.0] * 5 + [0.0], [1.0] * 6)
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="confidence"):
            speedup_interval([2.0] * 6, [1.0] * 6, confidence=bad)
    with pytest.raises(TypeError, match="confidence"):
        speedup_interval([2.0] * 6, [1.0] * 6, confidence=True)
    for bad in (3.0, "abcdef"):
        with pytest.raises(TypeError, match="baseline must be a TimingResult or a sequence"):
            speedup_interval(bad, [1.0] * 6)
    assert min_rounds(0.5) == 2, f"fewest rounds at 50 %: {min_rounds(0.5)}, expected 2 (2 / 2**2 = 0.5)"
    at_the_bound = speedup_interval([1.0, 3.0], [1.0, 1.0], confidence=0.5)
    # P(B <= 0) = 1/4 = alpha / 2 exactly: a tail equal to alpha / 2 is allowed (<=), k = 1
    assert (at_the_bound.low, at_the_bound.value, at_the_bound.high) == (1.0, 2.0, 3.0), (
        f"50 % interval of 2 rounds (ratios 1, 3): {at_the_bound}, expected 2.00x (1.00-3.00)"
    )
    interval = speedup_interval([float(i) for i in range(1, 21)], [1.0] * 20, confidence=0.5)
    # 50 %: the largest k with P(B <= k - 1) <= 0.25 for n = 20 is 9 (P(B <= 8) = 0.2517)
    assert (interval.low, interval.high, interval.confidence) == (8.0, 13.0, 0.5), (
        f"50 % interval of ratios 1..20: ({interval.low}, {interval.high}) at {interval.confidence}, "
        "expected r_(8) = 8 to r_(13) = 13"
    )


@pytest.mark.parametrize(
    ("value", "low", "high", "precision", "expected"),
    [
        (2.37, 2.30, 2.45, 0.05, True),  # half-width 0.075 <= 0.1185
        (2.0, 1.5, 2.5, 0.05, False),  # 0.5 > 0.1
        (4.0, 3.5, 4.5, 0.125, True),  # 0.5 <= 0.5 (exact in binary): the bound itself is precise
        (4.0, 3.5, 4.5, 0.0625, False),  # 0.5 > 0.25
        (10.0, 9.9, 12.0, 0.1, False),  # 1.05 > 1.0: the whole width, not the part above
        (3.0, 3.0, 3.0, 1e-9, True),  # a point is always precise enough
    ],
)
def test_precise_enough_compares_the_half_width_with_the_precision(
    value, low, high, precision, expected
) -> None:
    interval = SpeedupInterval(value, low, high, rounds=6)
    got = precise_enough(interval, precision)
    assert got is expected or got == expected, (
        f"precise_enough({value}x ({low}-{high}), precision {precision}): {got}, expected {expected} "
        f"(half-width {(high - low) / 2:.4g} against {precision * value:.4g})"
    )
    with pytest.raises(ValueError, match="precision"):
        precise_enough(interval, 0.0)
    with pytest.raises(TypeError, match="precision"):
        precise_enough(interval, True)
    # the default precision is PRECISION, 5 %: half-widths 0.15 and 0.05 of a speedup of 2
    loose, tight = SpeedupInterval(2.0, 1.85, 2.15, 6), SpeedupInterval(2.0, 1.95, 2.05, 6)
    assert (precise_enough(loose), precise_enough(tight)) == (False, True), (
        "precise_enough with the default precision (5 % of 2 = 0.1) of half-widths 0.15 and 0.05: "
        f"{precise_enough(loose)}, {precise_enough(tight)}"
    )


def test_score_interval_is_the_geometric_mean_of_the_bounds() -> None:
    events = [
        EventScore("A", 4.0, PASS, SpeedupInterval(4.0, 2.0, 8.0, rounds=6)),
        EventScore("B", 9.0, PASS, SpeedupInterval(9.0, 8.0, 18.0, rounds=6)),
        EventScore("C", 5.0, FAIL, SpeedupInterval(5.0, 4.0, 6.0, rounds=6)),
        EventScore("D", 2.0, PASS),  # no interval: the point (2, 2)
    ]
    card = score_events(events)
    # log space: mean of the counted log bounds; the failed event counts as the point (1, 1)
    expected = ((2 * 8 * 1 * 2) ** 0.25, (8 * 18 * 1 * 2) ** 0.25)
    assert card.bounds == pytest.approx(expected, rel=RTOL), (
        f"score interval: {card.bounds}, expected the geometric means of the counted lows and "
        f"highs {expected} (a failed gate counts (1, 1), an event without an interval its point)"
    )
    assert card.intervals == {"A": (2.0, 8.0), "B": (8.0, 18.0), "C": (1.0, 1.0), "D": (2.0, 2.0)}, (
        f"counted intervals per event: {card.intervals}"
    )
    with pytest.raises(ValueError, match="intervals"):
        score_interval([])


def test_paired_rounds_calibrate_one_loop_count_and_stop_at_the_budget() -> None:
    # Calls cost about 0.003 and 0.001 s (the candidate's cost cycles through 3 values, so its
    # 20-call loops differ and the interval never gets 1e-6 narrow): the candidate needs 20
    # calls for a 20 ms loop (1, 2, 5, 10 are too short), the baseline 10. Both sides then time
    # loops of 20 calls: every sample lasts >= min_time. Samples are per call; rounds stop at
    # the first round that ends 1 s or more after the first one started.
    machine = Machine()
    costs = itertools.cycle([0.001, 0.0012, 0.0008])
    timing = measure_paired(
        machine.workload("b", 0.003),
        lambda: machine.work("c", next(costs)),
        Timer(clock=machine.clock),
        warmup=1,
        runs=3,
        budget=1.0,
        precision=1e-6,
    )
    assert timing.loops == 20, f"loop count of both sides: {timing.loops}, expected max(10, 20) = 20"
    assert timing.baseline.loops == timing.candidate.loops == 20, (
        f"loops recorded in the timings: {timing.baseline.loops}, {timing.candidate.loops}"
    )
    rounds = timing.interval.rounds
    ends = np.cumsum((timing.baseline.samples + timing.candidate.samples) * 20)  # each round's end
    assert rounds >= 6 and ends[-1] >= 1.0 and (rounds == 6 or ends[-2] < 1.0), (
        f"rounds: {rounds}, ending at {ends[-2:]} s after the first began: expected the first round "
        "that ends 1 s or more after the start (the budget), and at least 6"
    )
    assert timing.baseline.p50 == pytest.approx(0.003, rel=1e-9), (
        f"baseline time per call: {timing.baseline.p50}, expected 0.003 s (a sample is its loop / 20)"
    )
    assert timing.interval.value == pytest.approx(3.0, rel=0.1), f"speedup: {timing.interval}"
    # A round that ends exactly at the budget ends the rounds: after calibration the candidate's
    # calls cost 0.5, 0.25, 0.5, ... and the baseline's 0.5, so rounds end at 1, 1.75, 2.75, 3.5,
    # 4.5, 5.25, 6.25 (exact in binary); ratios 1 and 2, never within 5 %. Budget 6.25: 7 rounds.
    machine = Machine()
    halves = itertools.cycle([0.25, 0.5])
    timing = measure_paired(
        machine.workload("b", 0.5),
        lambda: machine.work("c", next(halves)),
        Timer(clock=machine.clock),
        warmup=0,
        runs=1,
        budget=6.25,
    )
    assert timing.interval.rounds == 7, (
        f"rounds with a 6.25 s budget and rounds ending at 1, 1.75, ..., 5.25, 6.25: "
        f"{timing.interval.rounds}, expected 7 (the round that reaches the budget is the last)"
    )
    clock = Timer(clock=itertools.count().__next__)
    for bad, error, name in (
        (dict(baseline=3), TypeError, "baseline"),
        (dict(candidate="fast"), TypeError, "candidate"),
        (dict(runs=0), ValueError, "runs"),
        (dict(warmup=1.5), TypeError, "warmup"),
        (dict(precision=0.0), ValueError, "precision"),
        (dict(budget=-1.0), ValueError, "budget"),
    ):
        machine = Machine()
        work = machine.workload("w", 1.0)
        call = dict(baseline=work, candidate=work, timer=clock, warmup=0, runs=6) | bad
        with pytest.raises(error, match=name):
            measure_paired(**call)
        assert machine.calls == 0, f"calls made before refusing {bad}: {machine.calls}, expected none"


@given(runs=st.integers(1, 12), warmup=st.integers(0, 3))
@example(runs=1, warmup=0)  # below the fewest rounds of a 95 % interval: 6 rounds anyway
def test_paired_rounds_stop_once_precise_after_the_least_rounds(runs: int, warmup: int) -> None:
    machine = Machine()
    timing = measure_paired(
        machine.workload("b", 3.0), machine.workload("c", 1.0), Timer(clock=machine.clock), warmup, runs,
        budget=1e9,
    )
    least = max(runs, 6)
    assert timing.interval.rounds == least, (
        f"rounds of a noiseless machine: {timing.interval.rounds}, expected max(runs, 6) = {least} "
        "(precise at once: every ratio is 3)"
    )
    timed = machine.log[2 * warmup + 2 :]  # after the warmup and one calibration call each
    firsts = [timed[i] for i in range(0, len(timed), 2)]
    expected = ["b", "c"] * (least // 2) + ["b"] * (least % 2)
    assert firsts == expected, f"first call of each round: {firsts}, expected alternating {expected}"
    assert (timing.interval.value, timing.interval.low, timing.interval.high) == (3.0, 3.0, 3.0), (
        f"interval of rounds that all give 3: {timing.interval}"
    )


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
    assert result.event == "MLP_SPRINT", f"result.event: {result.event!r}"
    samples = list(result.latency.samples)
    assert samples == [1.0] * QUICK_MLP.runs, f"latency samples: {samples}, expected runs = 3 ticks of 1 s"
    # One call classifies every image of the event: batch_size of them (throughput counts them).
    for event in EVENTS:
        inputs, labels = event.inputs(), event.labels()
        assert len(inputs) == len(labels) == event.batch_size, (
            f"{event.name}: {len(inputs)} inputs and {len(labels)} labels, expected batch_size = "
            f"{event.batch_size}"
        )
    images = len(MLP_SPRINT.inputs())
    assert result.throughput == pytest.approx(images / 1.0), (
        f"throughput: {result.throughput} images/s, expected {images} images / p50 of 1 s"
    )
    flops = FLOPCounter().count_ops(mlp, MLP_SPRINT.inputs()).total
    assert result.flops == flops, f"flops: {result.flops}, FLOPCounter counts {flops}"
    assert result.peak_memory_bytes > 0, "peak memory of one call: the logits alone are 359 x 10 float32"
    recorded = zoo.load_metrics()["models"]["mlp_digits"]["test_accuracy"]
    assert result.quality.passed and result.quality.value == pytest.approx(recorded, abs=0.5 / 359), (
        f"quality: {result.quality}, expected the zoo's recorded accuracy {recorded} (half an image)"
    )
    assert result.train_step is not None and result.train_step.runs == 3, (
        f"train_step: {result.train_step}, expected train_step_time's 3 runs (an extra, unscored)"
    )
    clock = Profiler().timer.clock
    assert clock is time.process_time, (
        f"the competition's default clock: {clock}, expected time.process_time (CPU time: a sample "
        "preempted by another process is not a slow one)"
    )


def test_training_step_times_a_whole_sgd_step(mlp, monkeypatch) -> None:
    # train_step_time (given) times zero_grad, forward, loss, backward and update on the event's
    # first 32 images, after one untimed warmup step. The log interleaves the clock's readings
    # with the parts of each step.
    import sys

    from tinytorch.optim import SGD

    measure = sys.modules[benchmark_model.__module__]
    log: list[str] = []
    rows: list[int] = []

    def logged(name, function):
        def wrapper(*args, **kwargs):
            log.append(name)
            return function(*args, **kwargs)

        return wrapper

    def loss(logits, labels):
        rows.append(len(labels))
        return real_loss(logits, labels)

    real_loss = measure.cross_entropy
    monkeypatch.setattr(measure, "cross_entropy", logged("loss", loss))
    monkeypatch.setattr(SGD, "zero_grad", logged("zero_grad", SGD.zero_grad))
    monkeypatch.setattr(SGD, "step", logged("step", SGD.step))
    monkeypatch.setattr(Tensor, "backward", logged("backward", Tensor.backward))
    ticks = itertools.count()

    def clock() -> int:
        log.append("clock")
        return next(ticks)

    result = benchmark_model(mlp, QUICK_MLP, Profiler(timer=Timer(clock=clock)))
    assert result.train_step is not None and result.train_step.runs == 3, (
        f"train_step: {result.train_step}, expected train_step_time's 3 runs (an extra, unscored)"
    )
    training = log[log.index("zero_grad") :] if "zero_grad" in log else []
    step = ["zero_grad", "loss", "backward", "step"]
    parts = [part for part in training if part != "clock"]
    assert parts == step * (len(parts) // 4) and len(parts) >= 4 * 4, (
        f"what the training steps called: {parts}, expected whole steps ({step}), a warmup and 3 timed"
    )
    warmup = training[: training.index("clock")] if "clock" in training else training
    assert warmup == step, f"calls before the first clock reading of the training step: {warmup}, one step"
    assert set(rows) == {32}, f"images per training step: {rows}, expected the event's first 32"


def test_benchmark_model_keeps_a_latency_measured_side_by_side(mlp) -> None:
    latency = summarize([0.25, 0.5, 2.0])  # median 0.5, mean 0.917: throughput is at the median
    result = benchmark_model(mlp, QUICK_MLP, ticking_profiler(), latency=latency)
    assert result.latency is latency, "benchmark_model replaced the latency it was given"
    assert result.throughput == pytest.approx(MLP_SPRINT.batch_size / 0.5), (
        f"throughput: {result.throughput}, expected 359 images / the median 0.5 s"
    )
    instant = summarize([0.0, 0.0, 0.0])  # a clock too coarse to see the call
    result = benchmark_model(mlp, QUICK_MLP, ticking_profiler(), latency=instant)
    assert result.throughput == math.inf, f"throughput at a p50 of 0 s: {result.throughput}, expected inf"


def test_benchmark_model_warms_up_before_timing(mlp_logits) -> None:
    # The first 2 calls of the model are cold (100x slower): the event's 2 warmup calls absorb
    # them, so every one of the 3 timed samples is the warm cost.
    machine = Machine(cold=2)
    model = FakeClassifier(machine, "model", 1.0, mlp_logits)
    event = dataclasses.replace(MLP_SPRINT, warmup=2, runs=3)
    result = benchmark_model(model, event, Profiler(timer=Timer(clock=machine.clock)))
    samples = list(result.latency.samples)
    assert samples == [1.0, 1.0, 1.0], f"latency samples: {samples}, expected 3 warm calls of 1 s"
    assert result.flops is None and result.train_step is None, (
        f"flops {result.flops}, train_step {result.train_step}: expected None for a model that is not "
        "a tinytorch network"
    )


def test_quality_gate_rejects_a_broken_model(mlp, mlp_logits) -> None:
    broken = zoo.load_model("mlp_digits")
    for p in broken.parameters():
        p.data[...] = np.random.default_rng(0).permutation(p.data.ravel()).reshape(p.data.shape)
    result = benchmark_model(broken, QUICK_MLP, ticking_profiler())
    assert not result.quality.passed, f"quality of an MLP with shuffled weights: {result.quality}, passed"
    card = score_events([EventScore("MLP_SPRINT", 5.0, result.quality)])
    assert card.score == 1.0 and "accuracy" in card.reasons["MLP_SPRINT"], (
        f"score {card.score} (expected 1: the gate failed), reasons {card.reasons}"
    )
    # Logits of the wrong shape score 0 (Event.check_quality), never an error or a lucky match:
    # one row short, or an extra axis.
    logits = mlp_logits
    for wrong in (logits[:-1], logits[:, :, None]):
        shaped = benchmark_model(lambda x, wrong=wrong: wrong, QUICK_MLP, ticking_profiler())
        assert shaped.quality.value == 0.0 and not shaped.quality.passed, (
            f"quality of logits of shape {wrong.shape} for {len(logits)} images: {shaped.quality}, expected 0"
        )


def test_generation_quality_is_identical_tokens_and_throughput_counts_tokens(monkeypatch, tmp_path) -> None:
    gpt = zoo.load_model(TRANSFORMER_DECATHLON.model)
    prompts: list[tuple[int, ...]] = []

    class Recording(FullRecomputeGenerator):
        def generate(self, tokens, max_new_tokens):
            prompts.append(tokens.shape)
            return super().generate(tokens, max_new_tokens)

    good = benchmark_model(Recording(gpt), QUICK_GEN, ticking_profiler())
    assert good.quality.passed and good.quality.value == 1.0, (
        f"quality of the baseline itself: {good.quality}"
    )
    width = QUICK_GEN.prompt_length or QUICK_GEN.inputs().shape[1]
    assert set(prompts) == {(QUICK_GEN.batch_size, width)}, (
        f"prompt shapes a call generated from: {set(prompts)}, expected batch_size x prompt_length"
    )
    hooked = [name for name, m in gpt.named_modules() if getattr(m, "_forward_hooks", None)]
    assert not hooked, f"forward hooks left on the model after counting its FLOPs: {hooked}"
    # throughput counts generated tokens (every sequence of the batch), not sequences: 1 s per call
    tokens = QUICK_GEN.batch_size * QUICK_GEN.max_new_tokens
    assert good.throughput == pytest.approx(tokens / 1.0), (
        f"throughput: {good.throughput}, expected {tokens} generated tokens / p50 of 1 s"
    )

    class OffByOne:
        model = gpt

        def generate(self, prompts, max_new_tokens):
            tokens = gpt.generate(prompts, max_new_tokens)
            tokens[0, -1] = (tokens[0, -1] + 1) % gpt.vocab_size
            return tokens

    bad = benchmark_model(OffByOne(), QUICK_GEN, ticking_profiler())
    assert not bad.quality.passed and bad.quality.value < 1.0, (
        f"quality with one token changed: {bad.quality}"
    )

    class OneSequenceShort:
        model = gpt

        def generate(self, prompts, max_new_tokens):
            return gpt.generate(prompts, max_new_tokens)[1:]

    short = benchmark_model(OneSequenceShort(), QUICK_GEN, ticking_profiler())
    assert short.quality.value == 0.0 and not short.quality.passed, (
        f"quality of one sequence fewer than the prompts: {short.quality}, expected 0 (wrong shape)"
    )
    # The decathlon's model: the long-context GPT when the zoo ships its weights, else the sorter.
    real = zoo.weights_path
    monkeypatch.setattr(
        zoo,
        "weights_path",
        lambda name: tmp_path / "absent.npz" if name == "transformer_pydoc" else real(name),
    )
    from tinytorch.perf.benchmarking import decathlon_model_name

    assert decathlon_model_name() == "transformer_sort", (
        f"decathlon model without transformer_pydoc's weights: {decathlon_model_name()!r}"
    )


class FakeClassifier:
    """Returns fixed logits and costs `cost` on the fake machine."""

    def __init__(self, machine: Machine, name: str, cost: float, logits: np.ndarray) -> None:
        self.machine, self.name, self.cost, self.logits = machine, name, cost, logits

    def __call__(self, x):
        self.machine.work(self.name, self.cost)
        return self.logits


def test_tinymlperf_times_baseline_and_candidate_in_the_same_run(mlp_logits) -> None:
    # run_event must interleave: the machine slows down half way through the timed calls (after
    # 2 warmup calls and 1 calibration call of each: a call of cost >= 1 s outlasts min_time).
    event = dataclasses.replace(MLP_SPRINT, warmup=2, runs=8)
    machine = Machine(slow_after=2 * 2 + 2 + 8)
    bench = TinyMLPerf(
        events=[event],
        profiler=Profiler(timer=Timer(clock=machine.clock)),
        baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", 3.0, mlp_logits)},
    )
    result = bench.run_event("MLP_SPRINT", FakeClassifier(machine, "candidate", 1.0, mlp_logits))
    assert result.speedup == pytest.approx(3.0, rel=RTOL), (
        f"speedup on a machine that slows down half way: {result.speedup}, expected 3 / 1"
    )
    # The latencies are those of the one interleaved run: half the samples on each side of the slowdown.
    baseline, candidate = sorted(result.baseline.latency.samples), sorted(result.candidate.latency.samples)
    assert baseline == [3.0] * 4 + [6.0] * 4, f"baseline samples: {baseline}, expected 4 before, 4 after"
    assert candidate == [1.0] * 4 + [2.0] * 4, f"candidate samples: {candidate}, expected 4 before, 4 after"
    assert result.candidate.quality.passed, f"candidate's quality: {result.candidate.quality}"
    score = bench.score({"MLP_SPRINT": result}).score
    assert score == pytest.approx(3.0, rel=RTOL), f"score of one event of speedup 3: {score}"


def test_tinymlperf_speedup_is_the_median_round_ratio(mlp_logits) -> None:
    # The machine turns 10x slower between the two halves of round 4 (after 2 calibration calls
    # and 7 timed ones: b c | c b | b c | c *b | b c | c b). Round 4 gives 30 / 1, every other
    # round 3: the median round ratio is 3. The ratio of the medians would say 16.5 / 1 and the
    # mean ratio 7.5. The interval is (3, 30): wider than 5 %, so rounds go on until the budget
    # (10 s of this clock) is spent, at the 6 rounds a 95 % interval needs.
    machine = Machine(slow_after=9, factor=10.0)
    bench = TinyMLPerf(
        events=[dataclasses.replace(MLP_SPRINT, warmup=0, runs=3)],
        profiler=Profiler(timer=Timer(clock=machine.clock)),
        baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", 3.0, mlp_logits)},
    )
    result = bench.run_event("MLP_SPRINT", FakeClassifier(machine, "candidate", 1.0, mlp_logits))
    baseline, candidate = list(result.baseline.latency.samples), list(result.candidate.latency.samples)
    assert (baseline, candidate) == ([3.0, 3.0, 3.0, 30.0, 30.0, 30.0], [1.0, 1.0, 1.0, 1.0, 10.0, 10.0]), (
        f"samples per round: baseline {baseline}, candidate {candidate}: expected 6 paired rounds, "
        "the slowdown inside round 4"
    )
    assert result.speedup == pytest.approx(3.0, rel=RTOL), (
        f"speedup: {result.speedup}, expected the median round ratio 3 (not the ratio of medians 16.5 "
        "or the mean ratio 7.5)"
    )
    interval = result.interval
    assert interval is not None and (interval.low, interval.high, interval.rounds) == (3.0, 30.0, 6), (
        f"the event's interval: {interval}, expected 3.00x (3.00-30.00) from 6 rounds"
    )
    record = result.record()
    assert (record.speedup_low, record.speedup_high) == (3.0, 30.0), (
        f"the leaderboard row's interval: ({record.speedup_low}, {record.speedup_high}), expected (3, 30)"
    )
    card = bench.score({"MLP_SPRINT": result})
    assert card.bounds == pytest.approx((3.0, 30.0), rel=RTOL), (
        f"score interval of one event: {card.bounds}, expected the event's (3, 30)"
    )


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
    speedup = results["MLP_SPRINT"].speedup
    assert speedup == pytest.approx(4.0), f"speedup of the broken candidate: {speedup}, expected 4 / 1"
    card = bench.score(results)
    assert card.score == 1.0 and "below the target" in card.reasons["MLP_SPRINT"], (
        f"score {card.score} (expected 1: the gate failed), reasons {card.reasons}"
    )
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
    problems = submission.validate(bench)
    assert problems == [], f"problems of a valid submission: {problems}"
    card = submission.compute_score(bench)
    assert card.score == pytest.approx(2.0, rel=RTOL), f"score: {card.score}, expected 2 / 1"
    results, calls = submission.results, machine.calls
    entry_id = submission.submit_to_leaderboard(board, bench)
    # Already scored: recorded with that score, not measured again (validate runs the model once).
    assert submission.results is results and machine.calls == calls + 1, (
        f"model calls while submitting a scored submission: {machine.calls - calls}, expected 1 "
        "(validate's run): it was measured again"
    )
    entries = board.entries()
    assert len(entries) == 1, f"entries on the leaderboard: {len(entries)}, expected 1"
    (entry,) = entries
    assert (entry.id, entry.name) == (entry_id, "fast"), (
        f"entry {entry.id} {entry.name!r}, expected {entry_id}"
    )
    assert entry.score == pytest.approx(2.0, rel=RTOL), f"recorded score: {entry.score}, expected 2"
    assert entry.events[0].speedup == pytest.approx(2.0) and entry.events[0].passed, (
        f"recorded event: {entry.events[0]}, expected speedup 2, passed"
    )
    assert "| fast | ada | 2.00\u00d7 (2.00\u20132.00) |" in board.to_markdown(), board.to_markdown()


def test_a_submission_records_its_score_interval(mlp_logits, board) -> None:
    # The machine slows 10x inside round 4 (see test_tinymlperf_speedup_is_the_median_round_ratio):
    # the event's interval is (3, 30), and the entry carries the score's interval, low and high.
    machine = Machine(slow_after=9, factor=10.0)
    bench = TinyMLPerf(
        events=[dataclasses.replace(MLP_SPRINT, warmup=0, runs=3)],
        profiler=Profiler(timer=Timer(clock=machine.clock)),
        baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", 3.0, mlp_logits)},
    )
    submission = a_submission(mlp_logits, machine)
    card = submission.compute_score(bench)
    entry = submission.to_entry()
    assert card.bounds == pytest.approx((3.0, 30.0), rel=RTOL), (
        f"score interval: {card.bounds}, expected (3, 30)"
    )
    assert entry.bounds == card.bounds, f"the entry's score interval {entry.bounds}, the card's {card.bounds}"
    board.add(entry)
    (recorded,) = board.entries()
    assert recorded.bounds == card.bounds, (
        f"score interval on the board: {recorded.bounds}, expected {card.bounds}"
    )


@pytest.mark.parametrize("dropped", ["results", "scorecard"])
def test_a_half_scored_submission_is_scored_before_it_lands(dropped, mlp_logits, board) -> None:
    # "Already scored" means results and scorecard both set: with either one missing, submitting
    # scores the submission again instead of recording half a result.
    bench, machine = quick_bench(mlp_logits, cost=2.0)
    submission = a_submission(mlp_logits, machine)
    submission.compute_score(bench)
    setattr(submission, dropped, None)
    submission.submit_to_leaderboard(board, bench)
    assert submission.results is not None and submission.scorecard is not None, (
        f"results {submission.results}, scorecard {submission.scorecard}: not scored again"
    )
    scores = [e.score for e in board.entries()]
    assert scores == [pytest.approx(2.0, rel=RTOL)], f"recorded scores: {scores}, expected [2.0]"


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
    mixed = tmp_path / "mixed.npz"
    np.savez(mixed, w=np.ones(2, np.float32), code=np.array([{"run": "code"}], dtype=object))
    truncated = write_bytes(tmp_path / "truncated.npz", good.read_bytes()[:40])
    pickled = write_bytes(tmp_path / "pickled.npz", pickle.dumps({"w": [1.0]}))
    not_zip = write_bytes(tmp_path / "random.npz", b"\x00\x01 definitely not a zip archive")
    return {
        "pickled objects": objects,
        "pickled objects beside numbers": mixed,
        "single .npy": npy,
        "no arrays": empty,
        "NaN": nan,
        "non-numeric": text,
        "complex": complex_,
        "truncated": truncated,
        "pickle": pickled,
        "not a zip": not_zip,
        "missing": tmp_path / "missing.npz",
        "a folder": tmp_path,
    }


def test_check_weights_file_accepts_npz_and_refuses_everything_else(tmp_path: Path) -> None:
    good = tmp_path / "w.npz"
    np.savez(good, weight=np.arange(6, dtype=np.float32).reshape(2, 3), steps=np.array([3], np.int64))
    arrays = check_weights_file(good)
    shapes = {name: array.shape for name, array in arrays.items()}
    assert shapes == {"weight": (2, 3), "steps": (1,)}, f"arrays read from a good file: {shapes}"
    for what, path in bad_weights(tmp_path).items():
        try:
            check_weights_file(path)
        except ValueError as error:
            assert path.name in str(error), f"{what}: the error {str(error)!r} does not name the file"
        else:
            pytest.fail(f"check_weights_file accepted a weights file with a problem: {what}")


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
    problems = submission.validate(bench)
    assert any(reason in problem for problem in problems), (
        f"{case}: validate's problems {problems} do not say {reason!r}"
    )
    with pytest.raises(InvalidSubmission) as error:
        submission.submit_to_leaderboard(board, bench)
    assert any(reason in r for r in error.value.reasons), (
        f"{case}: the refusal's reasons {error.value.reasons} do not say {reason!r}"
    )
    assert snapshot(board) == before, f"{case}: the leaderboard changed: {snapshot(board)}"


@pytest.mark.parametrize("which", ["pickled objects", "not a zip", "truncated", "missing"])
def test_submission_with_bad_weights_is_rejected(which, mlp_logits, board, tmp_path) -> None:
    bench, machine = quick_bench(mlp_logits)
    path = bad_weights(tmp_path)[which]
    submission = a_submission(mlp_logits, machine, weights={"MLP_SPRINT": path})
    with pytest.raises(InvalidSubmission, match=path.name):
        submission.submit_to_leaderboard(board, bench)
    assert len(board) == 0, f"entries after refusing weights with a problem ({which}): {len(board)}"


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
    assert len(board) == 0, f"entries after refusing a candidate time of {time}: {len(board)}"


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
    assert snapshot(board) == before, f"the leaderboard after a crash mid-submission: {snapshot(board)}"
    assert board.integrity_problems() == [], f"integrity problems: {board.integrity_problems()}"
    a_submission(mlp_logits, machine, name="third").submit_to_leaderboard(board, bench)
    names = sorted(e.name for e in board.entries())
    assert names == ["first", "third"], f"entries: {names}, expected first and third"


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
    codes = [child.exitcode for child in children]
    assert codes == [0, 0], f"exit codes of the two submitting processes: {codes}"
    names = sorted(e.name for e in board.entries())
    assert names == ["proc0", "proc1"], f"entries: {names}, expected both processes' submissions"
    assert board.integrity_problems() == [], f"integrity problems: {board.integrity_problems()}"


# --------------------------------------------------------------------------------------------
# The reference submission (modules 16-19 applied to the zoo)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> CompetitionSubmission:
    return build_submission()


def test_reference_submission_validates(reference) -> None:
    problems = reference.validate(TinyMLPerf())
    assert problems == [], f"problems of the reference submission: {problems}"
    events = set(reference.models)
    assert events == {e.name for e in EVENTS}, f"events with a model: {events}, expected every event"
    unknown = [opt for opt in reference.optimizations if opt not in OPTIMIZATIONS]
    assert not unknown, f"optimizations not in OPTIMIZATIONS: {unknown}"


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.name)
def test_reference_submission_does_less_work_on_every_event(reference, event) -> None:
    # Hardware independent: FLOPs of one event call by module 15's rules (time is the benchmark's).
    if event.task == "generate":
        event = QUICK_GEN  # the same model and prompts, fewer tokens: the baseline is slow
    candidate = workload_flops(reference.models[event.name], event)
    baseline_model = event.baseline_model()
    baseline = workload_flops(baseline_model, event)
    assert candidate is not None and baseline is not None, (
        f"{event.name}: FLOPs of the candidate {candidate}, of the baseline {baseline}: not counted"
    )
    assert candidate < baseline, f"{event.name}: {candidate} FLOPs, baseline {baseline}"
    if event.task == "generate":
        # The baseline recomputes the whole prefix at every step: one full forward per new token,
        # over the prompt and every token generated so far (module 15's count of each).
        prompt = event.inputs()
        tokens = baseline_model.generate(prompt, event.max_new_tokens)
        full = sum(
            FLOPCounter().count_ops(baseline_model.model, tokens[:, : prompt.shape[1] + i]).total
            for i in range(event.max_new_tokens)
        )
        assert baseline == full, (
            f"{event.name}: baseline FLOPs {baseline}, expected {full} (a full forward per new token)"
        )


def test_reference_weights_files_are_well_formed(reference, tmp_path) -> None:
    from tinytorch.perf.benchmarking import save_weights_files

    folder = tmp_path / "weights" / "reference"  # created, parents included
    paths = save_weights_files({**reference.models, "NO_NETWORK": object()}, folder)  # skipped
    assert set(paths) == {e.name for e in EVENTS}, (
        f"weights files written: {set(paths)}, expected one per event"
    )
    for path in paths.values():
        assert path.parent == folder, f"{path}: not in {folder}"
        assert zipfile.is_zipfile(path) and check_weights_file(path), f"{path}: not an .npz archive of arrays"
    again = save_weights_files(reference.models, folder)  # into the folder that now exists
    assert again == paths, f"weights files written a second time: {again}, expected the same {paths}"


def test_reference_runs_in_the_competition_against_the_zoo_baseline(reference) -> None:
    # The baseline comes from the zoo; a fake clock, so the speedup is 1 and only the rest is checked.
    bench = TinyMLPerf(events=[QUICK_MLP], profiler=ticking_profiler())
    result = bench.run_event("MLP_SPRINT", reference.models["MLP_SPRINT"])
    assert result.baseline.quality.passed and result.candidate.quality.passed, (
        f"quality of the baseline {result.baseline.quality}, of the candidate {result.candidate.quality}"
    )
    assert result.candidate.flops < result.baseline.flops, (
        f"FLOPs of the candidate {result.candidate.flops}, of the baseline {result.baseline.flops}"
    )
    text = f"{result.candidate} / {result.baseline}"
    assert "MLP_SPRINT" in text and "MFLOP" in text, f"a BenchmarkResult as text: {text!r}"
    with pytest.raises(KeyError, match="unknown event 'BOBSLEIGH'"):
        bench.run_event("BOBSLEIGH", reference.models["MLP_SPRINT"])
    with pytest.raises(TypeError, match="events"):
        TinyMLPerf(events=[])
    with pytest.raises(ValueError, match="runs"):
        TinyMLPerf(runs=0)
    with pytest.raises(TypeError, match="warmup"):
        TinyMLPerf(warmup=1.5)
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
    np.testing.assert_allclose(fused(x), expected, rtol=1e-4, atol=1e-4, err_msg="fused CNN logits")
    no_bias = Sequential(Linear(4, 3, bias=False), ReLU())
    v = np.arange(8, dtype=np.float32).reshape(2, 4)
    with no_grad():
        np.testing.assert_allclose(
            FusedInference(no_bias)(v), no_bias(Tensor(v)).data, rtol=1e-6, err_msg="Linear without bias"
        )
    # The event's inputs are cached and shared by every call: fused inference must never write
    # into its input (a ReLU done in place on it, or on a Flatten view of it, would).
    first_relu = Sequential(ReLU(), Linear(4, 3))
    signed = v - 3.5
    before = signed.copy()
    with no_grad():
        expected = first_relu(Tensor(signed)).data
    np.testing.assert_allclose(
        FusedInference(first_relu)(signed), expected, rtol=1e-6, atol=1e-6, err_msg="ReLU first"
    )
    np.testing.assert_array_equal(signed, before, err_msg="the caller's input after fused inference")
    # Max pooling keeps the whole windows, as MaxPool2d does: 7 x 9 pooled by 2 is 3 x 4.
    from tinytorch.conv import MaxPool2d

    pool = Sequential(MaxPool2d(2))
    odd = np.random.default_rng(0).standard_normal((2, 3, 7, 9)).astype(np.float32)
    with no_grad():
        np.testing.assert_array_equal(
            FusedInference(pool)(odd), pool(Tensor(odd)).data, err_msg="max pooling of 7 x 9 by 2"
        )
    with pytest.raises(TypeError, match="Sequential"):
        FusedInference(Linear(2, 2))
    from tinytorch.layers import GELU

    with pytest.raises(TypeError, match="GELU"):
        FusedInference(Sequential(Linear(2, 2), GELU()))
    for kernel, stride in ((3, 1), ((2, 3), 2), ((3, 2), 2)):  # windows that overlap one way or both
        with pytest.raises(ValueError, match="non-overlapping"):
            FusedInference(Sequential(MaxPool2d(kernel, stride=stride)))


def test_fused_inference_relus_in_place(reference) -> None:
    # The point of fused inference is no extra work: Linear, Conv2d and pooling make one new
    # array each, a ReLU or a Flatten none once the array is fused inference's own (the first
    # ReLU on the caller's input must copy). tracemalloc sees numpy's buffers.
    import tracemalloc

    from tinytorch.perf.benchmarking import FusedInference

    from tinytorch.layers import Flatten, Linear, ReLU, Sequential

    assert isinstance(reference.models["MLP_SPRINT"], FusedInference), (
        f"the reference's MLP_SPRINT model: {type(reference.models['MLP_SPRINT']).__name__}"
    )
    x = np.random.default_rng(0).standard_normal((512, 64)).astype(np.float32)
    one = 512 * 1024 * 4  # bytes of one (512, 1024) float32 activation
    for layers in ((Linear(64, 1024), ReLU(), ReLU(), Flatten(), ReLU()), (ReLU(), ReLU(), Linear(64, 1024))):
        fused = FusedInference(Sequential(*layers))
        fused(x)  # a first call, so that no lazy import or cache is counted
        tracemalloc.start()
        try:
            fused(x)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        names = [type(layer).__name__ for layer in layers]
        assert peak < 1.5 * one, (
            f"peak memory of fused {names}: {peak} bytes, expected one (512, 1024) activation "
            f"({one} bytes): a ReLU after the first copied its array"
        )


def test_validate_reports_containers_of_the_wrong_type(mlp_logits) -> None:
    bench, machine = quick_bench(mlp_logits)
    submission = a_submission(mlp_logits, machine, models=["a model"], weights="w.npz")
    problems = submission.validate(bench)
    assert any("models must map" in p for p in problems), (
        f"validate's problems {problems}: none says 'models must map ...' for models given as a list"
    )
    assert any("weights must map" in p for p in problems), (
        f"validate's problems {problems}: none says 'weights must map ...' for weights given as a string"
    )
    with pytest.raises(ValueError, match="compute_score"):
        a_submission(mlp_logits, machine).to_entry()
    half = a_submission(mlp_logits, machine)
    half.compute_score(bench)
    half.scorecard = None  # results without their score card: nothing to record yet
    with pytest.raises(ValueError, match="compute_score"):
        half.to_entry()


def test_benchmark_model_and_events_check_their_arguments(mlp) -> None:
    runs = benchmark_model(mlp, QUICK_MLP, ticking_profiler()).latency.runs
    assert runs == QUICK_MLP.runs, f"latency samples: {runs}, expected the event's runs {QUICK_MLP.runs}"
    one = dataclasses.replace(MLP_SPRINT, batch_size=1, warmup=0)  # the smallest valid event
    assert (one.batch_size, one.warmup) == (1, 0), f"batch_size and warmup of the smallest event: {one}"
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
    for name in ("max_new_tokens", "prompt_length"):  # generation only: a classify event has 0
        with pytest.raises(ValueError, match=name):
            dataclasses.replace(MLP_SPRINT, **{name: 2})


def test_score_card_reads_as_text() -> None:
    card = score_events(scores([4.0, 9.0], [True, False]))
    text = str(card)
    assert "score 2.00\u00d7 (2.00\u20132.00)" in text and "E1: 1.00\u00d7 (1.00\u20131.00)" in text, (
        f"a ScoreCard as text, every figure with its interval: {text!r}"
    )
    assert "not counted" in text, f"a ScoreCard as text says why an event did not count: {text!r}"


def test_corrupt_array_inside_a_valid_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corrupt_member.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", b"\x93NUMPY garbage that is not an array header")
    with pytest.raises(ValueError, match="corrupt_member.npz"):
        check_weights_file(path)


def test_tinytorch_submit_runs_validates_and_records(mlp_logits, board, monkeypatch) -> None:
    import io
    from argparse import Namespace

    from tinytorch.course import leaderboard

    bench, machine = quick_bench(mlp_logits, cost=3.0)
    args = Namespace(json=None, name="cli", author=None, save_json=None, db=str(board.path), quick=True)
    out = io.StringIO()
    entry = leaderboard._run_submission(
        args, out, submission=a_submission(mlp_logits, machine), benchmark=bench
    )
    assert entry.name == "cli" and entry.score == pytest.approx(3.0, rel=RTOL), (
        f"entry recorded by tinytorch submit: {entry.name!r}, score {entry.score}, expected 'cli', 3"
    )
    said = out.getvalue()
    assert "score 3.00\u00d7 (3.00\u20133.00)" in said, f"tinytorch submit's output, interval too: {said!r}"
    broken = a_submission(mlp_logits, machine, optimizations=["teleport"])
    with pytest.raises(InvalidSubmission, match="teleport"):
        leaderboard._run_submission(args, out, submission=broken, benchmark=bench)
    monkeypatch.setenv("TINYTORCH_IMPL", "solutions")  # restored after the test
    monkeypatch.setattr(leaderboard.commands, "_run_submission", lambda a, o: entry)
    status = leaderboard.cli_submit(args, out, impl="solutions")
    assert status == 0, f"exit status of tinytorch submit: {status}"
    names = [e.name for e in board.entries()]
    assert names == ["cli"], f"entries: {names}, expected the one submission"
