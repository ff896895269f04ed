"""Benchmark for module 18 (compression): what pruning costs in accuracy and what it buys in speed.

    python benchmarks/compression.py            # the full run (about 30 s on 2 cores)
    python benchmarks/compression.py --quick    # fewer sparsities and repeats, about 10 s
    tinytorch bench compression                 # the same command through the CLI

Runs whichever implementation ``TINYTORCH_IMPL`` selects (your katas by default, the reference
with ``TINYTORCH_IMPL=solutions``), side by side in one run:

1. accuracy vs sparsity (global magnitude pruning of the zoo MLP and CNN, 0 to 95 %), right
   after pruning and after the short fine-tune with the masks held (``fine_tune``'s defaults);
2. dense vs CSR latency of one (512, 512) weight times a batch of 64 across sparsities, the
   memory of each, and the break-even sparsity where the CSR kernel starts to win;
3. the zoo CNN with 50 % of its filters removed (``prune_filters``): parameters, latency of a
   forward pass over the 359 test images, and accuracy before and after a fine-tune; the same
   for the MLP with 50 % of its hidden units removed (``prune_neurons``);

``measure()`` returns every figure as a dict (for an overview command); ``report()`` prints it.
Timing: ``time.perf_counter``, one BLAS thread (``OPENBLAS_NUM_THREADS=1`` unless set), the
variants of one comparison interleaved round by round so that load from other processes hits
them alike; medians, with the interquartile range as the spread. ``--plot FILE`` draws the
accuracy and latency curves when matplotlib is installed.

The file ends with module 18's headline claims (``CLAIMS``, ``OVERVIEW``), which ``tinytorch
bench`` judges on these figures; it stays one file past 500 lines so that each claim reads
beside the figures it is judged on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/compression.py` from a clone, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import pin_blas_threads  # noqa: E402

pin_blas_threads()  # before numpy loads: one BLAS thread

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.claims import (  # noqa: E402
    FAILS,
    HOLDS,
    INFO,
    Benchmark,
    Claim,
    Finding,
    as_points,
    as_ratio,
    band,
    ratio_range,
)
from benchmarks.common import (  # noqa: E402
    blas_description,
    load_average,
    machine_description,
    markdown_table,
)

BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def load_description() -> str:
    """The 1-minute load average: other processes on the cores distort every timing."""
    load = load_average()
    if load is None:  # not available on every platform
        return "load average: unknown"
    busy = " (busy: rerun on a quiet machine)" if load > 0.5 * (os.cpu_count() or 1) else ""
    return f"load average (1 min): {load:.2f} on {os.cpu_count()} cores{busy}"


BUDGET_SECONDS = 1.0  # per comparison: slow kernels get fewer rounds (at least 3)
SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
QUICK_SPARSITIES = (0.0, 0.7, 0.9)
CSR_SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
QUICK_CSR_SPARSITIES = (0.0, 0.7, 0.9, 0.98, 0.99, 0.999)
# (weight_t shape (out, in), batch): a layer of the size of the zoo's, one input vector and 64 of
# them; and a large weight times one vector, where the dense product is bound by memory traffic
CSR_CASES = (((512, 512), 1), ((512, 512), 64), ((2048, 2048), 1))


def timings(
    fns: dict[str, Callable[[], object]], repeats: int, budget: float = BUDGET_SECONDS
) -> dict[str, dict[str, float]]:
    """Median and interquartile range (seconds) of each ``fn()``, measured side by side.

    One warm-up call each, then ``repeats`` rounds (fewer, but at least 3, when one round would
    take the whole run past ``budget`` seconds); every round times each function once, in turn
    (interleaved), so a burst of load from other processes hits all of them alike.
    """
    round_seconds = 0.0
    for fn in fns.values():
        start = time.perf_counter()
        fn()
        round_seconds += time.perf_counter() - start
    repeats = max(3, min(repeats, int(budget / max(round_seconds, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    out = {}
    for name, s in samples.items():
        q25, q50, q75 = np.percentile(s, [25, 50, 75])
        out[name] = {"median": float(q50), "q25": float(q25), "q75": float(q75)}
    return out


def _impl():
    from tinytorch.perf import impl_for

    return impl_for("compression")


def accuracy_vs_sparsity(sparsities: tuple[float, ...]) -> list[dict[str, Any]]:
    """Test accuracy of the zoo digits models after global magnitude pruning, with and without fine-tune."""
    from tinytorch.perf.compression import fine_tune, prune_model, sparsity_report

    from tinytorch import zoo
    from tinytorch.data import load_digits

    x, y = load_digits("train")
    rows = []
    for name in ("mlp_digits", "cnn_digits"):
        baseline = zoo.evaluate(name, zoo.load_model(name))
        for s in sparsities:
            model = zoo.load_model(name)
            masks = prune_model(model, s, scope="global")
            pruned = zoo.evaluate(name, model)
            start = time.perf_counter()
            fine_tune(model, masks, x, y)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "model": name,
                    "sparsity": s,
                    "achieved": sparsity_report(model).overall,
                    "baseline": baseline,
                    "pruned": pruned,
                    "fine_tuned": zoo.evaluate(name, model),
                    "fine_tune_seconds": seconds,
                }
            )
    return rows


def csr_vs_dense(sparsities: tuple[float, ...], repeats: int) -> list[dict[str, Any]]:
    """Latency and bytes of a float32 weight (out, in) times x (in, batch), dense (BLAS) vs CSR,
    for each of ``CSR_CASES``; with the break-even sparsity of each."""
    rng = np.random.default_rng(0)
    cases = []
    for shape, batch in CSR_CASES:
        weight = rng.standard_normal(shape).astype(np.float32)
        x = rng.standard_normal((shape[1], batch)).astype(np.float32)
        rows = _csr_rows(weight, x, sparsities, repeats)
        cases.append({"shape": shape, "batch": batch, "rows": rows, "break_even": break_even(rows)})
    return cases


def _csr_rows(
    weight: np.ndarray, x: np.ndarray, sparsities: tuple[float, ...], repeats: int
) -> list[dict[str, Any]]:
    """One row per sparsity: the pruned weight as dense (BLAS) and as CSR, timed side by side."""
    from tinytorch.perf.acceleration import matmul_numpy
    from tinytorch.perf.compression import CSRMatrix, csr_matmul, magnitude_prune

    rows = []
    for s in sparsities:
        dense, _ = magnitude_prune(weight, s)
        csr = CSRMatrix.from_dense(dense)
        exact = dense.astype(np.float64) @ x
        got = csr_matmul(csr, x)
        if not np.allclose(got, exact, rtol=1e-4, atol=1e-3):
            raise AssertionError(f"csr_matmul is wrong at sparsity {s}: fix it before timing it")
        t = timings(
            {"dense": lambda d=dense: matmul_numpy(d, x), "csr": lambda c=csr: csr_matmul(c, x)}, repeats
        )
        rows.append(
            {
                "sparsity": s,
                "nnz": csr.nnz,
                "dense_ms": t["dense"]["median"] * 1e3,
                "dense_iqr_ms": (t["dense"]["q75"] - t["dense"]["q25"]) * 1e3,
                "csr_ms": t["csr"]["median"] * 1e3,
                "csr_iqr_ms": (t["csr"]["q75"] - t["csr"]["q25"]) * 1e3,
                "speedup": t["dense"]["median"] / t["csr"]["median"],
                "dense_bytes": dense.nbytes,
                "csr_bytes": csr.nbytes,
            }
        )
    return rows


def break_even(rows: list[dict[str, Any]]) -> float | None:
    """The sparsity where CSR starts to beat dense: linear interpolation of log(speedup) between
    the last sparsity where it loses and the next one; None if it never wins in the range."""
    for before, after in zip(rows, rows[1:], strict=False):
        if before["speedup"] < 1.0 <= after["speedup"]:
            a, b = np.log(before["speedup"]), np.log(after["speedup"])
            return float(before["sparsity"] + (after["sparsity"] - before["sparsity"]) * (0 - a) / (b - a))
    if rows and rows[0]["speedup"] >= 1.0:
        return float(rows[0]["sparsity"])
    return None


def structured_speedup(repeats: int) -> list[dict[str, Any]]:
    """The zoo CNN with 50 % of its filters removed, and the MLP with 50 % of its hidden units."""
    from tinytorch.perf.compression import fine_tune, prune_filters, prune_neurons

    from tinytorch import zoo
    from tinytorch.data import load_digits
    from tinytorch.tensor import Tensor, no_grad

    x_train, y_train = load_digits("train")
    rows = []
    cases = (("cnn_digits", prune_filters, "filters"), ("mlp_digits", prune_neurons, "units"))
    for name, prune, what in cases:
        model = zoo.load_model(name)
        small = prune(model, 0.5)
        x, _ = zoo.eval_data(name)
        xt = Tensor(x)

        def forward(m=model, xt=xt):
            with no_grad():
                return m(xt)

        def forward_small(m=small, xt=xt):
            with no_grad():
                return m(xt)

        t = timings({"original": forward, "pruned": forward_small}, repeats)
        pruned_accuracy = zoo.evaluate(name, small)
        fine_tune(small, {}, x_train, y_train)
        rows.append(
            {
                "model": name,
                "removed": f"50 % of the {what}",
                "parameters": model.num_parameters(),
                "parameters_pruned": small.num_parameters(),
                "original_ms": t["original"]["median"] * 1e3,
                "original_iqr_ms": (t["original"]["q75"] - t["original"]["q25"]) * 1e3,
                "pruned_ms": t["pruned"]["median"] * 1e3,
                "pruned_iqr_ms": (t["pruned"]["q75"] - t["pruned"]["q25"]) * 1e3,
                "speedup": t["original"]["median"] / t["pruned"]["median"],
                "accuracy": zoo.evaluate(name, model),
                "accuracy_pruned": pruned_accuracy,
                "accuracy_fine_tuned": zoo.evaluate(name, small),
                "batch": len(x),
            }
        )
    return rows


def measure(quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Every figure of the benchmark as a dict (JSON-serialisable)."""
    repeats = repeats or (5 if quick else 15)
    start = time.perf_counter()
    figures = {
        "module": "compression",
        "impl": _impl(),
        "machine": machine_description(),
        "blas": blas_description(BLAS_ENV),
        "load": load_description(),
        "repeats": repeats,
        "accuracy": accuracy_vs_sparsity(QUICK_SPARSITIES if quick else SPARSITIES),
        "csr": csr_vs_dense(QUICK_CSR_SPARSITIES if quick else CSR_SPARSITIES, repeats),
        "structured": structured_speedup(repeats),
    }
    figures["seconds"] = time.perf_counter() - start
    return figures


