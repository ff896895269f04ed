"""Module 19 (caching): a preallocated KV cache, cached attention and generation with it.

Every test here fails on the untouched stubs (katas/caching) and passes on the reference
(solutions/caching). The correctness reference is the foundation: one full causal forward
``GPT.forward(tokens)`` and ``GPT.generate(..., use_cache=False)``. Speed is not tested:
``tinytorch bench caching`` measures it.

Tolerance of the logits (``assert_logits_close``). Cached and full forwards run the same float32
operations on the same numbers; only the order of the additions differs (a (t, E) @ (E, E)
product instead of a (T, E) one, a softmax row over P + t keys in another BLAS kernel). A masked
key contributes exactly 0 in both (exp(-inf) = 0) and the softmax subtracts the maximum of the
same unmasked scores. Each dot product of length K then differs by at most
gamma_K * sum |a_i b_i| ~ K u (u = 2**-24, K <= 4E) relative to its magnitudes (Higham, eq. 3.5),
a few such errors per block. LayerNorm divides by the standard deviation of its input, which can
be far smaller than the input's magnitude (cancellation in x - mean), so it amplifies them by up
to |x| / std: measured over 3,000 random GPTs with embed_dim >= 4, the largest difference was
92 EPS32 per layer relative to 1 + max |logit| (1.3-2.2 EPS32 on the two zoo transformers). We
allow ``1024 * EPS32 * n_layers * (1 + max |logit|)``: 10x that worst case, and still about 1000x
smaller than what any of the classic mistakes does to the logits (O(0.1) or more). A float64 model
with a float64 cache gets the same bound with EPS64 (the argument only uses the unit roundoff).

One file, whole: it is the module's suite as the registry names it (``tests = ...`` in
tinytorch/course/modules.toml), the file ``tinytorch test caching`` runs, the grader collects and
the classic mistakes' ``caught_by`` names; it reads in sections, one per task.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from strategies import GPTShape, chunkings, gpt_shapes
from tinytorch.perf.caching import (
    KVCache,
    cached_attention,
    cached_forward,
    generate,
    new_cache,
    sample_next,
)

from tinytorch import zoo
from tinytorch.attention import MultiHeadAttention
from tinytorch.data import decode_text, encode_text
from tinytorch.tensor import Tensor, no_grad
from tinytorch.transformer import GPT

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)
ZOO_GPTS = ["transformer_sort", "transformer_pydoc"]
PYDOC_PROMPT = 'The "assert" statement\n'
# 8 random splits per zoo model (the 256-position one costs ~0.3 s each); the whole 256-token context
# in uneven chunks has its own test below.
SLOW = settings(max_examples=8, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def zoo_gpt(name: str) -> GPT:
    """A zoo transformer, loaded once per test session."""
    return zoo.load_model(name)


def random_gpt(shape: GPTShape) -> GPT:
    return GPT(**shape.kwargs(), rng=np.random.default_rng(shape.seed))


def random_tokens(model: GPT, batch: int, length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, model.vocab_size, (batch, length))


def full_logits(model: GPT, tokens: np.ndarray) -> np.ndarray:
    with no_grad():
        return model(tokens)[0].data


def chunked_logits(model: GPT, tokens: np.ndarray, chunks: list[int], cache: KVCache | None = None):
    """Logits of ``tokens`` fed through a cache chunk by chunk, concatenated along time."""
    cache = new_cache(model, tokens.shape[0]) if cache is None else cache
    parts, start = [], 0
    for size in chunks:
        parts.append(cached_forward(model, tokens[:, start : start + size], cache))
        start += size
        assert cache.length == start, f"after {start} tokens the cache holds {cache.length} positions"
    return np.concatenate(parts, axis=1), cache


def assert_logits_close(
    got: np.ndarray, expected: np.ndarray, n_layers: int, what: str = "logits", eps: float = EPS32
) -> None:
    """``what`` (the quantity compared, named in the message) equal up to rounding: the bound of the
    module docstring, ``1024 * eps * n_layers * (1 + max |expected|)``, with eps the machine epsilon
    of the precision the model computes in (float32 unless a test says otherwise)."""
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    tolerance = 1024 * eps * n_layers * (1.0 + float(np.abs(expected).max()))
    err = np.abs(got.astype(np.float64) - expected)
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(err), err.shape))
    largest = float(err.max())  # a float, so a failure report does not print the arrays
    assert largest <= tolerance, f"{what} differ by {largest:.3g} > {tolerance:.3g} at {worst}"


# --------------------------------------------------------------------------------------------
# Incremental decoding equals one full causal forward
# --------------------------------------------------------------------------------------------


@st.composite
def split_cases(draw):
    shape = draw(gpt_shapes())
    total = draw(st.integers(1, shape.max_seq_len))
    return shape, draw(chunkings(total)), draw(st.integers(1, 3))


@given(split_cases())
@example((GPTShape(max_seq_len=8), [8], 1))  # the whole sequence at once (prefill only)
@example((GPTShape(max_seq_len=8), [1] * 8, 1))  # one token at a time
@example((GPTShape(max_seq_len=8), [1, 7], 2))  # a one-token prompt, then a long chunk
@example((GPTShape(max_seq_len=9, n_layers=3, seed=5), [3, 1, 4, 1], 1))  # chunks after a past
@example((GPTShape(vocab_size=2, max_seq_len=1, embed_dim=4, n_heads=1), [1], 1))  # the shortest context
def test_incremental_decoding_equals_the_full_forward(case) -> None:
    shape, chunks, batch = case
    model = random_gpt(shape)
    tokens = random_tokens(model, batch, sum(chunks), seed=shape.seed)
    got, cache = chunked_logits(model, tokens, chunks)
    assert_logits_close(got, full_logits(model, tokens), model.n_layers)
    assert cache.length == sum(chunks), f"cache.length {cache.length} after {sum(chunks)} tokens"


@given(split_cases())
@example((GPTShape(embed_dim=12, n_heads=4, n_layers=2, seed=1), [4, 1, 7], 2))  # head_dim 3
@example((GPTShape(embed_dim=10, n_heads=2, max_seq_len=6, seed=2), [1] * 6, 1))  # head_dim 5
def test_float64_cached_decoding_equals_the_float64_full_forward(case) -> None:
    # A float64 model with a float64 cache: the same derivation as the module docstring's with
    # float64's unit roundoff, so 1024 EPS64 * n_layers * (1 + max |logit|) (measured worst over
    # 600 random float64 GPTs: 2.7 EPS64). A constant kept in float32 (the scale 1/sqrt(D) as
    # np.float32, D = 3 or 5) is off by ~1e-8 relative: 10^7 times that.
    shape, chunks, batch = case
    model = random_gpt(shape).astype(np.float64)
    tokens = random_tokens(model, batch, sum(chunks), seed=shape.seed)
    got, _ = chunked_logits(model, tokens, chunks, new_cache(model, batch, dtype=np.float64))
    assert got.dtype == np.float64, f"float64 model's cached logits have dtype {got.dtype}"
    assert_logits_close(got, full_logits(model, tokens), model.n_layers, "float64 logits", EPS64)


@pytest.mark.parametrize("name", ZOO_GPTS)
@SLOW
@given(data=st.data())
def test_incremental_decoding_equals_the_full_forward_on_the_zoo_transformers(name, data) -> None:
    model = zoo_gpt(name)
    length = data.draw(st.integers(1, model.max_seq_len), label="length")
    chunks = data.draw(chunkings(length), label="chunks")
    tokens = random_tokens(model, 2, model.max_seq_len, seed=length)[:, :length]
    got, _ = chunked_logits(model, tokens, chunks)
    assert_logits_close(got, full_logits(model, tokens), model.n_layers)


def test_the_long_context_model_over_its_whole_context_in_uneven_chunks() -> None:
    model = zoo_gpt("transformer_pydoc")
    assert model.max_seq_len >= 256, f"transformer_pydoc's max_seq_len is {model.max_seq_len}, not >= 256"
    text = zoo.eval_data("transformer_pydoc")[0][:1]  # real text: (1, 256)
    chunks = [1, 2, 61, 64, 1, 1, 126]
    got, cache = chunked_logits(model, text, chunks)
    assert cache.length == model.max_seq_len == sum(chunks), f"cache.length {cache.length} after 256 tokens"
    assert_logits_close(got, full_logits(model, text), model.n_layers)


@given(st.integers(0, 5), st.integers(1, 4), st.integers(0, 2**16), st.booleans())
@example(past=2, new=2, seed=0, causal=True)  # several new positions after a past: the mask must be offset
@example(past=0, new=4, seed=1, causal=True)
@example(past=5, new=1, seed=2, causal=True)
@example(past=3, new=2, seed=3, causal=False)  # no mask: the new rows see every cached position
def test_cached_attention_equals_the_rows_of_full_attention(
    past: int, new: int, seed: int, causal: bool
) -> None:
    rng = np.random.default_rng(seed)
    attn = MultiHeadAttention(8, 2, causal=causal, rng=rng)
    x = rng.standard_normal((2, past + new, 8)).astype(np.float32)
    with no_grad():
        expected = attn(Tensor(x))[0].data[:, past:]
    cache = KVCache(1, 2, 2, past + new, 4)
    if past:
        cached_attention(attn, x[:, :past], cache, 0)
        cache.advance(past)
    got = cached_attention(attn, Tensor(x[:, past:]), cache, 0)
    assert isinstance(got, Tensor), f"cached_attention returned a {type(got).__name__}, not a Tensor"
    assert_logits_close(got.data, expected, 1, f"attention outputs (causal={causal}, past={past})")
    with no_grad():  # the new keys and values are in the cache, at their absolute positions
        k = attn.k_proj(Tensor(x)).data.reshape(2, past + new, 2, 4).transpose(0, 2, 1, 3)
    # same rounding argument; a misplaced key is O(1) off
    assert_logits_close(cache.keys[0], k, 1, "cached keys")


def test_cached_attention_with_large_scores_stays_finite() -> None:
    # Inputs 6x a unit normal: scores q k^T / sqrt(D) up to ~150, where exp() overflows float32
    # (above 88.7) unless each row's maximum is subtracted first, as the foundation's softmax does.
    # The two computations still differ only in rounding (a score's ulp is ~1e-5 here), within the
    # bound of the module docstring.
    rng = np.random.default_rng(4)
    attn = MultiHeadAttention(8, 2, causal=True, rng=rng)
    x = (6 * rng.standard_normal((2, 6, 8))).astype(np.float32)
    with no_grad():
        expected = attn(Tensor(x))[0].data[:, 2:]
    cache = KVCache(1, 2, 2, 6, 4)
    cached_attention(attn, x[:, :2], cache, 0)
    cache.advance(2)
    got = cached_attention(attn, x[:, 2:], cache, 0).data
    assert np.isfinite(got).all(), "attention outputs are not finite (exp overflowed: subtract the row max)"
    assert_logits_close(got, expected, 1, "attention outputs of large scores")


def test_cached_attention_keeps_a_float64_array_in_float64() -> None:
    # x given as a float64 array (not a Tensor) to a float64 attention: the result is float64 and
    # equals the full float64 attention to float64 rounding (bound of the module docstring with
    # EPS64); wrapping x as Tensor(x) makes it float32, ~1e-8 off.
    rng = np.random.default_rng(8)
    attn = MultiHeadAttention(12, 4, causal=True, rng=rng).astype(np.float64)  # head_dim 3
    x = rng.standard_normal((2, 5, 12))
    with no_grad():
        expected = attn(Tensor(x, dtype=np.float64))[0].data[:, 3:]
    cache = KVCache(1, 2, 4, 5, 3, dtype=np.float64)
    cached_attention(attn, x[:, :3], cache, 0)
    cache.advance(3)
    got = cached_attention(attn, x[:, 3:], cache, 0).data
    assert got.dtype == np.float64, f"attention outputs of a float64 array have dtype {got.dtype}"
    assert_logits_close(got, expected, 1, "float64 attention outputs", EPS64)


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def assert_same_greedy_tokens(model: GPT, got: np.ndarray, expected: np.ndarray) -> None:
    """The same tokens, except after an exact tie of a random GPT's two best logits.

    Greedy decoding is a discontinuous function of the logits: where the foundation's two best
    logits are within rounding (the tolerance of ``assert_logits_close``) of each other, a
    different order of float32 additions may pick the other one. Only then may the sequences
    part, and only from that position on.
    """
    assert got.shape == expected.shape and got.dtype == np.int64, (
        f"generated tokens: {got.dtype} {got.shape}, expected int64 {expected.shape}"
    )
    for row, (a, b) in enumerate(zip(got, expected, strict=True)):
        differ = np.flatnonzero(a != b)
        if differ.size:
            j = differ[0]
            logits = full_logits(model, b[None, :j])[0, -1]
            gap = abs(float(logits[a[j]]) - float(logits[b[j]]))
            tolerance = 1024 * EPS32 * model.n_layers * (1.0 + float(np.abs(logits).max()))
            assert gap <= tolerance, f"row {row}: token {j} is {a[j]}, expected {b[j]} (logit gap {gap:.3g})"


@given(gpt_shapes(max_seq_len=14), st.integers(1, 3), st.data())
@example(GPTShape(max_seq_len=6), 1, None)
@example(GPTShape(max_seq_len=14, n_layers=2, vocab_size=3), 3, None)
def test_greedy_generation_gives_the_tokens_of_the_foundation(shape, batch, data) -> None:
    model = random_gpt(shape)
    if data is None:
        prompt_len, new = 1, shape.max_seq_len - 1
    else:
        prompt_len = data.draw(st.integers(1, shape.max_seq_len), label="prompt length")
        new = data.draw(st.integers(0, shape.max_seq_len - prompt_len), label="new tokens")
    prompt = random_tokens(model, batch, prompt_len, seed=shape.seed)
    assert_same_greedy_tokens(
        model, generate(model, prompt, new), model.generate(prompt, new, use_cache=False)
    )


def test_greedy_generation_on_the_zoo_transformers() -> None:
    sorter = zoo_gpt("transformer_sort")
    prompts = zoo.eval_data("transformer_sort")[0][:64]
    np.testing.assert_array_equal(
        generate(sorter, prompts, 6),
        sorter.generate(prompts, 6, use_cache=False),
        err_msg="transformer_sort: greedy tokens of 64 held-out prompts",
    )
    model = zoo_gpt("transformer_pydoc")
    prompt = encode_text(PYDOC_PROMPT)
    out = generate(model, prompt, 48)
    assert out.shape == (len(PYDOC_PROMPT) + 48,) and out.dtype == np.int64, (
        f"generate of a (T,) prompt: {out.dtype} {out.shape}, expected int64 ({len(PYDOC_PROMPT) + 48},)"
    )
    np.testing.assert_array_equal(
        out, model.generate(prompt, 48, use_cache=False), err_msg="transformer_pydoc: greedy tokens"
    )
    assert decode_text(out).startswith(PYDOC_PROMPT), f"the output does not start with the prompt: {out[:24]}"


def test_a_batch_generates_what_each_row_generates_alone() -> None:
    model = random_gpt(GPTShape(vocab_size=9, max_seq_len=16, embed_dim=12, n_heads=3, n_layers=2, seed=3))
    prompts = random_tokens(model, 3, 4, seed=1)
    together = generate(model, prompts, 10)
    for row in range(3):
        np.testing.assert_array_equal(
            generate(model, prompts[row], 10), together[row], err_msg=f"row {row} alone vs in the batch"
        )


def test_the_prompt_keys_and_values_are_written_during_prefill() -> None:
    model = random_gpt(GPTShape(vocab_size=11, max_seq_len=12, embed_dim=8, n_heads=2, n_layers=2, seed=7))
    prompt = random_tokens(model, 2, 5, seed=2)
    with no_grad():
        _, present = model(prompt)  # the foundation's keys and values of the 5 prompt positions
    cache = new_cache(model, 2)
    generate(model, prompt, 4, cache=cache)
    # the prompt and the new tokens except the last one
    assert cache.length == 5 + 4 - 1, f"cache.length {cache.length} after a 5-token prompt and 4 new tokens"
    for layer, (k, v) in enumerate(present):
        # the full forward's keys and values, to the rounding bound of the module docstring;
        # a prompt that was not written leaves zeros, O(1) off
        for name, cached, expected in (("keys", cache.keys, k), ("values", cache.values, v)):
            what = f"layer {layer}'s cached prompt {name}"
            assert_logits_close(cached[layer, :, :, :5], expected.data, model.n_layers, what)


@pytest.mark.parametrize(("prompt_len", "new"), [(1, 1), (1, 11), (4, 6), (12, 0)])
def test_the_cache_length_counts_the_tokens_run_through_the_model(prompt_len, new) -> None:
    model = random_gpt(GPTShape(max_seq_len=12, n_layers=2))
    cache = new_cache(model)
    out = generate(model, random_tokens(model, 1, prompt_len), new, cache=cache)
    assert out.shape == (1, prompt_len + new), f"generated shape {out.shape}, not (1, {prompt_len + new})"
    expected = prompt_len + new - 1 if new else 0  # n = 0 runs nothing, not even the prefill
    assert cache.length == expected, (
        f"cache.length {cache.length} after T={prompt_len}, n={new}: not {expected}"
    )


def test_reset_gives_a_run_identical_to_a_fresh_cache() -> None:
    model = random_gpt(GPTShape(vocab_size=13, max_seq_len=16, embed_dim=8, n_heads=2, n_layers=2, seed=11))
    cache = new_cache(model, 2)
    first = generate(model, random_tokens(model, 2, 3, seed=4), 12, cache=cache)
    keys = cache.keys
    cache.reset()
    assert cache.length == 0, f"cache.length {cache.length} after reset()"
    assert cache.keys is keys, "reset() replaced the keys buffer"
    prompt = random_tokens(model, 2, 6, seed=5)
    again = generate(model, prompt, 9, temperature=0.8, top_k=5, seed=3, cache=cache)
    fresh = generate(model, prompt, 9, temperature=0.8, top_k=5, seed=3)
    np.testing.assert_array_equal(again, fresh, err_msg="sampled tokens: reset cache vs fresh cache")
    assert first.shape == (2, 15), f"generated shape {first.shape}, expected (2, 15)"
    with pytest.raises(ValueError, match="reset"):
        generate(model, prompt, 2, cache=cache)  # a used cache is refused, not silently continued


def test_seeded_sampling_is_reproducible() -> None:
    model = zoo_gpt("transformer_pydoc")
    prompt = encode_text(PYDOC_PROMPT)
    a = generate(model, prompt, 40, temperature=0.9, top_k=10, seed=1)
    b = generate(model, prompt, 40, temperature=0.9, top_k=10, seed=1)
    c = generate(model, prompt, 40, temperature=0.9, top_k=10, seed=2)
    np.testing.assert_array_equal(a, b, err_msg="sampled tokens of two runs with seed 1")
    # 40 draws from a model that is not certain
    assert not np.array_equal(a, c), "seeds 1 and 2 sampled the same 40 tokens"
    assert not np.array_equal(a, generate(model, prompt, 40)), "sampled tokens (T=0.9) equal the greedy ones"
    top1 = generate(model, prompt, 20, temperature=1.5, top_k=1, seed=9)
    np.testing.assert_array_equal(top1, generate(model, prompt, 20), err_msg="top-1 sampled vs greedy tokens")


def test_seeded_sampling_reproduces_the_guides_sample() -> None:
    # katas/caching/README.md prints what generate(model, encode_text(prompt), 236, temperature=0.8,
    # top_k=10, seed=0) gives; its first 60 characters (the same draws: one per step from one rng)
    model = zoo_gpt("transformer_pydoc")
    prompt = 'The "for" statement\n'
    out = decode_text(generate(model, encode_text(prompt), 60, temperature=0.8, top_k=10, seed=0))
    expected = prompt + "***********\nA interacept cywound in or comperration the func"
    assert out == expected, f"sampled text {out!r}, the guide's is {expected!r}"


def test_seeded_generation_draws_every_token_from_one_rng() -> None:
    # generate's docstring: each new token is one sample_next call on the last position's logits,
    # all with rng = np.random.default_rng(seed); so the tokens are those of that loop run over the
    # foundation's uncached forward (a cached logit differs by rounding, which moves a draw only if
    # u lands within ~1e-6 of a cdf boundary: not for this seed)
    model = random_gpt(GPTShape(vocab_size=13, max_seq_len=16, embed_dim=8, n_heads=2, n_layers=2, seed=21))
    seq = random_tokens(model, 2, 3, seed=6)
    got = generate(model, seq, 8, temperature=1.3, top_k=6, seed=7)
    rng = np.random.default_rng(7)
    for _ in range(8):
        seq = np.concatenate([seq, sample_next(full_logits(model, seq)[:, -1], 1.3, 6, rng)[:, None]], axis=1)
    np.testing.assert_array_equal(got, seq, err_msg="sampled tokens of generate(..., seed=7)")


# --------------------------------------------------------------------------------------------
# Sampling one token
# --------------------------------------------------------------------------------------------


@given(st.integers(1, 6), st.integers(1, 12), st.integers(0, 2**16), st.floats(0.05, 5.0))
def test_sampled_tokens_are_among_the_top_k(batch, top_k, seed, temperature) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((batch, 12)).astype(np.float32)
    tokens = sample_next(logits, temperature, top_k, np.random.default_rng(seed))
    assert tokens.shape == (batch,) and tokens.dtype == np.int64, f"tokens: {tokens.dtype} {tokens.shape}"
    kth = np.sort(logits, axis=1)[:, -top_k]
    picked = logits[np.arange(batch), tokens]
    assert np.all(picked >= kth), f"drawn tokens' logits {picked} below the top-{top_k} threshold {kth}"


def test_sampling_follows_the_softmax_of_the_tempered_logits() -> None:
    logits = np.array([[2.0, 1.0, 0.0, -1.0, -3.0]] * 20_000, dtype=np.float32)
    for temperature, top_k in [(1.0, None), (0.5, None), (2.0, 3)]:
        tokens = sample_next(logits, temperature, top_k, np.random.default_rng(0))
        z = logits[0].astype(np.float64) / temperature
        if top_k is not None:
            z[np.argsort(z)[:-top_k]] = -np.inf
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        counts = np.bincount(tokens, minlength=5)
        # 20,000 draws: a count's standard deviation is sqrt(n p (1 - p)) <= 71; allow 5 of them
        assert np.all(np.abs(counts - 20_000 * p) <= 5 * np.sqrt(20_000 * p * (1 - p)) + 1e-9), (
            f"token counts {counts} of 20,000 draws (T={temperature}, top_k={top_k}), expected {20_000 * p}"
        )


def test_top_k_keeps_every_logit_tied_with_the_kth_largest() -> None:
    # Row 0: four equal logits, top_k=1; row 1: 3.0 then three logits tied at the 2nd largest,
    # top_k=2. "The k largest" is then a set of more than k tokens, all kept with equal weight
    # (sample_next's docstring): a top-k that keeps exactly k indices (argpartition, argsort)
    # silently drops tied tokens and always draws the same one of them.
    logits = np.array([[1.0, 1.0, 1.0, 1.0, -2.0], [3.0, 1.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    rows = [np.repeat(logits[row : row + 1], 4000, axis=0) for row in range(2)]
    counts = [
        np.bincount(sample_next(rows[row], 1.0, k, np.random.default_rng(row)), minlength=5)
        for row, k in ((0, 1), (1, 2))
    ]
    # 4,000 draws of p = 1/4: a count's standard deviation is sqrt(4000 * 1/4 * 3/4) ~ 27; 5 of them
    assert np.all(np.abs(counts[0][:4] - 1000) <= 5 * 27.4) and counts[0][4] == 0, (
        f"row 0 (four tied logits, top_k=1): token counts {counts[0]} of 4,000, expected 1000 x 4 and 0"
    )
    p = np.exp([3.0, 1.0, 1.0, 1.0]) / np.exp([3.0, 1.0, 1.0, 1.0]).sum()
    assert np.all(np.abs(counts[1][:4] - 4000 * p) <= 5 * np.sqrt(4000 * p * (1 - p))), (
        f"row 1 (three logits tied 2nd, top_k=2): token counts {counts[1][:4]} of 4,000, expected {4000 * p}"
    )
    assert counts[1][4] == 0, f"row 1: token 4 (below the top 2) drawn {counts[1][4]} times"


def test_greedy_picks_the_first_maximum() -> None:
    logits = np.array([[0.0, 3.0, 3.0, 1.0], [5.0, 5.0, 5.0, 5.0]], dtype=np.float32)
    np.testing.assert_array_equal(sample_next(logits), [1, 0], err_msg="greedy tokens")
    np.testing.assert_array_equal(
        sample_next(logits, 0.0, 2, np.random.default_rng(0)), [1, 0], err_msg="greedy tokens with top_k=2"
    )


class FixedUniforms:
    """Stands in for ``np.random.Generator``: ``random(size)`` returns the given numbers in [0, 1)."""

    def __init__(self, values) -> None:
        self.values = np.asarray(values, dtype=np.float64)

    def random(self, size=None):
        return self.values.reshape(size)


def inverse_cdf(logits: np.ndarray, temperature: float, u: np.ndarray) -> np.ndarray:
    """sample_next's rule without top-k: the number of cumulative weights <= u * total, per row."""
    z = logits.astype(np.float64) / temperature
    c = np.cumsum(np.exp(z - z.max(axis=1, keepdims=True)), axis=1)
    return (c <= u.reshape(-1, 1) * c[:, -1:]).sum(axis=1)


