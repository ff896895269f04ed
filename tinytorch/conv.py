"""2-D convolution by im2col, and max pooling. Layout NCHW throughout.

im2col turns a convolution into one matrix product. Every receptive field (one output pixel of
one image) becomes a row of ``cols``; the filters become the columns of ``W2``::

    x      (N, C, H, W)
    cols   (N * H_out * W_out, C * kh * kw)      rows ordered (n, i, j), columns (c, di, dj)
    W2     (C * kh * kw, C_out)                  = weight.reshape(C_out, -1).T
    y      = cols @ W2 + b   -> (N, H_out, W_out, C_out) -> transpose to (N, C_out, H_out, W_out)

with H_out = (H + 2p - kh) // s + 1 (likewise W_out). The product goes through ``Tensor.__matmul__``
and therefore through the active :mod:`tinytorch.backend`. col2im is the adjoint of im2col: it adds
every row of a ``cols``-shaped gradient back onto the input pixels it was copied from (a pixel that
sits in several receptive fields receives the sum), which is exactly the backward of im2col.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinytorch.layers import Module, _as_tensor, _rng, check_int, parameter
from tinytorch.tensor import Tensor

__all__ = ["Conv2d", "MaxPool2d", "col2im", "conv_output_size", "im2col"]


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return check_int(value[0], name), check_int(value[1], name)
    v = check_int(value, name)
    return v, v


def conv_output_size(
    height: int, width: int, kernel_size: tuple[int, int], stride: int = 1, padding: int = 0
) -> tuple[int, int]:
    """(H_out, W_out) = ((H + 2p - kh) // s + 1, (W + 2p - kw) // s + 1).

    Raises ValueError when the (padded) input is smaller than the kernel."""
    kh, kw = kernel_size
    if height + 2 * padding < kh or width + 2 * padding < kw:
        raise ValueError(
            f"input of spatial size ({height}, {width}) with padding {padding} is smaller than "
            f"the kernel ({kh}, {kw})"
        )
    return (height + 2 * padding - kh) // stride + 1, (width + 2 * padding - kw) // stride + 1


def im2col(x: np.ndarray, kernel_size: tuple[int, int], stride: int = 1, padding: int = 0) -> np.ndarray:
    """Unfold receptive fields into rows.

    x (N, C, H, W) -> cols (N * H_out * W_out, C * kh * kw); row (n, i, j) holds the zero-padded
    patch x_pad[n, :, i*s : i*s + kh, j*s : j*s + kw] flattened in (c, di, dj) order, so
    ``cols @ weight.reshape(C_out, -1).T`` is the convolution. A copy (the views are strided).
    """
    kh, kw = kernel_size
    n, c, h, w = x.shape
    h_out, w_out = conv_output_size(h, w, kernel_size, stride, padding)
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    # windows[n, c, i, j, di, dj] = x[n, c, i*s + di, j*s + dj]  (views, no copy yet)
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :h_out, :w_out]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h_out * w_out, c * kh * kw)


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel_size: tuple[int, int],
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """The adjoint of :func:`im2col`: cols (N * H_out * W_out, C * kh * kw) -> (N, C, H, W).

    Each entry is added to the input pixel it was copied from; overlapping fields accumulate and
    entries that landed in the padding are dropped. One strided slice-add per kernel offset
    (kh * kw of them), each vectorised over the batch, the channels and all output positions.
    """
    kh, kw = kernel_size
    n, c, h, w = x_shape
    h_out, w_out = conv_output_size(h, w, kernel_size, stride, padding)
    patches = cols.reshape(n, h_out, w_out, c, kh, kw)
    out = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for di in range(kh):
        for dj in range(kw):
            out[:, :, di : di + stride * h_out : stride, dj : dj + stride * w_out : stride] += patches[
                :, :, :, :, di, dj
            ].transpose(0, 3, 1, 2)
    if padding:
        out = out[:, :, padding:-padding, padding:-padding]
    return out


def _im2col_op(x: Tensor, kernel_size: tuple[int, int], stride: int, padding: int) -> Tensor:
    """im2col as a differentiable op: its backward is col2im."""
    shape = x.shape
    cols = im2col(x.data, kernel_size, stride, padding)

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        return (col2im(g, shape, kernel_size, stride, padding),)

    return Tensor.from_op(cols, (x,), backward, "im2col")


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in every DL library) over NCHW input.

        y[n, o, i, j] = b[o] + sum_{c, di, dj} W[o, c, di, dj] * x_pad[n, c, i*s + di, j*s + dj]

    weight (C_out, C_in, kh, kw), bias (C_out,). Init (He/Kaiming uniform for ReLU networks):
    W ~ U(-a, a), a = sqrt(6 / fan_in), fan_in = C_in * kh * kw; b = 0.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        check_int(in_channels, "in_channels")
        check_int(out_channels, "out_channels")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = check_int(stride, "stride")
        self.padding = check_int(padding, "padding", minimum=0)
        kh, kw = self.kernel_size
        bound = math.sqrt(6.0 / (in_channels * kh * kw))
        self.weight = parameter(_rng(rng).uniform(-bound, bound, size=(out_channels, in_channels, kh, kw)))
        self.bias = parameter(np.zeros(out_channels)) if bias else None

    @property
    def in_channels(self) -> int:
        """Read from ``weight``, so pruning filters (replacing weight and bias) keeps it consistent."""
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, C_out, H_out, W_out) for an input of shape (N, C_in, H, W)."""
        n, _, h, w = input_shape
        h_out, w_out = conv_output_size(h, w, self.kernel_size, self.stride, self.padding)
        return n, self.out_channels, h_out, w_out

    def forward(self, x: Tensor) -> Tensor:
        x = _as_tensor(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2d({self.in_channels}, {self.out_channels}): input x must be "
                f"(N, {self.in_channels}, H, W), got shape {x.shape}"
            )
        n, c_out, h_out, w_out = self.output_shape(x.shape)
        cols = _im2col_op(x, self.kernel_size, self.stride, self.padding)  # (N*Ho*Wo, C*kh*kw)
        w2 = self.weight.reshape(c_out, -1).transpose(1, 0)  # (C*kh*kw, C_out)
        y = cols @ w2  # the one big product, through the backend
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(n, h_out, w_out, c_out).transpose(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )


class MaxPool2d(Module):
    """Max over each kh x kw window, moved by ``stride`` (default: the kernel size), no padding.

    (N, C, H, W) -> (N, C, H_out, W_out), H_out = (H - kh) // s + 1. Backward routes each output
    gradient to the argmax of its window (the first maximum in row-major order on ties); with
    overlapping windows an input that wins several windows receives the sum.
    """

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size[0] if stride is None else check_int(stride, "stride")
        if stride is None and self.kernel_size[0] != self.kernel_size[1]:
            raise ValueError(f"MaxPool2d: give stride explicitly for a non-square kernel {self.kernel_size}")

    def forward(self, x: Tensor) -> Tensor:
        x = _as_tensor(x)
        if x.ndim != 4:
            raise ValueError(f"MaxPool2d: input x must be (N, C, H, W), got shape {x.shape}")
        kh, kw = self.kernel_size
        s = self.stride
        n, c, h, w = x.shape
        h_out, w_out = conv_output_size(h, w, self.kernel_size, s, 0)
        windows = sliding_window_view(x.data, (kh, kw), axis=(2, 3))[:, :, ::s, ::s][:, :, :h_out, :w_out]
        flat = windows.reshape(n, c, h_out, w_out, kh * kw)
        arg = flat.argmax(axis=-1)  # (N, C, Ho, Wo), index into the window
        out = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
        # absolute input coordinates of every argmax
        rows = np.arange(h_out)[:, None] * s + arg // kw
        cols = np.arange(w_out)[None, :] * s + arg % kw
        nn = np.arange(n)[:, None, None, None]
        cc = np.arange(c)[None, :, None, None]
        shape, dtype = x.shape, x.dtype

        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            dx = np.zeros(shape, dtype=dtype)
            np.add.at(dx, (nn, cc, rows, cols), g)
            return (dx,)

        return Tensor.from_op(out, (x,), backward, "maxpool2d")

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"
