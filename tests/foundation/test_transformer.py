"""TransformerBlock and GPT with a key/value cache (tinytorch.transformer).

The central property: feeding a sequence in pieces, carrying the keys/values, gives the same
outputs as one full forward, for every split point. Checked in float64 with rtol 1e-9: both paths
add the same products, only the grouping of the softmax sums and matmul blocking differ
(a few eps64 per op, a few dozen ops deep). Greedy generation must give *identical* tokens.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from layercheck import RecordingBackend, check_module_grads, forward_in_chunks
from strategies import sequence_splits

from tinytorch import GELU, GPT, Linear, Sequential, Tensor, TransformerBlock, is_grad_enabled
from tinytorch.backend import use_backend

RTOL, ATOL = 1e-9, 1e-12  # float64, see module doc

VOCAB, MAX_LEN, EMBED, HEADS, LAYERS = 7, 12, 8, 2, 2


def make_block(seed=0):
    return TransformerBlock(EMBED, HEADS, mlp_ratio=2, rng=np.random.default_rng(seed)).astype(np.float64)


def make_gpt(seed=0, dtype=np.float64):
    return GPT(VOCAB, MAX_LEN, EMBED, HEADS, LAYERS, rng=np.random.default_rng(seed)).astype(dtype)


def t64(a):
    return Tensor(a, dtype=np.float64)


# --- TransformerBlock --------------------------------------------------------------------------


def test_block_structure():
    block = TransformerBlock(8, 2)  # default mlp_ratio 4
    assert [n for n, _ in block.named_children()] == ["ln1", "attn", "ln2", "mlp"]
    assert isinstance(block.mlp, Sequential) and len(block.mlp) == 3
    first, act, second = block.mlp
    assert isinstance(first, Linear) and isinstance(act, GELU) and isinstance(second, Linear)
    assert first.weight.shape == (8, 32) and second.weight.shape == (32, 8)
    assert block.attn.causal and block.attn.n_heads == 2


def test_block_is_pre_norm_residual():
    block = make_block()
    rng = np.random.default_rng(1)
    for p in (block.ln1.weight, block.ln2.weight, block.ln1.bias, block.ln2.bias):
        p.data[...] = rng.standard_normal(p.shape)  # non-trivial norms so the wiring matters
    x = t64(rng.standard_normal((2, 4, EMBED)))
    y, (k, v) = block(x)
    h = x + block.attn(block.ln1(x))[0]
    expected = h + block.mlp(block.ln2(h))
    np.testing.assert_allclose(y.data, expected.data, rtol=1e-12, atol=1e-12)
    assert k.shape == v.shape == (2, HEADS, 4, EMBED // HEADS)


def test_block_past_kv_equals_full_forward_at_every_split_point():
    block = make_block()
    x = np.random.default_rng(2).standard_normal((2, 8, EMBED))
    full = block(t64(x))[0].data
    for cut in range(1, 8):
        np.testing.assert_allclose(forward_in_chunks(block, x, [cut]), full, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(forward_in_chunks(block, x, list(range(1, 8))), full, rtol=RTOL, atol=ATOL)


@given(split=sequence_splits())
@example(split=(1, []))
def test_block_past_kv_equals_full_forward_for_any_chunking(split):
    t, cuts = split
    block = make_block(seed=t)
    x = np.random.default_rng(t).standard_normal((1, t, EMBED))
    np.testing.assert_allclose(forward_in_chunks(block, x, cuts), block(t64(x))[0].data, rtol=RTOL, atol=ATOL)


def test_block_gradients_match_finite_differences():
    block = TransformerBlock(4, 2, mlp_ratio=1, rng=np.random.default_rng(3))
    x = np.random.default_rng(4).standard_normal((1, 3, 4))
    check_module_grads(block, lambda xt: block(xt)[0], x)


# --- GPT ---------------------------------------------------------------------------------------


def test_gpt_structure_and_names():
    gpt = make_gpt()
    names = [n for n, _ in gpt.named_parameters()]
    assert names[:2] == ["tok_emb.weight", "pos_emb.weight"]
    assert names[2] == "blocks.0.ln1.weight" and "blocks.1.mlp.layers.2.bias" in names
    assert names[-4:] == ["ln_f.weight", "ln_f.bias", "head.weight", "head.bias"]
    assert len(gpt.blocks) == LAYERS
    assert gpt.tok_emb.weight.shape == (VOCAB, EMBED) and gpt.pos_emb.weight.shape == (MAX_LEN, EMBED)
    assert gpt.head.weight.shape == (EMBED, VOCAB)
    sizes = (gpt.vocab_size, gpt.max_seq_len, gpt.embed_dim, gpt.n_heads, gpt.n_layers)
    assert sizes == (VOCAB, MAX_LEN, EMBED, HEADS, LAYERS)
    for i, name in enumerate(("vocab_size", "max_seq_len", "embed_dim", "n_heads", "n_layers")):
        bad = [VOCAB, MAX_LEN, EMBED, HEADS, LAYERS]
        bad[i] = 0
        with pytest.raises(ValueError, match=name):
            GPT(*bad)


def test_gpt_forward_shapes_and_present():
    gpt = make_gpt()
    tokens = np.random.default_rng(0).integers(0, VOCAB, (3, 5))
    logits, present = gpt(tokens)
    assert logits.shape == (3, 5, VOCAB)
    assert len(present) == LAYERS
    for k, v in present:
        assert k.shape == v.shape == (3, HEADS, 5, EMBED // HEADS)
    _, present2 = gpt(tokens[:, :2], past_kv=present)
    assert all(k.shape[2] == 7 for k, _ in present2)  # all positions so far: 5 past + 2 new


def gpt_in_chunks(gpt, tokens, cuts):
    bounds = [0, *cuts, tokens.shape[1]]
    past, outs = None, []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        logits, past = gpt(tokens[:, a:b], past_kv=past)
        assert all(k.shape[2] == b for k, _ in past)
        outs.append(logits.data)
    return np.concatenate(outs, axis=1)


def test_gpt_past_kv_equals_full_forward_at_every_split_point():
    gpt = make_gpt()
    tokens = np.random.default_rng(5).integers(0, VOCAB, (2, MAX_LEN))
    full = gpt(tokens)[0].data
    for cut in range(1, MAX_LEN):
        np.testing.assert_allclose(gpt_in_chunks(gpt, tokens, [cut]), full, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        gpt_in_chunks(gpt, tokens, list(range(1, MAX_LEN))), full, rtol=RTOL, atol=ATOL
    )


@given(split=sequence_splits(max_len=MAX_LEN), seed=st.integers(0, 1000))
@example(split=(1, []), seed=0)  # a one-token prompt
def test_gpt_past_kv_equals_full_forward_for_any_chunking(split, seed):
    t, cuts = split
    gpt = make_gpt(seed % 3)
    tokens = np.random.default_rng(seed).integers(0, VOCAB, (1, t))
    np.testing.assert_allclose(gpt_in_chunks(gpt, tokens, cuts), gpt(tokens)[0].data, rtol=RTOL, atol=ATOL)


def test_gpt_float32_cache_agrees_with_full_forward():
    gpt = make_gpt(dtype=np.float32)
    tokens = np.random.default_rng(6).integers(0, VOCAB, (2, 9))
    full = gpt(tokens)[0]
    assert full.dtype == np.float32
    # float32 through ~2 blocks of sums over <= 32 terms: relative ~1e-6; 1e-4 absolute on O(1) logits
    np.testing.assert_allclose(gpt_in_chunks(gpt, tokens, [4, 5]), full.data, rtol=1e-4, atol=1e-4)


def test_gpt_logits_ignore_future_tokens_exactly():
    gpt = make_gpt()
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, VOCAB, (1, 8))
    logits = gpt(tokens)[0].data
    for i in range(7):
        changed = tokens.copy()
        changed[:, i + 1 :] = (changed[:, i + 1 :] + 1 + rng.integers(0, VOCAB - 1, (1, 7 - i))) % VOCAB
        np.testing.assert_array_equal(gpt(changed)[0].data[:, : i + 1], logits[:, : i + 1])


def test_gpt_rejects_sequences_longer_than_max_seq_len():
    gpt = make_gpt()
    with pytest.raises(ValueError, match=f"max_seq_len={MAX_LEN}"):
        gpt(np.zeros((1, MAX_LEN + 1), dtype=np.int64))
    _, present = gpt(np.zeros((1, MAX_LEN - 1), dtype=np.int64))
    gpt(np.zeros((1, 1), dtype=np.int64), past_kv=present)  # exactly max_seq_len: fine
    with pytest.raises(ValueError, match=f"max_seq_len={MAX_LEN}"):
        gpt(np.zeros((1, 2), dtype=np.int64), past_kv=present)
    with pytest.raises(ValueError, match=f"max_seq_len={MAX_LEN}"):
        gpt.generate(np.array([1, 2, 3]), MAX_LEN - 2)
    with pytest.raises(ValueError, match="past_kv"):
        gpt(np.zeros((1, 1), dtype=np.int64), past_kv=present[:1])


def greedy_reference(gpt, prompt, n):
    seq = list(prompt)
    for _ in range(n):
        seq.append(int(gpt(np.array([seq]))[0].data[0, -1].argmax()))
    return seq


@pytest.mark.parametrize("prompt", [[3], [0, 6], [1, 2, 3, 4, 5]])
def test_generate_greedy_same_tokens_with_and_without_cache(prompt):
    gpt = make_gpt(seed=len(prompt), dtype=np.float32)
    n = MAX_LEN - len(prompt)
    cached = gpt.generate(np.array(prompt), n, use_cache=True)
    uncached = gpt.generate(np.array(prompt), n, use_cache=False)
    assert cached.shape == (MAX_LEN,)
    np.testing.assert_array_equal(cached, uncached)
    np.testing.assert_array_equal(cached[: len(prompt)], prompt)
    np.testing.assert_array_equal(uncached, greedy_reference(gpt, prompt, n))
    assert (
        len(set(cached[len(prompt) :].tolist())) > 1 or n < 3
    )  # a random model does not repeat one token forever


def test_generate_batch_zero_tokens_and_no_graph():
    gpt = make_gpt(dtype=np.float32)
    prompts = np.array([[1, 2], [3, 4], [5, 6]])
    recorded = []  # does any forward inside generate record a graph?
    gpt.head.register_forward_hook(lambda m, inputs, out: recorded.append(out.requires_grad))
    out = gpt.generate(prompts, 4)
    assert recorded == [False] * 4 and is_grad_enabled()
    assert out.shape == (3, 6)
    for row, prompt in zip(out, prompts, strict=True):
        np.testing.assert_array_equal(row, gpt.generate(prompt, 4, use_cache=False))
    np.testing.assert_array_equal(gpt.generate(prompts, 0), prompts)
    assert all(p.grad is None for p in gpt.parameters())
    with pytest.raises(ValueError, match="T >= 1"):
        gpt.generate(np.zeros((1, 0), dtype=np.int64), 1)
    with pytest.raises(ValueError, match="max_new_tokens"):
        gpt.generate(np.array([1]), -1)
    with pytest.raises(TypeError, match="max_new_tokens"):
        gpt.generate(np.array([1]), 2.0)


def test_gpt_products_go_through_the_backend():
    gpt = make_gpt(dtype=np.float32)
    fake = RecordingBackend()
    with use_backend(fake):
        gpt(np.zeros((2, 3), dtype=np.int64))
    assert [op for op, _, _ in fake.calls] == ["matmul"] * (LAYERS * 6 + 1)  # q, k, v, out, 2 mlp; the head


def test_gpt_trains_gradient_reaches_every_parameter():
    gpt = make_gpt(dtype=np.float32)
    logits, _ = gpt(np.random.default_rng(0).integers(0, VOCAB, (2, 5)))
    logits.sum().backward()
    for name, p in gpt.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