def test_sampling_is_the_inverse_cdf_in_vocabulary_order() -> None:
    # sample_next's docstring example: logits (-inf, 0, 0, 0), so w = (0, 1, 1, 1) and c = (0, 1, 2, 3)
    # exactly, and u = 0, 0.3, 1/3, 0.9 give tokens 1, 1, 2, 3. u = 0 must not draw the token of
    # probability 0, and u = 1/3 (u * 3 == 1.0 in float64) sits exactly on a boundary of the cdf:
    # counting c < u * c[-1] instead of <= draws 0 and 1 there.
    logits = np.repeat(np.array([[-np.inf, 0.0, 0.0, 0.0]], np.float32), 4, axis=0)
    tokens = sample_next(logits, 1.0, None, FixedUniforms([[0.0], [0.3], [1 / 3], [0.9]]))
    np.testing.assert_array_equal(tokens, [1, 1, 2, 3], err_msg="tokens drawn for u = 0, 0.3, 1/3, 0.9")
    # u just below 1: the last token of positive probability, never one past the vocabulary
    below_one = FixedUniforms([np.nextafter(1.0, 0.0)])
    last = sample_next(np.array([[0.0, 0.0, -np.inf]], np.float32), 1.0, None, below_one)
    assert last.tolist() == [1], f"token drawn for u -> 1 with the last token ruled out: {last}"
    # a vocabulary of one token: always token 0
    one = sample_next(np.zeros((2, 1), np.float32), 1.0, None, FixedUniforms([[0.0], [0.99]]))
    assert one.tolist() == [0, 0], f"tokens drawn from a vocabulary of one: {one}"
    # logits / temperature far above exp's range (float64 overflows above 709): w = exp(z - max z)
    # stays finite; exp(z) alone is inf and the count runs past the vocabulary
    for logits, temperature, u, expected in (
        ([0.0, 1000.0, 1000.0], 1.0, 0.75, 2),
        ([3.0, 1.0, 2.9], 0.001, 0.5, 0),
    ):
        drawn = sample_next(np.array([logits], np.float32), temperature, None, FixedUniforms([u]))
        assert drawn.tolist() == [expected], (
            f"token drawn from logits {logits} at T={temperature}, u={u}: {drawn}"
        )
    # a real seeded generator and unequal probabilities: one call rng.random((B, 1)), one number
    # per row in row order, the cdf in vocabulary order (not sorted by probability)
    logits = np.random.default_rng(5).standard_normal((64, 9)).astype(np.float32)
    for temperature in (0.7, 1.0, 3.0):
        got = sample_next(logits, temperature, None, np.random.default_rng(11))
        expected = inverse_cdf(logits, temperature, np.random.default_rng(11).random((64, 1)))
        np.testing.assert_array_equal(got, expected, err_msg=f"64 rows' tokens at temperature {temperature}")


