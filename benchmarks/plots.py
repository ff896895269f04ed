"""The overview's PNG plots: the curves behind the headline claims (``tinytorch bench``).

Speedup vs matrix size (module 16), INT8 speedup vs layer size (17), accuracy vs sparsity (18)
and generation time vs length (19), each from the figures its module's benchmark returned, with
the promise's band read from that benchmark's claims. Drawing needs matplotlib, the optional
``plots`` extra (``pip install -e .[plots]``); the overview writes its table and JSON without it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.claims import int_keys


def acceleration(fig: dict[str, Any], plt: Any) -> Any:
    """Module 16: the speedup over the naive loop (measured and extrapolated) and the rate."""
    from benchmarks import acceleration as bench

    sizes = int_keys(fig["sizes"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for kernel, style, color in (("numpy", "o-", "tab:blue"), ("blocked", "s-", "tab:orange")):
        ns = sorted(n for n in sizes if kernel in sizes[n])
        measured = [(n, sizes[n][kernel]["speedup"]) for n in ns if "speedup" in sizes[n][kernel]]
        estimated = [
            (n, sizes[n][kernel]["speedup_estimated"]) for n in ns if "speedup_estimated" in sizes[n][kernel]
        ]
        label = "BLAS" if kernel == "numpy" else "blocked"
        if measured:
            left.plot(*zip(*measured, strict=True), style, color=color, label=f"{label} (measured)")
        if estimated:
            xs, ys = zip(*estimated, strict=True)
            left.plot(xs, ys, style[0] + "--", color=color, mfc="none", label=f"{label} (extrapolated)")
        right.plot(ns, [sizes[n][kernel]["gflops"] for n in ns], style, color=color, label=label)
    left.axhspan(
        bench.SPEEDUP_MIN, bench.SPEEDUP_MAX, color="green", alpha=0.12, label="the course's 10-100x"
    )
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
    return figure


def quantization(fig: dict[str, Any], plt: Any) -> Any:
    """Module 17: each INT8 kernel's speedup over float32 as the layer grows (none without kernels)."""
    from benchmarks import quantization as bench

    kernels = fig.get("kernels")
    if not (kernels and kernels.get("sizes")):
        return None
    figure, ax = plt.subplots(figsize=(6.5, 4))
    for kernel, label in bench.CLAIM_LABELS.items():
        points = sorted(
            (s["macs"], s["ms"]["float32"]["median"] / s["ms"][kernel]["median"])
            for s in kernels["sizes"]
            if kernel in s["ms"]
        )
        if points:
            ax.plot(*zip(*points, strict=True), "o-", label=label)
        else:
            ax.plot([], [], " ", label=f"{label}: {kernels.get('absent', {}).get(kernel, 'not measured')}")
    ax.axhline(bench.SPEEDUP, color="green", linewidth=0.8, linestyle="--", label="the course's 4x")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="multiply-adds per forward pass / product",
        ylabel="speedup over float32 (medians)",
        title="module 17: INT8 speedup vs layer size",
    )
    ax.legend(fontsize=8)
    return figure


def compression(fig: dict[str, Any], plt: Any) -> Any:
    """Module 18: accuracy vs sparsity, fine-tuned and pruned only, against dense - 2 points."""
    from benchmarks import compression as bench

    figure, ax = plt.subplots(figsize=(6.5, 4))
    for name in dict.fromkeys(r["model"] for r in fig["accuracy"]):
        rows = [r for r in fig["accuracy"] if r["model"] == name]
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
            100 * rows[0]["baseline"] - bench.MAX_DROP_PP,
            color=line.get_color(),
            linewidth=0.8,
            linestyle=":",
        )
    ax.axvline(100 * bench.SPARSITY, color="grey", linewidth=0.8)
    ax.set(
        xlabel="sparsity (%)",
        ylabel="test accuracy (%)",
        title="module 18: accuracy vs sparsity (dotted: dense - 2 points)",
    )
    ax.legend(fontsize=8)
    return figure


def caching(fig: dict[str, Any], plt: Any) -> Any:
    """Module 19: generation time of each strategy vs length, and the cache's speedups."""
    from benchmarks import caching as bench

    figure, (ax, right) = plt.subplots(1, 2, figsize=(11, 4))
    cases = sorted(fig["cases"], key=lambda c: c["total"])
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
    right.axhspan(bench.SPEEDUP_MIN, bench.SPEEDUP_MAX, color="green", alpha=0.12, label="the course's 5-10x")
    right.set(xlabel="prompt + generated tokens", ylabel="speedup (x, of the medians)", title="speedup")
    right.legend(fontsize=8)
    return figure


# each plot: the module whose figures it draws, its file, and the function that draws it
PLOTS: tuple[tuple[str, str, Callable[[dict[str, Any], Any], Any]], ...] = (
    ("acceleration", "acceleration_speedup.png", acceleration),
    ("quantization", "quantization_speedup.png", quantization),
    ("compression", "compression_accuracy.png", compression),
    ("caching", "caching_generation.png", caching),
)


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    """PNG plots of the curves behind the claims, written to ``out``; the paths written.

    Raises ImportError without matplotlib. A module without figures gets no plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for module, name, draw in PLOTS:
        fig = (results.get(module) or {}).get("figures")
        figure = draw(fig, plt) if fig else None
        if figure is None:
            continue
        path = out / name
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written
