"""Tensor: a numpy array with reverse-mode automatic differentiation.

Every operation builds its result with ``Tensor.from_op(data, parents, backward, name)``. The
``backward`` closure maps the gradient of the loss with respect to the result (``grad_out``,
the result's shape) to one gradient per parent (each the parent's shape), micrograd style::

    def exp(self):
        out = np.exp(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g * out,), "exp")

``loss.backward()`` sorts the graph topologically (iteratively, so graphs thousands of ops deep
work), walks it from the loss to the leaves applying each op's backward, and accumulates the
result into ``.grad`` of every *leaf* tensor that requires grad (tensors created by the user,
such as parameters; intermediate results do not keep a ``.grad``, as in PyTorch).

Broadcasting: an op whose operands were broadcast sums the gradient back to each operand's shape
with :func:`_unbroadcast`.

dtypes: floating data becomes float32 unless ``dtype`` is given (gradient checks pass
``dtype=np.float64``). An op's result is float64 only if one of its inputs is float64; Python
scalars and numpy arrays mixed into an op take the tensor's dtype, so they never upcast a float32
tensor. Integer and bool data (token ids, masks) keep their dtype and cannot require grad.

One file, whole, on purpose: the graph, the backward pass and every op with its own backward
read in one sitting, as micrograd's engine does; an op split from the rule it obeys
(``from_op`` and ``_unbroadcast``) would be harder to check by eye, not easier.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from tinytorch import backend as _backend

__all__ = ["Tensor", "concatenate", "is_grad_enabled", "no_grad", "stack", "where"]

BackwardFn = Callable[[np.ndarray], Sequence[np.ndarray | None]]
Axis = int | tuple[int, ...] | None

# --------------------------------------------------------------------------------------------
# grad mode
# --------------------------------------------------------------------------------------------

_grad_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("tinytorch_grad", default=True)


def is_grad_enabled() -> bool:
    """True unless inside a ``no_grad()`` block."""
    return _grad_enabled.get()


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Record no graph inside the block: results do not require grad and keep no parents.

    Use it for inference and for optimiser updates. Nests; also works as a decorator.
    """
    token = _grad_enabled.set(False)
    try:
        yield
    finally:
        _grad_enabled.reset(token)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

_NUMERIC_KINDS = "biuf"  # bool, signed int, unsigned int, float


