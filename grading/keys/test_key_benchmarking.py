"""Answer key of module 20 (benchmarking): held-out checks on inputs drawn from the grading seed.

Each check calls as few of the module's functions as it can (one public function or method, with
the helpers it necessarily calls), so that the grader can tie it to the tests of that function: a
failed check withholds the credit of a test only when the test calls every kata function the check
calls (grading/grade_score.py, ``decides``). Module 20's functions call modules 15-19 (the Timer,
the FLOP counter, pruning, the KV cache): those are kata functions too, so a check calls them
only where the tests it is meant for do.

Nothing is timed: every clock is fake (a machine whose time moves only when a fake workload runs,
by a drawn cost times a load that can jump mid-run, or a clock that ticks by one at every
reading), so every figure recorded is deterministic. What it covers (each check records values;
the grader compares them with the reference's):

* the scoring maths on drawn numbers: ``compute_speedup`` (seconds, medians of timings with an
  outlier, a ``BenchmarkResult``), ``geometric_mean`` (no overflow), ``score_events`` (all k gives
  k, reciprocal speedups give the reciprocal score, monotone), and a score unchanged when every
  time is scaled by a drawn factor;
* the quality gate: failed events (a NaN quality included) count 1 and say why, the score card
  as text; bad speedups, times and empty lists refused;
* speedup intervals: ``speedup_interval`` of paired rounds with a drawn ratio, load and noise (odd
  and even round counts, tied ratios, each confidence at its fewest rounds and with more, drawn
  confidences, ``TimingResult`` samples), refused with one round too few or bad times and
  confidences; ``precise_enough`` at, just inside and just outside its threshold (the default
  precision too) and its bad precisions; the events' intervals and the score's in a score card;
* ``measure_interleaved`` on a fake machine: warmup calls first and never sampled, every round
  times every function once and the order alternates, a slowdown half way does not change the
  speedup; its argument checks;
* ``benchmark_model``'s deterministic parts with a ticking clock: samples, throughput (items /
  p50, tokens for generation), FLOPs equal module 15's count, quality equal to the model's
  accuracy, warmup absorbed, a given latency kept; the gate on a model with shuffled weights and
  on a generator that changes one token; its and the events' argument checks;
* ``TinyMLPerf.run_event`` on a fake machine: interleaved, ratio of medians, the gate on a fast
  broken candidate, its argument checks;
* submissions: ``validate`` on every kind of broken submission (what its problems mention),
  ``compute_score``, ``submit_to_leaderboard`` (what lands, and a refused or crashed submission
  that changes nothing), the ``tinytorch submit`` path, ``check_weights_file`` on good and bad
  files (never unpickling), ``save_weights_files``;
* the optimized submission's parts: ``optimize_mlp`` (its gate, ``validate``), ``CachedGenerator``
  (greedy tokens, the gate, less work than the baseline by module 15's FLOPs), ``FusedInference``
  on drawn networks, ``workload_flops`` of the zoo baselines and of smaller networks (not
  ``optimize_cnn``: its fine-tune alone takes longer than the whole key should).

Seed-independent inputs (the events with the few warmup/runs/sizes the checks draw from, the
zoo's logits, a ``CachedGenerator`` of the zoo's GPT) are built once, when this file is imported,
so that no check pays for them twice, and so that what a check calls does not depend on which
check first filled the events' data caches (``functools.cache``: only the first call runs).

One file, whole: it is the module's answer key as the registry names it (``key = ...`` in
tinytorch/course/modules.toml), run by the grader in one child beside the module's suite.
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

MLP_WARMUPS, MLP_RUNS = range(0, 4), range(1, 9)  # the quick MLP events the checks draw from
GEN_BATCHES, GEN_TOKENS, GEN_PROMPTS = range(1, 3), range(2, 5), range(4, 13)  # and generation events


def _prepare() -> dict:
    """The seed-independent inputs of the checks, built at import (see the module docstring).

    Whatever fails here (a submission whose events do not load) is left out: the checks then
    build what they need themselves, and fail or pass on their own."""
    prepared: dict = {}
    with no_grad():  # the foundation's MLP on the first 359 held-out digits: MLP_SPRINT's batch
        images = zoo.eval_data("mlp_digits")[0]
        prepared["mlp_logits"] = zoo.load_model("mlp_digits")(Tensor(images[:359])).data
    try:
        from tinytorch.perf.benchmarking import CNN_MARATHON, MLP_SPRINT, TRANSFORMER_DECATHLON

        prepared["mlp_events"] = {
            (w, r): dataclasses.replace(MLP_SPRINT, warmup=w, runs=r) for w in MLP_WARMUPS for r in MLP_RUNS
        }
        prepared["gen_events"] = {
            (b, n, p): dataclasses.replace(
                TRANSFORMER_DECATHLON, warmup=0, runs=1, batch_size=b, max_new_tokens=n, prompt_length=p
            )
            for b in GEN_BATCHES
            for n in GEN_TOKENS
            for p in GEN_PROMPTS
        }
        for event in (MLP_SPRINT, CNN_MARATHON, *[prepared["gen_events"][(b, 2, 4)] for b in GEN_BATCHES]):
            event.inputs(), event.labels()  # fill the events' data caches
    except Exception:  # noqa: BLE001, S110 - the checks build their events themselves then
        pass
    try:
        from tinytorch.perf.benchmarking import TRANSFORMER_DECATHLON, CachedGenerator

        prepared["generator"] = CachedGenerator(zoo.load_model(TRANSFORMER_DECATHLON.model))
    except Exception:  # noqa: BLE001, S110 - the check builds it itself then
        pass
    return prepared


PREPARED = _prepare()


def mlp_event(warmup: int, runs: int):
    """MLP_SPRINT with these warmup and runs (prepared at import)."""
    from tinytorch.perf.benchmarking import MLP_SPRINT

    found = PREPARED.get("mlp_events", {}).get((warmup, runs))
    return found if found is not None else dataclasses.replace(MLP_SPRINT, warmup=warmup, runs=runs)


def draw_mlp_event(rng: np.random.Generator, warmup=MLP_WARMUPS, runs=MLP_RUNS):
    return mlp_event(int(rng.choice(warmup)), int(rng.choice(runs)))


def draw_gen_event(rng: np.random.Generator):
    """TRANSFORMER_DECATHLON with one run of 1-2 prompts of 4-12 tokens and 2-4 new tokens."""
    from tinytorch.perf.benchmarking import TRANSFORMER_DECATHLON

    key = (int(rng.choice(GEN_BATCHES)), int(rng.choice(GEN_TOKENS)), int(rng.choice(GEN_PROMPTS)))
    found = PREPARED.get("gen_events", {}).get(key)
    if found is not None:
        return found
    b, n, p = key
    return dataclasses.replace(
        TRANSFORMER_DECATHLON, warmup=0, runs=1, batch_size=b, max_new_tokens=n, prompt_length=p
    )


def mlp_logits() -> np.ndarray:
    """The zoo MLP's logits on MLP_SPRINT's 359 images (the fake classifiers return them)."""
    return PREPARED["mlp_logits"]


def cached_generator():
    """A CachedGenerator of the generation event's zoo GPT (prepared at import)."""
    from tinytorch.perf.benchmarking import TRANSFORMER_DECATHLON, CachedGenerator

    found = PREPARED.get("generator")
    return found if found is not None else CachedGenerator(zoo.load_model(TRANSFORMER_DECATHLON.model))


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


