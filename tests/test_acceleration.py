"""Module 16 (acceleration): three matmul kernels and a backend that dispatches by operand kind.

Every test here fails on the untouched stubs (katas/acceleration) and passes on the reference
(solutions/acceleration). Speed is not tested: `tinytorch bench acceleration` measures it.

One file, whole: it is the module's suite as the registry names it (``tests = ...`` in
tinytorch/course/modules.toml), the file ``tinytorch test acceleration`` runs, the grader collects and
the classic mistakes' ``caught_by`` names; it reads in sections, one per task.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import MATMUL_FILLS, MatmulCase, matmul_cases
from tinytorch.perf.acceleration import (
    OptimizedBackend,
    call_kind,
    conv2d_im2col,
    matmul_blocked,
    matmul_naive,
    matmul_numpy,
    operand_kind,
)

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23 = 2u, u = 2**-24 the unit roundoff of float32
TINY32 = float(np.finfo(np.float32).tiny)  # 2**-126, the smallest normal float32


def float32_product_bound(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Elementwise bound on |computed - exact| for a float32 product A @ B, in any summation order.

    The standard forward error bound of a length-K dot product (Higham, "Accuracy and Stability
    of Numerical Algorithms", eq. 3.5) is |fl(a . b) - a . b| <= gamma_K |a| . |b| with
    gamma_K = K u / (1 - K u). It holds for every order of the additions, so for tiles, BLAS
    kernels (with or without FMA) and a Python loop alike. K * eps = 2 K u >= gamma_K whenever
    K u <= 1/2, and the slack also covers the float64 reference's own error (K * 2**-53).
    The absolute K * tiny term covers products that underflow below the smallest normal float32
    (or are flushed to zero), which the relative bound does not.
    """
    K = A.shape[1]
    abs_product = np.abs(A.astype(np.float64)) @ np.abs(B.astype(np.float64))
    return K * EPS32 * abs_product + K * TINY32


def assert_product_close(C: np.ndarray, A: np.ndarray, B: np.ndarray) -> None:
    """C is A @ B: right shape, numpy's promoted dtype, and within the float32 bound above."""
    assert isinstance(C, np.ndarray), f"expected an ndarray, got {type(C).__name__}"
    assert C.shape == (A.shape[0], B.shape[1]), f"shape {C.shape}, expected {(A.shape[0], B.shape[1])}"
    assert C.dtype == np.result_type(A, B), f"dtype {C.dtype}, expected {np.result_type(A, B)}"
    exact = A.astype(np.float64) @ B.astype(np.float64)
    err = np.abs(C.astype(np.float64) - exact)
    bound = float32_product_bound(A, B)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert np.all(err <= bound), (
        f"error {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst} for {A.shape} @ {B.shape}"
    )


# --------------------------------------------------------------------------------------------
# The three kernels equal A @ B
# --------------------------------------------------------------------------------------------
# matmul_naive is a Python triple loop: small shapes only, so the suite stays fast.


@given(matmul_cases(max_dim=8))
@example(MatmulCase(1, 1, 1))
@example(MatmulCase(8, 1, 1))  # tall: a column times a scalar
@example(MatmulCase(1, 8, 1))  # a single dot product
@example(MatmulCase(1, 3, 8))  # wide
@example(MatmulCase(7, 5, 3, fill="mixed_scale"))  # odd sizes, cancellation
@example(MatmulCase(4, 6, 5, fill="zero_rows"))
@example(MatmulCase(3, 7, 2, fill="constant"))
def test_naive_equals_reference(case: MatmulCase) -> None:
    A, B = case.operands()
    assert_product_close(matmul_naive(A, B), A, B)


@given(matmul_cases(max_dim=80, block_sizes=st.integers(1, 96)))
@example(MatmulCase(1, 1, 1, block_size=64))  # a block far larger than the matrix
@example(MatmulCase(5, 7, 3, block_size=64))
@example(MatmulCase(33, 17, 65, block_size=16))  # no size is a multiple of the block
@example(MatmulCase(32, 32, 32, block_size=16))  # every size is a multiple of the block
@example(MatmulCase(64, 64, 64, block_size=64))  # exactly one tile
@example(MatmulCase(65, 65, 65, block_size=64))  # one full tile and a sliver on every axis
@example(MatmulCase(3, 5, 2, block_size=1))  # 1x1 tiles: the triple loop again
@example(MatmulCase(80, 1, 1, block_size=7))  # tall
@example(MatmulCase(1, 2, 80, block_size=7))  # wide
@example(MatmulCase(20, 70, 20, block_size=9, fill="zero_rows"))
@example(MatmulCase(40, 80, 40, block_size=13, fill="mixed_scale"))
def test_blocked_equals_reference(case: MatmulCase) -> None:
    A, B = case.operands()
    assert_product_close(matmul_blocked(A, B, block_size=case.block_size), A, B)


@given(matmul_cases(max_dim=96))
@example(MatmulCase(1, 1, 1))
@example(MatmulCase(96, 1, 3))
@example(MatmulCase(1, 96, 1, fill="mixed_scale"))
@example(MatmulCase(33, 65, 17, fill="zero_rows"))
def test_numpy_equals_reference(case: MatmulCase) -> None:
    A, B = case.operands()
    assert_product_close(matmul_numpy(A, B), A, B)


