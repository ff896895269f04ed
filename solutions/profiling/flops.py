"""Counting FLOPs layer by layer (module 15, profiling).

A FLOP here is one floating-point add or multiply, so a multiply-add costs 2. We count the
matrix products, which dominate every model in this course, and the bias adds:

* ``Linear(in, out)`` on x of shape (..., in), with N = x.size / in rows:
      2 * N * in * out            (x @ W: N * out dot products of length in)
    + N * out                     (bias: one add per output element, if the layer has a bias)
* ``Conv2d(in, out, (kh, kw))`` with output (N, out, H_out, W_out): im2col turns it into the
  product of an (N * H_out * W_out, in * kh * kw) patch matrix with an (in * kh * kw, out)
  weight matrix, so
      2 * N * H_out * W_out * out * in * kh * kw
    + N * out * H_out * W_out     (bias)
  A 1x1 convolution is then exactly a Linear applied at every pixel.
* ``MultiHeadAttention`` with B batches, H heads of size d, Tq queries and Tk keys: its
  q/k/v/out projections are Linear layers, counted as such under their own names; the
  attention itself adds the two batched matmuls
      Q @ K^T:  2 * B * H * Tq * Tk * d       and       A @ V:  2 * B * H * Tq * Tk * d
  (the whole score matrix is computed even when causal; the mask, scale and softmax count 0).
* Elementwise, normalisation, pooling, lookup and reshaping layers (ReLU, GELU, Softmax, Dropout,
  Flatten, MaxPool2d, LayerNorm, Embedding) count 0: they are cheap next to the products.
* Any other leaf layer (a Module without submodules) has no rule: it adds 0 to the total, gets
  no ``per_layer`` entry, and its name is listed in ``FLOPResult.unsupported``, so nothing is
  silently treated as free.

Containers (Sequential, TransformerBlock, GPT, ...) are not counted themselves: their leaves are.
Counting is done with forward hooks, so it follows whatever path the model's forward takes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinytorch.attention import MultiHeadAttention
from tinytorch.conv import Conv2d, MaxPool2d
from tinytorch.layers import GELU, Dropout, Embedding, Flatten, LayerNorm, Linear, Module, ReLU, Softmax
from tinytorch.tensor import Tensor, no_grad

__all__ = ["FLOPResult", "FLOPCounter", "layer_flops", "ZERO_FLOP_LAYERS"]

# Layers whose cost we deliberately count as 0 (see the module docstring).
ZERO_FLOP_LAYERS: tuple[type, ...] = (ReLU, GELU, Softmax, Dropout, Flatten, MaxPool2d, LayerNorm, Embedding)


@dataclass(frozen=True)
class FLOPResult:
    """FLOPs of one forward pass.

    ``per_layer`` maps each layer's dotted name (from ``named_modules``; the model itself, if it
    is a single layer, is named after its class) to its FLOPs, in the order the layers first
    finished their forward (hooks run after forward, so an attention layer comes after its
    projections); a layer that runs twice is summed. ``total`` == sum(per_layer.values()).
    ``unsupported`` names the leaf layers that ran but have no FLOP rule (counted as 0).
    """

    total: int
    per_layer: dict[str, int]
    unsupported: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        width = max([len(n) for n in self.per_layer] + [5])
        lines = [f"{'layer':<{width}}  {'FLOPs':>14}  share"]
        for name, flops in self.per_layer.items():
            share = flops / self.total if self.total else 0.0
            lines.append(f"{name:<{width}}  {flops:>14,}  {share:6.1%}")
        lines.append(f"{'total':<{width}}  {self.total:>14,}")
        if self.unsupported:
            lines.append("no FLOP rule (counted 0): " + ", ".join(self.unsupported))
        return "\n".join(lines)


def _shape(x: Any) -> tuple[int, ...]:
    """The shape of a Tensor or an array."""
    return tuple(x.shape)


def layer_flops(module: Module, inputs: Sequence[Any], output: Any) -> int | None:
    """FLOPs of one call ``output = module(*inputs)`` (the rules in the module docstring).

    Returns an int for a layer with a rule (0 for the zero-cost layers) and ``None`` for a
    layer without one. Shapes come from the call: Linear from ``inputs[0]`` (..., in);
    Conv2d from ``output`` (N, out, H_out, W_out); attention from ``output = (y, (k, v))`` with
    k of shape (B, H, T_new, d), plus the T_past cached keys if ``inputs[1]`` is a past (k, v).
    The count is a plain Python int.

    Example: ``Linear(3, 4)`` (with bias) on x of shape (2, 3): 2 * 2 * 3 * 4 + 2 * 4 = 56.
    """
    if isinstance(module, Linear):
        d_in, d_out = _shape(module.weight)
        rows = math.prod(_shape(inputs[0])[:-1])
        bias = rows * d_out if module.bias is not None else 0
        return 2 * rows * d_in * d_out + bias
    if isinstance(module, Conv2d):
        c_out, c_in, kh, kw = _shape(module.weight)
        n, _, h_out, w_out = _shape(output)
        positions = n * h_out * w_out
        bias = positions * c_out if module.bias is not None else 0
        return 2 * positions * c_out * c_in * kh * kw + bias
    if isinstance(module, MultiHeadAttention):
        _, (k, _) = output
        b, h, t_new, d = _shape(k)
        t_q = _shape(inputs[0])[1]
        past = inputs[1] if len(inputs) > 1 else None
        t_k = t_new + (_shape(past[0])[2] if past is not None else 0)
        return 2 * (2 * b * h * t_q * t_k * d)
    if isinstance(module, ZERO_FLOP_LAYERS):
        return 0
    return None


class FLOPCounter:
    """Counts the FLOPs of a model's forward pass: ``FLOPCounter().count_ops(model, input)``."""

    def count_ops(self, model: Module, input: Tensor | np.ndarray) -> FLOPResult:
        """Run ``model(input)`` once (no grad) with a forward hook on every layer; count each
        call with :func:`layer_flops` and return the total and the per-layer breakdown.

        Only layers with a rule get a ``per_layer`` entry (a zero-cost layer such as ReLU gets
        one, with 0). A leaf layer without a rule (``layer_flops`` returns None) gets *no*
        entry, not an entry of 0: its name goes, once, into ``unsupported``. Containers get
        neither. A layer reachable under two names (``Sequential(fc, ReLU(), fc)``) is hooked
        once, under its first name, so each call counts once; keyword arguments reach the rules
        like positional ones (hooks get them bound in ``forward``'s order). No hook is left on
        the model afterwards, also when its forward raises.

        Example: ``Sequential(Linear(3, 4), ReLU())`` on a (2, 3) input gives total 56 and
        ``per_layer == {"layers.0": 56, "layers.1": 0}``."""
        if not isinstance(model, Module):
            raise TypeError(f"model must be a tinytorch Module, got {type(model).__name__}")
        x = input if isinstance(input, Tensor) else Tensor(input)
        per_layer: dict[str, int] = {}
        unsupported: list[str] = []

        def hook_for(name: str) -> Callable[[Module, tuple, Any], None]:
            def hook(module: Module, inputs: tuple, output: Any) -> None:
                flops = layer_flops(module, inputs, output)
                if flops is not None:
                    per_layer[name] = per_layer.get(name, 0) + flops
                elif not module.children() and name not in unsupported:
                    unsupported.append(name)

            return hook

        handles = [
            module.register_forward_hook(hook_for(name or type(module).__name__))
            for name, module in model.named_modules()
        ]
        try:
            with no_grad():
                model(x)
        finally:
            for handle in handles:
                handle.remove()
        return FLOPResult(total=sum(per_layer.values()), per_layer=per_layer, unsupported=tuple(unsupported))
