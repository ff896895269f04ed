"""Answer key of module 16 (acceleration): held-out checks judged by the grader from their values.

Each check exercises as few kata functions as it can (one kernel, one route of the backend), so
that the functions it calls on the reference are a subset of those of every test of that
function, and its failure withholds exactly those tests' credit (``grading/grade_score.py``,
``decides``). What it covers, on operands drawn from ``answer.rng`` (shapes, tile sizes, fills,
dtypes, conv geometry), kernel by kernel: integer-valued operands (where float arithmetic is
exact in any summation order, compared exactly), real-valued float32 operands (within the float32
error bound), every integer dtype numpy multiplies (wrapping included), empty dimensions and
nested lists, the products each kernel hands to the library (``matmul_blocked``: one tile
product per tile triple, no operand larger than a tile, counted by an ndarray subclass that logs
products), and the argument errors; ``conv2d_im2col`` (exact on integer-valued data) and its
argument errors; ``operand_kind`` / ``call_kind``; the ``OptimizedBackend`` registry route by
route (defaults, re-registration, new ops, the int8 and sparse routes, the errors that list the
supported pairs, argument checks, registrations from other threads, conv2d as one dispatched
product); and the foundation's layers run through the backend.

One file, whole: it is the module's answer key as the registry names it (``key = ...`` in
tinytorch/course/modules.toml), run by the grader in one child beside the module's suite.
"""

from __future__ import annotations

import contextlib
import sys
import threading

import numpy as np
import pytest

# The kata package is imported at collection, so that what its import runs (a module-level generator
# expression, say) is traced in no check's calls; a package that fails to import fails every check.
with contextlib.suppress(Exception):
    import tinytorch.perf.acceleration  # noqa: F401

EPS32 = float(np.finfo(np.float32).eps)
K_REAL = 48  # the largest inner dimension of the real-valued products (their tolerance depends on it)


class ProductSpy(np.ndarray):
    """An ndarray that logs the operand shapes of every matrix product it takes part in (``@``,
    ``np.matmul``, ``np.dot``, ``np.tensordot``, ``np.einsum``, ``np.inner``, ``np.vdot``)."""

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


class Spy:
    """Wraps a kernel and counts its calls (and keeps the last arguments)."""

    def __init__(self, kernel):
        self.kernel, self.calls, self.last_args = kernel, 0, None

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.last_args = args
        return self.kernel(*args, **kwargs)


class QuantizedOperand:
    """An int8 operand as module 17 exposes it: int8 values and ``kind = "int8"``."""

    kind = "int8"

    def __init__(self, q: np.ndarray) -> None:
        self.q = q.astype(np.int8)


class CSR:
    """A compressed-sparse-row matrix, duck typed (data, indices, indptr, shape; no ``kind``)."""

    def __init__(self, dense: np.ndarray) -> None:
        rows, cols = np.nonzero(dense)
        self.data = dense[rows, cols]
        self.indices = cols
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[0]))])
        self.shape = dense.shape


def int8_kernel(a, b) -> np.ndarray:
    """Module 17's kernel in miniature: int8 values, products accumulated in int32."""
    return getattr(a, "q", a).astype(np.int32) @ getattr(b, "q", b).astype(np.int32)


def csr_kernel(a: CSR, b: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.result_type(a.data, b))
    for i in range(a.shape[0]):
        lo, hi = a.indptr[i], a.indptr[i + 1]
        out[i] = a.data[lo:hi] @ b[a.indices[lo:hi]]
    return out


def _integer_valued(rng, shape, fill: str, dtype) -> np.ndarray:
    """Integers in [-8, 8] stored as floats: with K <= 64 every product and partial sum is an
    integer below 2**24, so float32 arithmetic is exact in any order."""
    if fill == "constant":  # never 0: a constant tensor, not an empty one
        x = np.full(shape, rng.choice([-1, 1]) * rng.integers(1, 9))
    elif fill == "positive":
        x = rng.integers(0, 9, shape)
    elif fill == "negative":
        x = -rng.integers(0, 9, shape)
    elif fill == "zero_rows":
        x = rng.integers(-8, 9, shape)
        x[::2] = 0
        x[:, :1] = 0
    else:
        x = rng.integers(-8, 9, shape)
    return np.asarray(x, dtype=dtype)


def _real_valued(rng, shape, fill: str) -> np.ndarray:
    """float32 entries of magnitude <= 1 (so sum_k |a_ik| |b_kj| <= K)."""
    if fill == "constant":
        x = np.full(shape, rng.uniform(-1, 1))
    elif fill == "positive":
        x = rng.uniform(0, 1, shape)
    elif fill == "negative":
        x = -rng.uniform(0, 1, shape)
    elif fill == "scales":  # magnitudes from 1e-3 to 1, both signs: cancellation
        x = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(-3, 0, shape)
    else:
        x = rng.uniform(-1, 1, shape)
    return x.astype(np.float32)


