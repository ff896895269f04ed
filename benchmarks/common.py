"""What every module benchmark shares: the text table its report prints, the machine and BLAS it
ran on, the load around it, and interleaved timing.

Every script imports this module after it has pinned its BLAS threads and imported numpy.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

# A timer runs fn once and returns its duration in seconds; tests inject a scripted one.
Timer = Callable[[str, Callable[[], object]], float]


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A right-aligned Markdown table: readable on a terminal, pasteable into a guide."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def machine_description() -> str:
    """Architecture, core count and Python version, on one line."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def blas_description(env_vars: tuple[str, ...]) -> str:
    """numpy's BLAS (name and version, from ``np.show_config``) and the variables ``env_vars``."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy or an unusual build: the config is informative only
        name = "unknown"
    env = ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in env_vars)
    return f"numpy {np.__version__}, BLAS {name}; {env}"


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def unfinished_module(error: BaseException) -> Any | None:
    """The kata module (a ``registry.Module``) that ``error`` shows is not there yet, else None.

    A ``NotImplementedError`` belongs to the module whose file raised it (the innermost frame of
    its traceback inside a kata module's folder); an ``ImportError`` of ``tinytorch.perf.<name>``
    (not built, or a name missing from it) to that module. Any other error is None: it is a
    wrong result or a crash, not an unfinished module.
    """
    from tinytorch.course import leaderboard, registry

    name = None
    if isinstance(error, ImportError) and (error.name or "").startswith("tinytorch.perf."):
        name = error.name.split(".")[2]
    elif isinstance(error, NotImplementedError):
        traceback = error.__traceback__
        while traceback is not None:
            name = leaderboard.kata_module_of(traceback.tb_frame.f_code.co_filename) or name
            traceback = traceback.tb_next
    try:
        return None if name is None else registry.get(name)
    except (KeyError, ValueError, registry.RegistryError):
        return None


def perf_timer(name: str, fn: Callable[[], object]) -> float:
    """The wall time of one ``fn()`` in seconds (``name`` is for scripted test timers)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_times(
    fns: dict[str, Callable[[], object]], repeats: dict[str, int], timer: Timer = perf_timer
) -> dict[str, list[float]]:
    """``repeats[name]`` durations of each ``fn()``, measured side by side.

    Round r times every function that still needs runs once, starting from the r-th one in a
    rotating order, so a burst of load hits all of them alike and none is always first.
    """
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(max(repeats.values())):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            if round_ < repeats[name]:
                times[name].append(timer(name, fns[name]))
    return times
