"""Answer key of module 19 (caching): held-out checks on inputs drawn from the grading seed.

Each check calls as few of the module's functions as it can (one public function or method, with
the helpers it necessarily calls), so that the grader can tie it to the tests of that function: a
failed check withholds the credit of a test only when the test calls every kata function the check
calls (grading/grade_score.py, ``decides``). What the checks cover (each records values; the grader
compares them with the reference's):

* ``KVCache`` on drawn sizes and dtypes: its buffers and ``nbytes``; a scripted sequence of
  appends and advances (the views each append returns, the length after every append and
  advance, the buffers kept: same objects, same memory; their final contents, spare positions
  still zero); ``reset``; refused appends and advances (past ``max_seq_len``, wrong shapes, bad
  layers) that leave it unchanged; refused sizes;
* ``cached_attention`` against the foundation's full attention, any past and new length, causal
  or not, written at a drawn layer; the cache's keys at their absolute positions;
* ``cached_forward`` on a drawn random split of a prompt (one-token first chunks included) against
  one full causal forward, on random GPTs and on both zoo transformers (the long-context one
  over its whole 256-position context in drawn uneven chunks), with the length after each chunk;
* ``generate``: greedy tokens (exact on the sorting GPT; on random GPTs and the text GPT every
  token must be the foundation's argmax at its prefix up to a rounding-size gap), shapes, the
  cache length afterwards (no forward at all when no token is asked), batches, the prompt's keys
  and values written during the prefill, the buffers never replaced, ``reset`` reused;
* ``sample_next``: greedy first maximum, the frequencies of 20,000 seeded draws against the
  tempered, top-k-restricted softmax (ties with the k-th largest kept), nothing outside the top k;
  seeded generation reproducible, top-1 sampling greedy;
* bad input, one check per function: the exception's type name for every refused call of the
  suite, and a refused forward that wrote nothing.

Float outputs of the model are recorded divided by ``n_layers * (1 + max |reference value|)``,
the scale of the suite's rounding bound, with the foundation's full forward as the reference
value (computed in the same process), so one absolute tolerance fits every model.

One file, whole: it is the module's answer key as the registry names it (``key = ...`` in
tinytorch/course/modules.toml), run by the grader in one child beside the module's suite.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.attention import MultiHeadAttention
from tinytorch.tensor import Tensor, no_grad
from tinytorch.transformer import GPT

EPS32 = float(np.finfo(np.float32).eps)
# The suite allows 1024 EPS32 * n_layers * (1 + max |logit|) between a cached and a full forward
# (tests/test_caching.py explains it: 10x the worst of 3,000 random GPTs); the student's result and
# the reference's each stay within it of the full forward, so they differ by at most twice that.
SCALED = pytest.mark.tolerance(
    rtol=0.0,
    atol=2 * 1024 * EPS32,
    why="outputs divided by n_layers * (1 + max |full-forward value|): each of the two results is "
    "within the suite's rounding bound 1024 EPS32 of the full forward (float32 sums in another order)",
)


def random_gpt(rng: np.random.Generator, max_seq_len: int | None = None, min_layers: int = 1) -> GPT:
    """A small random GPT: 1-4 heads, embed_dim 4-16 (>= 4: see tests/strategies.py), 1-3 layers."""
    heads = int(rng.integers(1, 5))
    return GPT(
        vocab_size=int(rng.integers(2, 17)),
        max_seq_len=int(rng.integers(1, 15)) if max_seq_len is None else max_seq_len,
        embed_dim=heads * int(rng.integers(-(-4 // heads), 5)),
        n_heads=heads,
        n_layers=int(rng.integers(min_layers, 4)),
        rng=rng,
    )


def chunks_of(rng: np.random.Generator, total: int, first_one: bool = False, max_cuts: int = 16) -> list[int]:
    """Positive chunk sizes adding up to ``total``: a drawn random split (the first of size 1 if asked)."""
    cuts = {1} if first_one and total > 1 else set()
    if total > 1:
        size = int(rng.integers(0, min(total, max_cuts + 1)))
        cuts |= set(rng.choice(np.arange(1, total), size=size, replace=False).tolist())
    edges = [0, *sorted(cuts), total]
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]


def full_logits(model: GPT, tokens: np.ndarray) -> np.ndarray:
    with no_grad():
        return model(tokens)[0].data


def scaled(values: np.ndarray, reference: np.ndarray, n_layers: int) -> np.ndarray:
    """``values`` in units of the suite's rounding bound's scale, n_layers * (1 + max |reference|)."""
    return np.asarray(values, np.float64) / (n_layers * (1.0 + float(np.abs(reference).max(initial=0.0))))


def greedy_up_to_rounding(model: GPT, out: np.ndarray, prompt_len: int) -> bool:
    """Every generated token of ``out`` (B, T + n) is the argmax of the foundation's logits at its
    own prefix, or within the suite's rounding bound of it (a near-tie may go either way)."""
    if out.shape[1] == prompt_len:
        return True
    logits = full_logits(model, out[:, :-1])[:, prompt_len - 1 :]  # predicts positions T .. T + n - 1
    chosen = np.take_along_axis(logits, out[:, prompt_len:, None], axis=-1)[..., 0]
    gap = logits.max(axis=-1) - chosen
    bound = 1024 * EPS32 * model.n_layers * (1.0 + np.abs(logits).max(axis=-1))
    return bool(np.all(gap <= bound))


