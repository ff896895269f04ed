"""Module 17 (quantization): INT8 parameters, quantize/dequantize, calibration, int8 layers
through the backend, and quantized zoo models.

Every test here fails on the untouched stubs (katas/quantization) and passes on the reference
(solutions/quantization). Speed is not tested: `tinytorch bench quantization` measures it.

One file, whole: it is the module's suite as the registry names it (``tests = ...`` in
tinytorch/course/modules.toml), the file ``tinytorch test quantization`` runs, the grader collects and
the classic mistakes' ``caught_by`` names; it reads in sections, one per task.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import (
    QUANT_FILLS,
    ConvCase,
    QLinearCase,
    QuantArrayCase,
    conv_cases,
    fill_quant_array,
    observed_ranges,
    qlinear_cases,
    quant_arrays,
)
from tinytorch.perf.acceleration import OptimizedBackend, matmul_numpy, operand_kind
from tinytorch.perf.quantization import (
    CHUNK_K,
    EPS,
    MAX_K,
    QMAX,
    QMIN,
    MinMaxObserver,
    PercentileObserver,
    QuantizedConv2d,
    QuantizedLinear,
    QuantizedTensor,
    QuantParams,
    calibrate,
    choose_qparams,
    dequantize,
    int8_backend,
    int8_matmul,
    int8_product,
    quantize,
    quantize_bias,
    quantize_model,
    quantize_tensor,
    weight_bytes,
)

from tinytorch.tensor import Tensor

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23 = 2u, u = 2**-24 the unit roundoff of float32

# The round-trip bound. Rounding to the nearest grid point is off by at most half a step, s / 2.
# float32 adds: x / s, the cast of x to float32 and the product (q - z) * s, each a relative
# error of at most u = eps / 2 on a value of size |x| (together <= 2 eps |x| with room); and the
# scale itself is a float32, so grid point m = q - z sits up to |m| u s <= 255 u s < 128 eps s
# away from the exact one (this matters only at the ends of the range).
GRID_SLACK = 128 * EPS32


def round_trip_bound(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """|dequantize(quantize(x)) - x| <= s / 2 + 128 eps s + 2 eps |x|, elementwise (see above)."""
    x = np.abs(x.astype(np.float64))
    s = scale.astype(np.float64)
    return s / 2 + GRID_SLACK * s + 2 * EPS32 * x


def per_tensor(lo: float, hi: float, symmetric: bool = False) -> QuantParams:
    return choose_qparams(lo, hi, symmetric=symmetric)


# --------------------------------------------------------------------------------------------
# Quantization parameters: the worked example, 0 exactly representable, the scale floor
# --------------------------------------------------------------------------------------------


def test_choose_qparams_worked_example() -> None:
    # [-1, 3]: s = 4 / 255, z = -128 - round(-1 / s) = -128 - round(-63.75) = -64.
    p = choose_qparams(-1.0, 3.0)
    assert p.scale.dtype == np.float32, f"scale dtype {p.scale.dtype}, expected float32"
    assert p.zero_point.dtype == np.int32, f"zero point dtype {p.zero_point.dtype}, expected int32"
    assert p.axis is None, f"axis of per-tensor parameters is {p.axis}, expected None"
    assert not p.symmetric, "choose_qparams(-1.0, 3.0) is affine, its parameters say symmetric"
    # rtol 1e-7: the float32 scale is within half an ulp (2**-24 relative) of 4 / 255
    np.testing.assert_allclose(float(p.scale), 4 / 255, rtol=1e-7, err_msg="scale of [-1, 3]")
    assert int(p.zero_point) == -64, f"zero point of [-1, 3] is {int(p.zero_point)}, expected -64"
    # symmetric: s = max(|-1|, |3|) / 127, z = 0
    s = choose_qparams(-1.0, 3.0, symmetric=True)
    np.testing.assert_allclose(float(s.scale), 3 / 127, rtol=1e-7, err_msg="symmetric scale of [-1, 3]")
    assert int(s.zero_point) == 0, f"symmetric zero point of [-1, 3] is {int(s.zero_point)}, expected 0"
    assert s.symmetric, "choose_qparams(..., symmetric=True) gave parameters that say affine"


def test_the_zero_point_comes_from_the_float32_scale() -> None:
    # [-1, 1]: the stored scale float32(2 / 255) = 0.0078431377 lies a little above 2 / 255, so
    # -1 / s = -127.4999925 rounds to -127 and z = -128 - (-127) = -1. From the float64 2 / 255,
    # -1 / s would be -127.5, rounded half to even to -128, and z = 0: the zero point of a grid
    # that is not the one stored.
    p = choose_qparams(-1.0, 1.0)
    assert float(p.scale) == float(np.float32(2 / 255)), f"scale of [-1, 1] is {float(p.scale)!r}"
    assert int(p.zero_point) == -1, (
        f"zero point of [-1, 1] is {int(p.zero_point)}, expected -1 (from the float32 scale)"
    )
    q = quantize(np.array([-1.0, 0.0, 1.0], np.float32), p)
    np.testing.assert_array_equal(q, [-128, -1, 126], err_msg="quantize of [-1, 0, 1] on the [-1, 1] grid")


def test_choose_qparams_records_the_channel_axis() -> None:
    # 1-d ranges give one (scale, zero point) per channel; axis (default 0) is recorded as the
    # axis of the data the channels lie along. Scalar ranges are per tensor whatever axis says.
    lo, hi = np.array([-1.0, 0.0, 2.0]), np.array([3.0, 0.0, 5.0])
    p = choose_qparams(lo, hi)
    assert p.axis == 0, f"axis of per-channel parameters by default is {p.axis}, expected 0"
    assert p.scale.shape == (3,), f"per-channel scale shape {p.scale.shape}, expected (3,)"
    for axis in (1, np.int64(2), -1):
        q = choose_qparams(lo, hi, symmetric=True, axis=axis)
        assert q.axis == axis, f"choose_qparams(..., axis={axis!r}) recorded axis {q.axis}"
        assert q.symmetric, f"choose_qparams(..., symmetric=True, axis={axis!r}) says affine"
    np.testing.assert_array_equal(
        choose_qparams(lo, hi, axis=1).zero_point, p.zero_point, err_msg="zero points with axis=1"
    )
    assert choose_qparams(-1.0, 3.0, axis=1).axis is None, "a scalar range gave per-channel parameters"
    for bad in (1.0, True, None, "0"):
        with pytest.raises(TypeError, match="choose_qparams: axis must be an int"):
            choose_qparams(lo, hi, axis=bad)


@given(observed_ranges(), st.booleans())
@example((2.0, 10.0), False)  # entirely above 0: the range must be widened to [0, 10]
@example((-10.0, -2.0), False)  # entirely below 0
@example((5.0, 5.0), False)  # a constant
@example((0.0, 0.0), False)  # all zeros: the scale floor
@example((1e-30, 1e-30), True)
@example((3.0, 1e4), False)
def test_zero_is_exactly_representable(lo_hi, symmetric) -> None:
    p = per_tensor(*lo_hi, symmetric=symmetric)
    q = quantize(np.zeros(5, np.float32), p)
    assert q.dtype == np.int8, f"quantize returned dtype {q.dtype}, expected int8"
    np.testing.assert_array_equal(
        q,
        np.full(5, int(p.zero_point), np.int8),
        err_msg=f"quantize(0.0) for range {lo_hi}: not the zero point",
    )
    assert np.all(dequantize(q, p) == 0.0), f"0.0 comes back as {dequantize(q, p)[0]} for range {lo_hi}"
    assert QMIN <= int(p.zero_point) <= QMAX, f"zero point {int(p.zero_point)} of {lo_hi} is not in int8"
    # the floor: never 0, even for a range of width 0
    assert float(p.scale) >= EPS, f"scale {float(p.scale)!r} of {lo_hi} is below the floor EPS"


@given(observed_ranges(), st.booleans())
@example((2.0, 10.0), False)
@example((0.0, 0.0), False)
@example((-1e-30, 0.0), False)
def test_the_range_is_covered_with_the_smallest_scale(lo_hi, symmetric) -> None:
    # The widened range [min(lo, 0), max(hi, 0)] fits in the 256 levels (127 each side when
    # symmetric), and no larger scale is used than needed (unless the floor applies).
    lo, hi = lo_hi
    p = per_tensor(lo, hi, symmetric)
    s = float(p.scale)
    lo0, hi0 = min(lo, 0.0), max(hi, 0.0)
    width = 2 * max(-lo0, hi0) / 254 if symmetric else (hi0 - lo0) / 255
    # rel 1e-6: the float32 scale is the float64 quotient rounded once (2**-24 relative)
    assert s == pytest.approx(max(width, EPS), rel=1e-6), (
        f"scale {s!r} of {lo_hi}, expected {max(width, EPS)!r}"
    )


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        # s = 1, z = 0 from the range [-128, 127]: quantize is round-half-to-even of x itself
        ([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], [0, 2, 2, 0, -2, -2]),
        ([0.49, 0.51, 1.7, -1.7, 126.6], [0, 1, 2, -2, 127]),
    ],
    ids=["ties-to-even", "nearest"],
)
def test_rounding_is_to_nearest_half_to_even(x, expected) -> None:
    p = choose_qparams(-128.0, 127.0)
    assert float(p.scale) == 1.0, f"scale of [-128, 127] is {float(p.scale)!r}, expected 1.0"
    assert int(p.zero_point) == 0, f"zero point of [-128, 127] is {int(p.zero_point)}, expected 0"
    np.testing.assert_array_equal(
        quantize(np.array(x, np.float32), p),
        np.array(expected, np.int8),
        err_msg=f"quantize({x}) with s = 1, z = 0",
    )


def test_the_zero_point_is_added_after_rounding() -> None:
    # q = round(x / s) + z: the tie goes to the even neighbour of x / s, whatever z is. The range
    # [-127, 128] gives s = 1 and an odd zero point, z = -128 - round(-127) = -1; rounding
    # x / s + z instead would send each tie to the odd neighbour of x / s.
    p = choose_qparams(-127.0, 128.0)
    assert float(p.scale) == 1.0, f"scale of [-127, 128] is {float(p.scale)!r}, expected 1.0"
    assert int(p.zero_point) == -1, f"zero point of [-127, 128] is {int(p.zero_point)}, expected -1"
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 100.5], np.float32)
    np.testing.assert_array_equal(
        quantize(x, p),
        np.array([0, 2, 2, 0, -2, 100], np.int8) - 1,
        err_msg=f"quantize({x}) with s = 1, z = -1",
    )


# --------------------------------------------------------------------------------------------
# quantize / dequantize: round trip, monotone, clamping, int8 storage
# --------------------------------------------------------------------------------------------


@given(quant_arrays(), st.booleans())
@example(QuantArrayCase((7,), "constant", 1), False)  # a constant never collapses to 0
@example(QuantArrayCase((7,), "constant", 2), True)
@example(QuantArrayCase((3, 4), "zeros"), False)
@example(QuantArrayCase((5,), "positive", 3), False)
@example(QuantArrayCase((5,), "negative", 4), False)
@example(QuantArrayCase((2, 3), "tiny", 5), True)
@example(QuantArrayCase((6, 6), "large", 6), False)
def test_round_trip_error_is_at_most_half_a_step(case: QuantArrayCase, symmetric: bool) -> None:
    x = case.array()
    p = per_tensor(float(x.min()), float(x.max()), symmetric)
    q = quantize(x, p)
    assert q.dtype == np.int8, f"quantize returned dtype {q.dtype}, expected int8"
    assert q.shape == x.shape, f"quantize returned shape {q.shape} for x of shape {x.shape}"
    x_hat = dequantize(q, p)
    assert x_hat.dtype == np.float32, f"dequantize returned dtype {x_hat.dtype}, expected float32"
    assert x_hat.shape == x.shape, f"dequantize returned shape {x_hat.shape} for q of shape {x.shape}"
    err = np.abs(x_hat.astype(np.float64) - x)
    bound = round_trip_bound(x, p.scale)
    worst = int(np.argmax(err - bound))
    assert np.all(err <= bound), (
        f"{case.fill}: |x_hat - x| = {err.flat[worst]:.3g} > bound {bound.flat[worst]:.3g} "
        f"at x = {x.flat[worst]!r} (scale {float(p.scale):.3g}, zero point {int(p.zero_point)})"
    )
    if case.fill == "constant":  # a nonzero constant comes back nonzero, with its sign
        assert np.all(np.sign(x_hat) == np.sign(x)), (
            f"the constant {x.flat[0]!r} comes back as {x_hat.flat[0]!r}"
        )


@given(observed_ranges(), st.booleans())
@example((2.0, 10.0), False)
@example((0.0, 0.0), True)
def test_every_integer_survives_dequantize_then_quantize(lo_hi, symmetric) -> None:
    # quantize(dequantize(k)) == k for all 256 integers: the grid points are fixed points.
    p = per_tensor(*lo_hi, symmetric=symmetric)
    k = np.arange(QMIN, QMAX + 1).astype(np.int8)
    np.testing.assert_array_equal(
        quantize(dequantize(k, p), p), k, err_msg=f"quantize(dequantize(k)) for range {lo_hi}: not k"
    )


@given(observed_ranges(), st.lists(st.floats(-1e6, 1e6, width=32), min_size=2, max_size=40))
@example((0.0, 1.0), [0.0, 0.001, 0.002, 0.5, 0.9999, 1.0, 2.0, -1.0])
def test_quantize_is_monotone(lo_hi, values) -> None:
    p = per_tensor(*lo_hi)
    x = np.sort(np.array(values, np.float32))
    q = quantize(x, p).astype(np.int32)
    assert np.all(np.diff(q) >= 0), f"quantize is not monotone on {x} -> {q}"


@given(observed_ranges(), st.booleans())
@example((-1.0, 1.0), False)
@example((2.0, 10.0), False)
def test_values_outside_the_range_clamp_to_the_ends(lo_hi, symmetric) -> None:
    lo, hi = lo_hi
    p = per_tensor(lo, hi, symmetric)
    s = float(p.scale)
    lo0, hi0 = min(lo, 0.0), max(hi, 0.0)
    far = np.array([lo0 - 1000 * s - 1.0, -3e38, hi0 + 1000 * s + 1.0, 3e38], np.float32)
    q = quantize(far, p)
    assert q.dtype == np.int8, f"quantize returned dtype {q.dtype}, expected int8"
    np.testing.assert_array_equal(
        q,
        np.array([QMIN, QMIN, QMAX, QMAX], np.int8),
        err_msg=f"quantize of {far} outside {lo_hi}: not clamped",
    )


@given(quant_arrays(max_dims=3, fills=QUANT_FILLS), st.booleans(), st.data())
@example(QuantArrayCase((4, 3), "outlier", 1), True, None)
@example(QuantArrayCase((3, 2), "zeros"), False, None)
def test_per_channel_scales_never_exceed_the_per_tensor_scale(case, symmetric, data) -> None:
    x = case.array()
    axis = 0 if data is None else data.draw(st.integers(-x.ndim, x.ndim - 1))
    whole = quantize_tensor(x, symmetric=symmetric)
    channels = quantize_tensor(x, symmetric=symmetric, axis=axis)
    assert channels.params.axis == axis % x.ndim, (
        f"quantize_tensor(axis={axis}) recorded axis {channels.params.axis}, expected {axis % x.ndim}"
    )
    assert channels.params.scale.shape == (x.shape[axis],), (
        f"per-channel scale shape {channels.params.scale.shape} for x {x.shape}, axis {axis}"
    )
    assert np.all(channels.params.scale <= whole.params.scale), (
        f"per-channel scales {channels.params.scale} exceed the per-tensor one {float(whole.params.scale)!r}"
    )
    # and each channel keeps its own round-trip bound
    scale = np.expand_dims(channels.params.scale, [i for i in range(x.ndim) if i != axis % x.ndim])
    err = np.abs(channels.dequantize().astype(np.float64) - x)
    bound = round_trip_bound(x, scale)
    assert np.all(err <= bound), (
        f"per-channel |x_hat - x| exceeds its bound by {float((err - bound).max()):.3g}"
    )


def test_per_channel_parameters_follow_each_channel() -> None:
    # column 0 lies in [0, 1], column 1 in [-100, 155]: per channel, column 0 keeps its precision
    x = np.array([[0.0, -100.0], [0.4, 155.0], [1.0, 3.0]], np.float32)
    qt = quantize_tensor(x, axis=1)
    # rtol 1e-6: each float32 scale is its float64 quotient rounded once (2**-24 relative)
    np.testing.assert_allclose(qt.params.scale, [1 / 255, 1.0], rtol=1e-6, err_msg="affine per-column scales")
    np.testing.assert_array_equal(  # -128 - round(-100 / 1)
        qt.params.zero_point, [-128, -28], err_msg="affine per-column zero points"
    )
    np.testing.assert_array_equal(  # 0.4 * 255 = 102
        qt.data, [[-128, -128], [-26, 127], [127, -25]], err_msg="affine per-column int8 values"
    )
    # half a step of column 0 (s = 1/255), plus float32 rounding of values <= 1 (1e-7 > 2 eps)
    np.testing.assert_allclose(
        qt.dequantize()[:, 0], x[:, 0], atol=0.5 / 255 + 1e-7, err_msg="column 0 after the round trip"
    )
    sym = quantize_tensor(x, symmetric=True, axis=1)
    np.testing.assert_allclose(
        sym.params.scale, [1 / 127, 155 / 127], rtol=1e-6, err_msg="symmetric per-column scales"
    )
    np.testing.assert_array_equal(sym.data, [[0, -82], [51, 127], [127, 2]], err_msg="symmetric int8 values")
    # a negative axis is recorded non-negative: axis=-1 of a 2-d array is axis 1
    last = quantize_tensor(x, symmetric=True, axis=-1)
    assert last.params.axis == 1, f"quantize_tensor(x, axis=-1) recorded axis {last.params.axis}, expected 1"
    np.testing.assert_array_equal(last.data, sym.data, err_msg="int8 values with axis=-1 and axis=1")


def test_quantized_tensor_is_real_int8_and_declares_its_kind() -> None:
    x = np.linspace(-3, 5, 48, dtype=np.float32).reshape(6, 8)
    qt = quantize_tensor(x)
    assert isinstance(qt, QuantizedTensor), f"quantize_tensor returned a {type(qt).__name__}"
    assert qt.kind == "int8", f"QuantizedTensor.kind is {qt.kind!r}"
    # module 16's dispatch reads the declared kind
    assert operand_kind(qt) == "int8", f"operand_kind of a QuantizedTensor is {operand_kind(qt)!r}"
    assert qt.data.dtype == np.int8, f"QuantizedTensor data dtype {qt.data.dtype}, expected int8"
    assert qt.shape == (6, 8), f"QuantizedTensor shape {qt.shape}, expected (6, 8)"
    assert qt.nbytes == x.size == x.nbytes // 4, f"{qt.nbytes} bytes for {x.size} values: not one byte each"
    # the whole range is used: the minimum maps to -128, the maximum to 127
    assert (int(qt.data.min()), int(qt.data.max())) == (QMIN, QMAX), (
        f"int8 values span [{qt.data.min()}, {qt.data.max()}], expected [{QMIN}, {QMAX}]"
    )
    with pytest.raises(TypeError, match="int8"):
        QuantizedTensor(qt.data.astype(np.float32), qt.params)


def test_quant_params_are_converted_checked_once_and_frozen() -> None:
    # QuantParams (given) stores float32 / int32 arrays whatever it is given, defaults to per
    # tensor and affine, and cannot be changed after its checks ran.
    made = choose_qparams(0.0, 2.0)
    p = QuantParams(0.5, np.int64(3))
    assert isinstance(p.scale, np.ndarray) and p.scale.dtype == np.float32, f"scale stored as {p.scale!r}"
    assert p.zero_point.dtype == np.int32, f"zero point stored as dtype {p.zero_point.dtype}, not int32"
    assert (p.axis, p.symmetric) == (None, False), f"defaults axis={p.axis}, symmetric={p.symmetric}"
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.axis = 0
    # a negative channel axis counts from the end: axis -2 of a (3, 2) array is axis 0
    x = np.array([[0.0, 1.0], [-2.0, 2.0], [0.5, 4.0]], np.float32)
    rows = choose_qparams(x.min(axis=1), x.max(axis=1))
    from_end = QuantParams(rows.scale, rows.zero_point, axis=-2)
    q = quantize(x, from_end)
    np.testing.assert_array_equal(q, quantize(x, rows), err_msg="quantize with axis -2 and with axis 0")
    np.testing.assert_array_equal(
        dequantize(q, from_end), dequantize(q, rows), err_msg="dequantize with axis -2 and with axis 0"
    )


# --------------------------------------------------------------------------------------------
# Bad input: clear errors naming the function and the value
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (np.array([1.0, np.nan], np.float32), ValueError, "quantize.*NaN or inf"),
        (np.array([np.inf, 0.0], np.float32), ValueError, "quantize.*NaN or inf"),
        (np.zeros((0, 3), np.float32), ValueError, "quantize.*empty"),
        (np.array([1, 2, 3], np.int64), TypeError, "quantize.*float.*int64"),
        (np.array([True, False]), TypeError, "quantize.*float.*bool"),
        (np.array([1, 2], np.int8), TypeError, "quantize.*float.*int8"),
    ],
    ids=["nan", "inf", "empty", "int64", "bool", "int8-as-float"],
)
def test_quantize_rejects_bad_data(bad, error, match) -> None:
    p = choose_qparams(-1.0, 1.0)
    good = quantize(np.array([0.0, 1.0], np.float32), p)
    assert good.dtype == np.int8, f"quantize of good data returned dtype {good.dtype}, expected int8"
    with pytest.raises(error, match=match):
        quantize(bad, p)


@pytest.mark.parametrize(
    ("lo", "hi", "match"),
    [
        (3.0, 1.0, r"choose_qparams: min_val > max_val \(3.0 > 1.0\)"),
        (float("nan"), 1.0, "choose_qparams.*finite"),
        (0.0, float("inf"), "choose_qparams.*finite"),
    ],
)
def test_choose_qparams_rejects_bad_ranges(lo, hi, match) -> None:
    z = int(choose_qparams(1.0, 3.0).zero_point)
    assert z == -128, f"zero point of [1, 3] (widened to [0, 3]) is {z}, expected -128"
    with pytest.raises(ValueError, match=match):
        choose_qparams(lo, hi)


def test_dequantize_rejects_a_non_int8_array() -> None:
    p = choose_qparams(-1.0, 1.0)
    good = dequantize(np.array([0], np.int8), p)
    assert good.dtype == np.float32, f"dequantize of int8 data returned dtype {good.dtype}, expected float32"
    with pytest.raises(TypeError, match="dequantize.*int8"):
        dequantize(np.array([0, 1], np.int32), p)


# --------------------------------------------------------------------------------------------
# The int8 kernel: int32 accumulation, the K bound, registered on module 16's backend
# --------------------------------------------------------------------------------------------


class Spy:
    """Wraps a kernel and counts its calls, remembering the kinds of its operands."""

    def __init__(self, kernel):
        self.kernel, self.calls, self.kinds = kernel, 0, []

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.kinds.append(tuple(operand_kind(a) for a in args[:2]))
        return self.kernel(*args, **kwargs)


def test_int8_matmul_accumulates_in_int32() -> None:
    K = 300
    A = np.full((3, K), 127, np.int8)
    B = np.full((K, 2), -128, np.int8)
    C = int8_matmul(A, B)
    # 127 * -128 * 300 = -4,876,800: far beyond int8 and int16, well inside int32
    assert C.dtype == np.int32, f"int8_matmul returned dtype {C.dtype}, expected int32"
    np.testing.assert_array_equal(C, np.full((3, 2), 127 * -128 * K), err_msg="int8_matmul of 127s by -128s")
    # QuantizedTensor operands: their int8 values are multiplied
    qa, qb = QuantizedTensor(A, choose_qparams(-1.0, 1.0)), QuantizedTensor(B, choose_qparams(-1.0, 1.0))
    np.testing.assert_array_equal(int8_matmul(qa, qb), C, err_msg="int8_matmul of QuantizedTensors")


@given(st.integers(0, 12), st.integers(0, 2 * 1024 + 60), st.integers(0, 12), st.integers(0, 2**32 - 1))
@example(1, 1, 1, 0)  # K = 1
@example(2, 600, 3, 1)  # one chunk, shorter than CHUNK_K
@example(3, 1025, 2, 2)  # a full chunk and a chunk of one
@example(0, 5, 3, 4)  # no rows: an empty (0, 3) result
@example(3, 5, 0, 5)  # no columns
@example(2, 0, 3, 7)  # K = 0: a sum of no terms, all zeros
def test_int8_matmul_is_exact(m, k, n, seed) -> None:
    rng = np.random.default_rng(seed)
    A = rng.integers(QMIN, QMAX + 1, (m, k)).astype(np.int8)
    B = rng.integers(QMIN, QMAX + 1, (k, n)).astype(np.int8)
    if seed % 3 == 0:  # the extremes, where narrow accumulators overflow first
        A[:], B[:] = QMIN, QMIN
    C = int8_matmul(A, B)
    assert C.dtype == np.int32, f"int8_matmul returned dtype {C.dtype}, expected int32"
    assert C.shape == (m, n), f"int8_matmul of ({m}, {k}) @ ({k}, {n}) has shape {C.shape}"
    np.testing.assert_array_equal(
        C, A.astype(np.int64) @ B.astype(np.int64), err_msg=f"int8_matmul of ({m}, {k}) @ ({k}, {n})"
    )


def worst_case_operands(k: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 (4, k) and (k, 4) operands whose exact products float32 cannot always hold.

    Every row of A and column of B has one sign, so every partial sum of an entry grows in one
    direction. Entries: (0, 0) = 127 * 127 * k, odd for odd k; (1, 1) = 2**14 k, the largest
    magnitude (2**24 exactly at k = CHUNK_K); (2, 0) = -127 * 127 * k; (0, 2) = 127 * 127 (k - 1)
    + 127 * 126, odd for every k; (3, 3) = 2**14 (k - 1) + 127 * 127 for k > 1024: one odd term
    after 1024 terms of 2**14, so a chunk of 1025 sums to 2**24 + 16129, odd.
    """
    A = np.empty((4, k), np.int8)
    A[0], A[1], A[2], A[3] = 127, -128, -127, -128
    B = np.empty((k, 4), np.int8)
    B[:, 0], B[:, 1], B[:, 2], B[:, 3] = 127, -128, 127, -128
    B[0, 2] = 126
    if k > 1024:
        A[3, 1024], B[1024, 3] = -127, -127
    return A, B


