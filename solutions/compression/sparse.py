"""Compressed sparse row (CSR) storage, a sparse matmul kernel on the backend, and ``SparseLinear``.

A matrix with few nonzeros is stored as three arrays (here for a (3, 4) matrix)::

    [[0, 5, 0, 0],        data    = [5, 1, 2]        the nonzeros, row by row (float)
     [0, 0, 0, 0],        indices = [1, 0, 3]        the column of each (int32)
     [1, 0, 0, 2]]        indptr  = [0, 1, 1, 3]     row i is data[indptr[i]:indptr[i + 1]] (int32)

An empty row has ``indptr[i] == indptr[i + 1]``. Storage: ``nnz * (4 + 4) + (rows + 1) * 4``
bytes for float32, against ``rows * cols * 4`` dense: CSR is smaller once fewer than about half
the entries are nonzero.

The product ``C = A @ B`` (A sparse (M, K), B dense (K, N)) touches only the stored entries::

    C[i] = sum over p in row i of  data[p] * B[indices[p]]         2 * nnz * N flops, not 2 * M * K * N

The kernel is registered on module 16's backend as ``("matmul", "sparse")``; a ``SparseLinear``
runs its product through ``dispatch``. Whether it is *faster* than a dense BLAS product depends
on the sparsity: ``tinytorch bench compression`` finds the break-even point.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
from tinytorch.perf.acceleration import CSR_ATTRIBUTES, OptimizedBackend

from tinytorch.backend import get_backend
from tinytorch.layers import Linear, Module, Sequential
from tinytorch.tensor import Tensor

__all__ = ["CSRMatrix", "SparseLinear", "csr_matmul", "register_sparse", "sparse_backend", "sparsify"]

INDEX_DTYPE = np.int32


@dataclass(frozen=True, eq=False)
class CSRMatrix:
    """A (rows, cols) matrix in CSR form: ``data`` (nnz,), ``indices`` (nnz,), ``indptr`` (rows + 1,).

    The constructor checks the structure (``ValueError`` naming what is wrong): indptr starts at
    0, never decreases and ends at nnz; every column index is in [0, cols). It takes array-likes
    and any (rows, cols) sequence, and stores ndarrays (``indices`` and ``indptr`` as int32,
    ``data`` in its own floating dtype; no copy where the dtype fits) and a tuple of ints. A
    frozen record, compared by identity (``==`` is ``is``: arrays have no single truth value).

    Repeated columns: a hand-built row may list the same column more than once; such entries
    add up (scipy's convention), in :meth:`to_dense` as in :func:`csr_matmul`.
    :meth:`from_dense` never repeats a column, and the columns of a row need not be sorted.
    """

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        data, indices, indptr = np.asarray(self.data), np.asarray(self.indices), np.asarray(self.indptr)
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 2 or min(shape) < 0:
            raise ValueError(f"shape must be (rows, cols) with rows, cols >= 0, got {self.shape}")
        if data.ndim != 1 or data.dtype.kind != "f":
            raise ValueError(f"data must be a 1-D floating array, got {data.dtype} {data.shape}")
        if indices.shape != data.shape or indices.dtype.kind not in "iu":
            raise ValueError(
                f"indices must be integers of shape {data.shape}, got {indices.dtype} {indices.shape}"
            )
        if indptr.shape != (shape[0] + 1,) or indptr.dtype.kind not in "iu":
            raise ValueError(
                f"indptr must be integers of shape ({shape[0] + 1},) (rows + 1), "
                f"got {indptr.dtype} {indptr.shape}"
            )
        if indptr[0] != 0 or indptr[-1] != data.size or np.any(np.diff(indptr) < 0):
            raise ValueError(
                f"indptr must start at 0, never decrease and end at nnz={data.size}, "
                f"got {indptr.tolist()[:12]}"
            )
        if indices.size and (indices.min() < 0 or indices.max() >= shape[1]):
            raise ValueError(f"indices must be column numbers in [0, {shape[1]})")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "indices", np.asarray(indices, dtype=INDEX_DTYPE))
        object.__setattr__(self, "indptr", np.asarray(indptr, dtype=INDEX_DTYPE))
        object.__setattr__(self, "shape", shape)

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> CSRMatrix:
        """The CSR form of a 2-D floating array: its nonzeros row by row, columns ascending.

        Exactly the nonzeros of ``dense`` are stored (explicit zeros are not), with its dtype.
        """
        if not isinstance(dense, np.ndarray) or dense.ndim != 2 or dense.dtype.kind != "f":
            what = f"{dense.dtype} {dense.shape}" if isinstance(dense, np.ndarray) else type(dense).__name__
            raise TypeError(f"dense must be a 2-D floating np.ndarray, got {what}")
        rows, cols = np.nonzero(dense)  # row-major order: rows ascending, columns ascending within a row
        counts = np.bincount(rows, minlength=dense.shape[0])
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return cls(dense[rows, cols], cols, indptr, dense.shape)

    def to_dense(self) -> np.ndarray:
        """The (rows, cols) array, zeros everywhere but at the stored entries (duplicates add up)."""
        dense = np.zeros(self.shape, dtype=self.data.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        np.add.at(dense, (rows, self.indices), self.data)
        return dense

    @property
    def nnz(self) -> int:
        """The number of stored entries."""
        return int(self.data.size)

    @property
    def density(self) -> float:
        """nnz / (rows * cols); 0 for a matrix with no entries."""
        size = self.shape[0] * self.shape[1]
        return self.nnz / size if size else 0.0

    @property
    def nbytes(self) -> int:
        """Bytes of the three arrays: what the matrix costs in memory."""
        return int(self.data.nbytes + self.indices.nbytes + self.indptr.nbytes)


def _check_csr_matmul(a: Any, b: np.ndarray) -> None:
    """``a`` a CSR matrix (``data``, ``indices``, ``indptr``, ``shape``), ``b`` a 2-D floating array
    with ``b.shape[0] == a.shape[1]``; ``TypeError``/``ValueError`` naming the argument."""
    if not all(hasattr(a, name) for name in CSR_ATTRIBUTES):
        raise TypeError(f"a must be a CSR matrix (data, indices, indptr, shape), got {type(a).__name__}")
    if not isinstance(b, np.ndarray) or b.ndim != 2 or b.dtype.kind != "f":
        what = f"{b.dtype} array of shape {b.shape}" if isinstance(b, np.ndarray) else type(b).__name__
        raise TypeError(f"b must be a 2-D floating np.ndarray (the dense operand), got {what}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"inner dimensions do not match: a {tuple(a.shape)} @ b {b.shape}")


def csr_matmul(a: CSRMatrix, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for a CSR ``a`` (M, K) and a dense ``b`` (K, N): (M, N), dtype ``result_type(a.data, b)``.

    Row i of the result is the sum of ``data[p] * b[indices[p]]`` over its stored entries p (a
    repeated column adds up); an empty row is 0. Vectorised: no Python loop over rows or entries.
    """
    _check_csr_matmul(a, b)
    data, indices, indptr = np.asarray(a.data), np.asarray(a.indices), np.asarray(a.indptr)
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.result_type(data, b))
    if data.size == 0:
        return out
    products = data[:, None] * b[indices]  # (nnz, N): one scaled row of b per stored entry
    nonempty = np.diff(indptr) > 0
    # reduceat sums products[indptr[i]:indptr[i + 1]]; it needs the starts of non-empty rows only
    # (for an empty row it would return the next row's first product, not 0).
    out[nonempty] = np.add.reduceat(products, indptr[:-1][nonempty], axis=0)
    return out