def _tile(rng, m: int, k: int, n: int, max_tiles: int = 1500) -> int:
    """A drawn tile size (up to a little past the largest side) that keeps the tile count small."""
    while True:
        bs = int(rng.integers(1, max(m, k, n) + 9))
        if -(-m // bs) * -(-k // bs) * -(-n // bs) <= max_tiles:
            return bs


FILLS = ("integers", "constant", "positive", "negative", "zero_rows")


INTEGER_CASES = (
    # (dtype of A, dtype of B, low, high): int8 products wrap, int64 sums pass 2**53
    (np.int8, np.int8, -128, 128),
    (np.uint8, np.uint8, 0, 256),
    (np.int16, np.int16, -(2**15), 2**15),
    (np.int64, np.int64, 2**40, 2**40 + 1000),
    (np.uint8, np.float32, 0, 256),
    (np.int64, np.float64, -(2**20), 2**20),
    (np.bool_, np.bool_, 0, 2),
    (np.int32, np.int8, -(2**20), 2**20),
)



def _conv_case(rng, i: int):
    n, c, f = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 5))
    kh, kw = (int(v) for v in rng.integers(1, 5, 2))
    stride, padding = int(rng.integers(1, 4)), int(rng.integers(0, 3))
    if i == 0:  # a kernel larger than the image, padded
        padding = 2
        h, w = int(rng.integers(max(1, kh - 4), kh + 1)), int(rng.integers(max(1, kw - 4), kw + 1))
    else:
        h = int(rng.integers(max(1, kh - 2 * padding), 10))
        w = int(rng.integers(max(1, kw - 2 * padding), 10))
    x = rng.integers(-4, 5, (n, c, h, w)).astype(np.float32)
    weight = rng.integers(-4, 5, (f, c, kh, kw)).astype(np.float32)
    bias = rng.integers(-4, 5, f).astype(np.float32) if rng.integers(0, 2) else None
    return x, weight, bias, stride, padding




# --------------------------------------------------------------------------------------------
# The three matmul kernels, one at a time
# --------------------------------------------------------------------------------------------


def _kernel(name: str):
    import tinytorch.perf.acceleration as acceleration

    return getattr(acceleration, name)


def _operands(rng, m: int, k: int, n: int, fill_a: str | None = None):
    fill_a = fill_a or str(rng.choice(FILLS))
    fill_b = str(rng.choice(FILLS[:-1]))  # B: no zero rows (A's zero rows already give zero rows of C)
    dtype = (np.float32, np.float64)[int(rng.integers(0, 2))]
    return _integer_valued(rng, (m, k), fill_a, dtype), _integer_valued(rng, (k, n), fill_b, dtype)


def _record_product(answer, name: str, C) -> None:
    answer.record(**{f"{name}": np.asarray(C), f"{name}_dtype": str(np.asarray(C).dtype)})


def test_naive_on_integer_valued_operands(answer):
    from tinytorch.perf.acceleration import matmul_naive

    rng = answer.rng
    for i in range(4):
        m, k, n = (int(v) for v in rng.integers(1, 8, 3))
        if i == 0:  # a size-1 dimension
            one = int(rng.integers(0, 3))
            m, k, n = (1 if j == one else v for j, v in enumerate((m, k, n)))
        _record_product(answer, f"naive{i}", matmul_naive(*_operands(rng, m, k, n)))


def test_blocked_on_integer_valued_operands(answer):
    from tinytorch.perf.acceleration import matmul_blocked

    rng = answer.rng
    for i in range(6):
        m, n = (int(v) for v in rng.integers(1, 71, 2))
        k = int(rng.integers(1, 65))
        bs = _tile(rng, m, k, n)
        if i == 0:  # a block larger than every side
            bs = max(m, k, n) + int(rng.integers(1, 40))
        elif i == 1:  # every side a multiple of the block
            bs = int(rng.integers(2, 9))
            m, k, n = (bs * int(v) for v in rng.integers(1, 5, 3))
        A, B = _operands(rng, m, k, n)
        _record_product(answer, f"blocked{i}", matmul_blocked(A, B, block_size=bs))
        answer.record(**{f"blocked{i}_shape": np.array([m, k, n, bs])})


def test_blocked_gives_the_same_product_for_every_block_size(answer):
    from tinytorch.perf.acceleration import matmul_blocked

    rng = answer.rng
    A, B = _operands(rng, *(int(v) for v in rng.integers(8, 17, 3)), fill_a="integers")
    for bs in sorted({1, 2, 3, 5, 8, 13, int(rng.integers(1, 40)), 64}):
        _record_product(answer, f"every_block_size{bs}", matmul_blocked(A, B, block_size=bs))
    _record_product(answer, "blocked_default", matmul_blocked(A, B))


