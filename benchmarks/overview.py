"""The course's headline claims, measured on this machine in one run: modules 16-20 side by side.

    tinytorch bench --quick                    # every claim, about 1-2 minutes on 2 cores
    tinytorch bench                            # the full run (several minutes)
    python -m tinytorch bench --quick          # the same
    python benchmarks/overview.py --quick --out DIR --no-plots

Each module's own benchmark (``benchmarks/<module>.py``, ``tinytorch bench <module>``) is run
through the function that returns its figures; nothing is measured here. The overview only
collects those figures and sets each headline claim next to the course's promise:

=======  ==========================================================  ===========================
module   measured                                                    the course's promise
=======  ==========================================================  ===========================
16       BLAS and blocked speedup over the naive kernel;              10-100x
         blocked as a fraction of BLAS
17       INT8 accuracy drop, weight-size ratio and latency            < 1 %, 4x smaller, 4x faster
         on the zoo MLP and CNN
18       accuracy at 70 % sparsity; structured-pruning speedup;       < 2 %
         CSR break-even
19       KV-cache generation speedup as the length grows              5-10x
20       the reference submission's score (geometric mean speedup)    cumulative
=======  ==========================================================  ===========================

A claim that does not hold here is shown as not holding, with the reason (INT8 latency never
holds in numpy: it has no INT8 GEMM). It writes ``reports/bench/overview.json`` (every module's
figures with their spread, each claim, the machine: CPU, cores, Python, numpy and BLAS, thread
settings, load average) and, with the ``plots`` extra (``pip install -e .[plots]``, matplotlib),
PNG plots next to it: speedup vs matrix size, accuracy vs sparsity, generation time vs length.

The code measured is the reference (``TINYTORCH_IMPL=solutions``) in a checkout that holds
``solutions/``, and yours (``katas``) in a student release, which does not; ``TINYTORCH_IMPL``
chooses otherwise (``TINYTORCH_IMPL=katas tinytorch bench`` measures yours in a checkout).
BLAS is pinned to one thread before numpy loads (``benchmarks.pin_blas_threads``: unless
``OPENBLAS_NUM_THREADS`` and the like are set, as for every benchmark and ``tinytorch
submit``). Every ratio comes from one module benchmark's run with interleaved repeats (medians,
with the spread each benchmark reports).
Exit code: 0 when every module was measured (whether or not its claims hold), 1 when one could
not be (not implemented, a wrong result).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/overview.py` from a clone
    sys.path.insert(0, str(ROOT))

from benchmarks import BLAS_THREAD_VARS, pin_blas_threads  # noqa: E402


def default_impl(root: Path = ROOT) -> str:
    """The tree measured when ``TINYTORCH_IMPL`` is not set: the reference where the checkout
    holds it, else the student's own code (a student release has no ``solutions/``)."""
    return "solutions" if (root / "solutions").is_dir() else "katas"


if __name__ == "__main__":  # before numpy loads its BLAS, and before tinytorch.perf reads the switch
    pin_blas_threads()
    os.environ.setdefault("TINYTORCH_IMPL", default_impl())

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from typing import Any, TextIO  # noqa: E402

DEFAULT_OUT = ROOT / "reports" / "bench"
SCHEMA = 1

HOLDS, FAILS, INFO, MISSING = "holds", "does not hold", "info", "not measured"

# The course's promises (docs: /work/shared/DESIGN.md, "Headline results")
PROMISE_BACKEND = "10-100x"
PROMISE_INT8_ACCURACY = "< 1 % drop"
PROMISE_INT8_SIZE = "4x smaller"
PROMISE_INT8_SPEED = "4x faster"
PROMISE_SPARSITY = "< 2 % drop"
PROMISE_KV = "5-10x"
PROMISE_SCORE = "cumulative (> 1x, every gate held)"

# numbers behind the promises
BACKEND_MIN, BACKEND_MAX = 10.0, 100.0
INT8_MAX_DROP_PP = 1.0
INT8_SIZE_RATIO = 4.0
INT8_SPEEDUP = 4.0
SPARSITY = 0.7
SPARSITY_MAX_DROP_PP = 2.0
KV_MIN, KV_MAX = 5.0, 10.0

NO_MATPLOTLIB = "matplotlib is not installed (pip install -e .[plots]): the table and the JSON only, no plots"
NO_INT8_GEMM = (
    "numpy has no INT8 GEMM; the 4x needs one on integer hardware (VNNI / dot-product "
    "instructions, NPUs)"
)
SMALL_INT8 = (
    "at the zoo's sizes each product takes ~50 us: quantizing the input, the epilogue and the "
    "dispatch dominate, and module 17's exact kernel multiplies int8 values with float32 BLAS, "
    "at float32 speed at best"
)
# the INT8 kernels of benchmarks/quantization.py (KERNELS there), in the order of its table
INT8_KERNELS = {
    "naive_int32": "naive int32 kernel",
    "blas_exact": "exact chunked-BLAS kernel",
    "int8_gemm": "INT8 GEMM (onnxruntime)",
}
INT8_KERNEL_WHY = {
    "naive_int32": "A.astype(int32) @ B.astype(int32) runs numpy's generic integer loops, not BLAS",
    "blas_exact": (
        "float32 BLAS on int8 values (exact in K-chunks of 1024) does float32 work: float32 speed "
        "at best, less the casts and the epilogue; the 4x needs an INT8 GEMM on integer hardware"
    ),
    "int8_gemm": (
        "the INT8 GEMM's product is fast, but quantizing the input and the epilogue stay float32 "
        "work on the whole layer at this size"
    ),
}


