"""Benchmark for module 17 (quantization): float32 vs INT8 zoo models, side by side.

    python benchmarks/quantization.py            # both digits models, 15 interleaved rounds
    python benchmarks/quantization.py --quick    # 5 rounds
    python benchmarks/quantization.py --json     # the figures as JSON
    tinytorch bench quantization                 # the same command through the CLI

Runs whichever implementation ``TINYTORCH_IMPL`` selects (your katas by default, the reference
with ``TINYTORCH_IMPL=solutions``). For ``mlp_digits`` and ``cnn_digits`` it quantizes the zoo
model with ``quantize_model`` (calibrated on the first 512 training images, min/max and
percentile observers) and reports, side by side:

* digits test accuracy (359 images) of the float32 and the INT8 model, and how many test
  predictions change;
* weight bytes: the float32 weight matrices against their int8 copies (exactly 4x), and the
  whole model as stored for inference (float32 parameters, or int8 weights + int32 biases +
  per-channel scales);
* latency of one forward pass, batch 359 and batch 1: the float model through module 16's
  ``OptimizedBackend`` (BLAS sgemm) and the INT8 model through the same backend with the
  ``("matmul", "int8")`` kernel, median of interleaved rounds;
* the products alone: float32 BLAS against numpy's int8 -> int32 matmul at the layers' shapes.

numpy has no INT8 GEMM: ``int32 @ int32`` runs numpy's own loops, not BLAS, so INT8 is *slower*
here. The 4x of the course comes from hardware with integer units (VNNI, ARM dot-product
instructions, NPUs): four int8 values in the space and bandwidth of one float32, and 4x as many
multiply-adds per vector instruction. Timing uses ``time.perf_counter`` (not module 15's Timer),
so this runs whether or not the profiling kata is solved. BLAS is pinned to one thread unless
``OPENBLAS_NUM_THREADS`` is set. :func:`figures` returns everything as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/quantization.py` from a clone, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import pin_blas_threads  # noqa: E402

pin_blas_threads()  # before numpy loads BLAS: one thread, comparable figures

import numpy as np  # noqa: E402

from benchmarks.common import load_average, markdown_table  # noqa: E402

MODELS = ("mlp_digits", "cnn_digits")
CALIBRATION_SIZE = 512  # the first 512 training images, as in tests/test_quantization.py
OBSERVERS = ("minmax", "percentile")


def median_ms(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, dict[str, float]]:
    """Median, min and max wall time (ms) of each ``fn()``, measured in interleaved rounds.

    One untimed warm-up call each, then every round times each function once, in turn, so a
    burst of load from another process hits all of them alike.
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {
        name: {"median": statistics.median(t), "min": min(t), "max": max(t)} for name, t in times.items()
    }


def _forward(model: Any, x: np.ndarray, backend: Any) -> Callable[[], object]:
    from tinytorch.backend import use_backend
    from tinytorch.tensor import Tensor, no_grad

    def run() -> object:
        with no_grad(), use_backend(backend):
            return model(Tensor(x))

    return run


