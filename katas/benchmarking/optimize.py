"""The reference submission: modules 16-19 applied to the zoo models (module 20, benchmarking).

What genuinely speeds each event up when everything runs in numpy:

* ``MLP_SPRINT``: the forward pass of a 64-128-64-10 MLP on 359 images is ~0.3 ms, most of it
  Python and autograd bookkeeping (a Tensor and a graph node per op), not arithmetic. So:
  remove half the hidden units (module 18's ``prune_neurons``, a few epochs of fine-tuning to
  win back the accuracy) and run inference as plain numpy with in-place ReLUs
  (:class:`FusedInference`: no Tensors, no graph).
* ``CNN_MARATHON``: the time goes to im2col copies and max pooling. Remove a quarter of the
  filters of every conv layer (module 18's ``prune_filters``, fine-tuned): the next layer's
  im2col shrinks with them. Run it fused too: module 16's ``conv2d_im2col`` and pooling as a
  reshape and a max (no argmax bookkeeping for a backward pass that inference never takes).
* ``TRANSFORMER_DECATHLON``: the baseline reruns the whole prefix at every step; module 19's
  preallocated KV cache processes each position once (:class:`CachedGenerator`).

INT8 (module 17) is *slower* in numpy (int32 accumulation has no BLAS kernel) though 4x smaller:
it would lose every timed event, so the reference leaves it out.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from tinytorch import zoo
from tinytorch.conv import Conv2d, MaxPool2d
from tinytorch.data import load_digits
from tinytorch.layers import Flatten, Linear, ReLU, Sequential

from .submission import CompetitionSubmission

__all__ = [
    "CNN_EPOCHS",
    "CNN_FILTER_AMOUNT",
    "MLP_EPOCHS",
    "MLP_UNIT_AMOUNT",
    "CachedGenerator",
    "FusedInference",
    "build_submission",
    "optimize_cnn",
    "optimize_mlp",
]

MLP_UNIT_AMOUNT = 0.5  # fraction of hidden units removed from each hidden Linear
CNN_FILTER_AMOUNT = 0.25  # fraction of filters removed from each Conv2d with a consumer
# Training choices of the reference submission (any that passes the gates is as right; the
# tests check the gates): exempt from mutation testing.
MLP_EPOCHS = 8  # fine-tuning epochs after pruning (the MLP is cheap to train)  # pragma: no mutate
CNN_EPOCHS = 3  # pragma: no mutate


class FusedInference:
    """Inference of a ``Sequential`` of Linear, ReLU, Flatten, Conv2d and MaxPool2d in plain numpy.

    ``model`` keeps the tinytorch layers (for FLOP counts, saving weights, training); calling
    this object computes the same function without Tensors or a graph: Linear ``x @ W + b``,
    ReLU in place (on its own arrays, never the caller's), Conv2d with module 16's
    ``conv2d_im2col``, non-overlapping max pooling as ``reshape`` + ``max``.
    """

    SUPPORTED = (Linear, ReLU, Flatten, Conv2d, MaxPool2d)

    def __init__(self, model: Sequential) -> None:
        if not isinstance(model, Sequential):
            raise TypeError(f"model must be a Sequential, got {type(model).__name__}")
        for layer in model.layers:
            if not isinstance(layer, self.SUPPORTED):
                raise TypeError(f"FusedInference cannot run a {type(layer).__name__} layer")
            if isinstance(layer, MaxPool2d) and (layer.stride, layer.stride) != tuple(layer.kernel_size):
                raise ValueError(
                    "FusedInference pools non-overlapping windows only (stride == kernel size, both ways)"
                )
        self.model = model.eval()

    def __call__(self, x: Any) -> np.ndarray:
        from tinytorch.perf.acceleration import conv2d_im2col

        x = np.asarray(getattr(x, "data", x), dtype=np.float32)
        owned = False  # x is still the caller's array (or a view of it): never write into it
        for layer in self.model.layers:
            owned = owned or not isinstance(layer, (ReLU, Flatten))  # Linear, Conv2d, MaxPool2d: new arrays
            if isinstance(layer, Linear):
                x = x @ layer.weight.data
                if layer.bias is not None:
                    x += layer.bias.data
            elif isinstance(layer, ReLU):
                x = np.maximum(x, 0, out=x if owned and x.flags.writeable else None)
                owned = True
            elif isinstance(layer, Flatten):
                x = x.reshape(x.shape[0], -1)
            elif isinstance(layer, Conv2d):
                bias = None if layer.bias is None else layer.bias.data
                x = conv2d_im2col(x, layer.weight.data, bias, layer.stride, layer.padding)
            else:  # MaxPool2d, non-overlapping windows
                kh, kw = layer.kernel_size
                n, c, h, w = x.shape
                x = (
                    x[:, :, : h - h % kh, : w - w % kw]
                    .reshape(n, c, h // kh, kh, w // kw, kw)
                    .max(axis=(3, 5))
                )
        return x


class CachedGenerator:
    """Greedy generation with module 19's preallocated KV cache: each position runs once."""

    def __init__(self, model) -> None:
        self.model = model

    def generate(self, prompts: np.ndarray, max_new_tokens: int) -> np.ndarray:
        """Greedy generation with module 19's KV cache: the prompts (B, T) followed by
        ``max_new_tokens`` tokens, int (B, T + max_new_tokens); the same tokens as the baseline's.
        Reach module 19 as ``tinytorch.perf.caching`` (import it inside the method).
        """
        raise NotImplementedError(
            "CachedGenerator.generate (module 20, benchmarking): "
            "implement it in katas/benchmarking/optimize.py"
        )


def _fine_tune(model: Sequential, epochs: int) -> Sequential:
    from tinytorch.perf.compression import fine_tune

    x, y = load_digits("train")
    fine_tune(model, {}, x, y, epochs=epochs, lr=2e-3, seed=0)  # pragma: no mutate (a training choice)
    return model.eval()


def optimize_mlp(
    model: Sequential, amount: float = MLP_UNIT_AMOUNT, epochs: int = MLP_EPOCHS
) -> FusedInference:
    """The MLP for the sprint: a smaller, fine-tuned network run by :class:`FusedInference`.

    Remove ``amount`` of the units of every hidden Linear (module 18, ``tinytorch.perf.compression``:
    the smallest-norm units, with the next layer's inputs), win the accuracy back with
    ``_fine_tune(model, epochs)``, and wrap it. ``model`` is not modified. Target: accuracy
    within 0.02 of the zoo's (0.972), on every one of the 359 test images.
    """
    raise NotImplementedError(
        "optimize_mlp (module 20, benchmarking): implement it in katas/benchmarking/optimize.py"
    )


def optimize_cnn(
    model: Sequential, amount: float = CNN_FILTER_AMOUNT, epochs: int = CNN_EPOCHS
) -> FusedInference:
    """The CNN for the marathon: fewer filters, fine-tuned, run by :class:`FusedInference`.

    Remove ``amount`` of the filters of every Conv2d that has a consumer (module 18), shrinking
    the layer after it, fine-tune with ``_fine_tune``, and wrap it. ``model`` is not modified.
    Fewer filters in conv 1 shrink conv 2's im2col matrix too.
    """
    raise NotImplementedError(
        "optimize_cnn (module 20, benchmarking): implement it in katas/benchmarking/optimize.py"
    )


@functools.cache
def _optimized_models() -> tuple[FusedInference, FusedInference]:
    """The pruned and fine-tuned digits models, built once per process (deterministic seeds)."""
    return optimize_mlp(zoo.load_model("mlp_digits")), optimize_cnn(zoo.load_model("cnn_digits"))


def build_submission(name: str = "reference", author: str = "tinytorch") -> CompetitionSubmission:
    """Your TinyMLPerf submission: one optimized model per event.

    MLP_SPRINT and CNN_MARATHON: the pruned, fine-tuned, fused models (``_optimized_models()``
    builds them once per process); TRANSFORMER_DECATHLON: a :class:`CachedGenerator` around
    ``zoo.load_model(TRANSFORMER_DECATHLON.model)``. Name the optimizations you applied (keys
    of ``tinytorch.course.leaderboard.OPTIMIZATIONS``) and return a :class:`CompetitionSubmission`.
    """
    from .events import TRANSFORMER_DECATHLON  # noqa: F401

    raise NotImplementedError(
        "build_submission (module 20, benchmarking): implement it in katas/benchmarking/optimize.py"
    )