@pytest.mark.parametrize("k", [1023, 1024, 1025, 2048, 4097])
def test_int8_matmul_is_exact_on_the_worst_case_at_every_chunk_boundary(k) -> None:
    # float32 has a 24-bit significand: every integer of magnitude <= 2**24 is exact, 2**24 + 1 is
    # not. Each int8 product is at most 128 * 128 = 2**14, so a chunk of 1024 terms sums to at most
    # 2**24: CHUNK_K is the largest chunk whose every partial sum is exact.
    assert CHUNK_K == 1024 and CHUNK_K * 128 * 128 == 2**24, f"CHUNK_K = {CHUNK_K}, expected 2**24 / 2**14"
    assert float(np.float32(2**24 + 1)) != 2**24 + 1, "2**24 + 1 is a float32: the premise fails"
    # K just below, at and past a chunk boundary (1024), at two chunks and past four: all +127 /
    # -128 values with sign-matched rows. One float32 product over the whole K (or over chunks of
    # 2048 or of 1025, or chunks added in float32) must round an entry here: each such entry's
    # exact value is checked below not to be a float32.
    A, B = worst_case_operands(k)
    expected = A.astype(np.int64) @ B.astype(np.int64)
    inexact = {4097: (0, 0), 2048: (0, 2), 1025: (3, 3)}
    if k in inexact:  # the test's premise: the exact sum is not a float32
        v = int(expected[inexact[k]])
        assert int(np.float32(v)) != v, f"the sum {v} at K = {k} is a float32: the case is not a trap"
    C = int8_matmul(A, B)
    assert C.dtype == np.int32, f"int8_matmul returned dtype {C.dtype}, expected int32"
    np.testing.assert_array_equal(C, expected, err_msg=f"int8_matmul of the worst case at K = {k}")