def _layer_shapes(model: Any, x: np.ndarray) -> list[tuple[str, int, int, int]]:
    """(layer, M, K, N) of every Linear / Conv2d product for input ``x``."""
    from tinytorch.conv import Conv2d
    from tinytorch.layers import Linear
    from tinytorch.tensor import no_grad

    shapes, handles = [], []
    for name, layer in model.named_modules():
        if isinstance(layer, (Linear, Conv2d)):

            def hook(module, inputs, output, name=name):
                out = output.data
                if isinstance(module, Conv2d):
                    m = out.shape[0] * out.shape[2] * out.shape[3]
                    k = int(np.prod(module.weight.shape[1:]))
                else:
                    m, k = int(np.prod(out.shape[:-1])), module.weight.shape[0]
                shapes.append((name, m, k, module.weight.shape[0 if isinstance(module, Conv2d) else 1]))

            handles.append(layer.register_forward_hook(hook))
    try:
        with no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def figures(rounds: int = 15) -> dict[str, Any]:
    """Quantize both digits models and measure them against float32; returns the figures.

    ``{"impl", "models": {name: {"float32_accuracy", "int8_accuracy": {observer: acc},
    "changed_predictions": {observer: n}, "test_images", "weight_bytes": {"float32", "int8"},
    "model_bytes": {"float32", "int8"}, "latency_ms": {"batch_359" | "batch_1": {"float32",
    "int8"}: {"median", "min", "max"}}}, "products": [{"layer", "M", "K", "N", "float32_ms",
    "int8_ms"}]}, "environment", "seconds"}``.
    """
    from tinytorch.perf.acceleration import OptimizedBackend
    from tinytorch.perf.quantization import int8_backend, int8_matmul, quantize_model, weight_bytes

    from tinytorch import zoo
    from tinytorch.conv import Conv2d
    from tinytorch.data import load_digits
    from tinytorch.layers import Linear
    from tinytorch.perf import impl_for
    from tinytorch.training import predict

    start = time.perf_counter()
    calibration = load_digits("train")[0][:CALIBRATION_SIZE]
    test_x, test_y = zoo.eval_data("cnn_digits")
    dense, int8 = OptimizedBackend(), int8_backend()
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for name in MODELS:
        model = zoo.load_model(name)
        float_pred = predict(model, test_x)
        quantized = {obs: quantize_model(model, calibration, observer=obs) for obs in OBSERVERS}
        preds = {obs: predict(q, test_x) for obs, q in quantized.items()}
        q = quantized["minmax"]
        float_weights = sum(
            m.weight.data.nbytes for m in model.modules() if isinstance(m, (Linear, Conv2d))
        )
        int8_weights = sum(m.weight.nbytes for m in q.modules() if hasattr(m, "input_params"))
        latency = {}
        for label, batch in (("batch_359", test_x), ("batch_1", test_x[:1])):
            latency[label] = median_ms(
                {"float32": _forward(model, batch, dense), "int8": _forward(q, batch, None)}, rounds
            )
        products = []
        for layer, m, k, n in _layer_shapes(model, test_x):
            a32 = rng.standard_normal((m, k)).astype(np.float32)
            b32 = rng.standard_normal((k, n)).astype(np.float32)
            a8 = rng.integers(-128, 128, (m, k)).astype(np.int8)
            b8 = rng.integers(-128, 128, (k, n)).astype(np.int8)
            f8a, f8b = a8.astype(np.float32), b8.astype(np.float32)
            t = median_ms(
                {
                    "float32": lambda a=a32, b=b32: dense.dispatch("matmul", a, b),
                    "int8": lambda a=a8, b=b8: int8.dispatch("matmul", a, b),
                    # int8 values in float32: every partial sum is an integer below K * 2**14 <= 2**24
                    # for K <= 1024, so sgemm is exact here; a float trick, not integer hardware
                    "int8_via_sgemm": lambda a=f8a, b=f8b: a @ b,
                },
                rounds,
            )
            exact = a8.astype(np.int64) @ b8.astype(np.int64)
            assert np.array_equal(int8_matmul(a8, b8), exact) and np.array_equal(f8a @ f8b, exact)
            products.append(
                {
                    "layer": layer, "M": m, "K": k, "N": n,
                    "float32_ms": t["float32"]["median"],
                    "int8_ms": t["int8"]["median"],
                    "int8_via_sgemm_ms": t["int8_via_sgemm"]["median"],
                }
            )
        out[name] = {
            "test_images": len(test_y),
            "float32_accuracy": float(np.mean(float_pred == test_y)),
            "int8_accuracy": {obs: float(np.mean(p == test_y)) for obs, p in preds.items()},
            "changed_predictions": {obs: int(np.sum(p != float_pred)) for obs, p in preds.items()},
            "weight_bytes": {"float32": int(float_weights), "int8": int(int8_weights)},
            "model_bytes": {"float32": weight_bytes(model), "int8": weight_bytes(q)},
            "latency_ms": latency,
            "products": products,
        }
    return {
        "impl": impl_for("quantization"),
        "models": out,
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "load_average_1min": load_average(),
        },
        "rounds": rounds,
        "seconds": time.perf_counter() - start,
    }


