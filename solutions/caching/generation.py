"""Generation with a preallocated KV cache: prefill the prompt once, then one token per step.

    cache  = new_cache(model, batch_size, max_seq_len)
    logits = cached_forward(model, prompt, cache)        # prefill: all T prompt positions at once
    for each of the n = max_new_tokens new tokens (n = 0: nothing at all is run):
        next   = sample_next(logits[:, -1], temperature, top_k, rng)   # (B,)
        logits = cached_forward(model, next[:, None], cache)           # one new position (not after the last)

``cached_forward`` runs a foundation ``GPT`` on the t new tokens only: token embeddings plus the
position embeddings of positions P .. P + t - 1 (P = ``cache.length``, positions continue from
the cache), each block with :func:`cached_attention` (its keys and values go into the cache at
its layer), then ``cache.advance(t)`` once. Its logits equal the last t rows of the full causal
forward over all P + t tokens.

Decoding: greedy (``temperature=0``: the argmax, the tokens of ``GPT.generate``) or sampling
from softmax(logits / temperature) restricted to the ``top_k`` largest logits, with
``np.random.default_rng(seed)``: the same seed gives the same tokens (one uniform number per row
and step, inverse CDF in vocabulary order: :func:`sample_next`).

Cost per new token: the foundation's concatenating cache copies all P cached positions of every
layer at every step (O(T^2) bytes for T tokens); recomputing runs the whole prefix (O(T^2) work
per step); the preallocated cache writes one position and reads P.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinytorch.layers import check_int
from tinytorch.tensor import Tensor, no_grad
from tinytorch.transformer import GPT

from .attention import cached_attention
from .kv_cache import KVCache

__all__ = [
    "cached_forward",
    "check_prompt",
    "check_sampling",
    "generate",
    "new_cache",
    "sample_next",
]


def new_cache(
    model: GPT, batch_size: int = 1, max_seq_len: int | None = None, dtype: Any = np.float32
) -> KVCache:
    """An empty :class:`KVCache` shaped for ``model``: (n_layers, batch_size, n_heads, max_seq_len,
    head_dim), room for ``model.max_seq_len`` positions unless ``max_seq_len`` says fewer."""
    if not isinstance(model, GPT):
        raise TypeError(f"new_cache: model must be a GPT, got {type(model).__name__}")
    length = model.max_seq_len if max_seq_len is None else check_int(max_seq_len, "new_cache: max_seq_len")
    if length > model.max_seq_len:
        raise ValueError(
            f"new_cache: max_seq_len={length} exceeds the model's max_seq_len={model.max_seq_len}"
        )
    attn = model.blocks[0].attn
    return KVCache(model.n_layers, batch_size, attn.n_heads, length, attn.head_dim, dtype=dtype)


def check_prompt(tokens: Any, vocab_size: int, name: str = "tokens") -> np.ndarray:
    """Token ids as int64 (B, T) with T >= 1 (a (T,) prompt becomes (1, T)); TypeError for
    non-integers, ValueError for other shapes or ids outside 0 .. vocab_size - 1."""
    ids = np.asarray(tokens.data if isinstance(tokens, Tensor) else tokens)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
    ids = ids.astype(np.int64)[None, :] if ids.ndim == 1 else ids.astype(np.int64)
    if ids.ndim != 2 or ids.shape[1] < 1:
        raise ValueError(f"{name} must be (T,) or (B, T) with T >= 1, got shape {np.shape(tokens)}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(
            f"{name}: token ids must be in 0 .. {vocab_size - 1}, got {ids.min()} .. {ids.max()}"
        )
    return ids


def check_sampling(temperature: Any, top_k: Any) -> tuple[float, int | None]:
    """temperature a real number >= 0 (0 = greedy), top_k None or an int >= 1."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be finite and >= 0 (0 = greedy), got {temperature}")
    if top_k is not None:
        top_k = check_int(top_k, "top_k")
    return float(temperature), top_k


