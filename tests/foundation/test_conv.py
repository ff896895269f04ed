"""Conv2d (im2col), MaxPool2d and the im2col/col2im helpers (tinytorch.conv).

Forward and backward are compared with direct loop implementations (one output pixel at a
time) on hypothesis-generated shapes, strides and paddings, in float64; the loops and the
vectorised code add the same products in a different order, so they agree to ~K * eps64 with
K <= 27 terms: rtol 1e-10 is far above that and far below any indexing mistake. A few fixed
configurations are also checked against central finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from layercheck import RecordingBackend, check_module_grads
from strategies import ConvCase, PoolCase, conv_cases, pool_cases

from tinytorch import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, Tensor
from tinytorch.backend import use_backend
from tinytorch.conv import col2im, conv_output_size, im2col

RTOL64 = 1e-10  # float64, <= 27-term sums in a different order (see module doc)
ATOL64 = 1e-12


# --- direct loop references --------------------------------------------------------------------


def conv_forward_loops(x, w, b, stride, padding):
    n, c, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out, w_out = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    y = np.zeros((n, c_out, h_out, w_out))
    for i in range(n):
        for o in range(c_out):
            for r in range(h_out):
                for s in range(w_out):
                    patch = xp[i, :, r * stride : r * stride + kh, s * stride : s * stride + kw]
                    y[i, o, r, s] = np.sum(patch * w[o]) + b[o]
    return y


def conv_backward_loops(x, w, g, stride, padding):
    """d(sum(y * g))/dx, /dw, /db by the same loops: each output pixel adds its patch's share."""
    n, c, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(n):
        for o in range(c_out):
            for r in range(g.shape[2]):
                for s in range(g.shape[3]):
                    rows, cols = slice(r * stride, r * stride + kh), slice(s * stride, s * stride + kw)
                    dxp[i, :, rows, cols] += g[i, o, r, s] * w[o]
                    dw[o] += g[i, o, r, s] * xp[i, :, rows, cols]
    dx = dxp[:, :, padding : padding + h, padding : padding + wd]
    return dx, dw, g.sum(axis=(0, 2, 3))


