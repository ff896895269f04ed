"""Benchmark for module 20 (benchmarking): the reference submission in the TinyMLPerf competition.

    python benchmarks/benchmarking.py              # 3 full competitions (about half a minute)
    python benchmarks/benchmarking.py --quick      # 1 competition, fewer runs per event
    python benchmarks/benchmarking.py --json       # the figures as JSON
    python benchmarks/benchmarking.py --reproduce 5   # reproducible? 5 quick runs in a row
    tinytorch bench benchmarking                   # the same command through the CLI

Runs whichever implementation ``TINYTORCH_IMPL`` selects (your katas by default, the reference
with ``TINYTORCH_IMPL=solutions``): ``build_submission()`` applies modules 16-19 to the zoo, and
``TinyMLPerf`` measures each optimized model against its unoptimized baseline in the same run,
interleaved, with module 15's Timer (warmup, then the median of the timed runs). The whole
competition is repeated ``--repeats`` times; each figure is the median over the repeats with
its range (min-max), so a burst of load from another process shows up as spread rather than as
a different answer. Each event's speedup is the median ratio of paired rounds with its 95 %
interval (rounds are added until it is within 5 %, or the event's budget is spent: 10 s, 3 s
in a quick run), shown as ``2.37× (2.30–2.45)``; the score's interval follows in log space.

``--reproduce N`` measures reproducibility: the submission is built once, then scored N times in a
row in quick mode; each run's score with its interval and the load average, whether every
pair of intervals overlaps, and the spread of the point scores against +-10 % of their median.
BLAS is pinned to one thread unless ``OPENBLAS_NUM_THREADS`` is set.

Module 20 needs modules 15, 16 and 18 (the timer, the fused layers, the pruning); an event whose
model needs a module that is not finished yet (the KV cache of module 19), and the unscored INT8
extra (module 17), are shown as not measured, naming the module, and the score is taken over
the events that ran. Each event's model first runs once untimed under a watch
(``tinytorch.course.leaderboard.CodeWatch``): the report says which code ran for each optimization the
submission names, as ``tinytorch submit`` records it on the leaderboard.

:func:`figures` returns everything as a dict (the overview command reuses it). The file ends with
module 20's headline claim (``CLAIMS``, ``OVERVIEW``), which ``tinytorch bench`` judges on these
figures; it stays one file past 500 lines so that the claim reads beside the figures it is judged on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/benchmarking.py` from a clone, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import pin_blas_threads, steady_allocator  # noqa: E402

pin_blas_threads()  # before numpy loads BLAS: one thread, comparable figures
steady_allocator()  # every call of a model allocates alike (see benchmarks.steady_allocator)

from benchmarks.claims import FAILS, HOLDS, MISSING, Benchmark, Claim, Finding, as_ratio, band  # noqa: E402
from benchmarks.common import load_average, markdown_table, unfinished_module  # noqa: E402


def _state_bytes(model: Any) -> int | None:
    """Bytes of a model's weights (its tinytorch network's state_dict), None without one."""
    from tinytorch.perf.benchmarking import underlying_module

    module = underlying_module(model)
    return None if module is None else sum(a.nbytes for a in module.state_dict().values())


def not_measured_because(error: BaseException) -> str | None:
    """Why a part of the benchmark is not measured when it raised ``error``: "needs module 19
    (caching), not finished yet: ..." when the error shows another kata module than module 20
    unfinished (:func:`benchmarks.common.unfinished_module`); None otherwise (module 20's own
    error, or a crash: the caller lets it through)."""
    module = unfinished_module(error)
    if module is None or module.name == "benchmarking":
        return None
    return f"needs module {module.number} ({module.name}), not finished yet: {type(error).__name__}: {error}"


def figures(repeats: int = 3, quick: bool = False) -> dict[str, Any]:
    """Run the competition ``repeats`` times with the submission of ``build_submission()`` (the
    tree ``TINYTORCH_IMPL`` chooses); return the figures.

    ``{"impl", "score": {"median", "min", "max", "runs"}, "optimizations", "observed" (what ran
    per optimization), "served" (the tree of each kata module), "not_measured": {event: why},
    "events": {name:
    {"speedup": {...}, "baseline_ms", "candidate_ms", "quality_metric", "baseline_quality",
    "candidate_quality", "target", "passed", "baseline_mflops", "candidate_mflops",
    "baseline_weight_bytes", "candidate_weight_bytes", "baseline_train_step_ms",
    "candidate_train_step_ms", "baseline_peak_bytes", "candidate_peak_bytes"}}, "int8",
    "int8_not_measured" (why, or None), "environment", "seconds"}``. Times are medians in
    milliseconds; the score is over the events measured.
    """
    import dataclasses

    from tinytorch.perf.benchmarking import TinyMLPerf, build_submission

    from tinytorch.course import leaderboard
    from tinytorch.perf import impl_for

    start = time.perf_counter()
    with leaderboard.CodeWatch() as build:
        submission = build_submission()
    warmup, timed = (1, 5) if quick else (None, None)
    budget = {"budget": leaderboard.QUICK_BUDGET} if quick else {}
    bench = TinyMLPerf(warmup=warmup, runs=timed, **budget)
    not_measured: dict[str, str] = {}
    watches: dict[str, leaderboard.CodeWatch] = {}
    first_error: BaseException | None = None
    for name in bench.events:  # each model once, untimed: what runs, and whether it can
        if name not in submission.models:
            continue  # compute_score says what is missing
        try:
            with leaderboard.CodeWatch() as watch:
                bench.event(name).run(submission.models[name])
            watches[name] = watch
        except (NotImplementedError, ImportError) as error:
            why = not_measured_because(error)
            if why is None:
                raise
            not_measured[name] = why
            first_error = first_error or error
    if not_measured:  # score the events that ran: the same submission, fewer models
        if len(not_measured) == len(bench.events):
            raise first_error  # nothing to measure: main says which module is missing
        measured = [event for name, event in bench.events.items() if name not in not_measured]
        bench = TinyMLPerf(measured, warmup=warmup, runs=timed, **budget)
        submission = dataclasses.replace(
            submission,
            models={n: m for n, m in submission.models.items() if n not in not_measured},
            results=None,
            scorecard=None,
        )
    runs = []
    for _ in range(1 if quick else repeats):
        card = submission.compute_score(bench)
        runs.append((card, submission.results))

    def spread(values: list[float]) -> dict[str, Any]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}

    events = {}
    for name in bench.events:
        results = [r[name] for _, r in runs]
        last = results[-1]
        events[name] = {
            "speedup": spread([r.speedup for r in results]),
            "interval": _interval_figures(last),
            "baseline_ms": statistics.median(r.baseline.latency.p50 * 1e3 for r in results),
            "candidate_ms": statistics.median(r.candidate.latency.p50 * 1e3 for r in results),
            "quality_metric": last.candidate.quality.metric,
            "baseline_quality": last.baseline.quality.value,
            "candidate_quality": last.candidate.quality.value,
            "target": last.candidate.quality.target,
            "passed": all(r.candidate.quality.passed for r in results),
            "baseline_mflops": None if last.baseline.flops is None else last.baseline.flops / 1e6,
            "candidate_mflops": None if last.candidate.flops is None else last.candidate.flops / 1e6,
            "baseline_weight_bytes": _state_bytes(bench.baseline(name)),
            "candidate_weight_bytes": _state_bytes(submission.models[name]),
            "baseline_train_step_ms": None
            if last.baseline.train_step is None
            else last.baseline.train_step.p50 * 1e3,
            "candidate_train_step_ms": (
                None if last.candidate.train_step is None else last.candidate.train_step.p50 * 1e3
            ),
            "baseline_peak_bytes": last.baseline.peak_memory_bytes,
            "candidate_peak_bytes": last.candidate.peak_memory_bytes,
        }
    int8_not_measured = None
    try:
        int8 = int8_figures(runs=3 if quick else 7)
    except (NotImplementedError, ImportError) as error:
        why = not_measured_because(error)
        if why is None:
            raise
        int8, int8_not_measured = None, why
    return {
        "impl": impl_for("benchmarking"),
        "score": spread([card.score for card, _ in runs]),
        "score_interval": list(runs[-1][0].bounds),
        "optimizations": list(submission.optimizations),
        "observed": leaderboard.observe(submission.optimizations, watches, build),
        "served": leaderboard.served_modules(),
        "not_measured": not_measured,
        "events": events,
        "int8": int8,
        "int8_not_measured": int8_not_measured,
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "load_average_1min": load_average(),
        },
        "seconds": time.perf_counter() - start,
    }


def _interval_figures(result: Any) -> dict[str, Any] | None:
    """An event result's interval as figures: low, high, rounds and the loop count."""
    interval = getattr(result, "interval", None)
    if interval is None:
        return None
    loops = result.baseline.latency.loops
    return {"low": interval.low, "high": interval.high, "rounds": interval.rounds, "loops": loops}