def test_int8_matmul_refuses_k_beyond_the_int32_bound() -> None:
    # Each product is at most 128 * 128 = 2**14 in magnitude, so K * 2**14 < 2**31 for K <= MAX_K.
    assert MAX_K * 128 * 128 < 2**31 <= (MAX_K + 1) * 128 * 128, f"MAX_K = {MAX_K} is not the int32 bound"
    A = np.full((1, MAX_K), QMIN, np.int8)
    B = np.full((MAX_K, 1), QMIN, np.int8)
    largest = int(int8_matmul(A, B)[0, 0])  # the largest sum still fits, exactly
    assert largest == MAX_K * 128 * 128, (
        f"int8_matmul at K = MAX_K gives {largest}, expected {MAX_K * 128 * 128}"
    )
    too_long = np.zeros((1, MAX_K + 1), np.int8)
    with pytest.raises(ValueError, match=r"K = 131072.*2\*\*31"):
        int8_matmul(too_long, np.zeros((MAX_K + 1, 1), np.int8))


def test_int8_matmul_is_exact_where_float32_is_not() -> None:
    # float32 holds every integer only up to 2**24; between 2**25 and 2**26 its spacing is 4. Row
    # sums of K = 4096 products near 127 * 127 reach 6.6e7, so a float32 accumulator (the operands
    # cast to float32 for BLAS) rounds the odd sum below; int32 is exact (K * 2**14 < 2**31).
    K = 4096
    A = np.full((2, K), 127, np.int8)
    B = np.full((K, 3), 127, np.int8)
    B[::2, 1] = -127
    B[1::3, 2] = 126
    expected = A.astype(np.int64) @ B.astype(np.int64)
    # the test's own premise: an odd sum above 2**25, not a float32 number
    assert expected[0, 2] == 65_891_029 and expected[0, 2] % 4 == 1, f"the exact sum is {expected[0, 2]}"
    np.testing.assert_array_equal(int8_matmul(A, B), expected, err_msg="int8_matmul with sums above 2**25")