# --------------------------------------------------------------------------------------------
# The cache itself: preallocated, written in place, views out
# --------------------------------------------------------------------------------------------


@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 9),
    st.integers(1, 5),
    st.sampled_from([np.float32, np.float64, np.float16]),
)
def test_nbytes_matches_the_formula(n_layers, batch, heads, max_len, head_dim, dtype) -> None:
    cache = KVCache(n_layers, batch, heads, max_len, head_dim, dtype=dtype)
    expected = 2 * n_layers * batch * heads * max_len * head_dim * np.dtype(dtype).itemsize
    assert cache.nbytes == expected, f"nbytes {cache.nbytes}, expected {expected}"
    shape = (n_layers, batch, heads, max_len, head_dim)
    assert cache.keys.shape == cache.values.shape == shape, (
        f"buffer shapes {cache.keys.shape} and {cache.values.shape}, expected {shape}"
    )
    assert cache.keys.dtype == cache.values.dtype == np.dtype(dtype), (
        f"buffer dtypes {cache.keys.dtype} and {cache.values.dtype}, expected {np.dtype(dtype)}"
    )
    assert cache.length == 0, f"a new cache's length is {cache.length}"


@given(st.lists(st.integers(1, 4), min_size=1, max_size=6))
@example([1])
@example([6, 1, 1])
def test_appends_write_in_place_and_return_views(chunks) -> None:
    total = sum(chunks)
    cache = KVCache(2, 2, 3, total + 1, 4)
    keys, values = cache.keys, cache.values
    pointers = (keys.ctypes.data, values.ctypes.data)
    rng = np.random.default_rng(total)
    written_k = rng.standard_normal((2, 2, 3, total, 4)).astype(np.float32)
    written_v = rng.standard_normal((2, 2, 3, total, 4)).astype(np.float32)
    start = 0
    for t in chunks:
        for layer in range(2):
            k_all, v_all = cache.append(
                layer, written_k[layer, :, :, start : start + t], written_v[layer, :, :, start : start + t]
            )
            assert k_all.shape == v_all.shape == (2, 3, start + t, 4), (
                f"append returned keys {k_all.shape}, values {v_all.shape}, expected (2, 3, {start + t}, 4)"
            )
            assert np.shares_memory(k_all, keys) and np.shares_memory(v_all, values), (
                "append returned copies, not views of the buffers"
            )
            for got, written, name in ((k_all, written_k, "keys"), (v_all, written_v, "values")):
                expected = written[layer, :, :, : start + t]
                np.testing.assert_array_equal(got, expected, err_msg=f"appended {name}")
        cache.advance(t)
        start += t
        assert cache.length == start, f"cache.length {cache.length} after advancing to {start}"
        # the same buffers: no copy, no growth
        assert cache.keys is keys and cache.values is values, "the buffers were replaced"
        assert (cache.keys.ctypes.data, cache.values.ctypes.data) == pointers, "the buffers moved in memory"
    np.testing.assert_array_equal(cache.keys[:, :, :, :total], written_k, err_msg="the cached keys")
    np.testing.assert_array_equal(cache.keys[:, :, :, total:], 0.0, err_msg="the spare position (zeros)")


