"""A competition submission: check it, score it, put it on the leaderboard (module 20, benchmarking).

A submission names its optimizations (from modules 16-19, the names in
``tinytorch.course.leaderboard.OPTIMIZATIONS``), gives one model per event and, optionally, the weights
files it ships. Nothing reaches the leaderboard unless :meth:`CompetitionSubmission.validate`
finds no problem: every model runs and meets its event's quality target, and every weights file
is a well-formed ``.npz`` of numeric arrays, loadable without pickle (a pickle can run any code
on the machine that loads it).
"""

from __future__ import annotations

import math
import os
import platform
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.course.leaderboard import OPTIMIZATIONS, Entry, InvalidEntry, Leaderboard
from tinytorch.perf import impl_for

from .competition import EventResult, TinyMLPerf
from .measure import underlying_module
from .scoring import ScoreCard, score_events

__all__ = [
    "CompetitionSubmission",
    "InvalidSubmission",
    "check_weights_file",
    "save_weights_files",
]


class InvalidSubmission(InvalidEntry):
    """A submission that cannot be scored or recorded; ``reasons`` lists every problem."""


def check_weights_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a submission's weights file safely and return its arrays, name -> ndarray.

    A valid file is an ``.npz`` archive (a zip of ``.npy`` arrays) that ``np.load`` opens with
    ``allow_pickle=False``, holding at least one array, every array numeric (bool, int, uint or
    float) and every float finite. Anything else is a ``ValueError`` naming the file and the
    problem: not an .npz archive (a bare ``.npy``, a pickle, random bytes, a missing file or a
    folder, a truncated zip), an array that cannot be read (pickled objects, even beside good
    arrays), no arrays, a non-numeric or non-finite array.
    """
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as err:  # numpy's answer to pickled data when allow_pickle=False
        raise ValueError(f"{path}: not a valid .npz archive: it holds pickled data ({err})") from err
    except (OSError, EOFError, zipfile.BadZipFile) as err:  # missing, a folder, or a broken zip
        raise ValueError(f"{path}: not a valid .npz archive ({err})") from err
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single .npy array, not an .npz archive of named arrays")
    arrays: dict[str, np.ndarray] = {}
    with loaded:
        for name in loaded.files:
            try:
                arrays[name] = loaded[name]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:  # pickled objects, or corrupt
                raise ValueError(f"{path}: array {name!r} cannot be read without pickle ({err})") from err
    if not arrays:
        raise ValueError(f"{path}: the archive holds no arrays")
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{path}: array {name!r} has non-numeric dtype {array.dtype}")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ValueError(f"{path}: array {name!r} holds NaN or inf")
    return arrays


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
        """Every problem with this submission, as sentences (an empty list: it is valid).

        Checks: ``name`` and ``author`` are non-empty strings; ``optimizations`` is a non-empty
        list of known names (``OPTIMIZATIONS``), none twice; ``models`` and ``weights`` are
        mappings ("models must map ...", "weights must map ..." otherwise); ``models`` has
        exactly one model per event of ``benchmark`` (default ``TinyMLPerf()``), and each runs on
        its event and passes the event's quality gate; every weights file passes
        :func:`check_weights_file`; results already measured have finite, positive times and
        speedups.
        """
        benchmark = benchmark if benchmark is not None else TinyMLPerf()
        problems = []
        for attr in ("name", "author"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"missing field {attr!r}: a non-empty string is required")
        opts = self.optimizations
        if isinstance(opts, str) or not isinstance(opts, Sequence) or not opts:
            problems.append("missing field 'optimizations': name at least one, e.g. 'kv-cache'")
        else:
            problems += [
                f"unknown optimization {o!r}; known: {', '.join(OPTIMIZATIONS)}"
                for o in opts
                if o not in OPTIMIZATIONS
            ]
            if len(set(map(str, opts))) != len(opts):
                problems.append("an optimization is listed twice")
        if not isinstance(self.models, Mapping):
            problems.append(f"models must map event names to models, got {type(self.models).__name__}")
        else:
            problems += [f"no model for event {name}" for name in benchmark.events if name not in self.models]
            problems += [f"unknown event {name!r}" for name in self.models if name not in benchmark.events]
            for name, model in self.models.items():
                if name not in benchmark.events:
                    continue
                event = benchmark.event(name)
                try:
                    outputs = event.run(model)
                except Exception as err:  # any failure of the student's model is a reason, not a crash
                    problems.append(f"{name}: the model does not run ({type(err).__name__}: {err})")
                    continue
                quality = event.check_quality(outputs)
                if not quality.passed:
                    problems.append(f"{name}: quality gate failed: {quality.reason}")
        if not isinstance(self.weights, Mapping):
            problems.append(f"weights must map event names to .npz paths, got {type(self.weights).__name__}")
        else:
            for name, path in self.weights.items():
                try:
                    check_weights_file(path)
                except ValueError as err:
                    problems.append(f"{name} weights: {err}")
        for name, result in (self.results or {}).items():
            times = {
                "baseline time": result.baseline.latency.p50,
                "candidate time": result.candidate.latency.p50,
                "speedup": result.speedup,
            }
            for what, value in times.items():
                if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                    problems.append(f"{name}: {what} must be finite and > 0, got {value!r}")
        return problems

    def compute_score(self, benchmark: TinyMLPerf | None = None) -> ScoreCard:
        """Run every event (``benchmark.run(self.models)``), keep the results and return the
        score card (the geometric mean of the speedups that passed their quality gates)."""
        benchmark = benchmark if benchmark is not None else TinyMLPerf()
        self.results = benchmark.run(self.models)
        self.scorecard = score_events([result.score() for result in self.results.values()])
        return self.scorecard

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

        An invalid submission raises :class:`InvalidSubmission` with every reason, and the
        leaderboard is left unchanged. Already scored: ``results`` and ``scorecard`` both set (by
        :meth:`compute_score`); such a submission is recorded with that score, not measured
        again. ``leaderboard`` defaults to ``Leaderboard()``.
        """
        problems = self.validate(benchmark)
        if problems:
            raise InvalidSubmission(problems)
        if self.results is None or self.scorecard is None:
            self.compute_score(benchmark)
        board = leaderboard if leaderboard is not None else Leaderboard()
        return board.add(self.to_entry())
