"""What the leaderboard's tests share: entries and event records built by hand, a fresh board,
the board's Markdown table read back cell by cell, and a submission whose code the watch can see.

The leaderboard is finished infrastructure, tested without any kata; the student's path onto the
board (``CompetitionSubmission.submit_to_leaderboard``) is tested in tests/test_benchmarking.py.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.course.leaderboard import Entry, EventRecord, Leaderboard, geometric_mean
from tinytorch.tensor import Tensor

ROOT = Path(__file__).resolve().parents[2]


def record(
    event: str = "MLP_SPRINT", base: float = 0.3, cand: float = 0.1, passed: bool = True, **kw
) -> EventRecord:
    values = dict(
        event=event,
        baseline_seconds=base,
        candidate_seconds=cand,
        speedup=kw.pop("speedup") if "speedup" in kw else base / cand,
        quality_metric="accuracy",
        quality_value=0.97 if passed else 0.5,
        quality_target=0.95,
        passed=passed,
        reason="" if passed else "accuracy 0.5000 is below the target 0.9500",
    )
    values.update(kw)
    return EventRecord(**values)


def entry(name: str = "fast", events=None, **kw) -> Entry:
    events = tuple(
        (record("MLP_SPRINT", 0.3, 0.1), record("CNN_MARATHON", 0.8, 0.2)) if events is None else events
    )
    values = dict(
        name=name,
        author="ada",
        score=kw.pop("score")
        if "score" in kw
        else geometric_mean(e.counted for e in events)
        if events
        else 1.0,
        optimizations=("structured-pruning", "kv-cache"),
        events=events,
    )
    values.update(kw)
    return Entry(**values)


def rows(board: Leaderboard) -> tuple[int, int]:
    with sqlite3.connect(board.path) as db:
        return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("submissions", "events"))


def table_of(markdown: str) -> list[list[str]]:
    """The table's lines (CommonMark line endings: \\n, \\r\\n, \\r) split into cells at the
    unescaped pipes, up to the first blank line."""
    lines = re.split(r"\r\n|\r|\n", markdown)
    table = lines[: lines.index("")]
    return [re.split(r"(?<!\\)\|", line)[1:-1] for line in table]


def kata_function(module: str, name: str) -> Any:
    """A function named ``name`` compiled as if it were in a file of kata module ``module`` (the
    folder the switch serves it from): running it is running that module's code."""
    import importlib

    package = importlib.import_module(f"tinytorch.perf.{module}")
    where = str(Path(package.__path__[0]) / "_compiled_by_a_test.py")  # no file: coverage omits it
    namespace: dict[str, Any] = {}
    exec(compile(f"def {name}(*args):\n    return args[0] if args else None\n", where, "exec"), namespace)
    return namespace[name]


class Generator:
    """A decathlon model: greedy decoding with the foundation's own cache (GPT.generate with
    use_cache=True), the fallback a submission takes when module 19 is not there."""

    def __init__(self) -> None:
        from tinytorch.transformer import GPT

        self.gpt = GPT(
            vocab_size=7, max_seq_len=8, embed_dim=8, n_heads=2, n_layers=1, rng=np.random.default_rng(0)
        )

    def generate(self, prompts: np.ndarray, max_new_tokens: int) -> np.ndarray:
        return self.gpt.generate(prompts, max_new_tokens, use_cache=True)


class WatchedEvent:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, model: Any) -> Any:
        if hasattr(model, "generate"):
            return model.generate(np.array([[1, 2]]), 3)
        return model(np.ones((2, 4), dtype=np.float32))


class WatchedCompetition:
    """The TinyMLPerf interface ``_run_submission`` uses, without timing anything."""

    def __init__(
        self, warmup: int | None = None, runs: int | None = None, budget: float | None = None
    ) -> None:
        self.events = {n: WatchedEvent(n) for n in ("MLP_SPRINT", "CNN_MARATHON", "TRANSFORMER_DECATHLON")}

    def event(self, name: str) -> WatchedEvent:
        return self.events[name]


class WatchedSubmission:
    """Names four optimizations; its build runs module 18's prune_neurons; its MLP runs in numpy
    alone (and through module 18's csr_matmul, which it does not name); its CNN runs the
    foundation's Linear; its generator falls back to the foundation's cache."""

    name, author = "watched", "ada"
    optimizations = ("structured-pruning", "fused-inference", "kv-cache", "int8-quantization")

    def __init__(self) -> None:
        from tinytorch.layers import Linear

        kata_function("compression", "prune_neurons")()
        csr_matmul, weight = kata_function("compression", "csr_matmul"), np.ones((4, 3), np.float32)
        linear = Linear(4, 3, rng=np.random.default_rng(0))
        self.models = {
            "MLP_SPRINT": lambda x: csr_matmul(x @ weight),
            "CNN_MARATHON": lambda x: linear(Tensor(x)),
            "TRANSFORMER_DECATHLON": Generator(),
        }

    def validate(self, benchmark: Any) -> list[str]:
        return []

    def compute_score(self, benchmark: Any) -> str:
        return "score 3.464x"

    def to_entry(self) -> Entry:
        return entry(self.name, optimizations=self.optimizations)


def with_interval(name: str, score: float, low: float, high: float) -> Entry:
    """A one-event entry whose speedup (and so score) is ``score`` with the interval (low, high)."""
    event = record("MLP_SPRINT", 0.3, 0.3 / score, speedup=score, speedup_low=low, speedup_high=high)
    return entry(name, events=(event,), score=score, score_low=low, score_high=high)