def maxpool_loops(x, kh, kw, stride):
    """Forward output and the gradient routing of sum(y * g) (first maximum in row-major order)."""
    n, c, h, w = x.shape
    h_out, w_out = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = np.zeros((n, c, h_out, w_out))
    route = []  # (n, c, r, s, input row, input col)
    for i in range(n):
        for ch in range(c):
            for r in range(h_out):
                for s in range(w_out):
                    win = x[i, ch, r * stride : r * stride + kh, s * stride : s * stride + kw]
                    a = int(np.argmax(win))
                    y[i, ch, r, s] = win.flat[a]
                    route.append((i, ch, r, s, r * stride + a // kw, s * stride + a % kw))
    return y, route


def make_conv(case: ConvCase, dtype=np.float64) -> tuple[Conv2d, np.ndarray]:
    rng = np.random.default_rng(case.seed)
    conv = Conv2d(case.c_in, case.c_out, (case.kh, case.kw), case.stride, case.padding, rng=rng).astype(dtype)
    conv.bias.data[...] = rng.standard_normal(case.c_out)
    x = rng.standard_normal((case.n, case.c_in, case.h, case.w))
    return conv, x


EXAMPLES = [
    ConvCase(1, 1, 1, 3, 3, 3, 3),  # input exactly the kernel: one output pixel
    ConvCase(2, 3, 2, 5, 6, 1, 1, stride=2),  # 1x1 kernel, stride skips pixels
    ConvCase(1, 2, 3, 4, 5, 2, 3, stride=3, padding=2),  # non-square, stride > kernel, padding = kernel
    ConvCase(1, 1, 2, 1, 1, 3, 3, padding=1),  # 1x1 image, all but the centre is padding
]


def _with_examples(test):
    for case in EXAMPLES:
        test = example(case=case)(test)
    return test


# --- im2col / col2im ---------------------------------------------------------------------------


@given(case=conv_cases())
@_with_examples
def test_im2col_rows_are_the_padded_patches(case):
    _, x = make_conv(case)
    h_out, w_out = case.out_hw
    cols = im2col(x, (case.kh, case.kw), case.stride, case.padding)
    assert cols.shape == (case.n * h_out * w_out, case.c_in * case.kh * case.kw)
    assert conv_output_size(case.h, case.w, (case.kh, case.kw), case.stride, case.padding) == (h_out, w_out)
    xp = np.pad(x, ((0, 0), (0, 0), (case.padding,) * 2, (case.padding,) * 2))
    row = 0
    for i in range(case.n):
        for r in range(h_out):
            for s in range(w_out):
                patch = xp[
                    i,
                    :,
                    r * case.stride : r * case.stride + case.kh,
                    s * case.stride : s * case.stride + case.kw,
                ]
                np.testing.assert_array_equal(cols[row], patch.reshape(-1))
                row += 1


@given(case=conv_cases())
@_with_examples
def test_col2im_is_the_adjoint_of_im2col(case):
    # <im2col(x), c> == <x, col2im(c)> for all x, c: exactly what makes col2im im2col's backward
    _, x = make_conv(case)
    k = (case.kh, case.kw)
    c = np.random.default_rng(case.seed + 1).standard_normal(im2col(x, k, case.stride, case.padding).shape)
    back = col2im(c, x.shape, k, case.stride, case.padding)
    assert back.shape == x.shape
    if case.stride == 1 and case.padding == 0:  # the defaults
        np.testing.assert_array_equal(col2im(c, x.shape, k), back)
    np.testing.assert_allclose(
        np.sum(im2col(x, k, case.stride, case.padding) * c), np.sum(x * back), rtol=1e-10
    )


# --- Conv2d ------------------------------------------------------------------------------------


@given(case=conv_cases())
@_with_examples
def test_conv2d_forward_matches_loops(case):
    conv, x = make_conv(case)
    y = conv(Tensor(x, dtype=np.float64))
    assert y.shape == (case.n, case.c_out, *case.out_hw)
    expected = conv_forward_loops(x, conv.weight.data, conv.bias.data, case.stride, case.padding)
    np.testing.assert_allclose(y.data, expected, rtol=RTOL64, atol=ATOL64)


@given(case=conv_cases())
@_with_examples
def test_conv2d_backward_matches_loops(case):
    conv, x = make_conv(case)
    xt = Tensor(x, requires_grad=True, dtype=np.float64)
    y = conv(xt)
    g = np.random.default_rng(case.seed + 2).standard_normal(y.shape)
    y.backward(g)
    dx, dw, db = conv_backward_loops(x, conv.weight.data, g, case.stride, case.padding)
    np.testing.assert_allclose(xt.grad, dx, rtol=RTOL64, atol=ATOL64)
    np.testing.assert_allclose(conv.weight.grad, dw, rtol=RTOL64, atol=ATOL64)
    np.testing.assert_allclose(conv.bias.grad, db, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("case", EXAMPLES[:3] + [ConvCase(2, 2, 2, 5, 5, 3, 3, stride=2, padding=1, seed=7)])
def test_conv2d_gradients_match_finite_differences(case):
    conv, x = make_conv(case)
    check_module_grads(conv, conv, x)


def test_conv2d_float32_default_matches_loops():
    conv, x = make_conv(ConvCase(2, 3, 4, 6, 6, 3, 3, padding=1, seed=3), dtype=np.float32)
    x = x.astype(np.float32)
    y = conv(x)
    assert y.dtype == np.float32 and conv.weight.dtype == np.float32
    expected = conv_forward_loops(
        x.astype(np.float64), conv.weight.data.astype(np.float64), conv.bias.data, 1, 1
    )
    # float32 sums of 27 terms of size ~1: relative error ~27 * 6e-8 ~ 2e-6
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-5)


def test_conv2d_attributes_and_init():
    conv = Conv2d(3, 8, 5, stride=2, padding=1, rng=np.random.default_rng(0))
    assert conv.kernel_size == (5, 5) and conv.stride == 2 and conv.padding == 1
    assert conv.weight.shape == (8, 3, 5, 5) and conv.bias.shape == (8,)
    bound = math.sqrt(6 / (3 * 5 * 5))  # He uniform
    assert np.abs(conv.weight.data).max() <= bound
    np.testing.assert_array_equal(Conv2d(3, 8, 5, rng=np.random.default_rng(0)).weight.data, conv.weight.data)
    assert Conv2d(1, 1, 3, bias=False).bias is None
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]


def test_conv2d_product_goes_through_the_backend_as_one_gemm():
    conv = Conv2d(2, 5, 3, padding=1)
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 4)).astype(np.float32)
    fake = RecordingBackend()
    with use_backend(fake):
        y = conv(x)
    assert fake.calls == [("matmul", (3 * 4 * 4, 2 * 3 * 3), (2 * 3 * 3, 5))]
    np.testing.assert_array_equal(y.data, conv(x).data)