# --------------------------------------------------------------------------------------------
# Scoring maths
# --------------------------------------------------------------------------------------------

PASSED = ("accuracy", 0.97, 0.95)  # a QualityCheck that passes


def score_of(speedups) -> float:
    """The score of events with these speedups, every one passing its gate."""
    from tinytorch.perf.benchmarking import EventScore, QualityCheck, score_events

    passed = QualityCheck(*PASSED)
    return score_events([EventScore(f"E{i}", float(s), passed) for i, s in enumerate(speedups)]).score


@LAWS
def test_speedup_is_baseline_time_over_candidate_time(answer):
    from tinytorch.perf.benchmarking import compute_speedup

    rng = answer.rng
    baselines, candidates = log_uniform(rng, 1e-6, 1e2, 8), log_uniform(rng, 1e-6, 1e2, 8)
    answer.record(
        speedups=np.array(
            [compute_speedup(float(b), float(c)) for b, c in zip(baselines, candidates, strict=True)]
        ),
        speedup_of_integers=np.float64(compute_speedup(int(rng.integers(2, 50)), int(rng.integers(1, 50)))),
        speedup_of_numpy_floats=np.float64(compute_speedup(np.float64(baselines[0]), np.float32(2.0))),
    )


@LAWS
def test_speedup_compares_medians_of_timings(answer):
    from tinytorch.perf.benchmarking import BenchmarkResult, QualityCheck, compute_speedup
    from tinytorch.perf.profiling import summarize

    rng = answer.rng
    n = 2 * int(rng.integers(1, 4)) + 1
    slow = log_uniform(rng, 1e-4, 1.0, n)
    slow[int(rng.integers(n))] *= 100.0  # one outlier: moves the mean, not the median
    fast = log_uniform(rng, 1e-4, 1.0, n)
    latency = summarize(slow)
    result = BenchmarkResult("E", latency, 1.0, 0, None, QualityCheck(*PASSED))
    answer.record(
        speedup_of_timings=np.float64(compute_speedup(latency, summarize(fast))),
        speedup_of_a_result=np.float64(compute_speedup(result, summarize(fast))),
        speedup_of_a_result_and_seconds=np.float64(compute_speedup(float(fast[0]), result)),
    )


def test_speedup_rejects_times_that_are_not_durations(answer):
    from tinytorch.perf.benchmarking import compute_speedup

    rng = answer.rng
    good = float(log_uniform(rng, 1e-3, 1.0))
    answer.record(valid=np.float64(compute_speedup(good, 2 * good)))
    bad_times = {"zero": 0.0, "negative": -good, "nan": math.nan, "inf": math.inf, "minus_inf": -math.inf}
    for label, bad in bad_times.items():
        answer.record(
            **{
                f"baseline_{label}": answer.raises(compute_speedup, bad, good),
                f"optimized_{label}": answer.raises(compute_speedup, good, bad),
            }
        )
    answer.record(
        baseline_text=answer.raises(compute_speedup, "1 s", good),
        optimized_text=answer.raises(compute_speedup, good, "1 s"),
        baseline_bool=answer.raises(compute_speedup, True, good),
        baseline_none=answer.raises(compute_speedup, None, good),
    )


@LAWS
def test_geometric_mean_of_drawn_lists(answer):
    from tinytorch.perf.benchmarking import geometric_mean

    rng = answer.rng
    lists = [log_uniform(rng, 1e-3, 1e3, int(rng.integers(1, 9))) for _ in range(4)]
    answer.record(
        geometric_means=np.array([geometric_mean(list(s)) for s in lists]),
        geometric_mean_of_integers=np.float64(geometric_mean([int(v) for v in rng.integers(1, 100, 3)])),
        geometric_mean_huge=np.float64(geometric_mean([1e300] * int(rng.integers(2, 5)))),
        geometric_mean_tiny=np.float64(geometric_mean([1e-300] * int(rng.integers(2, 5)))),
    )


@LAWS
def test_score_is_the_geometric_mean_of_the_speedups(answer):
    rng = answer.rng
    lists = [log_uniform(rng, 1e-3, 1e3, int(rng.integers(1, 9))) for _ in range(4)]
    k, count = float(log_uniform(rng, 1e-3, 1e3)), int(rng.integers(1, 7))
    faster = [list(s) for s in lists]
    for s in faster:
        s[int(rng.integers(len(s)))] *= float(rng.uniform(1.01, 100.0))
    answer.record(
        scores=np.array([score_of(s) for s in lists]),
        reciprocal_scores=np.array([score_of(1 / s) for s in lists]),
        all_k=np.float64(score_of([k] * count)),
        faster_scores=np.array([score_of(s) for s in faster]),
        gain_and_loss=np.float64(score_of([k, 1 / k])),
    )


@LAWS
def test_score_unchanged_when_every_time_is_scaled(answer):
    from tinytorch.perf.benchmarking import EventScore, QualityCheck, compute_speedup, score_events
    from tinytorch.perf.profiling import summarize

    rng = answer.rng
    passed = QualityCheck(*PASSED)
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


def gated_cards(rng: np.random.Generator):
    """Three score cards of 2-5 events with drawn speedups, some failing their gates (case 1: with a
    NaN quality; case 2: none failing); with each case's failed events and targets."""
    from tinytorch.perf.benchmarking import EventScore, QualityCheck, score_events

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
        yield case, n, score_events(events), failed, targets


@LAWS
def test_failed_quality_gates_count_one_and_say_why(answer):
    for case, n, card, _, targets in gated_cards(answer.rng):
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
            }
        )


@LAWS
def test_score_card_reads_as_text(answer):
    for case, n, card, failed, _ in gated_cards(answer.rng):
        text = str(card)
        answer.record(
            **{
                f"c{case}_score": np.float64(card.score),
                f"c{case}_text_has_score": f"score {card.score:.3f}x" in text,
                f"c{case}_text_has_every_event": all(f"E{i}: " in text for i in range(n)),
                f"c{case}_text_says_not_counted": ("not counted" in text) == bool(failed.any()),
            }
        )


def test_score_and_geometric_mean_refuse_nothing_to_score(answer):
    from tinytorch.perf.benchmarking import EventScore, QualityCheck, geometric_mean, score_events

    rng = answer.rng
    one = EventScore("E0", 2.0, QualityCheck(*PASSED))
    answer.record(
        valid=np.float64(geometric_mean([float(v) for v in log_uniform(rng, 0.1, 10.0, 3)])),
        score_nothing=answer.raises(score_events, []),
        events_twice=answer.raises(score_events, [one, one]),
        geometric_mean_nothing=answer.raises(geometric_mean, []),
        geometric_mean_negative=answer.raises(geometric_mean, [1.0, -float(log_uniform(rng, 0.1, 10.0))]),
        geometric_mean_zero=answer.raises(geometric_mean, [0.0, 2.0]),
        geometric_mean_nan=answer.raises(geometric_mean, [math.nan]),
        geometric_mean_inf=answer.raises(geometric_mean, [math.inf, 1.0]),
    )