@dataclass
class Claim:
    """One row of the table: a headline claim, what was measured and whether the promise holds.

    ``value`` is the headline number (a ratio, or accuracy points) and ``low`` / ``high`` its
    spread as the module's benchmark reports it (IQR or min-max of the timed runs, carried into
    the ratio); ``reason`` says why a claim holds only in part, does not hold, or was not measured.
    """

    module: int
    claim: str
    measured: str
    promise: str
    verdict: str
    reason: str = ""
    value: float | None = None
    low: float | None = None
    high: float | None = None
    unit: str = "x"
    spread: str = ""


# --------------------------------------------------------------------------- small helpers


def _ratio_range(num: tuple[float, float], den: tuple[float, float]) -> tuple[float, float]:
    """(lowest, highest) of num / den when each lies in its (low, high) band."""
    return num[0] / den[1], num[1] / den[0]


def _x(value: float) -> str:
    """A ratio as text: 3 significant figures below 100 (2 below 0.1), grouped digits above."""
    if value >= 100:
        return f"{value:,.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    if value < 0.1:  # two significant figures: a naive kernel's 0.0077x, not 0.01x
        return f"{value:.2g}x"
    return f"{value:.2f}x"


def _pp(change: float) -> str:
    """An accuracy change in percentage points, signed (a loss is negative; no "-0.00")."""
    return f"{change + 0.0:+.2f} pp" if round(change, 2) != 0 else "+0.00 pp"


def _band(low: float | None, high: float | None, fmt: Callable[[float], str] = _x) -> str:
    return "" if low is None or high is None else f"{fmt(low)}-{fmt(high)}"


def _int_keys(mapping: dict) -> dict:
    """Keys as ints (a benchmark run in a subprocess returns JSON, whose keys are strings)."""
    return {int(k): v for k, v in mapping.items()}


def _missing(module: int, claim: str, promise: str, reason: str) -> Claim:
    return Claim(module, claim, "-", promise, MISSING, reason)


# --------------------------------------------------------------------------- claims, per module


def claims_acceleration(fig: dict[str, Any]) -> list[Claim]:
    """Module 16: BLAS and blocked over the naive loop at the largest size the loop really ran
    (measured, not extrapolated), and blocked as a fraction of BLAS at the largest size."""
    sizes = _int_keys(fig["sizes"])
    measured = [n for n, stats in sizes.items() if "naive" in stats]
    warnings = fig.get("warnings") or []
    noisy = (
        f"; the benchmark flagged implausible timings ({len(warnings)}): the machine was busy"
        if warnings
        else ""
    )
    out = []
    if not measured:
        for name in ("BLAS", "blocked"):
            out.append(
                _missing(16, f"{name} over the naive kernel", PROMISE_BACKEND, "the naive loop did not run")
            )
    else:
        n = max(measured)
        naive = sizes[n]["naive"]
        for kernel, label in (
            ("numpy", "BLAS"),
            ("blocked", f"blocked (block {fig.get('block_size', '?')})"),
        ):
            s = sizes[n][kernel]
            value = naive["median_s"] / s["median_s"]
            low, high = _ratio_range((naive["q1_s"], naive["q3_s"]), (s["q1_s"], s["q3_s"]))
            if value < BACKEND_MIN:
                verdict, reason = FAILS, f"only {_x(value)} faster than the naive loop at n={n}"
            elif value > BACKEND_MAX:
                verdict = HOLDS
                reason = (
                    "beyond the range: the naive kernel here is interpreted Python (some 100 ns of "
                    "interpreter per multiply-add); the course's 10-100x compares a compiled loop with BLAS"
                )
            else:
                verdict, reason = HOLDS, ""
            out.append(
                Claim(
                    16,
                    f"{label} over the naive kernel",
                    f"{_x(value)} at n={n}",
                    PROMISE_BACKEND,
                    verdict,
                    reason + noisy,
                    value,
                    low,
                    high,
                    spread=_band(low, high),
                )
            )
    n = max(sizes)
    blocked = sizes[n]["blocked"]
    sweep = {int(k): v for k, v in (fig.get("best_block_size") or {}).items()}
    best = ""
    if n in sweep:
        stats = _int_keys(fig["sweep"])[n][str(sweep[n])]
        best = f"; best block size {sweep[n]}: {stats['of_blas']:.0%} of BLAS"
    elif sweep:
        m = max(sweep)
        stats = _int_keys(fig["sweep"])[m][str(sweep[m])]
        best = f"; best block size at n={m}: {sweep[m]}, {stats['of_blas']:.0%} of BLAS"
    numpy_ = sizes[n]["numpy"]
    low, high = _ratio_range((numpy_["q1_s"], numpy_["q3_s"]), (blocked["q1_s"], blocked["q3_s"]))
    out.append(
        Claim(
            16,
            "blocked as a fraction of BLAS",
            f"{blocked['of_blas']:.0%} at n={n}",
            "no number (tiling approaches BLAS)",
            INFO,
            f"block_size={fig.get('block_size', '?')}{best}",
            blocked["of_blas"],
            low,
            high,
            unit="of BLAS",
            spread=_band(low, high, lambda v: f"{v:.0%}"),
        )
    )
    return out


