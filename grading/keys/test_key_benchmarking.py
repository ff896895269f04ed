"""Answer key of module 20 (benchmarking): held-out checks on inputs drawn from the grading seed.

Nothing is timed: every clock is fake (a machine whose time moves only when a fake workload runs,
by a drawn cost times a load that can jump mid-run, or a clock that ticks by one at every
reading), so every figure recorded is deterministic. What it covers (each check records values;
the grader compares them with the reference's):

* the scoring maths on drawn numbers: ``compute_speedup`` (seconds, medians of timings with an
  outlier, a ``BenchmarkResult``), ``geometric_mean`` (no overflow), ``score_events`` (all k gives
  k, reciprocal speedups give the reciprocal score, monotone), and a score unchanged when every
  time is scaled by a drawn factor;
* the quality gate: failed events (a NaN quality included) count 1 and say why; bad speedups,
  times and empty lists refused;
* ``measure_interleaved`` on a fake machine: warmup calls first and never sampled, every round
  times every function once and the order alternates, a slowdown half way does not change the
  speedup; its argument checks;
* ``benchmark_model``'s deterministic parts with a ticking clock: samples, throughput (items /
  p50, tokens for generation), FLOPs equal module 15's count, quality equal to the model's
  accuracy, warmup absorbed, a given latency kept; the gate on a model with shuffled weights and
  on a generator that changes one token;
* ``TinyMLPerf.run_event`` on a fake machine: interleaved, ratio of medians, the gate on a fast
  broken candidate, its argument checks;
* submissions: ``validate`` on every kind of broken submission (what its problems mention),
  ``compute_score``, ``submit_to_leaderboard`` (what lands, and a refused or crashed submission
  that changes nothing), ``check_weights_file`` on good and bad files (never unpickling);
* the optimized submission's parts (``optimize_mlp``, ``CachedGenerator``): the gate, less work
  than the baseline by module 15's FLOPs, greedy tokens, ``validate`` of a submission built from
  them (not ``optimize_cnn``: its fine-tune alone takes longer than the whole key should).
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import pickle
import zipfile
from argparse import Namespace

import numpy as np
import pytest

from tinytorch import zoo
from tinytorch.tensor import Tensor, no_grad

# The suite's tolerance for the scoring laws (tests/test_benchmarking.py): a score is
# exp(fsum(log s_i) / n), a few float64 roundings of numbers <= ~1e3; 1e-12 leaves a 100x margin.
LAWS = pytest.mark.tolerance(
    rtol=1e-12,
    atol=0.0,
    why="float64 logs, a fsum and an exp (or medians and ratios of fake-clock times): a few ulps, "
    "the suite's own 1e-12 for the scoring laws",
)


class Machine:
    """A fake machine. Its clock moves only when a workload runs: by ``cost`` times the load.

    The load is 1 for the first ``slow_after`` workload calls and ``factor`` afterwards; the first
    ``cold`` calls of each workload cost 100x more. ``log`` records which workload ran, in order.
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
        self.now += cost * load * (100.0 if self.seen[name] <= self.cold else 1.0)
        self.log.append(name)

    def workload(self, name: str, cost: float):
        return lambda: self.work(name, cost)


class FakeClassifier:
    """Returns fixed logits and costs ``cost`` on the fake machine."""

    def __init__(self, machine: Machine, name: str, cost: float, logits: np.ndarray) -> None:
        self.machine, self.name, self.cost, self.logits = machine, name, cost, logits

    def __call__(self, x):
        self.machine.work(self.name, self.cost)
        return self.logits


def ticking_profiler():
    """A profiler whose clock moves by exactly 1 at every reading: every sample is 1 s."""
    from tinytorch.perf.benchmarking import Profiler
    from tinytorch.perf.profiling import Timer

    return Profiler(timer=Timer(clock=itertools.count().__next__))


def machine_profiler(machine: Machine):
    from tinytorch.perf.benchmarking import Profiler
    from tinytorch.perf.profiling import Timer

    return Profiler(timer=Timer(clock=machine.clock))


def log_uniform(rng: np.random.Generator, low: float, high: float, size=None) -> np.ndarray:
    return 10.0 ** rng.uniform(math.log10(low), math.log10(high), size)


def mlp_logits() -> np.ndarray:
    from tinytorch.perf.benchmarking import MLP_SPRINT

    with no_grad():
        return zoo.load_model("mlp_digits")(Tensor(MLP_SPRINT.inputs())).data


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(logits).argmax(axis=1) == labels))


def greedy_up_to_rounding(model, out: np.ndarray, prompt_len: int) -> bool:
    """Every generated token of ``out`` (B, T + n) is the argmax of the foundation's logits at its
    own prefix, or within module 19's rounding bound of it (a near-tie may go either way)."""
    eps = float(np.finfo(np.float32).eps)
    with no_grad():
        logits = model(out[:, :-1])[0].data[:, prompt_len - 1 :]
    chosen = np.take_along_axis(logits, out[:, prompt_len:, None], axis=-1)[..., 0]
    bound = 1024 * eps * model.n_layers * (1.0 + np.abs(logits).max(axis=-1))
    return bool(np.all(logits.max(axis=-1) - chosen <= bound))