def test_generation_keeps_the_same_buffers() -> None:
    model = random_gpt(GPTShape(max_seq_len=10, n_layers=2))
    cache = new_cache(model, 1)
    keys, values = cache.keys, cache.values
    calls = []
    original = cache.append

    def spy(layer, k, v):
        k_all, v_all = original(layer, k, v)
        calls.append(np.shares_memory(k_all, keys) and np.shares_memory(v_all, values))
        return k_all, v_all

    cache.append = spy
    generate(model, random_tokens(model, 1, 3), 7, cache=cache)
    # every layer, every forward (prefill + 6 steps), each returning views of the buffers
    assert len(calls) == 2 * 7, f"{len(calls)} calls of cache.append, expected 2 layers x 7 forwards"
    assert all(calls), f"append returned copies at calls {[i for i, view in enumerate(calls) if not view]}"
    assert cache.keys is keys and cache.values is values, "the buffers were replaced during generate"
    assert cache.nbytes == keys.nbytes + values.nbytes == 2 * 2 * 1 * 2 * 10 * 4 * 4, f"nbytes {cache.nbytes}"


# --------------------------------------------------------------------------------------------
# Bad input: clear errors, and a refused append changes nothing
# --------------------------------------------------------------------------------------------


def _filled_cache() -> KVCache:
    cache = KVCache(2, 2, 3, 4, 5)
    rng = np.random.default_rng(0)
    for layer in range(2):
        cache.append(layer, *rng.standard_normal((2, 2, 3, 3, 5)).astype(np.float32))
    cache.advance(3)
    return cache


