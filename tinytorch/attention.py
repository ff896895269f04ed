"""Scaled dot-product attention and multi-head self-attention with a key/value cache hook.

    attention(Q, K, V) = softmax(Q K^T / sqrt(d) + M) V

Q (..., T_q, d), K (..., T_k, d), V (..., T_k, d_v). With ``causal=True`` the mask M is -inf where
a query would see a later key: query i sits at absolute position ``offset + i`` (``offset`` = the
number of cached positions before it) and may attend to keys 0 .. offset + i. exp(-inf) = 0
exactly, so a masked (future) key contributes exactly nothing to the output.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinytorch.layers import Linear, Module, _as_tensor, check_int
from tinytorch.tensor import Tensor, concatenate

__all__ = ["MultiHeadAttention", "causal_mask", "scaled_dot_product_attention"]

KV = tuple[Tensor, Tensor]


def causal_mask(t_q: int, t_k: int, offset: int = 0) -> np.ndarray:
    """Bool (t_q, t_k), True where query i must NOT see key j, i.e. j > offset + i."""
    return np.arange(t_k)[None, :] > (offset + np.arange(t_q))[:, None]


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, causal: bool = False, offset: int = 0
) -> Tensor:
    """softmax(q k^T / sqrt(d) [+ causal mask]) v.

    Shapes: q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v) -> (..., T_q, d_v). ``offset``
    is the absolute position of the first query (the length of the cached past); it only
    matters with ``causal=True``. The score product is batched (not 2-D), so it uses numpy
    directly rather than the backend. No queries (T_q = 0) give an empty result; a head size
    d = 0 (the scale 1/sqrt(d) is undefined) or queries with no keys (T_k = 0, an empty softmax
    for every query) are a ``ValueError``.
    """
    q, k, v = _as_tensor(q), _as_tensor(k), _as_tensor(v)
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(
            f"scaled_dot_product_attention: q, k, v must have the same rank >= 2, got shapes "
            f"{q.shape}, {k.shape}, {v.shape}"
        )
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention: need q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v), "
            f"got shapes {q.shape}, {k.shape}, {v.shape}"
        )
    offset = check_int(offset, "scaled_dot_product_attention: offset", minimum=0)
    if q.shape[-1] == 0:
        raise ValueError(
            f"scaled_dot_product_attention: head size d = 0 (q shape {q.shape}): the scale 1/sqrt(d) "
            "is undefined; use d >= 1"
        )
    if k.shape[-2] == 0 and q.shape[-2] > 0:
        raise ValueError(
            f"scaled_dot_product_attention: {q.shape[-2]} queries but no keys (k shape {k.shape}): "
            "a query must attend to at least one key"
        )
    axes = tuple(range(k.ndim - 2)) + (k.ndim - 1, k.ndim - 2)
    scores = (q @ k.transpose(*axes)) * (1.0 / math.sqrt(q.shape[-1]))  # (..., T_q, T_k)
    if causal:
        scores = scores.masked_fill(causal_mask(q.shape[-2], k.shape[-2], offset), -np.inf)
    return scores.softmax(axis=-1) @ v


class MultiHeadAttention(Module):
    """Multi-head self-attention: project, split into heads, attend, merge, project.

    x (B, T, E) -> q, k, v (B, H, T, D) with H = n_heads, D = head_dim = E // H; each head
    attends independently; the heads are concatenated back to (B, T, E) and mixed by
    ``out_proj``.

    ``forward(x, past_kv=None) -> (y, (k, v))``: k, v are the keys and values of the T *new*
    positions only, (B, H, T, D). With ``past_kv = (k_past, v_past)`` of T_past earlier
    positions, the queries attend over concat(past, new) along the time axis, and the causal
    mask is offset by T_past, so feeding a sequence in pieces gives the same outputs as one
    full forward.
    """

    def __init__(
        self, embed_dim: int, n_heads: int, causal: bool = True, rng: np.random.Generator | None = None
    ) -> None:
        super().__init__()
        self.embed_dim = check_int(embed_dim, "embed_dim")
        self.n_heads = check_int(n_heads, "n_heads")
        if embed_dim % n_heads:
            raise ValueError(
                f"MultiHeadAttention: embed_dim={embed_dim} must be divisible by n_heads={n_heads}"
            )
        self.head_dim = embed_dim // n_heads
        self.causal = bool(causal)
        self.q_proj = Linear(embed_dim, embed_dim, rng=rng)
        self.k_proj = Linear(embed_dim, embed_dim, rng=rng)
        self.v_proj = Linear(embed_dim, embed_dim, rng=rng)
        self.out_proj = Linear(embed_dim, embed_dim, rng=rng)

    def _split_heads(self, t: Tensor, b: int, n: int) -> Tensor:
        """(B, T, E) -> (B, H, T, D)."""
        return t.reshape(b, n, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)

    def forward(self, x: Tensor, past_kv: tuple[Any, Any] | None = None) -> tuple[Tensor, KV]:
        x = _as_tensor(x)
        if x.ndim != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"MultiHeadAttention: x must be (B, T, {self.embed_dim}), got shape {x.shape}")
        b, t, _ = x.shape
        q = self._split_heads(self.q_proj(x), b, t)
        k = self._split_heads(self.k_proj(x), b, t)
        v = self._split_heads(self.v_proj(x), b, t)
        k_all, v_all, offset = k, v, 0
        if past_kv is not None:
            # arrays join the computation in x's dtype (a float64 cache stays float64 in a float64 model)
            k_past, v_past = (a if isinstance(a, Tensor) else Tensor(a, dtype=x.dtype) for a in past_kv)
            expected = (b, self.n_heads, k_past.shape[2] if k_past.ndim == 4 else -1, self.head_dim)
            if k_past.shape != expected or v_past.shape != expected:
                raise ValueError(
                    f"MultiHeadAttention: past_kv must be two (B, n_heads, T_past, head_dim) = "
                    f"({b}, {self.n_heads}, T_past, {self.head_dim}) arrays, "
                    f"got {k_past.shape} and {v_past.shape}"
                )
            offset = k_past.shape[2]
            k_all = concatenate([k_past, k], axis=2)
            v_all = concatenate([v_past, v], axis=2)
        out = scaled_dot_product_attention(q, k_all, v_all, causal=self.causal, offset=offset)  # (B, H, T, D)
        y = self.out_proj(out.transpose(0, 2, 1, 3).reshape(b, t, self.embed_dim))
        return y, (k, v)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, n_heads={self.n_heads}, causal={self.causal}"