def _check_numeric(arr: np.ndarray, name: str) -> np.ndarray:
    """Reject object, string, complex and datetime data with a TypeError naming ``name``."""
    if arr.dtype.kind not in _NUMERIC_KINDS:
        hint = " (to combine Tensors use stack or concatenate)" if arr.dtype == object else ""
        raise TypeError(f"{name} must be numeric (bool, int or float), got dtype {arr.dtype}{hint}")
    return arr


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the adjoint of numpy broadcasting ``shape`` -> grad.shape.

    Broadcasting prepends axes and stretches size-1 axes; each stretched copy of an input
    element contributed to the output, so its gradient is the sum over those copies.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _normalize_axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    """Reduction axes as sorted non-negative ints (None means every axis)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    return tuple(sorted(int(a) % ndim for a in axes)) if ndim else ()


def _expand_reduced(
    grad: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool
) -> np.ndarray:
    """Put the reduced axes back into ``grad`` and broadcast it to ``shape`` (a read-only view)."""
    if not keepdims and axes:
        grad = np.expand_dims(grad, axes)
    return np.broadcast_to(grad, shape)


def _normalize_index(idx: Any) -> Any:
    """Replace Tensors and lists inside an index by ndarrays (what numpy and np.add.at expect)."""

    def one(i: Any) -> Any:
        if isinstance(i, Tensor):
            return i.data
        if isinstance(i, list):
            return np.asarray(i)
        return i

    return tuple(one(i) for i in idx) if isinstance(idx, tuple) else one(idx)


def _is_basic_index(idx: Any) -> bool:
    """True for ints, slices, Ellipsis and None only: such an index never repeats an element."""
    parts = idx if isinstance(idx, tuple) else (idx,)
    return all(
        (isinstance(i, int | np.integer) and not isinstance(i, bool | np.bool_))
        or i is None
        or i is Ellipsis
        or isinstance(i, slice)
        for i in parts
    )


# --------------------------------------------------------------------------------------------
# Tensor
# --------------------------------------------------------------------------------------------


class Tensor:
    """An n-dimensional array (``.data``, a numpy array) that records the ops applied to it.

    Args:
        data: anything ``np.asarray`` accepts (nested lists, scalars, arrays) or a Tensor. The
            array is wrapped without a copy when it already has the target dtype.
        requires_grad: track operations on this tensor so ``backward()`` fills ``.grad``.
            Only floating tensors can require grad.
        dtype: target dtype. By default floating data becomes float32; integer and bool data
            keep their dtype.

    Raises:
        TypeError: object, string, complex or datetime data.
        ValueError: ``requires_grad=True`` for integer or bool data.
    """

    # numpy defers to our reflected operators: ndarray + Tensor -> Tensor.__radd__
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        arr = _check_numeric(np.asarray(data), "Tensor data")
        if dtype is not None:
            target = np.dtype(dtype)
            if target.kind not in _NUMERIC_KINDS:
                raise TypeError(f"Tensor dtype must be numeric (bool, int or float), got {target}")
            arr = arr.astype(target, copy=False)
        elif arr.dtype.kind == "f":
            arr = arr.astype(np.float32, copy=False)
        if requires_grad and arr.dtype.kind != "f":
            raise ValueError(
                f"requires_grad=True needs floating data, got dtype {arr.dtype} "
                "(integer and bool tensors such as token ids cannot require grad)"
            )
        self.data: np.ndarray = arr
        self.grad: np.ndarray | None = None
        self.requires_grad: bool = bool(requires_grad)
        self._parents: tuple[Tensor, ...] = ()
        self._backward: BackwardFn | None = None
        self._op: str = ""

    @classmethod
    def from_op(cls, data: Any, parents: Sequence[Tensor], backward: BackwardFn, name: str) -> Tensor:
        """The result of an op: ``data`` computed from ``parents``, differentiated by ``backward``.

        ``backward(grad_out)`` returns a sequence with one gradient (parent's shape, or None for
        "no gradient") per parent. The result requires grad iff grad mode is on, it is floating
        and some parent requires grad; otherwise no graph is kept. A float64 result whose
        parents are not float64 is cast to float32 (float64 must be asked for explicitly).
        """
        parents = tuple(parents)
        for p in parents:
            if not isinstance(p, Tensor):
                raise TypeError(f"from_op({name!r}): parents must be Tensors, got {type(p).__name__}")
        arr = np.asarray(data)
        if arr.dtype == np.float64 and not any(p.data.dtype == np.float64 for p in parents):
            arr = arr.astype(np.float32)
        out = cls.__new__(cls)
        out.data = arr
        out.grad = None
        out.requires_grad = (
            is_grad_enabled() and arr.dtype.kind == "f" and any(p.requires_grad for p in parents)
        )
        out._parents = parents if out.requires_grad else ()
        out._backward = backward if out.requires_grad else None
        out._op = name
        return out

    # ---- attributes --------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded op (their ``.grad`` is filled)."""
        return self._backward is None

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not a copy)."""
        return self.data

    def item(self) -> int | float | bool:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        """A tensor sharing ``.data`` with no history and no grad requirement."""
        return Tensor(self.data, dtype=self.data.dtype)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``.grad = None``)."""
        self.grad = None

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(", precision=4, threshold=64)
        extras = [f"shape={self.shape}", f"dtype={self.dtype}"]
        if self.requires_grad:
            extras.append("requires_grad=True")
        if self._op:
            extras.append(f"op={self._op!r}")
        return f"Tensor({body}, {', '.join(extras)})"

    # ---- autograd ----------------------------------------------------------------------------

    def _topological_order(self) -> list[Tensor]:
        """Nodes reachable from self through parents requiring grad, each after its parents.

        Iterative depth-first search: (node, False) means "visit", (node, True) means "all of
        its parents are done, emit it".
        """
        order: list[Tensor] = []
        visited: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if p.requires_grad and id(p) not in visited)
        return order

    def backward(self, grad: Any = None) -> None:
        """Accumulate d(self)/d(leaf) . grad into ``.grad`` of every leaf that requires grad.

        Args:
            grad: the gradient flowing into self, shape ``self.shape``. May be omitted for a
                one-element tensor (a loss): it is then 1.

        Raises:
            RuntimeError: self does not require grad, or self has more than one element and no
                ``grad`` was given.
            ValueError: ``grad`` has the wrong shape.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: create the inputs with "
                "requires_grad=True and do not compute the loss inside no_grad()"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without grad needs a scalar (one-element) tensor, got shape "
                    f"{self.shape}; pass grad= of that shape or reduce with sum()/mean() first"
                )
            seed = np.ones_like(self.data)
        else:
            seed = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if seed.shape != self.shape:
                raise ValueError(
                    f"backward(grad): grad has shape {seed.shape}, tensor has shape {self.shape}"
                )

        grads: dict[int, np.ndarray] = {id(self): seed}
        for node in reversed(self._topological_order()):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf: accumulate
                g = np.array(g, dtype=node.dtype)  # own, writable copy
                node.grad = g if node.grad is None else node.grad + g
                continue
            parent_grads = node._backward(g)
            if len(parent_grads) != len(node._parents):
                raise RuntimeError(
                    f"backward of op {node._op!r} returned {len(parent_grads)} gradients "
                    f"for {len(node._parents)} inputs"
                )
            for parent, pg in zip(node._parents, parent_grads, strict=True):
                if pg is None or not parent.requires_grad:
                    continue
                pg = np.asarray(pg, dtype=parent.dtype)
                if pg.shape != parent.shape:
                    raise RuntimeError(
                        f"backward of op {node._op!r} returned a gradient of shape {pg.shape} "
                        f"for an input of shape {parent.shape}"
                    )
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg

    # ---- arithmetic ------------------------------------------------------------------------

    def _lift(self, other: Any) -> Tensor:
        """``other`` as a Tensor; numbers and arrays take this tensor's dtype when that is exact
        (floats into a float tensor, ints into an int tensor), so they never upcast it."""
        if isinstance(other, Tensor):
            return other
        arr = _check_numeric(np.asarray(other), "operand")
        kind = self.dtype.kind
        if kind == "f" or (kind in "iu" and arr.dtype.kind in "biu"):
            return Tensor(arr, dtype=self.dtype)
        return Tensor(arr)

    def __add__(self, other: Any) -> Tensor:
        """a + b (broadcasting). d/da = 1, d/db = 1."""
        a, b = self, self._lift(other)

        def backward(g):
            return _unbroadcast(g, a.shape), _unbroadcast(g, b.shape)

        return Tensor.from_op(a.data + b.data, (a, b), backward, "add")

    def __radd__(self, other: Any) -> Tensor:
        return self._lift(other) + self

    def __sub__(self, other: Any) -> Tensor:
        """a - b (broadcasting). d/da = 1, d/db = -1."""
        a, b = self, self._lift(other)

        def backward(g):
            return _unbroadcast(g, a.shape), _unbroadcast(-g, b.shape)

        return Tensor.from_op(a.data - b.data, (a, b), backward, "sub")

    def __rsub__(self, other: Any) -> Tensor:
        return self._lift(other) - self

    def __mul__(self, other: Any) -> Tensor:
        """a * b (broadcasting). d/da = b, d/db = a."""
        a, b = self, self._lift(other)

        def backward(g):
            return _unbroadcast(g * b.data, a.shape), _unbroadcast(g * a.data, b.shape)

        return Tensor.from_op(a.data * b.data, (a, b), backward, "mul")

    def __rmul__(self, other: Any) -> Tensor:
        return self._lift(other) * self

    def __truediv__(self, other: Any) -> Tensor:
        """a / b (broadcasting). d/da = 1/b, d/db = -a/b^2."""
        a, b = self, self._lift(other)

        def backward(g):
            return _unbroadcast(g / b.data, a.shape), _unbroadcast(-g * a.data / (b.data * b.data), b.shape)

        return Tensor.from_op(a.data / b.data, (a, b), backward, "div")

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._lift(other) / self

    def __neg__(self) -> Tensor:
        """-x. d/dx = -1."""
        return Tensor.from_op(-self.data, (self,), lambda g: (-g,), "neg")

    def __pow__(self, exponent: int | float) -> Tensor:
        """x ** p for a scalar p. d/dx = p x^(p-1)."""
        if isinstance(exponent, Tensor) or not isinstance(exponent, int | float | np.integer | np.floating):
            raise TypeError(
                f"x ** exponent: exponent must be an int or float scalar, got {type(exponent).__name__}"
            )
        p = int(exponent) if isinstance(exponent, int | np.integer) else float(exponent)
        x = self.data

        def backward(g):
            return (np.zeros_like(g) if p == 0 else g * p * x ** (p - 1),)

        return Tensor.from_op(x**p, (self,), backward, "pow")

    def __rpow__(self, base: int | float) -> Tensor:
        """c ** x for a positive scalar c. d/dx = c^x ln c."""
        if isinstance(base, Tensor) or not isinstance(base, int | float | np.integer | np.floating):
            raise TypeError(f"base ** x: base must be an int or float scalar, got {type(base).__name__}")
        c = float(base)
        if c <= 0:
            raise ValueError(f"base ** x: base must be positive, got {c}")
        out = c**self.data
        log_c = math.log(c)
        return Tensor.from_op(out, (self,), lambda g: (g * out * log_c,), "rpow")

    def __matmul__(self, other: Any) -> Tensor:
        """a @ b with numpy semantics: 1-D operands are promoted (and the axis removed again),
        leading dimensions broadcast. Forward runs through ``tinytorch.backend.matmul``.

        Shapes: (..., M, K) @ (..., K, N) -> (..., M, N).
        Gradients: dA = G @ B^T, dB = A^T @ G (summed over broadcast batch dimensions).
        """
        a, b = self, self._lift(other)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
        k_a = a.shape[-1]
        k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if k_a != k_b:
            where_b = "first" if b.ndim == 1 else "second-to-last"
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                f"inner dimensions {k_a} (last of a) != {k_b} ({where_b} of b)"
            )
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(
                f"matmul: batch dimensions of shapes {a.shape} and {b.shape} do not broadcast"
            ) from None
        out = _backend.matmul(a.data, b.data)

        def backward(g):
            A = a.data if a.ndim > 1 else a.data[None, :]
            B = b.data if b.ndim > 1 else b.data[:, None]
            G = g if b.ndim > 1 else g[..., None]  # restore the removed axes: b's, then a's
            G = G if a.ndim > 1 else np.expand_dims(G, -2)
            dA = _unbroadcast(G @ np.swapaxes(B, -1, -2), A.shape).reshape(a.shape)
            dB = _unbroadcast(np.swapaxes(A, -1, -2) @ G, B.shape).reshape(b.shape)
            return dA, dB

        return Tensor.from_op(out, (a, b), backward, "matmul")

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._lift(other) @ self

    # ---- reductions --------------------------------------------------------------------------

    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (None: all). The gradient is copied to every summed element."""
        out = self.data.sum(axis=axis, keepdims=keepdims)
        axes, shape = _normalize_axes(axis, self.ndim), self.shape
        return Tensor.from_op(out, (self,), lambda g: (_expand_reduced(g, shape, axes, keepdims),), "sum")

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (None: all). Each element receives grad / n, n the reduced count."""
        out = self.data.mean(axis=axis, keepdims=keepdims)
        axes, shape = _normalize_axes(axis, self.ndim), self.shape
        n = math.prod(shape[i] for i in axes)

        def backward(g):
            return (_expand_reduced(g / n, shape, axes, keepdims),)

        return Tensor.from_op(out, (self,), backward, "mean")

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis`` (None: all).

        Gradient: the upstream gradient is split evenly among the elements that tie for the
        maximum (each of k tied elements gets grad / k), so the gradient still sums to the
        upstream gradient. With a unique maximum this is routing to the argmax.
        """
        x = self.data
        peak = x.max(axis=axis, keepdims=True)
        axes = _normalize_axes(axis, self.ndim)
        out = peak if keepdims else np.squeeze(peak, axis=axes)

        def backward(g):
            share = (x == peak).astype(x.dtype)
            share /= share.sum(axis=axes, keepdims=True)
            return (_expand_reduced(g, x.shape, axes, keepdims) * share,)

        return Tensor.from_op(out, (self,), backward, "max")

    # ---- shape -------------------------------------------------------------------------------

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """Same data, new shape (``reshape(2, 3)`` or ``reshape((2, 3))``; one -1 allowed)."""
        if len(shape) == 1 and not isinstance(shape[0], int | np.integer):
            shape = tuple(shape[0])
        old_shape = self.shape
        out = self.data.reshape(shape)
        return Tensor.from_op(out, (self,), lambda g: (g.reshape(old_shape),), "reshape")

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        """Permute axes (``transpose(0, 2, 1)`` or ``transpose((0, 2, 1))``; none: reverse them)."""
        if len(axes) == 1 and not isinstance(axes[0], int | np.integer):
            axes = tuple(axes[0])
        perm = tuple(int(a) % self.ndim for a in axes) if axes else tuple(reversed(range(self.ndim)))
        out = self.data.transpose(perm)
        inverse = tuple(np.argsort(perm))
        return Tensor.from_op(out, (self,), lambda g: (g.transpose(inverse),), "transpose")

    @property
    def T(self) -> Tensor:
        """All axes reversed (``transpose()``)."""
        return self.transpose()

    def __getitem__(self, idx: Any) -> Tensor:
        """Basic (ints, slices, None, ...) and advanced (integer/bool arrays or Tensors) indexing.

        Gradient: scattered back into a zero array with ``np.add.at``, so an element picked
        several times (repeated indices) receives the sum of its gradients.
        """
        idx = _normalize_index(idx)
        x = self.data
        out = x[idx]
        basic = _is_basic_index(idx)

        def backward(g):
            full = np.zeros_like(x)
            if basic:  # no element repeats: plain assignment is the scatter
                full[idx] = g
            else:
                np.add.at(full, idx, g)
            return (full,)

        return Tensor.from_op(out, (self,), backward, "getitem")

    # ---- elementwise functions ---------------------------------------------------------------

    def exp(self) -> Tensor:
        """e^x. d/dx = e^x."""
        out = np.exp(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g * out,), "exp")

    def log(self) -> Tensor:
        """Natural log. d/dx = 1/x."""
        x = self.data
        return Tensor.from_op(np.log(x), (self,), lambda g: (g / x,), "log")

    def sqrt(self) -> Tensor:
        """Square root. d/dx = 1 / (2 sqrt(x))."""
        out = np.sqrt(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g * 0.5 / out,), "sqrt")

    def tanh(self) -> Tensor:
        """Hyperbolic tangent. d/dx = 1 - tanh(x)^2."""
        out = np.tanh(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g * (1.0 - out * out),), "tanh")

    def relu(self) -> Tensor:
        """max(x, 0). d/dx = 1 for x > 0, else 0 (0 at x = 0)."""
        x = self.data
        return Tensor.from_op(np.maximum(x, 0), (self,), lambda g: (g * (x > 0),), "relu")

    def sigmoid(self) -> Tensor:
        """1 / (1 + e^-x), computed without overflow. d/dx = s (1 - s)."""
        x = self.data
        e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
        out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return Tensor.from_op(out, (self,), lambda g: (g * out * (1.0 - out),), "sigmoid")

    def gelu(self) -> Tensor:
        """GELU, tanh approximation: 0.5 x (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi).

        d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2), t the tanh above.
        """
        x = self.data
        c = math.sqrt(2.0 / math.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        out = 0.5 * x * (1.0 + t)

        def backward(g):
            return (g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x)),)

        return Tensor.from_op(out, (self,), backward, "gelu")

    def softmax(self, axis: int = -1) -> Tensor:
        """exp(x_i) / sum_j exp(x_j) along ``axis``; the row max is subtracted first so large
        logits do not overflow. Gradient: s * (g - sum(g * s)) along ``axis``. An empty axis gives
        an empty result (``initial`` lets the max of zero elements be -inf instead of an error)."""
        shifted = self.data - self.data.max(axis=axis, keepdims=True, initial=-np.inf)
        e = np.exp(shifted)
        s = e / e.sum(axis=axis, keepdims=True)

        def backward(g):
            return (s * (g - (g * s).sum(axis=axis, keepdims=True)),)

        return Tensor.from_op(s, (self,), backward, "softmax")

    def log_softmax(self, axis: int = -1) -> Tensor:
        """x_i - logsumexp(x) along ``axis``, with logsumexp(x) = m + log sum exp(x - m), m the
        max (stable for large logits). Gradient: g - softmax(x) * sum(g) along ``axis``. An empty
        axis gives an empty result."""
        shifted = self.data - self.data.max(axis=axis, keepdims=True, initial=-np.inf)
        out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

        def backward(g):
            return (g - np.exp(out) * g.sum(axis=axis, keepdims=True),)

        return Tensor.from_op(out, (self,), backward, "log_softmax")

    def masked_fill(self, mask: Any, value: float) -> Tensor:
        """A copy with ``value`` where ``mask`` is True (e.g. -inf for causal attention).

        ``mask`` is a bool array (or Tensor) broadcastable to ``self.shape``. Filled positions
        get zero gradient, the others pass it through.
        """
        m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if m.dtype != np.bool_:
            raise TypeError(f"masked_fill(mask, value): mask must be a bool array, got dtype {m.dtype}")
        try:
            full_mask = np.broadcast_to(m, self.shape)
        except ValueError:
            raise ValueError(
                f"masked_fill(mask, value): mask of shape {m.shape} does not broadcast "
                f"to the tensor's shape {self.shape}"
            ) from None
        if isinstance(value, Tensor) or np.ndim(value) != 0:
            raise TypeError(f"masked_fill(mask, value): value must be a scalar, got {type(value).__name__}")
        out = self.data.copy()
        out[full_mask] = value
        return Tensor.from_op(out, (self,), lambda g: (np.where(full_mask, 0, g),), "masked_fill")