# Speedup intervals. A ratio r_i = b_i / c_i is one correctly rounded division and the median of
# an even count is the midpoint of two of them: 1-2 ulps between any two correct ways to compute
# them (a numpy median, a midpoint a / 2 + b / 2); 1e-12 leaves a large margin and is far below
# the gap between neighbouring order statistics of drawn noisy ratios (the wrong order
# statistics, the mean or a ratio of medians move a figure by far more). Round counts are exact.
INTERVALS = pytest.mark.tolerance(
    rtol=1e-12,
    atol=0.0,
    why="per-round ratios are one division each, the median a midpoint of two: a few ulps",
)
ROUND_COUNTS = (6, 7, 8, 9, 12, 13, 20, 21, 40, 41)  # odd and even, from the 95 % minimum up
# Confidences whose smallest round count is known (min_rounds): the smallest n with
# 2 * (1/2)**n <= 1 - confidence; 0.5 and 0.75 put the binomial tail exactly at alpha / 2
# (dyadic, so exact in floats: 1/4 at n = 2, 1/8 at n = 3), which the interval allows.
CONFIDENCE_MINIMUM = {0.5: 2, 0.75: 3, 0.8: 4, 0.9: 5, 0.95: 6, 0.99: 8, 0.999: 11}


def paired_rounds(rng: np.random.Generator, n: int, ratio: float, noise: float):
    """n paired rounds whose true speedup is ``ratio``: each round's machine load (a factor shared
    by both sides, up to 20x) times a drawn cost for the baseline; the candidate the same cost over
    ``ratio`` with a lognormal noise of its own (sigma ``noise``). Lists of positive floats."""
    load = log_uniform(rng, 1.0, 20.0, n)
    cost = float(log_uniform(rng, 1e-4, 1e-1))
    baseline = cost * load * rng.lognormal(0.0, noise, n)
    candidate = cost / ratio * load * rng.lognormal(0.0, noise, n)
    return [float(t) for t in baseline], [float(t) for t in candidate]


def record_intervals(answer, label: str, intervals) -> None:
    answer.record(
        **{
            f"{label}_values": np.array([i.value for i in intervals], dtype=np.float64),
            f"{label}_lows": np.array([i.low for i in intervals], dtype=np.float64),
            f"{label}_highs": np.array([i.high for i in intervals], dtype=np.float64),
            f"{label}_rounds": np.array([int(i.rounds) for i in intervals], dtype=np.int64),
            f"{label}_confidences": np.array([float(i.confidence) for i in intervals], dtype=np.float64),
        }
    )


@INTERVALS
def test_speedup_interval_of_paired_rounds_with_a_known_ratio(answer):
    from tinytorch.perf.benchmarking import speedup_interval

    rng = answer.rng
    cases = []
    for n in ROUND_COUNTS:
        ratio, noise = float(log_uniform(rng, 0.1, 30.0)), float(rng.uniform(0.01, 0.3))
        cases.append(paired_rounds(rng, n, ratio, noise))
    intervals = [speedup_interval(b, c) for b, c in cases]
    record_intervals(answer, "default", intervals)
    # a numpy array is a sequence of seconds too
    b, c = cases[int(rng.integers(len(cases)))]
    answer.record(numpy_value=np.float64(speedup_interval(np.array(b), np.array(c)).value))


@INTERVALS
def test_speedup_interval_at_other_confidences_and_their_minimum_rounds(answer):
    from tinytorch.perf.benchmarking import speedup_interval

    rng = answer.rng
    at_minimum, with_more = [], []
    for confidence, fewest in CONFIDENCE_MINIMUM.items():
        ratio = float(log_uniform(rng, 0.2, 10.0))
        at_minimum.append(speedup_interval(*paired_rounds(rng, fewest, ratio, 0.1), confidence=confidence))
        n = fewest + int(rng.integers(1, 30))
        with_more.append(speedup_interval(*paired_rounds(rng, n, ratio, 0.1), confidence=confidence))
    # drawn confidences: a binomial tail k / 2**n lands within rounding of alpha / 2 with
    # probability ~1e-15, so every correct way of comparing them picks the same k
    drawn = [float(rng.uniform(0.5, 0.999)) for _ in range(4)]
    drawn_intervals = [
        speedup_interval(*paired_rounds(rng, int(rng.integers(11, 60)), 2.0, 0.2), confidence=q)
        for q in drawn
    ]
    record_intervals(answer, "at_minimum", at_minimum)
    record_intervals(answer, "with_more", with_more)
    record_intervals(answer, "drawn", drawn_intervals)


@INTERVALS
def test_speedup_interval_of_tied_ratios(answer):
    from tinytorch.perf.benchmarking import speedup_interval

    rng = answer.rng
    # candidate times k / 1024 and baselines r * c with r in a few dyadic ratios: every ratio is
    # exact, so many rounds tie (the median and the bounds are ratios that occur several times)
    levels = np.array([0.5, 1.0, 1.5, 2.0, 3.0])
    intervals = []
    for n in (6, 7, int(rng.integers(8, 30)), int(rng.integers(30, 60))):
        c = rng.integers(1, 1024, n) / 1024.0
        r = rng.choice(levels[: int(rng.integers(2, 6))], n)
        intervals.append(speedup_interval([float(x) for x in r * c], [float(x) for x in c]))
    n, r = int(rng.integers(6, 40)), float(rng.choice(levels))
    c = rng.integers(1, 1024, n) / 1024.0
    intervals.append(speedup_interval([float(x) for x in r * c], [float(x) for x in c]))  # all equal
    record_intervals(answer, "ties", intervals)


@INTERVALS
def test_speedup_interval_of_timing_results(answer):
    from tinytorch.perf.benchmarking import speedup_interval
    from tinytorch.perf.profiling import summarize

    rng = answer.rng
    n = int(rng.choice(ROUND_COUNTS))
    b, c = paired_rounds(rng, n, float(log_uniform(rng, 0.2, 10.0)), 0.1)
    record_intervals(answer, "timings", [speedup_interval(summarize(b), summarize(c))])


def test_speedup_interval_refuses_too_few_rounds_and_bad_input(answer):
    from tinytorch.perf.benchmarking import speedup_interval

    rng = answer.rng
    n = int(rng.integers(6, 12))
    b, c = paired_rounds(rng, n, float(log_uniform(rng, 0.2, 10.0)), 0.1)
    answer.record(valid_rounds=np.int64(speedup_interval(b, c).rounds))  # the refusals below only
    too_few = {
        f"too_few_at_{str(q).replace('.', '_')}": answer.raises(
            speedup_interval, *paired_rounds(rng, fewest - 1, 2.0, 0.1), confidence=q
        )
        for q, fewest in CONFIDENCE_MINIMUM.items()
    }
    answer.record(**too_few, no_rounds=answer.raises(speedup_interval, [], []))
    for label, bad in {"zero": 0.0, "negative": -b[0], "nan": math.nan, "inf": math.inf}.items():
        i = int(rng.integers(n))
        answer.record(
            **{
                f"baseline_{label}": answer.raises(speedup_interval, b[:i] + [bad] + b[i + 1 :], c),
                f"candidate_{label}": answer.raises(speedup_interval, b, c[:i] + [bad] + c[i + 1 :]),
            }
        )
    answer.record(
        unequal_rounds=answer.raises(speedup_interval, b, c + [c[0]]),
        baseline_text_time=answer.raises(speedup_interval, ["1 s"] + b[1:], c),
        baseline_none_time=answer.raises(speedup_interval, [None] + b[1:], c),
        baseline_bool_time=answer.raises(speedup_interval, [True] + b[1:], c),
        baseline_a_number=answer.raises(speedup_interval, b[0], c),
        baseline_a_string=answer.raises(speedup_interval, "123456", c),
        candidate_none=answer.raises(speedup_interval, b, None),
    )
    for label, bad in {
        "zero": 0.0,
        "one": 1.0,
        "above_one": 1.5,
        "negative": -0.5,
        "nan": math.nan,
    }.items():
        answer.record(**{f"confidence_{label}": answer.raises(speedup_interval, b, c, confidence=bad)})
    answer.record(
        confidence_bool=answer.raises(speedup_interval, b, c, confidence=True),
        confidence_text=answer.raises(speedup_interval, b, c, confidence="0.95"),
    )


