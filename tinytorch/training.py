"""A minimal training loop, evaluation and accuracy.

    history = fit(model, cross_entropy, Adam(model.parameters(), lr=1e-2),
                  lambda: minibatches(x, y, batch_size=32, rng=rng), epochs=10)

``batches`` is a list of (inputs, targets) pairs (re-used every epoch) or a callable returning
a fresh iterable of them each epoch (to reshuffle). The model is called as ``model(inputs)`` and
the loss as ``loss_fn(output, targets)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from tinytorch.layers import Module, check_int
from tinytorch.optim import Optimizer
from tinytorch.tensor import Tensor, no_grad

__all__ = ["accuracy", "evaluate", "fit", "inference", "minibatches", "predict"]

Batches = Iterable[tuple[Any, Any]] | Callable[[], Iterable[tuple[Any, Any]]]


def minibatches(
    x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split (x, y) into batches of ``batch_size`` rows (the last may be smaller), shuffled with
    ``rng`` when one is given, in order otherwise."""
    if len(x) != len(y):
        raise ValueError(f"minibatches: x has {len(x)} rows but y has {len(y)}")
    check_int(batch_size, "minibatches: batch_size")
    order = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
    return [
        (x[order[i : i + batch_size]], y[order[i : i + batch_size]]) for i in range(0, len(x), batch_size)
    ]


def _epoch_batches(batches: Batches) -> Iterable[tuple[Any, Any]]:
    return batches() if callable(batches) else batches


def fit(
    model: Module,
    loss_fn: Callable[[Any, Any], Tensor],
    optimizer: Optimizer,
    batches: Batches,
    epochs: int = 1,
) -> list[float]:
    """Train: for each epoch and batch, zero_grad, forward, loss, backward, step.

    Returns the mean training loss of each epoch. The model is put in training mode.
    """
    check_int(epochs, "fit: epochs")
    if not callable(batches) and isinstance(batches, Iterator) and epochs > 1:
        raise ValueError("fit: batches is a one-shot iterator; pass a list or a callable for epochs > 1")
    model.train()
    history = []
    for _ in range(epochs):
        total, count = 0.0, 0
        for inputs, targets in _epoch_batches(batches):
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            total += loss.item()
            count += 1
        if count == 0:
            raise ValueError("fit: batches produced no batch")
        history.append(total / count)
    return history


@contextlib.contextmanager
def inference(model: Module) -> Iterator[None]:
    """Run the block in eval mode (Dropout off) and without recording a graph; the model's
    previous mode is restored on exit, even when the block raises."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        model.train(was_training)


def evaluate(model: Module, loss_fn: Callable[[Any, Any], Tensor], batches: Batches) -> float:
    """Mean loss over the batches under :func:`inference` (eval mode, no graph)."""
    with inference(model):
        losses = [loss_fn(model(inputs), targets).item() for inputs, targets in _epoch_batches(batches)]
    if not losses:
        raise ValueError("evaluate: batches produced no batch")
    return float(np.mean(losses))


def predict(model: Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """argmax over the last axis of ``model(x)``, in batches, under :func:`inference`."""
    with inference(model):
        preds = [model(x[i : i + batch_size]).data.argmax(axis=-1) for i in range(0, len(x), batch_size)]
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def accuracy(model: Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Fraction of rows whose predicted class (argmax of the logits) equals ``y``."""
    if len(x) != len(y):
        raise ValueError(f"accuracy: x has {len(x)} rows but y has {len(y)}")
    if len(x) == 0:
        raise ValueError("accuracy: empty data")
    return float(np.mean(predict(model, x, batch_size) == np.asarray(y)))