def test_conv2d_bad_input():
    conv = Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        conv(np.ones((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        conv(np.ones((1, 3, 2, 5)))
    with pytest.raises(ValueError, match="padding"):
        Conv2d(1, 1, 3, padding=-1)
    with pytest.raises(ValueError, match="stride"):
        Conv2d(1, 1, 3, stride=0)
    for bad in ((0, 1, 3), (1, 0, 3), (1, 1, 0)):
        with pytest.raises(ValueError, match=">= 1"):
            Conv2d(*bad)


def test_maxpool_with_a_non_square_kernel_needs_a_stride():
    with pytest.raises(ValueError, match="stride"):
        MaxPool2d((2, 3))
    pool = MaxPool2d((2, 3), stride=1)
    assert pool(np.arange(12.0).reshape(1, 1, 3, 4)).shape == (1, 1, 2, 2)


# --- MaxPool2d ---------------------------------------------------------------------------------


POOL_EXAMPLES = [
    PoolCase(1, 1, 4, 4, 2, 2, 2, fill="constant"),  # every window a tie: the first element wins
    PoolCase(1, 2, 5, 5, 3, 3, 1, fill="integers"),  # overlapping windows share winners
    PoolCase(2, 1, 7, 6, 2, 3, 3),  # non-square kernel, leftover rows/cols dropped
]


@given(case=pool_cases())
@example(case=POOL_EXAMPLES[0])
@example(case=POOL_EXAMPLES[1])
@example(case=POOL_EXAMPLES[2])
def test_maxpool_forward_and_backward_match_loops(case):
    x = case.input()
    pool = MaxPool2d((case.kh, case.kw), stride=case.stride)
    xt = Tensor(x, requires_grad=True, dtype=np.float64)
    y = pool(xt)
    expected, route = maxpool_loops(x, case.kh, case.kw, case.stride)
    np.testing.assert_array_equal(y.data, expected)
    g = np.random.default_rng(case.seed).standard_normal(y.shape)
    y.backward(g)
    dx = np.zeros_like(x)
    for i, c, r, s, row, col in route:
        dx[i, c, row, col] += g[i, c, r, s]
    np.testing.assert_allclose(xt.grad, dx, rtol=1e-12, atol=0)


def test_maxpool_gradient_matches_finite_differences():
    # distinct values spaced >> h apart: the argmax does not change within +-h
    x = np.random.default_rng(0).permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) * 0.1
    check_module_grads(MaxPool2d(2, stride=1), MaxPool2d(2, stride=1), x)


def test_maxpool_stride_defaults_to_kernel():
    pool = MaxPool2d(2)
    assert pool.kernel_size == (2, 2) and pool.stride == 2
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(pool(x).data, [[[[5, 7], [13, 15]]]])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        pool(np.ones((4, 4)))


def test_small_cnn_for_8x8_digits():
    rng = np.random.default_rng(0)
    model = Sequential(
        Conv2d(1, 16, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
        Conv2d(16, 32, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
        Flatten(), Linear(32 * 2 * 2, 10, rng=rng),
    )  # fmt: skip
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    logits = model(x)
    assert logits.shape == (5, 10) and logits.dtype == np.float32
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_replacing_weights_reshapes_the_layers():
    # filter pruning (module 18) replaces conv.weight/bias and the next layer's weight: the
    # channel counts follow the weights, and the pruned network computes the kept channels
    rng = np.random.default_rng(0)
    conv, nxt = Conv2d(2, 4, 3, rng=rng), Conv2d(4, 3, 1, rng=rng)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    keep = [0, 2]
    full = conv(x).data
    conv.weight = Tensor(conv.weight.data[keep], requires_grad=True)
    conv.bias = Tensor(conv.bias.data[keep], requires_grad=True)
    nxt.weight = Tensor(nxt.weight.data[:, keep], requires_grad=True)
    assert (conv.out_channels, nxt.in_channels) == (2, 2)
    np.testing.assert_array_equal(conv(x).data, full[:, keep])
    assert nxt(conv(x)).shape == (1, 3, 3, 3)
    lin = Linear(4, 3)
    lin.weight = Tensor(lin.weight.data[:2], requires_grad=True)
    assert lin.in_features == 2 and lin(np.ones((1, 2))).shape == (1, 3)