def interval_of(value: float, half_width: float, skew: float):
    """A SpeedupInterval around ``value`` whose half-width is ``half_width``, ``skew`` of the
    width below the value (a median need not be the midpoint of its order statistics). Built
    directly, not by ``speedup_interval``: the ``precise_enough`` checks call that one function."""
    from tinytorch.perf.benchmarking import SpeedupInterval

    width = 2 * half_width
    low = value - skew * width
    return SpeedupInterval(value, low=low, high=low + width, rounds=20)


def test_precise_enough_at_and_around_the_threshold(answer):
    from tinytorch.perf.benchmarking import precise_enough

    rng = answer.rng
    # Exactly at the threshold: a dyadic value (m / 16), precision (2**-j) and skew (1/4, 1/2,
    # 3/4) make the half-width precision * value and both bounds exact, so (high - low) / 2,
    # high - low against 2 * precision * value and the width over the value all compare equal.
    at = []
    for _ in range(6):
        value = int(rng.integers(8, 400)) / 16.0
        precision = 2.0 ** -int(rng.integers(2, 7))
        skew = float(rng.choice([0.25, 0.5, 0.75]))
        at.append(precise_enough(interval_of(value, precision * value, skew), precision))
    # Around it: half-widths of 0.3-0.99 and 1.01-3 times precision * value (drawn values and
    # precisions; a margin of >= 1 % that no rounding crosses); the factors between 0.5 and 1 are
    # precise enough by the half-width but not by the whole width.
    factors = np.concatenate(
        [
            rng.uniform(0.3, 0.49, 2),
            rng.uniform(0.51, 0.99, 6),
            rng.uniform(1.01, 1.3, 4),
            rng.uniform(1.3, 3, 2),
        ]
    )
    values = log_uniform(rng, 0.05, 50.0, len(factors))
    precisions = rng.uniform(0.005, 0.3, len(factors))
    skews = rng.uniform(0.1, 0.9, len(factors))
    around = [
        precise_enough(interval_of(float(v), float(f * p * v), float(s)), float(p))
        for f, v, p, s in zip(factors, values, precisions, skews, strict=True)
    ]
    # The default precision (5 %): half-widths 0.6-0.99 and 1.01-2 times 5 % of the value.
    defaults = np.concatenate([rng.uniform(0.6, 0.99, 3), rng.uniform(1.01, 2.0, 3)])
    default_values = log_uniform(rng, 0.1, 20.0, len(defaults))
    by_default = [
        precise_enough(interval_of(float(v), float(f * 0.05 * v), 0.5))
        for f, v in zip(defaults, default_values, strict=True)
    ]
    point = float(log_uniform(rng, 0.1, 20.0))
    answer.record(
        at_threshold=np.array(at, dtype=bool),
        around_threshold=np.array([bool(x) for x in around]),
        default_precision=np.array([bool(x) for x in by_default]),
        equal_bounds=bool(precise_enough(interval_of(point, 0.0, 0.5), float(rng.uniform(1e-6, 1e-3)))),
        integer_precision=bool(precise_enough(interval_of(point, 0.9 * point, 0.5), 1)),
    )


def test_precise_enough_refuses_bad_precisions(answer):
    from tinytorch.perf.benchmarking import precise_enough

    rng = answer.rng
    value = float(log_uniform(rng, 0.1, 20.0))
    interval = interval_of(value, 0.01 * value, 0.5)
    answer.record(valid=bool(precise_enough(interval, float(rng.uniform(0.02, 0.2)))))
    bad = {"zero": 0.0, "negative": -0.05, "nan": math.nan, "inf": math.inf, "minus_inf": -math.inf}
    answer.record(
        **{f"precision_{label}": answer.raises(precise_enough, interval, p) for label, p in bad.items()}
    )
    answer.record(
        precision_bool=answer.raises(precise_enough, interval, True),
        precision_text=answer.raises(precise_enough, interval, "0.05"),
        precision_none=answer.raises(precise_enough, interval, None),
    )


@LAWS
def test_score_card_keeps_each_events_interval(answer):
    from tinytorch.perf.benchmarking import EventScore, QualityCheck, SpeedupInterval, score_events

    rng = answer.rng
    n = int(rng.integers(3, 7))
    events = []
    for i in range(n):
        value = float(log_uniform(rng, 0.2, 20.0))
        low, high = value / float(rng.uniform(1.0, 1.5)), value * float(rng.uniform(1.0, 1.5))
        interval = SpeedupInterval(value, low, high, rounds=20) if i % 3 != 2 else None  # some point speedups
        gate = QualityCheck(*PASSED) if i != 1 else QualityCheck("accuracy", 0.5, 0.9)  # E1 fails
        events.append(EventScore(f"E{i}", value, gate, interval))
    card = score_events(events)
    answer.record(
        score=np.float64(card.score),
        lows=np.array([card.intervals[f"E{i}"][0] for i in range(n)], dtype=np.float64),
        highs=np.array([card.intervals[f"E{i}"][1] for i in range(n)], dtype=np.float64),
        bounds=np.array(card.bounds, dtype=np.float64),
    )


# --------------------------------------------------------------------------------------------
# Fair measurement
# --------------------------------------------------------------------------------------------


def interleave_on_a_slowing_machine(rng: np.random.Generator):
    """measure_interleaved of two workloads on a machine that slows down exactly half way through
    the timed calls; (timings, machine, warmup)."""
    from tinytorch.perf.benchmarking import measure_interleaved
    from tinytorch.perf.profiling import Timer

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
    return timings, machine, warmup


@LAWS
def test_interleaved_speedup_survives_a_machine_that_slows_down(answer):
    from tinytorch.perf.benchmarking import compute_speedup

    timings, _, _ = interleave_on_a_slowing_machine(answer.rng)
    answer.record(
        slowdown_speedup=np.float64(compute_speedup(timings["b"], timings["c"])),
        slowdown_samples=np.array([sorted(timings["b"].samples), sorted(timings["c"].samples)]),
        slowdown_medians=np.array([timings["b"].p50, timings["c"].p50]),
    )


def test_interleaved_calls_alternate_and_warm_up_first(answer):
    timings, machine, warmup = interleave_on_a_slowing_machine(answer.rng)
    timed = machine.log[2 * warmup :]
    round_pairs = [sorted(timed[i : i + 2]) for i in range(0, len(timed), 2)]
    answer.record(
        names=np.array(sorted(timings), dtype=str),
        warmup_calls=np.array(sorted(machine.log[: 2 * warmup]), dtype=str),
        rounds=np.array(round_pairs, dtype=str),
        distinct_firsts=np.int64(
            len({pair[0] for pair in (timed[i : i + 2] for i in range(0, len(timed), 2))})
        ),
        calls=np.int64(machine.calls),
    )


