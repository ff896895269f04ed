"""A backend that routes each op to a kernel chosen by the kinds of its operands.

A framework does not hard-code one implementation per op. It keeps a *registry* of kernels keyed
by ``(op, kind)`` and, for every call, classifies the operands and looks the kernel up:

    dispatch("matmul", A, B)  ->  kind = call_kind(A, B)  ->  kernels[("matmul", kind)](A, B)

Adding a kernel is one ``register`` call; nothing else changes (no ``if`` chain to edit).

Operand kinds (the protocol modules 17 and 18 follow):

* ``"dense"``  any other numeric ``np.ndarray`` (floating, bool,
               integer other than int8)                        -> numpy's ``@`` (registered here)
* ``"int8"``   an ``np.ndarray`` of dtype int8, or an object with
               ``kind = "int8"`` (module 17's quantized tensors) -> an integer kernel that
               accumulates in int32 (module 17 registers it)
* ``"sparse"`` a CSR matrix: any object with ``data``, ``indices``, ``indptr`` and ``shape``
               (module 18's CSR, scipy's csr_matrix), or ``kind = "sparse"``
               -> a sparse kernel (module 18 registers it)

The dense path behaves exactly as plain numpy does: an int64 or uint8 array (token ids, raw
images) multiplies as ``A @ B`` would, in numpy's result dtype, whether a backend is installed or
not. Only int8 arrays are routed elsewhere: int8 is the quantized kind.

The registry is safe to use from several threads: ``register`` never changes a dict that a
reader may be walking; it builds a new one (under a lock, so that two registrations cannot lose
each other) and swaps it in. A lookup reads ``self._kernels`` once and sees one consistent table.

Any object with a string attribute ``kind`` declares its own kind, so later modules can add
kinds without touching this file. The *call's* kind comes from its two operands (the first two
arguments): ``"dense"`` when both are dense, otherwise the one non-dense kind among them.

The default ``OptimizedBackend`` registers ``("matmul", "dense")`` -> :func:`matmul_numpy` and
``("conv2d", "dense")`` -> :func:`conv2d_im2col` whose inner product is itself dispatched.
Install it for the foundation's layers with ``tinytorch.backend.use_backend``::

    with use_backend(OptimizedBackend()):
        y = model(x)   # every Linear / Conv2d product goes through dispatch("matmul", a, b)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .conv2d import conv2d_im2col
from .matmul import matmul_numpy

__all__ = ["CSR_ATTRIBUTES", "Kernel", "OptimizedBackend", "call_kind", "operand_kind"]

Kernel = Callable[..., Any]
CSR_ATTRIBUTES = ("data", "indices", "indptr", "shape")
_KINDS_HELP = (
    "dense (a bool, integer or floating np.ndarray other than int8), int8 (int8 np.ndarray or an "
    "object with kind='int8'), "
    "sparse (a CSR object with data, indices, indptr, shape), or any object with a string `kind`"
)


def operand_kind(x: Any) -> str:
    """The kind of one operand: ``"dense"``, ``"int8"``, ``"sparse"`` or its declared ``kind``.

    Order: a string attribute ``kind`` wins; then an int8 ndarray is ``"int8"`` and any other
    numeric ndarray (floating, integer, bool: what numpy's ``@`` multiplies) ``"dense"``; then an
    object with ``data``, ``indices``, ``indptr`` and ``shape`` is ``"sparse"`` (CSR). Anything
    else (object, string or complex arrays, lists, scalars, None) is a ``TypeError`` that lists
    the kinds.

    Examples: ``np.ones(3, np.float32)`` -> ``"dense"``, ``np.ones(3, np.int8)`` -> ``"int8"``,
    ``np.ones(3, np.int64)`` -> ``"dense"``, a scipy ``csr_matrix`` -> ``"sparse"``, an object
    with ``kind = "fancy"`` -> ``"fancy"``, ``[1, 2]`` -> ``TypeError``.
    """
    kind = getattr(x, "kind", None)
    if isinstance(kind, str):
        return kind
    if isinstance(x, np.ndarray):
        if x.dtype == np.int8:
            return "int8"
        if x.dtype.kind in "biuf":
            return "dense"
        raise TypeError(
            f"unsupported operand: ndarray of dtype {x.dtype}; the operand kinds are {_KINDS_HELP}"
        )
    if all(hasattr(x, name) for name in CSR_ATTRIBUTES):
        return "sparse"
    raise TypeError(f"unsupported operand of type {type(x).__name__}; the operand kinds are {_KINDS_HELP}")


def call_kind(*operands: Any) -> str:
    """The kind of a call: ``"dense"`` if every operand is dense, else the one non-dense kind.

    ``call_kind(float_array, int8_array) == "int8"``. Two different non-dense kinds (an int8 and
    a sparse operand) are a ``ValueError``: no kernel is defined for such a mix. Its message
    says "operands of different kinds" and names them.
    """
    kinds = [operand_kind(x) for x in operands]
    special = sorted(set(kinds) - {"dense"})
    if not special:
        return "dense"
    if len(special) > 1:
        raise ValueError(
            f"operands of different kinds {kinds}: a call may mix dense with one other kind only"
        )
    return special[0]


class OptimizedBackend:
    """Routes ``dispatch(op, *args)`` to the kernel registered for ``(op, call kind)``.

    >>> backend = OptimizedBackend()
    >>> backend.supported()
    [('conv2d', 'dense'), ('matmul', 'dense')]
    >>> backend.register("matmul", "int8", int8_kernel)     # what module 17 does
    """

    n_operands = 2  # the first two arguments of every op are its operands; the rest are parameters

    def __init__(self) -> None:
        # Never changed in place once published: register swaps in a new dict (module docstring).
        self._kernels: dict[tuple[str, str], Kernel] = {}
        self._lock = threading.Lock()  # serialises registrations
        self.register("matmul", "dense", matmul_numpy)
        self.register("conv2d", "dense", self._conv2d_dense)

    def register(self, op: str, kind: str, kernel: Kernel) -> None:
        """Register ``kernel`` for ``op`` on operands of ``kind``; it replaces an earlier one.

        ``op`` and ``kind`` are non-empty strings and ``kernel`` a callable taking the op's
        arguments (``TypeError`` / ``ValueError`` otherwise).

        Thread safe as the module docstring says: a registration never changes the table that
        a lookup may be reading, and two registrations at once both stay registered.
        """
        for name, value in (("op", op), ("kind", kind)):
            if not isinstance(value, str):
                raise TypeError(f"register: {name} must be a string, got {type(value).__name__}")
            if not value:
                raise ValueError(f"register: {name} must not be empty")
        if not callable(kernel):
            raise TypeError(f"register: kernel must be callable, got {type(kernel).__name__}")
        with self._lock:
            self._kernels = {**self._kernels, (op, kind): kernel}

    def supported(self) -> list[tuple[str, str]]:
        """Every registered ``(op, kind)`` pair, sorted."""
        return sorted(self._kernels)

    def _unsupported(self, op: str, kind: str | None = None) -> ValueError:
        """The error for an op (or an op on a kind) that has no kernel; it lists what is supported."""
        registered = self.supported()
        pairs = ", ".join(f"({o}, {k})" for o, k in registered)
        ops = ", ".join(sorted({o for o, _ in registered}))
        if kind is None:
            problem = f"unknown op {op!r}; supported ops: {ops}"
        else:
            problem = f"no kernel for op {op!r} on {kind!r} operands"
        return ValueError(
            f"{problem}. Supported (op, kind) pairs: {pairs}. "
            "Add one with backend.register(op, kind, kernel)."
        )

    def kernel_for(self, op: str, *operands: Any) -> Kernel:
        """The kernel that ``dispatch(op, *operands)`` would run: a lookup in the registry.

        ``ValueError`` listing the supported pairs for an unknown op or an unregistered kind.
        (:meth:`_unsupported` builds both errors; an unknown op is reported as such, before
        the operands are classified). No ``if op == "matmul"`` anywhere: the registry is the
        routing table, and a registration in another thread never changes it half way through
        a lookup.
        """
        if not isinstance(op, str):
            raise TypeError(f"op must be a string, got {type(op).__name__}")
        kernels = self._kernels  # one consistent table, whatever other threads register meanwhile
        if not any(o == op for o, _ in kernels):
            raise self._unsupported(op)
        kind = call_kind(*operands)
        kernel = kernels.get((op, kind))
        if kernel is None:
            raise self._unsupported(op, kind)
        return kernel

    def dispatch(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``op`` with the kernel chosen by its operands: ``kernel_for(op, *args[:2])(*args)``.

        ``dispatch("matmul", A, B)``; ``dispatch("conv2d", x, weight, bias, stride, padding)``.
        The kernel gets every argument and keyword, and its result is returned unchanged.
        """
        if len(args) < self.n_operands:
            raise ValueError(f"dispatch({op!r}, ...) needs {self.n_operands} operands, got {len(args)}")
        kernel = self.kernel_for(op, *args[: self.n_operands])
        return kernel(*args, **kwargs)

    def _conv2d_dense(
        self,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray | None = None,
        stride: int = 1,
        padding: int = 0,
    ) -> np.ndarray:
        """The dense conv2d kernel: im2col, then the product dispatched as ``"matmul"``."""
        return conv2d_im2col(
            x, weight, bias, stride, padding, matmul=lambda a, b: self.dispatch("matmul", a, b)
        )
