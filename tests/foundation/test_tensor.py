"""The autograd engine (tinytorch.tensor): values, gradients, dtypes, grad mode and bad input.

Every op's gradient is checked against central finite differences in float64 (gradcheck.py
states the tolerances and why). Values are compared with plain numpy; float32 value checks use
rtol 1e-6 (a few float32 ulps, eps32 = 1.2e-7) unless said otherwise.

One file, whole, as the engine it tests is (tinytorch/tensor.py): one section per kind of op.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import check_grad, numerical_grad
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import (
    broadcastable_array_pairs,
    float_arrays,
    matmul_shapes,
    nonzero_arrays,
    positive_arrays,
    reduction_axes,
    tensor_shapes,
)

import tinytorch
from tinytorch import Tensor, concatenate, is_grad_enabled, no_grad, stack, where


def t64(x, requires_grad: bool = True) -> Tensor:
    return Tensor(np.asarray(x, dtype=np.float64), requires_grad=requires_grad, dtype=np.float64)


def spread(x: np.ndarray, gap: float = 1e-2) -> np.ndarray:
    """x with ties broken: adding gap * rank makes sorted neighbours differ by >= gap, so a max
    is unique and stays unique under a finite-difference step h = 1e-6."""
    ranks = np.argsort(np.argsort(x, axis=None, kind="stable")).reshape(x.shape)
    return x + gap * ranks


def away_from_zero(x: np.ndarray, gap: float = 1e-2) -> np.ndarray:
    """x pushed at least ``gap`` away from 0 (the kink of relu), keeping its sign (0 -> +gap)."""
    return np.where(x >= 0, x + gap, x - gap)


# --------------------------------------------------------------------------------------------
# construction and dtypes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [1.5, [1.0, 2.0], np.ones(3, dtype=np.float64), np.ones(3, dtype=np.float16)],
    ids=["python float", "list", "float64 array", "float16 array"],
)
def test_floating_data_becomes_float32(data):
    assert Tensor(data).dtype == np.float32


def test_explicit_float64_is_kept():
    x = Tensor(np.ones(3), dtype=np.float64)
    assert x.dtype == np.float64


@pytest.mark.parametrize(
    "data,dtype", [([1, 2, 3], np.int64), (np.array([1, 2], np.int32), np.int32), ([True, False], np.bool_)]
)
def test_integer_and_bool_data_keep_their_dtype(data, dtype):
    assert Tensor(data).dtype == dtype


@pytest.mark.parametrize("data", [[1, 2, 3], [True, False]])
def test_integer_data_cannot_require_grad(data):
    with pytest.raises(ValueError, match="requires_grad"):
        Tensor(data, requires_grad=True)


@pytest.mark.parametrize(
    "data",
    [["a", "b"], np.array([object()]), [Tensor(1.0), Tensor(2.0)], np.array([1 + 2j])],
    ids=["strings", "objects", "list of Tensors", "complex"],
)
def test_non_numeric_data_is_a_type_error(data):
    with pytest.raises(TypeError, match="data"):
        Tensor(data)


def test_tensor_of_tensor_wraps_its_data():
    x = Tensor([1.0, 2.0])
    assert Tensor(x).data is x.data


def test_attributes_and_conversions():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert (x.shape, x.ndim, x.size, x.dtype, len(x)) == ((2, 3), 2, 6, np.float32, 2)
    assert x.numpy() is x.data
    assert Tensor([[4.0]]).item() == 4.0 and isinstance(Tensor([[4.0]]).item(), float)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        x.item()
    text = repr(x * 2)
    assert text.startswith("Tensor(") and "shape=(2, 3)" in text and "float32" in text
    assert "requires_grad=True" in text and "mul" in text
    with pytest.raises(TypeError, match="0-d"):
        len(Tensor(3.0))
    assert len(Tensor(np.ones((0, 4)))) == 0


def test_concatenate_and_stack_take_plain_arrays():
    joined = concatenate([np.ones(2), np.zeros(1, np.float32)])
    assert isinstance(joined, Tensor) and joined.shape == (3,)
    np.testing.assert_array_equal(joined.data, [1.0, 1.0, 0.0])
    assert stack([np.ones(2), np.zeros(2)]).shape == (2, 2)


def test_detach_shares_data_without_history():
    x = Tensor([1.0, 2.0], requires_grad=True)
    d = (x * 3).detach()
    assert not d.requires_grad and d._parents == ()
    y = x * 3
    assert y.detach().data is y.data


FLOAT_DTYPES = [np.float32, np.float64]

UNARY_OPS = {
    "neg": lambda x: -x,
    "exp": Tensor.exp,
    "log": Tensor.log,
    "sqrt": Tensor.sqrt,
    "tanh": Tensor.tanh,
    "relu": Tensor.relu,
    "sigmoid": Tensor.sigmoid,
    "gelu": Tensor.gelu,
    "softmax": Tensor.softmax,
    "log_softmax": Tensor.log_softmax,
    "pow": lambda x: x**2,
    "sum": lambda x: x.sum(axis=0),
    "mean": lambda x: x.mean(axis=0),
    "max": lambda x: x.max(axis=0),
    "reshape": lambda x: x.reshape(-1),
    "T": lambda x: x.T,
    "getitem": lambda x: x[[0, 0], 1:],
    "masked_fill": lambda x: x.masked_fill(np.array([True, False, False]), -1e9),
    "scalar add": lambda x: x + 1.5,
    "scalar rsub": lambda x: 1.5 - x,
    "scalar mul": lambda x: 2.5 * x,
    "scalar rdiv": lambda x: 2.5 / x,
    "int array mul": lambda x: x * np.array([1, 2, 3]),
    "float64 array add": lambda x: np.ones(3) + x,
    "matmul array": lambda x: x @ np.ones((3, 2)),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("op", UNARY_OPS.values(), ids=UNARY_OPS.keys())
def test_ops_keep_the_float_dtype(op, dtype):
    """float32 stays float32 (Python scalars and numpy arrays never upcast it); float64 stays
    float64 (what the gradient checks rely on). Gradients have the dtype of their tensor."""
    x = Tensor(np.arange(1.0, 7.0).reshape(2, 3), requires_grad=True, dtype=dtype)
    y = op(x)
    assert isinstance(y, Tensor) and y.dtype == dtype
    y.backward(np.ones(y.shape))
    assert x.grad.dtype == dtype


def test_result_is_float64_only_when_an_input_is():
    ints = Tensor([1, 2])
    assert (ints / Tensor([3, 4])).dtype == np.float32  # numpy would give float64
    assert (ints * 0.5).dtype == np.float32
    assert ints.exp().dtype == np.float32
    assert (Tensor([1.0]) + Tensor([1.0], dtype=np.float64)).dtype == np.float64
    assert (ints + 1).dtype == np.int64


# --------------------------------------------------------------------------------------------
# gradients of arithmetic (hypothesis, broadcasting)
# --------------------------------------------------------------------------------------------

BINARY_OPS = {
    "add": (lambda a, b: a + b, float_arrays),
    "sub": (lambda a, b: a - b, float_arrays),
    "mul": (lambda a, b: a * b, float_arrays),
    "div": (lambda a, b: a / b, nonzero_arrays),
}


@pytest.mark.parametrize("name", BINARY_OPS)
@given(data=st.data())
def test_binary_op_gradients_with_broadcasting(name, data):
    op, second = BINARY_OPS[name]
    a, b = data.draw(broadcastable_array_pairs(second=second), label="a, b")
    out = op(t64(a), t64(b))
    np.testing.assert_allclose(out.data, op(a, b), rtol=1e-12)
    check_grad(op, a, b)


@pytest.mark.parametrize("name", BINARY_OPS)
def test_binary_op_shapes_that_do_not_broadcast_are_a_value_error_naming_both(name):
    op, _ = BINARY_OPS[name]
    with pytest.raises(ValueError, match=r"\(2, ?3\).*\(4,\)"):
        op(Tensor(np.ones((2, 3))), Tensor(np.ones(4)))


def test_broadcast_gradient_sums_over_stretched_axes():
    """(2, 3) + (3,) and (2, 1): each gradient is the upstream sum over the copies made."""
    a, b, c = t64(np.zeros((2, 3))), t64(np.zeros(3)), t64(np.zeros((2, 1)))
    (a + b + c).backward(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(b.grad, [3.0, 5.0, 7.0])
    np.testing.assert_array_equal(c.grad, [[3.0], [12.0]])
    assert a.grad.shape == (2, 3)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: 2.0 + x,
        lambda x: 2.0 - x,
        lambda x: 3.0 * x,
        lambda x: 2.0 / x,
        lambda x: np.array([1.0, -2.0, 0.5]) - x,
        lambda x: np.array([1.0, 2.0, 4.0]) / x,
        lambda x: np.arange(6.0).reshape(2, 3) @ x,
        lambda x: x - 1,
        lambda x: x / 4,
    ],
    ids=["radd", "rsub", "rmul", "rtruediv", "array rsub", "array rdiv", "array rmatmul", "sub", "div"],
)
def test_reversed_ops_with_scalars_and_arrays(fn):
    x = np.array([0.7, -1.3, 2.1])
    out = fn(t64(x))
    assert isinstance(out, Tensor)
    np.testing.assert_allclose(out.data, fn(x), rtol=1e-12)
    check_grad(fn, x)


@given(x=positive_arrays(tensor_shapes()), p=st.sampled_from([2, 3, 0.5, -1, -1.5, 0, 1]))
@example(x=np.array([0.5, 2.0]), p=0)  # d/dx x^0 = 0, not 0 * x^-1
@example(x=np.array([0.5, 2.0]), p=-1.5)
def test_pow_gradient(x, p):
    np.testing.assert_allclose((t64(x) ** p).data, x**p, rtol=1e-12)
    check_grad(lambda t: t**p, x)


def test_pow_of_negative_base_with_integer_exponent():
    check_grad(lambda t: t**3, np.array([-2.0, -0.5, 1.5]))


def test_rpow_gradient():
    x = np.array([-1.0, 0.3, 2.0])
    np.testing.assert_allclose((2.0 ** t64(x)).data, 2.0**x, rtol=1e-12)
    check_grad(lambda t: 2.0**t, x)


def test_pow_exponent_must_be_a_scalar():
    with pytest.raises(TypeError, match="exponent"):
        Tensor([1.0]) ** Tensor([2.0])
    with pytest.raises(ValueError, match="base"):
        (-2.0) ** Tensor([1.0])


@given(shapes=matmul_shapes(), data=st.data())
@example(shapes=((3,), (3,)), data=None)
@example(shapes=((3,), (2, 3, 4)), data=None)
@example(shapes=((2, 1, 2, 3), (4, 3, 1)), data=None)
def test_matmul_matches_numpy_and_its_gradient(shapes, data):
    """1-D, 2-D and batched operands exactly as numpy's @, with broadcast batch dimensions."""
    if data is None:  # an @example: fixed seeded values
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    else:
        a, b = data.draw(float_arrays(shapes[0])), data.draw(float_arrays(shapes[1]))
    out = t64(a) @ t64(b)
    assert out.shape == (a @ b).shape
    np.testing.assert_allclose(out.data, a @ b, rtol=1e-12, atol=1e-12)
    check_grad(lambda x, y: x @ y, a, b)