@LAWS
def test_warmup_calls_never_enter_the_samples(answer):
    from tinytorch.perf.benchmarking import measure_interleaved
    from tinytorch.perf.profiling import Timer

    # the first `warmup` calls of each of three functions are cold (100x): none is a sample
    rng = answer.rng
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


def test_measure_interleaved_checks_its_arguments(answer):
    from tinytorch.perf.benchmarking import measure_interleaved
    from tinytorch.perf.profiling import Timer

    rng = answer.rng
    timer = Timer(clock=itertools.count().__next__)
    runs = int(rng.integers(1, 5))
    answer.record(
        valid_runs=np.int64(measure_interleaved({"a": lambda: None}, 0, runs, timer)["a"].runs),
        no_funcs=answer.raises(measure_interleaved, {}, 1, 1, timer),
        not_a_mapping=answer.raises(measure_interleaved, [lambda: None], 1, 1, timer),
        not_callable=answer.raises(measure_interleaved, {"a": 3}, 1, 1, timer),
        zero_runs=answer.raises(measure_interleaved, {"a": lambda: None}, 1, 0, timer),
        float_runs=answer.raises(measure_interleaved, {"a": lambda: None}, 1, 2.0, timer),
        float_warmup=answer.raises(measure_interleaved, {"a": lambda: None}, 1.5, 1, timer),
        negative_warmup=answer.raises(measure_interleaved, {"a": lambda: None}, -1, 1, timer),
    )


# --------------------------------------------------------------------------------------------
# benchmark_model on the zoo models and fake ones
# --------------------------------------------------------------------------------------------


@LAWS
def test_benchmark_model_measures_with_module_15(answer):
    from tinytorch.perf.benchmarking import benchmark_model
    from tinytorch.perf.profiling import FLOPCounter

    rng = answer.rng
    mlp = zoo.load_model("mlp_digits")
    event = draw_mlp_event(rng, runs=range(1, 5))
    result = benchmark_model(mlp, event, ticking_profiler())
    recorded = zoo.load_metrics()["models"]["mlp_digits"]["test_accuracy"]
    answer.record(
        event_name=str(result.event),
        samples=np.asarray(result.latency.samples, np.float64),
        throughput=np.float64(result.throughput),
        flops=np.int64(result.flops),
        flops_are_module_15s=result.flops == FLOPCounter().count_ops(mlp, event.inputs()).total,
        peak_memory_positive=result.peak_memory_bytes > 0,
        quality_is_the_accuracy=result.quality.value == accuracy(mlp_logits(), event.labels()),
        quality_near_the_zoo=abs(result.quality.value - recorded) <= 0.5 / 359,
        quality_passed=bool(result.quality.passed),
        train_step_measured=result.train_step is not None and result.train_step.runs >= 1,
    )


@LAWS
def test_benchmark_model_keeps_a_latency_measured_side_by_side(answer):
    from tinytorch.perf.benchmarking import benchmark_model
    from tinytorch.perf.profiling import summarize

    rng = answer.rng
    samples = log_uniform(rng, 1e-4, 1.0, 2 * int(rng.integers(1, 4)) + 1)
    samples[int(rng.integers(samples.size))] *= 10.0  # an outlier: the mean moves, the median hardly
    latency = summarize(samples)
    given = benchmark_model(
        zoo.load_model("mlp_digits"), draw_mlp_event(rng), ticking_profiler(), latency=latency
    )
    answer.record(given_latency_kept=given.latency is latency, given_throughput=np.float64(given.throughput))


def test_benchmark_model_warms_up_before_timing(answer):
    from tinytorch.perf.benchmarking import benchmark_model

    rng = answer.rng
    cold = int(rng.integers(1, 4))  # cold calls for the warmup to absorb
    machine = Machine(cold=cold)
    fake = FakeClassifier(machine, "model", float(rng.integers(1, 6)), mlp_logits())
    warmed = benchmark_model(fake, mlp_event(cold, int(rng.integers(1, 5))), machine_profiler(machine))
    answer.record(
        warm_samples=np.asarray(warmed.latency.samples, np.float64),
        fake_flops_none=warmed.flops is None,
        fake_train_step_none=warmed.train_step is None,
    )


def test_quality_gate_rejects_a_broken_model(answer):
    from tinytorch.perf.benchmarking import EventScore, benchmark_model, score_events

    rng = answer.rng
    broken = zoo.load_model("mlp_digits")
    for p in broken.parameters():
        p.data[...] = rng.permutation(p.data.ravel()).reshape(p.data.shape)
    event = draw_mlp_event(rng, warmup=[0])
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


@LAWS
def test_generation_quality_is_identical_tokens_and_throughput_counts_tokens(answer):
    from tinytorch.perf.benchmarking import FullRecomputeGenerator, benchmark_model

    rng = answer.rng
    gen_event = draw_gen_event(rng)
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
        gen_samples=np.asarray(good.latency.samples, np.float64),
        off_by_one_quality=np.float64(bad.quality.value),
        off_by_one_passed=bool(bad.quality.passed),
    )


def test_benchmark_model_and_events_check_their_arguments(answer):
    from tinytorch.perf.benchmarking import MLP_SPRINT, benchmark_model
    from tinytorch.perf.profiling import Timer

    rng = answer.rng
    mlp = zoo.load_model("mlp_digits")
    event = draw_mlp_event(rng)
    answer.record(
        valid_runs=np.int64(benchmark_model(mlp, event, ticking_profiler()).latency.runs),
        event_as_text=answer.raises(benchmark_model, mlp, "MLP_SPRINT", ticking_profiler()),
        timer_as_profiler=answer.raises(benchmark_model, mlp, event, Timer()),
        event_task=answer.raises(dataclasses.replace, MLP_SPRINT, task="dance"),
        event_batch_size=answer.raises(dataclasses.replace, MLP_SPRINT, batch_size=0),
        event_runs=answer.raises(dataclasses.replace, MLP_SPRINT, runs=2.5),
        event_warmup=answer.raises(dataclasses.replace, MLP_SPRINT, warmup=-int(rng.integers(1, 4))),
    )


# --------------------------------------------------------------------------------------------
# TinyMLPerf: baseline and candidate side by side
# --------------------------------------------------------------------------------------------


def fake_bench(machine: Machine, event, base_cost: float):
    """A one-event competition on ``machine`` whose baseline is a fake classifier of ``base_cost``."""
    from tinytorch.perf.benchmarking import TinyMLPerf

    return TinyMLPerf(
        events=[event],
        profiler=machine_profiler(machine),
        baselines={"MLP_SPRINT": FakeClassifier(machine, "baseline", base_cost, mlp_logits())},
    )


@LAWS
def test_tinymlperf_interleaves_baseline_and_candidate(answer):
    rng = answer.rng
    warmup, rounds = int(rng.integers(0, 4)), int(rng.integers(1, 5))
    costs = [float(c) for c in rng.integers(1, 9, 2)]
    machine = Machine(slow_after=2 * warmup + 2 * rounds, factor=float(rng.integers(2, 5)))
    bench = fake_bench(machine, mlp_event(warmup, 2 * rounds), costs[0])
    result = bench.run_event("MLP_SPRINT", FakeClassifier(machine, "candidate", costs[1], mlp_logits()))
    answer.record(
        speedup=np.float64(result.speedup),
        baseline_samples=np.sort(result.baseline.latency.samples),
        candidate_samples=np.sort(result.candidate.latency.samples),
        candidate_passed=bool(result.candidate.quality.passed),
        score=np.float64(bench.score({"MLP_SPRINT": result}).score),
    )