def report(fig: dict[str, Any]) -> str:
    """The figures as Markdown tables: accuracy and size, latency, the products alone."""
    env = fig["environment"]
    out = [
        f"# Module 17 benchmark: float32 vs INT8 (TINYTORCH_IMPL -> {fig['impl']})",
        f"machine: {env['machine']}, {env['cpu_count']} cores, Python {env['python']}, "
        f"numpy {env['numpy']}, OPENBLAS_NUM_THREADS={env['OPENBLAS_NUM_THREADS']}, "
        f"load average (1 min) {env['load_average_1min']:.2f}",
        f"calibration: the first {CALIBRATION_SIZE} training images; latency: median of {fig['rounds']} "
        "interleaved rounds (min-max)",
        "",
    ]
    rows = []
    for name, m in fig["models"].items():
        n = m["test_images"]
        for obs in OBSERVERS:
            drop = (m["float32_accuracy"] - m["int8_accuracy"][obs]) * 100
            rows.append([
                name, obs, f"{m['float32_accuracy']:.2%}", f"{m['int8_accuracy'][obs]:.2%}",
                f"{drop:+.2f} pp", f"{m['changed_predictions'][obs]} / {n}",
            ])
    out += [markdown_table(["model", "observer", "float32 acc", "int8 acc", "drop", "changed"], rows), ""]
    rows = []
    for name, m in fig["models"].items():
        w, t = m["weight_bytes"], m["model_bytes"]
        rows.append([
            name, f"{w['float32']:,}", f"{w['int8']:,}", f"{w['float32'] / w['int8']:.2f}x",
            f"{t['float32']:,}", f"{t['int8']:,}", f"{t['float32'] / t['int8']:.2f}x",
        ])
    out += [markdown_table(["model", "weights f32 (B)", "weights int8 (B)", "ratio", "model f32 (B)",
                    "model int8 (B)", "ratio"], rows), ""]
    rows = []
    for name, m in fig["models"].items():
        for batch, lat in m["latency_ms"].items():
            f, q = lat["float32"], lat["int8"]
            rows.append([
                name, batch.replace("batch_", ""), f"{f['median']:.3f} ({f['min']:.3f}-{f['max']:.3f})",
                f"{q['median']:.3f} ({q['min']:.3f}-{q['max']:.3f})", f"{q['median'] / f['median']:.2f}x",
            ])
    out += [markdown_table(["model", "batch", "float32 ms", "int8 ms", "int8 / float32"], rows), ""]
    rows = []
    for name, m in fig["models"].items():
        for p in m["products"]:
            rows.append([
                name, p["layer"], f"{p['M']}x{p['K']} @ {p['K']}x{p['N']}", f"{p['float32_ms']:.3f}",
                f"{p['int8_ms']:.3f}", f"{p['int8_ms'] / p['float32_ms']:.1f}x",
                f"{p['int8_via_sgemm_ms']:.3f}",
            ])
    headers = ["model", "layer", "product (batch 359)", "sgemm ms", "int8->int32 ms", "int8 / f32",
               "int8 values via sgemm ms"]
    out += [markdown_table(headers, rows)]
    out += [
        "",
        "numpy has no INT8 GEMM: int8 -> int32 products run numpy's generic integer loops, not BLAS,",
        "so INT8 costs time here (the same int8 values multiplied by float32 BLAS, exact for K <= 1024,",
        "take the float32 time: the data type alone buys nothing). The course's 4x needs integer",
        "hardware (VNNI / dot-product instructions, NPUs): 4x more int8 multiply-adds per vector",
        "instruction, 4x less memory traffic.",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/quantization.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--rounds", type=int, help="timed rounds per measurement (default 15)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 15)
    if rounds < 1:
        parser.error(f"--rounds must be >= 1, got {rounds}")
    try:
        fig = figures(rounds)
    except NotImplementedError as error:
        print(f"not implemented yet: {error}", file=sys.stderr)
        return 1
    print(json.dumps(fig, indent=2) if args.json else report(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