def test_int8_matmul_rejects_bad_operands() -> None:
    A = np.ones((2, 3), np.int8)
    np.testing.assert_array_equal(int8_matmul(A, A.T), np.full((2, 2), 3), err_msg="int8_matmul of ones")
    with pytest.raises(TypeError, match="int8"):
        int8_matmul(A.astype(np.float32), A.T)
    with pytest.raises(ValueError, match="inner dimensions"):
        int8_matmul(A, A)


def test_int8_backend_registers_the_kernel_on_the_acceleration_backend() -> None:
    backend = int8_backend()
    assert isinstance(backend, OptimizedBackend), f"int8_backend returned a {type(backend).__name__}"
    supported = backend.supported()
    assert ("matmul", "int8") in supported, f"the backend's kernels {supported} lack ('matmul', 'int8')"
    assert ("matmul", "dense") in supported, f"the backend's kernels {supported} lack ('matmul', 'dense')"
    A = np.full((2, 300), 100, np.int8)
    kernel = backend.kernel_for("matmul", A, A.T)
    assert kernel is int8_matmul, f"the kernel for int8 operands is {kernel!r}, not int8_matmul itself"
    np.testing.assert_array_equal(
        backend.dispatch("matmul", A, A.T),
        np.full((2, 2), 100 * 100 * 300),
        err_msg="dispatched int8 product",
    )
    dense = np.ones((2, 2), np.float32)
    kernel = backend.kernel_for("matmul", dense, dense)  # dense stays BLAS
    assert kernel is matmul_numpy, f"the kernel for float32 operands is {kernel!r}, not matmul_numpy"


class FixedProduct:
    """A backend whose ("matmul", "int8") product is a given int32 array: tests the epilogue alone."""

    def __init__(self, acc: np.ndarray) -> None:
        self.acc = acc

    def dispatch(self, op, *args):
        return self.acc.copy()


@pytest.mark.parametrize("seed", range(6))
def test_int8_product_epilogue_stays_within_its_rounding_bound(seed) -> None:
    # y = s_x s_n (acc - z_x colsum + b_q), folded into float32 as acc * S + S c: four roundings
    # of relative size u = 2**-24 each (the casts of acc, S and S c, the product, the sum), so
    # |y - y*| <= 5 u S (|acc| + |c|) with y* computed exactly (int64 sum, float64 product of
    # float32 scales, exact in 48 bits, and the float64 product by an integer below 2**33, error
    # 2**-53 relative). The accumulators reach the int32 range, where a float32 cast rounds.
    rng = np.random.default_rng(seed)
    m, k, n = 5, 3, 7
    acc = rng.integers(-(2**31) + 1, 2**31, (m, n)).astype(np.int32)
    acc[0] = rng.integers(-300, 300, n)  # small sums too, where the bias and zero point dominate
    zx = [-128, 0, 37, 127, -5, -128][seed]
    colsum = rng.integers(-127 * 4000, 127 * 4000, n).astype(np.int32)
    bias_q = None if seed == 1 else rng.integers(-(2**31), 2**31, n).astype(np.int32)
    if bias_q is not None and zx != 0:  # c = b_q - z_x colsum beyond int32: c must be summed wider
        bias_q[-1], colsum[-1] = 2**31 - 1, -np.sign(zx) * 127 * 4000
    s_x = np.float32(rng.uniform(1e-4, 1.0))
    s_n = rng.uniform(1e-4, 1.0, n).astype(np.float32)
    qx = QuantizedTensor(np.zeros((m, k), np.int8), QuantParams(s_x, zx))
    w_params = QuantParams(s_n, np.zeros(n, np.int32), axis=1, symmetric=True)
    weight = QuantizedTensor(np.zeros((k, n), np.int8), w_params)
    y = int8_product(qx, weight, colsum, bias_q, FixedProduct(acc))
    assert y.dtype == np.float32, f"int8_product returned dtype {y.dtype}, expected float32"
    assert y.shape == (m, n), f"int8_product returned shape {y.shape}, expected {(m, n)}"
    S = np.float64(s_x) * s_n.astype(np.float64)
    c = -zx * colsum.astype(np.int64) + (0 if bias_q is None else bias_q.astype(np.int64))
    exact = S * (acc.astype(np.int64) + c)
    bound = 5 * 2.0**-24 * S * (np.abs(acc.astype(np.float64)) + np.abs(c))
    err = np.abs(y.astype(np.float64) - exact)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), (
        f"int8_product output error {err[worst]:.4g} > bound {bound[worst]:.4g} at {worst} "
        f"(acc {acc[worst]}, z_x {zx}, bias {'none' if bias_q is None else bias_q[worst[1]]})"
    )


# --------------------------------------------------------------------------------------------
# Quantized layers: error bounds derived from the scales, int8 storage, the int8 dispatch
# --------------------------------------------------------------------------------------------


def _linear(w: np.ndarray, b: np.ndarray | None):
    from tinytorch.layers import Linear

    layer = Linear(w.shape[0], w.shape[1], bias=b is not None)
    layer.weight.data[...] = w
    if b is not None:
        layer.bias.data[...] = b
    return layer


def quantized_product_bound(x_cols, w2, b, input_params, weight_scale):
    """Elementwise bound on |quantized layer - float layer| for y = x_cols @ w2 + b.

    With x_hat = x + dx, w_hat = w + dw: x_hat w_hat - x w = dx w_hat + x dw, so
    |error| <= e_x * sum_k |w_hat[k, n]| + sum_k |x[m, k]| * e_w[n] + |b_hat - b| + rounding,
    e_x, e_w the round-trip bounds of input and weights (x inside its calibrated range), the bias
    rounded to an integer at scale s_x s_n (<= s_x s_n / 2), and the float32 epilogue: at most
    5 u S (|acc| + |c|) (int8_product's docstring, u = 2**-24, S = s_x s_n), where |x_q| <= 128 and
    s_n |w_q| = |w_hat| give S (|acc| + |c|) <= 256 s_x sum_k |w_hat| + |b| + S / 2; plus
    2 eps (|y| + bound) of room for the float64 arithmetic of this bound and reference.
    """
    x = x_cols.astype(np.float64)
    w = w2.astype(np.float64)
    sx = float(input_params.scale)
    sw = weight_scale.astype(np.float64)  # (N,)
    e_x = round_trip_bound(x, np.float32(sx))  # (M, K)
    e_w = round_trip_bound(w, sw.astype(np.float32)[None, :])  # (K, N)
    w_hat = np.abs(w) + e_w
    bound = e_x @ w_hat + np.abs(x) @ e_w + sx * sw / 2
    b_abs = 0 if b is None else np.abs(b.astype(np.float64))
    epilogue = 5 * 2.0**-24 * (256 * sx * w_hat.sum(axis=0) + b_abs + sx * sw / 2)  # (N,)
    y = x @ w + (0 if b is None else b.astype(np.float64))
    return bound + epilogue + 2 * EPS32 * (np.abs(y) + bound), y


@given(qlinear_cases())
@example(QLinearCase(4, 16, 5, fill="positive", seed=1))  # a ReLU output: z_x = -128, the correction matters
@example(QLinearCase(1, 1, 1, fill="constant", seed=2))
@example(QLinearCase(3, 7, 2, fill="zeros", bias=True, seed=3))
@example(QLinearCase(5, 24, 6, fill="negative", weight_fill="positive", seed=4))
@example(QLinearCase(8, 20, 3, fill="large", weight_fill="mixed_scale", seed=5))
@example(QLinearCase(6, 9, 4, fill="normal", weight_fill="zeros", seed=6))  # all-zero weight columns
def test_quantized_linear_stays_within_the_error_bound(case: QLinearCase) -> None:
    x, w, b = case.arrays()
    params = choose_qparams(float(x.min()), float(x.max()))  # calibrated on this very input
    layer = QuantizedLinear.from_float(_linear(w, b), params)
    y = layer(x).data
    assert y.dtype == np.float32, f"QuantizedLinear output dtype {y.dtype}, expected float32"
    assert y.shape == (case.m, case.n), f"QuantizedLinear output shape {y.shape}, expected {(case.m, case.n)}"
    bound, exact = quantized_product_bound(x, w, b, params, layer.weight.params.scale)
    err = np.abs(y.astype(np.float64) - exact)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), (
        f"error {err[worst]:.4g} > bound {bound[worst]:.4g} at {worst} "
        f"(input zero point {int(params.zero_point)}, {case})"
    )


