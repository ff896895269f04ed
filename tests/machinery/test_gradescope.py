"""The Gradescope pair (grading/classroom/gradescope/run_autograder, setup.sh) and the zip.

``run_autograder`` is run for real, as Gradescope runs it, in a scratch folder laid out as
Gradescope lays it out (``source/``, ``submission/``, ``results/``) with the tiny fake repository
of ``conftest.py`` as the autograder's source, so one grading takes a few seconds. The source
holds the real grader (``grading/``); the interpreter is this one (``AUTOGRADER_PYTHON``), which
stands for the virtualenv ``setup.sh`` installs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ALPHA_SOLUTION, BENCH_SOLUTION, add_bench_module, make_repo

from grading import gradescope

GRADING = Path(gradescope.__file__).resolve().parent
RUN_AUTOGRADER = gradescope.SCRIPTS / "run_autograder"


@pytest.fixture
def autograder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """/autograder as Gradescope lays it out, the fake repository (with the grader) as its source."""
    root = tmp_path / "autograder"
    source = make_repo(root / "source")
    shutil.copytree(GRADING, source / "grading", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "submission").mkdir()
    monkeypatch.setenv("TINYTORCH_ROOT", str(source))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(source / "modules.toml"))
    monkeypatch.delenv("TINYTORCH_IMPL", raising=False)
    return root


def run_autograder(root: Path) -> dict:
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    proc = subprocess.run([str(RUN_AUTOGRADER)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((root / "results" / "results.json").read_text())


def test_the_stubs_score_zero(autograder: Path):
    shutil.copytree(autograder / "source" / "katas", autograder / "submission" / "katas")
    results = run_autograder(autograder)
    assert results["score"] == 0
    assert len(results["tests"]) == 4 and all(t["score"] == 0 for t in results["tests"])


def test_the_solutions_score_full_marks(autograder: Path):
    shutil.copytree(autograder / "source" / "solutions", autograder / "submission" / "katas")
    results = run_autograder(autograder)
    assert results["score"] == 30  # alpha 10 + beta 20, the fake registry's points
    assert all(t["score"] == t["max_score"] for t in results["tests"])


def test_a_partly_solved_repository_gets_its_partial_score(autograder: Path):
    """A student's whole repository as Gradescope unpacks it (from GitHub or an upload): alpha
    solved (10 points), beta still the stub (graded as the student's, so 0 of its 20 points)."""
    student = autograder / "submission" / "my-katas"
    shutil.copytree(autograder / "source" / "katas", student / "katas")
    (student / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION)
    (student / "README.md").write_text("my work\n")
    results = run_autograder(autograder)
    assert results["score"] == 10
    per_test = sorted((t["name"].split(":")[0], t["score"]) for t in results["tests"])
    third = pytest.approx(10 / 3, abs=1e-4)  # results.json rounds a test's share to 4 decimals
    assert per_test == [("15 alpha", third)] * 3 + [("16 beta", 0)]


def test_a_finished_module_20_puts_the_submission_on_gradescopes_leaderboard(autograder: Path):
    """Gradescope's specification of the field ("Leaderboards", "Autograder Specifications"): an
    optional top-level ``leaderboard`` array of ``{"name", "value", "order"}``, ``value`` a number
    (or a string), ``order`` "asc" or "desc" (the default: higher ranks higher). The score and the
    speedups rank higher when larger: "desc", written out."""
    add_bench_module(autograder / "source")
    (autograder / "submission" / "katas" / "benchmarking").mkdir(parents=True)
    (autograder / "submission" / "katas" / "benchmarking" / "__init__.py").write_text(BENCH_SOLUTION)
    results = run_autograder(autograder)
    assert results["score"] == 40, "score: module 20's 40 points, alpha and beta absent"
    board = results["leaderboard"]
    assert isinstance(board, list) and board, "leaderboard: a non-empty top-level array"
    for entry in board:
        assert set(entry) <= {"name", "value", "order"} and {"name", "value"} <= set(entry), f"entry {entry}"
        assert isinstance(entry["name"], str) and entry["name"], f"name of leaderboard entry {entry}"
        assert type(entry["value"]) in (int, float), f"value of leaderboard entry {entry}"
        assert entry["order"] == "desc", f"order of leaderboard entry {entry} (higher is better)"
    assert {e["name"]: e["value"] for e in board} == {
        "Score": 4.0,
        "MLP_SPRINT": 2.0,
        "CNN_MARATHON": 4.0,
        "TRANSFORMER_DECATHLON": 8.0,
    }, "leaderboard values: the fake competition's score and speedups"


def test_results_are_written_even_when_the_grader_cannot_start(autograder: Path):
    shutil.rmtree(autograder / "source" / "grading")  # python -m grading fails at once
    results = run_autograder(autograder)
    assert results["score"] == 0 and "autograder failed" in results["output"]
    assert results["extra_data"]["status"] == "grader-error"


def test_a_results_file_the_grader_did_not_finish_is_never_trusted(autograder: Path):
    """A forged results.json left at the path (by anything: an earlier run, a process that got out)
    is not what Gradescope reads when the grader then dies or exits non-zero."""
    forged = {"score": 600, "tests": [], "extra_data": {"status": "graded"}}
    (autograder / "results").mkdir()
    (autograder / "results" / "results.json").write_text(json.dumps(forged))
    (autograder / "source" / "grading" / "__main__.py").write_text("import os\nos._exit(9)\n")
    results = run_autograder(autograder)
    assert results["score"] == 0 and "exit 9" in results["output"]


def test_the_zip_holds_the_scripts_at_its_top(tmp_path: Path):
    names = gradescope.build_zip(tmp_path / "autograder.zip")
    with zipfile.ZipFile(tmp_path / "autograder.zip") as archive:
        listed = archive.namelist()
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert listed[:2] == ["setup.sh", "run_autograder"] and listed == names
    assert all(modes[name] & 0o111 for name in gradescope.SCRIPT_NAMES)
    for needed in ("pyproject.toml", "README.md", "tinytorch/course/modules.toml", "grading/autograde.py"):
        assert needed in listed
    assert any(name.startswith("solutions/") for name in listed)
    assert any(name.startswith("tests/test_") for name in listed)
    assert not [name for name in listed if name.startswith((".ci/", ".github/")) or "__pycache__" in name]


def test_setup_installs_the_package_into_the_venv_run_autograder_uses():
    setup = (gradescope.SCRIPTS / "setup.sh").read_text()
    run = RUN_AUTOGRADER.read_text()
    assert "python3 -m venv /autograder/venv" in setup and 'pip install -q -e ".[test]"' in setup
    assert '$AUTOGRADER/venv/bin/python' in run
    assert 'RESULTS="$AUTOGRADER/results/results.json"' in run
    assert '-m grading grade "$AUTOGRADER/submission" --out "$RESULTS"' in run
    for script in (gradescope.SCRIPTS / "setup.sh", RUN_AUTOGRADER):
        assert os.access(script, os.X_OK)
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