def repeated_runs(runs: int = 5) -> dict[str, Any]:
    """Reproducibility: the submission of ``build_submission()`` built once, then scored ``runs``
    times in a row in quick mode (warmup 1, at least 5 rounds, budget ``QUICK_BUDGET`` per event).

    ``{"runs": [{"score", "low", "high", "events": {name: [speedup, low, high, rounds]},
    "load_average_1min"}], "overlap": every pair of score intervals overlaps (the highest low <=
    the lowest high), "median", "spread": max |score / median - 1|, "within_10_percent",
    "environment", "seconds"}``.
    """
    from tinytorch.perf.benchmarking import TinyMLPerf, build_submission

    from tinytorch.course import leaderboard

    start = time.perf_counter()
    submission = build_submission()
    bench = TinyMLPerf(warmup=1, runs=5, budget=leaderboard.QUICK_BUDGET)
    measured = []
    for _ in range(runs):
        card = submission.compute_score(bench)
        low, high = card.bounds
        measured.append(
            {
                "score": card.score,
                "low": low,
                "high": high,
                "events": {
                    name: [r.speedup, r.interval.low, r.interval.high, r.interval.rounds]
                    for name, r in submission.results.items()
                },
                "load_average_1min": load_average(),
            }
        )
    scores = [m["score"] for m in measured]
    median = statistics.median(scores)
    spread = max(abs(s / median - 1) for s in scores)
    return {
        "runs": measured,
        "overlap": max(m["low"] for m in measured) <= min(m["high"] for m in measured),
        "median": median,
        "spread": spread,
        "within_10_percent": spread <= 0.10,
        "environment": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
        "seconds": time.perf_counter() - start,
    }