def test_numpy_on_integer_valued_operands(answer):
    from tinytorch.perf.acceleration import matmul_numpy

    rng = answer.rng
    for i in range(3):
        m, n = (int(v) for v in rng.integers(1, 97, 2))
        _record_product(answer, f"numpy{i}", matmul_numpy(*_operands(rng, m, int(rng.integers(1, 65)), n)))


def _empty_and_lists(answer, name: str) -> None:
    kernel = _kernel(name)
    rng = answer.rng
    m, k, n = (int(v) for v in rng.integers(1, 6, 3))
    for j, (a, b) in enumerate((((0, k), (k, n)), ((m, 0), (0, n)), ((m, k), (k, 0)))):
        _record_product(answer, f"{name}_empty{j}", kernel(np.ones(a, np.float32), np.ones(b, np.float32)))
    A = rng.integers(-5, 6, (m, k)).astype(float).tolist()
    B = rng.integers(-5, 6, (k, n)).astype(float).tolist()
    _record_product(answer, f"{name}_lists", kernel(A, B))


def test_naive_on_empty_dimensions_and_nested_lists(answer):
    _empty_and_lists(answer, "matmul_naive")


def test_blocked_on_empty_dimensions_and_nested_lists(answer):
    _empty_and_lists(answer, "matmul_blocked")


def test_numpy_on_empty_dimensions_and_nested_lists(answer):
    _empty_and_lists(answer, "matmul_numpy")


REAL_TOLERANCE = pytest.mark.tolerance(
    rtol=0.0,
    atol=K_REAL**2 * EPS32,
    why="float32 products of entries |a|, |b| <= 1 with K <= 48: each kernel is within "
    "gamma_K sum_k |a||b| <= K u * K of the exact product in any summation order (Higham 3.5; "
    "u = eps/2), so two correct kernels (BLAS, tiles, the loop) are within K**2 eps of each other",
)
REAL_FILLS = ("uniform", "constant", "positive", "negative", "scales")


def _real_products(answer, name: str) -> None:
    kernel = _kernel(name)
    rng = answer.rng
    for i in range(3):
        top = 10 if name == "matmul_naive" else 65
        m, n = (int(v) for v in rng.integers(1, top, 2))
        k = int(rng.integers(1, K_REAL + 1))
        fill = REAL_FILLS[int(rng.integers(0, len(REAL_FILLS)))]
        A, B = _real_valued(rng, (m, k), fill), _real_valued(rng, (k, n), fill)
        C = kernel(A, B, block_size=_tile(rng, m, k, n)) if name == "matmul_blocked" else kernel(A, B)
        answer.record(**{f"{name}{i}": np.asarray(C), f"{name}{i}_dtype": str(C.dtype)})


@REAL_TOLERANCE
def test_naive_on_real_valued_operands(answer):
    _real_products(answer, "matmul_naive")


@REAL_TOLERANCE
def test_blocked_on_real_valued_operands(answer):
    _real_products(answer, "matmul_blocked")


@REAL_TOLERANCE
def test_numpy_on_real_valued_operands(answer):
    _real_products(answer, "matmul_numpy")


def _logged_products(kernel, A, B, **kwargs):
    ProductSpy.products = []
    C = kernel(A.view(ProductSpy), B.view(ProductSpy), **kwargs)
    logged, ProductSpy.products = ProductSpy.products, []
    return np.asarray(C).view(np.ndarray), logged


def test_blocked_multiplies_tiles_not_whole_matrices(answer):
    from tinytorch.perf.acceleration import matmul_blocked

    rng = answer.rng
    for i in range(4):
        m, k, n = (int(v) for v in rng.integers(1, 13, 3))
        bs = int(rng.integers(1, 17))
        A = rng.integers(-8, 9, (m, k)).astype(np.float32)
        B = rng.integers(-8, 9, (k, n)).astype(np.float32)
        C, logged = _logged_products(matmul_blocked, A, B, block_size=bs)
        largest = max((max(s, default=0) for shapes in logged for s in shapes), default=0)
        answer.record(**{
            f"tiles{i}_C": C,
            f"tiles{i}_products": len(logged),
            f"tiles{i}_largest_operand_side": int(largest),
        })


def _small_integer_pair(rng):
    m, k, n = (int(v) for v in rng.integers(1, 7, 3))
    return rng.integers(-8, 9, (m, k)).astype(np.float32), rng.integers(-8, 9, (k, n)).astype(np.float32)


def test_naive_takes_no_library_products(answer):
    from tinytorch.perf.acceleration import matmul_naive

    C, logged = _logged_products(matmul_naive, *_small_integer_pair(answer.rng))
    answer.record(naive_C=C, naive_products=len(logged))


def test_numpy_hands_the_whole_product_to_the_library(answer):
    from tinytorch.perf.acceleration import matmul_numpy

    C, logged = _logged_products(matmul_numpy, *_small_integer_pair(answer.rng))
    answer.record(numpy_C=C, numpy_products=repr(logged))


