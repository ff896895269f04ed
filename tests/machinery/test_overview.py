"""The overview of the course's claims (benchmarks/overview.py, ``tinytorch bench``), on canned figures.

Nothing here is timed or measured: each module's figures are small dicts of the shape its
benchmark returns (``benchmarks/<module>.py``), and the tests check what the overview makes of
them: the verdict against the course's promise and its reason, the spread carried into each
ratio, the table, the JSON, the exit code, and the CLI that starts it.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import io
import json
import math
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import overview as ov
from tinytorch.course import cli

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- canned figures


def timing(median: float, spread: float = 0.0) -> dict[str, float]:
    """A spread in acceleration's shape (seconds), quartiles at median -/+ spread."""
    return {
        "median_s": median,
        "q1_s": median - spread,
        "q3_s": median + spread,
        "min_s": median - 2 * spread,
        "max_s": median + 2 * spread,
        "runs": 3,
    }


def acceleration(naive_s: float = 1.0, numpy_s: float = 1e-4, blocked_s: float = 2e-4) -> dict:
    """Naive measured at n=64; at n=128 only blocked and numpy, as the quick overview runs it."""
    return {
        "block_size": 64,
        "warnings": [],
        "sizes": {
            64: {
                "naive": {**timing(naive_s), "gflops": 0.01, "speedup": 1.0},
                "blocked": {
                    **timing(blocked_s, blocked_s / 10),
                    "of_blas": numpy_s / blocked_s,
                    "gflops": 5.0,
                    "speedup": naive_s / blocked_s,
                },
                "numpy": {**timing(numpy_s, numpy_s / 10), "of_blas": 1.0, "gflops": 10.0, "speedup": 1e4},
            },
            128: {  # beyond the naive loop: speedups extrapolated from its rate at n=64
                "blocked": {**timing(8 * blocked_s), "of_blas": 0.5, "gflops": 6.0, "speedup_estimated": 600},
                "numpy": {**timing(4 * blocked_s), "of_blas": 1.0, "gflops": 12.0, "speedup_estimated": 1200},
            },
        },
        "sweep": {128: {"numpy": {"of_blas": 1.0}, "64": {"of_blas": 0.5}, "128": {"of_blas": 0.8}}},
        "best_block_size": {128: 128},
    }


def quantization(int8_acc: float = 0.97, f32_ms: float = 1.0, int8_ms: float = 20.0) -> dict:
    model = {
        "test_images": 359,
        "float32_accuracy": 0.97,
        "int8_accuracy": {"minmax": int8_acc, "percentile": 0.965},
        "changed_predictions": {"minmax": 0, "percentile": 2},
        "weight_bytes": {"float32": 4000, "int8": 1000},
        "model_bytes": {"float32": 4100, "int8": 1200},
        "latency_ms": {
            "batch_359": {
                "float32": {"median": f32_ms, "min": 0.5 * f32_ms, "max": 2 * f32_ms},
                "int8": {"median": int8_ms, "min": 0.5 * int8_ms, "max": 2 * int8_ms},
            },
            "batch_1": {
                "float32": {"median": 1.0, "min": 1.0, "max": 1.0},
                "int8": {"median": 1.0, "min": 1.0, "max": 1.0},
            },
        },
    }
    return {"models": {"mlp_digits": model, "cnn_digits": dict(model, float32_accuracy=0.99)}}


def spread(median: float) -> dict:
    return {"median": median, "min": 0.9 * median, "max": 1.2 * median}


def int8_kernels(gemm_ms: float | None = None, blas_ms: float = 5.8, naive_ms: float = 800.0) -> dict:
    """Fake figures of benchmarks/quantization.py's kernel_sizes: float32 takes 5 ms at the large
    layer, the INT8 GEMM (``gemm_ms``) absent unless given."""

    def kernels_ms(f32: float, scale: float) -> dict:
        ms = {"float32": spread(f32), "naive_int32": spread(naive_ms * scale)}
        ms["blas_exact"] = spread(blas_ms * scale)
        if gemm_ms is not None:
            ms["int8_gemm"] = spread(gemm_ms * scale)
        return ms

    sizes = [
        {"label": label, "kind": kind, "macs": macs, "ms": kernels_ms(f32, scale)}
        for label, kind, macs, f32, scale in (
            ("mlp_digits (batch 359)", "model", 6_111_616, 0.23, 0.06),
            ("Linear(1024, 1024), batch 256", "layer", 2**28, 5.0, 1.0),
            ("product 256x1024x1024", "product", 2**28, 4.7, 1.0),
            ("product 64x4096x4096", "product", 2**30, 20.0, 5.0),
        )
    ]
    absent = {} if gemm_ms is not None else {"int8_gemm": 'not installed (pip install -e ".[int8]")'}
    return {"kernels": [k for k in ov.INT8_KERNELS if k not in absent], "absent": absent, "sizes": sizes}


