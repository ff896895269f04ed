"""Benchmark for module 16 (acceleration): naive vs blocked vs BLAS matmul, side by side.

    python benchmarks/acceleration.py            # the full run (about a minute on 2 cores)
    python benchmarks/acceleration.py --quick    # sizes 32..128, a few seconds
    tinytorch bench acceleration                 # the same command through the CLI

Runs whichever implementation ``TINYTORCH_IMPL`` selects (your katas by default, the reference
with ``TINYTORCH_IMPL=solutions``). Every kernel's result is checked against numpy before it is
timed. For each size n (square n x n @ n x n, float32) it prints the median time over several
runs after a warm-up, the rate GFLOP/s = 2 n^3 / t, the speedup over the naive loop and the
fraction of the BLAS rate; then a sweep of block sizes for ``matmul_blocked``.

The naive triple loop runs only up to ``--naive-max`` (its time grows as n^3 in the interpreter:
about 1 s at n = 128 here). Beyond that its speedup column is extrapolated from the naive rate
measured at the largest size it ran (the loop is interpreter-bound, so its GFLOP/s barely moves
with n) and marked with "~". Timing uses ``time.perf_counter`` with a median, not module 15's
Timer, so this benchmark runs whether or not your profiling kata is solved.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (32, 64, 128, 256, 512, 1024)
QUICK_SIZES = (32, 64, 128)
DEFAULT_BLOCK_SIZES = (16, 32, 64, 128, 256, 512)
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def median_seconds(fns: dict[str, Callable[[], object]], repeats: dict[str, int]) -> dict[str, float]:
    """Median wall time of each ``fn()``, measured side by side.

    One untimed warm-up call each (it also served the correctness check), then rounds: every
    round times each function once, in turn, so a burst of load from other processes hits all
    of them alike instead of one. ``repeats[name]`` rounds for each (the slow naive loop gets fewer).
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(max(repeats.values())):
        for name, fn in fns.items():
            if round_ < repeats[name]:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def gflops(n: int, seconds: float) -> float:
    """2 n^3 floating-point operations (a multiply and an add per term) per second, in billions."""
    return 2 * n**3 / seconds / 1e9


def blas_description() -> str:
    """numpy's BLAS (name and version, from ``np.show_config``) and the BLAS environment variables."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy or an unusual build: the config is informative only
        name = "unknown"
    env = ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in BLAS_ENV)
    return f"numpy {np.__version__}, BLAS {name}; {env}"


def load_description() -> str:
    """The 1-minute load average: other processes on the cores distort every figure, threaded BLAS most."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on every platform
        return "load average: unknown"
    cores = os.cpu_count() or 1
    warning = (
        " (busy: compare with OPENBLAS_NUM_THREADS=1, or rerun on a quiet machine)"
        if load > 0.5 * cores
        else ""
    )
    return f"load average (1 min): {load:.2f} on {cores} cores{warning}"


def _load_kernels():
    if str(ROOT) not in sys.path:  # `python benchmarks/acceleration.py` from a clone, not installed
        sys.path.insert(0, str(ROOT))
    from tinytorch.perf.acceleration import matmul_blocked, matmul_naive, matmul_numpy

    from tinytorch.perf import impl_for

    return impl_for("acceleration"), matmul_naive, matmul_blocked, matmul_numpy


