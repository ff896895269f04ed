"""Gradient checking against central finite differences (shared by the foundation test files).

``numerical_grad(f, arrays)`` perturbs the given float64 arrays *in place* one element at a
time, so it works for a function of Tensors (pass ``t.data``) and for a layer's loss as a
function of its parameters (pass ``p.data`` for each parameter; build the layer in float64).

``check_grad(fn, *arrays)`` is the common case: wrap the arrays as float64 Tensors requiring
grad, reduce ``fn``'s output to a scalar with a fixed random projection (a plain sum would hide
bugs: the gradient of ``softmax(x).sum()`` is zero whatever the backward does), and compare the
autograd gradients with the numerical ones.

Tolerances: the central difference (f(x+h) - f(x-h)) / 2h has truncation error h^2/6 |f'''|
~ 1e-12 for h = 1e-6, and rounding error ~ eps |f| / h = 2.2e-16 |f| / 1e-6 ~ 2e-10 |f|. With
|f| up to ~100 in these tests the expected error is below ~1e-7, so ``ATOL = 1e-6`` and
``RTOL = 1e-5`` leave margin while any mistake in a backward formula (an error of the order of
the gradient itself) still fails. The functions must be smooth within h of the test point:
keep inputs away from kinks (relu at 0, ties of max) and from singularities (log, sqrt at 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tinytorch import Tensor, no_grad

H = 1e-6
RTOL = 1e-5
ATOL = 1e-6


def numerical_grad(f: Callable[[], float], arrays: Sequence[np.ndarray], h: float = H) -> list[np.ndarray]:
    """Central-difference gradient of the scalar ``f()`` with respect to each array in ``arrays``.

    ``f`` takes no arguments and must read the arrays (they are perturbed in place and restored).
    The arrays must be float64: in float32 the rounding error eps/h would swamp the result.
    """
    grads = []
    for arr in arrays:
        if arr.dtype != np.float64:
            raise TypeError(f"numerical_grad needs float64 arrays, got {arr.dtype}")
        grad = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            original = arr[i]
            arr[i] = original + h
            f_plus = float(f())
            arr[i] = original - h
            f_minus = float(f())
            arr[i] = original
            grad[i] = (f_plus - f_minus) / (2 * h)
        grads.append(grad)
    return grads


def check_grad(fn: Callable[..., Tensor], *arrays: np.ndarray, seed: int = 0) -> None:
    """Assert autograd == central differences for ``fn(*tensors)`` at ``arrays`` (float64).

    The output is reduced with a fixed random weight w ~ N(0, 1): loss = sum(fn(x) * w).
    """
    tensors = [Tensor(np.array(a, dtype=np.float64), requires_grad=True, dtype=np.float64) for a in arrays]
    out = fn(*tensors)
    weight = np.random.default_rng(seed).standard_normal(out.shape)
    loss = (out * Tensor(weight, dtype=np.float64)).sum()
    assert loss.dtype == np.float64, f"float64 inputs gave a {loss.dtype} loss: the check is meaningless"
    loss.backward()

    def f() -> float:
        with no_grad():
            return float((fn(*tensors).data * weight).sum())

    expected = numerical_grad(f, [t.data for t in tensors])
    for i, (t, num) in enumerate(zip(tensors, expected, strict=True)):
        assert t.grad is not None, f"input {i} received no gradient"
        np.testing.assert_allclose(t.grad, num, rtol=RTOL, atol=ATOL, err_msg=f"gradient of input {i}")
