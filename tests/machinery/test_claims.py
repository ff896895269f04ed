"""Each module's declared claims (``CLAIMS`` in ``benchmarks/<module>.py``), judged on canned figures.

Nothing here is timed or measured: each module's figures are small dicts of the shape its
benchmark returns (``canned_figures``), and the tests check what its claims make of them: the
verdict against the course's promise and its reason, and the spread carried into each ratio.
"""

from __future__ import annotations

import json

import pytest
from canned_figures import (
    acceleration,
    bench,
    benchmarking,
    by_claim,
    caching,
    compression,
    int8_kernels,
    judged,
    judged_claim,
    quantization,
)

from benchmarks.claims import FAILS, HOLDS, INFO, MISSING

KERNEL_CLAIM = "INT8 latency of each kernel"


# --------------------------------------------------------------------------- module 16


def test_backend_speedup_beyond_the_promised_range_holds_and_says_why():
    claims = judged("acceleration", acceleration(naive_s=1.0, numpy_s=1e-4))
    blas = by_claim(claims, "BLAS over the naive")
    assert blas.verdict == HOLDS and blas.value == pytest.approx(1e4)
    assert "interpreted Python" in blas.reason and "n=64" in blas.measured  # measured, not extrapolated
    # the spread of a ratio: naive's quartiles over numpy's
    assert blas.low == pytest.approx(1.0 / 1.1e-4) and blas.high == pytest.approx(1.0 / 0.9e-4)


def test_backend_speedup_within_and_below_the_range():
    inside = by_claim(judged("acceleration", acceleration(naive_s=1.0, numpy_s=0.02)), "BLAS over")
    assert inside.verdict == HOLDS and inside.reason == ""
    below = by_claim(judged("acceleration", acceleration(naive_s=1.0, numpy_s=0.5)), "BLAS over")
    assert below.verdict == FAILS and "only 2.00x" in below.reason


def test_blocked_fraction_of_blas_is_information_at_the_largest_size_with_the_best_block():
    claim = by_claim(judged("acceleration", acceleration()), "fraction of BLAS")
    assert claim.verdict == INFO and claim.measured == "50% at n=128"
    assert "best block size 128: 80% of BLAS" in claim.reason


def test_acceleration_figures_from_json_have_string_keys_and_busy_warnings_show():
    fig = json.loads(json.dumps(acceleration()))  # as a pinned subprocess returns them
    fig["warnings"] = ["n=64: blocked is faster than one BLAS call"]
    claims = judged("acceleration", fig)
    assert len(claims) == 3 and "machine was busy" in by_claim(claims, "BLAS over").reason


def test_without_a_measured_naive_loop_the_speedup_is_not_measured():
    fig = acceleration()
    del fig["sizes"][64]["naive"]
    claims = judged("acceleration", fig)
    assert by_claim(claims, "BLAS over").verdict == MISSING


# --------------------------------------------------------------------------- module 17


def test_int8_accuracy_and_size_hold_latency_does_not_and_names_the_missing_int8_gemm():
    claims = judged("quantization", quantization())
    assert len(claims) == 6  # three claims for each of the two models
    change = by_claim(claims, "accuracy change, MLP")
    assert change.verdict == HOLDS and change.measured.startswith("+0.00 pp")  # never "-0.00"
    assert "percentile observer: -0.50 pp" in change.reason
    size = by_claim(claims, "weight size, CNN")
    assert size.verdict == HOLDS and size.value == 4.0 and "3.42x" in size.reason
    latency = by_claim(claims, "latency, MLP")
    assert latency.verdict == FAILS and latency.value == pytest.approx(0.05)
    assert "numpy has no INT8 GEMM" in latency.reason and "batch 359" in latency.claim
    assert "each product takes ~50 us" in latency.reason, "the zoo's latency reason: the sizes"
    assert (latency.low, latency.high) == (pytest.approx(0.5 / 40), pytest.approx(2 / 10))


def test_int8_claims_fail_on_a_large_accuracy_drop_and_hold_on_fast_int8():
    claims = judged("quantization", quantization(int8_acc=0.95, int8_ms=0.2))
    change = by_claim(claims, "accuracy change, MLP")
    assert change.verdict == FAILS and "loses 2.00 points" in change.reason
    assert by_claim(claims, "latency, MLP").verdict == HOLDS


def test_int8_four_times_names_each_kernel_and_the_size_and_the_missing_gemm():
    claims = judged("quantization", dict(quantization(), kernels=int8_kernels()))
    assert len(claims) == 9, "three claims per zoo model and one per INT8 kernel"
    naive = by_claim(claims, "naive int32 kernel, Linear(1024, 1024), batch 256")
    assert naive.verdict == FAILS and naive.value == pytest.approx(5.0 / 800), "naive speedup"
    assert "numpy's generic integer loops" in naive.reason, "the naive kernel's reason"
    blas = by_claim(claims, "exact chunked-BLAS kernel")
    assert blas.verdict == FAILS and blas.value == pytest.approx(5.0 / 5.8), "BLAS speedup"
    assert blas.measured == "0.86x (5.00 -> 5.80 ms)", "the BLAS kernel's measured text"
    assert blas.reason.startswith(
        "does not hold with the exact chunked-BLAS kernel at Linear(1024, 1024), batch 256; "
        "the products alone: 0.81x at 256x1024x1024, 0.69x at 64x4096x4096; float32 BLAS"
    ), f"the verdict names kernel, size, largest product and why: {blas.reason}"
    assert (blas.low, blas.high) == (pytest.approx(4.5 / 6.96), pytest.approx(6.0 / 5.22)), "spread"
    gemm = by_claim(claims, "INT8 GEMM")
    assert gemm.verdict == MISSING and "not installed" in gemm.reason, "absent GEMM: not measured"