def claims_quantization(fig: dict[str, Any]) -> list[Claim]:
    """Module 17, for each zoo model: accuracy drop of INT8 (min/max observer), weight bytes
    float32 / int8, and the speedup of the INT8 forward pass over float32 (batch of the test set)."""
    out = []
    for name, m in fig["models"].items():
        short = name.replace("_digits", "").upper()
        f32 = m["float32_accuracy"]
        q8 = m["int8_accuracy"]["minmax"]
        drop = (f32 - q8) * 100
        changed = m["changed_predictions"]["minmax"]
        alt = m["int8_accuracy"].get("percentile")
        alt_text = f"percentile observer: {_pp((alt - f32) * 100)}" if alt is not None else ""
        out.append(
            Claim(
                17,
                f"INT8 accuracy change, {short}",
                f"{_pp(-drop)} ({f32:.2%} -> {q8:.2%}, {changed}/{m['test_images']} changed)",
                PROMISE_INT8_ACCURACY,
                HOLDS if drop < INT8_MAX_DROP_PP else FAILS,
                alt_text if drop < INT8_MAX_DROP_PP else f"INT8 loses {drop:.2f} points; {alt_text}",
                -drop,
                unit="pp",
            )
        )
        w, t = m["weight_bytes"], m["model_bytes"]
        ratio = w["float32"] / w["int8"]
        whole = t["float32"] / t["int8"]
        out.append(
            Claim(
                17,
                f"INT8 weight size, {short}",
                f"{_x(ratio)} smaller ({w['float32']:,} -> {w['int8']:,} B)",
                PROMISE_INT8_SIZE,
                HOLDS if ratio >= INT8_SIZE_RATIO - 0.01 else FAILS,
                f"the whole model as stored: {_x(whole)} (int32 biases and per-channel scales stay)",
                ratio,
            )
        )
        batch, lat = next(iter(m["latency_ms"].items()))
        f, q = lat["float32"], lat["int8"]
        speed = f["median"] / q["median"]
        low, high = _ratio_range((f["min"], f["max"]), (q["min"], q["max"]))
        out.append(
            Claim(
                17,
                f"INT8 latency, {short} ({batch.replace('_', ' ')})",
                f"{_x(speed)} ({f['median']:.2f} -> {q['median']:.2f} ms)",
                PROMISE_INT8_SPEED,
                HOLDS if speed >= INT8_SPEEDUP else FAILS,
                "" if speed >= INT8_SPEEDUP else f"{SMALL_INT8}; {NO_INT8_GEMM}",
                speed,
                low,
                high,
                spread=_band(low, high),
            )
        )
    if fig.get("kernels"):
        out += claims_int8_kernels(fig["kernels"])
    return out


def claims_int8_kernels(kernels: dict[str, Any]) -> list[Claim]:
    """Module 17's "4x faster" for each INT8 kernel at the largest layer measured end to end
    (``Linear(1024, 1024)`` at batch 256): the verdict names the kernel and the size, the reason
    says why, with the kernel's speedup at each product measured alone. An absent kernel (the
    optional INT8 GEMM without its extra) is "not measured", with why."""
    sizes = kernels["sizes"]
    layers = [s for s in sizes if s["kind"] == "layer"] or [s for s in sizes if s["kind"] != "model"]
    products = [s for s in sizes if s["kind"] == "product"]
    out = []
    for kernel, label in INT8_KERNELS.items():
        if not layers:
            break
        layer = max(layers, key=lambda s: s["macs"])
        claim = f"INT8 latency, {label}, {layer['label']}"
        if kernel not in layer["ms"]:
            why = kernels.get("absent", {}).get(kernel, "not in the run")
            out.append(_missing(17, claim, PROMISE_INT8_SPEED, f"{label}: {why}"))
            continue
        f, q = layer["ms"]["float32"], layer["ms"][kernel]
        speed = f["median"] / q["median"]
        low, high = _ratio_range((f["min"], f["max"]), (q["min"], q["max"]))
        holds = speed >= INT8_SPEEDUP
        alone = [
            f"{_x(p['ms']['float32']['median'] / p['ms'][kernel]['median'])} at "
            + p["label"].removeprefix("product ")
            for p in sorted(products, key=lambda p: p["macs"])
            if kernel in p["ms"]
        ]
        product = f"; the products alone: {', '.join(alone)}" if alone else ""
        where = f"{'holds' if holds else 'does not hold'} with the {label} at {layer['label']}"
        out.append(
            Claim(
                17,
                claim,
                f"{_x(speed)} ({f['median']:.2f} -> {q['median']:.2f} ms)",
                PROMISE_INT8_SPEED,
                HOLDS if holds else FAILS,
                f"{where}{product}" + ("" if holds else f"; {INT8_KERNEL_WHY[kernel]}"),
                speed,
                low,
                high,
                spread=_band(low, high),
            )
        )
    return out