# --------------------------------------------------------------------------------------------
# The cache itself
# --------------------------------------------------------------------------------------------


def draw_cache_case(rng: np.random.Generator, case: int):
    """(sizes, dtype, chunks, spare) of a scripted cache: float32 first, then any floating dtype."""
    layers, batch, heads, dim = (int(n) for n in rng.integers(1, 4, 4))
    dtype = [np.float32, np.float64, np.float16][int(rng.integers(3))] if case else np.float32
    chunks = [int(t) for t in rng.integers(1, 5, int(rng.integers(1, 6)))]
    return (layers, batch, heads, dim), dtype, chunks, int(rng.integers(0, 3))


def test_kv_cache_preallocates_its_buffers(answer):
    from tinytorch.perf.caching import KVCache

    rng = answer.rng
    for case in range(3):
        (layers, batch, heads, dim), dtype, chunks, spare = draw_cache_case(rng, case)
        cache = KVCache(layers, batch, heads, sum(chunks) + spare, dim, dtype=dtype)
        answer.record(
            **{
                f"c{case}_nbytes": np.int64(cache.nbytes),
                f"c{case}_buffer_shapes": np.array([*cache.keys.shape, *cache.values.shape], np.int64),
                f"c{case}_buffer_dtypes": np.array([str(cache.keys.dtype), str(cache.values.dtype)]),
                f"c{case}_buffers_are_zeros": not cache.keys.any() and not cache.values.any(),
                f"c{case}_initial_length": np.int64(cache.length),
            }
        )


def run_script(answer, cache, case: int, chunks: list[int]) -> None:
    """Append drawn keys and values chunk by chunk (every layer, in a drawn order), advancing after
    each chunk; record what each append returns and the cache after every step."""
    rng = answer.rng
    keys, values = cache.keys, cache.values
    pointers = (keys.ctypes.data, values.ctypes.data)
    layers, batch, heads, _, dim = keys.shape
    lengths, views, kept = [], [], []
    for step, t in enumerate(chunks):
        for layer in rng.permutation(layers):
            k = rng.standard_normal((batch, heads, t, dim))  # float64: cast to the cache's dtype
            v = rng.standard_normal((batch, heads, t, dim)).astype(np.float32)
            k_all, v_all = cache.append(int(layer), k, v)
            lengths.append(cache.length)  # append does not move the length
            views.append(np.shares_memory(k_all, keys) and np.shares_memory(v_all, values))
            answer.record(
                **{
                    f"c{case}_s{step}_l{layer}_keys": k_all,
                    f"c{case}_s{step}_l{layer}_values": v_all,
                    f"c{case}_s{step}_l{layer}_dtype": str(np.asarray(k_all).dtype),
                }
            )
        cache.advance(t)
        lengths.append(cache.length)
        kept.append(
            cache.keys is keys
            and cache.values is values
            and (cache.keys.ctypes.data, cache.values.ctypes.data) == pointers
        )
    answer.record(
        **{
            f"c{case}_lengths": np.array(lengths, np.int64),
            f"c{case}_views": np.array(views),
            f"c{case}_buffers_kept": np.array(kept),
            f"c{case}_final_keys": cache.keys,
            f"c{case}_final_values": cache.values,
        }
    )