def _ms(median_ms: float, iqr_ms: float, digits: int = 3) -> str:
    return f"{median_ms:.{digits}f} ± {iqr_ms / 2:.{digits}f}"


def _csr_report(result: dict[str, Any]) -> list[str]:
    shape, batch = result["shape"], result["batch"]
    rows = [
        [
            f"{r['sparsity']:.1%}",
            f"{r['nnz']:,}",
            _ms(r["dense_ms"], r["dense_iqr_ms"]),
            _ms(r["csr_ms"], r["csr_iqr_ms"]),
            f"{r['speedup']:.2f}x",
            f"{r['dense_bytes'] / 1024:,.0f}",
            f"{r['csr_bytes'] / 1024:,.0f}",
        ]
        for r in result["rows"]
    ]
    be = result["break_even"]
    return [
        f"## Dense (BLAS) vs CSR: weight ({shape[0]}, {shape[1]}) float32 @ x ({shape[1]}, {batch})",
        "",
        markdown_table(
            ["sparsity", "nnz", "dense (ms)", "CSR (ms)", "CSR speedup", "dense KB", "CSR KB"], rows
        ),
        "",
        f"break-even (batch {batch}): CSR is faster from about {be:.1%} sparsity"
        if be is not None
        else f"break-even (batch {batch}): CSR never beats dense BLAS in this range",
        "",
    ]