def claims_compression(fig: dict[str, Any]) -> list[Claim]:
    """Module 18: the fine-tuned accuracy at 70 % sparsity against the dense model, the speedup
    of structured pruning (50 % of the filters / units), and where CSR breaks even with BLAS."""
    out = []
    models = list(dict.fromkeys(r["model"] for r in fig["accuracy"]))
    for name in models:
        short = name.replace("_digits", "").upper()
        rows = [r for r in fig["accuracy"] if r["model"] == name and abs(r["sparsity"] - SPARSITY) < 1e-9]
        if not rows:
            out.append(
                _missing(18, f"accuracy at 70 % sparsity, {short}", PROMISE_SPARSITY, "70 % not in the run")
            )
            continue
        r = rows[0]
        drop = (r["baseline"] - r["fine_tuned"]) * 100
        holds = drop < SPARSITY_MAX_DROP_PP
        out.append(
            Claim(
                18,
                f"accuracy at 70 % sparsity, {short}",
                f"{_pp(-drop)} ({r['baseline']:.2%} -> {r['fine_tuned']:.2%})",
                PROMISE_SPARSITY,
                HOLDS if holds else FAILS,
                ("" if holds else f"fine-tuned, it loses {drop:.2f} points; ")
                + f"after a short fine-tune with the masks held; without it {r['pruned']:.2%} "
                f"({(r['pruned'] - r['baseline']) * 100:+.1f} pp)",
                -drop,
                unit="pp",
            )
        )
    for r in fig["structured"]:
        short = r["model"].replace("_digits", "").upper()
        low, high = _ratio_range(
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
            Claim(
                18,
                f"structured pruning speedup, {short}",
                f"{_x(speed)} ({r['removed']})",
                "a smaller model runs faster",
                verdict,
                note + f"parameters {r['parameters']:,} -> {r['parameters_pruned']:,}; accuracy "
                f"{r['accuracy']:.2%} -> {r['accuracy_fine_tuned']:.2%} fine-tuned",
                speed,
                low,
                high,
                spread=_band(low, high),
            )
        )
    parts = []
    for case in fig["csr"]:
        shape, be = case["shape"], case["break_even"]
        where = f"{shape[0]}x{shape[1]}, batch {case['batch']}"
        parts.append(f"{be:.1%} ({where})" if be is not None else f"never ({where})")
    first = fig["csr"][0]["break_even"] if fig["csr"] else None
    out.append(
        Claim(
            18,
            "CSR break-even sparsity vs BLAS",
            "; ".join(parts),
            "no number (sparse pays only when very sparse)",
            INFO,
            "a CSR kernel in numpy beats dense BLAS only at very high sparsity",
            first,
            unit="sparsity",
        )
    )
    return out


def claims_caching(fig: dict[str, Any], quick: bool = False) -> list[Claim]:
    """Module 19: the preallocated KV cache over recomputing the prefix, at each length; the
    claim is judged at the longest length measured."""
    cases = sorted(fig["cases"], key=lambda c: c["total"])
    if not cases:
        return [_missing(19, "KV-cache generation speedup", PROMISE_KV, "no case was run")]
    trend = ", ".join(f"{_x(c['speedup']['prealloc_over_recompute'])} at {c['total']}" for c in cases)
    last = cases[-1]
    s = last["seconds"]
    value = last["speedup"]["prealloc_over_recompute"]
    low, high = _ratio_range(
        (s["recompute"]["min"], s["recompute"]["max"]), (s["prealloc"]["min"], s["prealloc"]["max"])
    )
    vs_concat = f"over the concatenating cache {_x(last['speedup']['prealloc_over_concat'])}"
    if last.get("model") and last.get("model") != cases[0].get("model"):
        vs_concat += f"; {last['total']} tokens: {last['model']}"
    if value >= KV_MIN:
        verdict = HOLDS
        reason = ("beyond the range; " if value > KV_MAX else "") + vs_concat
    else:
        verdict = FAILS
        grows = len(cases) > 1 and value > cases[0]["speedup"]["prealloc_over_recompute"]
        reason = (
            f"only {_x(value)} at {last['total']} tokens"
            + ("; the gain grows with the length" if grows else "")
            + ("; the quick mode stops here, the full mode runs to 512 tokens" if quick else "")
            + f"; {vs_concat}"
        )
    return [
        Claim(
            19,
            "KV-cache generation speedup",
            f"{trend} tokens",
            PROMISE_KV,
            verdict,
            reason,
            value,
            low,
            high,
            spread=_band(low, high),
        )
    ]