@LAWS
def test_tinymlperf_speedup_is_the_ratio_of_medians(answer):
    # one hiccup: the 6th timed call (b c | c b | b c: the candidate's last) costs 10x
    rng = answer.rng
    costs = [float(c) for c in rng.integers(1, 9, 2)]
    machine = Machine(slow_after=5, factor=10.0)
    bench = fake_bench(machine, mlp_event(0, 3), costs[0])
    result = bench.run_event("MLP_SPRINT", FakeClassifier(machine, "candidate", costs[1], mlp_logits()))
    answer.record(
        hiccup_speedup=np.float64(result.speedup),
        hiccup_baseline_samples=np.sort(result.baseline.latency.samples),
        hiccup_candidate_samples=np.sort(result.candidate.latency.samples),
    )


@LAWS
def test_tinymlperf_gate_fails_a_fast_broken_candidate(answer):
    rng = answer.rng
    machine = Machine()
    bench = fake_bench(machine, draw_mlp_event(rng, warmup=[0]), int(rng.integers(2, 9)))
    zeros = FakeClassifier(machine, "candidate", 1.0, np.zeros_like(mlp_logits()))
    results = bench.run({"MLP_SPRINT": zeros})
    card = bench.score(results)
    answer.record(
        fast_broken_speedup=np.float64(results["MLP_SPRINT"].speedup),
        fast_broken_score=np.float64(card.score),
        fast_broken_reason="below the target" in card.reasons.get("MLP_SPRINT", ""),
        run_nothing=answer.raises(bench.run, {}),
        run_an_unknown_event=answer.raises(bench.run, {"MLP_SPRINT": zeros, "BOBSLEIGH": zeros}),
    )


def test_tinymlperf_refuses_unknown_events_and_candidates(answer):
    from tinytorch.perf.benchmarking import TinyMLPerf

    rng = answer.rng
    machine = Machine()
    bench = fake_bench(machine, mlp_event(0, int(rng.integers(1, 4))), float(rng.integers(2, 9)))
    candidate = FakeClassifier(machine, "c", 1.0, mlp_logits())
    answer.record(
        valid_speedup=np.float64(bench.run_event("MLP_SPRINT", candidate).speedup),
        unknown_event=answer.raises(bench.run_event, "BOBSLEIGH", candidate),
        no_events=answer.raises(TinyMLPerf, events=[]),
        events_not_events=answer.raises(TinyMLPerf, events=["MLP_SPRINT"]),
        candidates_as_list=answer.raises(bench.run, [candidate]),
    )


# --------------------------------------------------------------------------------------------
# Weights files
# --------------------------------------------------------------------------------------------


def test_check_weights_file_accepts_npz_archives(answer, tmp_path):
    from tinytorch.perf.benchmarking import check_weights_file

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
        good_from_text_path=np.array(sorted(check_weights_file(str(good))), dtype=str),
        **{f"good_{name}": np.asarray(loaded[name]) for name in names},
    )


def test_check_weights_file_refuses_everything_else(answer, tmp_path):
    from tinytorch.perf.benchmarking import check_weights_file

    for label, path in bad_weights_files(tmp_path, answer.rng).items():
        try:
            check_weights_file(path)
            outcome, names_file = "", False
        except Exception as error:  # noqa: BLE001 - the type and the message are the recorded values
            outcome, names_file = type(error).__name__, path.name in str(error)
        answer.record(**{f"bad_{label}": outcome, f"bad_{label}_names_the_file": names_file})


def test_check_weights_file_never_unpickles(answer, tmp_path):
    from tinytorch.perf.benchmarking import check_weights_file

    marker = tmp_path / f"code-ran-{int(answer.rng.integers(10**6))}"
    evil = tmp_path / "evil.npz"
    evil.write_bytes(pickle.dumps(_Touch(str(marker))))
    evil_objects = tmp_path / "evil_objects.npz"
    np.savez(evil_objects, w=np.array([_Touch(str(marker))], dtype=object))
    answer.record(
        evil_pickle=answer.raises(check_weights_file, evil),
        evil_objects=answer.raises(check_weights_file, evil_objects),
        never_unpickled=not marker.exists(),
    )


def test_save_weights_files_writes_every_network(answer, tmp_path):
    from tinytorch.perf.benchmarking import check_weights_file, save_weights_files

    class Wrapper:  # a generator-like model: its network is its ``model``
        def __init__(self, model) -> None:
            self.model = model

    rng = answer.rng
    mlp = zoo.load_model("mlp_digits")
    for p in mlp.parameters():
        p.data[...] = rng.standard_normal(p.data.shape).astype(p.data.dtype)
    paths = save_weights_files(
        {"MLP_SPRINT": mlp, "WRAPPED": Wrapper(mlp), "NO_NETWORK": object()}, tmp_path / "saved"
    )
    saved = check_weights_file(paths["MLP_SPRINT"])
    wrapped = check_weights_file(paths["WRAPPED"])
    answer.record(
        saved_events=np.array(sorted(paths), dtype=str),
        saved_file_names=np.array(sorted(p.name for p in paths.values()), dtype=str),
        saved_names=np.array(sorted(saved), dtype=str),
        saved_match=all(np.array_equal(saved[n], v) for n, v in mlp.state_dict().items()),
        wrapped_match=all(np.array_equal(wrapped[n], v) for n, v in mlp.state_dict().items()),
    )


# --------------------------------------------------------------------------------------------
# Submissions and the leaderboard
# --------------------------------------------------------------------------------------------


def quick_bench(rng: np.random.Generator, cost: float | None = None):
    """A one-event competition on a fake machine whose baseline costs ``cost`` (drawn if None)."""
    machine = Machine()
    cost = float(rng.integers(2, 9)) if cost is None else cost
    return fake_bench(machine, mlp_event(0, int(rng.integers(1, 5))), cost), machine


def submission(machine: Machine, cost: float = 1.0, **fields):
    from tinytorch.perf.benchmarking import CompetitionSubmission

    values = {
        "name": "fast",
        "author": "ada",
        "optimizations": ["structured-pruning"],
        "models": {"MLP_SPRINT": FakeClassifier(machine, "candidate", cost, mlp_logits())},
    }
    values.update(fields)
    return CompetitionSubmission(**values)


def snapshot(board) -> list:
    return [(e.name, e.score, e.events) for e in board.entries()]


def refusal(action) -> tuple[str, list[str]]:
    """The name of the exception ``action()`` raises ("" if none) and its ``reasons``."""
    try:
        action()
    except Exception as error:  # noqa: BLE001 - the type and the reasons are the recorded values
        return type(error).__name__, [str(r) for r in getattr(error, "reasons", [])]
    return "", []