class ProductSpy(np.ndarray):
    """An ndarray that logs the operand shapes of every matrix product it takes part in.

    Slices of a spy are spies, so a tile product ``A[i:i+b, k:k+b] @ B[k:k+b, j:j+b]`` is logged
    with the tile shapes; results are plain ndarrays. Catches ``@``/``np.matmul`` (a ufunc) and
    ``np.dot``/``np.tensordot``/``np.einsum``/``np.inner``/``np.vdot`` (array functions).
    """

    products: list[tuple[tuple[int, ...], ...]] = []
    _LOGGED = (np.dot, np.tensordot, np.einsum, np.inner, np.vdot, np.matmul)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc is np.matmul:
            ProductSpy.products.append(tuple(np.shape(x) for x in inputs))
        plain = [x.view(np.ndarray) if isinstance(x, ProductSpy) else x for x in inputs]
        if "out" in kwargs:
            outs = kwargs["out"]
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, ProductSpy) else o for o in outs)
        return getattr(ufunc, method)(*plain, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func in self._LOGGED and func is not np.matmul:
            ProductSpy.products.append(tuple(np.shape(x) for x in args if isinstance(x, np.ndarray)))
        return super().__array_function__(func, types, args, kwargs)


def spied_products(kernel, A: np.ndarray, B: np.ndarray, **kwargs) -> list[tuple[tuple[int, ...], ...]]:
    """Run ``kernel`` on spies of A and B; check its result; return the products it took."""
    ProductSpy.products = []
    C = kernel(A.view(ProductSpy), B.view(ProductSpy), **kwargs)
    products, ProductSpy.products = ProductSpy.products, []
    assert_product_close(np.asarray(C), A, B)
    return products


def test_naive_takes_no_library_products() -> None:
    # The baseline does one multiply-add at a time: no @ / np.dot on rows, columns or matrices.
    A, B = _rng_matrices(5, 4, 3)
    assert spied_products(matmul_naive, A, B) == [], (
        "products taken by matmul_naive (it must take none: one multiply-add at a time)"
    )


@pytest.mark.parametrize(("M", "K", "N", "bs"), [(10, 9, 7, 4), (8, 8, 8, 8), (3, 5, 2, 16), (9, 1, 9, 2)])
def test_blocked_multiplies_tiles_not_whole_matrices(M: int, K: int, N: int, bs: int) -> None:
    # A tiled product takes exactly one tile product per (row tile, column tile, inner tile)
    # triple, and no operand is larger than block_size on any axis.
    A, B = _rng_matrices(M, K, N)
    products = spied_products(matmul_blocked, A, B, block_size=bs)
    tiles = -(-M // bs) * -(-N // bs) * -(-K // bs)  # ceil(M/bs) * ceil(N/bs) * ceil(K/bs)
    assert len(products) == tiles, (
        f"{len(products)} products for {tiles} tile triples ({M}x{K} @ {K}x{N}, block_size={bs})"
    )
    too_big = [shapes for shapes in products if max(max(s, default=0) for s in shapes) > bs]
    assert not too_big, f"products larger than a {bs}-tile: {too_big[:3]}"


def test_numpy_hands_the_whole_product_to_the_library() -> None:
    A, B = _rng_matrices(6, 5, 4)
    assert spied_products(matmul_numpy, A, B) == [((6, 5), (5, 4))], (
        "products taken by matmul_numpy: one, of the whole (6, 5) @ (5, 4)"
    )


def _rng_matrices(M: int, K: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(M * 10_000 + K * 100 + N)
    return rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)


@pytest.mark.parametrize("kernel", [matmul_naive, matmul_blocked, matmul_numpy], ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(0, 3, 4), (3, 0, 4), (3, 4, 0)], ids=["M=0", "K=0", "N=0"])
def test_empty_dimensions(kernel, shape) -> None:
    # numpy's convention: a product over K = 0 terms is 0; M or N = 0 gives an empty result.
    m, k, n = shape
    A, B = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
    C = kernel(A, B)
    assert C.shape == (m, n) and C.dtype == np.float32, (
        f"{kernel.__name__}: shape {C.shape} and dtype {C.dtype}, expected {(m, n)} and float32"
    )
    assert np.all(C == 0), f"{kernel.__name__}: a product over {k} terms must be 0 everywhere"


@given(
    case=matmul_cases(max_dim=16, fills=("integers",)),
    dtype=st.sampled_from([np.float32, np.float64]),
)
@example(case=MatmulCase(16, 16, 16, fill="integers"), dtype=np.float32)
@example(case=MatmulCase(1, 1, 1, fill="integers"), dtype=np.float64)
def test_blocked_same_result_for_every_block_size(case: MatmulCase, dtype) -> None:
    # Integer-valued entries in [-8, 8] with K <= 16: every product and partial sum is an integer
    # below 2**24, so float32 arithmetic is exact in any order and every tiling must agree
    # bit for bit with the exact product (and keep the input dtype).
    A, B = case.operands(dtype)
    exact = A.astype(np.float64) @ B.astype(np.float64)
    for block_size in (1, 2, 3, 5, 8, 13, 16, 64, case.m + case.k + case.n + 1):
        C = matmul_blocked(A, B, block_size=block_size)
        assert C.dtype == dtype, f"block_size={block_size}: dtype {C.dtype}, expected {dtype}"
        np.testing.assert_array_equal(C, exact, err_msg=f"block_size={block_size}")


@pytest.mark.parametrize(
    "dtype",
    [np.float32, np.float64, np.int8, np.int64],
    ids=["float32", "float64", "int8-wraps", "int64-past-2-53"],
)
def test_naive_keeps_dtype_and_is_exact_on_integers(dtype) -> None:
    # Integer-valued floats in [-8, 8] (every partial sum below 2**24: exact in float32); int8
    # entries whose products and sums wrap modulo 2**8; int64 entries near 2**31 whose products,
    # near 2**62, sum past 2**63 and wrap modulo 2**64. Accumulated in the result's dtype, each
    # equals numpy's A @ B bit for bit; a Python-float accumulator rounds past 2**53 and does not wrap.
    if np.issubdtype(dtype, np.floating):
        A, B = MatmulCase(6, 5, 4, fill="integers", seed=3).operands(dtype)
    else:
        low, high = (-128, 128) if dtype == np.int8 else (2**31, 2**31 + 1000)
        rng = np.random.default_rng(3)
        A, B = rng.integers(low, high, (6, 5)).astype(dtype), rng.integers(low, high, (5, 4)).astype(dtype)
    with np.errstate(over="ignore"):
        expected = A @ B
    C = matmul_naive(A, B)
    assert C.dtype == dtype, f"matmul_naive: dtype {C.dtype}, expected {np.dtype(dtype)}"
    np.testing.assert_array_equal(C, expected, err_msg=f"matmul_naive != numpy's A @ B in {np.dtype(dtype)}")


# --------------------------------------------------------------------------------------------
# Bad input: a clear error naming the argument (and good input still computes the product)
# --------------------------------------------------------------------------------------------
# Each test first checks a valid call, so that a kernel which rejects everything, or a stub
# whose argument checks are given but whose body is missing, does not pass.

KERNELS = [matmul_naive, matmul_blocked, matmul_numpy]


def _good_call(kernel) -> None:
    A, B = MatmulCase(3, 4, 2, seed=1).operands()
    assert_product_close(kernel(A, B), A, B)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda f: f.__name__)
def test_mismatched_inner_dimensions_rejected(kernel) -> None:
    _good_call(kernel)
    A, B = np.ones((3, 4), np.float32), np.ones((5, 2), np.float32)
    with pytest.raises(ValueError, match=r"(?s)inner dimensions.*\(3, 4\).*\(5, 2\)"):
        kernel(A, B)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("a_shape", "b_shape", "name"),
    [
        ((4,), (4, 2), "A"),
        ((3, 4), (4,), "B"),
        ((2, 3, 4), (4, 2), "A"),
        ((3, 4), (1, 4, 2), "B"),
        ((), (1, 1), "A"),
    ],
)
def test_non_2d_operands_rejected(kernel, a_shape, b_shape, name) -> None:
    _good_call(kernel)
    with pytest.raises(ValueError, match=rf"{name} must be a 2-D matrix"):
        kernel(np.ones(a_shape, np.float32), np.ones(b_shape, np.float32))


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "bad",
    [np.array([["a", "b"]]), np.ones((1, 2), dtype=complex), [[None, None]]],
)
def test_non_numeric_operands_rejected(kernel, bad) -> None:
    _good_call(kernel)
    with pytest.raises(TypeError, match="A must be a bool, integer or floating array"):
        kernel(bad, np.ones((2, 2), np.float32))