def test_kv_cache_written_in_place_through_a_scripted_sequence(answer):
    from tinytorch.perf.caching import KVCache

    rng = answer.rng
    for case in range(2):
        (layers, batch, heads, dim), dtype, chunks, spare = draw_cache_case(rng, case)
        cache = KVCache(layers, batch, heads, sum(chunks) + spare, dim, dtype=dtype)
        run_script(answer, cache, case, chunks)


def test_kv_cache_reset_keeps_its_buffers_for_a_second_run(answer):
    from tinytorch.perf.caching import KVCache

    rng = answer.rng
    (layers, batch, heads, dim), dtype, chunks, spare = draw_cache_case(rng, 1)
    cache = KVCache(layers, batch, heads, sum(chunks) + spare, dim, dtype=dtype)
    keys, values = cache.keys, cache.values
    run_script(answer, cache, 0, chunks)
    cache.reset()
    answer.record(
        reset_length=np.int64(cache.length),
        reset_keeps_buffers=cache.keys is keys and cache.values is values,
    )
    again = [int(t) for t in rng.integers(1, 3, int(rng.integers(1, 4)))]
    while sum(again) > sum(chunks) + spare:  # the second run fits the cache too (after a short first)
        again.pop()
    run_script(answer, cache, 1, again or [1])


def test_refused_appends_leave_the_cache_unchanged(answer):
    from tinytorch.perf.caching import KVCache

    rng = answer.rng
    layers, batch, heads, dim = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 4)), 5
    room = int(rng.integers(3, 7))
    past = int(rng.integers(1, room))
    cache = KVCache(layers, batch, heads, room, dim)
    for layer in range(layers):
        cache.append(layer, *rng.standard_normal((2, batch, heads, past, dim)).astype(np.float32))
    cache.advance(past)
    keys, values = cache.keys.copy(), cache.values.copy()

    def ones(*shape):
        return np.ones(shape, np.float32)

    refused = {
        "past_max_seq_len": (0, ones(batch, heads, room - past + 1, dim)),
        "head_dim": (0, ones(batch, heads, 1, dim - 1)),
        "batch_size": (0, ones(batch + 1, heads, 1, dim)),
        "n_heads": (0, ones(batch, heads - 1, 1, dim)),
        "layer_past_the_end": (layers, ones(batch, heads, 1, dim)),
        "negative_layer": (-1, ones(batch, heads, 1, dim)),
        "float_layer": (1.0, ones(batch, heads, 1, dim)),
    }
    for label, (layer, k) in refused.items():
        answer.record(
            **{
                f"append_{label}": answer.raises(cache.append, layer, k, k),
                f"append_{label}_length": np.int64(cache.length),
                f"append_{label}_unchanged": np.array_equal(cache.keys, keys)
                and np.array_equal(cache.values, values),
            }
        )
    answer.record(
        advance_past_max=answer.raises(cache.advance, room - past + 1),
        advance_float=answer.raises(cache.advance, 1.0),
        k_as_list=answer.raises(
            cache.append, 0, ones(batch, heads, 1, dim).tolist(), ones(batch, heads, 1, dim)
        ),
        k_v_shapes_differ=answer.raises(
            cache.append, 0, ones(batch, heads, 1, dim), ones(batch, heads, 0, dim)
        ),
        length_after=np.int64(cache.length),
        unchanged_after=np.array_equal(cache.keys, keys) and np.array_equal(cache.values, values),
    )
    # the cache still works after the refusals: one more position fits
    k = rng.standard_normal((batch, heads, 1, dim)).astype(np.float32)
    k_all, _ = cache.append(0, k, k)
    answer.record(append_after_refusals=k_all)


def test_kv_cache_refuses_bad_sizes(answer):
    from tinytorch.perf.caching import KVCache

    rng = answer.rng
    sizes = [int(n) for n in rng.integers(1, 4, 5)]
    answer.record(
        valid_shape=np.array(KVCache(*sizes).keys.shape, np.int64),
        zero_layers=answer.raises(KVCache, 0, 1, 1, 1, 1),
        negative_head_dim=answer.raises(KVCache, 1, 1, 1, 1, -int(rng.integers(1, 5))),
        float_layers=answer.raises(KVCache, 2.0, 1, 1, 1, 1),
        bool_layers=answer.raises(KVCache, True, 1, 1, 1, 1),
        integer_dtype=answer.raises(KVCache, 1, 1, 1, 1, 1, dtype=np.int32),
    )