@LAWS
def test_a_valid_submission_lands_with_its_score(answer, tmp_path):
    from tinytorch.course.leaderboard import Leaderboard

    rng = answer.rng
    board = Leaderboard(tmp_path / "board.sqlite3")
    bench, machine = quick_bench(rng)
    valid = submission(machine, name=f"entry{int(rng.integers(1000))}")
    problems = valid.validate(bench)
    card = valid.compute_score(bench)
    entry_id = valid.submit_to_leaderboard(board, bench)
    (entry,) = board.entries()
    answer.record(
        valid_problems=np.int64(len(problems)),
        valid_score=np.float64(card.score),
        valid_results=np.array(sorted(valid.results), dtype=str),
        valid_entry_id_is_the_rows=entry.id == entry_id,
        valid_entry_name=str(entry.name),
        valid_entry_score=np.float64(entry.score),
        valid_entry_speedups=np.array([e.speedup for e in entry.events]),
        valid_entry_passed=np.array([e.passed for e in entry.events]),
        valid_entry_optimizations=np.array(entry.optimizations, dtype=str),
        valid_markdown_row=f"| {entry.name} | ada | {card.score:.2f}x |" in board.to_markdown(),
    )
    # scored on submission when it was not scored before
    unscored = submission(machine, name="unscored", cost=float(rng.integers(1, 3)))
    unscored.submit_to_leaderboard(board, bench)
    answer.record(unscored_score=np.float64([e.score for e in board.entries() if e.name == "unscored"][0]))


def test_malformed_submissions_are_refused_and_change_nothing(answer, tmp_path):
    from tinytorch.course.leaderboard import Leaderboard

    rng = answer.rng
    board = Leaderboard(tmp_path / "board.sqlite3")
    bench, machine = quick_bench(rng)
    submission(machine, name="earlier").submit_to_leaderboard(board, bench)
    before = snapshot(board)
    good_model = FakeClassifier(machine, "candidate", 1.0, mlp_logits())

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
        "optimizations_as_text": ({"optimizations": "kv-cache"}, "optimizations"),
        "missing_event": ({"models": {}}, "no model for event MLP_SPRINT"),
        "unknown_event": (
            {"models": {"MLP_SPRINT": good_model, "BOBSLEIGH": good_model}},
            "unknown event 'BOBSLEIGH'",
        ),
        "model_crashes": ({"models": {"MLP_SPRINT": crash}}, "does not run"),
        "below_target": (
            {
                "models": {
                    "MLP_SPRINT": FakeClassifier(machine, "candidate", 1.0, np.zeros_like(mlp_logits()))
                }
            },
            "quality gate failed",
        ),
    }
    for label in rng.permutation(list(malformed)):
        fields, reason = malformed[str(label)]
        broken = submission(machine, **fields)
        found = broken.validate(bench)
        refused, reasons = refusal(lambda broken=broken: broken.submit_to_leaderboard(board, bench))
        answer.record(
            **{
                f"{label}_says_why": any(reason in p for p in found),
                f"{label}_refused": refused,
                f"{label}_refusal_says_why": any(reason in r for r in reasons),
            }
        )
    answer.record(board_unchanged_by_malformed=snapshot(board) == before)


def test_submissions_with_bad_weights_are_refused(answer, tmp_path):
    from tinytorch.course.leaderboard import Leaderboard

    rng = answer.rng
    board = Leaderboard(tmp_path / "board.sqlite3")
    bench, machine = quick_bench(rng)
    for label, path in bad_weights_files(tmp_path, rng).items():
        refused, reasons = refusal(
            lambda path=path: submission(machine, weights={"MLP_SPRINT": path}).submit_to_leaderboard(
                board, bench
            )
        )
        answer.record(
            **{
                f"weights_{label}_refused": refused,
                f"weights_{label}_named": any(path.name in r for r in reasons),
            }
        )
    answer.record(board_empty=np.int64(len(board)))


@LAWS
def test_submissions_with_bad_times_are_refused(answer, tmp_path):
    from tinytorch.course.leaderboard import Leaderboard

    rng = answer.rng
    board = Leaderboard(tmp_path / "board.sqlite3")
    bench, machine = quick_bench(rng)
    for label, time in {"nan": math.nan, "negative": -0.5, "zero": 0.0, "inf": math.inf}.items():
        timed = submission(machine)
        card = timed.compute_score(bench)
        result = timed.results["MLP_SPRINT"]
        latency = dataclasses.replace(result.candidate.latency, p50=time)
        timed.results["MLP_SPRINT"] = dataclasses.replace(
            result, candidate=dataclasses.replace(result.candidate, latency=latency)
        )
        refused, reasons = refusal(lambda timed=timed: timed.submit_to_leaderboard(board, bench))
        answer.record(
            **{
                f"time_{label}_score": np.float64(card.score),
                f"time_{label}_refused": refused,
                f"time_{label}_named": any("candidate time" in r for r in reasons),
            }
        )
    answer.record(board_empty=np.int64(len(board)))


def test_validate_reports_containers_of_the_wrong_type(answer):
    rng = answer.rng
    bench, machine = quick_bench(rng)
    wrong_types = submission(machine, models=["a model"], weights="w.npz").validate(bench)
    answer.record(
        models_not_a_mapping=any("models must map" in p for p in wrong_types),
        weights_not_a_mapping=any("weights must map" in p for p in wrong_types),
        entry_before_scoring=answer.raises(submission(machine).to_entry),
    )


def test_crash_mid_submission_leaves_the_leaderboard_consistent(answer, tmp_path):
    from tinytorch.course.leaderboard import Leaderboard

    class CrashingBoard(Leaderboard):
        def add(self, entry, _fault=None):
            def crash_now():
                raise KeyboardInterrupt("power cut between the submission row and its events")

            return super().add(entry, _fault=crash_now)

    rng = answer.rng
    board = Leaderboard(tmp_path / "board.sqlite3")
    bench, machine = quick_bench(rng)
    submission(machine, name="first").submit_to_leaderboard(board, bench)
    before = snapshot(board)
    try:
        submission(machine, name="crashed").submit_to_leaderboard(CrashingBoard(board.path), bench)
        crashed = ""
    except KeyboardInterrupt:
        crashed = "KeyboardInterrupt"
    answer.record(
        crash_raised=crashed,
        board_unchanged_by_crash=snapshot(board) == before,
        board_consistent=board.integrity_problems() == [],
    )
    submission(machine, name="third").submit_to_leaderboard(board, bench)
    answer.record(names_after=np.array(sorted(e.name for e in board.entries()), dtype=str))


@LAWS
def test_tinytorch_submit_runs_validates_and_records(answer, tmp_path):
    from tinytorch.course import leaderboard

    # the CLI's path: validate, run, score, entry
    rng = answer.rng
    bench, machine = quick_bench(rng)
    db = tmp_path / "board.sqlite3"
    args = Namespace(json=None, name="cli", author=None, save_json=None, db=str(db), quick=True)
    out = io.StringIO()
    cli_entry = leaderboard._run_submission(args, out, submission=submission(machine), benchmark=bench)
    answer.record(
        cli_name=str(cli_entry.name),
        cli_author=str(cli_entry.author),
        cli_score=np.float64(cli_entry.score),
        cli_prints_the_card=f"score {cli_entry.score:.3f}x" in out.getvalue(),
        cli_refuses=answer.raises(
            leaderboard._run_submission, args, out, submission(machine, optimizations=["teleport"]), bench
        ),
    )


# --------------------------------------------------------------------------------------------
# The optimized submission's parts (modules 16-19 applied to the zoo)
# --------------------------------------------------------------------------------------------


