"""Module 17's INT8 kernels side by side with float32, from the zoo's products up to large layers.

Part of ``benchmarks/quantization.py`` (``tinytorch bench quantization``), which runs it and
prints its table: the naive ``A.astype(int32) @ B.astype(int32)``, module 17's exact chunked
float32-BLAS kernel (through module 16's backend, as the quantized layers call it) and the
optional real INT8 GEMM (``pip install -e ".[int8]"``; "not installed" otherwise), each against
float32 on the zoo models end to end, on ``Linear(1024, 1024)`` at batch 256 end to end, on its
product alone and, in full mode, on the product 64x4096x4096. Also the two helpers both halves of
module 17's benchmark use: a model's forward pass through a backend, and the shapes of its products.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks import pin_blas_threads

pin_blas_threads()  # before numpy loads BLAS: one thread, comparable figures

import numpy as np  # noqa: E402

from benchmarks.common import markdown_table  # noqa: E402

KERNELS = ("naive_int32", "blas_exact", "int8_gemm")
KERNEL_LABELS = {
    "naive_int32": "naive int32 (astype(int32) @)",
    "blas_exact": "exact chunked BLAS (module 17)",
    "int8_gemm": "INT8 GEMM (onnxruntime)",
}
LARGE_LAYER = (256, 1024, 1024)  # Linear(1024, 1024) at batch 256: (M, K, N)
LARGE_PRODUCT = (64, 4096, 4096)  # full mode only: the naive kernel alone takes seconds
# numpy's integer loops run ~0.3-1 G multiply-adds/s: above this many, the naive kernel gets
# one round (no warm-up), or the large rows alone would take minutes
NAIVE_ONE_ROUND = 2**26


def naive_int32(a: Any, b: Any) -> np.ndarray:
    """The int32 product in numpy's generic integer loops (no BLAS): the baseline kernel.
    ``a`` and ``b`` are int8 arrays or module 17's QuantizedTensors (their ``.data``)."""
    a, b = (x if isinstance(x, np.ndarray) else x.data for x in (a, b))
    return a.astype(np.int32) @ b.astype(np.int32)


def int8_gemm_kernel() -> tuple[Callable[..., np.ndarray] | None, str]:
    """``(kernel, "")`` for the optional real INT8 GEMM, or ``(None, why it is absent)``."""
    from tinytorch import int8_gemm

    if not int8_gemm.available():
        return None, 'not installed (pip install -e ".[int8]")'
    return int8_gemm.int8_gemm_matmul, ""


def kernel_backends() -> tuple[dict[str, Any], dict[str, str]]:
    """One module-16 backend per available INT8 kernel, each with it as ``("matmul", "int8")``
    (as the quantized layers dispatch), and ``{kernel: why absent}`` for the others."""
    from tinytorch.perf.acceleration import OptimizedBackend
    from tinytorch.perf.quantization import int8_backend

    naive = OptimizedBackend()
    naive.register("matmul", "int8", naive_int32)
    backends: dict[str, Any] = {"naive_int32": naive, "blas_exact": int8_backend()}
    absent = {}
    gemm, why = int8_gemm_kernel()
    if gemm is None:
        absent["int8_gemm"] = why
    else:
        backends["int8_gemm"] = OptimizedBackend()
        backends["int8_gemm"].register("matmul", "int8", gemm)
    return backends, absent


def interleaved_ms(
    fns: dict[str, Callable[[], object]], rounds: int, one_round: tuple[str, ...] = ()
) -> dict[str, dict[str, float]]:
    """Median, min and max wall time (ms) of each ``fn()`` in interleaved rounds after one warm-up
    call (as ``benchmarks.quantization.median_ms``), except that the functions named in
    ``one_round`` run once, in the first round, without warm-up (their spread is then that one time)."""
    for name, fn in fns.items():
        if name not in one_round:
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            if r and name in one_round:
                continue
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: {"median": statistics.median(t), "min": min(t), "max": max(t)} for name, t in times.items()}


