"""Peak and net memory of a function, with tracemalloc (module 15, profiling).

``tracemalloc`` records every allocation made through Python's allocators, and numpy reports
its array buffers to it too, so an ``np.ones(10**6)`` shows up as 8 MB. It keeps two numbers:
the bytes traced right now (current) and the highest value since the last ``reset_peak()``
(peak). Around a call to ``func``:

    before       = current, after reset_peak()
    peak_bytes   = peak during the call - before    (the high-water mark the call needed)
    net_bytes    = current after the call - before  (what the call left allocated, e.g. its result)

tracemalloc has one global peak counter. A profiler that resets it while another one is open
(nested profiling) would erase the outer one's high-water mark, so every open profiler keeps
the highest peak seen so far and each reset first folds the current peak into all of them.
Tracing that someone else started is left running.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["MemoryResult", "MemoryProfiler"]


@dataclass(frozen=True)
class MemoryResult:
    """Bytes traced by tracemalloc, relative to the moment profiling started.

    ``peak_bytes`` >= 0 is the high-water mark reached; ``net_bytes`` (may be negative) is what
    is still allocated at the end; ``result`` is the profiled function's return value (kept so
    that memory it holds still counts in ``net_bytes``).
    """

    peak_bytes: int
    net_bytes: int
    result: Any = None

    def __str__(self) -> str:
        return f"peak {self.peak_bytes / 2**20:.3f} MiB, net {self.net_bytes / 2**20:+.3f} MiB"


class _Watermark:
    """The highest traced level one open profiler has seen (compared by identity)."""

    def __init__(self, level: int) -> None:
        self.level = level


# The watermark of every profiler that is open, outermost first.
_open: list[_Watermark] = []


def _reset_peak() -> None:
    """``tracemalloc.reset_peak()`` without losing the peak that open profilers have seen."""
    peak = tracemalloc.get_traced_memory()[1]
    for mark in _open:
        mark.level = max(mark.level, peak)
    tracemalloc.reset_peak()


class MemoryProfiler:
    """Measures memory with tracemalloc: ``MemoryProfiler().profile(func)``, or
    ``start()`` ... ``stop()`` around any code. Nested profilers stop in reverse order."""

    def __init__(self) -> None:
        self._mark: _Watermark | None = None  # our entry in _open while running
        self._started_tracing = False
        self._before = 0

    @property
    def running(self) -> bool:
        return self._mark is not None

    def start(self) -> None:
        """Start measuring: start tracemalloc if it is off, reset its peak, note ``before``.

        While it runs, the profiler's :class:`_Watermark` (starting at ``before``) stands in
        ``_open``, so that a nested profiler's peak reset cannot lose this one's peak; :meth:`stop`
        takes it out again.
        """
        if self.running:
            raise RuntimeError("MemoryProfiler.start(): this profiler is already running")
        self._started_tracing = not tracemalloc.is_tracing()
        if self._started_tracing:
            tracemalloc.start()
        _reset_peak()
        self._before = tracemalloc.get_traced_memory()[0]
        self._mark = _Watermark(self._before)
        _open.append(self._mark)

    def stop(self, result: Any = None) -> MemoryResult:
        """Stop measuring and return peak and net bytes since :meth:`start`.

        The peak is the highest level since :meth:`start`, also when a profiler nested inside
        this one has reset tracemalloc's peak meanwhile; tracing is stopped only if
        :meth:`start` started it. Example: a function that allocates 8 MB and frees it gives
        ``peak_bytes`` about 8 MB and ``net_bytes`` about 0.
        """
        if not self.running:
            raise RuntimeError("MemoryProfiler.stop(): call start() first")
        current, peak = tracemalloc.get_traced_memory()
        highest = max(self._mark.level, peak)
        _open.remove(self._mark)
        self._mark = None
        if self._started_tracing:
            tracemalloc.stop()
        before = self._before
        return MemoryResult(peak_bytes=highest - before, net_bytes=current - before, result=result)

    def profile(self, func: Callable[[], Any]) -> MemoryResult:
        """Call ``func()`` once and return its peak and net bytes (and its return value).

        ``result`` is ``func``'s return value, and the memory it holds counts in ``net_bytes``.
        If ``func`` raises, the profiler is stopped all the same and the exception reaches the
        caller.
        """
        if not callable(func):
            raise TypeError(f"func must be callable, got {type(func).__name__}")
        self.start()
        try:
            result = func()
        finally:
            measured = self.stop()
        return replace(measured, result=result)