@pytest.mark.parametrize(
    ("block_size", "error"),
    [
        (0, ValueError),
        (-3, ValueError),
        (2.5, TypeError),
        (True, TypeError),
        ("8", TypeError),
        (None, TypeError),
    ],
)
def test_bad_block_size_rejected(block_size, error) -> None:
    A, B = MatmulCase(5, 4, 3, seed=2).operands()
    assert_product_close(matmul_blocked(A, B, block_size=1), A, B)  # 1 is the smallest valid size
    assert_product_close(matmul_blocked(A, B, block_size=np.int64(2)), A, B)  # numpy integers are fine
    with pytest.raises(error, match="block_size"):
        matmul_blocked(A, B, block_size=block_size)


# --------------------------------------------------------------------------------------------
# Test helpers: the kernels modules 17 and 18 will register, in miniature
# --------------------------------------------------------------------------------------------


class Spy:
    """Wraps a kernel and counts its calls (and remembers the last arguments)."""

    def __init__(self, kernel):
        self.kernel, self.calls, self.last_args = kernel, 0, None

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.last_args = args
        return self.kernel(*args, **kwargs)


def int8_matmul_int32(a, b) -> np.ndarray:
    """What module 17's kernel does: int8 operands, products accumulated in int32 (no overflow)."""
    a = getattr(a, "q", a)
    b = getattr(b, "q", b)
    return a.astype(np.int32) @ b.astype(np.int32)


class QuantizedOperand:
    """An int8-quantized operand as module 17 will expose it: int8 values plus kind = "int8"."""

    kind = "int8"

    def __init__(self, q: np.ndarray, scale: float = 1.0):
        self.q, self.scale = q.astype(np.int8), scale


class CSR:
    """A compressed-sparse-row matrix (duck typed: data, indices, indptr, shape; no `kind`)."""

    def __init__(self, dense: np.ndarray):
        rows, cols = np.nonzero(dense)
        self.data = dense[rows, cols]
        self.indices = cols
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[0]))])
        self.shape = dense.shape


def csr_matmul(a: CSR, b: np.ndarray) -> np.ndarray:
    """CSR @ dense: row i is the sum over its stored entries of data * the matching row of b."""
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.result_type(a.data, b))
    for i in range(a.shape[0]):
        lo, hi = a.indptr[i], a.indptr[i + 1]
        out[i] = a.data[lo:hi] @ b[a.indices[lo:hi]]
    return out


def _dense(m=4, k=5, n=3, seed=0):
    return MatmulCase(m, k, n, seed=seed).operands()


# --------------------------------------------------------------------------------------------
# Operand kinds
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operand", "kind"),
    [
        (np.ones((2, 2), np.float32), "dense"),
        (np.ones((2, 2), np.float64), "dense"),
        (np.ones((2, 2), np.float16), "dense"),
        (np.ones((2, 2), np.int8), "int8"),
        (QuantizedOperand(np.ones((2, 2))), "int8"),
        (CSR(np.eye(3, dtype=np.float32)), "sparse"),
        (np.ones((2, 2), np.int64), "dense"),  # token ids: numpy's @ multiplies them, so does dense
        (np.ones((2, 2), np.uint8), "dense"),  # raw images
        (np.ones((2, 2), bool), "dense"),
    ],
    ids=["float32", "float64", "float16", "int8-array", "quantized-object", "csr", "int64", "uint8", "bool"],
)
def test_operand_kind(operand, kind) -> None:
    assert operand_kind(operand) == kind, f"operand_kind = {operand_kind(operand)!r}, expected {kind!r}"


def test_operand_kind_is_declared_by_a_kind_attribute() -> None:
    # The open protocol: any object with a string `kind` names its own kind (a later module can
    # add "fp16" or "int4" without editing the backend), and it wins over the duck-typed checks.
    class Declared:
        kind = "int4"

    class SparseLooking(CSR):
        kind = "blocked_sparse"

    class TaggedArray(np.ndarray):  # a float array that declares a kind of its own
        kind = "fp16_simulated"

    assert operand_kind(Declared()) == "int4", "operand_kind of an object with kind = 'int4'"
    assert operand_kind(SparseLooking(np.eye(2))) == "blocked_sparse", (
        "operand_kind of a CSR-like object with kind = 'blocked_sparse': the declared kind wins"
    )
    assert operand_kind(np.ones((2, 2), np.float32).view(TaggedArray)) == "fp16_simulated", (
        "operand_kind of a float array with kind = 'fp16_simulated': the declared kind wins"
    )


@pytest.mark.parametrize(
    "operand",
    [np.ones((2, 2), complex), np.array([["a"]]), np.array([[None]]), [[1.0, 2.0]], None, 3.0],
    ids=["complex-array", "str-array", "object-array", "list", "None", "python-float"],
)
def test_operand_kind_rejects_unknown_operands_listing_the_kinds(operand) -> None:
    assert operand_kind(np.zeros((1, 1), np.float32)) == "dense", "operand_kind of a float32 array"
    with pytest.raises(TypeError) as info:
        operand_kind(operand)
    message = str(info.value)
    for kind in ("dense", "int8", "sparse"):
        assert kind in message, f"the error should list the kind {kind!r}: {message}"


def test_call_kind_is_the_non_dense_kind() -> None:
    dense, q, csr = np.ones((2, 2), np.float32), np.ones((2, 2), np.int8), CSR(np.eye(2))
    assert call_kind(dense, dense) == "dense", "call_kind(dense, dense)"
    assert call_kind(dense, q) == "int8", "call_kind(dense, int8): a float activation times an int8 weight"
    assert call_kind(q, dense) == "int8", "call_kind(int8, dense)"
    assert call_kind(q, q) == "int8", "call_kind(int8, int8)"
    assert call_kind(csr, dense) == "sparse", "call_kind(sparse, dense)"
    assert call_kind(dense, csr) == "sparse", "call_kind(dense, sparse)"
    with pytest.raises(ValueError, match="different kinds"):
        call_kind(q, csr)


# --------------------------------------------------------------------------------------------
# OptimizedBackend: registration and dispatch
# --------------------------------------------------------------------------------------------


