"""A competition submission: check it, score it, put it on the leaderboard (module 20, benchmarking).

A submission names its optimizations (from modules 16-19, the names in
``tinytorch.course.leaderboard.OPTIMIZATIONS``), gives one model per event and, optionally, the weights
files it ships. Nothing reaches the leaderboard unless :meth:`CompetitionSubmission.validate`
finds no problem: every model runs and meets its event's quality target, and every weights file
is a well-formed ``.npz`` of numeric arrays, loadable without pickle (a pickle can run any code
on the machine that loads it).
"""

from __future__ import annotations

import math  # noqa: F401
import os
import platform
import zipfile  # noqa: F401
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.course.leaderboard import OPTIMIZATIONS, Entry, InvalidEntry, Leaderboard  # noqa: F401
from tinytorch.perf import impl_for

from .competition import EventResult, TinyMLPerf
from .measure import underlying_module
from .scoring import ScoreCard, score_events  # noqa: F401

__all__ = [
    "CompetitionSubmission",
    "InvalidSubmission",
    "check_weights_file",
    "save_weights_files",
]


class InvalidSubmission(InvalidEntry):
    """A submission that cannot be scored or recorded; ``reasons`` lists every problem."""


def check_weights_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a submission's weights file safely; return its arrays, name -> ndarray.

    Valid: an ``.npz`` archive that ``np.load(path, allow_pickle=False)`` opens, holding at
    least one array, every array numeric (dtype kind b, i, u or f) and every float finite.
    Anything else is a ``ValueError`` whose message names the file (``str(path)``) and the
    problem: not an .npz archive (a bare ``.npy`` gives an ndarray, not an
    ``np.lib.npyio.NpzFile``; a pickle or random bytes make ``np.load`` raise ``ValueError``;
    a missing file, a folder or a truncated zip raises ``OSError``, ``EOFError`` or
    ``zipfile.BadZipFile``); an array that cannot be read, such as one of pickled objects
    (reading it raises ``ValueError``), even beside good arrays; no arrays; a non-numeric or
    non-finite array. Never ``allow_pickle=True``: unpickling runs arbitrary code.

    Example: a file written by ``np.savez(path, w=np.ones(3))`` gives {"w": array([1., 1., 1.])};
    one written with an object array is refused.
    """
    raise NotImplementedError(
        "check_weights_file (module 20, benchmarking): implement it in katas/benchmarking/submission.py"
    )


def save_weights_files(models: Mapping[str, Any], folder: str | os.PathLike) -> dict[str, Path]:
    """Write each model's ``state_dict()`` to ``<folder>/<event>.npz`` (no pickle); return the
    paths. A model without a tinytorch Module inside is skipped."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for event, model in models.items():
        module = underlying_module(model)
        if module is None:
            continue
        path = folder / f"{event}.npz"
        np.savez(path, **module.state_dict())
        paths[event] = path
    return paths


def machine_description() -> str:
    """Where a run was measured (informative: scores are ratios and do not depend on it)."""
    return f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, numpy {np.__version__}"


@dataclass
class CompetitionSubmission:
    """A TinyMLPerf entry: who, which optimizations, one model per event, optional weights files.

    ``results`` and ``scorecard`` are filled by :meth:`compute_score`.
    """

    name: str
    author: str
    optimizations: Sequence[str]
    models: Mapping[str, Any]
    weights: Mapping[str, str | os.PathLike] = field(default_factory=dict)
    notes: str = ""
    results: dict[str, EventResult] | None = None
    scorecard: ScoreCard | None = None

    def validate(self, benchmark: TinyMLPerf | None = None) -> list[str]:
        """Every problem with this submission, as sentences; ``[]`` when it is valid.

        ``benchmark`` defaults to ``TinyMLPerf()``. Report (do not raise) each of:

        * ``name`` or ``author`` not a non-empty string: "missing field 'name' ...";
        * ``optimizations`` empty or not a list: "missing field 'optimizations' ..."; a name not in
          ``OPTIMIZATIONS``: "unknown optimization 'x'; known: ..."; a name listed twice ("twice");
        * ``models`` or ``weights`` not a mapping: "models must map event names to models, got
          list", "weights must map event names to .npz paths, got str" (and nothing more about it);
        * ``models``: "no model for event E" for each event of the benchmark without one,
          "unknown event 'X'" for a key that is not an event; each model is run once on its event
          (``event.run``): "E: the model does not run (...)" if it raises anything, else
          "E: quality gate failed: <quality.reason>" if ``event.check_quality`` fails;
        * each weights file: "E weights: <the ValueError of check_weights_file>";
        * results already measured (``self.results``): baseline time, candidate time (the p50s)
          and speedup must be finite and > 0: "E: candidate time must be finite and > 0, got nan".
        """
        raise NotImplementedError(
            "CompetitionSubmission.validate (module 20, benchmarking): "
            "implement it in katas/benchmarking/submission.py"
        )

    def compute_score(self, benchmark: TinyMLPerf | None = None) -> ScoreCard:
        """Run every event and score the run: a :class:`ScoreCard`.

        ``benchmark`` defaults to ``TinyMLPerf()``. Keep the per-event results in ``self.results``
        (``benchmark.run(self.models)``) and the card in ``self.scorecard``; the card is
        :func:`score_events` of the results' ``score()``.
        """
        raise NotImplementedError(
            "CompetitionSubmission.compute_score (module 20, benchmarking): "
            "implement it in katas/benchmarking/submission.py"
        )

    def to_entry(self) -> Entry:
        """This submission as a leaderboard :class:`Entry` (after :meth:`compute_score`)."""
        if self.results is None or self.scorecard is None:
            raise ValueError("no results yet: call compute_score() first")
        return Entry(
            name=self.name,
            author=self.author,
            score=float(self.scorecard.score),
            score_low=float(self.scorecard.bounds[0]),
            score_high=float(self.scorecard.bounds[1]),
            optimizations=tuple(self.optimizations),
            events=tuple(result.record() for result in self.results.values()),
            impl=impl_for("benchmarking"),
            machine=machine_description(),
            notes=self.notes,
        )

    def submit_to_leaderboard(
        self, leaderboard: Leaderboard | None = None, benchmark: TinyMLPerf | None = None
    ) -> int:
        """Validate, score (unless already scored) and record this submission; return its id.

        A submission with any problem (:meth:`validate`) raises :class:`InvalidSubmission` with
        the list of problems and writes nothing. Already scored means ``results`` and
        ``scorecard`` are both set (as :meth:`compute_score` leaves them): a scored submission
        is recorded with that score, not measured again (``validate`` still runs each model
        once); otherwise call ``compute_score`` first. ``leaderboard`` defaults to ``Leaderboard()``
        (``$TINYTORCH_LEADERBOARD`` or the user's data folder); the record is ``self.to_entry()``
        and ``leaderboard.add`` returns the id.
        """
        raise NotImplementedError(
            "CompetitionSubmission.submit_to_leaderboard (module 20, benchmarking): "
            "implement it in katas/benchmarking/submission.py"
        )