# --------------------------------------------------------------------------------------------
# Cached attention and the cached forward
# --------------------------------------------------------------------------------------------


@SCALED
def test_cached_attention_equals_the_rows_of_full_attention(answer):
    from tinytorch.perf.caching import KVCache, cached_attention

    rng = answer.rng
    for case in range(4):
        heads = int(rng.integers(1, 4))
        dim = int(rng.integers(2, 5))
        causal = case != 3
        attn = MultiHeadAttention(heads * dim, heads, causal=causal, rng=rng)
        batch = int(rng.integers(1, 4))
        past = 0 if case == 0 else int(rng.integers(1, 6))
        new = 1 if case == 1 else int(rng.integers(1, 5))
        x = rng.standard_normal((batch, past + new, heads * dim)).astype(np.float32)
        with no_grad():
            expected = attn(Tensor(x))[0].data[:, past:]
            k_full = attn.k_proj(Tensor(x)).data.reshape(batch, past + new, heads, dim).transpose(0, 2, 1, 3)
        layers = int(rng.integers(1, 3))
        layer = int(rng.integers(layers))
        cache = KVCache(layers, batch, heads, past + new + int(rng.integers(0, 3)), dim)
        if past:
            cached_attention(attn, x[:, :past], cache, layer)
            cache.advance(past)
        got = cached_attention(attn, Tensor(x[:, past:]), cache, layer)
        answer.record(
            **{
                f"y{case}": scaled(got.data, expected, 1),
                f"y_is_tensor{case}": isinstance(got, Tensor),
                f"length_not_advanced{case}": np.int64(cache.length),
                f"keys{case}": scaled(cache.keys, k_full, 1),
            }
        )


def test_cached_attention_refuses_what_does_not_fit(answer):
    from tinytorch.perf.caching import KVCache, cached_attention

    rng = answer.rng
    heads, dim = int(rng.integers(1, 4)), int(rng.integers(2, 5))
    attn = MultiHeadAttention(heads * dim, heads, rng=rng)
    cache = KVCache(1, 1, heads, 4, dim)
    x = rng.standard_normal((1, 1, heads * dim)).astype(np.float32)
    answer.record(
        valid=np.asarray(cached_attention(attn, x, cache, 0).data).shape == (1, 1, heads * dim),
        not_an_attention=answer.raises(cached_attention, object(), x, cache, 0),
        wrong_width=answer.raises(cached_attention, attn, x[..., :-1], cache, 0),
        cache_none=answer.raises(cached_attention, attn, x, None, 0),
    )


def run_in_chunks(answer, tag: str, model: GPT, tokens: np.ndarray, chunks: list[int]) -> None:
    """cached_forward over ``tokens`` in ``chunks``, against one full causal forward."""
    from tinytorch.perf.caching import cached_forward, new_cache

    cache = new_cache(model, tokens.shape[0])
    parts, lengths, start = [], [], 0
    for size in chunks:
        parts.append(cached_forward(model, tokens[:, start : start + size], cache))
        start += size
        lengths.append(cache.length)
    expected = full_logits(model, tokens)
    with no_grad():
        _, present = model(tokens)
    answer.record(
        **{
            f"{tag}_chunks": np.array(chunks, np.int64),
            f"{tag}_logits": scaled(np.concatenate(parts, axis=1), expected, model.n_layers),
            f"{tag}_lengths": np.array(lengths, np.int64),
            f"{tag}_keys": np.stack(
                [
                    scaled(cache.keys[i, :, :, :start], k.data, model.n_layers)
                    for i, (k, _) in enumerate(present)
                ]
            ),
            f"{tag}_values": np.stack(
                [
                    scaled(cache.values[i, :, :, :start], v.data, model.n_layers)
                    for i, (_, v) in enumerate(present)
                ]
            ),
        }
    )