def compression(fine_tuned: float = 0.96, speedup: float = 2.0, sparsities=(0.0, 0.7, 0.9)) -> dict:
    accuracy = [
        {"model": m, "sparsity": s, "baseline": 0.97, "pruned": 0.9, "fine_tuned": fine_tuned}
        for m in ("mlp_digits", "cnn_digits")
        for s in sparsities
    ]
    structured = [
        {
            "model": "cnn_digits",
            "removed": "50 % of the filters",
            "parameters": 1000,
            "parameters_pruned": 400,
            "original_ms": 10.0 * speedup,
            "original_iqr_ms": 1.0,
            "pruned_ms": 10.0,
            "pruned_iqr_ms": 1.0,
            "speedup": speedup,
            "accuracy": 0.99,
            "accuracy_fine_tuned": 0.97,
        }
    ]
    csr = [
        {"shape": (512, 512), "batch": 1, "break_even": 0.993},
        {"shape": (512, 512), "batch": 64, "break_even": None},
    ]
    return {"accuracy": accuracy, "structured": structured, "csr": csr}


def caching(speedups=(1.5, 2.5)) -> dict:
    cases = []
    for total, speedup in zip((32, 96, 512), speedups, strict=False):
        prealloc = 0.1
        cases.append(
            {
                "total": total,
                "seconds": {
                    "recompute": {
                        "median": prealloc * speedup,
                        "min": prealloc * speedup,
                        "max": 2 * prealloc * speedup,
                    },
                    "concat": {"median": 0.15, "min": 0.15, "max": 0.15},
                    "prealloc": {"median": prealloc, "min": prealloc / 2, "max": prealloc},
                },
                "speedup": {"prealloc_over_recompute": speedup, "prealloc_over_concat": 1.5},
            }
        )
    return {"cases": cases}


def benchmarking(score: float = 3.0, passed: bool = True, runs: int = 3) -> dict:
    event = {"speedup": {"median": score}, "passed": True}
    return {
        "score": {"median": score, "min": score - 0.2, "max": score + 0.1, "runs": [score] * runs},
        "optimizations": ["structured-pruning", "kv-cache"],
        "events": {"MLP_SPRINT": event, "CNN_MARATHON": dict(event, passed=passed)},
    }


def by_claim(claims: list[ov.Claim], text: str) -> ov.Claim:
    (found,) = [c for c in claims if text in c.claim]
    return found


# --------------------------------------------------------------------------- module 16


def test_backend_speedup_beyond_the_promised_range_holds_and_says_why():
    claims = ov.claims_acceleration(acceleration(naive_s=1.0, numpy_s=1e-4))
    blas = by_claim(claims, "BLAS over the naive")
    assert blas.verdict == ov.HOLDS and blas.value == pytest.approx(1e4)
    assert "interpreted Python" in blas.reason and "n=64" in blas.measured  # measured, not extrapolated
    # the spread of a ratio: naive's quartiles over numpy's
    assert blas.low == pytest.approx(1.0 / 1.1e-4) and blas.high == pytest.approx(1.0 / 0.9e-4)


def test_backend_speedup_within_and_below_the_range():
    inside = by_claim(ov.claims_acceleration(acceleration(naive_s=1.0, numpy_s=0.02)), "BLAS over")
    assert inside.verdict == ov.HOLDS and inside.reason == ""
    below = by_claim(ov.claims_acceleration(acceleration(naive_s=1.0, numpy_s=0.5)), "BLAS over")
    assert below.verdict == ov.FAILS and "only 2.00x" in below.reason


def test_blocked_fraction_of_blas_is_information_at_the_largest_size_with_the_best_block():
    claim = by_claim(ov.claims_acceleration(acceleration()), "fraction of BLAS")
    assert claim.verdict == ov.INFO and claim.measured == "50% at n=128"
    assert "best block size 128: 80% of BLAS" in claim.reason


def test_acceleration_figures_from_json_have_string_keys_and_busy_warnings_show():
    fig = json.loads(json.dumps(acceleration()))  # as a pinned subprocess returns them
    fig["warnings"] = ["n=64: blocked is faster than one BLAS call"]
    claims = ov.claims_acceleration(fig)
    assert len(claims) == 3 and "machine was busy" in by_claim(claims, "BLAS over").reason


def test_without_a_measured_naive_loop_the_speedup_is_not_measured():
    fig = acceleration()
    del fig["sizes"][64]["naive"]
    claims = ov.claims_acceleration(fig)
    assert by_claim(claims, "BLAS over").verdict == ov.MISSING


# --------------------------------------------------------------------------- module 17


