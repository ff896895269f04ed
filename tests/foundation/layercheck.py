"""Helpers shared by the layer tests (conv, attention, transformer, layers).

``check_module_grads(module, forward, *inputs)``: convert the module to float64, wrap the inputs
as float64 Tensors requiring grad, reduce ``forward(*tensors)`` to a scalar with a fixed random
projection and compare the autograd gradients of every parameter and every input with central
finite differences (tolerances and their derivation: gradcheck.py).

``forward_in_chunks(module, x, cuts)``: feed a sequence to an attention module or transformer
block piece by piece, carrying the keys/values, for comparison with one full forward.

``RecordingBackend``: a backend that records every product it is asked for and answers it
with numpy, to check which products a layer routes through ``tinytorch.backend``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from gradcheck import ATOL, RTOL, numerical_grad

from tinytorch import Module, Tensor, no_grad


def check_module_grads(
    module: Module, forward: Callable[..., Tensor], *inputs: np.ndarray, seed: int = 0
) -> None:
    module.astype(np.float64)
    tensors = [Tensor(np.array(a, dtype=np.float64), requires_grad=True, dtype=np.float64) for a in inputs]
    out = forward(*tensors)
    assert out.dtype == np.float64, (
        f"float64 module and inputs gave {out.dtype}: the check would be meaningless"
    )
    weight = np.random.default_rng(seed).standard_normal(out.shape)
    (out * Tensor(weight, dtype=np.float64)).sum().backward()

    def f() -> float:
        with no_grad():
            return float((forward(*tensors).data * weight).sum())

    named = module.named_parameters()
    arrays = [p.data for _, p in named] + [t.data for t in tensors]
    labels = [f"parameter {n}" for n, _ in named] + [f"input {i}" for i in range(len(tensors))]
    got = [p.grad for _, p in named] + [t.grad for t in tensors]
    for label, g, num in zip(labels, got, numerical_grad(f, arrays), strict=True):
        assert g is not None, f"{label} received no gradient"
        np.testing.assert_allclose(g, num, rtol=RTOL, atol=ATOL, err_msg=f"gradient of {label}")


def forward_in_chunks(module: Module, x: np.ndarray, cuts: list[int]) -> np.ndarray:
    """Run ``module(chunk, past_kv) -> (y, (k, v))`` on x (B, T, E) split at ``cuts`` (sorted
    positions in 1..T-1), passing the keys/values of every earlier chunk; returns the outputs
    concatenated along time, (B, T, E), in float64."""
    bounds = [0, *cuts, x.shape[1]]
    past, outs = None, []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        y, (k, v) = module(Tensor(x[:, a:b], dtype=np.float64), past)
        assert k.shape[2] == v.shape[2] == b - a  # only the new positions' keys/values come back
        if past is None:
            past = (k.data, v.data)
        else:
            past = (np.concatenate([past[0], k.data], axis=2), np.concatenate([past[1], v.data], axis=2))
        outs.append(y.data)
    return np.concatenate(outs, axis=1)


class RecordingBackend:
    """A fake backend: records (op, a.shape, b.shape) of every dispatched product and answers
    it with numpy's ``a @ b``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []

    def dispatch(self, op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.calls.append((op, a.shape, b.shape))
        return a @ b