# --------------------------------------------------------------------------------------------
# Scoring maths
# --------------------------------------------------------------------------------------------


@LAWS
@pytest.mark.covers(
    "test_speedup_is_baseline_time_over_candidate_time",
    "test_speedup_compares_medians_of_timings",
    "test_every_speedup_k_gives_score_k",
    "test_reciprocal_speedups_give_reciprocal_score",
    "test_score_is_the_geometric_mean",
    "test_score_is_monotone_in_each_speedup",
)
def test_speedups_and_their_geometric_mean(answer):
    from tinytorch.perf.benchmarking import (
        BenchmarkResult,
        EventScore,
        QualityCheck,
        compute_speedup,
        geometric_mean,
        score_events,
    )
    from tinytorch.perf.profiling import summarize

    rng = answer.rng
    passed = QualityCheck(metric="accuracy", value=0.97, target=0.95)

    def score(speedups) -> float:
        return score_events([EventScore(f"E{i}", float(s), passed) for i, s in enumerate(speedups)]).score

    baselines, candidates = log_uniform(rng, 1e-6, 1e2, 8), log_uniform(rng, 1e-6, 1e2, 8)
    n = 2 * int(rng.integers(1, 4)) + 1
    slow = log_uniform(rng, 1e-4, 1.0, n)
    slow[int(rng.integers(n))] *= 100.0  # one outlier: moves the mean, not the median
    fast = log_uniform(rng, 1e-4, 1.0, n)
    latency = summarize(slow)
    result = BenchmarkResult("E", latency, 1.0, 0, None, passed)
    lists = [log_uniform(rng, 1e-3, 1e3, int(rng.integers(1, 9))) for _ in range(4)]
    k, count = float(log_uniform(rng, 1e-3, 1e3)), int(rng.integers(1, 7))
    faster = [list(s) for s in lists]
    for s in faster:
        s[int(rng.integers(len(s)))] *= float(rng.uniform(1.01, 100.0))
    answer.record(
        speedups=np.array(
            [compute_speedup(float(b), float(c)) for b, c in zip(baselines, candidates, strict=True)]
        ),
        speedup_of_integers=np.float64(compute_speedup(int(rng.integers(2, 50)), int(rng.integers(1, 50)))),
        speedup_of_timings=np.float64(compute_speedup(latency, summarize(fast))),
        speedup_of_a_result=np.float64(compute_speedup(result, summarize(fast))),
        geometric_means=np.array([geometric_mean(list(s)) for s in lists]),
        geometric_mean_huge=np.float64(geometric_mean([1e300] * int(rng.integers(2, 5)))),
        geometric_mean_tiny=np.float64(geometric_mean([1e-300] * int(rng.integers(2, 5)))),
        scores=np.array([score(s) for s in lists]),
        reciprocal_scores=np.array([score(1 / s) for s in lists]),
        all_k=np.float64(score([k] * count)),
        faster_scores=np.array([score(s) for s in faster]),
        gain_and_loss=np.float64(score([k, 1 / k])),
    )


@LAWS
@pytest.mark.covers("test_score_unchanged_when_every_time_is_scaled")
def test_score_unchanged_when_every_time_is_scaled(answer):
    from tinytorch.perf.benchmarking import EventScore, QualityCheck, compute_speedup, score_events
    from tinytorch.perf.profiling import summarize

    rng = answer.rng
    passed = QualityCheck(metric="accuracy", value=0.97, target=0.95)
    timings = [
        (
            log_uniform(rng, 1e-4, 10.0, int(rng.integers(1, 6))),
            log_uniform(rng, 1e-4, 10.0, int(rng.integers(1, 6))),
        )
        for _ in range(int(rng.integers(1, 5)))
    ]

    def score(scale: float) -> float:
        events = [
            EventScore(f"E{i}", compute_speedup(summarize(b * scale), summarize(c * scale)), passed)
            for i, (b, c) in enumerate(timings)
        ]
        return score_events(events).score

    factors = [float(log_uniform(rng, 1e-3, 1e3)) for _ in range(3)]
    base = score(1.0)
    answer.record(
        score=np.float64(base),
        scaled_scores=np.array([score(f) for f in factors]),
        scaled_over_unscaled=np.array([score(f) / base for f in factors]),
    )


