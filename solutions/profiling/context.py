"""ProfilerContext: time, memory and per-layer cost of a block of code (module 15, profiling).

    with ProfilerContext(model) as prof:
        model(x)
    # on exit the report is printed; prof.report() returns it, prof.layers holds the numbers

Per layer we record its *self time*: the time inside its forward minus the time inside the
forwards of the layers it calls. Self times never double count, so the layers' self times plus
the time spent outside any layer add up to the wall time of the block:

    self(layer) = inclusive(layer) - sum(inclusive(child) for each child call)

The foundation's modules only have hooks that run *after* forward, so to read the clock on the
way in as well, :func:`instrument` wraps every module's ``forward`` for the duration of the
block and restores it on exit. Each call also gets its FLOPs from :func:`layer_flops`, which
turns a time into a throughput (GFLOP/s): the number that tells a slow layer from a big one.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinytorch.layers import Module, bind_inputs

from .flops import layer_flops
from .memory import MemoryProfiler, MemoryResult

__all__ = ["LayerStats", "ProfilerContext", "instrument"]


@dataclass
class LayerStats:
    """What the profiler saw of one layer: its calls, self time (s) and FLOPs (None: no rule)."""

    name: str
    kind: str
    calls: int = 0
    time: float = 0.0
    flops: int | None = None


def instrument(
    model: Module,
    on_enter: Callable[[str, Module], None],
    on_exit: Callable[[str, Module, tuple, Any], None],
) -> Callable[[], None]:
    """Wrap the ``forward`` of every module of ``model`` so that each call runs
    ``on_enter(name, module)`` before and ``on_exit(name, module, args, output)`` after it.

    ``name`` is the dotted name from ``named_modules`` (the model itself is named after its
    class; a module reachable under two names is wrapped once, under its first name). ``args``
    is the call's arguments in ``forward``'s order, keywords included (``bind_inputs``), as a
    forward hook gets them. Returns ``undo()``, which restores every forward; call it exactly once.
    """
    def wrap(name: str, module: Module, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def forward(*args: Any, **kwargs: Any) -> Any:
            on_enter(name, module)
            output = original(*args, **kwargs)
            on_exit(name, module, bind_inputs(module, args, kwargs), output)
            return output

        return forward

    restore: list[tuple[Module, bool, Any]] = []
    for name, module in model.named_modules():
        had_own = "forward" in vars(module)  # e.g. already wrapped by an outer profiler
        restore.append((module, had_own, module.forward))
        module.forward = wrap(name or type(module).__name__, module, module.forward)

    def undo() -> None:
        for module, had_own, original in reversed(restore):
            if had_own:
                module.forward = original
            else:
                del module.forward

    return undo


def _elapsed(start: float, end: float) -> float:
    """``end - start`` in seconds, for two readings of a clock. A clock that returns something
    that is not a number is a ``TypeError``; one that ran backwards (or gives NaN or inf) a
    ``ValueError``: a negative duration would only print a nonsensical report."""
    try:
        seconds = float(end - start)
    except (TypeError, ValueError) as err:
        raise TypeError(f"clock must return seconds as a number, got {start!r} then {end!r}") from err
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"clock went backwards or is broken: read {start!r} then {end!r}")
    return seconds


class ProfilerContext:
    """A ``with`` block that measures wall time, memory (tracemalloc) and, given a model,
    the self time, calls and FLOPs of each of its layers; prints :meth:`report` on exit.

    ``clock`` returns seconds (default :func:`time.perf_counter`); ``track_memory=False`` skips
    tracemalloc, which slows Python-level allocations and so inflates timings a little;
    ``verbose=False`` keeps the report from being printed.

    Every layer that runs gets a row in ``layers``, including a leaf layer without a FLOP rule:
    its ``LayerStats.flops`` is None (shown as ``-``), its time still counts. The rows are in the
    order the layers first finished a call (as in ``FLOPResult.per_layer``). (``FLOPCounter``
    differs on purpose: such a layer gets no ``per_layer`` entry and is named in
    ``FLOPResult.unsupported``, so the FLOP total is never padded with zeros.) Containers
    (layers whose work is their sublayers') get no row.
    """

    def __init__(
        self,
        model: Module | None = None,
        clock: Callable[[], float] = time.perf_counter,
        track_memory: bool = True,
        verbose: bool = True,
    ) -> None:
        if model is not None and not isinstance(model, Module):
            raise TypeError(f"model must be a tinytorch Module or None, got {type(model).__name__}")
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__}")
        self.model = model
        self.clock = clock
        self.track_memory = track_memory
        self.verbose = verbose
        self.wall_time: float | None = None
        self.memory: MemoryResult | None = None
        self.layers: dict[str, LayerStats] = {}
        self._undo: Callable[[], None] | None = None
        self._memory = MemoryProfiler()
        self._memory_started = False  # started by __enter__, not stopped yet
        self._start = 0.0
        self._stack: list[list[float]] = []  # per open call: [start time, inclusive time of children]

    # -- per-layer bookkeeping (called by the instrumented forwards) ------------------------
    def _on_enter(self, name: str, module: Module) -> None:
        """Runs just before a layer's forward: a call of ``name`` begins now. Reads the clock
        once: ``__enter__``, ``__exit__``, ``_on_enter`` and ``_on_exit`` each read it exactly once
        per call (the tests' broken clocks fail at a given reading)."""
        self._stack.append([self.clock(), 0.0])

    def _on_exit(self, name: str, module: Module, args: tuple, output: Any) -> None:
        """Runs just after a layer's forward: record the call in ``self.layers[name]`` (a
        :class:`LayerStats`): one more call, its *self* time (the module docstring's formula)
        and its FLOPs (:func:`layer_flops` of ``args`` and ``output``, summed over calls; None
        for a layer without a rule). A container (no FLOP rule, and sublayers) gets no row.
        The call's inclusive time is its caller's child time. Reads the clock once."""
        start, children = self._stack.pop()
        inclusive = _elapsed(start, self.clock())
        if self._stack:
            self._stack[-1][1] += inclusive
        flops = layer_flops(module, args, output)
        if flops is None and module.children():
            return  # a container: its work is its children's
        stats = self.layers.setdefault(name, LayerStats(name, type(module).__name__))
        stats.calls += 1
        stats.time += inclusive - children
        if flops is not None:
            stats.flops = (stats.flops or 0) + flops

    # -- the with block ------------------------------------------------------------------------
    def _clean_up(self) -> None:
        """Undo the instrumentation and stop the memory profiler, each even if the other fails,
        so that the model's layers and tracemalloc are left as they were found."""
        try:
            if self._undo is not None:
                undo, self._undo = self._undo, None
                undo()
        finally:
            if self._memory_started:
                self._memory_started = False
                self.memory = self._memory.stop()

    def __enter__(self) -> ProfilerContext:
        """Start afresh (results of an earlier block are dropped): memory tracking if
        ``track_memory`` (``self._memory.start()``, with ``self._memory_started`` set so that
        ``_clean_up`` stops it), the model's instrumentation if a model was given (``undo`` from
        :func:`instrument` kept in ``self._undo``, for ``_clean_up``), and the clock, read once
        and last so that the setup is not timed. If entering fails half way, the model and
        tracemalloc are left as they were found."""
        self.wall_time, self.memory, self.layers, self._stack = None, None, {}, []
        if self.track_memory:
            self._memory.start()
            self._memory_started = True
        try:
            if self.model is not None:
                self._undo = instrument(self.model, self._on_enter, self._on_exit)
            self._start = self.clock()
        except BaseException:
            self._clean_up()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        """Stop: ``wall_time`` (the clock read once and first, so the clean-up is not timed; set
        also when the block raised), then the model and tracemalloc restored whatever happens,
        even when the clock fails; print the report if the block did not raise and ``verbose``.
        Never swallows the block's exception, and when both the block and the clock fail, the
        block's exception is the one raised."""
        try:
            self.wall_time = _elapsed(self._start, self.clock())
        except Exception:
            if exc_type is None:
                raise  # a broken clock; else the block's own exception says more
        finally:
            self._clean_up()
        if exc_type is None and self.verbose:
            print(self.report())
        return False  # never swallow an exception

    # -- results -------------------------------------------------------------------------------
    @property
    def most_expensive(self) -> str | None:
        """The name of the layer with the largest self time (the first on a tie), or None."""
        if not self.layers:
            return None
        return max(self.layers.values(), key=lambda s: s.time).name

    def report(self) -> str:
        """A text table: wall time and memory, then one row per layer (calls, self time, share of
        the wall time, FLOPs, GFLOP/s), the time outside layers, and the most expensive layer."""
        if self.wall_time is None:
            raise RuntimeError("ProfilerContext.report(): use it as `with ProfilerContext() as prof:` first")
        wall = self.wall_time
        lines = [f"wall time {wall * 1e3:.3f} ms" + (f", memory {self.memory}" if self.memory else "")]
        if self.model is None:
            lines.append("no model given: per-layer times not recorded")
            return "\n".join(lines)

        def share(t: float) -> str:
            return f"{t / wall:6.1%}" if wall > 0 else "     -"

        width = max([len(n) for n in self.layers] + [16])
        lines.append(
            f"{'layer':<{width}}  {'type':<18} {'calls':>5}  {'self ms':>10}  {'share':>6}  "
            f"{'FLOPs':>14}  {'GFLOP/s':>8}"
        )
        for s in self.layers.values():
            flops = f"{s.flops:>14,}" if s.flops is not None else f"{'-':>14}"
            rate = f"{s.flops / s.time / 1e9:>8.2f}" if s.flops and s.time > 0 else f"{'-':>8}"
            lines.append(
                f"{s.name:<{width}}  {s.kind:<18} {s.calls:>5}  {s.time * 1e3:>10.3f}  {share(s.time)}  "
                f"{flops}  {rate}"
            )
        outside = wall - sum(s.time for s in self.layers.values())
        label = "(outside layers)"
        lines.append(f"{label:<{width}}  {'':<18} {'':>5}  {outside * 1e3:>10.3f}  {share(outside)}")
        top = self.most_expensive
        if top is None:
            lines.append("most expensive layer: none (the model did not run inside the block)")
        else:
            s = self.layers[top]
            lines.append(f"most expensive layer: {top} ({s.kind}, {share(s.time).strip()} of the wall time)")
        return "\n".join(lines)