def report(figures: dict[str, Any]) -> str:
    """The figures as the markdown tables the guide quotes."""
    out = [
        f"# Module 18 benchmark: compression (TINYTORCH_IMPL -> {figures['impl']})",
        f"machine: {figures['machine']}",
        figures["blas"],
        figures["load"],
        f"times: median ± half the interquartile range of {figures['repeats']} interleaved runs after a "
        f"warm-up (3 or more for slow ones: about {BUDGET_SECONDS:g} s per comparison)",
        "",
        "## Accuracy vs sparsity (global magnitude pruning; fine-tune: 3 epochs, Adam lr 3e-3, masks held)",
        "",
    ]
    rows = [
        [
            r["model"],
            f"{r['sparsity']:.0%}",
            f"{r['achieved']:.2%}",
            f"{r['pruned']:.2%}",
            f"{r['fine_tuned']:.2%}",
            f"{100 * (r['fine_tuned'] - r['baseline']):+.2f}",
            f"{r['fine_tune_seconds']:.2f}",
        ]
        for r in figures["accuracy"]
    ]
    headers = ["model", "sparsity", "achieved", "pruned", "fine-tuned", "vs dense (pp)", "fine-tune (s)"]
    out += [markdown_table(headers, rows), ""]
    for result in figures["csr"]:
        out += _csr_report(result)
    rows = [
        [
            r["model"],
            r["removed"],
            f"{r['parameters']:,} -> {r['parameters_pruned']:,}",
            _ms(r["original_ms"], r["original_iqr_ms"], 2),
            _ms(r["pruned_ms"], r["pruned_iqr_ms"], 2),
            f"{r['speedup']:.2f}x",
            f"{r['accuracy']:.2%}",
            f"{r['accuracy_pruned']:.2%}",
            f"{r['accuracy_fine_tuned']:.2%}",
        ]
        for r in figures["structured"]
    ]
    headers = ["model", "removed", "parameters", "forward (ms)", "pruned (ms)", "speedup", "accuracy"]
    out += [
        "## Structured pruning: a genuinely smaller model",
        "",
        markdown_table([*headers, "pruned", "fine-tuned"], rows),
        f"(forward: all {figures['structured'][0]['batch']} test images in one batch, no grad)",
        "",
        f"total: {figures['seconds']:.0f} s",
    ]
    return "\n".join(out)