def test_default_backend_registers_dense_matmul_and_conv2d() -> None:
    backend = OptimizedBackend()
    assert backend.supported() == [("conv2d", "dense"), ("matmul", "dense")], (
        f"supported() of a new backend = {backend.supported()}"
    )
    A, B = _dense()
    assert backend.kernel_for("matmul", A, B) is matmul_numpy, (
        "kernel_for('matmul', dense, dense) must be matmul_numpy"
    )


@given(matmul_cases(max_dim=48))
@example(MatmulCase(1, 1, 1))
@example(MatmulCase(17, 1, 33, fill="mixed_scale"))
def test_dispatch_matmul_equals_calling_the_kernel_directly(case: MatmulCase) -> None:
    A, B = case.operands()
    backend = OptimizedBackend()
    C = backend.dispatch("matmul", A, B)
    # The same kernel on the same operands: bit for bit the same result.
    np.testing.assert_array_equal(
        C,
        backend.kernel_for("matmul", A, B)(A, B),
        err_msg="dispatch('matmul', A, B) != its kernel called directly",
    )
    np.testing.assert_array_equal(
        C, matmul_numpy(A, B), err_msg="dispatch('matmul', A, B) != matmul_numpy(A, B)"
    )
    assert_product_close(C, A, B)


def test_dispatch_looks_the_kernel_up_in_the_registry() -> None:
    backend = OptimizedBackend()
    A, B = _dense()
    spy = Spy(matmul_blocked)
    backend.register("matmul", "dense", spy)  # re-registering replaces the kernel
    assert_product_close(backend.dispatch("matmul", A, B), A, B)
    assert spy.calls == 1 and spy.last_args[0] is A and spy.last_args[1] is B, (
        "the registered kernel must run once, on the operands given to dispatch"
    )
    assert backend.supported() == [("conv2d", "dense"), ("matmul", "dense")], (
        f"supported() = {backend.supported()}: re-registering replaces, it adds no pair"
    )

    # A brand-new op needs a registration, not an edit of the backend.
    backend.register("add", "dense", lambda a, b: a + b)
    np.testing.assert_array_equal(
        backend.dispatch("add", A, A),
        A + A,
        err_msg="dispatch('add', A, A) through the newly registered kernel",
    )
    assert ("add", "dense") in backend.supported(), (
        "supported() must list the newly registered ('add', 'dense')"
    )
    assert spy.calls == 1, f"the matmul kernel ran {spy.calls} times, expected 1: 'add' has its own kernel"


def test_int8_operands_go_to_the_int8_kernel_with_int32_accumulation() -> None:
    backend = OptimizedBackend()
    dense_spy, int8_spy = Spy(matmul_numpy), Spy(int8_matmul_int32)
    backend.register("matmul", "dense", dense_spy)
    backend.register("matmul", "int8", int8_spy)
    K = 300
    A = np.full((3, K), 127, np.int8)
    B = np.full((K, 2), 127, np.int8)
    C = backend.dispatch("matmul", A, B)
    # 127 * 127 * 300 = 4_838_700: far past int8 (and int16); numpy's own int8 @ int8 wraps
    # around, so a dispatch that fell back to `A @ B` would be wrong here.
    assert C.dtype == np.int32, f"dtype of the int8 product = {C.dtype}, expected the int8 kernel's int32"
    np.testing.assert_array_equal(
        C,
        np.full((3, 2), 127 * 127 * K),
        err_msg="the int8 product accumulated in int32: 127 * 127 * 300 everywhere",
    )
    assert int8_spy.calls == 1 and dense_spy.calls == 0, (
        f"int8 kernel calls {int8_spy.calls}, dense kernel calls {dense_spy.calls}: expected 1 and 0"
    )

    # A quantized object (module 17's protocol: kind = "int8") takes the same route.
    Q = QuantizedOperand(np.arange(-6, 6).reshape(3, 4))
    X = np.arange(8, dtype=np.int8).reshape(4, 2)
    np.testing.assert_array_equal(
        backend.dispatch("matmul", Q, X),
        Q.q.astype(np.int64) @ X.astype(np.int64),
        err_msg="dispatch('matmul', quantized object, int8) through the int8 kernel",
    )
    assert int8_spy.calls == 2 and dense_spy.calls == 0, (
        f"int8 kernel calls {int8_spy.calls}, dense kernel calls {dense_spy.calls}: expected 2 and 0"
    )


def test_sparse_operand_goes_to_the_sparse_kernel() -> None:
    backend = OptimizedBackend()
    sparse_spy = Spy(csr_matmul)
    backend.register("matmul", "sparse", sparse_spy)
    dense, B = MatmulCase(6, 5, 4, fill="zero_rows", seed=7).operands()  # every other row is empty
    C = backend.dispatch("matmul", CSR(dense), B)
    assert sparse_spy.calls == 1, f"sparse kernel calls = {sparse_spy.calls}, expected 1"
    assert_product_close(C, dense, B)
    # The dense kernel still serves dense operands on the same backend.
    assert_product_close(backend.dispatch("matmul", dense, B), dense, B)
    assert sparse_spy.calls == 1, (
        f"sparse kernel calls = {sparse_spy.calls}, expected still 1: dense operands take the dense kernel"
    )


def test_unregistered_kind_is_an_error_listing_the_supported_pairs() -> None:
    backend = OptimizedBackend()
    A8 = np.ones((2, 3), np.int8)
    with pytest.raises(ValueError) as info:
        backend.dispatch("matmul", A8, A8)  # module 17 has not registered its kernel
    message = str(info.value)
    assert "int8" in message and "matmul" in message, f"the error must name the op and the kind: {message}"
    for op, kind in backend.supported():
        assert op in message and kind in message, f"the error should list ({op}, {kind}): {message}"

    # The list comes from the registry: after registering int8, the sparse error names it.
    backend.register("matmul", "int8", int8_matmul_int32)
    with pytest.raises(ValueError, match="(?s)sparse.*int8") as info:
        backend.dispatch("matmul", CSR(np.eye(3)), np.ones((3, 2), np.float32))
    np.testing.assert_array_equal(
        backend.dispatch("matmul", A8, A8.T),
        np.full((2, 2), 3),
        err_msg="dispatch('matmul', int8, int8) once the int8 kernel is registered",
    )


def test_unknown_op_is_an_error_listing_the_supported_ops() -> None:
    backend = OptimizedBackend()
    A, B = _dense()
    assert_product_close(backend.dispatch("matmul", A, B), A, B)
    with pytest.raises(ValueError, match="conv3d") as info:
        backend.dispatch("conv3d", A, B)
    assert "matmul" in str(info.value) and "conv2d" in str(info.value), (
        f"the error must list the supported ops: {info.value}"
    )
    # the op is checked before the operands: an unknown op is named as such, whatever it is given
    with pytest.raises(ValueError, match="unknown op 'conv3d'"):
        backend.dispatch("conv3d", [1, 2], None)