def cached_forward(model: GPT, tokens: Any, cache: KVCache) -> np.ndarray:
    """Logits (B, t, vocab_size) of t new tokens (B, t) given the P positions in ``cache``.

    Position embeddings of positions P .. P + t - 1; every block attends with
    :func:`cached_attention` at its own layer of the cache; ``cache.length`` grows by t, once.
    Equal (to float32 rounding) to ``model(all P + t tokens)[0][:, P:]``. Runs without a graph.
    ``ValueError`` if the cache does not fit the model (its layers, heads and head dimension must
    be the model's, its batch size the tokens') or P + t exceeds max_seq_len, the cache's or the
    model's, whichever is smaller (the error names max_seq_len); the cache is then unchanged.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"cached_forward: model must be a GPT, got {type(model).__name__}")
    if not isinstance(cache, KVCache):
        raise TypeError(f"cached_forward: cache must be a KVCache, got {type(cache).__name__}")
    ids = check_prompt(tokens, model.vocab_size)
    attn = model.blocks[0].attn
    if (cache.n_layers, cache.n_heads, cache.head_dim) != (model.n_layers, attn.n_heads, attn.head_dim):
        raise ValueError(
            f"cached_forward: the cache is for {cache.n_layers} layers of {cache.n_heads} heads x "
            f"{cache.head_dim}, the model has {model.n_layers} layers of {attn.n_heads} heads x "
            f"{attn.head_dim}"
        )
    b, t = ids.shape
    past = cache.length
    if b != cache.batch_size:
        raise ValueError(f"cached_forward: tokens have batch size {b}, the cache {cache.batch_size}")
    if past + t > min(cache.max_seq_len, model.max_seq_len):
        raise ValueError(
            f"cached_forward: {past} cached + {t} new positions exceed max_seq_len="
            f"{min(cache.max_seq_len, model.max_seq_len)}"
        )
    with no_grad():
        x = model.tok_emb(ids) + model.pos_emb(np.arange(past, past + t))  # (B, t, E)
        for layer, block in enumerate(model.blocks):
            x = x + cached_attention(block.attn, block.ln1(x), cache, layer)
            x = x + block.mlp(block.ln2(x))
        cache.advance(t)
        return model.head(model.ln_f(x)).data


def sample_next(
    logits: Any, temperature: float = 0.0, top_k: int | None = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The next token of each row of ``logits`` (B, V): int64 (B,).

    ``temperature == 0``: the argmax (the first one on ties, as ``np.argmax``); ``rng`` is not
    used. Otherwise one draw from p = softmax(z / temperature), in float64, where z keeps the
    ``top_k`` largest logits of the row (ties with the k-th largest kept too) and sets the others
    to -inf, so they have probability exactly 0.

    The draw is the inverse CDF in vocabulary order, with one uniform number per row from a
    single call ``u = rng.random((B, 1))`` (``rng`` defaults to ``np.random.default_rng()``):
    with w = exp(z - max z) and c = cumsum(w) along the row, the token is the number of entries
    of c that are <= u * c[-1], i.e. the first i with c[i] > u * c[-1]. A token of probability 0
    adds nothing to c and is never drawn, not even for u = 0; since u < 1 the count is at most
    V - 1. The same rng state gives the same tokens: seeded generation (and the guide's sample
    text) depends on this rule. Example: logits (-inf, 0, 0, 0) give c = (0, 1, 2, 3), and
    u = 0, 0.3, 1/3, 0.9 give tokens 1, 1, 2, 3 (for u = 1/3, u * c[-1] = 1 = c[1] counts: token 2).
    """
    z = np.asarray(logits)
    if z.ndim != 2 or z.shape[1] < 1 or z.dtype.kind != "f":
        raise ValueError(f"sample_next: logits must be a float (B, V) array, got {z.dtype} {z.shape}")
    if np.isnan(z).any() or np.isposinf(z).any() or np.isneginf(z).all(axis=-1).any():
        raise ValueError("sample_next: logits must not hold NaN or +inf, and each row needs a finite logit")
    temperature, top_k = check_sampling(temperature, top_k)
    if temperature == 0.0:
        return z.argmax(axis=-1).astype(np.int64)
    rng = np.random.default_rng() if rng is None else rng
    z = z.astype(np.float64) / temperature
    vocab = z.shape[1]
    if top_k is not None and top_k < vocab:
        kth = np.partition(z, vocab - top_k, axis=-1)[:, vocab - top_k, None]  # the k-th largest
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p, axis=-1)
    u = rng.random((z.shape[0], 1)) * cdf[:, -1:]
    return (cdf <= u).sum(axis=-1).astype(np.int64)  # u * cdf[-1] < cdf[-1]: at most vocab - 1


def generate(
    model: GPT,
    prompt: Any,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
    cache: KVCache | None = None,
) -> np.ndarray:
    """The prompt followed by ``max_new_tokens`` generated tokens, int64 (T + n,) or (B, T + n).

    prompt int (T,) or (B, T), T >= 1. Prefill: the whole prompt in one :func:`cached_forward`;
    then each new token alone. ``temperature=0`` (default) is greedy and gives the tokens of
    ``model.generate(prompt, n, use_cache=False)``; ``temperature > 0`` samples: each new token
    is one :func:`sample_next` call on the last position's logits, all with the one
    ``rng = np.random.default_rng(seed)``. ``cache``: an empty :class:`KVCache` to use
    (``reset()`` a used one), by default a new one sized for T + n - 1 positions (at least 1).
    Afterwards ``cache.length`` = T + n - 1 for n >= 1, the positions run through the model (the
    last token is not); n = 0 runs nothing, not even the prefill: the prompt is returned and
    ``cache.length`` stays 0. ``ValueError`` (naming max_seq_len) if T + n > max_seq_len.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"generate: model must be a GPT, got {type(model).__name__}")
    seq = check_prompt(prompt, model.vocab_size, "generate: prompt")
    squeeze = np.asarray(prompt.data if isinstance(prompt, Tensor) else prompt).ndim == 1
    max_new_tokens = check_int(max_new_tokens, "generate: max_new_tokens", minimum=0)
    temperature, top_k = check_sampling(temperature, top_k)
    b, t = seq.shape
    if t + max_new_tokens > model.max_seq_len:
        raise ValueError(
            f"generate: prompt length {t} + max_new_tokens {max_new_tokens} exceeds "
            f"max_seq_len={model.max_seq_len}"
        )
    if cache is None:
        cache = new_cache(model, b, max(t + max_new_tokens - 1, 1))
    elif not isinstance(cache, KVCache):
        raise TypeError(f"generate: cache must be a KVCache or None, got {type(cache).__name__}")
    elif cache.length:
        raise ValueError(f"generate: the cache already holds {cache.length} positions; reset() it first")
    rng = np.random.default_rng(seed)
    out = np.empty((b, t + max_new_tokens), dtype=np.int64)
    out[:, :t] = seq
    if max_new_tokens:
        logits = cached_forward(model, seq, cache)  # prefill
        for i in range(t, t + max_new_tokens):
            out[:, i] = sample_next(logits[:, -1], temperature, top_k, rng)
            if i + 1 < t + max_new_tokens:
                logits = cached_forward(model, out[:, i : i + 1], cache)
    return out[0] if squeeze else out