def claims_benchmarking(fig: dict[str, Any]) -> list[Claim]:
    """Module 20: the reference submission's score (geometric mean of the event speedups); not
    measured when an event could not run (a module it needs is unfinished): the score of the
    events that ran is shown, with the reason."""
    score = fig["score"]
    events = fig["events"]
    missing = fig.get("not_measured", {})
    failed = [name for name, e in events.items() if not e["passed"]]
    per_event = ", ".join(f"{name.split('_')[0]} {_x(e['speedup']['median'])}" for name, e in events.items())
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
    spread = _band(score["min"], score["max"]) if runs > 1 else ""
    return [
        Claim(
            20,
            "reference submission score (geomean)",
            f"{_x(score['median'])} ({per_event})",
            PROMISE_SCORE,
            MISSING if missing else HOLDS if holds else FAILS,
            reason
            + (f"; {runs} competitions" if runs > 1 else "; one competition (the full mode runs three)"),
            score["median"],
            score["min"],
            score["max"],
            spread=spread,
        )
    ]


# --------------------------------------------------------------------------- the modules


def _acceleration(quick: bool) -> dict[str, Any]:
    from benchmarks import acceleration

    if quick:  # the naive loop only up to 64 (it grows as n^3 in the interpreter: ~1 s at 128)
        return acceleration.figures(
            sizes=(32, 64, 128),
            naive_max=64,
            repeats=3,
            block_sizes=(32, 64, 128),
            sweep_sizes=(128,),
        )
    return acceleration.figures()


def _quantization(quick: bool) -> dict[str, Any]:
    from benchmarks import quantization

    return quantization.figures(rounds=5 if quick else 15, full=not quick)


def _compression(quick: bool) -> dict[str, Any]:
    from benchmarks import compression

    return compression.measure(quick=quick)


def _caching(quick: bool) -> dict[str, Any]:
    from benchmarks import caching

    return caching.figures(quick=quick)


def _benchmarking(quick: bool) -> dict[str, Any]:
    from benchmarks import benchmarking

    return benchmarking.figures(quick=quick)


@dataclass(frozen=True)
class Module:
    number: int
    name: str
    run: Callable[[bool], dict[str, Any]]
    claims: Callable[..., list[Claim]]
    promise: str


MODULES = (
    Module(16, "acceleration", _acceleration, claims_acceleration, PROMISE_BACKEND),
    Module(
        17,
        "quantization",
        _quantization,
        claims_quantization,
        f"{PROMISE_INT8_ACCURACY}, {PROMISE_INT8_SIZE}, {PROMISE_INT8_SPEED}",
    ),
    Module(18, "compression", _compression, claims_compression, PROMISE_SPARSITY),
    Module(19, "caching", _caching, claims_caching, PROMISE_KV),
    Module(20, "benchmarking", _benchmarking, claims_benchmarking, PROMISE_SCORE),
)


def module_claims(module: Module, result: dict[str, Any], quick: bool) -> list[Claim]:
    """The claims of one module from its collected result (figures, or the error that stopped it)."""
    if result.get("figures") is None:
        return [
            _missing(module.number, f"module {module.number} {module.name}", module.promise, result["error"])
        ]
    try:
        if module.claims is claims_caching:
            return claims_caching(result["figures"], quick)
        return module.claims(result["figures"])
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as error:
        return [
            _missing(
                module.number,
                f"module {module.number} {module.name}",
                module.promise,
                f"its benchmark's figures have an unexpected shape ({type(error).__name__}: {error})",
            )
        ]


# --------------------------------------------------------------------------- the machine


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_model() -> str:
    """The CPU's model name: the leaderboard's description of a machine (one rule for both)."""
    from tinytorch.course.leaderboard import cpu_model as model

    return model()