def _check(name: str, got: np.ndarray, A: np.ndarray, B: np.ndarray) -> None:
    """Refuse to time a wrong kernel. float32 bound as in the tests: K eps (|A| @ |B|)."""
    exact = A.astype(np.float64) @ B.astype(np.float64)
    bound = (
        A.shape[1] * np.finfo(np.float32).eps * (np.abs(A).astype(np.float64) @ np.abs(B).astype(np.float64))
    )
    if got.shape != exact.shape or not np.all(np.abs(got - exact) <= bound):
        raise AssertionError(
            f"{name} gives a wrong product for {A.shape} @ {B.shape}: fix it before timing it"
        )


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def run(
    sizes: tuple[int, ...],
    naive_max: int,
    repeats: int,
    block_size: int,
    block_sizes: tuple[int, ...],
    sweep_sizes: tuple[int, ...],
) -> str:
    impl, matmul_naive, matmul_blocked, matmul_numpy = _load_kernels()
    rng = np.random.default_rng(0)
    out = [
        f"# Module 16 benchmark: matmul kernels (TINYTORCH_IMPL -> {impl})",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        blas_description(),
        load_description(),
        f"float32 n x n @ n x n; median of {repeats} interleaved runs after a warm-up (naive: "
        f"{max(1, repeats // 3)}); blocked uses block_size={block_size}",
        "",
    ]

    rows, naive_rate = [], None
    for n in sizes:
        A = rng.standard_normal((n, n)).astype(np.float32)
        B = rng.standard_normal((n, n)).astype(np.float32)
        kernels = [
            ("blocked", lambda A=A, B=B: matmul_blocked(A, B, block_size)),
            ("numpy", lambda A=A, B=B: matmul_numpy(A, B)),
        ]
        if n <= naive_max:
            kernels.insert(0, ("naive", lambda A=A, B=B: matmul_naive(A, B)))
        for name, fn in kernels:
            _check(name, fn(), A, B)  # the untimed first call: a correctness check and the warm-up
        reps = {name: max(1, repeats // 3) if name == "naive" else repeats for name, _ in kernels}
        times = median_seconds(dict(kernels), reps)
        if "naive" in times:
            naive_rate = gflops(n, times["naive"])
        blas_rate = gflops(n, times["numpy"])
        for name, t in times.items():
            rate = gflops(n, t)
            if "naive" in times:
                speedup = f"{times['naive'] / t:,.0f}x"
            elif naive_rate:
                speedup = f"~{rate / naive_rate:,.0f}x"
            else:
                speedup = "-"
            rows.append([str(n), name, f"{t * 1e3:,.3f}", f"{rate:,.3f}", speedup, f"{rate / blas_rate:.1%}"])
    out += [_table(["n", "kernel", "time (ms)", "GFLOP/s", "speedup over naive", "of BLAS rate"], rows), ""]

    best = {}
    for n in sweep_sizes:
        A = rng.standard_normal((n, n)).astype(np.float32)
        B = rng.standard_normal((n, n)).astype(np.float32)
        fns = {"numpy": lambda A=A, B=B: matmul_numpy(A, B)}
        for bs in block_sizes:
            fns[str(bs)] = lambda A=A, B=B, bs=bs: matmul_blocked(A, B, bs)
            _check(f"matmul_blocked(block_size={bs})", fns[str(bs)](), A, B)
        fns["numpy"]()  # warm-up
        times = median_seconds(fns, dict.fromkeys(fns, repeats))
        blas_t = times.pop("numpy")
        sweep = [(t, int(bs)) for bs, t in times.items()]
        best[n] = min(sweep)[1]
        rows = [
            [
                str(n),
                str(bs),
                f"{t * 1e3:,.2f}",
                f"{gflops(n, t):,.2f}",
                f"{blas_t / t:.1%}",
                "<- best" if bs == best[n] else "",
            ]
            for t, bs in sweep
        ]
        out += [_table(["n", "block_size", "time (ms)", "GFLOP/s", "of BLAS rate", ""], rows), ""]
    if best:
        out.append("best block size: " + ", ".join(f"{bs} at n={n}" for n, bs in best.items()))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/acceleration.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="sizes 32..128, 3 repeats, a short sweep at n=128"
    )
    parser.add_argument("--sizes", type=int, nargs="+", help=f"matrix sizes (default {DEFAULT_SIZES})")
    parser.add_argument(
        "--naive-max", type=int, default=128, help="largest n for the naive loop (default 128)"
    )
    parser.add_argument("--repeats", type=int, help="timed runs per measurement, median taken (default 7)")
    parser.add_argument(
        "--block-size", type=int, default=64, help="block size in the main table (default 64)"
    )
    parser.add_argument("--block-sizes", type=int, nargs="+", help=f"sweep (default {DEFAULT_BLOCK_SIZES})")
    parser.add_argument("--sweep-sizes", type=int, nargs="+", help="sizes of the sweep (default 512 1024)")
    args = parser.parse_args(argv)
    sizes = tuple(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES))
    sweep_sizes = tuple(args.sweep_sizes or ((128,) if args.quick else (512, 1024)))
    block_sizes = tuple(args.block_sizes or ((16, 32, 64, 128) if args.quick else DEFAULT_BLOCK_SIZES))
    repeats = args.repeats or (3 if args.quick else 7)
    for name, values in (("sizes", sizes), ("sweep sizes", sweep_sizes), ("block sizes", block_sizes)):
        if any(v < 1 for v in values):
            parser.error(f"{name} must be positive integers, got {values}")
    if repeats < 1 or args.block_size < 1:
        parser.error(f"--repeats and --block-size must be >= 1, got {repeats} and {args.block_size}")
    try:
        print(run(sizes, args.naive_max, repeats, args.block_size, block_sizes, sweep_sizes))
    except NotImplementedError as error:
        print(f"not implemented yet: {error}", file=sys.stderr)
        return 1
    except AssertionError as error:
        print(f"wrong result: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