def test_int8_accuracy_and_size_hold_latency_does_not_and_names_the_missing_int8_gemm():
    claims = ov.claims_quantization(quantization())
    assert len(claims) == 6  # three claims for each of the two models
    change = by_claim(claims, "accuracy change, MLP")
    assert change.verdict == ov.HOLDS and change.measured.startswith("+0.00 pp")  # never "-0.00"
    assert "percentile observer: -0.50 pp" in change.reason
    size = by_claim(claims, "weight size, CNN")
    assert size.verdict == ov.HOLDS and size.value == 4.0 and "3.42x" in size.reason
    latency = by_claim(claims, "latency, MLP")
    assert latency.verdict == ov.FAILS and latency.value == pytest.approx(0.05)
    assert "numpy has no INT8 GEMM" in latency.reason and "batch 359" in latency.claim
    assert "each product takes ~50 us" in latency.reason, "the zoo's latency reason: the sizes"
    assert (latency.low, latency.high) == (pytest.approx(0.5 / 40), pytest.approx(2 / 10))


def test_int8_claims_fail_on_a_large_accuracy_drop_and_hold_on_fast_int8():
    claims = ov.claims_quantization(quantization(int8_acc=0.95, int8_ms=0.2))
    change = by_claim(claims, "accuracy change, MLP")
    assert change.verdict == ov.FAILS and "loses 2.00 points" in change.reason
    assert by_claim(claims, "latency, MLP").verdict == ov.HOLDS


def test_int8_four_times_names_each_kernel_and_the_size_and_the_missing_gemm():
    claims = ov.claims_quantization(dict(quantization(), kernels=int8_kernels()))
    assert len(claims) == 9, "three claims per zoo model and one per INT8 kernel"
    naive = by_claim(claims, "naive int32 kernel, Linear(1024, 1024), batch 256")
    assert naive.verdict == ov.FAILS and naive.value == pytest.approx(5.0 / 800), "naive speedup"
    assert "numpy's generic integer loops" in naive.reason, "the naive kernel's reason"
    blas = by_claim(claims, "exact chunked-BLAS kernel")
    assert blas.verdict == ov.FAILS and blas.value == pytest.approx(5.0 / 5.8), "BLAS speedup"
    assert blas.measured == "0.86x (5.00 -> 5.80 ms)", "the BLAS kernel's measured text"
    assert blas.reason.startswith(
        "does not hold with the exact chunked-BLAS kernel at Linear(1024, 1024), batch 256; "
        "the products alone: 0.81x at 256x1024x1024, 0.69x at 64x4096x4096; float32 BLAS"
    ), f"the verdict names kernel, size, largest product and why: {blas.reason}"
    assert (blas.low, blas.high) == (pytest.approx(4.5 / 6.96), pytest.approx(6.0 / 5.22)), "spread"
    gemm = by_claim(claims, "INT8 GEMM")
    assert gemm.verdict == ov.MISSING and "not installed" in gemm.reason, "absent GEMM: not measured"


def test_int8_four_times_holds_with_a_fast_gemm_and_says_where():
    claims = ov.claims_int8_kernels(int8_kernels(gemm_ms=1.25))
    gemm = by_claim(claims, "INT8 GEMM")
    assert gemm.verdict == ov.HOLDS and gemm.value == pytest.approx(4.0), "4.00x is the promise"
    assert gemm.reason == (
        "holds with the INT8 GEMM (onnxruntime) at Linear(1024, 1024), batch 256; "
        "the products alone: 3.76x at 256x1024x1024, 3.20x at 64x4096x4096"
    ), f"where it holds: {gemm.reason}"
    slow = by_claim(ov.claims_int8_kernels(int8_kernels(gemm_ms=1.3)), "INT8 GEMM")
    assert slow.verdict == ov.FAILS and "quantizing the input" in slow.reason, "3.85x fails"