def _every_dtype(answer, name: str) -> None:
    kernel = _kernel(name)
    rng = answer.rng
    for i, (a_dtype, b_dtype, low, high) in enumerate(INTEGER_CASES):
        m, k, n = (int(v) for v in rng.integers(1, 10, 3))
        A = rng.integers(low, high, (m, k)).astype(a_dtype)
        B = rng.integers(low, high, (k, n)).astype(b_dtype)
        C = kernel(A, B, int(rng.integers(1, 5))) if name == "matmul_blocked" else kernel(A, B)
        answer.record(**{f"case{i}_{name}": np.asarray(C)})


def test_naive_on_every_numeric_dtype(answer):
    _every_dtype(answer, "matmul_naive")


def test_blocked_on_every_numeric_dtype(answer):
    _every_dtype(answer, "matmul_blocked")


def test_numpy_on_every_numeric_dtype(answer):
    _every_dtype(answer, "matmul_numpy")


def _bad_operands(answer, name: str) -> None:
    kernel = _kernel(name)
    rng = answer.rng
    m, k, n = (int(v) for v in rng.integers(1, 6, 3))
    A = rng.integers(-4, 5, (m, k)).astype(np.float32)
    B = rng.integers(-4, 5, (k, n)).astype(np.float32)
    answer.record(**{
        f"{name}_good": kernel(A, B),
        f"{name}_inner": answer.raises(kernel, A, np.ones((k + int(rng.integers(1, 4)), n), np.float32)),
        f"{name}_a_1d": answer.raises(kernel, np.ones(k, np.float32), B),
        f"{name}_b_1d": answer.raises(kernel, A, np.ones(k, np.float32)),
        f"{name}_a_3d": answer.raises(kernel, np.ones((2, m, k), np.float32), B),
        f"{name}_b_3d": answer.raises(kernel, A, np.ones((1, k, n), np.float32)),
        f"{name}_scalar": answer.raises(kernel, np.float32(2.0), np.ones((1, 1), np.float32)),
        f"{name}_strings": answer.raises(kernel, np.full((m, k), "a"), B),
        f"{name}_complex": answer.raises(kernel, A.astype(complex), B),
        f"{name}_objects": answer.raises(kernel, [[None] * k] * m, B),
    })


def test_naive_refuses_bad_operands(answer):
    _bad_operands(answer, "matmul_naive")


def test_blocked_refuses_bad_operands(answer):
    _bad_operands(answer, "matmul_blocked")


def test_numpy_refuses_bad_operands(answer):
    _bad_operands(answer, "matmul_numpy")


def test_blocked_refuses_bad_block_sizes(answer):
    from tinytorch.perf.acceleration import matmul_blocked

    rng = answer.rng
    A, B = _small_integer_pair(rng)
    for label, bad in {
        "zero": 0, "negative": -int(rng.integers(1, 50)), "float": float(rng.integers(1, 9)) + 0.5,
        "bool": True, "text": "8", "none": None,
    }.items():
        answer.record(**{f"block_{label}": answer.raises(matmul_blocked, A, B, block_size=bad)})
    answer.record(block_one=matmul_blocked(A, B, block_size=1),
                  block_numpy_int=matmul_blocked(A, B, block_size=np.int64(int(rng.integers(1, 4)))))


# --------------------------------------------------------------------------------------------
# conv2d_im2col
# --------------------------------------------------------------------------------------------


def test_conv2d_on_integer_valued_data(answer):
    # Integer-valued images and filters in [-4, 4]: every product and partial sum is an integer far
    # below 2**24, so the float32 result is exact in any summation order and compared exactly.
    from tinytorch.perf.acceleration import conv2d_im2col

    rng = answer.rng
    for i in range(5):
        x, weight, bias, stride, padding = _conv_case(rng, i)
        y = conv2d_im2col(x, weight, bias, stride, padding)
        answer.record(**{f"conv{i}": y, f"conv{i}_dtype": str(y.dtype)})
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    shape = (int(rng.integers(1, 3)), 2, kh + int(rng.integers(0, 5)), kw + 2)
    x = rng.integers(-4, 5, shape).astype(np.float32)
    weight = rng.integers(-4, 5, (int(rng.integers(1, 4)), 2, kh, kw)).astype(np.float32)
    answer.record(defaults=conv2d_im2col(x, weight))


