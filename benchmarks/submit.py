"""The measuring half of ``tinytorch submit``: run your TinyMLPerf submission, add it to the board.

    tinytorch submit [--quick] [--name N] [--author A] [--db PATH] [--save-json FILE] [--dry-run]
    python benchmarks/submit.py ...     # the same, without the CLI

A submission is measured like every benchmark: in a fresh interpreter whose BLAS threads are
pinned before numpy loads (:func:`benchmarks.pin_blas_threads`: one thread unless
``OPENBLAS_NUM_THREADS`` and the like are set), so a leaderboard entry and ``tinytorch bench
benchmarking`` time the same way. ``TINYTORCH_IMPL`` chooses the code (your katas by default).
Everything else is :func:`tinytorch.course.leaderboard.cli_submit`: validate, run the competition,
record what ran and the code's folders (``impl``), add the entry, verified: the leaderboard's own
process measured it. ``--dry-run`` adds nothing: ``tinytorch leaderboard verify`` re-runs a
recorded entry this way and reads its score from ``--save-json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/submit.py` from a clone, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import pin_blas_threads, steady_allocator  # noqa: E402

pin_blas_threads()  # before numpy loads BLAS, as every benchmark does
steady_allocator()  # every call of a model allocates alike (see benchmarks.steady_allocator)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from tinytorch.course import leaderboard

    parser = argparse.ArgumentParser(prog="tinytorch submit", description=__doc__.split("\n\n")[0])
    leaderboard.add_submit_arguments(parser)
    args = parser.parse_args(argv)
    return leaderboard.cli_submit(args, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
