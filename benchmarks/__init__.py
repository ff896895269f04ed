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
