"""The dense conv2d kernel: im2col, one matrix product, reshape.

    x      (N, C, H, W)                 weight (F, C, kh, kw)          bias (F,) or None
    cols   = im2col(x)                  (N * H_out * W_out, C * kh * kw)
    W2     = weight.reshape(F, -1).T    (C * kh * kw, F)
    y      = matmul(cols, W2) + bias    (N * H_out * W_out, F) -> (N, F, H_out, W_out)

with H_out = (H + 2p - kh) // s + 1 (likewise W_out). All the arithmetic is in the one product,
so a convolution is exactly as fast as the matmul kernel it is given: the backend passes its own
dispatched matmul, and a quantized or sparse weight would bring its own kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinytorch.conv import conv_output_size, im2col  # noqa: F401 (im2col is yours to use)

from .matmul import matmul_numpy  # noqa: F401 (the default product)

__all__ = ["check_conv2d_args", "conv2d_im2col"]


def check_conv2d_args(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int, padding: int
) -> tuple[int, int]:
    """Validate a conv2d call and return (H_out, W_out); ``ValueError``/``TypeError`` naming the argument."""
    for name, value, ndim in (("x", x, 4), ("weight", weight, 4)):
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{name} must be an np.ndarray, got {type(value).__name__}")
        if value.ndim != ndim:
            raise ValueError(f"{name} must be {ndim}-D, got shape {value.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"x {x.shape} has {x.shape[1]} channels but weight {weight.shape} expects {weight.shape[1]}"
        )
    if bias is not None and np.shape(bias) != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {np.shape(bias)}")
    for name, value, low in (("stride", stride, 1), ("padding", padding, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    return conv_output_size(x.shape[2], x.shape[3], weight.shape[2:], stride, padding)


def conv2d_im2col(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
    matmul: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """2-D convolution (cross-correlation, as in every framework) as one matrix product.

    y[n, f, i, j] = bias[f] + sum_{c, di, dj} x_pad[n, c, i*s + di, j*s + dj] * weight[f, c, di, dj]

    Shapes: x (N, C, H, W), weight (F, C, kh, kw), bias (F,) -> y (N, F, H_out, W_out), in the
    dtype numpy gives the product plus the bias (float32 for float32 x, weight and bias).
    ``matmul(a, b)`` computes the single 2-D product: the backend passes its dispatched matmul;
    ``None`` means :func:`matmul_numpy`.
    Task: the pipeline of the module docstring, with exactly one call of ``matmul`` (so that
    the backend can route the product).

    Example: x = ``np.arange(9.0).reshape(1, 1, 3, 3)`` and one 2 x 2 filter of ones, stride 1,
    no padding: y = ``[[[[8, 12], [20, 24]]]]`` (each output sums a 2 x 2 window), shape (1, 1, 2, 2).
    """
    h_out, w_out = check_conv2d_args(x, weight, bias, stride, padding)
    raise NotImplementedError(
        "conv2d_im2col (module 16, acceleration): implement it in katas/acceleration/conv2d.py"
    )