def test_dispatch_needs_the_two_operands_and_a_string_op() -> None:
    backend = OptimizedBackend()
    A, B = _dense()
    assert_product_close(backend.dispatch("matmul", A, B), A, B)
    with pytest.raises(ValueError, match="operands"):
        backend.dispatch("matmul", A)
    with pytest.raises(TypeError, match="op"):
        backend.dispatch(None, A, B)


def test_register_validates_its_arguments() -> None:
    backend = OptimizedBackend()
    backend.register("matmul", "int8", int8_matmul_int32)
    assert ("matmul", "int8") in backend.supported(), (
        "supported() must list the registered ('matmul', 'int8')"
    )
    with pytest.raises(TypeError, match="kernel"):
        backend.register("matmul", "int8", "not a function")
    with pytest.raises(ValueError, match="op"):
        backend.register("", "dense", matmul_numpy)
    with pytest.raises(TypeError, match="kind"):
        backend.register("matmul", 8, matmul_numpy)
    int8 = np.ones((1, 1), np.int8)
    assert backend.kernel_for("matmul", int8, int8) is int8_matmul_int32, (
        "kernel_for('matmul', int8, int8) must be the registered int8 kernel"
    )


# --------------------------------------------------------------------------------------------
# conv2d: im2col + one dispatched product
# --------------------------------------------------------------------------------------------


def conv2d_direct(x, weight, bias, stride, padding, absolute=False) -> np.ndarray:
    """The convolution summed offset by offset in float64, without im2col (the reference).

    With ``absolute=True`` it convolves |x| with |weight| and adds |bias|: the scale of the
    float32 error bound below."""
    f = np.abs if absolute else (lambda a: a)
    x = np.pad(f(x.astype(np.float64)), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    w = f(weight.astype(np.float64))
    n, _, hp, wp = x.shape
    n_f, _, kh, kw = w.shape
    h_out, w_out = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    y = np.zeros((n, n_f, h_out, w_out))
    for di in range(kh):
        for dj in range(kw):
            patch = x[
                :, :, di : di + stride * (h_out - 1) + 1 : stride, dj : dj + stride * (w_out - 1) + 1 : stride
            ]
            y += np.einsum("nchw,fc->nfhw", patch, w[:, :, di, dj])
    if bias is not None:
        y += f(bias.astype(np.float64))[None, :, None, None]
    return y


@st.composite
def conv_cases(draw):
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * padding), 9))
    w = draw(st.integers(max(1, kw - 2 * padding), 9))
    fill = draw(st.sampled_from(MATMUL_FILLS))
    seed = draw(st.integers(0, 2**32 - 1))
    with_bias = draw(st.booleans())
    return (n, c, h, w), (f, c, kh, kw), with_bias, stride, padding, fill, seed


def _conv_operands(case):
    x_shape, w_shape, with_bias, stride, padding, fill, seed = case
    from strategies import fill_matrix

    rng = np.random.default_rng(seed)
    x = fill_matrix(rng, (x_shape[0], int(np.prod(x_shape[1:]))), fill).reshape(x_shape)
    weight = fill_matrix(rng, (w_shape[0], int(np.prod(w_shape[1:]))), fill).reshape(w_shape)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32) if with_bias else None
    return x, weight, bias, stride, padding


@given(conv_cases())
@example(((1, 1, 1, 1), (1, 1, 1, 1), False, 1, 0, "normal", 0))  # a 1x1 image, a 1x1 filter
@example(((2, 3, 7, 5), (4, 3, 3, 3), True, 2, 1, "mixed_scale", 1))  # odd sizes, stride and padding
@example(((1, 2, 1, 1), (3, 2, 4, 4), True, 3, 2, "positive", 2))  # kernel larger than the image (padded)
@example(((2, 1, 9, 9), (2, 1, 2, 3), False, 3, 0, "zero_rows", 3))  # stride leaves columns unused
def test_conv2d_kernel_matches_direct_convolution(case) -> None:
    x, weight, bias, stride, padding = _conv_operands(case)
    y = conv2d_im2col(x, weight, bias, stride, padding)
    exact = conv2d_direct(x, weight, bias, stride, padding)
    assert y.shape == exact.shape and y.dtype == np.float32, (
        f"conv2d_im2col: shape {y.shape} and dtype {y.dtype}, expected {exact.shape} and float32"
    )
    # One float32 dot product of length K = C*kh*kw, plus the bias: gamma_{K+1} <= (K+1) eps
    # times the same sum taken over absolute values (see float32_product_bound).
    k = weight[0].size + 1
    bound = k * EPS32 * conv2d_direct(x, weight, bias, stride, padding, absolute=True) + k * TINY32
    assert np.all(np.abs(y - exact) <= bound), (
        f"conv2d_im2col differs from the direct convolution by up to {np.max(np.abs(y - exact)):.3g}, "
        "beyond the float32 bound"
    )

    backend = OptimizedBackend()
    np.testing.assert_array_equal(
        backend.dispatch("conv2d", x, weight, bias, stride, padding),
        y,
        err_msg="dispatch('conv2d', ...) != conv2d_im2col(...)",
    )
    # keywords reach the kernel too
    by_keyword = backend.dispatch("conv2d", x, weight, bias=bias, stride=stride, padding=padding)
    np.testing.assert_array_equal(
        by_keyword, y, err_msg="dispatch('conv2d', ...) with bias, stride and padding as keywords"
    )


