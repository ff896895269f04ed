"""INT8 quantization parameters, quantize / dequantize, and the quantized tensor (module 17).

A real number x is stored as a signed 8-bit integer q in [QMIN, QMAX] = [-128, 127]:

    q = clamp(round(x / s) + z, -128, 127)          (quantize; round half to even)
    x_hat = (q - z) * s                              (dequantize)

with a scale s > 0 (float32) and a zero point z (an integer in [-128, 127]). The pair (s, z) is
chosen from an observed range [min, max]:

* **affine** (asymmetric, for activations): the range is first widened to include 0,
  lo = min(min, 0), hi = max(max, 0); then s = (hi - lo) / 255, stored as float32, and
  z = -128 - round(min / s) computed from that float32 s, clamped into [-128, 127]. 0.0 maps
  to the integer z exactly, so zero (ReLU zeros, padding) is represented without error; a range
  that lies above 0 gives a formula value below -128, which the clamp moves to -128.
* **symmetric** (for weights): z = 0 and s = max(|min|, |max|) / 127, so the integers used are
  [-127, 127] and the product kernel needs no zero-point term for the weights.

The scale has a floor, float32 machine epsilon (2**-23): an all-zero tensor (a dead channel, a
pruned filter) would otherwise get s = 0 and divide by zero. Inside the range the round trip
error is at most s / 2 (round to nearest); outside it values clamp to the ends.

Per-tensor parameters are 0-d arrays with ``axis=None``; per-channel parameters (one (s, z) per
slice along ``axis``, e.g. per output channel of a weight) are 1-d arrays of the channel count,
and ``axis`` names the axis of the data the channels lie along.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "EPS",
    "QMAX",
    "QMIN",
    "QuantParams",
    "QuantizedTensor",
    "check_float_data",
    "choose_qparams",
    "dequantize",
    "quantize",
    "quantize_tensor",
]

QMIN, QMAX = -128, 127  # signed INT8
EPS = float(np.finfo(np.float32).eps)  # 2**-23: the floor of every scale


def check_float_data(x: Any, name: str) -> np.ndarray:
    """``x`` as a non-empty, finite floating ndarray; ``name`` (e.g. ``"quantize: x"``) is in the errors.

    ``TypeError`` for integer, boolean or non-numeric data (an int8 array passed where float data
    is expected is a bug, not something to convert silently); ``ValueError`` for an empty array
    or NaN / inf.
    """
    data = x.data if hasattr(x, "requires_grad") else x  # a tinytorch Tensor
    if not isinstance(data, np.ndarray):
        data = np.asarray(data)
    if data.dtype.kind != "f":
        raise TypeError(f"{name} must be floating-point data, got dtype {data.dtype}")
    if data.size == 0:
        raise ValueError(f"{name} is empty (shape {data.shape})")
    if not np.all(np.isfinite(data)):
        bad = data[~np.isfinite(data)].flat[0]
        raise ValueError(f"{name} contains NaN or inf (e.g. {bad}); quantization needs finite values")
    return data


@dataclass(frozen=True)
class QuantParams:
    """Scale and zero point of an INT8 quantization, per tensor (``axis=None``) or per channel.

    ``scale`` float32 and ``zero_point`` int32 arrays of the same shape: 0-d per tensor, (C,)
    per channel along ``axis``, an axis of the data (a negative one counts from the end, as in
    numpy; it must lie in [-ndim, ndim) of the array the parameters are used on, else
    ``check_fits`` raises ``ValueError``). ``symmetric`` records the mode (then every zero point
    is 0; default False, affine).

    Given: the constructor converts what it gets (a Python float scale, a zero point of any
    integer dtype) to those arrays and checks it once: ``TypeError`` for a zero point that is not
    integers; ``ValueError`` for shapes that differ or have more than one axis, an ``axis``
    without 1-d parameters (or 1-d ones without an ``axis``), a scale that is not finite and
    > 0, a zero point outside [-128, 127]. Frozen: the fields cannot be reassigned afterwards.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None
    symmetric: bool = False

    def __post_init__(self) -> None:
        scale = np.asarray(self.scale, dtype=np.float32)
        zero_point = np.asarray(self.zero_point)
        if zero_point.dtype.kind not in "iu":
            raise TypeError(f"QuantParams: zero_point must be integers, got dtype {zero_point.dtype}")
        if scale.shape != zero_point.shape or scale.ndim > 1:
            raise ValueError(
                f"QuantParams: scale {scale.shape} and zero_point {zero_point.shape} must have the same "
                "shape, () per tensor or (C,) per channel"
            )
        if (self.axis is None) != (scale.ndim == 0):
            raise ValueError(
                f"QuantParams: axis={self.axis} needs per-channel (1-d) parameters and vice versa"
            )
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError(f"QuantParams: scale must be finite and > 0, got {scale}")
        if np.any(zero_point < QMIN) or np.any(zero_point > QMAX):
            raise ValueError(f"QuantParams: zero_point must lie in [{QMIN}, {QMAX}], got {zero_point}")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zero_point.astype(np.int32))

    def shaped(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        """(scale, zero_point) reshaped to broadcast against an ``ndim``-d array along ``axis``
        (call :meth:`check_fits` first)."""
        if self.axis is None:
            return self.scale, self.zero_point
        shape = [1] * ndim
        shape[self.axis] = -1
        return self.scale.reshape(shape), self.zero_point.reshape(shape)

    def check_fits(self, shape: tuple[int, ...], name: str) -> None:
        """``ValueError`` unless per-channel parameters match ``shape[axis]``."""
        if self.axis is None:
            return
        if not -len(shape) <= self.axis < len(shape):
            raise ValueError(f"{name}: axis {self.axis} is out of range for shape {shape}")
        if shape[self.axis] != self.scale.size:
            raise ValueError(
                f"{name}: {self.scale.size} per-channel scales for {shape[self.axis]} channels "
                f"(shape {shape}, axis {self.axis})"
            )


def _check_params(params: Any, name: str) -> None:
    """``TypeError`` naming ``name`` unless ``params`` is a :class:`QuantParams`."""
    if not isinstance(params, QuantParams):
        raise TypeError(f"{name}: params must be QuantParams (choose_qparams), not {type(params).__name__}")


def _check_range(min_val: Any, max_val: Any) -> tuple[np.ndarray, np.ndarray]:
    """The observed range as float64 arrays of one shape; errors name ``choose_qparams`` and the values."""
    lo = np.asarray(min_val, dtype=np.float64)
    hi = np.asarray(max_val, dtype=np.float64)
    if lo.shape != hi.shape or lo.ndim > 1:
        raise ValueError(
            f"choose_qparams: min_val {lo.shape} and max_val {hi.shape} must be scalars or 1-d arrays "
            "of one shape"
        )
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError(f"choose_qparams: min_val={min_val} and max_val={max_val} must be finite")
    if np.any(lo > hi):
        raise ValueError(f"choose_qparams: min_val > max_val ({min_val} > {max_val})")
    return lo, hi


def choose_qparams(
    min_val: float | np.ndarray, max_val: float | np.ndarray, symmetric: bool = False, axis: int = 0
) -> QuantParams:
    """Scale and zero point for an observed range [min_val, max_val] (scalars, or 1-d per channel).

    affine:    lo, hi = min(min_val, 0), max(max_val, 0);  s = max((hi - lo) / 255, EPS);
               z = clamp(-128 - round(min_val / s), -128, 127)
    symmetric: s = max(max(|min_val|, |max_val|) / 127, EPS);  z = 0

    s is computed in float64 and stored as float32; z is computed from that float32 s (the
    division min_val / s in float64), so that z is the zero point of the grid actually stored.
    Example: [-1, 3] -> s = 4/255 = 0.01569, z = -128 - round(-63.75) = -64; 0.0 -> -64 -> 0.0.
    Where it matters: [-1, 1] -> s = float32(2/255) = 0.0078431377, a little above 2/255, so
    -1 / s = -127.4999925 rounds to -127 and z = -1 (the float64 2/255 would give -127.5, rounded
    half to even to -128, and z = 0).

    Scalars give per-tensor parameters (``axis=None``). 1-d arrays give one (s, z) per channel,
    and ``axis`` (default 0) is recorded as their ``axis``: the axis of the data the channels lie
    along (:func:`quantize_tensor` passes its own; a Conv2d weight's output channels are axis 0).
    For scalars ``axis`` is not used. ``TypeError`` for an ``axis`` that is not an int;
    ``ValueError`` for NaN / inf or min_val > max_val (both given).
    """
    lo, hi = _check_range(min_val, max_val)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"choose_qparams: axis must be an int, got {type(axis).__name__} {axis!r}")
    raise NotImplementedError(
        "choose_qparams (module 17, quantization): "
        "implement it in katas/quantization/qparams.py"
    )