def test_conv2d_refuses_bad_arguments(answer):
    from tinytorch.perf.acceleration import conv2d_im2col

    rng = answer.rng
    c, f = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    x = rng.integers(-3, 4, (1, c, 5, 5)).astype(np.float32)
    w = rng.integers(-3, 4, (f, c, 3, 3)).astype(np.float32)
    answer.record(
        conv_good=conv2d_im2col(x, w, None, 2, 1),
        conv_channels=answer.raises(conv2d_im2col, x, np.ones((f, c + 1, 3, 3), np.float32)),
        conv_x_3d=answer.raises(conv2d_im2col, x[0], w),
        conv_weight_3d=answer.raises(conv2d_im2col, x, w[0]),
        conv_bias_shape=answer.raises(conv2d_im2col, x, w, np.ones(f + 1, np.float32)),
        conv_too_small=answer.raises(conv2d_im2col, x[:, :, :2, :2], w),
        conv_x_list=answer.raises(conv2d_im2col, x.tolist(), w),
        conv_weight_list=answer.raises(conv2d_im2col, x, w.tolist()),
    )
    for label, stride, padding in (
        ("stride_zero", 0, 0), ("stride_negative", -1, 0), ("stride_float", 1.5, 0),
        ("stride_bool", True, 0), ("padding_negative", 1, -int(rng.integers(1, 4))),
        ("padding_float", 1, 0.5), ("padding_none", 1, None),
    ):
        answer.record(**{f"conv_{label}": answer.raises(conv2d_im2col, x, w, None, stride, padding)})


# --------------------------------------------------------------------------------------------
# Operand kinds and the OptimizedBackend registry, route by route
# --------------------------------------------------------------------------------------------


def test_operand_kinds(answer):
    from tinytorch.perf.acceleration import operand_kind

    rng = answer.rng
    shape = tuple(int(v) for v in rng.integers(1, 5, 2))

    class Declared:
        kind = "int4"

    class SparseLooking(CSR):
        kind = "blocked_sparse"

    class TaggedArray(np.ndarray):
        kind = "fp16_simulated"

    operands = {
        "float32": np.ones(shape, np.float32), "float64": np.ones(shape),
        "float16": np.ones(shape, np.float16),
        "int8": np.ones(shape, np.int8), "quantized": QuantizedOperand(np.ones(shape)),
        "csr": CSR(np.eye(shape[0], dtype=np.float32)), "int64": np.ones(shape, np.int64),
        "uint8": np.ones(shape, np.uint8), "bool": np.ones(shape, bool), "int16": np.ones(shape, np.int16),
        "declared": Declared(), "sparse_looking": SparseLooking(np.eye(2)),
        "tagged_array": np.ones(shape, np.float32).view(TaggedArray),
    }
    order = rng.permutation(len(operands))
    names = [list(operands)[i] for i in order]
    answer.record(kind_names="|".join(names), kinds="|".join(operand_kind(operands[k]) for k in names))
    for label, bad in {
        "complex": np.ones(shape, complex), "strings": np.array([["a"]]), "objects": np.array([[None]]),
        "list": [[1.0, 2.0]], "none": None, "float": float(rng.uniform()),
    }.items():
        try:
            operand_kind(bad)
            error, lists_kinds = "", False
        except Exception as exc:  # noqa: BLE001 - the type and the message are the values
            error = type(exc).__name__
            lists_kinds = all(kind in str(exc) for kind in ("dense", "int8", "sparse"))
        answer.record(**{f"bad_{label}": error, f"bad_{label}_lists_kinds": lists_kinds})


def test_call_kinds(answer):
    from tinytorch.perf.acceleration import call_kind

    rng = answer.rng
    shape = tuple(int(v) for v in rng.integers(1, 5, 2))
    dense, q = np.ones(shape, np.float32), np.ones(shape, np.int8)
    csr, quantized = CSR(np.eye(2)), QuantizedOperand(np.ones(shape))
    pairs = {
        "dense_dense": (dense, dense), "dense_int8": (dense, q), "int8_dense": (q, dense),
        "int8_int8": (q, q), "csr_dense": (csr, dense), "dense_csr": (dense, csr),
        "dense_quantized": (dense, quantized), "int64_float": (np.ones(shape, np.int64), dense),
        "int8_csr": (q, csr), "quantized_csr": (quantized, csr),
        "three_dense": (dense, dense, dense), "dense_dense_int8": (dense, dense, q),
    }
    for label in rng.permutation(list(pairs)):
        args = pairs[str(label)]
        answer.record(**{f"call_{label}": answer.raises(call_kind, *args) or call_kind(*args)})


def _integer_pair(rng):
    m, k, n = (int(v) for v in rng.integers(1, 40, 3))
    return rng.integers(-8, 9, (m, k)).astype(np.float32), rng.integers(-8, 9, (k, n)).astype(np.float32)


def test_default_backend_and_kernel_for(answer):
    from tinytorch.perf.acceleration import OptimizedBackend, matmul_numpy

    A, B = _integer_pair(answer.rng)
    backend = OptimizedBackend()
    answer.record(
        default_supported=repr(backend.supported()),
        dense_kernel_is_blas=backend.kernel_for("matmul", A, B) is matmul_numpy,
        int_operands_kernel_is_blas=backend.kernel_for("matmul", A.astype(np.int64), B) is matmul_numpy,
    )
    backend.register("matmul", "int8", int8_kernel)
    answer.record(int8_kernel_found=backend.kernel_for("matmul", A.astype(np.int8), B) is int8_kernel,
                  with_int8_supported=repr(backend.supported()))