# --------------------------------------------------------------------------------------------
# module functions
# --------------------------------------------------------------------------------------------


def _as_tensors(items: Sequence[Any], name: str) -> list[Tensor]:
    """A non-empty sequence of Tensors/arrays as Tensors; arrays take the first Tensor's dtype."""
    items = list(items)
    if not items:
        raise ValueError(f"{name} must be a non-empty sequence of tensors")
    like = next((t for t in items if isinstance(t, Tensor)), None)
    if like is None:
        return [Tensor(t) for t in items]
    return [like._lift(t) for t in items]


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing ``axis``; the gradient is split back at the same offsets."""
    ts = _as_tensors(tensors, "concatenate(tensors)")
    out = np.concatenate([t.data for t in ts], axis=axis)
    offsets = np.cumsum([t.shape[axis] for t in ts])[:-1]

    def backward(g):
        return tuple(np.split(g, offsets, axis=axis))

    return Tensor.from_op(out, ts, backward, "concatenate")


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new ``axis``; tensor i gets the gradient slice i."""
    ts = _as_tensors(tensors, "stack(tensors)")
    out = np.stack([t.data for t in ts], axis=axis)

    def backward(g):
        return tuple(np.take(g, i, axis=axis) for i in range(len(ts)))

    return Tensor.from_op(out, ts, backward, "stack")


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Elementwise ``a`` where ``cond`` else ``b`` (all three broadcast together).

    ``cond`` is a bool array (or Tensor); ``a`` and ``b`` are Tensors, arrays or scalars. The
    gradient flows to ``a`` where cond holds and to ``b`` elsewhere.
    """
    c = cond.data if isinstance(cond, Tensor) else np.asarray(cond)
    if c.dtype != np.bool_:
        raise TypeError(f"where(cond, a, b): cond must be a bool array, got dtype {c.dtype}")
    ta, tb = _as_tensors([a, b], "where(a, b)")
    out = np.where(c, ta.data, tb.data)

    def backward(g):
        return _unbroadcast(np.where(c, g, 0), ta.shape), _unbroadcast(np.where(c, 0, g), tb.shape)

    return Tensor.from_op(out, (ta, tb), backward, "where")
