"""Module 20's benchmark (benchmarks/benchmarking.py) when another kata module is unfinished.

A student with module 20 written but not module 19 (or 17) still gets the events that can run:
the others are shown as not measured, naming the module, and the overview's claim says so.
Module 20's own unfinished code, and any crash, still stop the run. The competition is a fake
(nothing is timed); ``benchmarks.common.unfinished_module`` reads which module an error belongs
to from its traceback or its import, never from its message.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.claims import MISSING


def raise_in(module: str, message: str) -> Callable[..., Any]:
    """A function that raises ``NotImplementedError(message)`` from a file of kata module
    ``module`` as the switch serves it: what a student's unwritten stub there does."""
    package = importlib.import_module(f"tinytorch.perf.{module}")
    where = str(Path(package.__path__[0]) / "_compiled_by_a_test.py")  # no file: coverage omits it
    namespace: dict[str, Any] = {}
    source = f"def unfinished(*args, **kwargs):\n    raise NotImplementedError({message!r})\n"
    exec(compile(source, where, "exec"), namespace)
    return namespace["unfinished"]


def measured(seconds: float) -> types.SimpleNamespace:
    quality = types.SimpleNamespace(metric="accuracy", value=0.97, target=0.95, passed=True, reason="")
    return types.SimpleNamespace(
        latency=types.SimpleNamespace(p50=seconds),
        quality=quality,
        flops=None,
        train_step=None,
        peak_memory_bytes=None,
    )


class FakeEvent:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, model: Callable[[], Any]) -> Any:
        return model()


class FakeCompetition:
    """TinyMLPerf's interface as benchmarks/benchmarking.py uses it: every event's candidate runs
    once and is 2x faster than its baseline; the events must match the models exactly."""

    EVENTS = ("MLP_SPRINT", "CNN_MARATHON", "TRANSFORMER_DECATHLON")

    def __init__(self, events=None, warmup=None, runs=None, budget=None) -> None:
        self.events = {e.name: e for e in (events or [FakeEvent(n) for n in self.EVENTS])}

    def event(self, name: str) -> FakeEvent:
        return self.events[name]

    def baseline(self, name: str) -> None:
        return None

    def run(self, models: dict) -> dict:
        assert set(models) == set(self.events), "the fake's events and models must match, as TinyMLPerf's"
        results = {}
        for name, event in self.events.items():
            event.run(models[name])
            results[name] = types.SimpleNamespace(
                speedup=2.0, baseline=measured(0.02), candidate=measured(0.01)
            )
        return results


@dataclasses.dataclass
class FakeSubmission:
    models: dict
    optimizations: tuple = ("structured-pruning", "kv-cache")
    results: Any = None
    scorecard: Any = None

    def compute_score(self, bench: FakeCompetition) -> types.SimpleNamespace:
        self.results = bench.run(self.models)
        self.scorecard = types.SimpleNamespace(score=2.0, bounds=(2.0, 2.0))
        return self.scorecard


@pytest.fixture
def fake_competition(monkeypatch):
    """benchmarks/benchmarking.py on a fake competition: the MLP and CNN models run; the decathlon's
    model raises what module 19's unwritten KVCache raises; module 17's INT8 extra raises what
    module 17's unwritten quantize_model raises. Returns (the benchmark module, the models)."""
    import tinytorch.perf.benchmarking as perf_benchmarking

    from benchmarks import benchmarking

    models = {
        "MLP_SPRINT": lambda: np.zeros(3),
        "CNN_MARATHON": lambda: np.zeros(3),
        "TRANSFORMER_DECATHLON": raise_in("caching", "KVCache.__init__ (module 19, caching): implement it"),
    }
    monkeypatch.setattr(perf_benchmarking, "TinyMLPerf", FakeCompetition)
    monkeypatch.setattr(perf_benchmarking, "build_submission", lambda: FakeSubmission(dict(models)))
    monkeypatch.setattr(benchmarking, "_state_bytes", lambda model: None)
    monkeypatch.setattr(
        benchmarking,
        "int8_figures",
        raise_in("quantization", "quantize_model (module 17, quantization): do it"),
    )
    return benchmarking, models


