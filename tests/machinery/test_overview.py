"""The overview of the course's claims (benchmarks/overview.py, ``tinytorch bench``), on canned figures.

Nothing here is timed or measured: each module's figures are small dicts of the shape its
benchmark returns (``canned_figures``), and the tests check what the overview makes of them:
collecting past a module that cannot run, the table, the JSON, the exit code, the plots, the
claims each module's benchmark declares reaching the table, and the CLI that starts it; and the
parts of the module benchmarks the overview relies on (module 20 without modules 17 or 19, BLAS
pinned before numpy loads). Each module's verdicts are tested in test_claims.py.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import io
import json
import math
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from canned_figures import CANNED, bench, caching, compression, int8_kernels

from benchmarks import overview as ov
from benchmarks.claims import FAILS, HOLDS, INFO, MISSING, Benchmark, Claim, Finding
from tinytorch.course import cli

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- collecting and reporting


def canned_modules(broken: dict[str, BaseException] | None = None) -> tuple[Benchmark, ...]:
    """The real modules with their figure functions replaced: canned figures, or an error."""
    broken = broken or {}

    def runner(name):
        def run(quick: bool) -> dict:
            if name in broken:
                raise broken[name]
            return CANNED[name]()

        return run

    return tuple(dataclasses.replace(m, run=runner(m.name)) for m in ov.benchmarks())


def test_collect_keeps_going_past_a_module_that_cannot_run():
    errors = {
        "quantization": NotImplementedError("quantize (module 17, quantization): implement it"),
        "compression": AssertionError("csr_matmul is wrong"),
        "caching": RuntimeError("boom"),
        "benchmarking": ImportError("no module tinytorch.perf.benchmarking"),
    }
    stream = io.StringIO()
    results = ov.collect(True, canned_modules(errors), ov.Progress(stream, 5))
    assert results["acceleration"]["figures"] is not None and results["acceleration"]["error"] is None
    assert results["quantization"]["error"].startswith("not implemented yet: quantize")
    assert results["compression"]["error"].startswith("a wrong result, not timed")
    assert "RuntimeError: boom" in results["caching"]["error"] and "traceback" in results["caching"]
    assert "could not run" in results["benchmarking"]["error"]
    progress = stream.getvalue().splitlines()
    assert progress[0] == "[1/5] module 16 acceleration ..."
    assert progress[1].startswith("[1/5] module 16 acceleration: measured in ")
    assert progress[3].startswith("[2/5] module 17 quantization: not implemented in ")
    claims = ov.evaluate(results, quick=True)
    missing = [c for c in claims if c.verdict == MISSING]
    assert [c.module for c in missing] == [17, 18, 19, 20]
    assert "implement it" in missing[0].reason


def test_a_failed_pinned_subprocess_is_reported_by_what_its_benchmark_said():
    failed = "the pinned benchmark run failed: "
    errors = {
        "acceleration": RuntimeError(failed + "not implemented yet: matmul_naive (module 16, acceleration)"),
        "quantization": RuntimeError(failed + "wrong result: matmul_blocked gives a wrong product"),
        "compression": RuntimeError("something else"),
    }
    results = ov.collect(True, canned_modules(errors)[:3])
    assert results["acceleration"]["error"] == "not implemented yet: matmul_naive (module 16, acceleration)"
    assert (
        results["quantization"]["error"] == "a wrong result, not timed: matmul_blocked gives a wrong product"
    )
    assert results["compression"]["error"] == "RuntimeError: something else"
    assert ov.summary(ov.evaluate(results, quick=True)) == "no claim could be measured; 3 not measured"


def test_figures_of_an_unexpected_shape_are_not_measured_rather_than_a_crash():
    (claim,) = bench("benchmarking").OVERVIEW.judge({"figures": {"score": {}}}, quick=False)
    assert claim.verdict == MISSING and "unexpected shape (KeyError" in claim.reason


def test_table_numbers_each_distinct_reason_once_and_summary_counts_judged_claims():
    claims = [
        Finding(16, "a", "1x", "p", HOLDS, "same reason"),
        Finding(16, "b", "2x", "p", HOLDS, "same reason"),
        Finding(17, "c", "3x", "p", FAILS, "other"),
        Finding(18, "d", "-", "p", MISSING, "not run"),
        Finding(18, "e", "9%", "p", INFO),
    ]
    text = ov.table(claims)
    lines = text.splitlines()
    assert lines[0].startswith("| module | claim") and "the course's promise" in lines[0]
    assert "holds [1]" in lines[2] and "holds [1]" in lines[3] and "does not hold [2]" in lines[4]
    assert [cell.strip() for cell in lines[6].split("|")][-2] == "info"  # no note: no number
    assert lines[-3:] == ["[1] same reason", "[2] other", "[3] not run"]
    assert len({len(line) for line in lines[:7]}) == 1  # aligned columns
    assert ov.summary(claims) == "2 of 3 claims hold on this machine; 1 not measured"


def test_json_is_strict_and_keeps_every_figure():
    report = {
        "claims": [Finding(16, "a", "1x", "p", HOLDS, value=float("nan"), low=1.0)],
        "modules": {"acceleration": {"figures": {"sizes": {64: {"x": np.float32(0.5)}}, "shape": (2, 3)}}},
        "array": np.arange(3),
        "inf": math.inf,
    }
    data = json.loads(ov.to_json(report))
    assert data["claims"][0]["value"] is None and data["claims"][0]["low"] == 1.0
    assert data["claims"][0]["verdict"] == "holds"
    assert data["modules"]["acceleration"]["figures"] == {"sizes": {"64": {"x": 0.5}}, "shape": [2, 3]}
    assert data["array"] == [0, 1, 2] and data["inf"] is None


def test_machine_describes_cpu_cores_python_numpy_blas_threads_and_load(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    m = ov.machine()
    assert m["cpu"] and m["cores"] >= 1 and m["python"].count(".") == 2
    assert m["numpy"] == np.__version__ and "name" in m["blas"]
    assert m["threads"]["OPENBLAS_NUM_THREADS"] == "1"
    assert m["load_average"] is None or len(m["load_average"]) == 3
    assert {"library", "version", "architecture", "threads"} <= set(m["blas_kernel"]), (
        f"the BLAS kernels in the machine description: {m['blas_kernel']}"
    )


def test_run_prints_the_table_writes_the_json_and_says_when_there_are_no_plots(tmp_path, monkeypatch):
    def no_matplotlib(results, out):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(ov, "plots", no_matplotlib)
    stream = io.StringIO()
    report, code = ov.run(True, tmp_path, stream=stream, modules=canned_modules())
    text = stream.getvalue()
    assert code == 0 and "quick mode" in text and "| 19     | KV-cache generation speedup" in text
    assert "plots: none, matplotlib is not installed (pip install -e .[plots])" in text
    data = json.loads((tmp_path / "overview-quick.json").read_text())
    assert data["mode"] == "quick" and data["plots"] == [] and data["schema"] == ov.SCHEMA
    assert {c["module"] for c in data["claims"]} == {16, 17, 18, 19, 20}
    assert set(data["modules"]) == set(CANNED) and "load_before" in data["modules"]["caching"]
    assert {"cpu", "cores", "python", "numpy", "blas", "threads", "load_average"} <= set(data["machine"])
    assert data["modules"]["caching"]["figures"] == json.loads(json.dumps(caching()))  # every figure


def test_run_exits_1_when_a_module_could_not_be_measured(tmp_path):
    broken = canned_modules({"caching": NotImplementedError("generate (module 19, caching)")})
    report, code = ov.run(False, tmp_path, want_plots=False, stream=io.StringIO(), modules=broken)
    assert code == 1 and report["mode"] == "full"
    assert (tmp_path / "overview-full.json").is_file()


class FakeArtist:
    """Stands for any matplotlib object: every method exists and records its call."""

    def __init__(self, calls: list[str], name: str = "artist") -> None:
        self._calls, self._name = calls, name

    def __getattr__(self, method: str):
        def call(*args, **kwargs):
            self._calls.append(f"{self._name}.{method}")
            if method == "plot":
                return (FakeArtist(self._calls, "line"),)
            if method == "savefig":
                Path(args[0]).write_bytes(b"\x89PNG fake")
            return FakeArtist(self._calls, method)

        return call


def fake_matplotlib(calls: list[str]) -> tuple[types.ModuleType, types.ModuleType]:
    """A stand-in for the optional `plots` extra: the drawing code runs, every call is recorded."""
    matplotlib = types.ModuleType("matplotlib")
    pyplot = types.ModuleType("matplotlib.pyplot")
    matplotlib.use = lambda backend: calls.append(f"use {backend}")
    matplotlib.pyplot = pyplot

    def subplots(nrows=1, ncols=1, **kwargs):
        axes = [FakeArtist(calls, "axes") for _ in range(nrows * ncols)]
        return FakeArtist(calls, "figure"), (axes[0] if len(axes) == 1 else tuple(axes))

    pyplot.subplots = subplots
    pyplot.close = lambda fig: calls.append("close")
    return matplotlib, pyplot


def test_plots_draw_the_four_curves(tmp_path, monkeypatch):
    """The drawing code on every module's figures, with matplotlib replaced by a recorder (the
    `plots` extra is optional; the real library is exercised by `tinytorch bench` with it)."""
    calls: list[str] = []
    matplotlib, pyplot = fake_matplotlib(calls)
    monkeypatch.setitem(sys.modules, "matplotlib", matplotlib)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", pyplot)
    results = {name: {"figures": make()} for name, make in CANNED.items()}
    results["compression"]["figures"]["accuracy"] = compression()["accuracy"]
    results["quantization"]["figures"]["kernels"] = int8_kernels()
    written = ov.plots(results, tmp_path)
    assert [p.name for p in written] == [
        "acceleration_speedup.png",
        "quantization_speedup.png",
        "compression_accuracy.png",
        "caching_generation.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
    assert calls[0] == "use Agg" and calls.count("close") == 4
    assert calls.count("axes.plot") >= 9 and calls.count("figure.savefig") == 4


# --------------------------------------------------------------------------- the module benchmarks it reuses


def test_every_module_benchmark_declares_its_claims_and_the_function_the_overview_calls():
    called = {
        "acceleration": "figures",
        "quantization": "figures",
        "compression": "measure",
        "caching": "figures",
        "benchmarking": "figures",
    }
    assert set(called) == set(ov.NAMES), "the modules the overview collects"
    for (name, function), declared in zip(called.items(), ov.benchmarks(), strict=True):
        tree = ast.parse((ROOT / "benchmarks" / f"{name}.py").read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert function in defined, f"benchmarks/{name}.py has no {function}(): the overview calls it"
        assert declared.name == name and declared.claims == bench(name).CLAIMS, f"{name}'s OVERVIEW"
        assert {c.module for c in declared.claims} == {declared.number}, f"{name}'s claims name its module"
    assert [b.number for b in ov.benchmarks()] == [16, 17, 18, 19, 20], "in the course's order"


def test_a_claim_declared_in_one_module_benchmark_reaches_the_table_and_the_json(tmp_path, monkeypatch):
    """Adding a claim touches one file: a Claim added to a module's declaration (its OVERVIEW in
    benchmarks/<module>.py) is judged, tabulated and written with no change to the overview."""
    caching_bench = bench("caching")

    def longest(claim: Claim, fig: dict, quick: bool) -> list[Finding]:
        total = max(c["total"] for c in fig["cases"])
        return [claim.found(claim.name, f"{total} tokens", INFO, "the longest generation run")]

    added = Claim(19, "longest generation measured", "the longest prompt + generated tokens", "none", longest)
    declared = caching_bench.OVERVIEW
    monkeypatch.setattr(
        caching_bench, "OVERVIEW", dataclasses.replace(declared, claims=(*declared.claims, added))
    )
    monkeypatch.setattr(ov, "plots", lambda results, out: [])
    stream = io.StringIO()
    ov.run(True, tmp_path, stream=stream, modules=canned_modules())
    row = next(line for line in stream.getvalue().splitlines() if "longest generation measured" in line)
    assert [c.strip() for c in row.strip("|").split("|")] == [
        "19",
        "longest generation measured",
        "96 tokens",
        "-",
        "none",
        "info [11]",
    ], f"the new claim's row, after the module's other claims: {row}"
    data = json.loads((tmp_path / "overview-quick.json").read_text())
    assert data["claims"][-2] == {
        "module": 19,
        "claim": "longest generation measured",
        "measured": "96 tokens",
        "promise": "none",
        "verdict": "info",
        "reason": "the longest generation run",
        "value": None,
        "low": None,
        "high": None,
        "unit": "x",
        "spread": "",
    }, "the new claim in the JSON, before module 20's"


# --------------------------------------------------------------------------- the CLI


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(list(argv), out=out), out.getvalue()


def test_bench_without_a_module_runs_the_overview_with_its_options(
    fake_repo: Path, capfd: pytest.CaptureFixture[str]
):
    code, out = run_cli("bench", "--quick")
    assert code == 1 and "no benchmarks/overview.py" in out
    (fake_repo / "benchmarks").mkdir()
    (fake_repo / "benchmarks" / "overview.py").write_text("import sys\nprint('overview', sys.argv[1:])\n")
    assert run_cli("bench")[0] == 0
    assert "overview []" in capfd.readouterr().out
    assert run_cli("bench", "--quick", "--no-plots", "--out", "results")[0] == 0
    expected = ["--quick", "--no-plots", "--out", str(Path("results").resolve())]
    assert f"overview {expected}" in capfd.readouterr().out


def test_bench_quick_before_a_module_reaches_its_benchmark_and_overview_options_do_not(
    fake_repo: Path, capfd: pytest.CaptureFixture[str]
):
    (fake_repo / "benchmarks").mkdir()
    (fake_repo / "benchmarks" / "alpha.py").write_text("import sys\nprint('alpha', sys.argv[1:])\n")
    assert run_cli("bench", "--quick", "alpha")[0] == 0
    assert "alpha ['--quick']" in capfd.readouterr().out
    code, out = run_cli("bench", "--no-plots", "alpha")
    assert code == 2 and "belong to the overview" in out


# --------------------------------------------------------------------------- module 20, unfinished modules


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
    (claim,) = bench("benchmarking").OVERVIEW.judge({"figures": fig}, quick=True)
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


def test_every_measuring_script_pins_blas_with_the_one_rule_before_numpy_loads():
    """benchmarks/<module>.py, the overview and submit.py call benchmarks.pin_blas_threads before
    anything imports numpy (acceleration pins to its --threads value, the same variables)."""
    from benchmarks import BLAS_THREAD_VARS, pin_blas_threads

    env = pin_blas_threads({"OMP_NUM_THREADS": "4"})
    assert env == {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "1"}, (
        "one thread where unset, the caller's choice kept"
    )
    loads_numpy = ("numpy", "tinytorch", "benchmarks.common")
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if script.name in ("__init__.py", "common.py", "claims.py", "plots.py", "acceleration.py"):
            continue
        tree = ast.parse(script.read_text())
        pinned_at = next(
            (
                n.lineno
                for n in ast.walk(tree)
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "pin_blas_threads"
            ),
            None,
        )
        assert pinned_at is not None, f"benchmarks/{script.name} never calls pin_blas_threads"
        first_load = min(
            [
                n.lineno
                for n in tree.body
                if (isinstance(n, ast.Import) and any(a.name.startswith(loads_numpy) for a in n.names))
                or (isinstance(n, ast.ImportFrom) and (n.module or "").startswith(loads_numpy))
            ]
            or [math.inf]
        )
        assert pinned_at < first_load, f"benchmarks/{script.name} pins BLAS after importing numpy"
    assert "BLAS_THREAD_VARS" in (ROOT / "benchmarks" / "acceleration.py").read_text(), (
        "acceleration's variables"
    )
    assert BLAS_THREAD_VARS == ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def test_the_overview_measures_the_reference_in_a_checkout_and_the_students_code_in_a_release(tmp_path: Path):
    # a student release has no solutions/: defaulting to them would measure nothing at all
    assert ov.default_impl(tmp_path) == "katas", "a tree without solutions/ (a release) measures the katas"
    (tmp_path / "solutions").mkdir()
    assert ov.default_impl(tmp_path) == "solutions", "the instructor's checkout measures the reference"