def test_conv2d_dispatch_runs_its_product_through_the_matmul_kernel() -> None:
    x, weight, bias, stride, padding = _conv_operands(((2, 3, 6, 5), (4, 3, 3, 2), True, 1, 1, "normal", 5))
    backend = OptimizedBackend()
    spy = Spy(matmul_numpy)
    backend.register("matmul", "dense", spy)
    y = backend.dispatch("conv2d", x, weight, bias, stride, padding)
    assert spy.calls == 1, f"matmul kernel calls for one convolution = {spy.calls}, expected 1"
    cols, w2 = spy.last_args
    # H_out = (6 + 2 - 3) + 1 = 6, W_out = (5 + 2 - 2) + 1 = 6: rows (N * 6 * 6), columns C * kh * kw
    assert cols.shape == (2 * 6 * 6, 3 * 3 * 2) and w2.shape == (3 * 3 * 2, 4), (
        f"shapes of the product's operands {cols.shape} @ {w2.shape}, expected (72, 18) @ (18, 4)"
    )
    np.testing.assert_array_equal(
        y,
        conv2d_im2col(x, weight, bias, stride, padding),
        err_msg="dispatch('conv2d', ...) != conv2d_im2col(...)",
    )


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "bias_shape", "error", "match"),
    [
        ((1, 3, 5, 5), (2, 4, 3, 3), None, ValueError, "channels"),
        ((3, 5, 5), (2, 3, 3, 3), None, ValueError, "x must be 4-D"),
        ((1, 3, 5, 5), (2, 3, 3), None, ValueError, "weight must be 4-D"),
        ((1, 3, 5, 5), (2, 3, 3, 3), (3,), ValueError, "bias"),
        ((1, 3, 2, 2), (2, 3, 3, 3), None, ValueError, "smaller than the kernel"),
    ],
)
def test_conv2d_bad_input_rejected(x_shape, w_shape, bias_shape, error, match) -> None:
    x, weight, bias, stride, padding = _conv_operands(((1, 3, 5, 5), (2, 3, 3, 3), True, 1, 0, "normal", 6))
    np.testing.assert_allclose(
        conv2d_im2col(x, weight, bias),
        conv2d_direct(x, weight, bias, 1, 0),
        rtol=1e-5,
        atol=1e-5,
        err_msg="conv2d_im2col of a valid call against the direct convolution",
    )
    bad_bias = None if bias_shape is None else np.zeros(bias_shape, np.float32)
    with pytest.raises(error, match=match):
        conv2d_im2col(np.ones(x_shape, np.float32), np.ones(w_shape, np.float32), bad_bias)


@pytest.mark.parametrize(
    ("stride", "padding", "error"), [(0, 0, ValueError), (1, -1, ValueError), (1.5, 0, TypeError)]
)
def test_conv2d_bad_stride_or_padding_rejected(stride, padding, error) -> None:
    x, weight, bias, _, _ = _conv_operands(((1, 2, 4, 4), (2, 2, 2, 2), False, 1, 0, "normal", 8))
    np.testing.assert_allclose(
        conv2d_im2col(x, weight, None, 2, 1),
        conv2d_direct(x, weight, None, 2, 1),
        rtol=1e-5,
        atol=1e-5,
        err_msg="conv2d_im2col of a valid call against the direct convolution",
    )
    with pytest.raises(error, match="stride" if stride != 1 else "padding"):
        conv2d_im2col(x, weight, bias, stride, padding)


# --------------------------------------------------------------------------------------------
# The foundation's layers run through the backend (tinytorch.backend.use_backend)
# --------------------------------------------------------------------------------------------


def _run(model, x, backend=None):
    from tinytorch.backend import use_backend
    from tinytorch.tensor import Tensor, no_grad

    with no_grad(), use_backend(backend):
        out = model(Tensor(x))
    out = out[0] if isinstance(out, tuple) else out  # attention returns (y, (k, v))
    return out.data


def _counting_backend() -> tuple[OptimizedBackend, Spy]:
    backend = OptimizedBackend()
    spy = Spy(matmul_numpy)
    backend.register("matmul", "dense", spy)
    return backend, spy


def _models():
    from tinytorch.attention import MultiHeadAttention
    from tinytorch.conv import Conv2d
    from tinytorch.layers import Flatten, Linear, ReLU, Sequential

    rng = np.random.default_rng(0)
    return {
        # name: (model, input, number of 2-D products in one forward)
        "linear": (Linear(12, 5, rng=rng), rng.standard_normal((4, 12)).astype(np.float32), 1),
        "linear-3d-input": (Linear(6, 3, rng=rng), rng.standard_normal((2, 5, 6)).astype(np.float32), 1),
        "conv2d": (
            Conv2d(3, 4, 3, stride=2, padding=1, rng=rng),
            rng.standard_normal((2, 3, 7, 7)).astype(np.float32),
            1,
        ),
        "cnn": (
            Sequential(
                Conv2d(1, 4, 3, rng=rng),
                ReLU(),
                Conv2d(4, 2, 3, padding=1, rng=rng),
                ReLU(),
                Flatten(),
                Linear(2 * 6 * 6, 10, rng=rng),
                ReLU(),
                Linear(10, 3, rng=rng),
            ),
            rng.standard_normal((3, 1, 8, 8)).astype(np.float32),
            4,
        ),
        "attention-projections": (
            MultiHeadAttention(8, 2, rng=rng),
            rng.standard_normal((2, 5, 8)).astype(np.float32),
            4,
        ),
    }


@pytest.mark.parametrize("name", ["linear", "linear-3d-input", "conv2d", "cnn", "attention-projections"])
def test_layers_through_the_backend_give_the_same_output(name) -> None:
    model, x, n_products = _models()[name]
    expected = _run(model, x)
    backend, spy = _counting_backend()
    got = _run(model, x, backend)
    # The default dense kernel is the same BLAS call on the same operands: identical bits.
    np.testing.assert_array_equal(got, expected, err_msg=f"{name}: output with the backend != output without")
    assert spy.calls == n_products, f"{name}: {spy.calls} products dispatched, expected {n_products}"


def test_layers_through_a_blocked_backend_give_the_same_output() -> None:
    # Swap the kernel, not the model: the CNN through matmul_blocked (8x8 tiles). With weights in
    # {-1, 0, 1} and inputs in [-2, 2] every product and partial sum is an integer below 2**24
    # (at most 2*9 after conv 1, 18*36 after conv 2, 648*72 and 46656*10 after the Linears), so
    # float32 is exact in any summation order and the outputs must agree bit for bit.
    model, x, n_products = _models()["cnn"]
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.data[...] = rng.integers(-1, 2, p.shape)
    x = rng.integers(-2, 3, x.shape).astype(np.float32)
    expected = _run(model, x)
    backend = OptimizedBackend()
    spy = Spy(lambda a, b: matmul_blocked(a, b, block_size=8))
    backend.register("matmul", "dense", spy)
    got = _run(model, x, backend)
    assert spy.calls == n_products, f"products dispatched = {spy.calls}, expected {n_products}"
    assert np.abs(expected).max() > 0, (
        "the CNN's output must not be all zeros (the comparison would prove nothing)"
    )
    np.testing.assert_array_equal(
        got, expected, err_msg="CNN output through matmul_blocked != output without a backend"
    )


# --------------------------------------------------------------------------------------------
# Every dtype numpy multiplies, the registry under threads, defaults
# --------------------------------------------------------------------------------------------