@LAWS
@pytest.mark.covers(
    "test_event_below_its_target_scores_nothing_and_says_why",
    "test_score_counts_a_nan_gate_value_as_failed",
    "test_score_rejects_nothing_to_score",
    "test_speedup_rejects_times_that_are_not_durations",
    "test_score_card_reads_as_text",
)
def test_failed_quality_gates_count_one_and_say_why(answer):
    from tinytorch.perf.benchmarking import (
        EventScore,
        QualityCheck,
        compute_speedup,
        geometric_mean,
        score_events,
    )

    rng = answer.rng
    for case in range(3):
        n = int(rng.integers(2, 6))
        speedups = log_uniform(rng, 0.1, 10.0, n)
        failed = rng.random(n) < 0.4
        failed[int(rng.integers(n))] = True
        if case == 2:
            failed[:] = False
        events, targets = [], []
        for i in range(n):
            target = round(float(rng.uniform(0.9, 0.99)), 2)
            value = float(rng.uniform(0.5, target - 0.01)) if failed[i] else float(rng.uniform(target, 1.0))
            if case == 1 and failed[i]:
                value = math.nan  # a NaN quality never passes
            events.append(EventScore(f"E{i}", float(speedups[i]), QualityCheck("accuracy", value, target)))
            targets.append(target)
        card = score_events(events)
        text = str(card)
        reasons = {name: card.reasons[name] for name in sorted(card.reasons)}
        answer.record(
            **{
                f"c{case}_score": np.float64(card.score),
                f"c{case}_counted": np.array([card.counted[f"E{i}"] for i in range(n)]),
                f"c{case}_reason_events": np.array(list(reasons), dtype=str),
                f"c{case}_reasons_name_metric_and_target": np.array(
                    [
                        "accuracy" in reasons.get(f"E{i}", "")
                        and f"{targets[i]:.2f}" in reasons.get(f"E{i}", "")
                        for i in range(n)
                    ]
                ),
                f"c{case}_text_has_score": f"score {card.score:.3f}x" in text,
                f"c{case}_text_says_not_counted": ("not counted" in text) == bool(failed.any()),
            }
        )
    good = float(log_uniform(rng, 1e-3, 1.0))
    bad_times = {"zero": 0.0, "negative": -good, "nan": math.nan, "inf": math.inf}
    for label, bad in bad_times.items():
        answer.record(
            **{
                f"baseline_{label}": answer.raises(compute_speedup, bad, good),
                f"optimized_{label}": answer.raises(compute_speedup, good, bad),
            }
        )
    one = EventScore("E0", 2.0, QualityCheck("accuracy", 0.97, 0.95))
    answer.record(
        baseline_text=answer.raises(compute_speedup, "1 s", good),
        baseline_bool=answer.raises(compute_speedup, True, good),
        score_nothing=answer.raises(score_events, []),
        geometric_mean_nothing=answer.raises(geometric_mean, []),
        geometric_mean_negative=answer.raises(geometric_mean, [1.0, -float(log_uniform(rng, 0.1, 10.0))]),
        geometric_mean_zero=answer.raises(geometric_mean, [0.0, 2.0]),
        geometric_mean_nan=answer.raises(geometric_mean, [math.nan]),
        geometric_mean_inf=answer.raises(geometric_mean, [math.inf, 1.0]),
        events_twice=answer.raises(score_events, [one, one]),
    )


# --------------------------------------------------------------------------------------------
# Fair measurement
# --------------------------------------------------------------------------------------------


@LAWS
@pytest.mark.covers(
    "test_interleaved_speedup_survives_a_machine_that_slows_down",
    "test_interleaved_calls_alternate_and_warm_up_first",
    "test_warmup_calls_never_enter_the_samples",
    "test_measure_interleaved_checks_its_arguments",
)
def test_interleaved_measurement_on_a_fake_machine(answer):
    from tinytorch.perf.benchmarking import compute_speedup, measure_interleaved
    from tinytorch.perf.profiling import Timer

    rng = answer.rng
    # a machine that slows down exactly half way through the timed calls
    warmup, rounds = int(rng.integers(0, 4)), int(rng.integers(1, 5))
    runs = 2 * rounds
    costs = [int(c) for c in rng.integers(1, 9, 2)]
    machine = Machine(slow_after=2 * warmup + runs, factor=float(rng.integers(2, 5)))
    timings = measure_interleaved(
        {"b": machine.workload("b", costs[0]), "c": machine.workload("c", costs[1])},
        warmup=warmup,
        runs=runs,
        timer=Timer(clock=machine.clock),
    )
    timed = machine.log[2 * warmup :]
    round_pairs = [sorted(timed[i : i + 2]) for i in range(0, len(timed), 2)]
    answer.record(
        slowdown_speedup=np.float64(compute_speedup(timings["b"], timings["c"])),
        slowdown_runs=np.array([timings["b"].runs, timings["c"].runs], np.int64),
        slowdown_samples=np.array([sorted(timings["b"].samples), sorted(timings["c"].samples)]),
        warmup_calls=np.array(sorted(machine.log[: 2 * warmup]), dtype=str),
        rounds=np.array(round_pairs, dtype=str),
        distinct_firsts=np.int64(
            len({pair[0] for pair in (timed[i : i + 2] for i in range(0, len(timed), 2))})
        ),
        calls=np.int64(machine.calls),
    )
    # the first `warmup` calls of each of three functions are cold (100x): none is a sample
    warmup, runs = int(rng.integers(0, 5)), int(rng.integers(1, 8))
    costs = [int(c) for c in rng.integers(1, 6, 3)]
    machine = Machine(cold=warmup)
    timings = measure_interleaved(
        {name: machine.workload(name, cost) for name, cost in zip("xyz", costs, strict=True)},
        warmup=warmup,
        runs=runs,
        timer=Timer(clock=machine.clock),
    )
    answer.record(
        cold_names=np.array(sorted(timings), dtype=str),
        cold_runs=np.array([timings[n].runs for n in "xyz"], np.int64),
        cold_samples=np.array([np.sort(timings[n].samples) for n in "xyz"]),
        cold_medians=np.array([timings[n].p50 for n in "xyz"]),
        cold_calls=np.int64(machine.calls),
    )
    timer = Timer(clock=itertools.count().__next__)
    answer.record(
        no_funcs=answer.raises(measure_interleaved, {}, 1, 1, timer),
        not_callable=answer.raises(measure_interleaved, {"a": 3}, 1, 1, timer),
        zero_runs=answer.raises(measure_interleaved, {"a": lambda: None}, 1, 0, timer),
        float_warmup=answer.raises(measure_interleaved, {"a": lambda: None}, 1.5, 1, timer),
        negative_warmup=answer.raises(measure_interleaved, {"a": lambda: None}, -1, 1, timer),
    )