@pytest.mark.parametrize(
    "shape_a,shape_b",
    [((2, 3), (2, 3)), ((3,), (4,)), ((5, 2, 3), (4, 2)), ((2, 3), (4,)), ((3, 2, 4), (2, 4, 5))],
)
def test_matmul_mismatch_names_both_shapes(shape_a, shape_b):
    with pytest.raises(ValueError) as info:
        Tensor(np.ones(shape_a)) @ Tensor(np.ones(shape_b))
    assert str(shape_a) in str(info.value) and str(shape_b) in str(info.value)


def test_matmul_of_a_0d_operand_is_an_error():
    with pytest.raises(ValueError, match=r"\(\)"):
        Tensor(2.0) @ Tensor(np.ones(3))


# --------------------------------------------------------------------------------------------
# reductions
# --------------------------------------------------------------------------------------------

REDUCTIONS = {"sum": np.sum, "mean": np.mean, "max": np.max}


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data(), keepdims=st.booleans())
def test_reductions_values_and_gradients(name, data, keepdims):
    """Any axis spec (None, negative, tuples, empty tuple) with and without keepdims."""
    x = data.draw(float_arrays(tensor_shapes()), label="x")
    axis = data.draw(reduction_axes(x.ndim), label="axis")
    if name == "max":
        x = spread(x)  # a unique maximum: max is differentiable there
    fn = lambda t: getattr(t, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    out = fn(t64(x))
    expected = REDUCTIONS[name](x, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    check_grad(fn, x)


def test_max_splits_the_gradient_evenly_among_ties():
    x = t64([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [5.0, 0.0, 1.0]])
    x.max(axis=1).backward(np.array([1.0, 3.0, 2.0]))
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1, 1, 1], [2, 0, 0]])


