"""The optional INT8 GEMM (tinytorch/int8_gemm.py, the ``int8`` extra): bit-exact with the int64
product and with module 17's reference kernel where onnxruntime is installed; without it, the
benchmark says "not installed". The course's own tests never need it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tinytorch import int8_gemm

needs_extra = pytest.mark.skipif(not int8_gemm.available(), reason="the int8 extra (onnxruntime, onnx)")


def exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) @ b.astype(np.int64)


def test_without_the_extra_the_benchmark_says_not_installed(monkeypatch):
    from benchmarks import int8_kernels as bq

    monkeypatch.setattr(int8_gemm, "available", lambda: False)
    kernel, why = bq.int8_gemm_kernel()
    assert kernel is None and why == 'not installed (pip install -e ".[int8]")', f"absent kernel: {why}"
    backends, absent = bq.kernel_backends()
    assert set(backends) == {"naive_int32", "blas_exact"} and set(absent) == {"int8_gemm"}, "kernels"


@needs_extra
@pytest.mark.parametrize("k", [1, 1023, 1024, 1025, 4096, 4097])
@pytest.mark.parametrize("a_value, b_value", [(127, 127), (-128, -128), (127, -128), (-128, 127)])
def test_worst_case_values_are_exact(k, a_value, b_value):
    """All-extreme operands: the largest sums of products (|sum| = K * 2**14); the uint8 shift
    (a + 128 with zero point 128) must not lose -128 or 127."""
    a = np.full((3, k), a_value, dtype=np.int8)
    b = np.full((k, 2), b_value, dtype=np.int8)
    got = int8_gemm.int8_gemm_matmul(a, b)
    assert got.dtype == np.int32 and np.array_equal(got, exact(a, b)), f"int32 product at K={k}"


@needs_extra
@given(
    m=st.integers(0, 9), k=st.integers(1, 70), n=st.integers(1, 9), seed=st.integers(0, 2**32 - 1)
)
@example(m=0, k=1, n=1, seed=0)  # an empty batch
@example(m=1, k=1, n=1, seed=0)
def test_random_shapes_match_the_reference_kernel(m, k, n, seed):
    from tinytorch.perf.quantization import int8_matmul

    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    got = int8_gemm.int8_gemm_matmul(a, b)
    assert got.shape == (m, n) and np.array_equal(got, exact(a, b)), "int32 product against int64"
    assert np.array_equal(got, int8_matmul(a, b)), "int32 product against module 17's kernel"


@needs_extra
def test_a_weight_changed_in_place_is_not_served_from_a_stale_session():
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (5, 8)).astype(np.int8)
    b = rng.integers(-128, 128, (8, 4)).astype(np.int8)
    assert np.array_equal(int8_gemm.int8_gemm_matmul(a, b), exact(a, b)), "first product"
    b[0] = -b[0] - 1
    assert np.array_equal(int8_gemm.int8_gemm_matmul(a, b), exact(a, b)), "product after changing b"


@needs_extra
def test_refusals_name_the_argument():
    a = np.zeros((2, 3), dtype=np.int8)
    with pytest.raises(TypeError, match="a must be an int8 array"):
        int8_gemm.int8_gemm_matmul(a.astype(np.int32), a.T)
    with pytest.raises(ValueError, match="inner dimensions"):
        int8_gemm.int8_gemm_matmul(a, a)
    with pytest.raises(ValueError, match="b must be 2-D"):
        int8_gemm.int8_gemm_matmul(a, np.zeros(3, dtype=np.int8))


@needs_extra
def test_a_quantized_layer_gives_the_same_output_through_either_backend():
    """Dispatch through module 16's backend: the layer is unchanged, only the kernel differs, and
    the int32 products are equal, so the float32 outputs are bit-identical."""
    from tinytorch.perf.acceleration import OptimizedBackend
    from tinytorch.perf.quantization import int8_backend, quantize_model

    from tinytorch.layers import Linear
    from tinytorch.tensor import Tensor, no_grad

    rng = np.random.default_rng(4)
    layer = Linear(40, 12)
    x = rng.standard_normal((17, 40)).astype(np.float32)
    reference = quantize_model(layer, x, backend=int8_backend())
    backend = OptimizedBackend()
    backend.register("matmul", "int8", int8_gemm.int8_gemm_matmul)
    gemm = quantize_model(layer, x, backend=backend)
    with no_grad():
        want, got = reference(Tensor(x)).data, gemm(Tensor(x)).data
    assert np.array_equal(got, want), "the layer's float32 output with the INT8 GEMM vs module 17's kernel"