@LAWS
@pytest.mark.covers(
    "test_benchmark_model_measures_with_module_15",
    "test_benchmark_model_keeps_a_latency_measured_side_by_side",
    "test_benchmark_model_warms_up_before_timing",
    "test_benchmark_model_and_events_check_their_arguments",
    "test_generation_quality_is_identical_tokens_and_throughput_counts_tokens",
)
def test_benchmark_model_with_fake_clocks(answer):
    from tinytorch.perf.benchmarking import (
        MLP_SPRINT,
        TRANSFORMER_DECATHLON,
        FullRecomputeGenerator,
        benchmark_model,
    )
    from tinytorch.perf.profiling import FLOPCounter, Timer, summarize

    rng = answer.rng
    mlp = zoo.load_model("mlp_digits")
    event = dataclasses.replace(MLP_SPRINT, warmup=int(rng.integers(0, 3)), runs=int(rng.integers(1, 6)))
    result = benchmark_model(mlp, event, ticking_profiler())
    with no_grad():
        logits = mlp(Tensor(event.inputs())).data
    recorded = zoo.load_metrics()["models"]["mlp_digits"]["test_accuracy"]
    answer.record(
        event_name=str(result.event),
        samples=np.asarray(result.latency.samples, np.float64),
        throughput=np.float64(result.throughput),
        flops=np.int64(result.flops),
        flops_are_module_15s=result.flops == FLOPCounter().count_ops(mlp, event.inputs()).total,
        peak_memory_positive=result.peak_memory_bytes > 0,
        quality_is_the_accuracy=result.quality.value == accuracy(logits, event.labels()),
        quality_near_the_zoo=abs(result.quality.value - recorded) <= 0.5 / 359,
        quality_passed=bool(result.quality.passed),
        train_step_measured=result.train_step is not None and result.train_step.runs >= 1,
    )
    samples = log_uniform(rng, 1e-4, 1.0, 2 * int(rng.integers(1, 4)) + 1)
    samples[int(rng.integers(samples.size))] *= 10.0  # an outlier: the mean moves, the median hardly
    latency = summarize(samples)
    given = benchmark_model(mlp, event, ticking_profiler(), latency=latency)
    answer.record(given_latency_kept=given.latency is latency, given_throughput=np.float64(given.throughput))

    cold = int(rng.integers(1, 4))  # cold calls for the warmup to absorb
    cost = float(rng.integers(1, 6))
    machine = Machine(cold=cold)
    fake = FakeClassifier(machine, "model", cost, logits)
    cold_event = dataclasses.replace(MLP_SPRINT, warmup=cold, runs=int(rng.integers(1, 5)))
    warmed = benchmark_model(fake, cold_event, machine_profiler(machine))
    answer.record(
        warm_samples=np.asarray(warmed.latency.samples, np.float64),
        fake_flops_none=warmed.flops is None,
        fake_train_step_none=warmed.train_step is None,
    )

    gen_event = dataclasses.replace(
        TRANSFORMER_DECATHLON,
        warmup=0,
        runs=1,
        batch_size=int(rng.integers(1, 3)),
        max_new_tokens=int(rng.integers(2, 5)),
        prompt_length=int(rng.integers(4, 13)),
    )
    gpt = zoo.load_model(gen_event.model)
    good = benchmark_model(FullRecomputeGenerator(gpt), gen_event, ticking_profiler())
    row, col = int(rng.integers(gen_event.batch_size)), -int(rng.integers(1, gen_event.max_new_tokens + 1))

    class OffByOne:
        model = gpt

        def generate(self, prompts, max_new_tokens):
            tokens = gpt.generate(prompts, max_new_tokens)
            tokens[row, col] = (tokens[row, col] + 1) % gpt.vocab_size
            return tokens

    bad = benchmark_model(OffByOne(), gen_event, ticking_profiler())
    answer.record(
        gen_quality=np.float64(good.quality.value),
        gen_passed=bool(good.quality.passed),
        gen_throughput=np.float64(good.throughput),
        off_by_one_quality=np.float64(bad.quality.value),
        off_by_one_passed=bool(bad.quality.passed),
        event_as_text=answer.raises(benchmark_model, mlp, "MLP_SPRINT", ticking_profiler()),
        timer_as_profiler=answer.raises(benchmark_model, mlp, event, Timer()),
    )


