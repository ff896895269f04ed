"""Optimisers: SGD with momentum and Adam. They update ``param.data`` in place.

Parameters without a gradient (``grad is None``) are skipped by ``step()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from tinytorch.tensor import Tensor

__all__ = ["SGD", "Adam", "Optimizer"]


def _check_float(
    value: float, name: str, low: float, high: float | None = None, low_open: bool = False
) -> float:
    v = float(value)
    ok = math.isfinite(v) and (v > low if low_open else v >= low) and (high is None or v < high)
    if not ok:
        bracket = "(" if low_open else "["
        upper = f"{high})" if high is not None else "inf)"
        raise ValueError(f"{name} must be in {bracket}{low}, {upper}, got {value!r}")
    return v


class Optimizer:
    """Holds the parameter list; ``zero_grad()`` clears their gradients."""

    def __init__(self, params: Iterable[Tensor]) -> None:
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        unique: list[Tensor] = []
        seen: set[int] = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"params[{i}] must be a Tensor with requires_grad=True, got {p!r:.60}")
            if id(p) not in seen:
                seen.add(id(p))
                unique.append(p)
        self.params = unique

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``grad = None``)."""
        for p in self.params:
            p.grad = None

    def _with_grads(self) -> Iterator[tuple[int, Tensor, np.ndarray]]:
        """(index, parameter, gradient) for every parameter that has a gradient."""
        for i, p in enumerate(self.params):
            if p.grad is not None:
                yield i, p, p.grad

    def step(self) -> None:
        """Update every parameter that has a gradient, in place (each optimiser's rule)."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, PyTorch's convention:

        v <- momentum * v + g
        p <- p - lr * v

    With momentum = 0 this is p <- p - lr * g.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0) -> None:
        super().__init__(params)
        self.lr = _check_float(lr, "lr", 0.0, low_open=True)
        self.momentum = _check_float(momentum, "momentum", 0.0, 1.0)
        self.velocity: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        for i, p, g in self._with_grads():
            if self.momentum:
                v = self.velocity[i]
                v = g.copy() if v is None else self.momentum * v + g
                self.velocity[i] = v
                g = v
            p.data -= (self.lr * g).astype(p.data.dtype, copy=False)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; t counts the steps taken:

        m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
        m_hat = m / (1 - b1^t)          v_hat = v / (1 - b2^t)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    The first step therefore moves every coordinate by about lr * sign(g).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params)
        self.lr = _check_float(lr, "lr", 0.0, low_open=True)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (
            _check_float(betas[0], "betas[0]", 0.0, 1.0),
            _check_float(betas[1], "betas[1]", 0.0, 1.0),
        )
        self.eps = _check_float(eps, "eps", 0.0, low_open=True)
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        for i, p, g in self._with_grads():
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g
            update = self.lr * (self.m[i] / c1) / (np.sqrt(self.v[i] / c2) + self.eps)
            p.data -= update.astype(p.data.dtype, copy=False)
