"""Losses, optimisers and the training loop (tinytorch.losses, optim, training).

Loss values are compared with float64 numpy references at rtol 1e-12 (a log-sum-exp of at most 6
terms: a few eps64). Optimiser steps are checked against their formulas written out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_grad
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch import (
    SGD,
    Adam,
    Dropout,
    Linear,
    ReLU,
    Sequential,
    Tensor,
    cross_entropy,
    is_grad_enabled,
    mse_loss,
)
from tinytorch.training import accuracy, evaluate, fit, inference, minibatches, predict


@st.composite
def logits_and_targets(draw):
    """Logits at scales 1, 50 and 1000 (where a naive exp overflows), constant rows included."""
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    z = draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-1, 1))) * draw(
        st.sampled_from([1.0, 50.0, 1000.0])
    )
    y = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    return z, y


def ce_reference(z, y):
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    return np.mean(lse - z[np.arange(len(y)), y])


@given(case=logits_and_targets())
@example(case=(np.array([[1000.0, -1000.0, 0.0]]), np.array([1])))  # exp(1000) overflows without the shift
@example(case=(np.zeros((3, 4)), np.array([0, 1, 3])))  # uniform: loss = log C
def test_cross_entropy_value_and_gradient(case):
    z, y = case
    zt = Tensor(z, requires_grad=True, dtype=np.float64)
    loss = cross_entropy(zt, y)
    assert loss.shape == () and np.isfinite(loss.item())
    np.testing.assert_allclose(loss.item(), ce_reference(z, y), rtol=1e-12, atol=1e-12)
    loss.backward()
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(z.shape[1])[y]
    np.testing.assert_allclose(zt.grad, (p - onehot) / len(y), rtol=1e-12, atol=1e-15)


def test_cross_entropy_finite_differences():
    y = np.array([2, 0, 1])
    check_grad(lambda z: cross_entropy(z, y), np.random.default_rng(0).standard_normal((3, 4)))


def test_cross_entropy_sequence_logits_equal_flattened():
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((2, 3, 5)), rng.integers(0, 5, (2, 3))
    np.testing.assert_allclose(
        cross_entropy(Tensor(z, dtype=np.float64), y).item(),
        ce_reference(z.reshape(6, 5), y.reshape(6)),
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    "z,y,err,match",
    [
        (np.array([[np.nan, 0.0]]), np.array([0]), ValueError, "NaN or inf"),
        (np.array([[np.inf, 0.0]]), np.array([0]), ValueError, "NaN or inf"),
        (np.zeros((3, 2)), np.array([0, 1]), ValueError, "do not match"),
        (np.zeros((2, 2)), np.array([0, 2]), ValueError, r"\[0, 2\)"),
        (np.zeros((2, 2)), np.array([-1, 0]), ValueError, r"\[0, 2\)"),
        (np.zeros((2, 2)), np.array([0.0, 1.0]), TypeError, "integer"),
        (np.zeros(3), np.array(0), ValueError, r"\(N, C\)"),
    ],
)
def test_cross_entropy_bad_input(z, y, err, match):
    with pytest.raises(err, match=match):
        cross_entropy(Tensor(z), y)


def test_mse_loss():
    pred, target = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    pt = Tensor(pred, requires_grad=True, dtype=np.float64)
    loss = mse_loss(pt, target)
    assert loss.item() == pytest.approx((0 + 4 + 9 + 16) / 4)
    loss.backward()
    np.testing.assert_allclose(pt.grad, 2 * (pred - target) / 4)
    with pytest.raises(ValueError, match="shape"):
        mse_loss(pt, np.zeros(2))


@pytest.mark.parametrize("where_nan", ["pred", "target"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_mse_loss_rejects_nan_and_inf_naming_the_argument(where_nan, bad):
    pred, target = np.zeros((2, 2)), np.ones((2, 2))
    (pred if where_nan == "pred" else target)[1, 0] = bad
    with pytest.raises(ValueError, match=f"{where_nan} contains NaN or inf"):
        mse_loss(Tensor(pred, requires_grad=True), target)


# --- optimisers --------------------------------------------------------------------------------

A = np.array([1.0, 4.0, 0.25])  # curvatures of the quadratic
C = np.array([3.0, -2.0, 0.5])  # its minimum


def quadratic_grad(p: Tensor) -> np.ndarray:
    """f(p) = 0.5 * sum(A * (p - C)^2), grad = A * (p - C); set through autograd."""
    p.grad = None
    (0.5 * (Tensor(A, dtype=np.float64) * (p - C) ** 2).sum()).backward()
    return p.grad


def make_param():
    return Tensor(np.zeros(3), requires_grad=True, dtype=np.float64)


def test_sgd_step_is_p_minus_lr_g():
    p = make_param()
    g = quadratic_grad(p)
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, -0.1 * g)


def test_sgd_momentum_accumulates_velocity():
    p = make_param()
    opt = SGD([p], lr=0.1, momentum=0.9)
    g1 = quadratic_grad(p)
    opt.step()
    p1 = p.data.copy()
    g2 = quadratic_grad(p)
    opt.step()
    np.testing.assert_allclose(p1, -0.1 * g1)
    np.testing.assert_allclose(p.data, p1 - 0.1 * (0.9 * g1 + g2))


def test_adam_first_steps_follow_the_formula():
    p = make_param()
    opt = Adam([p], lr=0.01)
    g1 = quadratic_grad(p)
    opt.step()
    np.testing.assert_allclose(p.data, -0.01 * np.sign(g1), rtol=1e-6)  # m_hat / sqrt(v_hat) = g/|g|
    g2 = quadratic_grad(p)
    p1 = p.data.copy()
    opt.step()
    m = 0.9 * (0.1 * g1) + 0.1 * g2
    v = 0.999 * (0.001 * g1**2) + 0.001 * g2**2
    expected = p1 - 0.01 * (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
    np.testing.assert_allclose(p.data, expected, rtol=1e-12)


@pytest.mark.parametrize(
    "make_opt,steps",
    [
        (lambda p: SGD([p], lr=0.2), 200),  # contraction 1 - lr*a: worst 0.95 per step
        (lambda p: SGD([p], lr=0.05, momentum=0.9), 300),
        (lambda p: Adam([p], lr=0.05), 1000),
    ],
)
def test_optimizers_converge_on_a_quadratic(make_opt, steps):
    p = make_param()
    opt = make_opt(p)
    for _ in range(steps):
        quadratic_grad(p)
        opt.step()
    np.testing.assert_allclose(p.data, C, atol=1e-3)


def test_optimizers_skip_missing_grads_and_zero_grad():
    p, q = make_param(), make_param()
    for opt in (SGD([p, q], lr=0.1, momentum=0.5), Adam([p, q])):
        quadratic_grad(p)
        opt.step()
        np.testing.assert_array_equal(q.data, np.zeros(3))
        opt.zero_grad()
        assert p.grad is None and q.grad is None


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda p: SGD([p], lr=0.0), "lr"),
        (lambda p: SGD([p], lr=0.1, momentum=1.0), "momentum"),
        (lambda p: Adam([p], betas=(0.9, 1.0)), r"betas\[1\]"),
        (lambda p: Adam([p], eps=0.0), "eps"),
        (lambda p: SGD([], lr=0.1), "empty"),
    ],
)
def test_optimizer_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build(make_param())


def test_optimizer_rejects_non_parameters():
    with pytest.raises(TypeError, match=r"params\[0\]"):
        SGD([Tensor(np.zeros(2))], lr=0.1)


# --- training loop -----------------------------------------------------------------------------


def blobs(seed=0, n=64):
    """Two Gaussian blobs 4 standard deviations apart: linearly separable in practice."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.standard_normal((n, 2)) * 0.5 + np.where(y[:, None] == 1, 1.0, -1.0)
    return x.astype(np.float32), y


