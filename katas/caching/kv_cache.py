"""A preallocated key/value cache: one buffer per tensor, written in place, never grown.

Generating T tokens one at a time needs, at every step, the keys and values of every earlier
position in every layer. The foundation's ``GPT.forward(tokens, past_kv)`` keeps them as arrays
and *concatenates* the new position onto the past at every step: correct, but step s copies the
whole past (s positions), so T steps move O(T^2) bytes and allocate a new array each time.

``KVCache`` allocates the room for ``max_seq_len`` positions once::

    keys, values: (n_layers, batch_size, n_heads, max_seq_len, head_dim), dtype (float32)

    nbytes = 2 * n_layers * batch_size * n_heads * max_seq_len * head_dim * itemsize

and a step costs only the write of its new positions: ``append(layer, k, v)`` stores the t new
positions at ``length .. length + t - 1`` of that layer and returns *views* of the first
``length + t`` positions (the past and the new ones, no copy). When every layer has appended
its t positions, ``advance(t)`` moves ``length`` on by t, once per step for the whole model.

Worked example (1 layer, batch 1, 1 head, head_dim 2, room for 4 positions)::

    cache = KVCache(1, 1, 1, 4, 2)
    k_all, v_all = cache.append(0, k, v)   # k, v (1, 1, 3, 2): a 3-token prompt
    k_all.shape == (1, 1, 3, 2)            # a view of cache.keys[0, :, :, :3]
    cache.advance(3)                       # cache.length == 3
    k_all, v_all = cache.append(0, k1, v1) # k1 (1, 1, 1, 2): positions 0..3, still views
    cache.advance(1)                       # cache.length == 4 == max_seq_len: full
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["KVCache"]


class KVCache:
    """Keys and values of up to ``max_seq_len`` positions for every layer of a transformer.

    Attributes: ``keys``, ``values`` (the preallocated buffers, shape ``shape``, zeros until
    written), ``shape`` = (n_layers, batch_size, n_heads, max_seq_len, head_dim), ``dtype``,
    and the sizes under their own names. ``length`` is the number of positions already cached
    (0 .. max_seq_len).
    """

    def __init__(
        self,
        n_layers: int,
        batch_size: int,
        n_heads: int,
        max_seq_len: int,
        head_dim: int,
        dtype: Any = np.float32,
    ) -> None:
        sizes = {
            "n_layers": n_layers,
            "batch_size": batch_size,
            "n_heads": n_heads,
            "max_seq_len": max_seq_len,
            "head_dim": head_dim,
        }
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"KVCache: {name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"KVCache: {name} must be >= 1, got {value}")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"KVCache: dtype must be a floating dtype, got {self.dtype}")
        self.n_layers, self.batch_size, self.n_heads = int(n_layers), int(batch_size), int(n_heads)
        self.max_seq_len, self.head_dim = int(max_seq_len), int(head_dim)
        self.shape = (self.n_layers, self.batch_size, self.n_heads, self.max_seq_len, self.head_dim)
        raise NotImplementedError(
            "KVCache.__init__ (module 19, caching): implement it in katas/caching/kv_cache.py"
        )

    @property
    def length(self) -> int:
        """The number of positions cached so far (advanced by :meth:`advance`)."""
        return self._length

    @property
    def nbytes(self) -> int:
        """Bytes held by the two buffers: 2 * n_layers * batch * heads * max_seq_len * head_dim * itemsize."""
        raise NotImplementedError(
            "KVCache.nbytes (module 19, caching): implement it in katas/caching/kv_cache.py"
        )

    def _check_append(self, layer: Any, k: Any, v: Any) -> int:
        """Validate an append and return t, the number of new positions; raises before any write."""
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"KVCache.append: layer must be an int, got {type(layer).__name__}")
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"KVCache.append: layer {layer} out of range for {self.n_layers} layers")
        for name, a in (("k", k), ("v", v)):
            if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
                raise TypeError(
                    f"KVCache.append: {name} must be a numeric np.ndarray, got {type(a).__name__}"
                )
            if a.ndim != 4 or a.shape[:2] != (self.batch_size, self.n_heads) or a.shape[3] != self.head_dim:
                raise ValueError(
                    f"KVCache.append: {name} must be (batch_size, n_heads, t, head_dim) = "
                    f"({self.batch_size}, {self.n_heads}, t, {self.head_dim}), got {a.shape}"
                )
        if k.shape != v.shape:
            raise ValueError(f"KVCache.append: k and v must have the same shape, got {k.shape} and {v.shape}")
        t = k.shape[2]
        if self._length + t > self.max_seq_len:
            raise ValueError(
                f"KVCache.append: {self._length} cached + {t} new positions exceed "
                f"max_seq_len={self.max_seq_len}"
            )
        return t

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write layer ``layer``'s keys and values of t new positions and return the cached ones.

        k, v: (batch_size, n_heads, t, head_dim), cast to the cache's dtype, written in place at
        positions ``length .. length + t - 1``. Returns (keys, values) of positions
        ``0 .. length + t - 1`` of that layer, each (batch_size, n_heads, length + t, head_dim):
        *views* of the buffers, not copies. ``length`` does not move (see :meth:`advance`).
        A refused append (``TypeError``, ``ValueError``, ``IndexError``) writes nothing.
        """
        raise NotImplementedError(
            "KVCache.append (module 19, caching): implement it in katas/caching/kv_cache.py"
        )

    def advance(self, t: int) -> None:
        """Mark t more positions as cached: ``length += t`` (once per step, after every layer appended)."""
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise TypeError(f"KVCache.advance: t must be an int, got {type(t).__name__}")
        if t < 0 or self._length + t > self.max_seq_len:
            raise ValueError(
                f"KVCache.advance: t={t} must be >= 0 and keep length {self._length} + t <= "
                f"max_seq_len={self.max_seq_len}"
            )
        raise NotImplementedError(
            "KVCache.advance (module 19, caching): implement it in katas/caching/kv_cache.py"
        )

    def reset(self) -> None:
        """Forget every cached position (``length = 0``); the buffers are kept and reused."""
        raise NotImplementedError(
            "KVCache.reset (module 19, caching): implement it in katas/caching/kv_cache.py"
        )

    def __repr__(self) -> str:
        return (
            f"KVCache(n_layers={self.n_layers}, batch_size={self.batch_size}, n_heads={self.n_heads}, "
            f"max_seq_len={self.max_seq_len}, head_dim={self.head_dim}, dtype={self.dtype}, "
            f"length={self._length}, nbytes={self.nbytes})"
        )