@SCALED
def test_incremental_decoding_equals_the_full_forward(answer):
    rng = answer.rng
    for case in range(4):
        model = random_gpt(rng, min_layers=2 if case == 1 else 1)
        total = int(rng.integers(1, model.max_seq_len + 1))
        tokens = rng.integers(0, model.vocab_size, (int(rng.integers(1, 4)), total))
        run_in_chunks(answer, f"random{case}", model, tokens, chunks_of(rng, total, first_one=case == 0))


@SCALED
def test_incremental_decoding_on_the_sorting_transformer(answer):
    from tinytorch import zoo

    rng = answer.rng
    sorter = zoo.load_model("transformer_sort")
    prompts = zoo.eval_data("transformer_sort")[0]
    tokens = prompts[rng.choice(len(prompts), size=2, replace=False)]
    tokens = np.concatenate([tokens, rng.integers(0, 10, (2, sorter.max_seq_len - tokens.shape[1]))], axis=1)
    total = int(rng.integers(1, sorter.max_seq_len + 1))
    run_in_chunks(answer, "sort", sorter, tokens[:, :total], chunks_of(rng, total))


@SCALED
def test_incremental_decoding_over_the_whole_long_context(answer):
    from tinytorch import zoo

    rng = answer.rng
    text_model = zoo.load_model("transformer_pydoc")
    texts = zoo.eval_data("transformer_pydoc")[0]
    text = texts[int(rng.integers(len(texts))), None]  # real text, its whole 256-position context
    chunks = chunks_of(rng, text.shape[1], first_one=bool(rng.random() < 0.5), max_cuts=8)
    run_in_chunks(answer, "pydoc", text_model, text, chunks)


def test_cached_forward_refuses_what_does_not_fit(answer):
    from tinytorch.perf.caching import KVCache, cached_forward, new_cache

    rng = answer.rng
    model = random_gpt(rng, max_seq_len=int(rng.integers(6, 12)))
    prompt_len = int(rng.integers(2, model.max_seq_len - 2))
    prompt = rng.integers(0, model.vocab_size, (1, prompt_len))
    attn = model.blocks[0].attn
    small = KVCache(model.n_layers, 1, attn.n_heads, prompt_len - 1, attn.head_dim)
    answer.record(
        valid_shape=np.array(np.shape(cached_forward(model, prompt, new_cache(model))), np.int64),
        batch_mismatch=answer.raises(cached_forward, model, prompt, new_cache(model, 2)),
        cache_overflow=answer.raises(cached_forward, model, prompt, small),
        overflow_wrote_nothing=small.length == 0 and not small.keys.any() and not small.values.any(),
        heads_mismatch=answer.raises(
            cached_forward, model, prompt, KVCache(model.n_layers, 1, attn.n_heads + 1, model.max_seq_len, 8)
        ),
        cache_none=answer.raises(cached_forward, model, prompt, None),
        without_model=answer.raises(cached_forward, None, prompt, small),
        float_tokens=answer.raises(cached_forward, model, prompt.astype(np.float32), new_cache(model)),
        token_past_vocab=answer.raises(
            cached_forward, model, np.array([[0, model.vocab_size]]), new_cache(model)
        ),
    )


def test_new_cache_fits_the_model(answer):
    from tinytorch.perf.caching import new_cache

    rng = answer.rng
    model = random_gpt(rng, max_seq_len=int(rng.integers(2, 12)))
    batch = int(rng.integers(1, 4))
    room = int(rng.integers(1, model.max_seq_len + 1))
    answer.record(
        default_shape=np.array(new_cache(model).keys.shape, np.int64),
        batch_shape=np.array(new_cache(model, batch).keys.shape, np.int64),
        shorter_shape=np.array(new_cache(model, batch, room).keys.shape, np.int64),
        dtype=str(new_cache(model).keys.dtype),
        past_the_model=answer.raises(new_cache, model, 1, model.max_seq_len + 1),
        without_model=answer.raises(new_cache, None),
    )


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def test_greedy_generation_gives_the_foundations_tokens(answer):
    from tinytorch.perf.caching import generate, new_cache

    rng = answer.rng
    for case in range(3):
        model = random_gpt(rng, max_seq_len=int(rng.integers(2, 15)))
        batch = int(rng.integers(1, 4))
        prompt_len = 1 if case == 0 else int(rng.integers(1, model.max_seq_len))
        new = int(rng.integers(1, model.max_seq_len - prompt_len + 1))  # new tokens that fit
        prompt = rng.integers(0, model.vocab_size, (batch, prompt_len))
        cache = new_cache(model, batch)
        out = generate(model, prompt, new, cache=cache)
        rows_alone = [generate(model, prompt[row], new) for row in range(batch)]
        answer.record(
            **{
                f"g{case}_shape": np.array(np.shape(out), np.int64),
                f"g{case}_dtype": str(np.asarray(out).dtype),
                f"g{case}_keeps_prompt": np.array_equal(np.asarray(out)[:, :prompt_len], prompt),
                f"g{case}_greedy": greedy_up_to_rounding(model, np.asarray(out), prompt_len),
                f"g{case}_cache_length": np.int64(cache.length),
                f"g{case}_row_shapes": np.array([np.shape(r) for r in rows_alone], np.int64),
                f"g{case}_rows_greedy": np.array(
                    [greedy_up_to_rounding(model, np.asarray(r)[None], prompt_len) for r in rows_alone]
                ),
            }
        )