def test_global_max_with_ties_and_keepdims():
    x = t64([[4.0, 1.0], [4.0, 4.0]])
    out = x.max(keepdims=True)
    assert out.shape == (1, 1)
    out.backward()
    np.testing.assert_allclose(x.grad, [[1 / 3, 0], [1 / 3, 1 / 3]])
    assert math.isclose(x.grad.sum(), 1.0)


def test_mean_over_negative_axes_divides_by_the_reduced_count():
    x = t64(np.zeros((2, 3, 4)))
    x.mean(axis=(-1, -3)).backward(np.ones(3))
    np.testing.assert_allclose(x.grad, np.full((2, 3, 4), 1 / 8))


def test_sum_of_an_empty_tensor():
    x = t64(np.zeros((0, 3)))
    s = x.sum(axis=0)
    np.testing.assert_array_equal(s.data, np.zeros(3))
    s.backward(np.ones(3))
    assert x.grad.shape == (0, 3)


# --------------------------------------------------------------------------------------------
# shapes and indexing
# --------------------------------------------------------------------------------------------


@given(x=float_arrays(tensor_shapes(min_dims=1)), data=st.data())
def test_reshape_and_transpose_gradients(x, data):
    perm = tuple(data.draw(st.permutations(range(x.ndim)), label="perm"))
    np.testing.assert_array_equal(t64(x).transpose(*perm).data, x.transpose(perm))
    np.testing.assert_array_equal(t64(x).transpose(perm).data, x.transpose(perm))
    np.testing.assert_array_equal(t64(x).T.data, x.T)
    np.testing.assert_array_equal(t64(x).reshape(-1, 1).data, x.reshape(-1, 1))
    np.testing.assert_array_equal(t64(x).reshape((x.size,)).data, x.reshape(x.size))
    check_grad(lambda t: t.transpose(*perm).reshape(-1) * 2, x)
    check_grad(lambda t: t.T, x)


