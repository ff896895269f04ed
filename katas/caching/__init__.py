"""Module 19, caching: a preallocated KV cache, cached attention and generation with the cache.

Files: ``kv_cache.py`` (``KVCache``), ``attention.py`` (``cached_attention``),
``generation.py`` (``cached_forward``, ``sample_next``, ``generate``, ``new_cache``). Import
everything from ``tinytorch.perf.caching``.
"""

from .attention import cached_attention, check_attention_args
from .generation import cached_forward, check_prompt, check_sampling, generate, new_cache, sample_next
from .kv_cache import KVCache

__all__ = [
    "KVCache",
    "cached_attention",
    "cached_forward",
    "check_attention_args",
    "check_prompt",
    "check_sampling",
    "generate",
    "new_cache",
    "sample_next",
]
