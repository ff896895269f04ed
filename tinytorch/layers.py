"""The basic layers: Linear, activations, Flatten, Dropout, Sequential, Embedding, LayerNorm.

Each is a :class:`~tinytorch.module.Module` (parameters and submodules found from its attributes,
forward hooks; see :mod:`tinytorch.module`, whose names are exported here too) with a
``forward`` of a few lines.

Weights are initialised from a seeded generator: every constructor that draws random numbers
takes ``rng: np.random.Generator | None``; with ``None`` it draws from this module's default
generator, which :func:`manual_seed` resets (``np.random.default_rng(0)`` at import).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinytorch.module import HookHandle, Module, bind_inputs
from tinytorch.tensor import Tensor

__all__ = [
    "GELU",
    "Dropout",
    "Embedding",
    "Flatten",
    "HookHandle",
    "LayerNorm",
    "Linear",
    "Module",
    "ReLU",
    "Sequential",
    "Softmax",
    "bind_inputs",
    "default_rng",
    "manual_seed",
    "parameter",
]

_default_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reset the default generator used by initialisers and Dropout when no ``rng`` is passed."""
    global _default_rng
    _default_rng = np.random.default_rng(seed)


def default_rng() -> np.random.Generator:
    """The module-level generator (see :func:`manual_seed`)."""
    return _default_rng


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    if rng is None:
        return _default_rng
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng


def _as_tensor(x: Any) -> Tensor:
    """Layers accept a Tensor or anything ``np.asarray`` takes (wrapped as a constant Tensor)."""
    return x if isinstance(x, Tensor) else Tensor(x)


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int: TypeError naming ``name`` for a non-int (bools included), ValueError
    when it is below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def parameter(data: np.ndarray, dtype: Any = np.float32) -> Tensor:
    """A trainable Tensor holding a copy of ``data`` (float32 by default)."""
    return Tensor(np.array(data, dtype=dtype), requires_grad=True, dtype=dtype)


class Linear(Module):
    """y = x @ W + b with W (in_features, out_features), b (out_features,).

    x has shape (..., in_features); the leading dimensions are flattened so the product is one
    2-D matmul (N, in) @ (in, out) that runs through :mod:`tinytorch.backend`.

    Init (Glorot/Xavier uniform): W ~ U(-a, a), a = sqrt(6 / (in + out)), which keeps the
    variance of activations and gradients roughly constant through the layer; b = 0.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, rng: np.random.Generator | None = None
    ) -> None:
        super().__init__()
        check_int(in_features, "in_features")
        check_int(out_features, "out_features")
        bound = math.sqrt(6.0 / (in_features + out_features))
        self.weight = parameter(_rng(rng).uniform(-bound, bound, size=(in_features, out_features)))
        self.bias = parameter(np.zeros(out_features)) if bias else None

    @property
    def in_features(self) -> int:
        """Read from ``weight``, so a layer whose weight is replaced (pruning) stays consistent."""
        return self.weight.shape[0]

    @property
    def out_features(self) -> int:
        return self.weight.shape[1]

    def forward(self, x: Tensor) -> Tensor:
        x = _as_tensor(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}): input x has shape {x.shape}, "
                f"its last dimension must be in_features={self.in_features}"
            )
        lead = x.shape[:-1]
        rows = int(np.prod(lead, dtype=np.int64))
        y = x.reshape(rows, self.in_features) @ self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return _as_tensor(x).relu()


class GELU(Module):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh approximation."""

    def forward(self, x: Tensor) -> Tensor:
        return _as_tensor(x).gelu()


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``axis`` (computed stably)."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return _as_tensor(x).softmax(axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...): keeps the batch dimension."""

    def forward(self, x: Tensor) -> Tensor:
        x = _as_tensor(x)
        if x.ndim < 1:
            raise ValueError("Flatten: input x must have a batch dimension, got a scalar")
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)))


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale the rest by
    1 / (1 - p), so the expected output equals the input; in eval mode (or p = 0) the identity.

    The mask is drawn from ``rng`` (or the module-level default generator).
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(p, (int, float, np.floating)) or not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout(p): p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = _rng(rng) if rng is not None else None

    def forward(self, x: Tensor) -> Tensor:
        x = _as_tensor(x)
        if not self.training or self.p == 0.0:
            return x
        rng = self.rng if self.rng is not None else _default_rng
        keep = rng.random(x.shape) >= self.p
        return x * (keep / (1.0 - self.p)).astype(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sequential(Module):
    """Apply ``layers`` in order. Indexable (an int gives a layer, a slice a Sequential),
    ``len`` and iterable; the layers are in ``.layers`` (parameter names ``layers.<i>.<name>``)."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} must be a Module, got {type(layer).__name__}")
        self.layers: list[Module] = list(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)


class Embedding(Module):
    """A lookup table: integer ids of any shape (...) -> vectors (..., dim), ``weight[ids]``.

    Init: weight ~ N(0, 1). The backward scatters (adds) each output gradient into the row of
    its id, so repeated ids accumulate.
    """

    def __init__(self, num_embeddings: int, dim: int, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.num_embeddings = check_int(num_embeddings, "num_embeddings")
        self.dim = check_int(dim, "dim")
        self.weight = parameter(_rng(rng).standard_normal((num_embeddings, dim)))

    def forward(self, ids: Any) -> Tensor:
        ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"Embedding: ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(
                f"Embedding: ids must be in [0, num_embeddings={self.num_embeddings}), "
                f"got values in [{ids.min()}, {ids.max()}]"
            )
        return self.weight[ids]

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.dim}"


class LayerNorm(Module):
    """Normalise over the last dimension, then scale and shift:

        y = (x - mean) / sqrt(var + eps) * weight + bias,   var = mean((x - mean)^2)  (biased)

    x (..., dim); weight = 1 and bias = 0 at init.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim")
        if not eps > 0:
            raise ValueError(f"LayerNorm(eps): eps must be > 0, got {eps!r}")
        self.eps = float(eps)
        self.weight = parameter(np.ones(dim))
        self.bias = parameter(np.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        x = _as_tensor(x)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(
                f"LayerNorm({self.dim}): input x has shape {x.shape}, last dimension must be {self.dim}"
            )
        centred = x - x.mean(axis=-1, keepdims=True)
        var = (centred * centred).mean(axis=-1, keepdims=True)
        return centred / (var + self.eps).sqrt() * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"