def test_int8_kernel_table_says_not_installed_and_gives_each_speedup():
    from benchmarks import quantization as bq

    text = bq.kernel_table(int8_kernels())
    row = next(line for line in text.splitlines() if "Linear(1024, 1024)" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "268,435,456" and cells[2] == "5.000 (4.500-6.000)", f"size and float32: {cells}"
    assert cells[3].startswith("0.006x: 800.000") and cells[4] == "0.86x: 5.800 (5.220-6.960)", cells
    assert cells[5] == 'not installed (pip install -e ".[int8]")', f"the absent GEMM's cell: {cells}"


# --------------------------------------------------------------------------- module 18


def test_seventy_percent_sparsity_under_two_points_holds():
    claims = ov.claims_compression(compression(fine_tuned=0.96))
    mlp = by_claim(claims, "70 % sparsity, MLP")
    assert mlp.verdict == ov.HOLDS and mlp.measured.startswith("-1.00 pp") and mlp.value == pytest.approx(-1)
    assert "without it 90.00%" in mlp.reason


def test_seventy_percent_sparsity_over_two_points_or_not_run():
    assert by_claim(ov.claims_compression(compression(fine_tuned=0.94)), "sparsity, CNN").verdict == ov.FAILS
    missing = by_claim(ov.claims_compression(compression(sparsities=(0.0, 0.9))), "sparsity, CNN")
    assert missing.verdict == ov.MISSING and "70 % not in the run" in missing.reason


@pytest.mark.parametrize(
    ("speedup", "verdict", "note"),
    [(2.0, ov.HOLDS, ""), (1.05, ov.HOLDS, "within the noise"), (0.8, ov.FAILS, "not faster")],
)
def test_structured_pruning_speedup_against_its_spread(speedup, verdict, note):
    claim = by_claim(ov.claims_compression(compression(speedup=speedup)), "structured")
    assert claim.verdict == verdict and note in claim.reason and claim.low < speedup < claim.high


def test_csr_break_even_is_information_and_says_never():
    claim = by_claim(ov.claims_compression(compression()), "CSR")
    assert claim.verdict == ov.INFO
    assert claim.measured == "99.3% (512x512, batch 1); never (512x512, batch 64)"


# --------------------------------------------------------------------------- module 19


def test_kv_cache_below_five_in_quick_mode_does_not_hold_and_points_to_the_full_mode():
    (claim,) = ov.claims_caching(caching((1.5, 2.5)), quick=True)
    assert claim.verdict == ov.FAILS and claim.value == 2.5
    assert claim.measured == "1.50x at 32, 2.50x at 96 tokens"
    assert "grows with the length" in claim.reason and "full mode" in claim.reason
    assert (claim.low, claim.high) == (pytest.approx(2.5), pytest.approx(10.0))


@pytest.mark.parametrize(("last", "beyond"), [(7.0, False), (12.0, True)])
def test_kv_cache_at_the_longest_length_holds(last, beyond):
    (claim,) = ov.claims_caching(caching((1.5, 3.0, last)))
    assert claim.verdict == ov.HOLDS and claim.value == last
    assert ("beyond the range" in claim.reason) == beyond and "full mode" not in claim.reason


# --------------------------------------------------------------------------- module 20


def test_the_submission_score_holds_when_faster_and_every_gate_holds():
    (claim,) = ov.claims_benchmarking(benchmarking())
    assert claim.verdict == ov.HOLDS and claim.spread == "2.80x-3.10x" and "3 competitions" in claim.reason
    (one,) = ov.claims_benchmarking(benchmarking(runs=1))
    assert one.spread == "" and "one competition" in one.reason


def test_the_submission_score_fails_on_a_missed_gate_or_no_speedup():
    (gate,) = ov.claims_benchmarking(benchmarking(passed=False))
    assert gate.verdict == ov.FAILS and "quality gate missed: CNN_MARATHON" in gate.reason
    (slow,) = ov.claims_benchmarking(benchmarking(score=0.9))
    assert slow.verdict == ov.FAILS and "not faster" in slow.reason


# --------------------------------------------------------------------------- collecting and reporting


CANNED = {
    "acceleration": acceleration,
    "quantization": quantization,
    "compression": compression,
    "caching": caching,
    "benchmarking": benchmarking,
}


def canned_modules(broken: dict[str, BaseException] | None = None) -> tuple[ov.Module, ...]:
    """The real modules with their figure functions replaced: canned figures, or an error."""
    broken = broken or {}

    def runner(name):
        def run(quick: bool) -> dict:
            if name in broken:
                raise broken[name]
            return CANNED[name]()

        return run

    return tuple(ov.Module(m.number, m.name, runner(m.name), m.claims, m.promise) for m in ov.MODULES)


def test_collect_keeps_going_past_a_module_that_cannot_run():
    errors = {
        "quantization": NotImplementedError("quantize (module 17, quantization): implement it"),
        "compression": AssertionError("csr_matmul is wrong"),
        "caching": RuntimeError("boom"),
        "benchmarking": ImportError("no module tinytorch.perf.benchmarking"),
    }
    stream = io.StringIO()
    results = ov.collect(True, canned_modules(errors), ov.Progress(stream, 5))
    assert results["acceleration"]["figures"] is not None and results["acceleration"]["error"] is None
    assert results["quantization"]["error"].startswith("not implemented yet: quantize")
    assert results["compression"]["error"].startswith("a wrong result, not timed")
    assert "RuntimeError: boom" in results["caching"]["error"] and "traceback" in results["caching"]
    assert "could not run" in results["benchmarking"]["error"]
    progress = stream.getvalue().splitlines()
    assert progress[0] == "[1/5] module 16 acceleration ..."
    assert progress[1].startswith("[1/5] module 16 acceleration: measured in ")
    assert progress[3].startswith("[2/5] module 17 quantization: not implemented in ")
    claims = ov.evaluate(results, quick=True)
    missing = [c for c in claims if c.verdict == ov.MISSING]
    assert [c.module for c in missing] == [17, 18, 19, 20]
    assert "implement it" in missing[0].reason


def test_a_failed_pinned_subprocess_is_reported_by_what_its_benchmark_said():
    failed = "the pinned benchmark run failed: "
    errors = {
        "acceleration": RuntimeError(failed + "not implemented yet: matmul_naive (module 16, acceleration)"),
        "quantization": RuntimeError(failed + "wrong result: matmul_blocked gives a wrong product"),
        "compression": RuntimeError("something else"),
    }
    results = ov.collect(True, canned_modules(errors)[:3])
    assert results["acceleration"]["error"] == "not implemented yet: matmul_naive (module 16, acceleration)"
    assert (
        results["quantization"]["error"] == "a wrong result, not timed: matmul_blocked gives a wrong product"
    )
    assert results["compression"]["error"] == "RuntimeError: something else"
    assert ov.summary(ov.evaluate(results, quick=True)) == "no claim could be measured; 3 not measured"


def test_figures_of_an_unexpected_shape_are_not_measured_rather_than_a_crash():
    (claim,) = ov.module_claims(ov.MODULES[4], {"figures": {"score": {}}}, quick=False)
    assert claim.verdict == ov.MISSING and "unexpected shape (KeyError" in claim.reason


def test_table_numbers_each_distinct_reason_once_and_summary_counts_judged_claims():
    claims = [
        ov.Claim(16, "a", "1x", "p", ov.HOLDS, "same reason"),
        ov.Claim(16, "b", "2x", "p", ov.HOLDS, "same reason"),
        ov.Claim(17, "c", "3x", "p", ov.FAILS, "other"),
        ov.Claim(18, "d", "-", "p", ov.MISSING, "not run"),
        ov.Claim(18, "e", "9%", "p", ov.INFO),
    ]
    text = ov.table(claims)
    lines = text.splitlines()
    assert lines[0].startswith("| module | claim") and "the course's promise" in lines[0]
    assert "holds [1]" in lines[2] and "holds [1]" in lines[3] and "does not hold [2]" in lines[4]
    assert [cell.strip() for cell in lines[6].split("|")][-2] == "info"  # no note: no number
    assert lines[-3:] == ["[1] same reason", "[2] other", "[3] not run"]
    assert len({len(line) for line in lines[:7]}) == 1  # aligned columns
    assert ov.summary(claims) == "2 of 3 claims hold on this machine; 1 not measured"


def test_json_is_strict_and_keeps_every_figure():
    report = {
        "claims": [ov.Claim(16, "a", "1x", "p", ov.HOLDS, value=float("nan"), low=1.0)],
        "modules": {"acceleration": {"figures": {"sizes": {64: {"x": np.float32(0.5)}}, "shape": (2, 3)}}},
        "array": np.arange(3),
        "inf": math.inf,
    }
    data = json.loads(ov.to_json(report))
    assert data["claims"][0]["value"] is None and data["claims"][0]["low"] == 1.0
    assert data["claims"][0]["verdict"] == "holds"
    assert data["modules"]["acceleration"]["figures"] == {"sizes": {"64": {"x": 0.5}}, "shape": [2, 3]}
    assert data["array"] == [0, 1, 2] and data["inf"] is None


def test_machine_describes_cpu_cores_python_numpy_blas_threads_and_load(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    m = ov.machine()
    assert m["cpu"] and m["cores"] >= 1 and m["python"].count(".") == 2
    assert m["numpy"] == np.__version__ and "name" in m["blas"]
    assert m["threads"]["OPENBLAS_NUM_THREADS"] == "1"
    assert m["load_average"] is None or len(m["load_average"]) == 3
    assert {"library", "version", "architecture", "threads"} <= set(m["blas_kernel"]), (
        f"the BLAS kernels in the machine description: {m['blas_kernel']}"
    )


def test_run_prints_the_table_writes_the_json_and_says_when_there_are_no_plots(tmp_path, monkeypatch):
    def no_matplotlib(results, out):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(ov, "plots", no_matplotlib)
    stream = io.StringIO()
    report, code = ov.run(True, tmp_path, stream=stream, modules=canned_modules())
    text = stream.getvalue()
    assert code == 0 and "quick mode" in text and "| 19     | KV-cache generation speedup" in text
    assert "plots: none, matplotlib is not installed (pip install -e .[plots])" in text
    data = json.loads((tmp_path / "overview-quick.json").read_text())
    assert data["mode"] == "quick" and data["plots"] == [] and data["schema"] == ov.SCHEMA
    assert {c["module"] for c in data["claims"]} == {16, 17, 18, 19, 20}
    assert set(data["modules"]) == set(CANNED) and "load_before" in data["modules"]["caching"]
    assert {"cpu", "cores", "python", "numpy", "blas", "threads", "load_average"} <= set(data["machine"])
    assert data["modules"]["caching"]["figures"] == json.loads(json.dumps(caching()))  # every figure


def test_run_exits_1_when_a_module_could_not_be_measured(tmp_path):
    broken = canned_modules({"caching": NotImplementedError("generate (module 19, caching)")})
    report, code = ov.run(False, tmp_path, want_plots=False, stream=io.StringIO(), modules=broken)
    assert code == 1 and report["mode"] == "full"
    assert (tmp_path / "overview-full.json").is_file()


class FakeArtist:
    """Stands for any matplotlib object: every method exists and records its call."""

    def __init__(self, calls: list[str], name: str = "artist") -> None:
        self._calls, self._name = calls, name

    def __getattr__(self, method: str):
        def call(*args, **kwargs):
            self._calls.append(f"{self._name}.{method}")
            if method == "plot":
                return (FakeArtist(self._calls, "line"),)
            if method == "savefig":
                Path(args[0]).write_bytes(b"\x89PNG fake")
            return FakeArtist(self._calls, method)

        return call


def fake_matplotlib(calls: list[str]) -> tuple[types.ModuleType, types.ModuleType]:
    """A stand-in for the optional `plots` extra: the drawing code runs, every call is recorded."""
    matplotlib = types.ModuleType("matplotlib")
    pyplot = types.ModuleType("matplotlib.pyplot")
    matplotlib.use = lambda backend: calls.append(f"use {backend}")
    matplotlib.pyplot = pyplot

    def subplots(nrows=1, ncols=1, **kwargs):
        axes = [FakeArtist(calls, "axes") for _ in range(nrows * ncols)]
        return FakeArtist(calls, "figure"), (axes[0] if len(axes) == 1 else tuple(axes))

    pyplot.subplots = subplots
    pyplot.close = lambda fig: calls.append("close")
    return matplotlib, pyplot


def test_plots_draw_the_four_curves(tmp_path, monkeypatch):
    """The drawing code on every module's figures, with matplotlib replaced by a recorder (the
    `plots` extra is optional; the real library is exercised by `tinytorch bench` with it)."""
    calls: list[str] = []
    matplotlib, pyplot = fake_matplotlib(calls)
    monkeypatch.setitem(sys.modules, "matplotlib", matplotlib)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", pyplot)
    results = {name: {"figures": make()} for name, make in CANNED.items()}
    results["compression"]["figures"]["accuracy"] = compression()["accuracy"]
    results["quantization"]["figures"]["kernels"] = int8_kernels()
    written = ov.plots(results, tmp_path)
    assert [p.name for p in written] == [
        "acceleration_speedup.png",
        "quantization_speedup.png",
        "compression_accuracy.png",
        "caching_generation.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
    assert calls[0] == "use Agg" and calls.count("close") == 4
    assert calls.count("axes.plot") >= 9 and calls.count("figure.savefig") == 4


# --------------------------------------------------------------------------- the module benchmarks it reuses


def test_every_module_benchmark_still_has_the_function_the_overview_calls():
    called = {
        "acceleration": "figures",
        "quantization": "figures",
        "compression": "measure",
        "caching": "figures",
        "benchmarking": "figures",
    }
    assert set(called) == {m.name for m in ov.MODULES}
    for name, function in called.items():
        tree = ast.parse((ROOT / "benchmarks" / f"{name}.py").read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert function in defined, f"benchmarks/{name}.py has no {function}(): the overview calls it"


# --------------------------------------------------------------------------- the CLI


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(list(argv), out=out), out.getvalue()


def test_bench_without_a_module_runs_the_overview_with_its_options(
    fake_repo: Path, capfd: pytest.CaptureFixture[str]
):
    code, out = run_cli("bench", "--quick")
    assert code == 1 and "no benchmarks/overview.py" in out
    (fake_repo / "benchmarks").mkdir()
    (fake_repo / "benchmarks" / "overview.py").write_text("import sys\nprint('overview', sys.argv[1:])\n")
    assert run_cli("bench")[0] == 0
    assert "overview []" in capfd.readouterr().out
    assert run_cli("bench", "--quick", "--no-plots", "--out", "results")[0] == 0
    expected = ["--quick", "--no-plots", "--out", str(Path("results").resolve())]
    assert f"overview {expected}" in capfd.readouterr().out


def test_bench_quick_before_a_module_reaches_its_benchmark_and_overview_options_do_not(
    fake_repo: Path, capfd: pytest.CaptureFixture[str]
):
    (fake_repo / "benchmarks").mkdir()
    (fake_repo / "benchmarks" / "alpha.py").write_text("import sys\nprint('alpha', sys.argv[1:])\n")
    assert run_cli("bench", "--quick", "alpha")[0] == 0
    assert "alpha ['--quick']" in capfd.readouterr().out
    code, out = run_cli("bench", "--no-plots", "alpha")
    assert code == 2 and "belong to the overview" in out


# --------------------------------------------------------------------------- module 20, unfinished modules


def raise_in(module: str, message: str) -> Callable[..., Any]:
    """A function that raises ``NotImplementedError(message)`` from a file of kata module
    ``module`` as the switch serves it: what a student's unwritten stub there does."""
    package = importlib.import_module(f"tinytorch.perf.{module}")
    where = str(Path(package.__path__[0]) / "_compiled_by_a_test.py")  # no file: coverage omits it
    namespace: dict[str, Any] = {}
    source = f"def unfinished(*args, **kwargs):\n    raise NotImplementedError({message!r})\n"
    exec(compile(source, where, "exec"), namespace)
    return namespace["unfinished"]


def measured(seconds: float) -> types.SimpleNamespace:
    quality = types.SimpleNamespace(metric="accuracy", value=0.97, target=0.95, passed=True, reason="")
    return types.SimpleNamespace(
        latency=types.SimpleNamespace(p50=seconds),
        quality=quality,
        flops=None,
        train_step=None,
        peak_memory_bytes=None,
    )


class FakeEvent:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, model: Callable[[], Any]) -> Any:
        return model()


class FakeCompetition:
    """TinyMLPerf's interface as benchmarks/benchmarking.py uses it: every event's candidate runs
    once and is 2x faster than its baseline; the events must match the models exactly."""

    EVENTS = ("MLP_SPRINT", "CNN_MARATHON", "TRANSFORMER_DECATHLON")

    def __init__(self, events=None, warmup=None, runs=None, budget=None) -> None:
        self.events = {e.name: e for e in (events or [FakeEvent(n) for n in self.EVENTS])}

    def event(self, name: str) -> FakeEvent:
        return self.events[name]

    def baseline(self, name: str) -> None:
        return None

    def run(self, models: dict) -> dict:
        assert set(models) == set(self.events), "the fake's events and models must match, as TinyMLPerf's"
        results = {}
        for name, event in self.events.items():
            event.run(models[name])
            results[name] = types.SimpleNamespace(
                speedup=2.0, baseline=measured(0.02), candidate=measured(0.01)
            )
        return results


@dataclasses.dataclass
class FakeSubmission:
    models: dict
    optimizations: tuple = ("structured-pruning", "kv-cache")
    results: Any = None
    scorecard: Any = None

    def compute_score(self, bench: FakeCompetition) -> types.SimpleNamespace:
        self.results = bench.run(self.models)
        self.scorecard = types.SimpleNamespace(score=2.0, bounds=(2.0, 2.0))
        return self.scorecard


@pytest.fixture
def fake_competition(monkeypatch):
    """benchmarks/benchmarking.py on a fake competition: the MLP and CNN models run; the decathlon's
    model raises what module 19's unwritten KVCache raises; module 17's INT8 extra raises what
    module 17's unwritten quantize_model raises. Returns (the benchmark module, the models)."""
    import tinytorch.perf.benchmarking as perf_benchmarking

    from benchmarks import benchmarking

    models = {
        "MLP_SPRINT": lambda: np.zeros(3),
        "CNN_MARATHON": lambda: np.zeros(3),
        "TRANSFORMER_DECATHLON": raise_in("caching", "KVCache.__init__ (module 19, caching): implement it"),
    }
    monkeypatch.setattr(perf_benchmarking, "TinyMLPerf", FakeCompetition)
    monkeypatch.setattr(perf_benchmarking, "build_submission", lambda: FakeSubmission(dict(models)))
    monkeypatch.setattr(benchmarking, "_state_bytes", lambda model: None)
    monkeypatch.setattr(
        benchmarking,
        "int8_figures",
        raise_in("quantization", "quantize_model (module 17, quantization): do it"),
    )
    return benchmarking, models


def test_an_event_needing_an_unfinished_module_is_not_measured_and_the_others_are(fake_competition):
    """A student with module 20 written but not module 19 (or 17): the decathlon and the INT8 extra
    are not measured, each naming its module, and the MLP and CNN events still are."""
    benchmarking, _ = fake_competition
    fig = benchmarking.figures(quick=True)
    assert set(fig["events"]) == {"MLP_SPRINT", "CNN_MARATHON"}, "the events measured"
    assert list(fig["not_measured"]) == ["TRANSFORMER_DECATHLON"], "the events not measured"
    why = fig["not_measured"]["TRANSFORMER_DECATHLON"]
    assert "needs module 19 (caching)" in why and "KVCache.__init__" in why, (
        f"the reason names module 19: {why}"
    )
    assert fig["int8"] is None and "needs module 17 (quantization)" in fig["int8_not_measured"], (
        f"the INT8 extra's reason names module 17: {fig['int8_not_measured']}"
    )
    assert fig["score"]["median"] == 2.0, "the score over the events measured"
    text = benchmarking.report(fig)
    row = next(line for line in text.splitlines() if line.strip("| ").startswith("TRANSFORMER_DECATHLON"))
    assert "not measured" in row, f"the decathlon's row of the table: {row}"
    assert "over 2 of 3 events" in text, "the score line says it leaves an event out"
    for module in ("module 19 (caching)", "module 17 (quantization)"):
        assert f"needs {module}" in text, f"the report names {module}"
    (claim,) = ov.claims_benchmarking(fig)
    assert claim.verdict == ov.MISSING and "TRANSFORMER_DECATHLON" in claim.reason, (
        f"the overview's claim of a partial run: {claim}"
    )


def test_module_20s_own_unfinished_code_and_crashes_stop_the_benchmark(fake_competition):
    """Only another module's unfinished code is left out: module 20's own NotImplementedError, and
    any other error, still stop the run (a wrong answer is never shown as not measured)."""
    benchmarking, models = fake_competition
    mine = raise_in("benchmarking", "CachedGenerator.generate (module 20, benchmarking): implement it")
    for model, error in ((mine, NotImplementedError), (lambda: 1 / 0, ZeroDivisionError)):
        models["TRANSFORMER_DECATHLON"] = model
        with pytest.raises(error):
            benchmarking.figures(quick=True)


def test_main_names_the_module_the_competition_is_missing(monkeypatch, capsys):
    from benchmarks import benchmarking

    for module, said in (
        ("profiling", "needs module 15 (profiling) first"),
        ("benchmarking", "needs your module 20 code first"),
    ):
        monkeypatch.setattr(benchmarking, "figures", raise_in(module, f"a stub of module {module}"))
        assert benchmarking.main(["--quick"]) == 1, "the exit code of an unfinished run"
        printed = capsys.readouterr().out
        assert said in printed, f"main's message for an unfinished {module}: {printed}"


def test_unfinished_module_reads_the_traceback_and_the_import_not_the_message():
    from benchmarks.common import unfinished_module

    def raised(fn: Callable[[], Any]) -> BaseException:
        try:
            fn()
        except Exception as error:  # the error as a caller catches it
            return error
        raise AssertionError("fn did not raise")

    # the message names module 19, the file that raised is module 17's: the file decides
    error = raised(raise_in("quantization", "KVCache.__init__ (module 19, caching)"))
    assert unfinished_module(error).name == "quantization", "the module of the raising file"
    missing = ModuleNotFoundError("no module", name="tinytorch.perf.caching")
    assert unfinished_module(missing).name == "caching", "the kata module an import could not find"
    assert unfinished_module(ModuleNotFoundError("no module", name="scipy")) is None, "a foreign import"
    assert unfinished_module(ValueError("bad")) is None, "a wrong value is no unfinished module"

    def elsewhere() -> None:
        raise NotImplementedError("raised in a test file, no kata module's")

    assert unfinished_module(raised(elsewhere)) is None, "an error raised outside every kata module"


def test_every_measuring_script_pins_blas_with_the_one_rule_before_numpy_loads():
    """benchmarks/<module>.py, the overview and submit.py call benchmarks.pin_blas_threads before
    anything imports numpy (acceleration pins to its --threads value, the same variables)."""
    from benchmarks import BLAS_THREAD_VARS, pin_blas_threads

    env = pin_blas_threads({"OMP_NUM_THREADS": "4"})
    assert env == {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "1"}, (
        "one thread where unset, the caller's choice kept"
    )
    loads_numpy = ("numpy", "tinytorch", "benchmarks.common")
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if script.name in ("__init__.py", "common.py", "acceleration.py"):
            continue
        tree = ast.parse(script.read_text())
        pinned_at = next(
            (
                n.lineno
                for n in ast.walk(tree)
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "pin_blas_threads"
            ),
            None,
        )
        assert pinned_at is not None, f"benchmarks/{script.name} never calls pin_blas_threads"
        first_load = min(
            [
                n.lineno
                for n in tree.body
                if (isinstance(n, ast.Import) and any(a.name.startswith(loads_numpy) for a in n.names))
                or (isinstance(n, ast.ImportFrom) and (n.module or "").startswith(loads_numpy))
            ]
            or [math.inf]
        )
        assert pinned_at < first_load, f"benchmarks/{script.name} pins BLAS after importing numpy"
    assert "BLAS_THREAD_VARS" in (ROOT / "benchmarks" / "acceleration.py").read_text(), (
        "acceleration's variables"
    )
    assert BLAS_THREAD_VARS == ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def test_the_overview_measures_the_reference_in_a_checkout_and_the_students_code_in_a_release(tmp_path: Path):
    # a student release has no solutions/: defaulting to them would measure nothing at all
    assert ov.default_impl(tmp_path) == "katas", "a tree without solutions/ (a release) measures the katas"
    (tmp_path / "solutions").mkdir()
    assert ov.default_impl(tmp_path) == "solutions", "the instructor's checkout measures the reference"
