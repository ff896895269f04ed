"""A real INT8 GEMM for module 17's quantized layers: onnxruntime's ``MatMulInteger`` (optional).

    pip install -e ".[int8]"         # onnxruntime and onnx; nothing else of the course needs them

:func:`int8_gemm_matmul` has the contract of module 17's ``int8_matmul``: int8 (M, K) @ int8
(K, N) -> the exact int32 (M, N) product, the operands int8 arrays or QuantizedTensors. It is
registered through module 16's backend like any other kernel
(``backend.register("matmul", "int8", int8_gemm_matmul)`` on an ``OptimizedBackend``), which is
the point of the dispatch design: a hardware kernel drops in without touching a layer. The kernel
itself needs nothing of the katas, so it sits in the foundation beside the matmul hook.

Why it is fast where numpy is not: onnxruntime's x86 kernel multiplies uint8 activations by int8
weights with the CPU's u8 x s8 dot-product instructions (AVX2 ``vpmaddubsw``, AVX-512 VNNI
``vpdpbusd``), four int8 multiply-adds in the lanes of one float32, and packs a constant weight
matrix once into the layout those instructions read. Hence:

* activations as uint8: ``a + 128`` (the bits of ``a`` with the sign bit flipped) with zero point
  128, so ``(a_u8 - 128) @ b`` is exactly ``a @ b``; int8 x int8 has no fast path (measured 0.3x
  float32 against 6x for u8 x s8 at 64x4096x4096);
* the weights a constant of the graph (an initializer), so the session prepacks them once: one
  session per weight matrix, i.e. per layer, cached on the array's identity and checked against
  a copy of its values (a weight changed in place gets a new session; a session is dropped with
  its array).

Exact: ``MatMulInteger`` accumulates in int32, and every sum fits (K <= MAX_K, as for
``int8_matmul``). One intra-op thread, as BLAS is pinned to one in the benchmarks.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

__all__ = ["available", "int8_gemm_matmul"]

MAX_K = (2**31 - 1) // (128 * 128)  # every int32 partial sum of K int8 products fits, as in int8_matmul

_sessions: dict[int, tuple[weakref.ref, np.ndarray, Any]] = {}


def available() -> bool:
    """True when onnxruntime and onnx are installed (the ``int8`` extra)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _operand(x: Any, name: str) -> np.ndarray:
    data = x if isinstance(x, np.ndarray) else getattr(x, "data", x)
    if not isinstance(data, np.ndarray) or data.dtype != np.int8:
        got = getattr(data, "dtype", type(data).__name__)
        raise TypeError(f"int8_gemm_matmul: {name} must be an int8 array or a QuantizedTensor, got {got}")
    if data.ndim != 2:
        raise ValueError(f"int8_gemm_matmul: {name} must be 2-D, got shape {data.shape}")
    return data


def _session(b: np.ndarray) -> Any:
    """The cached inference session whose graph is ``MatMulInteger(A_u8, b)``, b prepacked."""
    key = id(b)
    found = _sessions.get(key)
    # the same array with the same values (a weight changed in place must not use a stale pack;
    # the comparison reads K * N bytes, 1/M of the product's work)
    if found is not None and found[0]() is b and np.array_equal(found[1], b):
        return found[2]
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    k, n = b.shape
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "a_zero", "b_zero"], ["Y"])],
        "int8_gemm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, ["M", n])],
        initializer=[
            numpy_helper.from_array(np.ascontiguousarray(b), "B"),
            numpy_helper.from_array(np.array(128, dtype=np.uint8), "a_zero"),
            numpy_helper.from_array(np.array(0, dtype=np.int8), "b_zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7  # readable by every onnxruntime that has opset 13
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        onnx._serialize(model) if hasattr(onnx, "_serialize") else model.SerializeToString(),
        options,
        providers=["CPUExecutionProvider"],
    )
    _sessions[key] = (weakref.ref(b, lambda _, key=key: _sessions.pop(key, None)), b.copy(), session)
    return session


def int8_gemm_matmul(a: Any, b: Any) -> np.ndarray:
    """int32 (M, N) = int8 ``a`` (M, K) @ int8 ``b`` (K, N), exactly, with onnxruntime's INT8 GEMM.

    ``b`` is the layer's weight: its session (and packed copy) is cached on the array's identity.
    ``TypeError`` for operands that are not int8, ``ValueError`` for mismatched inner dimensions
    or K > MAX_K; ``ImportError`` without the ``int8`` extra.
    """
    A, B = _operand(a, "a"), _operand(b, "b")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"int8_gemm_matmul: inner dimensions do not match: a {A.shape} @ b {B.shape}")
    if A.shape[1] > MAX_K:
        raise ValueError(f"int8_gemm_matmul: K = {A.shape[1]} > MAX_K = {MAX_K}")
    if 0 in A.shape or 0 in B.shape:
        return np.zeros((A.shape[0], B.shape[1]), dtype=np.int32)
    a_u8 = np.ascontiguousarray(A).view(np.uint8) ^ np.uint8(128)  # a + 128, zero point 128
    (y,) = _session(B).run(None, {"A": a_u8})
    return y