def test_generating_no_token_runs_nothing(answer):
    from tinytorch.perf.caching import generate, new_cache

    rng = answer.rng
    for case in range(2):
        model = random_gpt(rng, max_seq_len=int(rng.integers(2, 15)))
        batch = int(rng.integers(1, 4))
        prompt_len = model.max_seq_len if case == 0 else int(rng.integers(1, model.max_seq_len + 1))
        prompt = rng.integers(0, model.vocab_size, (batch, prompt_len))
        cache = new_cache(model, batch)
        out = generate(model, prompt, 0, cache=cache)
        answer.record(
            **{
                f"z{case}_out": np.asarray(out),
                f"z{case}_dtype": str(np.asarray(out).dtype),
                f"z{case}_cache_length": np.int64(cache.length),
            }
        )


def test_greedy_generation_on_the_zoo_transformers(answer):
    from tinytorch.perf.caching import generate

    from tinytorch import zoo

    rng = answer.rng
    sorter = zoo.load_model("transformer_sort")
    prompts = zoo.eval_data("transformer_sort")[0]
    chosen = prompts[rng.choice(len(prompts), size=16, replace=False)]
    answer.record(sort_tokens=generate(sorter, chosen, sorter.max_seq_len - chosen.shape[1]))
    text_model = zoo.load_model("transformer_pydoc")
    texts = zoo.eval_data("transformer_pydoc")[0]
    length = int(rng.integers(1, 33))
    start = int(rng.integers(0, texts.shape[1] - length))
    prompt = texts[int(rng.integers(len(texts))), start : start + length]
    out = generate(text_model, prompt, int(rng.integers(8, 25)))
    answer.record(
        pydoc_shape=np.array(np.shape(out), np.int64),
        pydoc_dtype=str(np.asarray(out).dtype),
        pydoc_greedy=greedy_up_to_rounding(text_model, np.asarray(out)[None], length),
    )


def generate_with_a_spy(rng: np.random.Generator):
    """A random GPT of 2+ layers, a prompt and a count of new tokens; generate through a cache whose
    ``append`` is watched (does each return views of the buffers?). (model, prompt, new, cache,
    present: the foundation's keys and values of the prompt, calls: one bool per append)."""
    from tinytorch.perf.caching import generate, new_cache

    model = random_gpt(rng, max_seq_len=int(rng.integers(6, 15)), min_layers=2)
    batch = int(rng.integers(1, 4))
    prompt_len = int(rng.integers(1, model.max_seq_len - 1))
    new = int(rng.integers(1, model.max_seq_len - prompt_len + 1))
    prompt = rng.integers(0, model.vocab_size, (batch, prompt_len))
    with no_grad():
        _, present = model(prompt)
    cache = new_cache(model, batch)
    keys, values = cache.keys, cache.values
    calls = []
    original = cache.append

    def spy(layer, k, v):
        k_all, v_all = original(layer, k, v)
        calls.append(np.shares_memory(k_all, keys) and np.shares_memory(v_all, values))
        return k_all, v_all

    cache.append = spy
    generate(model, prompt, new, cache=cache)
    del cache.append
    kept = cache.keys is keys and cache.values is values
    return model, prompt, new, cache, present, calls, kept