def quantize(x: np.ndarray, params: QuantParams) -> np.ndarray:
    """q = clamp(round(x / s) + z, -128, 127) as an ``np.int8`` array of x's shape.

    Rounding is half to even (``np.rint``), computed in float32. Per-channel parameters
    broadcast along ``params.axis``. ``TypeError`` / ``ValueError`` for non-float, empty or
    non-finite ``x``.

    Example: with ``choose_qparams(-1.0, 3.0)`` (s = 4/255, z = -64), x = [-1.0, 0.0, 3.0, 9.0]
    gives [-128, -64, 127, 127]: -1 / s = -63.75 rounds to -64; 9.0 lies outside and clamps.
    """
    x = check_float_data(x, "quantize: x")
    _check_params(params, "quantize")
    params.check_fits(x.shape, "quantize")
    raise NotImplementedError(
        "quantize (module 17, quantization): "
        "implement it in katas/quantization/qparams.py"
    )


def dequantize(q: np.ndarray, params: QuantParams) -> np.ndarray:
    """x_hat = (q - z) * s as float32, for an int8 array ``q`` (``TypeError`` for another dtype).

    Example: [-128, -64, 127] with s = 4/255, z = -64 gives [-1.0039, 0.0, 2.9961].
    """
    q = np.asarray(q)
    if q.dtype != np.int8:
        raise TypeError(f"dequantize: q must be an int8 array, got dtype {q.dtype}")
    _check_params(params, "dequantize")
    params.check_fits(q.shape, "dequantize")
    raise NotImplementedError(
        "dequantize (module 17, quantization): "
        "implement it in katas/quantization/qparams.py"
    )