INTEGER_CASES = [
    # (dtype of A, dtype of B, low, high): int8 products overflow and wrap, int64 sums pass 2**53
    (np.int8, np.int8, -128, 128),
    (np.uint8, np.uint8, 0, 256),
    (np.int16, np.int16, -(2**15), 2**15),
    (np.int64, np.int64, 2**40, 2**40 + 1000),
    (np.uint8, np.float32, 0, 256),
    (np.int64, np.float64, -(2**20), 2**20),
    (np.bool_, np.bool_, 0, 2),
]


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "a_dtype, b_dtype, low, high", INTEGER_CASES, ids=lambda v: getattr(v, "__name__", "")
)
def test_every_kernel_equals_numpy_on_every_numeric_dtype(kernel, a_dtype, b_dtype, low, high) -> None:
    # Integer and bool products are exact in numpy's result dtype (wrapping modulo 2**bits, like
    # numpy's own @), so all three kernels must give A @ B bit for bit, whatever the order of the
    # additions. int64 entries near 2**40 give sums near 2**83 mod 2**64: a Python-float
    # accumulator rounds them (past 2**53) and an int8 one raises instead of wrapping.
    rng = np.random.default_rng(7)
    A = rng.integers(low, high, (5, 9)).astype(a_dtype)
    B = rng.integers(low, high, (9, 4)).astype(b_dtype)
    with np.errstate(over="ignore"):
        expected = A @ B
    C = kernel(A, B, 3) if kernel is matmul_blocked else kernel(A, B)
    assert C.dtype == expected.dtype == np.result_type(A, B), (
        f"{kernel.__name__}: dtype {C.dtype}, numpy's @ gives {expected.dtype}"
    )
    np.testing.assert_array_equal(C, expected, err_msg=f"{kernel.__name__} != numpy's A @ B")


def test_integer_inputs_give_the_same_output_with_and_without_the_backend() -> None:
    # The foundation accepts int64 token ids and uint8 images without a backend; with one, the
    # dense path must do exactly what numpy does (same values, same dtype), not refuse them.
    from tinytorch.conv import Conv2d
    from tinytorch.layers import Linear

    rng = np.random.default_rng(2)
    linear, conv = Linear(6, 3, rng=rng), Conv2d(1, 2, 3, rng=rng)
    for model, x in (
        (linear, rng.integers(0, 50, (4, 6)).astype(np.int64)),
        (linear, rng.integers(0, 256, (4, 6)).astype(np.uint8)),
        (conv, rng.integers(0, 256, (2, 1, 5, 5)).astype(np.uint8)),
    ):
        expected = _run(model, x)
        backend, spy = _counting_backend()
        got = _run(model, x, backend)
        assert spy.calls == 1, f"products dispatched = {spy.calls}, expected 1"
        assert got.dtype == expected.dtype, f"dtype with the backend {got.dtype}, without {expected.dtype}"
        np.testing.assert_array_equal(got, expected, err_msg="output with the backend != output without")


class RegistersWhileCompared(str):
    """An op name whose comparison registers a kernel from another thread: exactly what happens
    when a thread registers while kernel_for walks the registry (made deterministic here)."""

    def __eq__(self, other):
        thread = threading.Thread(
            target=self.backend.register, args=(f"op{len(self.backend.supported())}", "dense", abs)
        )
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive(), "register blocked while kernel_for was reading the registry"
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_kernel_for_is_safe_while_another_thread_registers() -> None:
    backend = OptimizedBackend()
    # "conv2d" is the second op registered, so the walk over the registry compares it with
    # "matmul" first (a registration happens) and then has to go on walking.
    op = RegistersWhileCompared("conv2d")
    op.backend = backend
    x, weight, _, _, _ = _conv_operands(((1, 2, 4, 4), (2, 2, 2, 2), False, 1, 0, "normal", 13))
    kernel = backend.kernel_for(op, x, weight)  # no "dictionary changed size during iteration"
    assert kernel == backend._conv2d_dense, (
        "kernel_for('conv2d', ...) while another thread registers must be the dense conv2d kernel"
    )
    assert len(backend.supported()) > 2, "the other thread's registrations are kept"
    np.testing.assert_array_equal(
        backend.dispatch(op, x, weight),
        conv2d_im2col(x, weight),
        err_msg="dispatch('conv2d', ...) while another thread registers",
    )