def test_fit_reduces_loss_and_separates_blobs():
    x, y = blobs()
    rng = np.random.default_rng(0)
    model = Sequential(Linear(2, 8, rng=rng), ReLU(), Linear(8, 2, rng=rng))
    before = evaluate(model, cross_entropy, [(x, y)])
    history = fit(
        model, cross_entropy, Adam(model.parameters(), lr=0.05), lambda: minibatches(x, y, 16, rng), epochs=15
    )
    assert len(history) == 15
    assert history[-1] < 0.25 * history[0]
    after = evaluate(model, cross_entropy, [(x, y)])
    assert after < 0.25 * before
    assert accuracy(model, x, y) == 1.0
    np.testing.assert_array_equal(predict(model, x, batch_size=7), model(x).data.argmax(axis=1))


def test_evaluate_and_predict_record_no_graph_in_eval_mode_and_restore_the_mode():
    x, y = blobs(n=8)
    model = Sequential(Linear(2, 2), Dropout(0.5))
    seen = []  # (requires_grad of the output, training flag) at every forward inside the calls
    model.register_forward_hook(lambda m, inputs, out: seen.append((out.requires_grad, m.training)))
    model.train()
    loss = evaluate(model, cross_entropy, [(x[:4], y[:4]), (x[4:], y[4:])])
    predict(model, x, batch_size=3)
    assert seen == [(False, False)] * 5 and model.training  # 2 evaluate batches, 3 predict batches
    with pytest.raises(ZeroDivisionError), inference(model):
        1 / 0  # noqa: B018
    assert model.training and is_grad_enabled()
    model.eval()
    expected = (cross_entropy(model(x[:4]), y[:4]).item() + cross_entropy(model(x[4:]), y[4:]).item()) / 2
    assert loss == pytest.approx(expected, rel=1e-6)