def test_transpose_with_negative_axes():
    x = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(t64(x).transpose(0, -1, -2).data, x.transpose(0, 2, 1))
    check_grad(lambda t: t.transpose(-1, 0, 1), x)


INDICES = {
    "int": 1,
    "negative int": -1,
    "slice": slice(1, None),
    "step slice": (slice(None, None, -2), slice(0, 2)),
    "ellipsis and None": (Ellipsis, None, 0),
    "int array": np.array([2, 0]),
    "repeated ints": [0, 0, 2, 0],
    "2-D int array": np.array([[0, 1], [1, 1]]),
    "paired arrays with repeats": (np.array([0, 0, 2]), np.array([1, 1, 3])),
    "bool mask": np.array([True, False, True]),
    "mixed slice and array": (slice(None), [3, 3, 0]),
    "int Tensor": Tensor([1, 1, 2]),
}


@pytest.mark.parametrize("idx", INDICES.values(), ids=INDICES.keys())
def test_getitem_values_and_gradients(idx):
    x = np.random.default_rng(0).standard_normal((3, 4))
    np_idx = idx.data if isinstance(idx, Tensor) else idx
    np.testing.assert_array_equal(t64(x)[idx].data, x[np_idx])
    check_grad(lambda t: t[idx], x)


def test_repeated_indices_accumulate_with_add_at():
    """Embedding-style lookup: a row picked k times gets k times the gradient."""
    w = Tensor(np.zeros((4, 2)), requires_grad=True)
    w[Tensor([1, 1, 3, 1])].sum().backward()
    np.testing.assert_array_equal(w.grad, [[0, 0], [3, 3], [0, 0], [1, 1]])


