"""Gradient checks for whole modules (parameters and inputs), on top of gradcheck.py.

``check_module_grads(module, forward, *inputs)``: convert the module to float64, wrap the inputs
as float64 Tensors requiring grad, reduce ``forward(*tensors)`` to a scalar with a fixed random
projection and compare the autograd gradients of every parameter and every input with central
finite differences (tolerances and their derivation: gradcheck.py).
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