def test_optimized_mlp_passes_its_gate_and_validates(answer):
    from tinytorch.perf.benchmarking import MLP_SPRINT, CompetitionSubmission, TinyMLPerf, optimize_mlp

    mlp = optimize_mlp(zoo.load_model("mlp_digits"))
    outputs = np.asarray(getattr(MLP_SPRINT.run(mlp), "data", MLP_SPRINT.run(mlp)))
    entry = CompetitionSubmission(
        name="optimized", author="key", optimizations=["structured-pruning"], models={"MLP_SPRINT": mlp}
    )
    bench = TinyMLPerf(events=[MLP_SPRINT], profiler=ticking_profiler())
    answer.record(
        mlp_output_shape=np.array(outputs.shape, np.int64),
        mlp_gate=bool(MLP_SPRINT.check_quality(outputs).passed),
        validates=np.int64(len(entry.validate(bench))),
    )


def test_optimized_mlp_does_less_work(answer):
    # optimize_mlp's network against the baseline by module 15's FLOPs (no test calls both
    # optimize_mlp and workload_flops: this check decides no test, it counts as a check)
    from tinytorch.perf.benchmarking import MLP_SPRINT, optimize_mlp, workload_flops

    mlp = optimize_mlp(zoo.load_model("mlp_digits"), epochs=1)  # the work does not depend on the epochs
    answer.record(
        mlp_less_work=workload_flops(mlp, MLP_SPRINT)
        < workload_flops(MLP_SPRINT.baseline_model(), MLP_SPRINT),
    )


def test_workload_flops_counts_the_zoo_baselines_and_smaller_networks(answer):
    from tinytorch.perf.benchmarking import CNN_MARATHON, MLP_SPRINT, workload_flops
    from tinytorch.perf.profiling import FLOPCounter

    from tinytorch.conv import Conv2d, MaxPool2d
    from tinytorch.layers import Flatten, Linear, ReLU, Sequential

    class Wrapper:  # a model whose network is its ``model`` (as a generator's GPT is)
        def __init__(self, model) -> None:
            self.model = model

    rng = answer.rng
    hidden, filters = int(rng.integers(2, 17)), int(rng.integers(1, 5))
    small_mlp = Sequential(Flatten(), Linear(64, hidden, rng=rng), ReLU(), Linear(hidden, 10, rng=rng))
    small_cnn = Sequential(
        Conv2d(1, filters, 3, padding=1, rng=rng),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(filters * 16, 10, rng=rng),
    )
    mlp_base, cnn_base = MLP_SPRINT.baseline_model(), CNN_MARATHON.baseline_model()
    flops = {
        "mlp_baseline": workload_flops(mlp_base, MLP_SPRINT),
        "cnn_baseline": workload_flops(cnn_base, CNN_MARATHON),
        "small_mlp": workload_flops(small_mlp, MLP_SPRINT),
        "small_cnn": workload_flops(small_cnn, CNN_MARATHON),
        "wrapped_small_mlp": workload_flops(Wrapper(small_mlp), MLP_SPRINT),
    }
    answer.record(
        **{name: np.int64(value) for name, value in flops.items()},
        small_mlp_is_module_15s=flops["small_mlp"]
        == FLOPCounter().count_ops(small_mlp, MLP_SPRINT.inputs()).total,
        mlp_less_work=flops["small_mlp"] < flops["mlp_baseline"],
        cnn_less_work=flops["small_cnn"] < flops["cnn_baseline"],
        no_network=workload_flops(object(), MLP_SPRINT) is None,
    )


def test_cached_generator_gives_greedy_tokens_and_passes_the_gate(answer):
    from tinytorch.perf.benchmarking import (
        TRANSFORMER_DECATHLON,
        CachedGenerator,
        CompetitionSubmission,
        TinyMLPerf,
    )

    rng = answer.rng
    gpt = zoo.load_model(TRANSFORMER_DECATHLON.model)
    generator = CachedGenerator(gpt)
    texts = zoo.eval_data(TRANSFORMER_DECATHLON.model)[0]
    length = int(rng.integers(1, 33))
    start = int(rng.integers(0, texts.shape[1] - length))
    prompts = texts[rng.choice(len(texts), size=2, replace=False), start : start + length]
    new = int(rng.integers(1, 9))
    tokens = np.asarray(generator.generate(prompts, new))
    quick_gen = draw_gen_event(rng)
    entry = CompetitionSubmission(
        name="optimized", author="key", optimizations=["kv-cache"], models={quick_gen.name: generator}
    )
    bench = TinyMLPerf(events=[quick_gen], profiler=ticking_profiler())
    answer.record(
        generated_shape=np.array(tokens.shape, np.int64),
        generated_keeps_prompts=np.array_equal(tokens[:, :length], prompts),
        generated_greedy=greedy_up_to_rounding(gpt, tokens, length),
        generator_gate=bool(quick_gen.check_quality(quick_gen.run(generator)).passed),
        validates=np.int64(len(entry.validate(bench))),
    )


def test_cached_generator_does_less_work_than_recomputing(answer):
    from tinytorch.perf.benchmarking import workload_flops

    quick_gen = draw_gen_event(answer.rng)
    cached = workload_flops(cached_generator(), quick_gen)
    baseline = workload_flops(quick_gen.baseline_model(), quick_gen)
    answer.record(generator_less_work=cached < baseline, generator_fraction=np.float64(cached / baseline))


def fused_network(rng: np.random.Generator, conv: bool):
    """A drawn Sequential FusedInference can run (dyadic weights: its sums are exact) and an input."""
    from tinytorch.conv import Conv2d, MaxPool2d
    from tinytorch.layers import Flatten, Linear, ReLU, Sequential

    if conv:
        c, f, side = int(rng.integers(1, 3)), int(rng.integers(1, 4)), 2 * int(rng.integers(2, 4))
        layers = [Conv2d(c, f, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Flatten()]
        layers += [Linear(f * (side // 2) ** 2, int(rng.integers(2, 6)), rng=rng)]
        shape = (int(rng.integers(1, 4)), c, side, side)
    else:
        widths = [int(n) for n in rng.integers(2, 9, 3)]
        layers = [ReLU()] if rng.random() < 0.5 else []  # a ReLU first must not write into the input
        layers += [Linear(widths[0], widths[1], bias=bool(rng.random() < 0.75), rng=rng), ReLU()]
        layers += [Linear(widths[1], widths[2], rng=rng)]
        shape = (int(rng.integers(1, 5)), widths[0])
    model = Sequential(*layers)
    for p in model.parameters():
        p.data[...] = (rng.integers(-8, 9, p.data.shape) / 8).astype(p.data.dtype)
    return model, (rng.integers(-8, 9, shape) / 4).astype(np.float32)


def test_fused_inference_computes_the_network(answer):
    from tinytorch.perf.benchmarking import FusedInference

    from tinytorch.conv import MaxPool2d
    from tinytorch.layers import GELU, Linear, Sequential

    rng = answer.rng
    for i, conv in enumerate([False, True, False]):
        model, x = fused_network(rng, conv)
        before = x.copy()
        with no_grad():
            expected = model(Tensor(x)).data
        got = np.asarray(FusedInference(model)(x))
        answer.record(
            **{
                f"y{i}": got,
                f"y{i}_equals_the_network": np.array_equal(got, expected),
                f"x{i}_untouched": np.array_equal(x, before),
            }
        )
    answer.record(
        not_sequential=answer.raises(FusedInference, Linear(2, 2)),
        gelu=answer.raises(FusedInference, Sequential(Linear(2, 2), GELU())),
        overlapping_pool=answer.raises(FusedInference, Sequential(MaxPool2d(3, stride=1))),
    )