def test_quantized_linear_stores_int8_weights_and_int32_bias() -> None:
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((12, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    params = choose_qparams(0.0, 4.0)
    layer = QuantizedLinear.from_float(_linear(w, b), params)
    weight = layer.weight
    assert weight.data.dtype == np.int8, f"weight data dtype {weight.data.dtype}, expected int8"
    assert weight.shape == (12, 5), f"weight shape {weight.shape}, expected (12, 5)"
    # exactly a quarter of the float32 bytes
    assert weight.nbytes * 4 == w.nbytes, f"weight bytes {weight.nbytes}, float32 bytes {w.nbytes}"
    assert weight.params.symmetric, "the weight's parameters say affine, expected symmetric"
    assert weight.params.axis == 1, f"weight channel axis {weight.params.axis}, expected 1 (output channels)"
    np.testing.assert_array_equal(weight.params.zero_point, 0, err_msg="weight zero points")
    # rtol 1e-6: each float32 scale is its float64 quotient rounded once (2**-24 relative)
    np.testing.assert_allclose(
        weight.params.scale, np.abs(w).max(axis=0) / 127, rtol=1e-6, err_msg="weight per-channel scales"
    )
    assert layer.bias_q.dtype == np.int32, f"bias_q dtype {layer.bias_q.dtype}, expected int32"
    # the bias lives at the accumulator's scale s_x * s_n: b_q = round(b / (s_x s_n))
    acc_scale = float(params.scale) * weight.params.scale.astype(np.float64)
    np.testing.assert_array_equal(
        layer.bias_q, np.rint(b / acc_scale).astype(np.int32), err_msg="bias_q = round(b / (s_x s_n))"
    )
    # leading dimensions are kept, like Linear
    shape = layer(rng.uniform(0, 4, (2, 3, 12)).astype(np.float32)).shape
    assert shape == (2, 3, 5), f"output shape {shape} for an input (2, 3, 12), expected (2, 3, 5)"


def test_quantize_bias_rounds_half_to_even_and_saturates_at_the_int32_range() -> None:
    # b_q = round(b / scale) in int32: ties to even, and a bias beyond the int32 range saturates at
    # its ends instead of wrapping around, by clipping to [-2**31, 2**31 - 1] before the cast (a
    # cast of a value outside int32 is one numpy flags as invalid, its result up to the platform)
    bias = np.array([2.5, 3.5, -2.5, 3e9, -3e9, 1.0], np.float32)
    scale = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.25], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = quantize_bias(bias, scale)
    assert got.dtype == np.int32, f"quantize_bias returned dtype {got.dtype}, expected int32"
    expected = [2, 4, -2, 2**31 - 1, -(2**31), 4]
    np.testing.assert_array_equal(got, expected, err_msg=f"quantize_bias({bias}, {scale})")
    assert quantize_bias(None, scale) is None, "quantize_bias of no bias is not None"


def test_a_zero_weight_channel_keeps_its_bias_in_int32() -> None:
    # A channel whose weights are all 0 would get the floor scale EPS, and its bias b / (s_x EPS)
    # would not fit int32; weight_qparams (given) widens that channel's scale to
    # s_n = |b_n| / (s_x 2**30), so |b_q| is 2**30 up to the float32 rounding of s_n (2**-24
    # relative, and 1 for the rounding to an integer). The output of that channel is its bias.
    w = np.zeros((3, 2), np.float32)
    w[:, 0] = [1.0, -2.0, 0.5]
    b = np.array([0.25, 5.0], np.float32)
    params = choose_qparams(0.0, 1.0)
    layer = QuantizedLinear.from_float(_linear(w, b), params)
    largest = int(np.abs(layer.bias_q.astype(np.int64)).max())
    assert largest <= 2**30 * (1 + 2 * EPS32) + 1, f"|b_q| reaches {largest}, expected at most about 2**30"
    x = np.random.default_rng(16).uniform(0, 1, (4, 3)).astype(np.float32)
    bound, exact = quantized_product_bound(x, w, b, params, layer.weight.params.scale)
    err = np.abs(layer(x).data - exact)
    assert np.all(err <= bound), (
        f"QuantizedLinear output error exceeds its bound by {float((err - bound).max()):.3g}"
    )


def test_quantized_linear_takes_a_single_vector() -> None:
    # x (..., in_features): with no leading axes, a vector (in_features,) gives (out_features,)
    rng = np.random.default_rng(17)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    layer = QuantizedLinear.from_float(_linear(w, None), choose_qparams(0.0, 1.0))
    x = rng.uniform(0, 1, 4).astype(np.float32)
    y = layer(x).data
    assert y.shape == (3,), f"output shape {y.shape} for an input of shape (4,), expected (3,)"
    np.testing.assert_array_equal(
        y, layer(x[None, :]).data[0], err_msg="a vector and the same vector as a row"
    )


def test_quantized_linear_dispatches_one_int8_product() -> None:
    backend = int8_backend()
    int8_spy, dense_spy = Spy(int8_matmul), Spy(matmul_numpy)
    backend.register("matmul", "int8", int8_spy)
    backend.register("matmul", "dense", dense_spy)
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 4)).astype(np.float32)
    params = choose_qparams(-2.0, 2.0)
    layer = QuantizedLinear.from_float(_linear(w, None), params, backend=backend)
    x = rng.uniform(-2, 2, (3, 6)).astype(np.float32)
    y = layer(x).data
    assert int8_spy.calls == 1, f"{int8_spy.calls} int8 products dispatched by one forward, expected 1"
    assert dense_spy.calls == 0, f"{dense_spy.calls} dense products dispatched, expected none"
    # both operands are quantized tensors
    assert int8_spy.kinds == [("int8", "int8")], (
        f"operand kinds {int8_spy.kinds}, expected [('int8', 'int8')]"
    )
    bound, exact = quantized_product_bound(x, w, None, params, layer.weight.params.scale)
    err = np.abs(y - exact)  # x lies inside the calibrated [-2, 2]
    assert np.all(err <= bound), (
        f"QuantizedLinear output error exceeds its bound by {float((err - bound).max()):.3g}"
    )


def test_quantized_layers_keep_their_fixed_input_parameters() -> None:
    # Static quantization: (s_x, z_x) are fixed at calibration, here [0, 1]. An input beyond that
    # range clamps to its ends, so the layer gives exactly (bit for bit: the same integers) what
    # it gives on the clipped input. Quantizing each input with its own min / max (dynamic
    # quantization) would use another grid and give another output.
    from tinytorch.conv import Conv2d

    rng = np.random.default_rng(14)
    params = choose_qparams(0.0, 1.0)
    x = rng.uniform(-0.5, 3.0, (4, 6)).astype(np.float32)
    lin = QuantizedLinear.from_float(_linear(rng.standard_normal((6, 3)).astype(np.float32), None), params)
    np.testing.assert_array_equal(
        lin(x).data, lin(np.clip(x, 0.0, 1.0)).data, err_msg="QuantizedLinear output: input vs clipped input"
    )
    conv = QuantizedConv2d.from_float(Conv2d(2, 3, 3, padding=1, rng=rng), params)
    images = rng.uniform(-0.5, 3.0, (2, 2, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        conv(images).data,
        conv(np.clip(images, 0.0, 1.0)).data,
        err_msg="QuantizedConv2d output: input vs clipped",
    )


def _conv_arrays(case: ConvCase, fill: str, bias: bool):
    rng = np.random.default_rng(case.seed)
    x = fill_quant_array(rng, (case.n, case.c_in, case.h, case.w), fill)
    w = fill_quant_array(rng, (case.c_out, case.c_in, case.kh, case.kw), "normal")
    b = rng.standard_normal(case.c_out).astype(np.float32) if bias else None
    return x, w, b


CONV_FILLS = ("normal", "positive", "negative", "constant", "mixed_scale")


@given(conv_cases(), st.sampled_from(CONV_FILLS), st.booleans())
@example(ConvCase(1, 2, 3, 5, 5, 3, 3, stride=1, padding=1, seed=1), "positive", True)  # pad with z_x
@example(ConvCase(2, 1, 2, 4, 4, 3, 3, stride=2, padding=2, seed=2), "negative", False)
@example(ConvCase(1, 1, 1, 1, 1, 1, 1, seed=3), "constant", True)
def test_quantized_conv2d_stays_within_the_error_bound(case: ConvCase, fill: str, bias: bool) -> None:
    from tinytorch.conv import Conv2d, im2col

    x, w, b = _conv_arrays(case, fill, bias)
    kernel = (case.kh, case.kw)
    conv = Conv2d(case.c_in, case.c_out, kernel, stride=case.stride, padding=case.padding, bias=bias)
    conv.weight.data[...] = w
    if bias:
        conv.bias.data[...] = b
    params = choose_qparams(float(x.min()), float(x.max()))
    layer = QuantizedConv2d.from_float(conv, params)
    assert layer.weight.data.dtype == np.int8, f"weight data dtype {layer.weight.data.dtype}, expected int8"
    assert layer.weight.nbytes * 4 == w.nbytes, (
        f"weight bytes {layer.weight.nbytes}, float32 bytes {w.nbytes}"
    )
    y = layer(x).data
    h_out, w_out = case.out_hw
    expected_shape = (case.n, case.c_out, h_out, w_out)
    assert y.shape == expected_shape, f"QuantizedConv2d output shape {y.shape}, expected {expected_shape}"
    assert y.dtype == np.float32, f"QuantizedConv2d output dtype {y.dtype}, expected float32"
    # The convolution is the product of the zero-padded im2col rows with the (C kh kw, F) matrix.
    cols = im2col(x.astype(np.float64), (case.kh, case.kw), case.stride, case.padding)
    w2 = w.reshape(case.c_out, -1).T
    bound, exact = quantized_product_bound(cols, w2, b, params, layer.weight.params.scale)
    to_nchw = lambda a: a.reshape(case.n, h_out, w_out, case.c_out).transpose(0, 3, 1, 2)  # noqa: E731
    err = np.abs(y.astype(np.float64) - to_nchw(exact))
    assert np.all(err <= to_nchw(bound)), f"max error {err.max():.4g} over the bound ({case}, {fill})"


def test_quantized_conv2d_built_from_its_parts_defaults_to_stride_1_without_padding() -> None:
    # QuantizedConv2d(weight, bias_q, input_params) with stride and padding left out is, like
    # Conv2d's defaults, a stride-1 convolution without padding
    from tinytorch.conv import Conv2d

    params = choose_qparams(0.0, 1.0)
    made = QuantizedConv2d.from_float(Conv2d(2, 3, 3, rng=np.random.default_rng(18)), params)
    built = QuantizedConv2d(made.weight, made.bias_q, params)
    assert (built.stride, built.padding) == (1, 0), f"stride {built.stride}, padding {built.padding}"
    x = np.random.default_rng(19).uniform(0, 1, (1, 2, 5, 5)).astype(np.float32)
    y = built(x).data
    assert y.shape == (1, 3, 3, 3), f"output shape {y.shape} for a 5 x 5 image, expected (1, 3, 3, 3)"
    np.testing.assert_array_equal(
        y, made(x).data, err_msg="built from parts vs from_float of Conv2d(2, 3, 3)"
    )


def test_quantized_conv2d_dispatches_one_int8_product() -> None:
    from tinytorch.conv import Conv2d

    backend = int8_backend()
    spy = Spy(int8_matmul)
    backend.register("matmul", "int8", spy)
    conv = Conv2d(2, 3, 3, padding=1, rng=np.random.default_rng(2))
    layer = QuantizedConv2d.from_float(conv, choose_qparams(0.0, 1.0), backend=backend)
    x = np.random.default_rng(3).uniform(0, 1, (2, 2, 5, 5)).astype(np.float32)
    shape = layer(x).shape
    assert shape == (2, 3, 5, 5), f"QuantizedConv2d output shape {shape}, expected (2, 3, 5, 5)"
    assert spy.calls == 1, f"{spy.calls} int8 products dispatched by one forward, expected 1"
    assert spy.kinds == [("int8", "int8")], f"operand kinds {spy.kinds}, expected [('int8', 'int8')]"


# --------------------------------------------------------------------------------------------
# Calibration: observers and hooks
# --------------------------------------------------------------------------------------------


@given(st.lists(quant_arrays(max_dims=2), min_size=1, max_size=3))
@example([QuantArrayCase((3,), "positive", 1), QuantArrayCase((2, 2), "negative", 2)])
def test_minmax_observer_covers_every_batch(cases) -> None:
    obs = MinMaxObserver()
    arrays = [c.array() for c in cases]
    for a in arrays:
        obs.observe(a)
    expected = (min(float(a.min()) for a in arrays), max(float(a.max()) for a in arrays))
    assert obs.range() == expected, f"MinMaxObserver range {obs.range()}, expected {expected}"
    assert obs.batches == len(arrays), f"MinMaxObserver counted {obs.batches} batches, expected {len(arrays)}"


@given(
    st.lists(quant_arrays(max_dims=2, max_side=30), min_size=1, max_size=3),
    st.sampled_from([90.0, 99.0, 99.99]),
)
def test_percentile_range_lies_inside_the_minmax_range(cases, percentile) -> None:
    mm, pc = MinMaxObserver(), PercentileObserver(percentile)
    for c in cases:
        mm.observe(c.array())
        pc.observe(c.array())
    (lo, hi), (plo, phi) = mm.range(), pc.range()
    assert lo <= plo <= phi <= hi, (
        f"percentile range [{plo}, {phi}] not inside the min/max range [{lo}, {hi}]"
    )


def test_percentile_observer_ignores_an_outlier() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20_000).astype(np.float32)
    x[123] = 1000.0  # one activation in 20,000 far out
    mm, pc = MinMaxObserver(), PercentileObserver(99.99)
    mm.observe(x)
    pc.observe(x)
    assert mm.range()[1] == 1000.0, f"MinMaxObserver maximum {mm.range()[1]}, expected the outlier 1000.0"
    lo, hi = pc.range()
    # the 0.01 % and 99.99 % points of N(0, 1) are -3.72 and 3.72
    assert -5 < lo < -3 and 3 < hi < 5, f"PercentileObserver(99.99) range [{lo}, {hi}], expected about +-3.7"
    bulk = np.abs(x) < 3
    err = {}
    for name, obs in (("minmax", mm), ("percentile", pc)):
        p = obs.qparams()
        err[name] = float(np.abs(dequantize(quantize(x, p), p) - x)[bulk].mean())
    # min/max spends the 256 levels on [-4, 1000]: a step of about 4, the bulk is rounded away
    assert err["percentile"] * 20 < err["minmax"], f"mean round-trip error on |x| < 3 by observer: {err}"


