"""INT8 layers: int8 weights, int32 accumulation through the backend's ``("matmul", "int8")``
kernel (module 17).

For y = x @ W + b with x quantized affine (s_x, z_x) per tensor and W symmetric per output
channel n (s_n, zero point 0):

    x @ W  ~=  sum_k s_x (x_q[m,k] - z_x) * s_n w_q[k,n]
            =  s_x s_n * ( sum_k x_q[m,k] w_q[k,n]  -  z_x * sum_k w_q[k,n] )
                          \\_______ int32 kernel ____/    \\__ zero-point term __/

The O(M N K) part is one int8 x int8 product accumulated in int32 (each term is at most
128 * 128 = 2**14 in magnitude, so K * 2**14 < 2**31 holds for K <= MAX_K = 131071; the kernel
refuses larger K). The zero-point term needs only the column sums of w_q, one per output
channel, computed once. The bias is stored in int32 at the scale s_x s_n of the accumulator,
b_q = round(b / (s_x s_n)), so it is added before the single dequantization by s_x s_n. The
O(M N) epilogue (zero-point term, bias) runs in int64, where no supported K can overflow.

Convolutions are the same product over im2col rows; the padding is filled with z_x, the integer
that stands for 0.0 (padding with the integer 0 would pad with -z_x * s_x instead).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from tinytorch.perf.acceleration import OptimizedBackend

from tinytorch.conv import Conv2d, conv_output_size, im2col  # noqa: F401 (yours to use in forward)
from tinytorch.layers import Linear, Module
from tinytorch.tensor import Tensor

from .qparams import QMAX, QuantizedTensor, QuantParams, check_float_data, choose_qparams, quantize  # noqa: F401

__all__ = [
    "CHUNK_K",
    "MAX_K",
    "QuantizedConv2d",
    "QuantizedLinear",
    "check_int8_operands",
    "int8_backend",
    "int8_matmul",
    "int8_product",
    "quantize_bias",
    "weight_qparams",
]

INT32_MAX = 2**31 - 1
MAX_K = INT32_MAX // (128 * 128)  # 131071: K * 128 * 128 < 2**31, int32 accumulation cannot overflow
CHUNK_K = 2**24 // (128 * 128)  # 1024: a float32 sum of 1024 int8 products is exact (int8_matmul)


def _int8_operand(x: Any, name: str) -> np.ndarray:
    """The int8 values of a kernel operand (a QuantizedTensor or an int8 ndarray), checked 2-D."""
    data = x.data if isinstance(x, QuantizedTensor) else x
    if not isinstance(data, np.ndarray) or data.dtype != np.int8:
        raise TypeError(
            f"int8_matmul: {name} must be an int8 array or a QuantizedTensor, "
            f"got {getattr(data, 'dtype', type(data).__name__)}"
        )
    if data.ndim != 2:
        raise ValueError(f"int8_matmul: {name} must be 2-D, got shape {data.shape}")
    return data


def check_int8_operands(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """The int8 arrays of both operands; ``ValueError`` for mismatched inner dimensions or K > MAX_K."""
    A, B = _int8_operand(a, "a"), _int8_operand(b, "b")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"int8_matmul: inner dimensions do not match: a {A.shape} @ b {B.shape}")
    if A.shape[1] > MAX_K:
        raise ValueError(
            f"int8_matmul: K = {A.shape[1]} > MAX_K = {MAX_K}: an int32 accumulator holds "
            "K * 128 * 128 < 2**31 only up to MAX_K terms"
        )
    return A, B


def int8_matmul(a: Any, b: Any) -> np.ndarray:
    """The ``("matmul", "int8")`` kernel: int8 (M, K) @ int8 (K, N) -> exact int32 (M, N).

    Operands are int8 arrays or :class:`QuantizedTensor` (their ``data`` is used; zero points
    are the caller's business); K = 0 gives zeros. The result is the exact integer product, the
    one ``A.astype(np.int32) @ B.astype(np.int32)`` gives (never int8 @ int8 or int16, which wrap
    around: 127 * 127 * 300 = 4,838,700), but computed with float32 BLAS (sgemm), since numpy's
    integer matmul runs generic loops, 25-150x slower than sgemm here.

    Why float32 can be exact. float32 has a 24-bit significand, so every integer n with
    |n| <= 2**24 is a float32 exactly, and a sum or product of such integers whose exact result
    is also at most 2**24 in magnitude is computed exactly (the exact result is representable,
    so rounding leaves it unchanged), in whatever order or blocking BLAS adds the terms, fused
    multiply-adds included. Each term is |a b| <= 128 * 128 = 2**14, so every partial sum of at
    most CHUNK_K = 2**24 / 2**14 = 1024 terms is at most 2**24 in magnitude: a product over
    K <= 1024 is exact. Beyond that it is not: 4097 terms 127 * 127 sum to 66,080,513, an odd
    integer above 2**24, which float32 cannot hold (its spacing there is 4).

    So: cast A and B to float32 once, multiply in K-chunks of at most CHUNK_K columns of A
    (rows of B), ``A[:, k:k + CHUNK_K] @ B[k:k + CHUNK_K]`` for k = 0, CHUNK_K, 2 CHUNK_K, ...
    (the last chunk may be shorter), cast each chunk's float32 result to int32 (exact: an
    integer of at most 2**24) and add the chunks in int32, which is exact too: the running sum
    covers at most K <= MAX_K terms, |sum| <= MAX_K * 2**14 < 2**31. Adding the chunks in
    float32 instead would round as soon as the total passes 2**24.
    """
    A, B = check_int8_operands(a, b)
    raise NotImplementedError(
        "int8_matmul (module 17, quantization): "
        "implement it in katas/quantization/layers.py"
    )


def int8_backend() -> OptimizedBackend:
    """A module-16 :class:`OptimizedBackend` with :func:`int8_matmul` registered for
    ``("matmul", "int8")``; the dense kernels stay as they are."""
    raise NotImplementedError(
        "int8_backend (module 17, quantization): "
        "implement it in katas/quantization/layers.py"
    )


def _check_backend(backend: Any) -> Any:
    if backend is None:
        return int8_backend()
    if not callable(getattr(backend, "dispatch", None)):
        raise TypeError(f"backend must have a dispatch(op, *args) method, got {type(backend).__name__}")
    return backend


def _check_input_params(params: Any, name: str) -> QuantParams:
    if not isinstance(params, QuantParams):
        raise TypeError(f"{name}: input_params must be QuantParams, got {type(params).__name__}")
    if params.axis is not None:
        raise ValueError(f"{name}: input_params must be per-tensor (axis=None), got axis={params.axis}")
    return params


def weight_qparams(
    w: np.ndarray, axis: int, bias: np.ndarray | None, input_scale: np.ndarray
) -> QuantParams:
    """Symmetric per-output-channel parameters for a layer's weight (channels along ``axis``).

    s_n = max(max_k |w[k, n]| / 127, EPS), widened where a bias would not fit int32 at the
    accumulator's scale: s_n >= |b_n| / (s_x * 2**30), so |b_q| <= 2**30 (up to the float32
    rounding of s_n). Only a channel with (nearly) all-zero weights and a bias needs it; zero
    weights stay exactly zero at any scale.
    """
    others = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w.astype(np.float64)).max(axis=others)
    if bias is not None:
        fits = QMAX * np.abs(np.asarray(bias, dtype=np.float64)) / (float(input_scale) * 2.0**30)
        amax = np.maximum(amax, fits)
    return choose_qparams(-amax, amax, symmetric=True, axis=axis)


def quantize_bias(bias: np.ndarray | None, scale: np.ndarray) -> np.ndarray | None:
    """b_q = round(b / scale) in int32 (saturating at the int32 range), or None without a bias.

    ``scale`` is s_x * s_n per output channel: the bias then adds directly to the accumulator.
    """
    raise NotImplementedError(
        "quantize_bias (module 17, quantization): "
        "implement it in katas/quantization/layers.py"
    )


def int8_product(
    qx: QuantizedTensor,
    weight: QuantizedTensor,
    weight_colsum: np.ndarray,
    bias_q: np.ndarray | None,
    backend: Any,
) -> np.ndarray:
    """float32 (M, N) = dequantized (qx @ weight + bias), the integer product dispatched to the backend.

    ``qx`` int8 (M, K), affine per tensor (s_x, z_x); ``weight`` int8 (K, N), symmetric per
    output channel (s_n along axis 1); ``weight_colsum`` int32 (N,) = sum_k w_q[k, n];
    ``bias_q`` int32 (N,) at scale s_x * s_n, or None. The shared core of both layers:

        acc = backend.dispatch("matmul", qx, weight)                      int32 (M, N)
        y[m, n] = s_x s_n * (acc[m, n] - z_x * colsum[n] + b_q[n])           float32 (M, N)

    The O(M N) epilogue is one float32 multiply-add per output: with S[n] = s_x s_n (exact in
    float64: a product of two float32s has at most 48 significant bits) and the integer
    c[n] = b_q[n] - z_x colsum[n] (int64, exact), both folded once per call,

        y = float32(acc) * float32(S) + float32(S * c)

    Each of the four roundings (the cast of acc, of S, of S * c; the product; the sum) is a
    relative error of at most u = 2**-24, so with y* = S (acc + c) the exact value:

        |y - y*| <= 5 u S (|acc| + |c|)        (4 u + O(u**2) on the acc term, 2 u + ... on c)

    The bound is relative to S (|acc| + |c|), not to |y*|: after a ReLU (z_x = -128) the two terms
    nearly cancel. It stays far below the quantization error: |x_q| <= 128 and s_n |w_q| = |w_hat|
    give S (|acc| + |c|) <= 256 s_x sum_k |w_hat[k, n]| + |b_hat[n]|, while the layer's error
    bound already holds (s_x / 2) sum_k |w_hat[k, n]|: the epilogue adds at most 5 u * 512 < 2e-4
    of that, plus 5 u |b_hat|. The int64 sum with one float64 multiply, rounded once to float32
    (error <= u |y*| + 2**-53 S |acc + c|), meets the bound too.
    """
    raise NotImplementedError(
        "int8_product (module 17, quantization): "
        "implement it in katas/quantization/layers.py"
    )


class QuantizedLinear(Module):
    """y = x @ W + b with W stored in int8 (symmetric, per output channel) and x quantized with
    calibrated per-tensor parameters; the product runs through ``backend.dispatch("matmul", ...)``.

    Shapes: x (..., in_features) float -> y (..., out_features) float32 (a Tensor, no autograd:
    inference only); a 1-d x (in_features,) gives a 1-d y. Build it with :meth:`from_float`.
    Given: ``ValueError`` for a weight that is not a 2-D QuantizedTensor, symmetric per channel
    on axis 1, and for an x whose last axis is not ``in_features`` (a 0-d x has none).
    """

    def __init__(
        self,
        weight: QuantizedTensor,
        bias_q: np.ndarray | None,
        input_params: QuantParams,
        backend: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(weight, QuantizedTensor) or weight.ndim != 2 or weight.params.axis != 1:
            raise ValueError("QuantizedLinear: weight must be a 2-D QuantizedTensor, per channel on axis 1")
        if not weight.params.symmetric:  # int8_product has no term for a weight zero point
            raise ValueError("QuantizedLinear: weight must be quantized symmetric (zero points 0)")
        self.weight = weight
        self.weight_colsum = weight.data.astype(np.int32).sum(axis=0)  # (out,) for the zero-point term
        self.bias_q = bias_q
        self.input_params = _check_input_params(input_params, "QuantizedLinear")
        self.backend = _check_backend(backend)

    @property
    def in_features(self) -> int:
        return self.weight.shape[0]

    @property
    def out_features(self) -> int:
        return self.weight.shape[1]

    @classmethod
    def from_float(cls, linear: Linear, input_params: QuantParams, backend: Any = None) -> QuantizedLinear:
        """Quantize a float ``Linear``: weight symmetric per output channel, bias to int32 at s_x * s_n."""
        if not isinstance(linear, Linear):
            raise TypeError(f"QuantizedLinear.from_float: expected a Linear, got {type(linear).__name__}")
        input_params = _check_input_params(input_params, "QuantizedLinear.from_float")
        raise NotImplementedError(
            "QuantizedLinear.from_float (module 17, quantization): "
            "implement it in katas/quantization/layers.py"
        )

    def forward(self, x: Any) -> Tensor:
        data = check_float_data(x, "QuantizedLinear: x")
        if data.ndim < 1 or data.shape[-1] != self.in_features:
            raise ValueError(
                f"QuantizedLinear({self.in_features}, {self.out_features}): input x has shape {data.shape}"
            )
        raise NotImplementedError(
            "QuantizedLinear.forward (module 17, quantization): "
            "implement it in katas/quantization/layers.py"
        )

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, int8"


class QuantizedConv2d(Module):
    """A ``Conv2d`` whose im2col product runs in int8 x int8 -> int32 through the backend.

    The weight (F, C, kh, kw) is stored in int8, symmetric per output channel (axis 0); the
    input is quantized per tensor, padded with its zero point, unfolded with im2col and
    multiplied by the (C * kh * kw, F) weight matrix. Shapes: (N, C, H, W) -> (N, F, H_out, W_out).
    ``stride`` and ``padding`` default to 1 and 0, as ``Conv2d``'s do. Given: ``ValueError`` for
    a weight that is not a 4-D QuantizedTensor, symmetric per channel on axis 0, and for an x
    that is not 4-D with ``in_channels`` channels.
    """

    def __init__(
        self,
        weight: QuantizedTensor,
        bias_q: np.ndarray | None,
        input_params: QuantParams,
        stride: int = 1,
        padding: int = 0,
        backend: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(weight, QuantizedTensor) or weight.ndim != 4 or weight.params.axis != 0:
            raise ValueError("QuantizedConv2d: weight must be a 4-D QuantizedTensor, per channel on axis 0")
        if not weight.params.symmetric:  # int8_product has no term for a weight zero point
            raise ValueError("QuantizedConv2d: weight must be quantized symmetric (zero points 0)")
        self.weight = weight
        f = weight.shape[0]
        self.weight_matrix = QuantizedTensor(
            weight.data.reshape(f, -1).T,  # a view: (C * kh * kw, F), no second copy of the weights
            dataclasses.replace(weight.params, axis=1),  # the same channels, now the columns
        )
        self.weight_colsum = self.weight_matrix.data.astype(np.int32).sum(axis=0)
        self.bias_q = bias_q
        self.input_params = _check_input_params(input_params, "QuantizedConv2d")
        self.stride, self.padding = stride, padding
        self.kernel_size = tuple(weight.shape[2:])
        self.backend = _check_backend(backend)

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @classmethod
    def from_float(cls, conv: Conv2d, input_params: QuantParams, backend: Any = None) -> QuantizedConv2d:
        """Quantize a float ``Conv2d``: weight symmetric per output channel, bias to int32."""
        if not isinstance(conv, Conv2d):
            raise TypeError(f"QuantizedConv2d.from_float: expected a Conv2d, got {type(conv).__name__}")
        input_params = _check_input_params(input_params, "QuantizedConv2d.from_float")
        raise NotImplementedError(
            "QuantizedConv2d.from_float (module 17, quantization): "
            "implement it in katas/quantization/layers.py"
        )

    def forward(self, x: Any) -> Tensor:
        data = check_float_data(x, "QuantizedConv2d: x")
        if data.ndim != 4 or data.shape[1] != self.in_channels:
            raise ValueError(
                f"QuantizedConv2d: input x must be (N, {self.in_channels}, H, W), got shape {data.shape}"
            )
        raise NotImplementedError(
            "QuantizedConv2d.forward (module 17, quantization): "
            "implement it in katas/quantization/layers.py"
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, int8"
        )