def test_minibatches_cover_every_row_once():
    x, y = np.arange(10)[:, None], np.arange(10)
    batches = minibatches(x, y, 3, rng=np.random.default_rng(0))
    assert [len(b[1]) for b in batches] == [3, 3, 3, 1]
    assert sorted(np.concatenate([b[1] for b in batches]).tolist()) == list(range(10))
    assert all(np.array_equal(bx[:, 0], by) for bx, by in batches)  # rows stay paired


def test_fit_rejects_one_shot_iterator_for_several_epochs_and_bad_epochs():
    x, y = blobs(n=4)
    model = Sequential(Linear(2, 2))
    with pytest.raises(ValueError, match="iterator"):
        fit(model, cross_entropy, SGD(model.parameters(), lr=0.1), iter([(x, y)]), epochs=2)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, cross_entropy, SGD(model.parameters(), lr=0.1), [(x, y)], epochs=0)
    with pytest.raises(TypeError, match="epochs"):
        fit(model, cross_entropy, SGD(model.parameters(), lr=0.1), [(x, y)], epochs=2.0)


@pytest.mark.parametrize(("batch_size", "error"), [(0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_minibatches_bad_batch_size_names_it(batch_size, error):
    x, y = blobs(n=4)
    with pytest.raises(error, match="batch_size"):
        minibatches(x, y, batch_size)


# --- integer logits, a zero learning rate, one-shot iterators --------------------------------------


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.bool_])
def test_cross_entropy_of_integer_logits_is_a_float(dtype):
    logits = np.array([[1, 0, 0], [0, 1, 1]], dtype=dtype)
    targets = np.array([0, 2])
    loss = cross_entropy(logits, targets)
    assert loss.dtype == np.float32
    expected = cross_entropy(logits.astype(np.float32), targets)
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)
    assert 0.5 < loss.item() < 1.0  # -log(e/(e+2)) = 0.5514 and -log(e/(2e+1)) = 0.8620, mean 0.7067


@pytest.mark.parametrize("optimizer", [SGD, Adam])
def test_a_zero_learning_rate_is_refused(optimizer):
    with pytest.raises(ValueError, match="lr"):
        optimizer([make_param()], lr=0.0)


def test_fit_takes_a_one_shot_iterator_for_one_epoch():
    rng = np.random.default_rng(0)
    model = Linear(2, 2, rng=rng)
    x = rng.standard_normal((8, 2)).astype(np.float32)
    y = np.array([0, 1] * 4)
    batches = iter([(x[:4], y[:4]), (x[4:], y[4:])])
    history = fit(model, cross_entropy, SGD(model.parameters(), lr=0.1), batches, epochs=1)
    assert len(history) == 1 and np.isfinite(history[0])
    with pytest.raises(ValueError, match="one-shot iterator"):
        fit(model, cross_entropy, SGD(model.parameters(), lr=0.1), iter([(x, y)]), epochs=2)