@pytest.mark.parametrize(
    ("layer", "shape", "error", "match"),
    [
        (0, (2, 3, 2, 5), ValueError, "max_seq_len"),  # 3 cached + 2 new > 4
        (0, (2, 3, 1, 4), ValueError, "head_dim"),
        (0, (1, 3, 1, 5), ValueError, "batch_size"),
        (0, (2, 2, 1, 5), ValueError, "n_heads"),
        (2, (2, 3, 1, 5), IndexError, "layer"),
        (-1, (2, 3, 1, 5), IndexError, "layer"),
        (1.0, (2, 3, 1, 5), TypeError, "layer"),
    ],
)
def test_a_refused_append_leaves_the_cache_unchanged(layer, shape, error, match) -> None:
    cache = _filled_cache()
    keys_before, values_before = cache.keys.copy(), cache.values.copy()
    k = np.ones(shape, dtype=np.float32)
    with pytest.raises(error, match=match):
        cache.append(layer, k, k)
    assert cache.length == 3, f"cache.length {cache.length} after a refused append (was 3)"
    np.testing.assert_array_equal(cache.keys, keys_before, err_msg="keys after a refused append")
    np.testing.assert_array_equal(cache.values, values_before, err_msg="values after a refused append")


def test_bad_cache_arguments() -> None:
    cache = _filled_cache()
    with pytest.raises(ValueError, match="max_seq_len"):
        cache.advance(2)  # 3 + 2 > 4
    with pytest.raises(TypeError, match="k must be"):
        cache.append(0, [[[[0.0] * 5]] * 3] * 2, np.zeros((2, 3, 1, 5), np.float32))
    with pytest.raises(ValueError, match="same shape"):
        cache.append(0, np.zeros((2, 3, 1, 5), np.float32), np.zeros((2, 3, 0, 5), np.float32))
    cache.advance(0)  # t >= 0: advancing by nothing is allowed and changes nothing
    assert cache.length == 3, f"cache.length {cache.length} after refused calls (was 3)"
    for bad, error in [(0, ValueError), (2.0, TypeError), (True, TypeError)]:
        with pytest.raises(error, match="n_layers"):
            KVCache(bad, 1, 1, 1, 1)
    with pytest.raises(TypeError, match="dtype"):
        KVCache(1, 1, 1, 1, 1, dtype=np.int32)