@pytest.mark.parametrize("order", [1, -1], ids=["low-first", "high-first"])
def test_percentile_observer_covers_every_batch(order) -> None:
    # Like min/max, the range widens over the batches: the running min of the low percentiles and
    # the running max of the high ones. A later batch must not replace an earlier one.
    low = np.linspace(-2.0, 0.0, 101, dtype=np.float32)
    high = np.linspace(5.0, 6.0, 101, dtype=np.float32)
    pc = PercentileObserver(99.0)
    for batch in (low, high)[::order]:
        pc.observe(batch)
    expected = (np.percentile(low, 1.0), np.percentile(high, 99.0))  # -1.98, 5.99
    # the same np.percentile of the same batches: equal but for the float conversion (approx's rel 1e-6)
    assert pc.range() == pytest.approx(expected), (
        f"PercentileObserver range {pc.range()}, expected {expected}"
    )
    assert pc.batches == 2, f"PercentileObserver counted {pc.batches} batches, expected 2"


def test_calibrate_observes_the_input_of_every_linear_and_conv() -> None:
    from tinytorch.conv import Conv2d, MaxPool2d
    from tinytorch.layers import Flatten, Linear, ReLU, Sequential

    rng = np.random.default_rng(4)
    model = Sequential(
        Conv2d(1, 2, 3, padding=1, rng=rng),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(8, 5, rng=rng),
        ReLU(),
        Linear(5, 3, rng=rng),
    )
    data = rng.uniform(-1, 2, (10, 1, 4, 4)).astype(np.float32)
    observers = calibrate(model, data, batch_size=4)
    names = list(observers)
    assert names == ["layers.0", "layers.4", "layers.6"], (
        f"observed layers {names}, expected the Linear / Conv2d"
    )
    batches = {name: obs.batches for name, obs in observers.items()}
    assert set(batches.values()) == {3}, f"batches seen per layer {batches}: 10 rows in batches of 4 are 3"
    # The recorded ranges are those of each layer's input over the whole data.
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            x = inputs[0]
            seen[name] = x.numpy() if isinstance(x, Tensor) else np.asarray(x)

        return hook

    for name, layer in model.named_modules():
        if name in observers:
            layer.register_forward_hook(record(name))
    model(data)
    for name, obs in observers.items():
        # one forward over the 10 rows against batches of 4: BLAS may sum in another order, a
        # float32 rounding of values below 10 (< 1e-6)
        expected = (float(seen[name].min()), float(seen[name].max()))
        assert obs.range() == pytest.approx(expected, abs=1e-6), (
            f"{name}: range {obs.range()}, input {expected}"
        )
    first = observers["layers.0"].range()
    assert first == (float(data.min()), float(data.max())), (
        f"layers.0 range {first}: not the data's min and max"
    )
    for name in ("layers.4", "layers.6"):  # after ReLUs
        assert observers[name].range()[0] >= 0.0, (
            f"{name}: range {observers[name].range()} below 0 after a ReLU"
        )


def test_calibrate_removes_its_hooks_and_leaves_the_model_unchanged() -> None:
    from tinytorch.layers import Linear, ReLU, Sequential

    rng = np.random.default_rng(5)
    model = Sequential(Linear(3, 4, rng=rng), ReLU(), Linear(4, 2, rng=rng))
    before = model.state_dict()
    data = np.random.default_rng(7).standard_normal((6, 3)).astype(np.float32)
    observers = calibrate(model, data, observer="percentile")
    kinds = {name: type(o).__name__ for name, o in observers.items()}
    assert set(kinds.values()) == {"PercentileObserver"}, f"observers {kinds} for observer='percentile'"
    assert all(not m._forward_hooks for m in model.modules()), "calibrate left forward hooks on the model"
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"parameter {name} after calibrate")
    # calibration ran in eval mode and restored the mode
    assert model.training, "the model is left in eval mode after calibrate"
    # ... even when the model raises (the first Linear refuses rows of width 5), the mode
    # restored too
    with pytest.raises(ValueError):
        calibrate(model, np.ones((6, 5), np.float32))
    assert all(not m._forward_hooks for m in model.modules()), "a failed calibration left its hooks"
    assert model.training, "the model is left in eval mode after a failed calibration"


def test_calibrate_observes_the_model_in_eval_mode() -> None:
    # Dropout is the identity at inference. In training mode it zeroes half of the activations and
    # doubles the others, so the next layer's range would come out about twice too wide.
    from tinytorch.layers import Dropout, Linear, Sequential

    rng = np.random.default_rng(6)
    dropout = Dropout(0.5, rng=np.random.default_rng(0))
    model = Sequential(Linear(3, 8, rng=rng), dropout, Linear(8, 2, rng=rng))
    data = rng.standard_normal((6, 3)).astype(np.float32)
    observers = calibrate(model, data)
    hidden = model[0](data).data  # what the last Linear sees at inference
    expected = (float(hidden.min()), float(hidden.max()))
    # the same 6 rows through the same Linear: equal up to BLAS summation order (values < 10, 1e-6)
    got = observers["layers.2"].range()
    assert got == pytest.approx(expected, abs=1e-6), (
        f"layers.2 range {got}, its input at inference {expected}"
    )
    assert model.training, "the model is left in eval mode after calibrate"


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (np.array([[np.nan, 1.0, 2.0]], np.float32), ValueError, "calibrat.*NaN or inf"),
        (np.zeros((0, 3), np.float32), ValueError, "calibrat.*empty"),
        (np.ones((2, 3), np.int32), TypeError, "calibrat.*float"),
    ],
    ids=["nan", "empty", "integers"],
)
def test_calibrate_rejects_bad_data(bad, error, match) -> None:
    from tinytorch.layers import Linear

    model = Linear(3, 2, rng=np.random.default_rng(8))
    got = calibrate(model, np.ones((2, 3), np.float32))[""].range()  # a single layer is named ""
    assert got == (1.0, 1.0), f"range {got} of the input ones, expected (1.0, 1.0)"
    with pytest.raises(error, match=match):
        calibrate(model, bad)


def test_percentile_observer_accepts_percentiles_in_50_to_100() -> None:
    # (50, 100]: 100 keeps the min and max (the MinMaxObserver's range), and just above 50 the
    # range closes in on the median
    x = np.linspace(-1.0, 3.0, 401, dtype=np.float32)
    everything, mm = PercentileObserver(100.0), MinMaxObserver()
    everything.observe(x)
    mm.observe(x)
    assert everything.range() == mm.range(), (
        f"PercentileObserver(100) range {everything.range()}, min/max {mm.range()}"
    )
    middle = PercentileObserver(50.5)
    middle.observe(x)
    lo, hi = middle.range()
    # the 49.5 % and 50.5 % points of 401 evenly spaced values around 1.0, 2 of the 400 steps each side
    assert lo == pytest.approx(0.98, abs=1e-6) and hi == pytest.approx(1.02, abs=1e-6), (
        f"PercentileObserver(50.5) range [{lo}, {hi}], expected [0.98, 1.02]"
    )


def test_observers_reject_bad_input() -> None:
    obs = MinMaxObserver()
    with pytest.raises(RuntimeError, match="nothing observed"):
        obs.range()
    obs.observe(np.array([1.0, 2.0], np.float32))
    assert obs.range() == (1.0, 2.0), f"MinMaxObserver range {obs.range()} of [1, 2]"
    with pytest.raises(ValueError, match="observe.*NaN or inf"):
        obs.observe(np.array([np.inf], np.float32))
    with pytest.raises(ValueError, match="percentile"):
        PercentileObserver(120.0)


# --------------------------------------------------------------------------------------------
# quantize_model on the zoo: < 1 percentage point of digits accuracy, 4x smaller weights
# --------------------------------------------------------------------------------------------

CALIBRATION_SIZE = 512  # the first 512 training images: calibration needs a representative sample