def test_register_validates_its_arguments(answer):
    from tinytorch.perf.acceleration import OptimizedBackend

    rng = answer.rng
    fresh = OptimizedBackend()
    A, B = _integer_pair(rng)
    answer.record(
        op_int=answer.raises(fresh.kernel_for, int(rng.integers(0, 9)), A, B),
        register_kernel_text=answer.raises(fresh.register, "matmul", "int8", "not a function"),
        register_empty_op=answer.raises(fresh.register, "", "dense", int8_kernel),
        register_empty_kind=answer.raises(fresh.register, "matmul", "", int8_kernel),
        register_kind_int=answer.raises(fresh.register, "matmul", int(rng.integers(0, 9)), int8_kernel),
        register_op_none=answer.raises(fresh.register, None, "dense", int8_kernel),
        after_bad_registrations=repr(fresh.supported()),
    )


def test_dispatch_matmul_equals_calling_the_kernel(answer):
    from tinytorch.perf.acceleration import OptimizedBackend

    A, B = _integer_pair(answer.rng)
    backend = OptimizedBackend()
    C = backend.dispatch("matmul", A, B)
    answer.record(dispatched=C, dispatched_dtype=str(C.dtype),
                  integers=backend.dispatch("matmul", A.astype(np.int64), B.astype(np.int64)))


def test_dispatch_looks_the_kernel_up_in_the_registry(answer):
    from tinytorch.perf.acceleration import OptimizedBackend, matmul_blocked

    A, B = _integer_pair(answer.rng)
    backend = OptimizedBackend()
    spy = Spy(matmul_blocked)
    backend.register("matmul", "dense", spy)
    C = backend.dispatch("matmul", A, B)
    answer.record(
        replaced=C, replaced_calls=spy.calls,
        replaced_got_the_operands=spy.last_args[0] is A and spy.last_args[1] is B,
        replaced_supported=repr(backend.supported()),
    )
    backend.register("add", "dense", lambda a, b: a + b)
    answer.record(new_op=backend.dispatch("add", A, A), new_op_supported=repr(backend.supported()),
                  new_op_spy_calls=spy.calls)


def _int8_operands(rng):
    """A product whose sum overflows int8 and int16 (the int32 kernel must take it)."""
    k8 = int(rng.integers(200, 600))
    A8 = rng.integers(100, 128, (int(rng.integers(1, 4)), k8)).astype(np.int8)
    B8 = rng.integers(-128, -100, (k8, int(rng.integers(1, 4)))).astype(np.int8)
    return A8, B8


def test_int8_operands_go_to_the_int8_kernel(answer):
    from tinytorch.perf.acceleration import OptimizedBackend

    rng = answer.rng
    backend = OptimizedBackend()
    dense_spy, int8_spy = Spy(lambda a, b: a @ b), Spy(int8_kernel)
    A8, B8 = _int8_operands(rng)
    backend.register("matmul", "dense", dense_spy)
    backend.register("matmul", "int8", int8_spy)
    C8 = backend.dispatch("matmul", A8, B8)
    Q = QuantizedOperand(rng.integers(-6, 6, (3, 4)))
    X = rng.integers(0, 8, (4, 2)).astype(np.int8)
    answer.record(
        int8=np.asarray(C8), int8_quantized=np.asarray(backend.dispatch("matmul", Q, X)),
        int8_mixed=np.asarray(backend.dispatch("matmul", rng.integers(0, 3, (2, 3)).astype(np.float32),
                                               QuantizedOperand(np.ones((3, 2))))),
        int8_calls=int8_spy.calls, int8_dense_calls=dense_spy.calls,
    )


def _error(func, *args) -> tuple[str, str]:
    """The type and message of the exception ``func(*args)`` raises ("", "" when it returns)."""
    try:
        func(*args)
    except Exception as exc:  # noqa: BLE001 - the type and the message are the values
        return type(exc).__name__, str(exc)
    return "", ""


def test_an_unregistered_kind_is_an_error_listing_the_supported_pairs(answer):
    from tinytorch.perf.acceleration import OptimizedBackend

    rng = answer.rng
    backend = OptimizedBackend()
    A, B = _integer_pair(rng)
    A8, B8 = _int8_operands(rng)
    unregistered = []
    for args in ((A8, B8), (A, B8[: B.shape[0]] if B.shape[0] <= len(B8) else B8)):
        error, message = _error(backend.dispatch, "matmul", *args)
        listed = all(op in message and kind in message for op, kind in backend.supported())
        unregistered.append((error, listed and "int8" in message and "matmul" in message))
    answer.record(
        unregistered_error="|".join(e for e, _ in unregistered),
        unregistered_lists_pairs=np.array([ok for _, ok in unregistered]),
    )
    # the list grows as kernels are registered
    backend.register("matmul", "int8", int8_kernel)
    error, message = _error(backend.dispatch, "matmul", CSR(np.eye(3)), np.ones((3, 2), np.float32))
    answer.record(sparse_unregistered=error, sparse_unregistered_lists="sparse" in message
                  and "(matmul, int8)" in message)