def test_bad_generation_arguments() -> None:
    model = random_gpt(GPTShape(max_seq_len=8))
    prompt = random_tokens(model, 1, 3)
    generate(model, prompt, 2)  # a valid call first
    with pytest.raises(TypeError, match="integer"):
        generate(model, prompt.astype(np.float32), 2)
    with pytest.raises(ValueError, match="max_seq_len"):
        generate(model, prompt, 6)  # 3 + 6 > 8
    with pytest.raises(ValueError, match="temperature"):
        generate(model, prompt, 2, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, prompt, 2, temperature=1.0, top_k=0)
    with pytest.raises(ValueError, match="token ids"):
        generate(model, np.array([[0, model.vocab_size]]), 2)
    for shape in ((1, 0), (1, 1, 3)):  # no token, or a third axis: refused, naming the prompt
        with pytest.raises(ValueError, match="prompt"):
            generate(model, np.zeros(shape, dtype=np.int64), 2)
    with pytest.raises(ValueError, match="batch size"):
        cached_forward(model, prompt, new_cache(model, 2))
    small = KVCache(1, 1, 2, 2, 4)
    big = KVCache(1, 1, 2, 12, 4)  # room for 12 positions, the model has 8
    deep = KVCache(2, 1, 2, 8, 4)  # 2 layers for a 1-layer model
    for cache, tokens, match in (
        (small, prompt, "max_seq_len"),
        (big, np.zeros((1, 9), np.int64), "max_seq_len"),
        (deep, prompt, "layers"),
    ):
        with pytest.raises(ValueError, match=match):
            cached_forward(model, tokens, cache)
        # refused before anything was written
        assert cache.length == 0 and not cache.keys.any(), f"a refused cached_forward wrote into {cache!r}"
    with pytest.raises(ValueError, match="heads"):
        cached_forward(model, prompt, KVCache(1, 1, 1, 8, 8))
    with pytest.raises(TypeError, match="MultiHeadAttention"):
        cached_attention(model, np.zeros((1, 1, 8), np.float32), new_cache(model), 0)
    for shape in ((1, 1, 7), (1, 0, 8)):  # a wrong width, no position
        with pytest.raises(ValueError, match="x must be"):
            cached_attention(model.blocks[0].attn, np.zeros(shape, np.float32), new_cache(model), 0)
    with pytest.raises(ValueError, match="exceeds"):
        new_cache(model, 1, 9)
    with pytest.raises(TypeError, match="temperature"):
        generate(model, prompt, 2, temperature="hot")
    with pytest.raises(ValueError, match="logits"):
        sample_next(np.zeros(5, np.float32))
    for bad in (np.nan, np.inf):  # a diverged model: no token is "most likely", say so
        with pytest.raises(ValueError, match="NaN or \\+inf"):
            sample_next(np.array([[0.0, bad, 1.0]], np.float32), 1.0, None, np.random.default_rng(0))
    with pytest.raises(ValueError, match="finite logit"):
        sample_next(np.full((2, 3), -np.inf, np.float32))
    masked = np.array([[-np.inf, 2.0, -np.inf]], np.float32)  # -inf: a token ruled out, allowed
    drawn = sample_next(masked, 1.0, None, np.random.default_rng(0))
    assert drawn.tolist() == [1], f"token {drawn} drawn where only token 1 has a finite logit"
    for n in (2, 0):  # also when no token is asked and nothing would use the cache
        with pytest.raises(TypeError, match="cache must be a KVCache"):
            generate(model, prompt, n, cache=np.zeros((1, 1, 2, 8, 4)))
    with pytest.raises(TypeError, match="cache must be a KVCache"):
        cached_forward(model, prompt, None)
    with pytest.raises(TypeError, match="cache must be a KVCache"):
        cached_attention(model.blocks[0].attn, np.zeros((1, 1, 8), np.float32), None, 0)
    for call in (
        lambda: generate(None, prompt, 2),
        lambda: cached_forward(None, prompt, small),
        lambda: new_cache(None),
    ):
        with pytest.raises(TypeError, match="model must be a GPT"):
            call()
    with pytest.raises(TypeError, match="t must be an int"):
        small.advance(1.0)
    with pytest.raises(ValueError, match="heads"):
        cached_attention(model.blocks[0].attn, np.zeros((1, 1, 8), np.float32), KVCache(1, 1, 1, 8, 8), 0)
    assert repr(small) == (
        "KVCache(n_layers=1, batch_size=1, n_heads=2, max_seq_len=2, head_dim=4, dtype=float32, "
        "length=0, nbytes=128)"
    ), f"repr {small!r}"