def test_an_event_needing_an_unfinished_module_is_not_measured_and_the_others_are(fake_competition):
    """A student with module 20 written but not module 19 (or 17): the decathlon and the INT8 extra
    are not measured, each naming its module, and the MLP and CNN events still are."""
    benchmarking, _ = fake_competition
    fig = benchmarking.figures(quick=True)
    assert set(fig["events"]) == {"MLP_SPRINT", "CNN_MARATHON"}, "the events measured"
    assert list(fig["not_measured"]) == ["TRANSFORMER_DECATHLON"], "the events not measured"
    why = fig["not_measured"]["TRANSFORMER_DECATHLON"]
    assert "needs module 19 (caching)" in why and "KVCache.__init__" in why, (
        f"the reason names module 19: {why}"
    )
    assert fig["int8"] is None and "needs module 17 (quantization)" in fig["int8_not_measured"], (
        f"the INT8 extra's reason names module 17: {fig['int8_not_measured']}"
    )
    assert fig["score"]["median"] == 2.0, "the score over the events measured"
    text = benchmarking.report(fig)
    row = next(line for line in text.splitlines() if line.strip("| ").startswith("TRANSFORMER_DECATHLON"))
    assert "not measured" in row, f"the decathlon's row of the table: {row}"
    assert "over 2 of 3 events" in text, "the score line says it leaves an event out"
    for module in ("module 19 (caching)", "module 17 (quantization)"):
        assert f"needs {module}" in text, f"the report names {module}"
    (claim,) = benchmarking.OVERVIEW.judge({"figures": fig}, quick=True)
    assert claim.verdict == MISSING and "TRANSFORMER_DECATHLON" in claim.reason, (
        f"the overview's claim of a partial run: {claim}"
    )


def test_module_20s_own_unfinished_code_and_crashes_stop_the_benchmark(fake_competition):
    """Only another module's unfinished code is left out: module 20's own NotImplementedError, and
    any other error, still stop the run (a wrong answer is never shown as not measured)."""
    benchmarking, models = fake_competition
    mine = raise_in("benchmarking", "CachedGenerator.generate (module 20, benchmarking): implement it")
    for model, error in ((mine, NotImplementedError), (lambda: 1 / 0, ZeroDivisionError)):
        models["TRANSFORMER_DECATHLON"] = model
        with pytest.raises(error):
            benchmarking.figures(quick=True)


def test_main_names_the_module_the_competition_is_missing(monkeypatch, capsys):
    from benchmarks import benchmarking

    for module, said in (
        ("profiling", "needs module 15 (profiling) first"),
        ("benchmarking", "needs your module 20 code first"),
    ):
        monkeypatch.setattr(benchmarking, "figures", raise_in(module, f"a stub of module {module}"))
        assert benchmarking.main(["--quick"]) == 1, "the exit code of an unfinished run"
        printed = capsys.readouterr().out
        assert said in printed, f"main's message for an unfinished {module}: {printed}"


def test_unfinished_module_reads_the_traceback_and_the_import_not_the_message():
    from benchmarks.common import unfinished_module

    def raised(fn: Callable[[], Any]) -> BaseException:
        try:
            fn()
        except Exception as error:  # the error as a caller catches it
            return error
        raise AssertionError("fn did not raise")

    # the message names module 19, the file that raised is module 17's: the file decides
    error = raised(raise_in("quantization", "KVCache.__init__ (module 19, caching)"))
    assert unfinished_module(error).name == "quantization", "the module of the raising file"
    missing = ModuleNotFoundError("no module", name="tinytorch.perf.caching")
    assert unfinished_module(missing).name == "caching", "the kata module an import could not find"
    assert unfinished_module(ModuleNotFoundError("no module", name="scipy")) is None, "a foreign import"
    assert unfinished_module(ValueError("bad")) is None, "a wrong value is no unfinished module"

    def elsewhere() -> None:
        raise NotImplementedError("raised in a test file, no kata module's")

    assert unfinished_module(raised(elsewhere)) is None, "an error raised outside every kata module"