def kernel_sizes(rounds: int, full: bool, calibration: np.ndarray, models: tuple[str, ...]) -> dict[str, Any]:
    """Each INT8 kernel against float32 from the zoo models up to large layers.

    ``{"kernels": [available kernels], "absent": {kernel: why}, "sizes": [{"label", "kind"
    ("model" | "layer" | "product"), "macs" (multiply-adds of its products), "ms": {"float32" |
    kernel: {"median", "min", "max"}}}]}``: the zoo models end to end at batch 359, the layer
    ``Linear(1024, 1024)`` end to end at batch 256, its product alone, and (``full``) the product
    64x4096x4096; ``models`` are the zoo models. Every kernel's result is checked against the
    int64 product first.
    """
    from tinytorch.perf.acceleration import OptimizedBackend
    from tinytorch.perf.quantization import quantize_model

    from tinytorch import zoo
    from tinytorch.layers import Linear

    backends, absent = kernel_backends()
    dense = OptimizedBackend()
    rng = np.random.default_rng(1)
    test_x, _ = zoo.eval_data("cnn_digits")
    sizes = []

    def measure(label: str, kind: str, macs: int, fns: dict[str, Callable[[], object]]) -> None:
        slow = ("naive_int32",) if macs > NAIVE_ONE_ROUND else ()
        ms = interleaved_ms(fns, rounds, slow)
        sizes.append({"label": label, "kind": kind, "macs": int(macs), "ms": ms})

    for name in models:
        model = zoo.load_model(name)
        macs = sum(m * k * n for _, m, k, n in layer_shapes(model, test_x))
        fns = {"float32": forward_pass(model, test_x, dense)}
        for kernel, backend in backends.items():
            fns[kernel] = forward_pass(quantize_model(model, calibration, backend=backend), test_x, None)
        measure(f"{name} (batch {len(test_x)})", "model", macs, fns)

    m, k, n = LARGE_LAYER
    layer = Linear(k, n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    fns = {"float32": forward_pass(layer, x, dense)}
    for kernel, backend in backends.items():
        fns[kernel] = forward_pass(quantize_model(layer, x, backend=backend), x, None)
    measure(f"Linear({k}, {n}), batch {m}", "layer", m * k * n, fns)

    for m, k, n in (LARGE_LAYER, LARGE_PRODUCT) if full else (LARGE_LAYER,):
        a8 = rng.integers(-128, 128, (m, k)).astype(np.int8)
        b8 = rng.integers(-128, 128, (k, n)).astype(np.int8)
        a32, b32 = a8.astype(np.float32), b8.astype(np.float32)
        exact = a8[:4].astype(np.int64) @ b8.astype(np.int64)  # four rows: the int64 loop is slow
        for kernel, backend in backends.items():
            if kernel != "naive_int32":
                got = backend.dispatch("matmul", a8[:4], b8)
                assert np.array_equal(got, exact), f"{kernel}: the int32 product differs from int64"
        fns = {"float32": lambda a=a32, b=b32: dense.dispatch("matmul", a, b)}
        for kernel, backend in backends.items():
            fns[kernel] = lambda a=a8, b=b8, be=backend: be.dispatch("matmul", a, b)
        measure(f"product {m}x{k}x{n}", "product", m * k * n, fns)
    return {"kernels": list(backends), "absent": absent, "sizes": sizes}


def forward_pass(model: Any, x: np.ndarray, backend: Any) -> Callable[[], object]:
    from tinytorch.backend import use_backend
    from tinytorch.tensor import Tensor, no_grad

    def run() -> object:
        with no_grad(), use_backend(backend):
            return model(Tensor(x))

    return run


def layer_shapes(model: Any, x: np.ndarray) -> list[tuple[str, int, int, int]]:
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


def _ms(t: dict[str, float]) -> str:
    return f"{t['median']:.3f} ({t['min']:.3f}-{t['max']:.3f})"


def kernel_table(kernels: dict[str, Any]) -> str:
    """The kernels' figures as a Markdown table: float32 ms, then each kernel's ms and its speedup
    over float32 (of the medians) at each size; an absent kernel's column says why."""
    headers = ["size", "multiply-adds", "float32 ms"] + [KERNEL_LABELS[k] for k in KERNELS]
    rows = []
    for size in kernels["sizes"]:
        f32 = size["ms"]["float32"]
        row = [size["label"], f"{size['macs']:,}", _ms(f32)]
        for kernel in KERNELS:
            t = size["ms"].get(kernel)
            if t is None:
                row.append(kernels["absent"].get(kernel, "-"))
            else:
                ratio = f32["median"] / t["median"]
                row.append(f"{ratio:.{3 if ratio < 0.1 else 2}f}x: {_ms(t)}")  # 0.004x, not 0.00x
        rows.append(row)
    return "\n".join(
        [
            "INT8 kernels against float32 (speedup of the medians: INT8 ms, median (min-max))",
            "",
            markdown_table(headers, rows),
        ]
    )
