"""Timing module 16's matmul kernels on a busy machine: interleaved repeats, their spread, and
re-measuring a result that cannot be true.

``benchmarks/acceleration.py`` times its kernels with :func:`measure`. ``matmul_blocked``
multiplies its tiles with the same BLAS, so it cannot beat one BLAS call on the whole product,
and the naive loop cannot beat either: a kernel that looks faster than one it cannot beat,
beyond the noise (its upper quartile below the other's lower quartile, and by more than 10 %),
is measured again with more repeats, and what stays implausible is returned to be reported.
Imported by ``benchmarks/acceleration.py`` once it has decided how BLAS is pinned; importing
this module pins nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.common import Timer, interleaved_times, perf_timer

MARGIN = 0.10  # "faster beyond the noise": quartiles apart *and* medians more than 10 % apart
RETRIES = 2  # re-measurements of an implausible result, each with twice the repeats


def spread(samples: list[float]) -> dict[str, float]:
    """Median, quartiles (numpy's linear method), min and max of durations, in seconds."""
    q1, median, q3 = (float(v) for v in np.percentile(samples, [25, 50, 75]))
    return {
        "median_s": median,
        "q1_s": q1,
        "q3_s": q3,
        "min_s": min(samples),
        "max_s": max(samples),
        "runs": len(samples),
    }


def faster_beyond_noise(fast: dict[str, float], slow: dict[str, float]) -> bool:
    """True when ``fast`` is clearly faster than ``slow``: quartile ranges apart, medians > MARGIN apart."""
    return fast["q3_s"] < slow["q1_s"] and fast["median_s"] < (1 - MARGIN) * slow["median_s"]


def implausible(stats: dict[str, dict[str, float]]) -> list[tuple[str, str]]:
    """What ``stats`` (kernel name -> spread) claims that cannot be true on one machine, as
    (kernel, explanation) pairs.

    ``blocked`` and every block size of the sweep multiply their tiles with BLAS, so they cannot
    beat ``numpy`` (one BLAS call on the whole product); ``naive`` cannot beat anything.
    """
    problems = []
    reference = stats.get("numpy")
    for name, s in stats.items():
        if name in ("numpy", "naive") or reference is None:
            continue
        if faster_beyond_noise(s, reference):
            problems.append(
                (
                    name,
                    (
                        f"{name} ({s['median_s'] * 1e3:,.3f} ms) is faster than one BLAS call on the whole "
                        f"product ({reference['median_s'] * 1e3:,.3f} ms)"
                    ),
                )
            )
    naive = stats.get("naive")
    if naive is not None:
        for name, s in stats.items():
            if name != "naive" and faster_beyond_noise(naive, s):
                problems.append(
                    (
                        "naive",
                        f"the naive loop ({naive['median_s'] * 1e3:,.3f} ms) is faster "
                        f"than {name} ({s['median_s'] * 1e3:,.3f} ms)",
                    )
                )
    return problems


def measure(
    fns: dict[str, Callable[[], object]], repeats: dict[str, int], timer: Timer = perf_timer
) -> tuple[dict[str, dict[str, float]], list[tuple[str, str]], int]:
    """Interleaved timings of ``fns`` -> (spread per name, problems left, re-measurements made).

    An implausible result (:func:`implausible`) is measured again, up to ``RETRIES`` times, each
    time with twice the repeats; the problems that remain are returned to be reported.
    """
    for attempt in range(RETRIES + 1):
        scaled = {name: r * 2**attempt for name, r in repeats.items()}
        stats = {name: spread(t) for name, t in interleaved_times(fns, scaled, timer).items()}
        problems = implausible(stats)
        if not problems:
            return stats, [], attempt
    return stats, problems, RETRIES