def test_int8_four_times_holds_with_a_fast_gemm_and_says_where():
    claims = judged_claim("quantization", KERNEL_CLAIM, {"kernels": int8_kernels(gemm_ms=1.25)})
    gemm = by_claim(claims, "INT8 GEMM")
    assert gemm.verdict == HOLDS and gemm.value == pytest.approx(4.0), "4.00x is the promise"
    assert gemm.reason == (
        "holds with the INT8 GEMM (onnxruntime) at Linear(1024, 1024), batch 256; "
        "the products alone: 3.76x at 256x1024x1024, 3.20x at 64x4096x4096"
    ), f"where it holds: {gemm.reason}"
    slow = by_claim(
        judged_claim("quantization", KERNEL_CLAIM, {"kernels": int8_kernels(gemm_ms=1.3)}), "INT8 GEMM"
    )
    assert slow.verdict == FAILS and "quantizing the input" in slow.reason, "3.85x fails"


def test_int8_kernel_table_says_not_installed_and_gives_each_speedup():
    text = bench("int8_kernels").kernel_table(int8_kernels())
    row = next(line for line in text.splitlines() if "Linear(1024, 1024)" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "268,435,456" and cells[2] == "5.000 (4.500-6.000)", f"size and float32: {cells}"
    assert cells[3].startswith("0.006x: 800.000") and cells[4] == "0.86x: 5.800 (5.220-6.960)", cells
    assert cells[5] == 'not installed (pip install -e ".[int8]")', f"the absent GEMM's cell: {cells}"


# --------------------------------------------------------------------------- module 18


def test_seventy_percent_sparsity_under_two_points_holds():
    claims = judged("compression", compression(fine_tuned=0.96))
    mlp = by_claim(claims, "70 % sparsity, MLP")
    assert mlp.verdict == HOLDS and mlp.measured.startswith("-1.00 pp") and mlp.value == pytest.approx(-1)
    assert "without it 90.00%" in mlp.reason


def test_seventy_percent_sparsity_over_two_points_or_not_run():
    assert by_claim(judged("compression", compression(fine_tuned=0.94)), "sparsity, CNN").verdict == FAILS
    missing = by_claim(judged("compression", compression(sparsities=(0.0, 0.9))), "sparsity, CNN")
    assert missing.verdict == MISSING and "70 % not in the run" in missing.reason


@pytest.mark.parametrize(
    ("speedup", "verdict", "note"),
    [(2.0, HOLDS, ""), (1.05, HOLDS, "within the noise"), (0.8, FAILS, "not faster")],
)
def test_structured_pruning_speedup_against_its_spread(speedup, verdict, note):
    claim = by_claim(judged("compression", compression(speedup=speedup)), "structured")
    assert claim.verdict == verdict and note in claim.reason and claim.low < speedup < claim.high


def test_csr_break_even_is_information_and_says_never():
    claim = by_claim(judged("compression", compression()), "CSR")
    assert claim.verdict == INFO
    assert claim.measured == "99.3% (512x512, batch 1); never (512x512, batch 64)"


# --------------------------------------------------------------------------- module 19


def test_kv_cache_below_five_in_quick_mode_does_not_hold_and_points_to_the_full_mode():
    (claim,) = judged("caching", caching((1.5, 2.5)), quick=True)
    assert claim.verdict == FAILS and claim.value == 2.5
    assert claim.measured == "1.50x at 32, 2.50x at 96 tokens"
    assert "grows with the length" in claim.reason and "full mode" in claim.reason
    assert (claim.low, claim.high) == (pytest.approx(2.5), pytest.approx(10.0))


@pytest.mark.parametrize(("last", "beyond"), [(7.0, False), (12.0, True)])
def test_kv_cache_at_the_longest_length_holds(last, beyond):
    (claim,) = judged("caching", caching((1.5, 3.0, last)))
    assert claim.verdict == HOLDS and claim.value == last
    assert ("beyond the range" in claim.reason) == beyond and "full mode" not in claim.reason


# --------------------------------------------------------------------------- module 20


def test_the_submission_score_holds_when_faster_and_every_gate_holds():
    (claim,) = judged("benchmarking", benchmarking())
    assert claim.verdict == HOLDS and claim.spread == "2.80x-3.10x" and "3 competitions" in claim.reason
    (one,) = judged("benchmarking", benchmarking(runs=1))
    assert one.spread == "" and "one competition" in one.reason


def test_the_submission_score_fails_on_a_missed_gate_or_no_speedup():
    (gate,) = judged("benchmarking", benchmarking(passed=False))
    assert gate.verdict == FAILS and "quality gate missed: CNN_MARATHON" in gate.reason
    (slow,) = judged("benchmarking", benchmarking(score=0.9))
    assert slow.verdict == FAILS and "not faster" in slow.reason
