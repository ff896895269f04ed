"""Cached attention: the new positions' queries attend over everything in the KV cache.

For one layer of a GPT and t new positions x (B, t, E), with P = ``cache.length`` positions
already cached (the past)::

    q, k, v = split_heads(x W_q + b_q), split_heads(x W_k + b_k), split_heads(x W_v + b_v)
              each (B, H, t, D),  H = n_heads, D = head_dim = E / H
    K, V    = cache.append(layer, k, v)           # (B, H, P + t, D): past and new, views
    S       = q K^T / sqrt(D)                     # (B, H, t, P + t)
    S[i, j] = -inf  where j > P + i               # only if attn.causal: the mask, offset by the past
    y       = merge_heads(softmax(S) V) W_o + b_o # (B, t, E)

Only the t new positions are projected: the keys and values of the past come from the cache,
so a decoding step (t = 1) costs O(P) for the attention instead of the full forward's O(P^2).
New position i sits at absolute position P + i: it sees the whole past and the new positions
0 .. i, nothing later, also when several new positions arrive at once (the prefill, t > 1).

The mask follows ``attn.causal``, as the foundation's attention does: a GPT's attention is
causal; a ``MultiHeadAttention(..., causal=False)`` is not masked at all, so each new position
sees every cached position and every new one (keys 0 .. P + t - 1).

The scale 1/sqrt(D) is taken in the precision of the scores (multiply or divide by a Python
float, as the foundation does): a float32 constant in a float64 model would round the scale to
float32 and put the cached result ~1e-8 (relative) away from the model's own forward instead of
float64 rounding (~1e-16).

Worked example (P = 2 cached, t = 2 new): the mask over keys 0..3 is::

    query at position 2:  sees 0 1 2 .      (key 3 is its future)
    query at position 3:  sees 0 1 2 3

With ``causal_mask(t, P + t)`` (no offset) query 2 would see only key 0: wrong.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinytorch.attention import MultiHeadAttention, causal_mask
from tinytorch.tensor import Tensor, no_grad

from .kv_cache import KVCache

__all__ = ["cached_attention", "check_attention_args"]


def check_attention_args(attn: Any, x: Any, cache: Any) -> np.ndarray:
    """Validate a cached-attention call and return x as a float array (B, t, E).

    ``attn`` a foundation ``MultiHeadAttention``, ``cache`` a :class:`KVCache` with the same
    heads and head dimension; x (B, t, E) with E = attn.embed_dim and B = cache.batch_size.
    """
    if not isinstance(attn, MultiHeadAttention):
        raise TypeError(f"cached_attention: attn must be a MultiHeadAttention, got {type(attn).__name__}")
    if not isinstance(cache, KVCache):
        raise TypeError(f"cached_attention: cache must be a KVCache, got {type(cache).__name__}")
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if data.ndim != 3 or data.shape[-1] != attn.embed_dim or data.shape[1] < 1:
        raise ValueError(f"cached_attention: x must be (B, t >= 1, {attn.embed_dim}), got shape {data.shape}")
    if (cache.n_heads, cache.head_dim) != (attn.n_heads, attn.head_dim):
        raise ValueError(
            f"cached_attention: the cache holds {cache.n_heads} heads of dimension {cache.head_dim}, "
            f"the attention has {attn.n_heads} heads of dimension {attn.head_dim}"
        )
    return data


def cached_attention(attn: MultiHeadAttention, x: Any, cache: KVCache, layer: int) -> Tensor:
    """Self-attention of t new positions over the cached past and themselves, with ``attn``'s weights.

    x (B, t, E), a Tensor or an array, t >= 1 -> y (B, t, E), a Tensor (computed without a
    graph; float64 for a float64 x, weights and cache: nothing is rounded to float32 on the way).
    The softmax subtracts each row's maximum first, as the foundation's does, so large scores do
    not overflow exp. Writes the new keys and values into ``cache`` at layer ``layer`` (positions
    ``cache.length .. cache.length + t - 1``) and does not advance ``cache.length``: the caller
    does that once all layers have appended.
    Equals the rows P .. P + t - 1 of ``attn`` run on the whole sequence (P = cache.length), to
    the rounding of x's dtype. The causal mask (offset by P) only when ``attn.causal`` is True;
    with ``causal=False`` no key is masked.
    """
    data = check_attention_args(attn, x, cache)
    b, t, e = data.shape
    n_heads, head_dim = attn.n_heads, attn.head_dim
    past = cache.length
    with no_grad():
        x = Tensor(data, dtype=data.dtype) if not isinstance(x, Tensor) else x

        def heads(proj) -> np.ndarray:  # (B, t, E) -> (B, H, t, D)
            return proj(x).data.reshape(b, t, n_heads, head_dim).transpose(0, 2, 1, 3)

        q, k, v = heads(attn.q_proj), heads(attn.k_proj), heads(attn.v_proj)
        keys, values = cache.append(layer, k, v)  # (B, H, past + t, D), views of the buffers
        # (B, H, t, past + t); a Python float scale keeps the scores in q's precision
        scores = (q @ keys.swapaxes(-1, -2)) * (1.0 / math.sqrt(head_dim))
        if attn.causal:
            scores[..., causal_mask(t, past + t, offset=past)] = -np.inf
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = scores / scores.sum(axis=-1, keepdims=True)
        out = (weights @ values).transpose(0, 2, 1, 3).reshape(b, t, e)  # merge the heads
        return attn.out_proj(Tensor(out, dtype=out.dtype))