def machine() -> dict[str, Any]:
    """Where the figures were measured: CPU, cores, Python, numpy and BLAS, threads, load."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas_info = {k: blas.get(k) for k in ("name", "version")}
    except Exception:  # older numpy or an unusual build: informative only
        blas_info = {"name": "unknown", "version": None}
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    threadpools = None
    try:
        from threadpoolctl import threadpool_info

        threadpools = [
            {k: info.get(k) for k in ("internal_api", "version", "num_threads")} for info in threadpool_info()
        ]
    except ImportError:
        pass
    from tinytorch.course.leaderboard import blas_kernel

    return {
        "cpu": cpu_model(),
        "architecture": platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info,
        # the kernels BLAS runs (OpenBLAS's core name, e.g. Haswell on an AVX-512 CPU): one rule
        # with the leaderboard's machine line
        "blas_kernel": blas_kernel(),
        "threads": {v: os.environ.get(v) for v in (*BLAS_THREAD_VARS, "OPENBLAS_CORETYPE")},
        "threadpools": threadpools,
        "load_average": _load(),
    }


# --------------------------------------------------------------------------- progress and the run


class Progress:
    """One status line on stderr: ``[2/5] module 17 quantization ... 12 s``, ticking on a terminal."""

    def __init__(self, stream: TextIO, total: int):
        self.stream, self.total = stream, total
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, index: int, label: str) -> None:
        self.label = f"[{index}/{self.total}] {label}"
        self.started = time.perf_counter()
        if self.tty:
            self._stop.clear()
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        else:
            print(f"{self.label} ...", file=self.stream, flush=True)

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self.stream.write(f"\r{self.label} ... {time.perf_counter() - self.started:.0f} s")
            self.stream.flush()

    def done(self, text: str) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        prefix = "\r" if self.tty else ""
        seconds = time.perf_counter() - self.started
        print(f"{prefix}{self.label}: {text} in {seconds:.0f} s", file=self.stream, flush=True)


def collect(
    quick: bool, modules: tuple[Module, ...] = MODULES, progress: Progress | None = None
) -> dict[str, Any]:
    """Run each module's figure function once; {name: {figures | error, seconds, load_before/after}}."""
    results: dict[str, Any] = {}
    for i, module in enumerate(modules, 1):
        if progress:
            progress.start(i, f"module {module.number} {module.name}")
        load_before, start = _load(), time.perf_counter()
        entry: dict[str, Any] = {"number": module.number, "figures": None, "error": None}
        try:
            entry["figures"] = module.run(quick)
            status = "measured"
        except NotImplementedError as error:
            entry["error"] = f"not implemented yet: {error}"
            status = "not implemented"
        except AssertionError as error:
            entry["error"] = f"a wrong result, not timed: {error}"
            status = "wrong result"
        except RuntimeError as error:  # acceleration's pinned subprocess failed; its stderr says why
            message = str(error)
            if "not implemented yet: " in message:
                status = "not implemented"
                entry["error"] = "not implemented yet: " + message.split("not implemented yet: ", 1)[1]
            elif "wrong result: " in message:
                status = "wrong result"
                entry["error"] = "a wrong result, not timed: " + message.split("wrong result: ", 1)[1]
            else:
                status, entry["error"] = "crashed", f"RuntimeError: {message}"
                entry["traceback"] = traceback.format_exc()
        except (ImportError, AttributeError) as error:  # a module not built, a figure function missing
            entry["error"] = f"its benchmark could not run: {type(error).__name__}: {error}"
            status = "could not run"
        except Exception as error:  # one module's crash must not lose the others' figures
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["traceback"] = traceback.format_exc()
            status = "crashed"
        entry["seconds"] = round(time.perf_counter() - start, 2)
        entry["load_before"], entry["load_after"] = load_before, _load()
        results[module.name] = entry
        if progress:
            progress.done(status)
    return results


def evaluate(results: dict[str, Any], quick: bool, modules: tuple[Module, ...] = MODULES) -> list[Claim]:
    """Every claim, in module order, from the collected results."""
    claims: list[Claim] = []
    for module in modules:
        if module.name in results:
            claims += module_claims(module, results[module.name], quick)
    return claims


# --------------------------------------------------------------------------- output


def table(claims: list[Claim]) -> str:
    """The claims as a Markdown table, the reasons as numbered notes below it."""
    headers = ["module", "claim", "measured", "spread", "the course's promise", "verdict"]
    rows, notes = [], []
    for c in claims:
        verdict = c.verdict
        if c.reason:
            if c.reason not in notes:
                notes.append(c.reason)
            verdict += f" [{notes.index(c.reason) + 1}]"
        rows.append([str(c.module), c.claim, c.measured, c.spread or "-", c.promise, verdict])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    out = [line(headers), rule, *(line(r) for r in rows)]
    if notes:
        out.append("")
        out += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(out)


def summary(claims: list[Claim]) -> str:
    judged = [c for c in claims if c.verdict in (HOLDS, FAILS)]
    held = sum(c.verdict == HOLDS for c in judged)
    missing = sum(c.verdict == MISSING for c in claims)
    text = f"{held} of {len(judged)} claims hold on this machine" if judged else "no claim could be measured"
    if missing:
        text += f"; {missing} not measured"
    return text