@pytest.mark.covers(
    "test_quality_gate_rejects_a_broken_model", "test_tinymlperf_gate_fails_a_fast_broken_candidate"
)
def test_the_gate_rejects_broken_models(answer):
    from tinytorch.perf.benchmarking import MLP_SPRINT, EventScore, TinyMLPerf, benchmark_model, score_events

    rng = answer.rng
    broken = zoo.load_model("mlp_digits")
    for p in broken.parameters():
        p.data[...] = rng.permutation(p.data.ravel()).reshape(p.data.shape)
    event = dataclasses.replace(MLP_SPRINT, warmup=0, runs=int(rng.integers(1, 4)))
    result = benchmark_model(broken, event, ticking_profiler())
    with no_grad():
        logits = broken(Tensor(event.inputs())).data
    card = score_events([EventScore("MLP_SPRINT", float(rng.uniform(1.5, 10.0)), result.quality)])
    answer.record(
        broken_passed=bool(result.quality.passed),
        broken_quality_is_its_accuracy=result.quality.value == accuracy(logits, event.labels()),
        broken_score=np.float64(card.score),
        broken_reason_names_the_metric="accuracy" in card.reasons.get("MLP_SPRINT", ""),
    )
    machine = Machine()
    base_cost = int(rng.integers(2, 9))
    bench = TinyMLPerf(
        events=[dataclasses.replace(MLP_SPRINT, warmup=0, runs=int(rng.integers(1, 6)))],
        profiler=machine_profiler(machine),
        baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", base_cost, mlp_logits())},
    )
    zeros = FakeClassifier(machine, "candidate", 1.0, np.zeros((MLP_SPRINT.batch_size, 10), np.float32))
    results = bench.run({"MLP_SPRINT": zeros})
    card = bench.score(results)
    answer.record(
        fast_broken_speedup=np.float64(results["MLP_SPRINT"].speedup),
        fast_broken_score=np.float64(card.score),
        fast_broken_reason="below the target" in card.reasons.get("MLP_SPRINT", ""),
        run_nothing=answer.raises(bench.run, {}),
    )


@LAWS
@pytest.mark.covers(
    "test_tinymlperf_times_baseline_and_candidate_in_the_same_run",
    "test_tinymlperf_speedup_is_the_ratio_of_medians",
)
def test_tinymlperf_interleaves_baseline_and_candidate(answer):
    from tinytorch.perf.benchmarking import MLP_SPRINT, TinyMLPerf

    rng = answer.rng
    logits = mlp_logits()
    warmup, rounds = int(rng.integers(0, 4)), int(rng.integers(1, 5))
    event = dataclasses.replace(MLP_SPRINT, warmup=warmup, runs=2 * rounds)
    costs = [float(c) for c in rng.integers(1, 9, 2)]
    machine = Machine(slow_after=2 * warmup + 2 * rounds, factor=float(rng.integers(2, 5)))
    bench = TinyMLPerf(
        events=[event],
        profiler=machine_profiler(machine),
        baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", costs[0], logits)},
    )
    result = bench.run_event("MLP_SPRINT", FakeClassifier(machine, "candidate", costs[1], logits))
    answer.record(
        speedup=np.float64(result.speedup),
        baseline_samples=np.sort(result.baseline.latency.samples),
        candidate_samples=np.sort(result.candidate.latency.samples),
        candidate_passed=bool(result.candidate.quality.passed),
        score=np.float64(bench.score({"MLP_SPRINT": result}).score),
    )
    # one hiccup: the 6th timed call (b c | c b | b c: the candidate's last) costs 10x
    costs = [float(c) for c in rng.integers(1, 9, 2)]
    machine = Machine(slow_after=5, factor=10.0)
    bench = TinyMLPerf(
        events=[dataclasses.replace(MLP_SPRINT, warmup=0, runs=3)],
        profiler=machine_profiler(machine),
        baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", costs[0], logits)},
    )
    result = bench.run_event("MLP_SPRINT", FakeClassifier(machine, "candidate", costs[1], logits))
    answer.record(
        hiccup_speedup=np.float64(result.speedup),
        hiccup_candidate_samples=np.sort(result.candidate.latency.samples),
        unknown_event=answer.raises(bench.run_event, "BOBSLEIGH", FakeClassifier(machine, "c", 1.0, logits)),
        no_events=answer.raises(TinyMLPerf, events=[]),
        candidates_as_list=answer.raises(bench.run, [FakeClassifier(machine, "c", 1.0, logits)]),
    )


