"""The matmul hook: every forward 2-D product in the foundation runs through the active backend.

``Tensor.__matmul__`` computes its forward with :func:`matmul`. ``Linear`` flattens leading
dimensions to 2-D and ``Conv2d`` multiplies its im2col matrix, so installing a backend with::

    with use_backend(OptimizedBackend()):
        logits = model(x)

routes every layer's product through ``backend.dispatch("matmul", a, b)`` (module 16). Products
that are not 2-D x 2-D (batched attention scores, vector products) and all backward products
use plain numpy.

A backend is any object with a ``dispatch(op: str, *args)`` method. ``use_backend`` nests and
restores the previous backend on exit, even when the block raises.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

__all__ = ["Backend", "get_backend", "matmul", "use_backend"]


class Backend(Protocol):
    """What a backend must provide: ``dispatch("matmul", a, b)`` returning ``a @ b``."""

    def dispatch(self, op: str, *args: Any) -> Any: ...


_active: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("tinytorch_backend", default=None)


def get_backend() -> Backend | None:
    """The backend installed by the innermost ``use_backend`` block, or None (plain numpy)."""
    return _active.get()


@contextlib.contextmanager
def use_backend(backend: Backend | None) -> Iterator[Backend | None]:
    """Install ``backend`` for the ``with`` block; ``None`` switches back to plain numpy inside it.

    Raises ``TypeError`` if ``backend`` has no callable ``dispatch`` method.
    """
    if backend is not None and not callable(getattr(backend, "dispatch", None)):
        raise TypeError(
            f"use_backend(backend): backend must have a dispatch(op, *args) method, "
            f"got {type(backend).__name__}"
        )
    token = _active.set(backend)
    try:
        yield backend
    finally:
        _active.reset(token)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b``, through the active backend when there is one and both operands are 2-D.

    Shapes: a (M, K), b (K, N) -> (M, N) on the backend path; anything numpy's ``@`` accepts
    otherwise. A backend answering with the wrong shape is a ``ValueError`` naming it.
    """
    backend = _active.get()
    if backend is None or a.ndim != 2 or b.ndim != 2:
        return a @ b
    out = np.asarray(backend.dispatch("matmul", a, b))
    expected = (a.shape[0], b.shape[1])
    if out.shape != expected:
        raise ValueError(
            f"backend {type(backend).__name__}.dispatch('matmul', a, b) returned shape {out.shape}, "
            f"expected {expected} for a {a.shape} @ b {b.shape}"
        )
    return out