def header(report: dict[str, Any]) -> str:
    m = report["machine"]
    load = m["load_average"]
    cores = m["cores"] or 1
    busy = ""
    if load and load[0] > 0.5 * cores:
        busy = " (busy: the timings are noisier; rerun on a quiet machine)"
    threads = ", ".join(f"{k}={v}" for k, v in m["threads"].items() if v is not None) or "(unset)"
    kernels = (m.get("blas_kernel") or {}).get("architecture") or "unknown"
    return "\n".join(
        [
            f"# TinyTorch: the course's claims on this machine ({report['mode']} mode, "
            f"TINYTORCH_IMPL={report['impl']}"
            + (
                ": the reference; TINYTORCH_IMPL=katas measures yours)"
                if report["impl"] == "solutions"
                else ")"
            ),
            f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), Python {m['python']}, "
            f"numpy {m['numpy']}, BLAS {m['blas']['name']} {m['blas']['version'] or ''}".rstrip()
            + f" ({kernels} kernels)",
            f"threads: {threads}; load average (1/5/15 min): "
            + (" / ".join(f"{v:.2f}" for v in load) if load else "unknown")
            + busy,
            "ratios: medians of interleaved repeats inside each module's benchmark; spread: the band the "
            "benchmark reports (IQR or min-max)",
        ]
    )