@SCALED
def test_prefill_writes_the_prompt_keys_and_values(answer):
    model, prompt, _, cache, present, calls, kept = generate_with_a_spy(answer.rng)
    prompt_len = prompt.shape[1]
    answer.record(
        length=np.int64(cache.length),
        appends=np.int64(len(calls)),
        appends_are_views=np.array(calls),
        buffers_kept=kept,
        prompt_keys=np.stack(
            [
                scaled(cache.keys[i, :, :, :prompt_len], k.data, model.n_layers)
                for i, (k, _) in enumerate(present)
            ]
        ),
        prompt_values=np.stack(
            [
                scaled(cache.values[i, :, :, :prompt_len], v.data, model.n_layers)
                for i, (_, v) in enumerate(present)
            ]
        ),
    )


def test_generation_keeps_the_same_buffers(answer):
    _, _, _, cache, _, calls, kept = generate_with_a_spy(answer.rng)
    answer.record(
        appends=np.int64(len(calls)),
        appends_are_views=np.array(calls),
        buffers_kept=kept,
        nbytes=np.int64(cache.nbytes),
        buffer_bytes=np.int64(cache.keys.nbytes + cache.values.nbytes),
    )


def test_reset_gives_a_run_identical_to_a_fresh_cache(answer):
    from tinytorch.perf.caching import generate

    rng = answer.rng
    model, prompt, new, cache, _, _, _ = generate_with_a_spy(rng)
    keys = cache.keys
    cache.reset()
    answer.record(reset_length=np.int64(cache.length), reset_keeps_buffers=cache.keys is keys)
    temperature, top_k, seed = (
        float(rng.uniform(0.5, 1.5)),
        int(rng.integers(1, model.vocab_size + 1)),
        int(rng.integers(1000)),
    )
    again = generate(model, prompt, new, temperature=temperature, top_k=top_k, seed=seed, cache=cache)
    fresh = generate(model, prompt, new, temperature=temperature, top_k=top_k, seed=seed)
    answer.record(
        reused_equals_fresh=np.array_equal(again, fresh),
        used_cache_refused=answer.raises(generate, model, prompt, 1, cache=cache),
    )


@pytest.mark.tolerance(
    rtol=0.0,
    atol=0.03,
    why="frequencies of 20,000 seeded draws: each within sd <= sqrt(0.25 / 20000) = 0.0035 of its "
    "probability, the difference of two within 0.005; 0.03 is 6 of those (another correct sampler "
    "may draw other tokens); draws outside the top k are counted exactly",
)
def test_sampling_follows_the_tempered_top_k_softmax(answer):
    from tinytorch.perf.caching import sample_next

    rng = answer.rng
    draws = 20_000
    for case in range(4):
        vocab = int(rng.integers(5, 9))
        if case == 3:  # more than k logits tie for the largest: all of them stay, with equal weight
            tied = int(rng.integers(2, 5))
            z = np.concatenate([np.full(tied, 1.0), rng.uniform(-2.0, 0.5, vocab - tied)])
            z = rng.permutation(z).astype(np.float32)
            top_k = int(rng.integers(1, tied))
        else:
            z = (rng.standard_normal(vocab) * 1.5).astype(np.float32)
            top_k = None if case == 0 else int(rng.integers(1, vocab))
        # away from 1, so that a temperature ignored moves the frequencies; with a top k, high enough
        # that the logit just below the k-th largest would be drawn too if it were kept
        low = case == 0 and rng.random() < 0.5
        temperature = float(rng.uniform(0.3, 0.6) if low else rng.uniform(1.8, 3.0))
        tokens = sample_next(
            np.repeat(z[None], draws, axis=0),
            temperature,
            top_k,
            np.random.default_rng(int(rng.integers(2**31))),
        )
        tokens = np.asarray(tokens)
        kth = np.sort(z)[-top_k] if top_k is not None else -np.inf
        answer.record(
            **{
                f"s{case}_shape": np.array(tokens.shape, np.int64),
                f"s{case}_dtype": str(tokens.dtype),
                f"s{case}_frequencies": np.bincount(tokens, minlength=vocab)[:vocab] / draws,
                f"s{case}_outside_top_k": np.int64(np.count_nonzero(z[tokens] < kth)),
            }
        )