# --------------------------------------------------------------------------------------------
# elementwise functions
# --------------------------------------------------------------------------------------------

GELU_C = math.sqrt(2 / math.pi)
ELEMENTWISE = {  # name: (reference in numpy, input strategy)
    "exp": (np.exp, float_arrays),
    "log": (np.log, positive_arrays),
    "sqrt": (np.sqrt, positive_arrays),
    "tanh": (np.tanh, float_arrays),
    "relu": (lambda x: np.maximum(x, 0.0), float_arrays),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), float_arrays),
    "gelu": (lambda x: 0.5 * x * (1 + np.tanh(GELU_C * (x + 0.044715 * x**3))), float_arrays),
    "__neg__": (np.negative, float_arrays),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
@given(data=st.data())
def test_elementwise_values_and_gradients(name, data):
    reference, arrays = ELEMENTWISE[name]
    x = data.draw(arrays(tensor_shapes()), label="x")
    if name == "relu":
        x = away_from_zero(x)
    fn = getattr(Tensor, name)
    np.testing.assert_allclose(fn(t64(x)).data, reference(x), rtol=1e-12, atol=1e-15)
    check_grad(fn, x)


def test_relu_gradient_is_zero_at_zero():
    x = t64([-1.0, 0.0, 2.0])
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


def test_sigmoid_saturates_without_overflow():
    with np.errstate(over="raise", invalid="raise"):  # an overflow in exp would raise here
        x = Tensor([-1000.0, -20.0, 0.0, 20.0, 1000.0], requires_grad=True)
        s = x.sigmoid()
        s.sum().backward()
    assert s.data[0] == 0.0 and s.data[2] == 0.5 and s.data[4] == 1.0
    assert np.all(np.isfinite(x.grad)) and x.grad[2] == 0.25


# --------------------------------------------------------------------------------------------
# softmax and log_softmax
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(x=float_arrays(tensor_shapes(min_dims=1)), data=st.data())
def test_softmax_gradients_along_any_axis(name, x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    check_grad(lambda t: getattr(t, name)(axis=axis), x)


@given(x=float_arrays(tensor_shapes(min_dims=1), -50, 50), shift=st.floats(-1e3, 1e3))
@example(x=np.zeros((2, 3)), shift=0.0)  # constant rows: uniform distribution
def test_softmax_is_a_distribution_and_shift_invariant(x, shift):
    s = t64(x).softmax(axis=-1).data
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(s >= 0)
    # shifting by c changes x - max(x) by at most ulp(|c|) ~ 1e3 * 2.2e-16, i.e. relative 1e-13
    np.testing.assert_allclose(t64(x + shift).softmax(axis=-1).data, s, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(t64(x).log_softmax(axis=-1).data, np.log(s), rtol=1e-10, atol=1e-12)


def test_softmax_and_log_softmax_are_stable_for_large_logits():
    """float32 exp overflows above ~88; the shifted forms must not."""
    logits = Tensor([[1e4, 1e4 - 1.0, -1e4], [3e4, 3e4, 3e4]], requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):
        s = logits.softmax(axis=1)
        ls = logits.log_softmax(axis=1)
        (s * Tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])).sum().backward()
        ls.sum().backward()
    e = math.exp(-1)
    np.testing.assert_allclose(s.data, [[1 / (1 + e), e / (1 + e), 0.0], [1 / 3] * 3], rtol=1e-6)
    np.testing.assert_allclose(ls.data[0, :2], [-math.log1p(e), -1 - math.log1p(e)], rtol=1e-6)
    assert ls.data[0, 2] == pytest.approx(-2e4 - math.log1p(e), rel=1e-6)
    assert np.all(np.isfinite(logits.grad))