# --------------------------------------------------------------------------------------------
# Submissions and the leaderboard
# --------------------------------------------------------------------------------------------


class _Touch:
    """Unpickling this creates a file: a stand-in for the arbitrary code a pickle can run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def bad_weights_files(folder, rng: np.random.Generator) -> dict[str, object]:
    """Weights files that are not well-formed .npz archives of finite numeric arrays."""
    good = folder / "good.npz"
    np.savez(good, w=rng.standard_normal((2, 3)).astype(np.float32))
    files = {}

    def path(name: str):
        return folder / f"{name}_{int(rng.integers(10**6))}.npz"

    files["objects"] = path("objects")
    np.savez(files["objects"], w=np.array([{"run": "code"}], dtype=object))
    files["bare_npy"] = folder / f"bare_{int(rng.integers(10**6))}.npy"
    np.save(files["bare_npy"], np.ones(3))
    files["no_arrays"] = path("empty")
    np.savez(files["no_arrays"])
    files["nan"] = path("nan")
    np.savez(files["nan"], w=np.array([1.0, np.nan]))
    files["text"] = path("text")
    np.savez(files["text"], w=np.array(["a", "b"]))
    files["complex"] = path("complex")
    np.savez(files["complex"], w=np.ones(2, np.float32), phase=np.array([1 + 2j]))
    files["truncated"] = path("truncated")
    files["truncated"].write_bytes(good.read_bytes()[: int(rng.integers(10, 60))])
    files["pickle"] = path("pickled")
    files["pickle"].write_bytes(pickle.dumps({"w": [1.0]}))
    files["not_a_zip"] = path("random")
    files["not_a_zip"].write_bytes(bytes(rng.integers(0, 256, 40, dtype=np.uint8)))
    files["corrupt_member"] = path("corrupt_member")
    with zipfile.ZipFile(files["corrupt_member"], "w") as archive:
        archive.writestr("w.npy", b"\x93NUMPY garbage that is not an array header")
    files["missing"] = path("missing")
    return files


@pytest.mark.covers(
    "test_check_weights_file_accepts_npz_and_refuses_everything_else",
    "test_check_weights_file_never_unpickles",
    "test_corrupt_array_inside_a_valid_zip_is_refused",
    "test_reference_weights_files_are_well_formed",
)
def test_weights_files_are_checked_without_pickle(answer, tmp_path):
    from tinytorch.perf.benchmarking import check_weights_file, save_weights_files

    rng = answer.rng
    arrays = {
        f"w{i}": rng.standard_normal(
            tuple(int(s) for s in rng.integers(1, 5, int(rng.integers(1, 4))))
        ).astype([np.float32, np.float64, np.int64, np.uint8, np.bool_][int(rng.integers(5))])
        for i in range(int(rng.integers(1, 5)))
    }
    good = tmp_path / "weights.npz"
    np.savez(good, **arrays)
    loaded = check_weights_file(good)
    names = sorted(loaded)
    answer.record(
        good_names=np.array(names, dtype=str),
        **{f"good_{name}": np.asarray(loaded[name]) for name in names},
    )
    for label, path in bad_weights_files(tmp_path, rng).items():
        try:
            check_weights_file(path)
            outcome, names_file = "", False
        except Exception as error:  # noqa: BLE001 - the type and the message are the recorded values
            outcome, names_file = type(error).__name__, path.name in str(error)
        answer.record(**{f"bad_{label}": outcome, f"bad_{label}_names_the_file": names_file})
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.npz"
    evil.write_bytes(pickle.dumps(_Touch(str(marker))))
    evil_objects = tmp_path / "evil_objects.npz"
    np.savez(evil_objects, w=np.array([_Touch(str(marker))], dtype=object))
    answer.record(
        evil_pickle=answer.raises(check_weights_file, evil),
        evil_objects=answer.raises(check_weights_file, evil_objects),
        never_unpickled=not marker.exists(),
    )
    folder = tmp_path / "saved"
    mlp = zoo.load_model("mlp_digits")
    paths = save_weights_files({"MLP_SPRINT": mlp, "NO_NETWORK": object()}, folder)
    saved = check_weights_file(paths["MLP_SPRINT"])
    answer.record(
        saved_events=np.array(sorted(paths), dtype=str),
        saved_names=np.array(sorted(saved), dtype=str),
        saved_match=all(np.array_equal(saved[n], v) for n, v in mlp.state_dict().items()),
    )


@LAWS
@pytest.mark.covers(
    "test_a_valid_submission_lands_with_its_score",
    "test_malformed_submission_is_rejected_with_a_reason_and_changes_nothing",
    "test_submission_with_bad_weights_is_rejected",
    "test_submission_with_bad_times_is_rejected",
    "test_crash_mid_submission_leaves_the_leaderboard_consistent",
    "test_two_processes_submitting_at_once_both_land",
    "test_validate_reports_containers_of_the_wrong_type",
    "test_tinytorch_submit_runs_validates_and_records",
)
def test_submissions_are_validated_scored_and_recorded(answer, tmp_path):
    from tinytorch.perf.benchmarking import MLP_SPRINT, CompetitionSubmission, TinyMLPerf

    from tinytorch import leaderboard
    from tinytorch.leaderboard import Leaderboard

    rng = answer.rng
    logits = mlp_logits()
    board = Leaderboard(tmp_path / "board.sqlite3")

    def quick_bench(cost: float):
        machine = Machine()
        bench = TinyMLPerf(
            events=[dataclasses.replace(MLP_SPRINT, warmup=0, runs=int(rng.integers(1, 5)))],
            profiler=machine_profiler(machine),
            baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", cost, logits)},
        )
        return bench, machine

    def submission(machine, cost: float = 1.0, **fields):
        values = {
            "name": "fast",
            "author": "ada",
            "optimizations": ["structured-pruning"],
            "models": {"MLP_SPRINT": FakeClassifier(machine, "candidate", cost, logits)},
        }
        values.update(fields)
        return CompetitionSubmission(**values)

    def snapshot():
        return [(e.name, e.score, e.events) for e in board.entries()]

    # a valid submission lands with its score
    cost = float(rng.integers(2, 9))
    bench, machine = quick_bench(cost)
    valid = submission(machine, name=f"entry{int(rng.integers(1000))}")
    problems = valid.validate(bench)
    card = valid.compute_score(bench)
    entry_id = valid.submit_to_leaderboard(board, bench)
    (entry,) = board.entries()
    answer.record(
        valid_problems=np.int64(len(problems)),
        valid_score=np.float64(card.score),
        valid_entry_id_is_the_rows=entry.id == entry_id,
        valid_entry_name=str(entry.name),
        valid_entry_score=np.float64(entry.score),
        valid_entry_speedups=np.array([e.speedup for e in entry.events]),
        valid_entry_passed=np.array([e.passed for e in entry.events]),
        valid_entry_optimizations=np.array(entry.optimizations, dtype=str),
        valid_markdown_row=f"| {entry.name} | ada | {card.score:.2f}x |" in board.to_markdown(),
    )

    # malformed submissions: a reason, an InvalidSubmission, the board unchanged
    before = snapshot()
    good_model = FakeClassifier(machine, "candidate", 1.0, logits)

    def crash(x):
        raise RuntimeError("boom")

    malformed = {
        "missing_name": ({"name": ""}, "name"),
        "missing_author": ({"author": "  "}, "author"),
        "no_optimizations": ({"optimizations": []}, "optimizations"),
        "unknown_optimization": (
            {"optimizations": ["quantum-annealing"]},
            "unknown optimization 'quantum-annealing'",
        ),
        "optimization_twice": ({"optimizations": ["kv-cache", "kv-cache"]}, "twice"),
        "missing_event": ({"models": {}}, "no model for event MLP_SPRINT"),
        "unknown_event": (
            {"models": {"MLP_SPRINT": good_model, "BOBSLEIGH": good_model}},
            "unknown event 'BOBSLEIGH'",
        ),
        "model_crashes": ({"models": {"MLP_SPRINT": crash}}, "does not run"),
        "below_target": (
            {"models": {"MLP_SPRINT": FakeClassifier(machine, "candidate", 1.0, np.zeros_like(logits))}},
            "quality gate failed",
        ),
    }
    for label in rng.permutation(list(malformed)):
        fields, reason = malformed[str(label)]
        broken = submission(machine, **fields)
        found = broken.validate(bench)
        try:
            broken.submit_to_leaderboard(board, bench)
            refused, reasons = "", []
        except Exception as error:  # noqa: BLE001 - the type and the reasons are the recorded values
            refused, reasons = type(error).__name__, [str(r) for r in getattr(error, "reasons", [])]
        answer.record(
            **{
                f"{label}_says_why": any(reason in p for p in found),
                f"{label}_refused": refused,
                f"{label}_refusal_says_why": any(reason in r for r in reasons),
            }
        )
    answer.record(board_unchanged_by_malformed=snapshot() == before)

    # bad weights files, bad times
    files = bad_weights_files(tmp_path, rng)
    for label in ("objects", "not_a_zip", "truncated", "missing"):
        path = files[label]
        try:
            submission(machine, weights={"MLP_SPRINT": path}).submit_to_leaderboard(board, bench)
            refused, named = "", False
        except Exception as error:  # noqa: BLE001 - the type and the reasons are the recorded values
            refused = type(error).__name__
            named = any(path.name in str(r) for r in getattr(error, "reasons", []))
        answer.record(**{f"weights_{label}_refused": refused, f"weights_{label}_named": named})
    for label, time in {"nan": math.nan, "negative": -0.5, "zero": 0.0, "inf": math.inf}.items():
        timed = submission(machine)
        timed.compute_score(bench)
        result = timed.results["MLP_SPRINT"]
        latency = dataclasses.replace(result.candidate.latency, p50=time)
        timed.results["MLP_SPRINT"] = dataclasses.replace(
            result, candidate=dataclasses.replace(result.candidate, latency=latency)
        )
        try:
            timed.submit_to_leaderboard(board, bench)
            refused, named = "", False
        except Exception as error:  # noqa: BLE001 - the type and the reasons are the recorded values
            refused = type(error).__name__
            named = any("candidate time" in str(r) for r in getattr(error, "reasons", []))
        answer.record(**{f"time_{label}_refused": refused, f"time_{label}_named": named})
    wrong_types = submission(machine, models=["a model"], weights="w.npz").validate(bench)
    answer.record(
        board_unchanged_by_bad_files_and_times=snapshot() == before,
        models_not_a_mapping=any("models must map" in p for p in wrong_types),
        weights_not_a_mapping=any("weights must map" in p for p in wrong_types),
        entry_before_scoring=answer.raises(submission(machine).to_entry),
    )

    # a crash between the submission row and its events leaves the board as it was
    class CrashingBoard(Leaderboard):
        def add(self, entry, _fault=None):
            def crash_now():
                raise KeyboardInterrupt("power cut between the submission row and its events")

            return super().add(entry, _fault=crash_now)

    try:
        submission(machine, name="crashed").submit_to_leaderboard(CrashingBoard(board.path), bench)
        crashed = ""
    except KeyboardInterrupt:
        crashed = "KeyboardInterrupt"
    answer.record(
        crash_raised=crashed,
        board_unchanged_by_crash=snapshot() == before,
        board_consistent=board.integrity_problems() == [],
    )

    # the CLI's path: validate, run, score, entry
    cost = float(rng.integers(2, 9))
    bench, machine = quick_bench(cost)
    args = Namespace(json=None, name="cli", author=None, save_json=None, db=str(board.path), quick=True)
    out = io.StringIO()
    cli_entry = leaderboard._run_submission(args, out, submission=submission(machine), benchmark=bench)
    answer.record(
        cli_name=str(cli_entry.name),
        cli_score=np.float64(cli_entry.score),
        cli_prints_the_card=f"score {cli_entry.score:.3f}x" in out.getvalue(),
        cli_refuses=answer.raises(
            leaderboard._run_submission, args, out, submission(machine, optimizations=["teleport"]), bench
        ),
    )


@pytest.mark.covers(
    "test_reference_submission_validates",
    "test_reference_submission_does_less_work_on_every_event",
    "test_reference_runs_in_the_competition_against_the_zoo_baseline",
    "test_fused_inference_computes_the_network",
)
def test_optimized_models_pass_their_gates_with_less_work(answer):
    from tinytorch.perf.benchmarking import (
        MLP_SPRINT,
        TRANSFORMER_DECATHLON,
        CachedGenerator,
        CompetitionSubmission,
        TinyMLPerf,
        optimize_mlp,
        workload_flops,
    )

    rng = answer.rng
    mlp = optimize_mlp(zoo.load_model("mlp_digits"))
    mlp_outputs = np.asarray(getattr(MLP_SPRINT.run(mlp), "data", MLP_SPRINT.run(mlp)))
    answer.record(
        mlp_output_shape=np.array(mlp_outputs.shape, np.int64),
        mlp_gate=bool(MLP_SPRINT.check_quality(mlp_outputs).passed),
        mlp_less_work=workload_flops(mlp, MLP_SPRINT)
        < workload_flops(MLP_SPRINT.baseline_model(), MLP_SPRINT),
    )
    gpt = zoo.load_model(TRANSFORMER_DECATHLON.model)
    generator = CachedGenerator(gpt)
    quick_gen = dataclasses.replace(
        TRANSFORMER_DECATHLON,
        warmup=0,
        runs=1,
        batch_size=int(rng.integers(1, 3)),
        max_new_tokens=int(rng.integers(2, 5)),
        prompt_length=int(rng.integers(4, 13)),
    )
    texts = zoo.eval_data(TRANSFORMER_DECATHLON.model)[0]
    length = int(rng.integers(1, 33))
    start = int(rng.integers(0, texts.shape[1] - length))
    prompts = texts[rng.choice(len(texts), size=2, replace=False), start : start + length]
    new = int(rng.integers(1, 17))
    tokens = np.asarray(generator.generate(prompts, new))
    answer.record(
        generated_shape=np.array(tokens.shape, np.int64),
        generated_keeps_prompts=np.array_equal(tokens[:, :length], prompts),
        generated_greedy=greedy_up_to_rounding(gpt, tokens, length),
        generator_gate=bool(quick_gen.check_quality(quick_gen.run(generator)).passed),
        generator_less_work=workload_flops(generator, quick_gen)
        < workload_flops(quick_gen.baseline_model(), quick_gen),
    )
    entry = CompetitionSubmission(
        name="optimized",
        author="key",
        optimizations=["structured-pruning", "kv-cache"],
        models={"MLP_SPRINT": mlp, "TRANSFORMER_DECATHLON": generator},
    )
    bench = TinyMLPerf(events=[MLP_SPRINT, quick_gen], profiler=ticking_profiler())
    answer.record(validates=np.int64(len(entry.validate(bench))))
