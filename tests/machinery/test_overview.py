"""The overview of the course's claims (benchmarks/overview.py, ``tinytorch bench``), on canned figures.

Nothing here is timed or measured: each module's figures are small dicts of the shape its
benchmark returns (``canned_figures``), and the tests check what the overview makes of them:
collecting past a module that cannot run, the table, the JSON, the exit code, the plots, the
claims each module's benchmark declares reaching the table, and the CLI that starts it; and BLAS
pinned before numpy loads in every measuring script. Each module's verdicts are tested in
test_claims.py, module 20's benchmark without modules 17 or 19 in test_bench_unfinished.py.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import math
import sys
import types
from pathlib import Path

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
    listed = ov.claims_markdown().splitlines()
    row = "| 19 | longest generation measured | the longest prompt + generated tokens | none |"
    assert listed[-2] == row, "the README's table of claims (`tinytorch bench --claims`), before module 20's"


def test_the_readme_table_of_claims_is_the_declared_claims():
    """The README lists the course's claims as each benchmark declares them: `tinytorch bench
    --claims`, verbatim, so a claim changed in its benchmark cannot leave the README behind."""
    readme = (ov.ROOT / "README.md").read_text(encoding="utf-8")
    assert ov.README_BEGIN in readme and ov.README_END in readme, "README.md has no table of claims"
    table = readme.split(ov.README_BEGIN)[1].split(ov.README_END)[0].strip()
    assert table == ov.claims_markdown(), (
        "README.md's table of claims is stale: replace it with the output of `tinytorch bench --claims`"
    )
    rows = table.splitlines()[2:]
    declared = [claim for b in ov.benchmarks() for claim in b.claims]
    assert len(rows) == len(declared) >= 5, "one row per declared claim"
    assert all(row.count(" | ") == 3 for row in rows), "a | inside a claim's text is escaped"


def test_bench_claims_lists_the_claims_and_measures_nothing(capfd):
    """`tinytorch bench --claims` prints the table (the overview's --claims) and runs no benchmark."""
    code, out = run_cli("bench", "--claims")
    printed = capfd.readouterr().out + out
    assert code == 0 and ov.claims_markdown() in printed, printed
    assert "measured" not in printed.split(ov.claims_markdown())[1], "nothing measured after the table"
    code, out = run_cli("bench", "caching", "--claims")
    said = out + capfd.readouterr().err
    assert code == 2 and "--claims" in said, f"--claims belongs to the overview: {said}"


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


# --------------------------------------------------------------------------- measuring


def test_every_measuring_script_pins_blas_with_the_one_rule_before_numpy_loads():
    """benchmarks/<module>.py, the overview and submit.py call benchmarks.pin_blas_threads before
    anything imports numpy (acceleration pins to its --threads value, the same variables)."""
    from benchmarks import BLAS_THREAD_VARS, pin_blas_threads

    env = pin_blas_threads({"OMP_NUM_THREADS": "4"})
    assert env == {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "1"}, (
        "one thread where unset, the caller's choice kept"
    )
    loads_numpy = ("numpy", "tinytorch", "benchmarks.common")
    # not measuring scripts: shared code, the overview's claims and plots (no numpy at import), and
    # acceleration with its timing (it pins to its --threads value, or measures in a pinned subprocess)
    shared = ("__init__.py", "common.py", "claims.py", "plots.py", "acceleration.py", "matmul_timing.py")
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if script.name in shared:
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
    for light in ("claims.py", "plots.py"):  # the overview's own imports load no numpy
        tree = ast.parse((ROOT / "benchmarks" / light).read_text())
        top = [n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)]
        top += [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in top if m.startswith(loads_numpy)], f"benchmarks/{light} loads numpy: {top}"
    assert BLAS_THREAD_VARS == ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def test_the_overview_measures_the_reference_in_a_checkout_and_the_students_code_in_a_release(tmp_path: Path):
    # a student release has no solutions/: defaulting to them would measure nothing at all
    assert ov.default_impl(tmp_path) == "katas", "a tree without solutions/ (a release) measures the katas"
    (tmp_path / "solutions").mkdir()
    assert ov.default_impl(tmp_path) == "solutions", "the instructor's checkout measures the reference"


def test_a_benchmark_file_that_does_not_load_is_one_row_and_the_others_still_run(monkeypatch):
    """A broken benchmarks/<module>.py stops only its own module: the overview says why in that
    module's row and still measures and judges the others."""
    monkeypatch.setitem(sys.modules, "benchmarks.caching", None)  # importing it raises ModuleNotFoundError
    declared = ov.benchmarks()
    assert [b.name for b in declared] == list(ov.NAMES), "every module still has its place"
    by_name = {b.name: b for b in declared}
    assert by_name["caching"].number == 19 and by_name["caching"].claims == ()
    assert by_name["compression"].claims, "the others keep their claims"
    results = ov.collect(True, modules=(by_name["caching"],))
    assert "could not run" in results["caching"]["error"] and "halted" in results["caching"]["error"]
    (row,) = ov.evaluate(results, True, modules=(by_name["caching"],))
    assert (row.module, row.verdict) == (19, MISSING) and "benchmarks.caching" in row.reason, row