def test_greedy_picks_the_first_maximum(answer):
    from tinytorch.perf.caching import sample_next

    # greedy: the first maximum of each row, with or without top_k; -inf logits are never drawn
    rng = answer.rng
    logits = rng.integers(-2, 3, (int(rng.integers(2, 6)), int(rng.integers(2, 7)))).astype(np.float32)
    answer.record(
        greedy=sample_next(logits),
        greedy_top_k=sample_next(logits, 0.0, int(rng.integers(1, 4)), np.random.default_rng(0)),
        masked_token=sample_next(
            np.array([[-np.inf, 2.0, -np.inf]], np.float32), 1.0, None, np.random.default_rng(0)
        ),
    )


def test_sample_next_refuses_logits_it_cannot_sample(answer):
    from tinytorch.perf.caching import sample_next

    rng = answer.rng
    logits = rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(2, 6)))).astype(np.float32)
    answer.record(
        valid=sample_next(logits),
        logits_1d=answer.raises(sample_next, np.zeros(5, np.float32)),
        logits_nan=answer.raises(
            sample_next, np.array([[0.0, np.nan, 1.0]], np.float32), 1.0, None, np.random.default_rng(0)
        ),
        logits_inf=answer.raises(
            sample_next, np.array([[0.0, np.inf, 1.0]], np.float32), 1.0, None, np.random.default_rng(0)
        ),
        logits_all_minus_inf=answer.raises(sample_next, np.full((2, 3), -np.inf, np.float32)),
        negative_temperature=answer.raises(sample_next, logits, -float(rng.uniform(0.1, 2))),
        top_k_zero=answer.raises(sample_next, logits, 1.0, 0, np.random.default_rng(0)),
        text_temperature=answer.raises(sample_next, logits, "hot"),
    )


def test_seeded_sampling_is_reproducible(answer):
    from tinytorch.perf.caching import generate

    rng = answer.rng
    model = random_gpt(rng, max_seq_len=int(rng.integers(8, 15)))
    prompt = rng.integers(0, model.vocab_size, int(rng.integers(1, 4)))
    new = model.max_seq_len - prompt.size
    seed = int(rng.integers(1000))
    temperature = float(rng.uniform(0.5, 2.0))
    first = generate(model, prompt, new, temperature=temperature, top_k=3, seed=seed)
    answer.record(
        seeded_reproducible=np.array_equal(
            first, generate(model, prompt, new, temperature=temperature, top_k=3, seed=seed)
        ),
        top_1_is_greedy=np.array_equal(
            generate(model, prompt, new, temperature=temperature, top_k=1, seed=seed),
            generate(model, prompt, new),
        ),
        sampled_shape=np.array(np.shape(first), np.int64),
        sampled_in_vocab=bool(np.all((np.asarray(first) >= 0) & (np.asarray(first) < model.vocab_size))),
    )


# --------------------------------------------------------------------------------------------
# Bad input to generate
# --------------------------------------------------------------------------------------------


def test_bad_generation_arguments_are_refused(answer):
    from tinytorch.perf.caching import generate

    rng = answer.rng
    model = random_gpt(rng, max_seq_len=int(rng.integers(6, 12)))
    prompt_len = int(rng.integers(2, model.max_seq_len - 2))
    prompt = rng.integers(0, model.vocab_size, (1, prompt_len))
    out = generate(model, prompt, 2)  # a valid call first
    answer.record(
        valid_shape=np.array(np.shape(out), np.int64),
        float_prompt=answer.raises(generate, model, prompt.astype(np.float32), 2),
        past_max_seq_len=answer.raises(generate, model, prompt, model.max_seq_len - prompt_len + 1),
        negative_temperature=answer.raises(
            generate, model, prompt, 2, temperature=-float(rng.uniform(0.1, 2))
        ),
        top_k_zero=answer.raises(generate, model, prompt, 2, temperature=1.0, top_k=0),
        token_past_vocab=answer.raises(generate, model, np.array([[0, model.vocab_size]]), 2),
        empty_prompt=answer.raises(generate, model, np.zeros((1, 0), dtype=np.int64), 2),
        text_temperature=answer.raises(generate, model, prompt, 2, temperature="hot"),
        cache_array=answer.raises(generate, model, prompt, 2, cache=np.zeros((1, 1, 2, 8, 4))),
        without_model=answer.raises(generate, None, prompt, 2),
    )