@pytest.fixture(scope="module")
def digits():
    from tinytorch import zoo
    from tinytorch.data import load_digits

    train_x, _ = load_digits("train")
    test_x, test_y = zoo.eval_data("cnn_digits")
    models = {name: zoo.load_model(name) for name in ("mlp_digits", "cnn_digits")}
    return models, train_x[:CALIBRATION_SIZE], test_x, test_y


@pytest.mark.parametrize("name", ["mlp_digits", "cnn_digits"])
def test_quantized_zoo_model_loses_less_than_one_point(digits, name) -> None:
    from tinytorch import zoo
    from tinytorch.training import accuracy

    models, calibration, test_x, test_y = digits
    model = models[name]
    float_state = model.state_dict()
    float_acc = accuracy(model, test_x, test_y)
    recorded = zoo.load_metrics()["models"][name]["test_accuracy"]
    assert float_acc == recorded, f"{name}: float accuracy {float_acc}, the zoo recorded {recorded}"
    quantized = quantize_model(model, calibration)
    int8_acc = accuracy(quantized, test_x, test_y)
    # The course's claim, deterministic on the 359 test images (one image = 0.28 points).
    assert float_acc - int8_acc < 0.01, f"{name}: float32 {float_acc:.4f}, int8 {int8_acc:.4f}"
    # the float model is untouched
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(
            value, float_state[key], err_msg=f"float parameter {key} after quantize_model"
        )


@pytest.mark.parametrize(("name", "n_products"), [("mlp_digits", 3), ("cnn_digits", 4)])
def test_quantized_zoo_model_runs_int8_products_through_the_backend(digits, name, n_products) -> None:
    from tinytorch.conv import Conv2d
    from tinytorch.layers import Linear

    models, calibration, test_x, _ = digits
    backend = int8_backend()
    int8_spy, dense_spy = Spy(int8_matmul), Spy(matmul_numpy)
    backend.register("matmul", "int8", int8_spy)
    backend.register("matmul", "dense", dense_spy)
    quantized = quantize_model(models[name], calibration, observer="percentile", backend=backend)
    left = [type(m).__name__ for m in quantized.modules() if isinstance(m, (Linear, Conv2d))]
    assert not left, f"{name}: float layers left in the quantized model: {left}"
    layers = [m for m in quantized.modules() if isinstance(m, (QuantizedLinear, QuantizedConv2d))]
    assert len(layers) == n_products, f"{name}: {len(layers)} quantized layers, expected {n_products}"
    assert all(layer.backend is backend for layer in layers), f"{name}: a layer holds another backend"
    logits = quantized(test_x[:8]).data
    assert logits.shape == (8, 10), f"{name}: logits shape {logits.shape}, expected (8, 10)"
    assert logits.dtype == np.float32, f"{name}: logits dtype {logits.dtype}, expected float32"
    assert int8_spy.calls == n_products, f"{name}: {int8_spy.calls} int8 products, expected {n_products}"
    assert dense_spy.calls == 0, f"{name}: {dense_spy.calls} dense products, expected none"
    assert set(int8_spy.kinds) == {("int8", "int8")}, f"{name}: operand kinds {set(int8_spy.kinds)}"
    # weights: int8, a quarter of the float32 bytes; the whole model (with int32 biases and the
    # per-channel scales) is well under a third of the float32 model
    float_weights = sum(
        m.weight.data.nbytes for m in models[name].modules() if isinstance(m, (Linear, Conv2d))
    )
    int8_weights = sum(layer.weight.nbytes for layer in layers)
    assert int8_weights * 4 == float_weights, (
        f"{name}: int8 weight bytes {int8_weights}, float32 {float_weights}"
    )
    sizes = (weight_bytes(quantized), weight_bytes(models[name]))
    assert sizes[0] < sizes[1] / 3, f"{name}: weight_bytes int8 {sizes[0]}, float32 {sizes[1]}"


def test_quantize_model_rejects_a_layer_without_a_rule() -> None:
    from tinytorch.layers import LayerNorm, Linear, ReLU, Sequential

    rng = np.random.default_rng(9)
    data = rng.standard_normal((4, 3)).astype(np.float32)
    good = quantize_model(Sequential(Linear(3, 3, rng=rng), ReLU()), data)
    assert isinstance(good[0], QuantizedLinear), (
        f"layer 0 of the quantized model is a {type(good[0]).__name__}"
    )
    with pytest.raises(ValueError, match=r"quantize_model: no rule for layer 'layers.1' of type LayerNorm"):
        quantize_model(Sequential(Linear(3, 3, rng=rng), LayerNorm(3)), data)
    with pytest.raises(TypeError, match="quantize_model.*float"):
        quantize_model(Sequential(Linear(3, 3, rng=rng)), np.ones((4, 3), np.int64))


def test_quantize_model_uses_affine_input_parameters_from_calibration() -> None:
    # Activations are quantized affine (asymmetric): after a ReLU every value is >= 0 and a
    # symmetric grid would leave the 128 negative levels unused (a step twice as large). Each
    # quantized layer takes the parameters of the observer of the float layer at its place.
    from tinytorch.layers import Linear, ReLU, Sequential

    rng = np.random.default_rng(15)
    model = Sequential(Linear(4, 6, rng=rng), ReLU(), Linear(6, 3, rng=rng))
    data = rng.uniform(-1, 2, (20, 4)).astype(np.float32)
    observers = calibrate(model, data)
    quantized = quantize_model(model, data)
    for name in ("layers.0", "layers.2"):
        got, expected = dict(quantized.named_modules())[name].input_params, observers[name].qparams()
        assert not got.symmetric, f"{name}: activations are quantized affine, not symmetric"
        np.testing.assert_array_equal(got.scale, expected.scale, err_msg=f"{name}: input scale")
        np.testing.assert_array_equal(
            got.zero_point, expected.zero_point, err_msg=f"{name}: input zero point"
        )
    z = int(quantized[2].input_params.zero_point)  # after the ReLU the range starts at 0
    assert z == QMIN, f"layers.2 input zero point {z} after a ReLU, expected {QMIN}"
    # the observer asked for is the one used
    percentile = calibrate(model, data, observer="percentile")
    by_percentile = quantize_model(model, data, observer="percentile")
    for name in ("layers.0", "layers.2"):
        got, expected = dict(by_percentile.named_modules())[name].input_params, percentile[name].qparams()
        np.testing.assert_array_equal(
            got.scale, expected.scale, err_msg=f"{name}: input scale, percentile observer"
        )


def test_calibration_runs_every_row_once_in_batches_of_batch_size() -> None:
    # data[start : start + batch_size] for start = 0, batch_size, ...: 300 rows are 256 + 44 with
    # the default batch size 256, in calibrate and in quantize_model; the first row is observed
    from tinytorch.layers import Linear, Sequential

    made = []

    class RowCounter(MinMaxObserver):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[int] = []
            made.append(self)

        def observe(self, x) -> None:
            super().observe(x)
            self.rows.append(len(x))

    rng = np.random.default_rng(20)
    model = Sequential(Linear(3, 2, rng=rng))
    data = rng.uniform(0, 1, (300, 3)).astype(np.float32)
    data[0, 0] = -5.0  # the smallest value sits in the first row
    observers = calibrate(model, data, observer=RowCounter)
    assert observers["layers.0"].rows == [256, 44], (
        f"rows per batch {observers['layers.0'].rows}, expected [256, 44]"
    )
    assert observers["layers.0"].range()[0] == -5.0, (
        f"range {observers['layers.0'].range()} misses the first row"
    )
    small = calibrate(model, data[:10], observer=RowCounter, batch_size=4)
    assert small["layers.0"].rows == [4, 4, 2], f"rows per batch {small['layers.0'].rows}, expected [4, 4, 2]"
    made.clear()
    quantize_model(model, data, observer=RowCounter)
    batches = [o.rows for o in made if o.rows]  # the observers that saw data: one per Linear
    assert batches == [[256, 44]], (
        f"rows per batch in quantize_model's calibration {batches}, expected [[256, 44]]"
    )


def test_quantize_model_walks_nested_sequentials() -> None:
    # a Sequential inside a Sequential is walked too: every Linear at any depth is quantized
    from tinytorch.layers import Linear, ReLU, Sequential

    rng = np.random.default_rng(21)
    model = Sequential(Sequential(Linear(3, 4, rng=rng), ReLU()), Linear(4, 2, rng=rng))
    data = rng.uniform(-1, 1, (8, 3)).astype(np.float32)
    quantized = quantize_model(model, data)
    kinds = [type(m).__name__ for m in quantized.modules() if isinstance(m, (Linear, QuantizedLinear))]
    assert kinds == ["QuantizedLinear", "QuantizedLinear"], f"layers after quantize_model: {kinds}"
    assert isinstance(model[0][0], Linear), "quantize_model changed the float model's nested layer"
    # two layers, each within a few steps of its input and weight grids: a loose check of the output
    np.testing.assert_allclose(
        quantized(data).data, model(data).data, atol=0.1, err_msg="nested model output"
    )


def test_weight_bytes_counts_every_stored_byte() -> None:
    # Linear(4, 3) with bias and Linear(3, 2) without: float32, (12 + 3 + 6) * 4 = 84 bytes.
    # Quantized: int8 weights 12 + 6; per output channel a float32 scale and an int32 zero point,
    # (3 + 2) * 8 = 40; per layer the input's scale and zero point, 2 * 8 = 16; the int32 bias
    # 3 * 4 = 12: 86 bytes.
    from tinytorch.layers import Linear, ReLU, Sequential

    rng = np.random.default_rng(22)
    model = Sequential(Linear(4, 3, rng=rng), ReLU(), Linear(3, 2, bias=False, rng=rng))
    quantized = quantize_model(model, rng.uniform(0, 1, (5, 4)).astype(np.float32))
    assert weight_bytes(model) == 84, f"weight_bytes of the float model is {weight_bytes(model)}, expected 84"
    assert weight_bytes(quantized) == 86, (
        f"weight_bytes of the int8 model is {weight_bytes(quantized)}, expected 86"
    )


