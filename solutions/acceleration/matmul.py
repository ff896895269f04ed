"""Three ways to multiply two matrices: the triple loop, tiles, and the BLAS library.

All three compute the same thing, C = A @ B with

    C[i, j] = sum_k A[i, k] * B[k, j]        A (M, K), B (K, N) -> C (M, N)

which costs 2·M·N·K floating-point operations (one multiply and one add per term). What differs
is *how the memory is walked*, and that is where the speed is:

* ``matmul_naive`` touches one element at a time from Python: every multiply-add pays for the
  interpreter, and ``B[k, j]`` strides down a column, a cache miss per step on large matrices.
* ``matmul_blocked`` walks the matrices in square tiles and multiplies each pair of tiles with
  numpy. A tile of A, a tile of B and a tile of C are small enough to stay in cache while they
  are reused ``block_size`` times: the idea every fast GEMM is built on.
* ``matmul_numpy`` hands the whole product to BLAS (OpenBLAS here), which tiles for every level
  of the cache, packs the tiles contiguously, and runs vectorised (SIMD) kernels on every core.

The result has numpy's promoted dtype, ``np.result_type(A, B)`` (float32 for float32 inputs),
and every kernel computes in it, as numpy's ``@`` does: the three agree on every dtype, integers
included (an int8 product wraps around modulo 2^8 in all three, as in ``A @ B``).
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_block_size", "check_matmul_operands", "matmul_blocked", "matmul_naive", "matmul_numpy"]


def check_matmul_operands(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate the operands of a 2-D product and return them as arrays.

    Raises ``TypeError`` if either is not numeric (bool, integer or floating: what numpy's ``@``
    multiplies), ``ValueError`` if either is not 2-D or the inner dimensions differ (A's columns
    must equal B's rows).
    """
    arrays = []
    for name, x in (("A", A), ("B", B)):
        x = np.asanyarray(x)  # keeps ndarray subclasses (the tests spy on products with one)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a bool, integer or floating array, got dtype {x.dtype}")
        if x.ndim != 2:
            raise ValueError(f"{name} must be a 2-D matrix, got {x.ndim}-D array of shape {x.shape}")
        arrays.append(x)
    A, B = arrays
    if A.shape[1] != B.shape[0]:
        raise ValueError(
            f"inner dimensions do not match: A {A.shape} @ B {B.shape} needs A.shape[1] == B.shape[0] "
            f"({A.shape[1]} != {B.shape[0]})"
        )
    return A, B


def check_block_size(block_size: int) -> int:
    """Validate a tile size: a positive integer (``TypeError`` / ``ValueError`` otherwise)."""
    if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral):
        raise TypeError(f"block_size must be an integer, got {type(block_size).__name__} {block_size!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return int(block_size)


def matmul_naive(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """C = A @ B by the textbook triple loop, one multiply-add at a time.

    Shapes: A (M, K), B (K, N) -> C (M, N), dtype ``np.result_type(A, B)``.

        C[i, j] = sum_k A[i, k] * B[k, j]

    Task: the sum above, one term at a time, computed in the result's dtype: integers are
    exact however large and wrap around on overflow as with numpy's ``@``, without a warning.
    No ``@``, ``np.dot`` or ``np.sum`` here: this is the baseline, and its slowness is the point.

    Example: ``[[1, 2], [3, 4]] @ [[5], [6]]`` is ``[[17], [39]]``; two int8 matrices whose
    product is 200 give -56 (200 - 256), as ``A @ B`` does.
    """
    A, B = check_matmul_operands(A, B)
    M, K = A.shape
    N = B.shape[1]
    dtype = np.result_type(A, B)
    A, B = A.astype(dtype, copy=False), B.astype(dtype, copy=False)
    C = np.zeros((M, N), dtype=dtype)
    with np.errstate(over="ignore"):  # integers wrap around silently, as in numpy's @
        for i in range(M):
            for j in range(N):
                acc = dtype.type(0)
                for k in range(K):
                    acc += A[i, k] * B[k, j]
                C[i, j] = acc
    return C


def matmul_blocked(A: np.ndarray, B: np.ndarray, block_size: int = 64) -> np.ndarray:
    """C = A @ B computed tile by tile: the loops walk ``block_size``-square tiles, numpy
    multiplies each pair of tiles.

        C[I, J] = sum over K-tiles  A[I, Kt] @ B[Kt, J]

    where I, J, Kt are index ranges of length ``block_size`` (shorter at the edges). Works for
    every shape: sizes need not be multiples of the block, and a block larger than the matrix is
    a single tile. Shapes: A (M, K), B (K, N) -> C (M, N), dtype ``np.result_type(A, B)``.

    Task: the loops over tiles; each tile product is numpy's ``@``, never a product of whole
    matrices (unless one tile covers them).

    Example: M = N = K = 5 with ``block_size=2`` gives tiles of sizes 2, 2, 1 along each axis:
    C's tile (rows 4, cols 0-1) sums three tile products, over inner indices 0-1, 2-3 and 4.
    """
    A, B = check_matmul_operands(A, B)
    bs = check_block_size(block_size)
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=np.result_type(A, B))
    # A slice past the end stops at the end, so the edge tiles are simply smaller.
    for i in range(0, M, bs):
        for j in range(0, N, bs):
            c_tile = C[i : i + bs, j : j + bs]  # a view: += writes into C
            for k in range(0, K, bs):
                c_tile += A[i : i + bs, k : k + bs] @ B[k : k + bs, j : j + bs]
    return C


def matmul_numpy(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """C = A @ B by the library: numpy's ``@`` calls BLAS (``sgemm`` for float32).

    Shapes: A (M, K), B (K, N) -> C (M, N), dtype ``np.result_type(A, B)``.

    Task: one line after the check. Run ``python benchmarks/acceleration.py`` afterwards and
    compare its GFLOP/s with the other two.
    """
    A, B = check_matmul_operands(A, B)
    return A @ B
