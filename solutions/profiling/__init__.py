"""Module 15, profiling: measure first. Every later module proves its speedup with these tools.

* :mod:`.timer`   ``Timer.measure(func, warmup, runs)`` and ``summarize(samples)``: p50/p95/p99
  per call, each sample a loop of calls calibrated (``Timer.calibrate``) to last >= 20 ms
* :mod:`.memory`  ``MemoryProfiler.profile(func)``: peak and net bytes with tracemalloc
* :mod:`.flops`   ``FLOPCounter.count_ops(model, input)``: FLOPs per layer, 2 per multiply-add
* :mod:`.context` ``ProfilerContext``: a ``with`` block that reports time, memory and the
  most expensive layer

Import from here (``from tinytorch.perf.profiling import Timer``); this file is not edited.
"""

from .context import LayerStats, ProfilerContext, instrument
from .flops import ZERO_FLOP_LAYERS, FLOPCounter, FLOPResult, layer_flops
from .memory import MemoryProfiler, MemoryResult
from .timer import DEFAULT_MIN_TIME, Timer, TimingResult, summarize

__all__ = [
    "DEFAULT_MIN_TIME",
    "FLOPCounter",
    "FLOPResult",
    "LayerStats",
    "MemoryProfiler",
    "MemoryResult",
    "ProfilerContext",
    "Timer",
    "TimingResult",
    "ZERO_FLOP_LAYERS",
    "instrument",
    "layer_flops",
    "summarize",
]