def repeated_report(fig: dict[str, Any]) -> str:
    """:func:`repeated_runs` as Markdown: one row per run, then the two checks."""
    from tinytorch.course.leaderboard import format_interval

    names = list(fig["runs"][0]["events"])
    rows = [
        [
            str(i),
            format_interval(run["score"], run["low"], run["high"]),
            *(format_interval(*run["events"][n][:3]) + f" [{run['events'][n][3]}]" for n in names),
            "n/a" if run["load_average_1min"] is None else f"{run['load_average_1min']:.2f}",
        ]
        for i, run in enumerate(fig["runs"], 1)
    ]
    headers = ["run", "score (95 % interval)", *(f"{n} [rounds]" for n in names), "load (1 min)"]
    n = len(fig["runs"])
    return "\n".join(
        [
            f"# Module 20: {n} quick runs in a row of the same submission ({fig['seconds']:.0f} s; "
            f"{fig['environment']})",
            "",
            markdown_table(headers, rows),
            "",
            f"all {n} score intervals overlap: {'yes' if fig['overlap'] else 'NO'}",
            f"point scores: median {fig['median']:.3f}x, largest deviation {fig['spread']:.1%} "
            f"({'within' if fig['within_10_percent'] else 'OUTSIDE'} +-10 %)",
        ]
    )


def int8_figures(runs: int = 7) -> dict[str, Any]:
    """Module 17's INT8 on the digits events, unscored: weights 4x smaller, but slower in numpy
    (integer products have no BLAS kernel). Module 17 not built (``ImportError``) or not
    finished (``NotImplementedError``) raises: :func:`figures` shows the extra as not measured.

    Per model: fp32 and int8 weight bytes (module 17's ``weight_bytes``), test accuracy of both,
    and the speedup of the quantized model over the fp32 one, interleaved (below 1: slower).
    """
    from tinytorch.perf.benchmarking import CNN_MARATHON, MLP_SPRINT, compute_speedup, measure_interleaved
    from tinytorch.perf.profiling import Timer
    from tinytorch.perf.quantization import quantize_model, weight_bytes

    from tinytorch import zoo
    from tinytorch.data import load_digits

    calibration = load_digits("train")[0][:256]
    result = {}
    for event in (MLP_SPRINT, CNN_MARATHON):
        fp32 = zoo.load_model(event.model)
        int8 = quantize_model(fp32, calibration)
        timings = measure_interleaved(
            {"fp32": lambda m=fp32, e=event: e.run(m), "int8": lambda m=int8, e=event: e.run(m)},
            warmup=1,
            runs=runs,
            timer=Timer(),
        )
        result[event.name] = {
            "fp32_weight_bytes": weight_bytes(fp32),
            "int8_weight_bytes": weight_bytes(int8),
            "fp32_accuracy": event.check_quality(event.run(fp32)).value,
            "int8_accuracy": event.check_quality(event.run(int8)).value,
            "int8_speedup": compute_speedup(timings["fp32"], timings["int8"]),
        }
    return result


