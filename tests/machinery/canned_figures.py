"""Canned figures for the overview's tests: small dicts of the shape each module's benchmark
returns (``benchmarks/<module>.py``), and the helpers that judge a module's declared claims on them.

Nothing here is timed or measured.
"""

from __future__ import annotations

import importlib
import types

from benchmarks.claims import Finding


def bench(name: str) -> types.ModuleType:
    """A module's benchmark, ``benchmarks/<name>.py``, imported when a test needs it."""
    return importlib.import_module(f"benchmarks.{name}")


def judged(name: str, fig: dict, quick: bool = False) -> list[Finding]:
    """The rows of every claim ``benchmarks/<name>.py`` declares, judged on ``fig``."""
    return [row for claim in bench(name).CLAIMS for row in claim.judge(fig, quick)]


def judged_claim(name: str, claim: str, fig: dict, quick: bool = False) -> list[Finding]:
    """The rows of the one claim named ``claim`` that ``benchmarks/<name>.py`` declares."""
    (found,) = [c for c in bench(name).CLAIMS if c.name == claim]
    return found.judge(fig, quick)


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
    return {
        "kernels": [k for k in bench("int8_kernels").KERNELS if k not in absent],
        "absent": absent,
        "sizes": sizes,
    }


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


def by_claim(claims: list[Finding], text: str) -> Finding:
    (found,) = [c for c in claims if text in c.claim]
    return found


CANNED = {
    "acceleration": acceleration,
    "quantization": quantization,
    "compression": compression,
    "caching": caching,
    "benchmarking": benchmarking,
}