def plot(figures: dict[str, Any], path: str) -> str:
    """Accuracy vs sparsity and CSR/dense latency, to ``path`` (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in ("mlp_digits", "cnn_digits"):
        rows = [r for r in figures["accuracy"] if r["model"] == name]
        s = [100 * r["sparsity"] for r in rows]
        left.plot(s, [100 * r["pruned"] for r in rows], "o--", label=f"{name}, pruned")
        left.plot(s, [100 * r["fine_tuned"] for r in rows], "o-", label=f"{name}, fine-tuned")
    left.set(xlabel="sparsity (%)", ylabel="test accuracy (%)", title="accuracy vs sparsity")
    left.legend()
    for result in figures["csr"]:
        rows, label = result["rows"], f"{result['shape'][0]}x{result['shape'][1]} @ batch {result['batch']}"
        s = [100 * r["sparsity"] for r in rows]
        right.plot(s, [r["csr_ms"] / r["dense_ms"] for r in rows], "o-", label=label)
    right.axhline(1.0, color="grey", linewidth=0.8)
    right.set(xlabel="sparsity (%)", ylabel="CSR time / dense time", yscale="log", title="when CSR pays")
    right.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------- the overview's claims

PROMISE = "< 2 % drop"  # the course's promise: accuracy at 70 % sparsity
SPARSITY, MAX_DROP_PP = 0.7, 2.0


def overview_figures(quick: bool) -> dict[str, Any]:
    """The figures the overview judges (``tinytorch bench``)."""
    return measure(quick=quick)


def _at_seventy(claim: Claim, fig: dict[str, Any], quick: bool) -> list[Finding]:
    """The fine-tuned accuracy at 70 % sparsity against the dense model, for each zoo model."""
    out = []
    for name in dict.fromkeys(r["model"] for r in fig["accuracy"]):
        short = name.replace("_digits", "").upper()
        label = f"accuracy at 70 % sparsity, {short}"
        rows = [r for r in fig["accuracy"] if r["model"] == name and abs(r["sparsity"] - SPARSITY) < 1e-9]
        if not rows:
            out.append(claim.missing(label, "70 % not in the run"))
            continue
        r = rows[0]
        drop = (r["baseline"] - r["fine_tuned"]) * 100
        holds = drop < MAX_DROP_PP
        out.append(
            claim.found(
                label,
                f"{as_points(-drop)} ({r['baseline']:.2%} -> {r['fine_tuned']:.2%})",
                HOLDS if holds else FAILS,
                ("" if holds else f"fine-tuned, it loses {drop:.2f} points; ")
                + f"after a short fine-tune with the masks held; without it {r['pruned']:.2%} "
                f"({(r['pruned'] - r['baseline']) * 100:+.1f} pp)",
                -drop,
                unit="pp",
            )
        )
    return out


def _structured(claim: Claim, fig: dict[str, Any], quick: bool) -> list[Finding]:
    """The speedup of structured pruning (50 % of the filters / units) against its spread."""
    out = []
    for r in fig["structured"]:
        short = r["model"].replace("_digits", "").upper()
        low, high = ratio_range(
            (r["original_ms"] - r["original_iqr_ms"] / 2, r["original_ms"] + r["original_iqr_ms"] / 2),
            (max(r["pruned_ms"] - r["pruned_iqr_ms"] / 2, 1e-12), r["pruned_ms"] + r["pruned_iqr_ms"] / 2),
        )
        speed = r["speedup"]
        if speed > 1 and low > 1:
            verdict, note = HOLDS, ""
        elif speed > 1:
            verdict, note = HOLDS, "within the noise (the spreads overlap); "
        else:
            verdict, note = FAILS, "the pruned model is not faster here; "
        out.append(
            claim.found(
                f"structured pruning speedup, {short}",
                f"{as_ratio(speed)} ({r['removed']})",
                verdict,
                note + f"parameters {r['parameters']:,} -> {r['parameters_pruned']:,}; accuracy "
                f"{r['accuracy']:.2%} -> {r['accuracy_fine_tuned']:.2%} fine-tuned",
                speed,
                low,
                high,
                spread=band(low, high),
            )
        )
    return out


def _csr(claim: Claim, fig: dict[str, Any], quick: bool) -> list[Finding]:
    """Where CSR breaks even with dense BLAS, for each shape and batch."""
    parts = []
    for case in fig["csr"]:
        shape, be = case["shape"], case["break_even"]
        where = f"{shape[0]}x{shape[1]}, batch {case['batch']}"
        parts.append(f"{be:.1%} ({where})" if be is not None else f"never ({where})")
    first = fig["csr"][0]["break_even"] if fig["csr"] else None
    reason = "a CSR kernel in numpy beats dense BLAS only at very high sparsity"
    return [claim.found(claim.name, "; ".join(parts), INFO, reason, first, unit="sparsity")]


CLAIMS = (
    Claim(
        18, "accuracy at 70 % sparsity", "fine-tuned accuracy against the dense model", PROMISE, _at_seventy
    ),
    Claim(
        18,
        "structured pruning speedup",
        "the model with 50 % of its filters / units removed against the original",
        "a smaller model runs faster",
        _structured,
    ),
    Claim(
        18,
        "CSR break-even sparsity vs BLAS",
        "the sparsity above which the CSR product beats dense BLAS",
        "no number (sparse pays only when very sparse)",
        _csr,
    ),
)
OVERVIEW = Benchmark(18, "compression", overview_figures, CLAIMS, PROMISE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/compression.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sparsities, 5 repeats")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (default 15, quick 5)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--plot", metavar="FILE", help="draw the curves to FILE (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    try:
        figures = measure(quick=args.quick, repeats=args.repeats)
    except NotImplementedError as error:
        print(f"not implemented yet: {error}", file=sys.stderr)
        return 1
    except AssertionError as error:
        print(f"wrong result: {error}", file=sys.stderr)
        return 1
    print(report(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
        print(f"figures written to {args.json}")
    if args.plot:
        try:
            print(f"plot written to {plot(figures, args.plot)}")
        except ImportError:
            print("no plot: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