def _speedup_cell(e: dict[str, Any]) -> str:
    """An event's speedup with the last run's interval and rounds, and the range over runs."""
    from tinytorch.course.leaderboard import format_interval

    s, interval = e["speedup"], e.get("interval")
    if interval is None:
        text = format_interval(s["median"])
    else:
        text = format_interval(s["runs"][-1], interval["low"], interval["high"])
        text += f", {interval['rounds']} rounds"
    return text + (f"; runs {s['min']:.2f}-{s['max']:.2f}" if len(s["runs"]) > 1 else "")


def _score_text(fig: dict[str, Any]) -> str:
    from tinytorch.course.leaderboard import format_interval

    score = fig["score"]
    bounds = fig.get("score_interval") or (None, None)
    text = format_interval(score["runs"][-1], *bounds)
    if len(score["runs"]) > 1:
        text += f" in the last run; median of {len(score['runs'])} runs {score['median']:.2f}x "
        text += f"(range {score['min']:.2f}-{score['max']:.2f})"
    return text


def report(fig: dict[str, Any]) -> str:
    """The figures as Markdown: one row per event (an event not measured says so), the overall
    score, what ran for each optimization, and why any part was not measured."""
    from tinytorch.course import leaderboard

    not_measured = fig.get("not_measured", {})
    rows = []
    for name, e in fig["events"].items():
        flops = (
            f"{e['baseline_mflops']:.1f} -> {e['candidate_mflops']:.1f}"
            if e["baseline_mflops"] is not None and e["candidate_mflops"] is not None
            else "n/a"
        )
        rows.append(
            [
                name,
                f"{e['baseline_ms']:.3f}",
                f"{e['candidate_ms']:.3f}",
                _speedup_cell(e),
                f"{e['baseline_quality']:.4f} -> {e['candidate_quality']:.4f} (>= {e['target']:.4f})",
                "yes" if e["passed"] else "NO",
                flops,
            ]
        )
    rows += [[name, "-", "-", "not measured", "-", "-", "-"] for name in not_measured]
    score = fig["score"]
    counted, total = len(fig["events"]), len(rows)
    over = f" over {counted} of {total} events" if total > counted else ""
    int8 = fig.get("int8") or {}
    int8_missing = (
        [f"not measured: INT8 (module 17, unscored): {fig['int8_not_measured']}"]
        if fig.get("int8_not_measured")
        else []
    )
    train_lines = [
        f"training step (unscored, SGD on 32 images) {name}: {e['baseline_train_step_ms']:.2f} ms -> "
        f"{e['candidate_train_step_ms']:.2f} ms"
        for name, e in fig["events"].items()
        if e.get("baseline_train_step_ms") is not None and e.get("candidate_train_step_ms") is not None
    ]
    int8_lines = [
        f"INT8 (module 17, unscored) {name}: weights {q['fp32_weight_bytes'] / 1024:.1f} -> "
        f"{q['int8_weight_bytes'] / 1024:.1f} KiB, accuracy {q['fp32_accuracy']:.4f} -> "
        f"{q['int8_accuracy']:.4f}, "
        f"speed {q['int8_speedup']:.2f}x of fp32"
        for name, q in int8.items()
    ]
    headers = ["event", "baseline ms", "optimized ms", "speedup (95 % interval)", "quality", "gate", "MFLOP"]
    return "\n".join(
        [
            f"# Module 20 benchmark: TinyMLPerf, the submission of build_submission() "
            f"(TINYTORCH_IMPL -> {fig['impl']})",
            f"{len(score['runs'])} competition(s), {fig['seconds']:.1f} s; environment: {fig['environment']}",
            "optimizations (what ran): "
            + leaderboard.optimizations_text(fig["optimizations"], fig.get("observed", {})),
            f"code: {leaderboard.code_text(fig.get('served', {}))}",
            "",
            markdown_table(headers, rows),
            "",
            f"overall score (geometric mean of the speedups{over}): {_score_text(fig)}",
            "quality: accuracy on the 359 test digits, or the fraction of generated tokens identical to the "
            "baseline's greedy output",
            *train_lines,
            *int8_lines,
            *(f"not measured: {name}: {why}" for name, why in not_measured.items()),
            *int8_missing,
        ]
    )


