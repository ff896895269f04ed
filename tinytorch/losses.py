"""Loss functions: cross-entropy over logits (with its fused backward) and mean squared error."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinytorch.layers import _as_tensor
from tinytorch.tensor import Tensor

__all__ = ["cross_entropy", "mse_loss"]


def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """Mean negative log-likelihood of the targets under softmax(logits).

        loss = -(1/N) sum_n log softmax(z_n)[y_n],   log softmax(z) = z - m - log sum exp(z - m)

    with m = max(z) per row (stable for large logits). Gradient w.r.t. the logits:
    (softmax(z) - onehot(y)) / N.

    Shapes: logits (N, C) and targets (N,) int; more generally logits (..., C) with targets
    (...), every position counted once (a GPT's (B, T, V) logits with (B, T) targets).
    Raises ValueError for NaN/inf logits, mismatched shapes, targets outside [0, C) or an empty
    batch, and TypeError for non-integer targets. Integer or bool logits are computed in float32
    (the loss is a float however the scores were given), floating logits in their own dtype.
    """
    logits = _as_tensor(logits)
    y = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if logits.ndim < 2:
        raise ValueError(f"cross_entropy: logits must be (N, C), got shape {logits.shape}")
    if y.shape != logits.shape[:-1]:
        raise ValueError(
            f"cross_entropy: targets of shape {y.shape} do not match logits of shape {logits.shape} "
            f"(expected targets {logits.shape[:-1]})"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integer class ids, got dtype {y.dtype}")
    n_classes = logits.shape[-1]
    if y.size == 0:
        raise ValueError("cross_entropy: empty batch (no targets)")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(
            f"cross_entropy: targets must be in [0, {n_classes}), got values in [{y.min()}, {y.max()}]"
        )
    if not np.all(np.isfinite(logits.data)):
        raise ValueError("cross_entropy: logits contain NaN or inf")

    z = logits.data.reshape(-1, n_classes)
    if z.dtype.kind != "f":
        z = z.astype(np.float32)
    y = y.reshape(-1)
    n = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -log_probs[rows, y].mean()
    shape = logits.shape

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        grad = np.exp(log_probs)  # softmax
        grad[rows, y] -= 1.0
        return ((grad * (g / n)).reshape(shape),)

    return Tensor.from_op(np.asarray(loss, dtype=z.dtype), (logits,), backward, "cross_entropy")


def mse_loss(pred: Tensor, target: Any) -> Tensor:
    """mean((pred - target)^2) over every element; gradient 2 (pred - target) / size.

    The shapes must be equal (no silent broadcasting). Raises ValueError for mismatched shapes
    and for NaN/inf in ``pred`` or ``target``.
    """
    pred, target = _as_tensor(pred), _as_tensor(target)
    if target.shape != pred.shape:
        raise ValueError(f"mse_loss: pred has shape {pred.shape}, target has shape {target.shape}")
    for name, t in (("pred", pred), ("target", target)):
        if not np.all(np.isfinite(t.data)):
            raise ValueError(f"mse_loss: {name} contains NaN or inf")
    diff = pred - target
    return (diff * diff).mean()
