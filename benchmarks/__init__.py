"""Benchmark commands, one per module: ``python benchmarks/<module>.py`` or ``tinytorch bench <module>``.

Each prints ratios measured side by side in one run; none of them is a test. ``submit.py`` is
the measuring half of ``tinytorch submit``.

One rule for BLAS threads in everything that measures (every benchmark script, the overview and
``tinytorch submit``): :func:`pin_blas_threads`, called before numpy loads. This file imports
nothing but ``os`` so that a script can call it first.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_blas_threads(environ: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """One BLAS thread unless the caller chose: each of :data:`BLAS_THREAD_VARS` set to ``"1"``
    where it is unset, in ``environ`` (default ``os.environ``), which is returned.

    BLAS reads these once, when numpy loads it: call this before the first ``import numpy`` of
    the process that measures. A threaded BLAS on a shared machine adds noise from the other
    cores' load, and small products only pay its synchronisation.
    """
    environ = os.environ if environ is None else environ
    for var in BLAS_THREAD_VARS:
        environ.setdefault(var, "1")
    return environ


# glibc's malloc: above a threshold an allocation is a fresh mmap, whose pages fault in (kernel
# time) at every call, and the threshold moves with the process's history of frees. A model that
# allocates large buffers per call (the foundation's im2col) then runs at one of two speeds
# depending on what ran before: the CNN baseline measured 7.4 or 9.7 ms per call in the same
# process, and its speedup 2.4 or 3.2. Fixed thresholds (32 MiB, glibc's largest mmap threshold
# on 64-bit) keep such buffers on the heap, reused, every call alike.
MALLOC_THRESHOLD = 32 * 2**20


def steady_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds (``mallopt``) at :data:`MALLOC_THRESHOLD` in this
    process; True when applied, False elsewhere (another C library, no ``mallopt``)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    trim = mallopt(m_trim_threshold, MALLOC_THRESHOLD)
    mmap = mallopt(m_mmap_threshold, MALLOC_THRESHOLD)
    return bool(trim and mmap)