def test_a_sparse_operand_goes_to_the_sparse_kernel(answer):
    from tinytorch.perf.acceleration import OptimizedBackend

    rng = answer.rng
    A, B = _integer_pair(rng)
    backend = OptimizedBackend()
    sparse_spy = Spy(csr_kernel)
    backend.register("matmul", "sparse", sparse_spy)
    dense = rng.integers(-3, 4, (int(rng.integers(2, 8)), A.shape[1])).astype(np.float32)
    dense[::2] = 0.0  # empty rows
    answer.record(
        sparse=backend.dispatch("matmul", CSR(dense), B),
        sparse_then_dense=backend.dispatch("matmul", dense, B),
        sparse_calls=sparse_spy.calls,
    )


def test_an_unknown_op_is_an_error_listing_the_supported_ops(answer):
    from tinytorch.perf.acceleration import OptimizedBackend

    rng = answer.rng
    A, B = _integer_pair(rng)
    fresh = OptimizedBackend()
    op = str(rng.choice(["conv3d", "matmul3", "attention", "gemm"]))
    unknown, message = _error(fresh.dispatch, op, A, B)
    before_operands, early = _error(fresh.dispatch, op, [1, 2], None)
    answer.record(
        unknown_op=unknown, unknown_op_lists=all(word in message for word in (op, "matmul", "conv2d")),
        unknown_op_before_operands=f"{before_operands}:{f'unknown op {op!r}' in early}",
    )


def test_dispatch_needs_two_operands_and_a_string_op(answer):
    from tinytorch.perf.acceleration import OptimizedBackend

    A, B = _integer_pair(answer.rng)
    fresh = OptimizedBackend()
    answer.record(
        one_operand=answer.raises(fresh.dispatch, "matmul", A),
        no_operand=answer.raises(fresh.dispatch, "matmul"),
        op_none=answer.raises(fresh.dispatch, None, A, B),
    )


def test_kernel_for_is_safe_while_another_thread_registers(answer):
    # A registration while kernel_for walks the registry (from inside an op name's comparison).
    from tinytorch.perf.acceleration import OptimizedBackend

    rng = answer.rng

    class RegistersWhileCompared(str):
        def __eq__(self, other):
            thread = threading.Thread(
                target=self.backend.register, args=(f"op{len(self.backend.supported())}", "dense", abs)
            )
            thread.start()
            thread.join(timeout=10)
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    walked = OptimizedBackend()
    conv = RegistersWhileCompared("conv2d")
    conv.backend = walked
    x = rng.integers(-3, 4, (1, 2, 4, 4)).astype(np.float32)
    w = rng.integers(-3, 4, (2, 2, 2, 2)).astype(np.float32)
    kernel = walked.kernel_for(conv, x, w)
    answer.record(walked_grew=len(walked.supported()) > 2, walked_conv=kernel(x, w))