def register_sparse(backend: OptimizedBackend) -> OptimizedBackend:
    """Register :func:`csr_matmul` on ``backend`` as ``("matmul", "sparse")``; returns ``backend``."""
    if not callable(getattr(backend, "register", None)):
        raise TypeError(
            f"backend must have a register(op, kind, kernel) method, not {type(backend).__name__}"
        )
    backend.register("matmul", "sparse", csr_matmul)
    return backend


def sparse_backend() -> OptimizedBackend:
    """A new ``OptimizedBackend`` with the sparse kernel registered next to the dense ones."""
    return register_sparse(OptimizedBackend())


class SparseLinear(Module):
    """An inference-only Linear whose weight is stored in CSR: ``y = x @ W + b``.

    It keeps ``weight_t``, the CSR form of W transposed (out_features, in_features), one row per
    output unit, so the product is a CSR @ dense one: ``y = (W^T @ x^T)^T``, run as
    ``backend.dispatch("matmul", weight_t, x^T)`` on the active backend (``use_backend``), or on
    a :func:`sparse_backend` when none is active. x (..., in_features) -> (..., out_features), a
    single vector x (in_features,) included: y (out_features,).
    No gradients: prune and fine-tune the dense model first, then convert it.
    """

    def __init__(self, weight_t: CSRMatrix, bias: np.ndarray | None = None) -> None:
        super().__init__()
        if not isinstance(weight_t, CSRMatrix):
            raise TypeError(f"weight_t must be a CSRMatrix, got {type(weight_t).__name__}")
        if bias is not None and np.shape(bias) != (weight_t.shape[0],):
            raise ValueError(f"bias must have shape ({weight_t.shape[0]},), got {np.shape(bias)}")
        self.weight_t = weight_t
        self.bias = None if bias is None else np.array(bias, dtype=weight_t.data.dtype)
        self._fallback: OptimizedBackend | None = None

    @property
    def in_features(self) -> int:
        return self.weight_t.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight_t.shape[0]

    @classmethod
    def from_linear(cls, linear: Linear) -> SparseLinear:
        """The SparseLinear computing the same function as ``linear`` (its zeros are not stored)."""
        if not isinstance(linear, Linear):
            raise TypeError(f"linear must be a Linear, got {type(linear).__name__}")
        weight_t = CSRMatrix.from_dense(np.ascontiguousarray(linear.weight.data.T))
        return cls(weight_t, None if linear.bias is None else linear.bias.data.copy())

    def _backend(self):
        """The active backend, or this layer's own sparse backend when none is active."""
        backend = get_backend()
        if backend is None:
            if self._fallback is None:
                self._fallback = sparse_backend()
            backend = self._fallback
        return backend

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        """y = x @ W + b through ``dispatch("matmul", weight_t, x^T)``; x (..., in) -> (..., out)."""
        x = x.data if isinstance(x, Tensor) else np.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"SparseLinear({self.in_features}, {self.out_features}): input x has shape {x.shape}, "
                f"its last dimension must be in_features={self.in_features}"
            )
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        y = self._backend().dispatch("matmul", self.weight_t, np.ascontiguousarray(x2.T)).T
        if self.bias is not None:
            y = y + self.bias
        return Tensor(y.reshape(*lead, self.out_features))

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"{self.in_features}, {self.out_features}, nnz={self.weight_t.nnz}, bias={bias}"


def sparsify(model: Module) -> Module:
    """A copy of ``model`` (a Linear, or a Sequential) with every ``Linear`` as a SparseLinear."""
    if isinstance(model, Linear):
        return SparseLinear.from_linear(model)
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a Linear or a Sequential, got {type(model).__name__}")
    layers = [SparseLinear.from_linear(m) if isinstance(m, Linear) else copy.deepcopy(m) for m in model]
    return Sequential(*layers).train(model.training)