def test_concurrent_registrations_are_all_kept() -> None:
    backend = OptimizedBackend()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [
            threading.Thread(
                target=lambda t=t: [backend.register(f"op{t}_{i}", "dense", abs) for i in range(200)]
            )
            for t in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sys.setswitchinterval(old)
    assert len(backend.supported()) == 2 + 4 * 200, (
        f"{len(backend.supported())} pairs registered, expected 2 + 4 * 200 (no registration lost)"
    )


def test_dispatch_conv2d_defaults_to_stride_1_padding_0_and_no_bias() -> None:
    x, weight, _, _, _ = _conv_operands(((2, 3, 6, 5), (4, 3, 3, 2), False, 1, 0, "normal", 11))
    y = OptimizedBackend().dispatch("conv2d", x, weight)
    assert y.shape == (2, 4, 4, 4), f"shape of the convolution = {y.shape}, expected (2, 4, 4, 4)"
    np.testing.assert_allclose(
        y,
        conv2d_direct(x, weight, None, 1, 0),
        rtol=1e-5,
        atol=1e-5,
        err_msg="dispatch('conv2d', x, weight) with the defaults against the direct convolution",
    )
    np.testing.assert_array_equal(
        y, conv2d_im2col(x, weight), err_msg="dispatch('conv2d', x, weight) != conv2d_im2col(x, weight)"
    )


@pytest.mark.parametrize("name", ["x", "weight"])
def test_conv2d_rejects_a_list_naming_the_argument(name) -> None:
    x, weight, _, _, _ = _conv_operands(((1, 2, 4, 4), (2, 2, 2, 2), False, 1, 0, "normal", 12))
    np.testing.assert_allclose(
        conv2d_im2col(x, weight),
        conv2d_direct(x, weight, None, 1, 0),
        rtol=1e-5,
        atol=1e-5,
        err_msg="conv2d_im2col of a valid call against the direct convolution",
    )
    args = {"x": x, "weight": weight}
    args[name] = args[name].tolist()
    with pytest.raises(TypeError, match=f"{name} must be an np.ndarray"):
        conv2d_im2col(**args)


# --------------------------------------------------------------------------------------------
# The benchmark's measurement on a busy machine (benchmarks/acceleration.py; scripted clock)
# --------------------------------------------------------------------------------------------


class ScriptedTimer:
    """Runs each kernel (so the real kernels are exercised) but reports scripted durations:
    ``script[name]`` is a function of how many times ``name`` was timed before (the block
    sizes of the sweep use ``script["blocked"]``)."""

    def __init__(self, script):
        self.script, self.calls, self.order = script, {}, []

    def __call__(self, name, fn):
        fn()
        k = self.calls.get(name, 0)
        self.calls[name] = k + 1
        self.order.append(name)
        return self.script.get(name, self.script["blocked"])(k)  # sweep entries time like blocked


def _bench_figures(timer, **options):
    from benchmarks import acceleration as bench

    kwargs = dict(sizes=(8,), naive_max=8, repeats=3, block_size=4, block_sizes=(2, 4), sweep_sizes=())
    return bench, bench.figures(**{**kwargs, **options}, timer=timer)


def test_benchmark_interleaves_the_kernels_in_a_rotating_order() -> None:
    timer = ScriptedTimer({"naive": lambda k: 1e-2, "blocked": lambda k: 2e-3, "numpy": lambda k: 1e-3})
    _, fig = _bench_figures(timer)
    # naive is timed once (repeats // 3), the others 3 times; round r starts at kernel r
    assert timer.order == ["naive", "blocked", "numpy", "blocked", "numpy", "numpy", "blocked"], (
        f"the order the kernels were timed: {timer.order}"
    )
    stats = fig["sizes"][8]
    assert stats["numpy"]["median_s"] == 1e-3 and stats["blocked"]["of_blas"] == pytest.approx(0.5), (
        "numpy's median time and blocked's fraction of the BLAS rate"
    )
    assert stats["blocked"]["speedup"] == pytest.approx(5.0), "blocked's speedup over naive"
    assert fig["warnings"] == [] and fig["remeasured"] == [], (
        f"warnings {fig['warnings']}, remeasured {fig['remeasured']}: expected none"
    )


def test_benchmark_remeasures_a_blocked_kernel_faster_than_blas() -> None:
    # A load burst during the first measurement makes every BLAS call look 10x slower than the
    # tiles: impossible (the tiles are BLAS calls too). Measured again, it is gone.
    timer = ScriptedTimer(
        {"naive": lambda k: 1e-2, "blocked": lambda k: 2e-3, "numpy": lambda k: 2e-2 if k < 3 else 1e-3}
    )
    bench, fig = _bench_figures(timer)
    assert fig["remeasured"] == ["n=8: measured 2 times"], f"remeasured = {fig['remeasured']}"
    assert fig["warnings"] == [], f"warnings = {fig['warnings']}"
    assert fig["sizes"][8]["numpy"]["median_s"] == 1e-3, "the figures are the re-measured ones"
    assert timer.calls["numpy"] == 3 + 6, "the second measurement doubles the repeats"
    assert "WARNING" not in bench.report(fig), "the report must not warn once the re-measurement is plausible"


def test_benchmark_flags_a_result_that_stays_implausible() -> None:
    timer = ScriptedTimer({"naive": lambda k: 1e-4, "blocked": lambda k: 2e-3, "numpy": lambda k: 1e-3})
    bench, fig = _bench_figures(timer, sweep_sizes=(8,))
    assert fig["sizes"][8]["naive"]["implausible"] and not fig["sizes"][8]["numpy"]["implausible"], (
        "implausible flags: naive must be flagged, numpy not"
    )
    assert any("n=8: the naive loop" in w for w in fig["warnings"]), (
        f"warnings = {fig['warnings']}: one must name the naive loop at n=8"
    )
    assert len(fig["remeasured"]) == 1, "measured 1 + 2 times before giving up"
    text = bench.report(fig)
    assert "naive !" in text and "WARNING, implausible" in text, "the report must mark the naive row and warn"
    # within the noise (overlapping quartiles) a small lead is no anomaly: no re-measuring
    jitter = ScriptedTimer(
        {
            "naive": lambda k: 1e-2,
            "blocked": lambda k: (0.8e-3, 1.3e-3, 1.2e-3)[k % 3],
            "numpy": lambda k: (1.1e-3, 0.9e-3, 1.0e-3)[k % 3],
        }
    )
    _, fig = _bench_figures(jitter)
    assert fig["remeasured"] == [] and fig["warnings"] == [], (
        f"warnings {fig['warnings']}, remeasured {fig['remeasured']}: within the noise, expected none"
    )


def test_benchmark_options_are_checked_not_replaced() -> None:
    bench, fig = _bench_figures(
        ScriptedTimer({"naive": lambda k: 1e-2, "blocked": lambda k: 2e-3, "numpy": lambda k: 1e-3}),
        sweep_sizes=(8,),
    )
    assert fig["best_block_size"] == {8: 2}, "equal times: the first block size"
    assert fig["best_is_clear"] == {8: False}, "not faster than the runner-up beyond the noise"
    assert "(not clearly)" in bench.report(fig), (
        "the report must say the best block size is not clearly the best"
    )
    for bad in (
        ["--repeats", "0"],
        ["--repeats", "-1"],
        ["--sizes", "0"],
        ["--block-size", "0"],
        ["--naive-max", "-1"],
        ["--threads", "0"],
    ):
        with pytest.raises(SystemExit) as info:
            bench.main(bad)
        assert info.value.code == 2, f"{bad} must be a usage error, not silently replaced"


def test_benchmark_figures_from_an_unpinned_process_come_from_a_pinned_one() -> None:
    # This test process loaded numpy without pinning BLAS threads, so figures() measures in a
    # fresh interpreter with them pinned, and returns the same dict (integer sizes, as in-process).
    from benchmarks import acceleration as bench

    fig = bench.figures(sizes=(8,), naive_max=8, repeats=1, block_size=4, block_sizes=(4,), sweep_sizes=(8,))
    assert fig["pinned"] is True and fig["threads"] == 1, (
        f"pinned = {fig['pinned']}, threads = {fig['threads']}: expected True and 1"
    )
    assert "OPENBLAS_NUM_THREADS=1" in fig["blas"], (
        f"BLAS line {fig['blas']!r} must show OPENBLAS_NUM_THREADS=1"
    )
    assert list(fig["sizes"]) == [8] and list(fig["sizes"][8]) == ["naive", "blocked", "numpy"], (
        "the figures' sizes and kernels"
    )
    assert fig["best_block_size"] == {8: 4}, f"best_block_size = {fig['best_block_size']}"


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda f: f.__name__)
def test_kernels_take_nested_lists_like_numpy(kernel) -> None:
    A, B = [[1.0, 2.0], [3.0, 4.0]], [[5.0], [6.0]]
    C = kernel(A, B)
    assert isinstance(C, np.ndarray) and C.dtype == np.float64, (
        f"{kernel.__name__} of nested lists: {type(C).__name__} of dtype {getattr(C, 'dtype', None)}, "
        "expected a float64 ndarray"
    )
    np.testing.assert_array_equal(
        C, np.array(A) @ np.array(B), err_msg=f"{kernel.__name__} of nested lists != numpy's product"
    )