def test_concurrent_registrations_are_all_kept(answer):
    from tinytorch.perf.acceleration import OptimizedBackend

    rng = answer.rng
    threads_backend = OptimizedBackend()
    n_threads, per_thread = int(rng.integers(2, 5)), int(rng.integers(50, 150))
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [
            threading.Thread(
                target=lambda t=t: [
                    threads_backend.register(f"op{t}_{i}", "dense", abs) for i in range(per_thread)
                ]
            )
            for t in range(n_threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sys.setswitchinterval(old)
    answer.record(concurrent_kept=len(threads_backend.supported()))


def test_conv2d_dispatch_runs_one_product_through_the_matmul_kernel(answer):
    from tinytorch.perf.acceleration import OptimizedBackend, matmul_numpy

    rng = answer.rng
    for i in range(5):
        x, weight, bias, stride, padding = _conv_case(rng, i)
        backend = OptimizedBackend()
        spy = Spy(matmul_numpy)
        backend.register("matmul", "dense", spy)
        by_position = backend.dispatch("conv2d", x, weight, bias, stride, padding)
        products, (cols, w2) = spy.calls, spy.last_args
        by_keyword = backend.dispatch("conv2d", x, weight, bias=bias, stride=stride, padding=padding)
        answer.record(**{
            f"conv{i}_dispatched": by_position,
            f"conv{i}_by_keyword": by_keyword,
            f"conv{i}_products": products,
            f"conv{i}_product_shapes": np.array(np.shape(cols) + np.shape(w2)),
        })


def test_dispatch_conv2d_defaults_to_stride_1_padding_0_and_no_bias(answer):
    from tinytorch.perf.acceleration import OptimizedBackend

    rng = answer.rng
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    shape = (int(rng.integers(1, 3)), 2, kh + int(rng.integers(0, 5)), kw + 2)
    x = rng.integers(-4, 5, shape).astype(np.float32)
    weight = rng.integers(-4, 5, (int(rng.integers(1, 4)), 2, kh, kw)).astype(np.float32)
    answer.record(defaults=OptimizedBackend().dispatch("conv2d", x, weight))


# --------------------------------------------------------------------------------------------
# The foundation's layers through the backend
# --------------------------------------------------------------------------------------------


def _run(model, x, backend=None):
    from tinytorch.backend import use_backend
    from tinytorch.tensor import Tensor, no_grad

    with no_grad(), use_backend(backend):
        out = model(Tensor(x))
    return (out[0] if isinstance(out, tuple) else out).data


def _integer_models(rng):
    """Models and inputs with weights in {-1, 0, 1} and inputs in [-2, 2]: float32 is exact in any
    summation order."""
    from tinytorch.conv import Conv2d
    from tinytorch.layers import Flatten, Linear, ReLU, Sequential

    c1, c2, hidden = (int(v) for v in rng.integers(1, 5, 3))
    models = {
        "linear": (Linear(7, 4, rng=rng), (int(rng.integers(1, 6)), 7)),
        "linear3d": (Linear(5, 3, rng=rng), (2, int(rng.integers(1, 5)), 5)),
        "conv": (Conv2d(3, c1, 3, stride=2, padding=1, rng=rng), (2, 3, 7, 7)),
        "cnn": (
            Sequential(
                Conv2d(1, c1, 3, rng=rng), ReLU(), Conv2d(c1, c2, 3, padding=1, rng=rng), ReLU(), Flatten(),
                Linear(c2 * 36, hidden, rng=rng), ReLU(), Linear(hidden, 3, rng=rng),
            ),
            (int(rng.integers(1, 4)), 1, 8, 8),
        ),
    }
    drawn = {}
    for name, (model, shape) in models.items():
        for p in model.parameters():
            p.data[...] = rng.integers(-1, 2, p.shape)
        drawn[name] = (model, rng.integers(-2, 3, shape).astype(np.float32))
    return drawn


def test_layers_through_the_backend_give_the_same_output(answer):
    from tinytorch.perf.acceleration import OptimizedBackend, matmul_numpy

    for name, (model, x) in _integer_models(answer.rng).items():
        counting = OptimizedBackend()
        spy = Spy(matmul_numpy)
        counting.register("matmul", "dense", spy)
        answer.record(**{f"{name}_plain": _run(model, x), f"{name}_backend": _run(model, x, counting),
                         f"{name}_products": spy.calls})


def test_layers_through_a_blocked_backend_give_the_same_output(answer):
    from tinytorch.perf.acceleration import OptimizedBackend, matmul_blocked

    rng = answer.rng
    bs = int(rng.integers(2, 9))
    for name, (model, x) in _integer_models(rng).items():
        blocked = OptimizedBackend()
        tiles = Spy(lambda a, b: matmul_blocked(a, b, block_size=bs))
        blocked.register("matmul", "dense", tiles)
        answer.record(**{f"{name}_blocked": _run(model, x, blocked), f"{name}_blocked_products": tiles.calls})


def test_attention_through_the_backend_gives_the_same_bits(answer):
    from tinytorch.perf.acceleration import OptimizedBackend, matmul_numpy

    from tinytorch.attention import MultiHeadAttention

    rng = answer.rng
    mha = MultiHeadAttention(8, 2, rng=rng)
    x = rng.standard_normal((2, int(rng.integers(1, 6)), 8)).astype(np.float32)
    counting = OptimizedBackend()
    spy = Spy(matmul_numpy)
    counting.register("matmul", "dense", spy)
    answer.record(attention_same_bits=bool(np.array_equal(_run(mha, x), _run(mha, x, counting))),
                  attention_products=spy.calls)


def test_integer_inputs_give_the_same_output_with_and_without_the_backend(answer):
    from tinytorch.perf.acceleration import OptimizedBackend, matmul_numpy

    from tinytorch.conv import Conv2d
    from tinytorch.layers import Linear

    rng = answer.rng
    linear, conv = Linear(6, 3, rng=rng), Conv2d(1, 2, 3, rng=rng)
    for p in (*linear.parameters(), *conv.parameters()):
        p.data[...] = rng.integers(-1, 2, p.shape)
    for name, model, x in (
        ("int64", linear, rng.integers(0, 50, (4, 6)).astype(np.int64)),
        ("uint8", linear, rng.integers(0, 256, (4, 6)).astype(np.uint8)),
        ("uint8_image", conv, rng.integers(0, 256, (2, 1, 5, 5)).astype(np.uint8)),
    ):
        counting = OptimizedBackend()
        spy = Spy(matmul_numpy)
        counting.register("matmul", "dense", spy)
        got = _run(model, x, counting)
        answer.record(**{f"{name}_plain": _run(model, x), f"{name}_backend": got,
                         f"{name}_dtype": str(got.dtype), f"{name}_products": spy.calls})