# --------------------------------------------------------------------------------------------
# masked_fill, concatenate, stack, where
# --------------------------------------------------------------------------------------------


def test_masked_fill_values_and_gradient():
    x = np.arange(6.0).reshape(2, 3)
    causal = np.triu(np.ones((3, 3), dtype=bool), k=1)[:2]  # broadcasting rows
    row_mask = np.array([True, False, True])
    out = t64(x).masked_fill(row_mask, -np.inf)
    np.testing.assert_array_equal(out.data, [[-np.inf, 1, -np.inf], [-np.inf, 4, -np.inf]])
    check_grad(lambda t: t.masked_fill(row_mask, -7.0), x)  # |f| stays small: see gradcheck.py
    check_grad(lambda t: t.masked_fill(causal, 0.0), x)


def test_masked_fill_rejects_bad_masks():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match="mask"):
        x.masked_fill(np.array([1, 0, 1]), 0.0)
    with pytest.raises(ValueError, match=r"mask.*\(2, 1, 3\)"):
        x.masked_fill(np.ones((2, 1, 3), dtype=bool), 0.0)
    with pytest.raises(TypeError, match="value"):
        x.masked_fill(np.ones(3, dtype=bool), np.ones(3))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_values_and_gradients(axis):
    rng = np.random.default_rng(1)
    parts = [rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))]
    parts[1] = parts[1][:, :2] if axis != 0 else parts[1][:1]
    np.testing.assert_array_equal(
        concatenate([t64(p) for p in parts], axis=axis).data, np.concatenate(parts, axis=axis)
    )
    check_grad(lambda *ts: concatenate(ts, axis=axis), *parts)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack_values_and_gradients(axis):
    rng = np.random.default_rng(2)
    parts = [rng.standard_normal((2, 3)) for _ in range(3)]
    np.testing.assert_array_equal(stack([t64(p) for p in parts], axis=axis).data, np.stack(parts, axis=axis))
    check_grad(lambda *ts: stack(ts, axis=axis), *parts)


@pytest.mark.parametrize("fn", [concatenate, stack])
def test_joining_nothing_is_an_error(fn):
    with pytest.raises(ValueError, match="tensors"):
        fn([])


@given(data=st.data())
def test_where_gradients_with_broadcasting(data):
    a, b = data.draw(broadcastable_array_pairs(), label="a, b")
    out_shape = np.broadcast_shapes(a.shape, b.shape)
    cond = data.draw(st.lists(st.booleans(), min_size=math.prod(out_shape), max_size=math.prod(out_shape)))
    cond = np.array(cond, dtype=bool).reshape(out_shape)
    np.testing.assert_array_equal(where(cond, t64(a), t64(b)).data, np.where(cond, a, b))
    check_grad(lambda x, y: where(cond, x, y), a, b)


def test_where_with_a_scalar_branch_and_bad_cond():
    x = t64([1.0, -2.0, 3.0])
    y = where(np.array([True, False, True]), x, 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="cond"):
        where(np.array([1, 0, 1]), x, 0.0)


# --------------------------------------------------------------------------------------------
# the engine: backward, accumulation, grad mode, custom ops
# --------------------------------------------------------------------------------------------


def test_a_tensor_used_twice_sums_its_gradients():
    x = t64([2.0, -1.0])
    (x * x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, [5.0, -1.0])  # 2x + 1


def test_gradients_accumulate_across_backward_calls_until_zero_grad():
    x = t64([1.0, 2.0])
    loss = (x * x).sum()
    loss.backward()
    loss.backward()  # the graph is kept: same gradient again, added
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])
    (3 * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [7.0, 11.0])
    x.zero_grad()
    assert x.grad is None