class QuantizedTensor:
    """INT8 values and their parameters. ``kind = "int8"`` makes the acceleration backend route a
    product with it to the ``("matmul", "int8")`` kernel.

    ``data`` must be an ``np.int8`` array (one byte per value); ``nbytes`` counts those bytes.
    """

    kind = "int8"

    def __init__(self, data: np.ndarray, params: QuantParams) -> None:
        if not isinstance(data, np.ndarray) or data.dtype != np.int8:
            got = getattr(data, "dtype", type(data).__name__)
            raise TypeError(f"QuantizedTensor: data must be an np.int8 array, got {got}")
        if not isinstance(params, QuantParams):
            raise TypeError(f"QuantizedTensor: params must be QuantParams, got {type(params).__name__}")
        params.check_fits(data.shape, "QuantizedTensor")
        self.data = data
        self.params = params

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def nbytes(self) -> int:
        """Bytes of the int8 values (the parameters are a few bytes per channel on top)."""
        return int(self.data.nbytes)

    def dequantize(self) -> np.ndarray:
        """The float32 values this tensor stands for."""
        return dequantize(self.data, self.params)

    def __repr__(self) -> str:
        mode = "symmetric" if self.params.symmetric else "affine"
        per = "per-tensor" if self.params.axis is None else f"per-channel (axis {self.params.axis})"
        return f"QuantizedTensor(shape={self.shape}, {mode}, {per})"


def quantize_tensor(x: np.ndarray, symmetric: bool = False, axis: int | None = None) -> QuantizedTensor:
    """Quantize ``x`` with parameters from its own min and max: per tensor, or per channel along
    ``axis`` (each channel's min/max over all the other axes).

    Per-channel parameters record the axis non-negative, ``params.axis == axis % x.ndim``
    (``axis=-1`` of a 2-d x is stored as 1), the form the layers check (a Linear weight is per
    channel on axis 1). Given: ``TypeError`` for an ``axis`` that is not an int or None,
    ``ValueError`` for one outside [-x.ndim, x.ndim), and the errors of ``check_float_data``.

    Example: a Linear weight (in, out) quantized per output channel is
    ``quantize_tensor(w, symmetric=True, axis=1)``: ``out`` scales, each from one column.
    """
    x = check_float_data(x, "quantize_tensor: x")
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
        raise TypeError(f"quantize_tensor: axis must be an int or None, got {type(axis).__name__} {axis!r}")
    if axis is not None and not -x.ndim <= axis < x.ndim:
        raise ValueError(f"quantize_tensor: axis {axis} is out of range for shape {x.shape}")
    raise NotImplementedError(
        "quantize_tensor (module 17, quantization): "
        "implement it in katas/quantization/qparams.py"
    )