# --------------------------------------------------------------------------- the overview's claims

PROMISE = "cumulative (> 1x, every gate held)"  # the course's promise: modules 16-19 add up


def overview_figures(quick: bool) -> dict[str, Any]:
    """The figures the overview judges (``tinytorch bench``)."""
    return figures(quick=quick)


def _score(claim: Claim, fig: dict[str, Any], quick: bool) -> list[Finding]:
    """The reference submission's score (geometric mean of the event speedups); not measured
    when an event could not run (a module it needs is unfinished): the score of the events that
    ran is shown, with the reason."""
    score = fig["score"]
    events = fig["events"]
    missing = fig.get("not_measured", {})
    failed = [name for name, e in events.items() if not e["passed"]]
    per_event = ", ".join(
        f"{name.split('_')[0]} {as_ratio(e['speedup']['median'])}" for name, e in events.items()
    )
    holds = score["median"] > 1 and not failed
    reason = f"optimizations: {', '.join(fig.get('optimizations', []))}"
    if missing:
        reason = (
            f"score over {len(events)} of {len(events) + len(missing)} events; not measured: "
            + "; ".join(f"{part}: {why}" for part, why in missing.items())
        )
    elif failed:
        reason = f"quality gate missed: {', '.join(failed)}; " + reason
    elif score["median"] <= 1:
        reason = "the submission is not faster than the baseline; " + reason
    runs = len(score.get("runs", [])) or 1
    spread = band(score["min"], score["max"]) if runs > 1 else ""
    return [
        claim.found(
            "reference submission score (geomean)",
            f"{as_ratio(score['median'])} ({per_event})",
            MISSING if missing else HOLDS if holds else FAILS,
            reason
            + (f"; {runs} competitions" if runs > 1 else "; one competition (the full mode runs three)"),
            score["median"],
            score["min"],
            score["max"],
            spread=spread,
        )
    ]


CLAIMS = (
    Claim(
        20,
        "reference submission score (geomean)",
        "the geometric mean of the event speedups of build_submission() in the TinyMLPerf competition",
        PROMISE,
        _score,
    ),
)
OVERVIEW = Benchmark(20, "benchmarking", overview_figures, CLAIMS, PROMISE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one competition with fewer runs per event")
    parser.add_argument("--repeats", type=int, default=3, help="competitions run (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--reproduce",
        type=int,
        default=None,
        metavar="N",
        help="reproducibility: score the submission N times in a row in quick mode; print each score "
        "with its interval and the load, whether the intervals overlap and the spread against +-10 %%",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.reproduce is not None and args.reproduce < 2:
        parser.error("--reproduce must be >= 2 (runs to compare)")
    try:
        if args.reproduce is not None:
            again = repeated_runs(args.reproduce)
            print(json.dumps(again, indent=2) if args.json else repeated_report(again))
            return 0 if again["overlap"] and again["within_10_percent"] else 1
        fig = figures(repeats=args.repeats, quick=args.quick)
    except (NotImplementedError, ImportError) as err:  # a kata the submission needs is not finished
        module = unfinished_module(err)
        if module is None and not isinstance(err, NotImplementedError):
            raise  # an import that is no kata module's: a crash, with its traceback
        if module is None or module.name == "benchmarking":
            print(f"the competition needs your module 20 code first: {err}")
        else:
            print(
                f"the competition needs module {module.number} ({module.name}) first, which module 20 "
                f"uses: {type(err).__name__}: {err}"
            )
        return 1
    print(json.dumps(fig, indent=2) if args.json else report(fig))
    held = all(e["passed"] and e["speedup"]["median"] > 1 for e in fig["events"].values())
    return 0 if held and not fig["not_measured"] else 1


if __name__ == "__main__":
    sys.exit(main())
