"""A pre-norm transformer block and a small GPT with a key/value cache (nanoGPT style).

    x = x + attn(ln1(x))        (causal multi-head self-attention)
    x = x + mlp(ln2(x))         (Linear(E, rE) -> GELU -> Linear(rE, E))

Incremental decoding: every block returns the keys/values of the positions it just processed;
GPT concatenates them with the past and hands the whole cache (``present``) back, so

    logits, present = gpt(prompt)
    logits, present = gpt(next_token, past_kv=present)     # one position at a time

gives the same logits as running the full sequence at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinytorch.attention import MultiHeadAttention
from tinytorch.layers import GELU, Embedding, LayerNorm, Linear, Module, Sequential, check_int
from tinytorch.tensor import Tensor, concatenate, no_grad

__all__ = ["GPT", "TransformerBlock"]

KV = tuple[Tensor, Tensor]


class TransformerBlock(Module):
    """Pre-norm block: ``ln1``, ``attn`` (causal MultiHeadAttention), ``ln2``, ``mlp``.

    ``forward(x, past_kv=None) -> (y, (k, v))`` with x, y (B, T, E) and k, v the new positions'
    keys/values (B, n_heads, T, head_dim), exactly as :class:`MultiHeadAttention`.
    """

    def __init__(
        self, embed_dim: int, n_heads: int, mlp_ratio: int = 4, rng: np.random.Generator | None = None
    ) -> None:
        super().__init__()
        hidden = check_int(mlp_ratio, "mlp_ratio") * embed_dim
        self.ln1 = LayerNorm(embed_dim)
        self.attn = MultiHeadAttention(embed_dim, n_heads, causal=True, rng=rng)
        self.ln2 = LayerNorm(embed_dim)
        self.mlp = Sequential(Linear(embed_dim, hidden, rng=rng), GELU(), Linear(hidden, embed_dim, rng=rng))

    def forward(self, x: Tensor, past_kv: tuple[Any, Any] | None = None) -> tuple[Tensor, KV]:
        a, kv = self.attn(self.ln1(x), past_kv)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return x, kv


class GPT(Module):
    """Token + position embeddings, ``n_layers`` TransformerBlocks, final LayerNorm, linear head.

    ``forward(tokens, past_kv=None) -> (logits, present)``:

    * tokens: int (B, T) (a Tensor or an array);
    * past_kv: None, or a list with one (k, v) per block, each (B, n_heads, T_past, head_dim),
      covering the T_past earlier positions; the new tokens get positions T_past .. T_past+T-1;
    * logits: (B, T, vocab_size);
    * present: list of per-block (k, v) over *all* T_past + T positions, ready to pass back.

    ``ValueError`` (naming max_seq_len) when T_past + T > max_seq_len.
    """

    def __init__(
        self,
        vocab_size: int,
        max_seq_len: int,
        embed_dim: int,
        n_heads: int,
        n_layers: int,
        mlp_ratio: int = 4,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size = check_int(vocab_size, "vocab_size")
        self.max_seq_len = check_int(max_seq_len, "max_seq_len")
        self.embed_dim = check_int(embed_dim, "embed_dim")
        self.n_layers = check_int(n_layers, "n_layers")
        self.n_heads = check_int(n_heads, "n_heads")
        self.tok_emb = Embedding(vocab_size, embed_dim, rng=rng)
        self.pos_emb = Embedding(max_seq_len, embed_dim, rng=rng)
        self.blocks = [TransformerBlock(embed_dim, n_heads, mlp_ratio, rng=rng) for _ in range(n_layers)]
        self.ln_f = LayerNorm(embed_dim)
        self.head = Linear(embed_dim, vocab_size, rng=rng)

    def forward(
        self, tokens: Any, past_kv: Sequence[tuple[Any, Any]] | None = None
    ) -> tuple[Tensor, list[KV]]:
        ids = tokens.data if isinstance(tokens, Tensor) else np.asarray(tokens)
        if ids.ndim != 2:
            raise ValueError(f"GPT: tokens must be (B, T) integers, got shape {ids.shape}")
        t_past = 0
        if past_kv is not None:
            past_kv = list(past_kv)
            if len(past_kv) != self.n_layers:
                raise ValueError(
                    f"GPT: past_kv must hold one (k, v) per block ({self.n_layers}), got {len(past_kv)}"
                )
            t_past = past_kv[0][0].shape[2]
        t = ids.shape[1]
        if t_past + t > self.max_seq_len:
            raise ValueError(
                f"GPT: sequence of {t_past + t} positions ({t_past} cached + {t} new) exceeds "
                f"max_seq_len={self.max_seq_len}"
            )
        x = self.tok_emb(ids) + self.pos_emb(np.arange(t_past, t_past + t))  # (B, T, E) + (T, E)
        present: list[KV] = []
        for i, block in enumerate(self.blocks):
            past = None if past_kv is None else past_kv[i]
            x, (k, v) = block(x, past)
            if past is not None:
                k = concatenate([past[0], k], axis=2)
                v = concatenate([past[1], v], axis=2)
            present.append((k, v))
        return self.head(self.ln_f(x)), present

    def generate(self, prompt: Any, max_new_tokens: int, use_cache: bool = True) -> np.ndarray:
        """Greedy decoding: append argmax(logits of the last position) ``max_new_tokens`` times.

        prompt: int (T,) or (B, T) with T >= 1. Returns the prompt followed by the new tokens,
        int64 (T + max_new_tokens,) or (B, T + max_new_tokens). With ``use_cache`` the prompt
        is run once and each new token alone, with the keys/values of the past; without it the
        whole sequence is recomputed every step. Both give the same tokens. ``ValueError``
        (naming max_seq_len) if T + max_new_tokens > max_seq_len. Runs under ``no_grad``.
        """
        seq = np.asarray(prompt.data if isinstance(prompt, Tensor) else prompt)
        if not np.issubdtype(seq.dtype, np.integer):
            raise TypeError(f"GPT.generate: prompt must hold integer token ids, got dtype {seq.dtype}")
        squeeze = seq.ndim == 1
        seq = seq.astype(np.int64)[None, :] if squeeze else seq.astype(np.int64)
        if seq.ndim != 2 or seq.shape[1] < 1:
            raise ValueError(
                f"GPT.generate: prompt must be (T,) or (B, T) with T >= 1, got shape {np.shape(prompt)}"
            )
        max_new_tokens = check_int(max_new_tokens, "GPT.generate: max_new_tokens", minimum=0)
        if seq.shape[1] + max_new_tokens > self.max_seq_len:
            raise ValueError(
                f"GPT.generate: prompt length {seq.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                f"max_seq_len={self.max_seq_len}"
            )
        with no_grad():
            past = None
            step_input = seq
            for _ in range(max_new_tokens):
                if use_cache:
                    logits, past = self.forward(step_input, past)
                else:
                    logits, _ = self.forward(seq)
                nxt = logits.data[:, -1, :].argmax(axis=-1)[:, None].astype(np.int64)
                seq = np.concatenate([seq, nxt], axis=1)
                step_input = nxt
        return seq[0] if squeeze else seq
