"""Scaled dot-product attention and MultiHeadAttention (tinytorch.attention).

Float64 comparisons with a numpy reference use rtol 1e-10 (a handful of exp/sum/matmul steps in a
different order: errors of a few eps64 relative). Causality is asserted *exactly*: a masked
score is -inf, exp(-inf) is exactly 0, so a future key or value cannot change any bit of an
earlier output. Split-forward vs full-forward in float64 uses rtol 1e-9 (the split path adds the
same terms, but softmax normalisers are summed over differently sized rows).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import check_grad
from hypothesis import example, given
from hypothesis import strategies as st
from layercheck import RecordingBackend, check_module_grads, forward_in_chunks
from strategies import sequence_splits

from tinytorch import MultiHeadAttention, Tensor, scaled_dot_product_attention
from tinytorch.attention import causal_mask
from tinytorch.backend import use_backend


def attention_reference(q, k, v, causal=False, offset=0):
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if causal:
        t_q, t_k = s.shape[-2:]
        allowed = np.arange(t_k)[None, :] <= offset + np.arange(t_q)[:, None]
        s = np.where(allowed, s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ v


def t64(a, grad=False):
    return Tensor(a, requires_grad=grad, dtype=np.float64)


@given(
    lead=st.lists(st.integers(1, 2), max_size=2).map(tuple),
    t_q=st.integers(1, 5),
    past=st.integers(0, 3),
    d=st.integers(1, 4),
    causal=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@example(lead=(), t_q=1, past=0, d=1, causal=True, seed=0)  # one query, one key: output = v
def test_attention_matches_reference(lead, t_q, past, d, causal, seed):
    rng = np.random.default_rng(seed)
    t_k = past + t_q
    q, k, v = (rng.standard_normal((*lead, t, d)) for t in (t_q, t_k, t_k))
    out = scaled_dot_product_attention(t64(q), t64(k), t64(v), causal=causal, offset=past)
    assert out.shape == (*lead, t_q, d)
    np.testing.assert_allclose(out.data, attention_reference(q, k, v, causal, past), rtol=1e-10, atol=1e-12)


def test_causal_mask_marks_exactly_the_future():
    np.testing.assert_array_equal(
        causal_mask(2, 4, offset=1), [[False, False, True, True], [False, False, False, True]]
    )
    np.testing.assert_array_equal(causal_mask(3, 3), np.triu(np.ones((3, 3), bool), k=1))  # no past


@given(t=st.integers(2, 6), seed=st.integers(0, 2**32 - 1))
def test_attention_never_looks_at_future_keys_or_values(t, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((2, t, 3)) for _ in range(3))
    out = scaled_dot_product_attention(t64(q), t64(k), t64(v), causal=True).data
    for i in range(t - 1):
        k2, v2 = k.copy(), v.copy()
        k2[:, i + 1 :] = rng.standard_normal(k2[:, i + 1 :].shape) * 100  # wild future
        v2[:, i + 1 :] = rng.standard_normal(v2[:, i + 1 :].shape) * 100
        out2 = scaled_dot_product_attention(t64(q), t64(k2), t64(v2), causal=True).data
        np.testing.assert_array_equal(out2[:, : i + 1], out[:, : i + 1])


@pytest.mark.parametrize("causal,offset", [(False, 0), (True, 0), (True, 2)])
def test_attention_gradients(causal, offset):
    rng = np.random.default_rng(0)
    q, k, v = (
        rng.standard_normal((2, 3, 4)),
        rng.standard_normal((2, 3 + offset, 4)),
        rng.standard_normal((2, 3 + offset, 2)),
    )
    check_grad(lambda a, b, c: scaled_dot_product_attention(a, b, c, causal=causal, offset=offset), q, k, v)


def test_attention_bad_input():
    with pytest.raises(ValueError, match="shapes"):
        scaled_dot_product_attention(np.ones((2, 3)), np.ones((2, 4)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="offset"):
        scaled_dot_product_attention(
            np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), causal=True, offset=-1
        )


# --- MultiHeadAttention ------------------------------------------------------------------------


def make_mha(e=8, h=2, seed=0, causal=True):
    rng = np.random.default_rng(seed)
    mha = MultiHeadAttention(e, h, causal=causal, rng=rng).astype(np.float64)
    for name, p in mha.named_parameters():
        if name.endswith("bias"):
            p.data[...] = rng.standard_normal(p.shape) * 0.1
    return mha


def mha_reference(mha, x):
    """Per-head loops in numpy, from the parameters."""
    b, t, e = x.shape
    h, d = mha.n_heads, mha.head_dim

    def proj(lin, a):
        return a @ lin.weight.data + lin.bias.data

    q, k, v = proj(mha.q_proj, x), proj(mha.k_proj, x), proj(mha.v_proj, x)
    heads = [
        attention_reference(
            q[..., j * d : (j + 1) * d], k[..., j * d : (j + 1) * d], v[..., j * d : (j + 1) * d], mha.causal
        )
        for j in range(h)
    ]
    return proj(mha.out_proj, np.concatenate(heads, axis=-1)), k, v


@pytest.mark.parametrize("causal", [True, False])
def test_mha_matches_per_head_reference(causal):
    mha = make_mha(causal=causal)
    x = np.random.default_rng(1).standard_normal((2, 5, 8))
    y, (k, v) = mha(t64(x))
    ref_y, ref_k, ref_v = mha_reference(mha, x)
    np.testing.assert_allclose(y.data, ref_y, rtol=1e-10, atol=1e-12)
    assert k.shape == v.shape == (2, 2, 5, 4)  # (B, n_heads, T, head_dim)
    np.testing.assert_allclose(k.data, ref_k.reshape(2, 5, 2, 4).transpose(0, 2, 1, 3), rtol=1e-12)
    np.testing.assert_allclose(v.data, ref_v.reshape(2, 5, 2, 4).transpose(0, 2, 1, 3), rtol=1e-12)


def test_mha_attributes():
    mha = MultiHeadAttention(12, 3)
    assert (mha.n_heads, mha.head_dim, mha.causal) == (3, 4, True)
    assert [n for n, _ in mha.named_parameters()] == [
        f"{p}.{w}" for p in ("q_proj", "k_proj", "v_proj", "out_proj") for w in ("weight", "bias")
    ]
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


@given(t=st.integers(2, 6), seed=st.integers(0, 1000))
def test_mha_output_ignores_future_tokens_exactly(t, seed):
    mha = make_mha(seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, t, 8))
    y = mha(t64(x))[0].data
    for i in range(t - 1):
        x2 = x.copy()
        x2[:, i + 1 :] = rng.standard_normal(x2[:, i + 1 :].shape) * 10
        np.testing.assert_array_equal(mha(t64(x2))[0].data[:, : i + 1], y[:, : i + 1])


@given(split=sequence_splits())
@example(split=(1, []))  # a one-token sequence
@example(split=(5, [1, 2, 3, 4]))  # one token at a time
def test_mha_with_past_kv_equals_full_forward(split):
    t, cuts = split
    mha = make_mha()
    x = np.random.default_rng(t).standard_normal((2, t, 8))
    full = mha(t64(x))[0].data
    np.testing.assert_allclose(forward_in_chunks(mha, x, cuts), full, rtol=1e-9, atol=1e-12)


def test_mha_every_single_split_point():
    mha = make_mha()
    x = np.random.default_rng(3).standard_normal((1, 7, 8))
    full = mha(t64(x))[0].data
    for cut in range(1, 7):
        np.testing.assert_allclose(forward_in_chunks(mha, x, [cut]), full, rtol=1e-9, atol=1e-12)


def test_mha_rejects_bad_past_kv_and_input():
    mha = make_mha()
    x = t64(np.ones((1, 2, 8)))
    with pytest.raises(ValueError, match="past_kv"):
        mha(x, (np.ones((1, 2, 3, 3)), np.ones((1, 2, 3, 3))))
    with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
        mha(t64(np.ones((2, 8))))


def test_mha_gradients_match_finite_differences():
    mha = make_mha(e=4, h=2)
    x = np.random.default_rng(5).standard_normal((1, 3, 4))
    check_module_grads(mha, lambda xt: mha(xt)[0], x)


def test_mha_gradients_with_past_kv():
    mha = make_mha(e=4, h=2)
    rng = np.random.default_rng(6)
    x, kp, vp = (
        rng.standard_normal((1, 2, 4)),
        rng.standard_normal((1, 2, 3, 2)),
        rng.standard_normal((1, 2, 3, 2)),
    )
    check_module_grads(mha, lambda xt, k, v: mha(xt, (k, v))[0], x, kp, vp)


def test_mha_projections_go_through_the_backend():
    mha = MultiHeadAttention(8, 2)
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    fake = RecordingBackend()
    with use_backend(fake):
        mha(x)
    assert fake.calls == [("matmul", (6, 8), (8, 8))] * 4  # q, k, v, out; the batched scores stay numpy


# --- empty sequences and empty heads ------------------------------------------------------------


def test_head_size_zero_is_a_clear_error():
    q = np.ones((1, 2, 0), np.float32)
    with pytest.raises(ValueError, match="head size"):
        scaled_dot_product_attention(q, q, np.ones((1, 2, 3), np.float32))


def test_queries_without_keys_are_a_clear_error():
    with pytest.raises(ValueError, match="no keys"):
        scaled_dot_product_attention(
            np.ones((1, 2, 4), np.float32), np.ones((1, 0, 4), np.float32), np.ones((1, 0, 4), np.float32)
        )


@pytest.mark.parametrize("t_k", [0, 3])
def test_no_queries_give_an_empty_result(t_k):
    out = scaled_dot_product_attention(
        np.ones((2, 0, 4), np.float32),
        np.ones((2, t_k, 4), np.float32),
        np.ones((2, t_k, 5), np.float32),
        causal=True,
    )
    assert out.shape == (2, 0, 5)


def test_attention_over_an_empty_sequence_returns_empty_outputs():
    mha = MultiHeadAttention(4, 2, rng=np.random.default_rng(0))
    y, (k, v) = mha(np.ones((3, 0, 4), np.float32))
    assert y.shape == (3, 0, 4) and k.shape == v.shape == (3, 2, 0, 2)
    _, past = mha(np.ones((3, 2, 4), np.float32))
    y, (k, _) = mha(np.ones((3, 0, 4), np.float32), past_kv=past)  # nothing new after a past
    assert y.shape == (3, 0, 4) and k.shape == (3, 2, 0, 2)