def _plain(value: Any) -> Any:
    """json.dumps fallback: numpy scalars and arrays, tuples as lists, anything else as text."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _finite(value: Any) -> Any:
    """NaN and infinities as None (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(report: dict[str, Any]) -> str:
    data = dict(report, claims=[asdict(c) for c in report["claims"]])
    return json.dumps(_finite(json.loads(json.dumps(data, default=_plain))), indent=1, allow_nan=False)


# --------------------------------------------------------------------------- plots


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    """PNG plots of the curves behind the claims (needs matplotlib: the ``plots`` extra).

    Raises ImportError without matplotlib. A module without figures gets no plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig: Any, name: str) -> None:
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    acc = (results.get("acceleration") or {}).get("figures")
    if acc:
        sizes = _int_keys(acc["sizes"])
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        for kernel, style, color in (("numpy", "o-", "tab:blue"), ("blocked", "s-", "tab:orange")):
            ns = sorted(n for n in sizes if kernel in sizes[n])
            measured = [(n, sizes[n][kernel]["speedup"]) for n in ns if "speedup" in sizes[n][kernel]]
            estimated = [
                (n, sizes[n][kernel]["speedup_estimated"])
                for n in ns
                if "speedup_estimated" in sizes[n][kernel]
            ]
            label = "BLAS" if kernel == "numpy" else "blocked"
            if measured:
                left.plot(*zip(*measured, strict=True), style, color=color, label=f"{label} (measured)")
            if estimated:
                xs, ys = zip(*estimated, strict=True)
                left.plot(xs, ys, style[0] + "--", color=color, mfc="none", label=f"{label} (extrapolated)")
            right.plot(ns, [sizes[n][kernel]["gflops"] for n in ns], style, color=color, label=label)
        left.axhspan(BACKEND_MIN, BACKEND_MAX, color="green", alpha=0.12, label="the course's 10-100x")
        left.set(
            xscale="log",
            yscale="log",
            xlabel="n (n x n @ n x n, float32)",
            ylabel="speedup over naive",
            title="module 16: speedup vs matrix size",
        )
        left.legend(fontsize=8)
        right.set(xscale="log", xlabel="n", ylabel="GFLOP/s (median)", title="rate (one BLAS thread)")
        for axis in (left, right):
            axis.set_xticks(sorted(sizes), [str(n) for n in sorted(sizes)])
            axis.minorticks_off()
        right.legend(fontsize=8)
        save(fig, "acceleration_speedup.png")

    quant = ((results.get("quantization") or {}).get("figures") or {}).get("kernels")
    if quant and quant.get("sizes"):
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for kernel, label in INT8_KERNELS.items():
            points = sorted(
                (s["macs"], s["ms"]["float32"]["median"] / s["ms"][kernel]["median"])
                for s in quant["sizes"]
                if kernel in s["ms"]
            )
            if points:
                ax.plot(*zip(*points, strict=True), "o-", label=label)
            else:
                ax.plot([], [], " ", label=f"{label}: {quant.get('absent', {}).get(kernel, 'not measured')}")
        ax.axhline(INT8_SPEEDUP, color="green", linewidth=0.8, linestyle="--", label="the course's 4x")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="multiply-adds per forward pass / product",
            ylabel="speedup over float32 (medians)",
            title="module 17: INT8 speedup vs layer size",
        )
        ax.legend(fontsize=8)
        save(fig, "quantization_speedup.png")

    comp = (results.get("compression") or {}).get("figures")
    if comp:
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for name in dict.fromkeys(r["model"] for r in comp["accuracy"]):
            rows = [r for r in comp["accuracy"] if r["model"] == name]
            s = [100 * r["sparsity"] for r in rows]
            (line,) = ax.plot(s, [100 * r["fine_tuned"] for r in rows], "o-", label=f"{name}, fine-tuned")
            ax.plot(
                s,
                [100 * r["pruned"] for r in rows],
                "o--",
                color=line.get_color(),
                alpha=0.6,
                label=f"{name}, pruned only",
            )
            ax.axhline(
                100 * rows[0]["baseline"] - SPARSITY_MAX_DROP_PP,
                color=line.get_color(),
                linewidth=0.8,
                linestyle=":",
            )
        ax.axvline(100 * SPARSITY, color="grey", linewidth=0.8)
        ax.set(
            xlabel="sparsity (%)",
            ylabel="test accuracy (%)",
            title="module 18: accuracy vs sparsity (dotted: dense - 2 points)",
        )
        ax.legend(fontsize=8)
        save(fig, "compression_accuracy.png")

    cache = (results.get("caching") or {}).get("figures")
    if cache:
        fig, (ax, right) = plt.subplots(1, 2, figsize=(11, 4))
        cases = sorted(cache["cases"], key=lambda c: c["total"])
        totals = [c["total"] for c in cases]
        for name, label in (
            ("recompute", "no cache (recompute)"),
            ("concat", "concatenating cache"),
            ("prealloc", "preallocated KV cache"),
        ):
            med = [c["seconds"][name]["median"] for c in cases]
            err = [
                [m - c["seconds"][name]["min"] for m, c in zip(med, cases, strict=True)],
                [c["seconds"][name]["max"] - m for m, c in zip(med, cases, strict=True)],
            ]
            ax.errorbar(totals, med, yerr=err, fmt="o-", capsize=3, label=label)
        ax.set(
            xlabel="prompt + generated tokens",
            ylabel="generation time (s, median, min-max)",
            yscale="log",
            title="module 19: generation time vs length",
        )
        ax.legend(fontsize=8)
        for key, label in (
            ("prealloc_over_recompute", "over no cache"),
            ("prealloc_over_concat", "over concat"),
        ):
            right.plot(totals, [c["speedup"][key] for c in cases], "o-", label=f"preallocated cache {label}")
        right.axhspan(KV_MIN, KV_MAX, color="green", alpha=0.12, label="the course's 5-10x")
        right.set(xlabel="prompt + generated tokens", ylabel="speedup (x, of the medians)", title="speedup")
        right.legend(fontsize=8)
        save(fig, "caching_generation.png")
    return written


# --------------------------------------------------------------------------- main


def run(
    quick: bool,
    out: Path | None,
    want_plots: bool = True,
    stream: TextIO | None = None,
    modules: tuple[Module, ...] = MODULES,
) -> tuple[dict[str, Any], int]:
    """Measure, judge, write the JSON (and plots); returns (the report, the exit code)."""
    stream = stream or sys.stdout
    from tinytorch import perf

    started = time.perf_counter()
    impl = os.environ.get(perf.ENV_VAR, "").strip() or perf.DEFAULT_IMPL
    load_before = _load()
    want_plots = want_plots and out is not None
    if want_plots and importlib.util.find_spec("matplotlib") is None:
        print(f"{NO_MATPLOTLIB}: measuring anyway", file=sys.stderr, flush=True)
    results = collect(quick, modules, Progress(sys.stderr, len(modules)))
    claims = evaluate(results, quick, modules)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "mode": "quick" if quick else "full",
        "impl": impl,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "claims": claims,
        "modules": results,
    }
    report["machine"]["load_before"] = load_before
    report["measuring_seconds"] = round(time.perf_counter() - started, 1)
    print(header(report), file=stream)
    print("", file=stream)
    print(table(claims), file=stream)
    print("", file=stream)
    print(summary(claims), file=stream)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        note = "plots: not drawn (--no-plots)"
        if want_plots:
            try:
                written = plots(results, out)
                note = "plots: " + (", ".join(str(p) for p in written) or "no figures to draw")
            except ImportError:
                note = f"plots: none, {NO_MATPLOTLIB}"
        report["plots"] = [str(p) for p in written]
        report["seconds"] = round(time.perf_counter() - started, 1)
        path = out / f"overview-{report['mode']}.json"
        path.write_text(to_json(report) + "\n")
        print(f"figures: {path}", file=stream)
        print(note, file=stream)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{report['seconds']:.0f} s in all ({report['measuring_seconds']:.0f} s measuring)", file=stream)
    code = 0 if all(r["figures"] is not None for r in results.values()) else 1
    return report, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinytorch bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="every claim in about 1-2 minutes (default: full)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder for the JSON and the plots (default {DEFAULT_OUT.relative_to(ROOT)})",
    )
    parser.add_argument("--no-plots", action="store_true", help="the table and the JSON only")
    args = parser.parse_args(argv)
    _, code = run(args.quick, args.out, want_plots=not args.no_plots)
    return code


if __name__ == "__main__":
    sys.exit(main())