def test_only_leaves_keep_a_grad():
    x = t64([1.0, 2.0])
    h = x * 2
    h.sum().backward()
    assert x.grad is not None and h.grad is None and x.is_leaf and not h.is_leaf


def test_backward_through_a_deep_graph():
    """The topological sort is iterative: 5000 ops deep does not hit the recursion limit."""
    x = Tensor(1.0, requires_grad=True, dtype=np.float64)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001**5000, rel=1e-9)


def test_backward_with_an_explicit_gradient():
    x = t64([1.0, 2.0, 3.0])
    (x * x).backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, -6.0])


def test_backward_errors():
    x = t64([1.0, 2.0])
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="require grad"):
        Tensor([1.0]).sum().backward()
    with pytest.raises(ValueError, match=r"grad.*\(3,\).*\(2,\)"):
        (x * 2).backward(np.ones(3))


def test_one_element_non_0d_tensor_is_a_scalar_loss():
    x = t64([[3.0]])
    (x * x).backward()
    np.testing.assert_array_equal(x.grad, [[6.0]])


def test_no_grad_records_no_graph():
    x = t64([1.0, 2.0])
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2).exp().sum()
        with no_grad():
            pass
        assert not is_grad_enabled()  # the inner block restored the outer state
    assert is_grad_enabled()
    assert not y.requires_grad and y._parents == () and y._backward is None
    with pytest.raises(RuntimeError):
        y.backward()
    assert x.grad is None


def test_no_grad_restores_grad_mode_after_an_exception_and_works_as_decorator():
    with pytest.raises(KeyError), no_grad():
        raise KeyError("boom")
    assert is_grad_enabled()

    @no_grad()
    def infer(t):
        return t * 2

    assert not infer(t64([1.0])).requires_grad and is_grad_enabled()


def test_results_require_grad_only_if_a_parent_does():
    a, b = Tensor([1.0]), Tensor([2.0], requires_grad=True)
    assert not (a * 3).requires_grad and (a * b).requires_grad
    ids = Tensor([0, 1])
    assert not (ids + 1).requires_grad


def test_custom_op_with_from_op():
    """A user-defined cube op: backward returns one gradient per parent (None = no gradient)."""

    def cube_plus(x: Tensor, c: Tensor) -> Tensor:
        return Tensor.from_op(x.data**3 + c.data, (x, c), lambda g: (3 * x.data**2 * g, None), "cube_plus")

    x, c = t64([1.0, -2.0]), t64([5.0, 5.0])
    y = cube_plus(x, c)
    assert y._op == "cube_plus" and y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 12.0])
    assert c.grad is None
    with no_grad():
        assert not cube_plus(x, c).requires_grad


def test_custom_op_returning_a_wrong_shape_is_caught():
    x = t64([1.0, 2.0])
    y = Tensor.from_op(x.data * 2, (x,), lambda g: (g.sum(),), "broken")
    with pytest.raises(RuntimeError, match="broken"):
        y.sum().backward()
    with pytest.raises(TypeError, match="parents"):
        Tensor.from_op(np.ones(2), (np.ones(2),), lambda g: (g,), "bad")


def test_numerical_grad_helper_on_a_known_function():
    """The reference itself: d/dx sum(x^3) = 3x^2 within the central-difference error."""
    x = np.array([0.5, -1.0, 2.0])
    (g,) = numerical_grad(lambda: float((x**3).sum()), [x])
    np.testing.assert_allclose(g, 3 * x**2, rtol=1e-8)
    with pytest.raises(TypeError, match="float64"):
        numerical_grad(lambda: 0.0, [x.astype(np.float32)])


def test_package_reexports_and_stays_light():
    import sys

    assert tinytorch.Tensor is Tensor and tinytorch.no_grad is no_grad
    assert {"Tensor", "no_grad", "is_grad_enabled", "concatenate", "stack", "where"} <= set(tinytorch.__all__)
    code = "import sys, tinytorch; print({'tinytorch.perf', 'tinytorch.course'} & set(sys.modules) != set())"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