def test_quantize_model_of_a_single_layer_is_its_quantized_layer() -> None:
    from tinytorch.layers import Linear

    layer = Linear(4, 3, rng=np.random.default_rng(10))
    data = np.random.default_rng(11).uniform(0, 1, (5, 4)).astype(np.float32)
    quantized = quantize_model(layer, data)
    assert isinstance(quantized, QuantizedLinear), (
        f"quantize_model(Linear) returned a {type(quantized).__name__}"
    )
    assert "int8" in repr(quantized), f"repr {quantized!r} does not say int8"
    # calibrated on this very data (min / max), so every input lies inside its range
    params, b = quantized.input_params, layer.bias.data
    bound, exact = quantized_product_bound(data, layer.weight.data, b, params, quantized.weight.params.scale)
    err = np.abs(quantized(data).data - exact)
    assert np.all(err <= bound), (
        f"quantized layer output error exceeds its bound by {float((err - bound).max()):.3g}"
    )


# --------------------------------------------------------------------------------------------
# Every argument check names the function and the value
# --------------------------------------------------------------------------------------------


def _bad_calls():
    from tinytorch.conv import Conv2d
    from tinytorch.layers import Linear, ReLU, Sequential

    rng = np.random.default_rng(12)
    lin, conv = Linear(3, 2, rng=rng), Conv2d(1, 2, 3, rng=rng)
    p = QuantParams(np.float32(0.5), np.int32(0))
    per_channel = QuantParams(np.ones(2, np.float32), np.zeros(2, np.int32), axis=0)
    affine_columns = QuantParams(np.ones(2, np.float32), np.array([0, 3], np.int32), axis=1)
    affine_filters = QuantParams(np.ones(2, np.float32), np.array([0, 3], np.int32), axis=0)
    i8 = np.zeros((2, 2), np.int8)
    ones = np.ones((1, 3), np.float32)
    return {
        # the layers' int8 product has no term for a weight zero point: an affine weight is refused
        "linear-weight-affine": (
            lambda: QuantizedLinear(QuantizedTensor(i8, affine_columns), None, p),
            ValueError,
            "QuantizedLinear: weight must be quantized symmetric",
        ),
        "conv-weight-affine": (
            lambda: QuantizedConv2d(
                QuantizedTensor(np.zeros((2, 1, 3, 3), np.int8), affine_filters), None, p
            ),
            ValueError,
            "QuantizedConv2d: weight must be quantized symmetric",
        ),
        "linear-input-0d": (
            lambda: QuantizedLinear.from_float(lin, p)(np.float32(1.0)),
            ValueError,
            r"input x has shape \(\)",
        ),
        "conv-input-channels": (  # 4-D, but 2 channels for a 1-channel convolution
            lambda: QuantizedConv2d.from_float(conv, p)(np.ones((1, 2, 4, 4), np.float32)),
            ValueError,
            r"QuantizedConv2d: input x must be \(N, 1, H, W\), got shape \(1, 2, 4, 4\)",
        ),
        "conv-input-params-type": (
            lambda: QuantizedConv2d.from_float(conv, None),
            TypeError,
            "QuantizedConv2d.from_float: input_params",
        ),
        "percentile-50": (lambda: PercentileObserver(50.0), ValueError, r"percentile must be in \(50, 100\]"),
        "percentile-above-100": (lambda: PercentileObserver(100.5), ValueError, r"\(50, 100\], got 100.5"),
        "percentile-bool": (lambda: PercentileObserver(True), TypeError, "percentile must be a number"),
        "batch-size-zero": (lambda: calibrate(lin, ones, batch_size=0), ValueError, "calibrate: batch_size"),
        "batch-size-float": (
            lambda: calibrate(lin, ones, batch_size=2.0),
            TypeError,
            "calibrate: batch_size",
        ),
        "observer-name-without-layers": (  # refused even when no layer would get an observer
            lambda: calibrate(Sequential(ReLU()), ones, observer="median"),
            ValueError,
            "unknown observer",
        ),
        "params-2d": (
            lambda: QuantParams(np.ones((2, 2), np.float32), np.zeros((2, 2), np.int32), axis=0),
            ValueError,
            "QuantParams: scale .* must have the same shape",
        ),
        "axis-past-the-end": (
            lambda: quantize(np.ones(2, np.float32), QuantParams(per_channel.scale, np.zeros(2, int), 1)),
            ValueError,
            r"quantize: axis 1 is out of range for shape \(2,\)",
        ),
        "dequantize-channels": (
            lambda: dequantize(np.zeros((3, 2), np.int8), per_channel),
            ValueError,
            "dequantize: 2 per-channel",
        ),
        "tensor-channels": (
            lambda: QuantizedTensor(np.zeros((3, 2), np.int8), per_channel),
            ValueError,
            "QuantizedTensor: 2 per",
        ),
        "range-2d": (
            lambda: choose_qparams(np.zeros((2, 2)), np.ones((2, 2))),
            ValueError,
            "choose_qparams: min_val",
        ),
        "kernel-1d": (lambda: int8_matmul(np.zeros(3, np.int8), i8), ValueError, "int8_matmul: a must be 2"),
        "backend": (lambda: QuantizedLinear.from_float(lin, p, backend="x"), TypeError, "dispatch"),
        "input-params-type": (lambda: QuantizedLinear.from_float(lin, 0.5), TypeError, "input_params"),
        "input-params-axis": (lambda: QuantizedLinear.from_float(lin, per_channel), ValueError, "per-tensor"),
        "linear-weight": (
            lambda: QuantizedLinear(QuantizedTensor(i8, per_channel), None, p),
            ValueError,
            "axis 1",
        ),
        "linear-from-conv": (lambda: QuantizedLinear.from_float(conv, p), TypeError, "expected a Linear"),
        "linear-input": (
            lambda: QuantizedLinear.from_float(lin, p)(np.ones((2, 4), np.float32)),
            ValueError,
            r"input x has shape \(2, 4\)",
        ),
        "conv-weight": (
            lambda: QuantizedConv2d(QuantizedTensor(i8, per_channel), None, p),
            ValueError,
            "4-D",
        ),
        "conv-from-linear": (lambda: QuantizedConv2d.from_float(lin, p), TypeError, "expected a Conv2d"),
        "conv-input": (
            lambda: QuantizedConv2d.from_float(conv, p)(np.ones((1, 3, 3), np.float32)),
            ValueError,
            r"\(N, 1, H, W\)",
        ),
        "model-type": (lambda: quantize_model("mlp", np.ones((1, 3), np.float32)), TypeError, "quantize_mod"),
        "calibrate-model": (lambda: calibrate(None, np.ones((1, 3), np.float32)), TypeError, "calibrate"),
        "observer-name": (
            lambda: calibrate(lin, np.ones((1, 3), np.float32), observer="median"),
            ValueError,
            "unknown observer 'median'",
        ),
        "observer-type": (lambda: calibrate(lin, np.ones((1, 3), np.float32), 3), TypeError, "factory"),
        "observer-factory": (
            lambda: calibrate(lin, np.ones((1, 3), np.float32), observer=object),
            TypeError,
            "observe",
        ),
        "percentile-type": (lambda: PercentileObserver("99"), TypeError, "percentile"),
        "zero-point-float": (lambda: QuantParams(np.float32(1), np.float32(0)), TypeError, "zero_point"),
        "shapes": (lambda: QuantParams(np.ones(2, np.float32), np.int32(0)), ValueError, "same shape"),
        "axis": (lambda: QuantParams(np.ones(2, np.float32), np.zeros(2, np.int32)), ValueError, "axis"),
        "scale-zero": (lambda: QuantParams(np.float32(0), np.int32(0)), ValueError, "scale"),
        "zero-point-range": (lambda: QuantParams(np.float32(1), np.int32(200)), ValueError, r"\[-128, 127\]"),
        "axis-range": (
            lambda: quantize(np.ones(2, np.float32), QuantParams(per_channel.scale, np.zeros(2, int), 3)),
            ValueError,
            "axis 3",
        ),
        "channels": (lambda: quantize(np.ones((3, 2), np.float32), per_channel), ValueError, "2 per-channel"),
        "range-shapes": (lambda: choose_qparams([0.0, 1.0], 1.0), ValueError, "choose_qparams"),
        "tensor-params": (lambda: QuantizedTensor(i8, 0.5), TypeError, "QuantParams"),
        "tensor-axis": (
            lambda: quantize_tensor(np.ones((2, 2), np.float32), axis=2),
            ValueError,
            "quantize_tensor: axis 2",
        ),
        "tensor-axis-type": (
            lambda: quantize_tensor(np.ones((2, 2), np.float32), axis=1.0),
            TypeError,
            "quantize_tensor: axis must be an int",
        ),
        "quantize-params": (
            lambda: quantize(np.ones(2, np.float32), (0.5, 0)),
            TypeError,
            "quantize: params must be QuantParams",
        ),
        "dequantize-params": (lambda: dequantize(i8, None), TypeError, "dequantize: params must be Quant"),
    }


@pytest.mark.parametrize("case", list(_bad_calls()))
def test_bad_arguments_are_refused_with_a_clear_error(case) -> None:
    # a valid call first, so that a stub with only its checks written does not pass
    qt = quantize_tensor([0.5, -1.0, 2.0], symmetric=True)  # a list of floats is float data too
    assert "symmetric" in repr(qt), f"repr {qt!r} of a symmetric QuantizedTensor does not say symmetric"
    assert qt.data.dtype == np.int8, f"quantize_tensor data dtype {qt.data.dtype}, expected int8"
    call, error, match = _bad_calls()[case]
    with pytest.raises(error, match=match):
        call()


def test_quantized_layers_describe_themselves() -> None:
    from tinytorch.conv import Conv2d

    float_conv = Conv2d(1, 2, 3, rng=np.random.default_rng(13))
    conv = QuantizedConv2d.from_float(float_conv, choose_qparams(0.0, 1.0))
    assert "int8" in repr(conv) and "kernel_size=(3, 3)" in repr(conv), f"QuantizedConv2d repr {conv!r}"
    assert "per-channel (axis 0)" in repr(conv.weight), (
        f"weight repr {conv.weight!r}: not per channel on axis 0"
    )
    data = np.ones((1, 1, 4, 4), np.float32)
    custom = calibrate(float_conv, data, observer=lambda: PercentileObserver(90.0))
    got = custom[""].percentile
    assert got == 90.0, f"the factory's observer has percentile {got}, expected 90.0"
