"""Golden tests of the autograder: what a submission scores (grading/autograde.py and the
grading/grade_*.py modules it drives, grading/sandbox.py).

They grade submissions built from the tiny fake repository of ``conftest.py`` (``alpha``: 3 tests,
10 points; ``beta``: 1 test, 20 points, built on ``alpha``), so each grading takes about a second.
Every tampering case is a submission that does the bad thing, and the test checks both that the
grader survives and that the score is exactly what the honest part of the submission earned.
Staging a submission, grading a class and the leaderboard have their own files
(test_autograde_stage.py, test_autograde_batch.py, test_autograde_leaderboard.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from fractions import Fraction

import pytest
from autograde_support import FAST, graded_repo, grading_env, outcome, scores, submission  # noqa: F401 - the fixtures
from conftest import ALPHA_BUGGY, ALPHA_SOLUTION, ALPHA_STUB, BETA_SOLUTION, make_repo

from grading import autograde

# --------------------------------------------------------------------------- points


def test_the_untouched_stubs_score_zero_in_a_gradescope_results_file(repo, tmp_path):
    out = tmp_path / "results.json"
    assert autograde.main([str(repo / "katas"), "--out", str(out), "--quiet", "--timeout", "4"]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["score"] == 0 and results["extra_data"]["max_score"] == 30
    assert {"score", "execution_time", "output", "tests", "visibility"} <= set(results)
    assert isinstance(results["execution_time"], int)
    assert len(results["tests"]) == 4
    for test in results["tests"]:
        assert {"name", "score", "max_score", "output", "visibility", "status"} <= set(test)
        assert (test["score"], test["status"], test["visibility"]) == (0, "failed", "visible")
    assert results["tests"][0]["name"] == "15 alpha: test_double"
    assert "NotImplementedError: double (module 15, alpha)" in results["tests"][0]["output"]


def test_the_solutions_score_full_marks(repo, start_children):
    grade = autograde.grade(repo / "solutions", settings=FAST)
    assert scores(grade) == {"alpha": 10, "beta": 20}
    assert grade.score == grade.max_score == 30
    assert all(not m.tampered and not m.notes for m in grade.modules)


def test_a_partly_solved_submission_gets_exactly_its_share(tmp_path, start_children):
    grade = autograde.grade(submission(tmp_path, ALPHA_BUGGY), settings=FAST)
    # alpha: 10 points over 3 equally weighted tests, 2 pass; beta (on the reference alpha): stub
    assert scores(grade) == {"alpha": Fraction(20, 3), "beta": 0}
    assert outcome(grade, "test_double_negative").outcome == "failed"
    assert "IndexError" in outcome(grade, "test_double_negative").message
    assert "katas/alpha/core.py" in outcome(grade, "test_double_negative").message
    results = grade.to_gradescope()
    assert results["score"] == 6.6667
    assert [t["score"] for t in results["tests"]] == [3.3333, 0, 3.3333, 0]
    assert [t["max_score"] for t in results["tests"]] == [3.3333, 3.3333, 3.3333, 20]
    assert "alpha" in results["output"] and "6.67/10" in results["output"]


def test_hidden_tests_are_graded_and_shown_after_publication(tmp_path, monkeypatch):
    """A module's instructor-only files (the registry's ``hidden``) count like its suite; Gradescope
    shows their results only once grades are published."""
    repo = make_repo(tmp_path / "repo")
    text = (repo / "modules.toml").read_text(encoding="utf-8")
    (repo / "modules.toml").write_text(
        text.replace('status = "ready"', 'status = "ready"\nhidden = ["tests/hidden/test_alpha_more.py"]', 1),
        encoding="utf-8",
    )
    (repo / "tests" / "hidden").mkdir()
    (repo / "tests" / "hidden" / "test_alpha_more.py").write_text(
        "from tinytorch.perf.alpha import double\n\n\ndef test_double_zero():\n    assert double(0) == 0\n"
    )
    monkeypatch.setenv("TINYTORCH_ROOT", str(repo))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(repo / "modules.toml"))
    grade = autograde.grade(submission(tmp_path, ALPHA_SOLUTION), settings=FAST, only=["alpha"])
    results = grade.to_gradescope()
    by_name = {t["name"]: t for t in results["tests"]}
    hidden = by_name["15 alpha: test_double_zero"]
    assert hidden["visibility"] == autograde.HIDDEN_VISIBILITY and hidden["score"] == 2.5
    assert by_name["15 alpha: test_double"]["visibility"] == "visible"
    assert results["score"] == 10 and len(results["tests"]) == 4  # 10 points over 3 + 1 tests


def test_weights_from_the_registry_split_a_module_unevenly(repo, tmp_path, monkeypatch):
    registry_file = tmp_path / "modules.toml"
    text = (repo / "modules.toml").read_text(encoding="utf-8")
    registry_file.write_text("[grading.weights.alpha]\nnegative = 2\n\n" + text, encoding="utf-8")
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(registry_file))
    settings = autograde.load_settings()
    assert settings.weights == {"alpha": {"negative": 2}}
    plan = [
        "tests/test_alpha.py::test_double",
        "tests/test_alpha.py::test_double_negative",
        "x::TestDoubler::test_apply",
    ]
    from tinytorch.course import registry

    shares = autograde.shares(settings, registry.get("alpha"), plan)
    assert list(shares.values()) == [Fraction(5, 2), Fraction(5), Fraction(5, 2)]  # weights 1 : 2 : 1 of 10
    grade = autograde.grade(submission(tmp_path, ALPHA_BUGGY), settings=settings, only=["alpha"])
    assert scores(grade) == {"alpha": 5}  # the double-weight negative test failed


def test_bad_grading_settings_are_refused(repo, tmp_path, monkeypatch):
    registry_file = tmp_path / "modules.toml"
    text = (repo / "modules.toml").read_text(encoding="utf-8")
    for bad, words in (
        ("[grading]\ntimout = 3\n", "unknown [grading] setting"),
        ("[grading.weights.delta]\nx = 1\n", "unknown module"),
        ("[grading.weights.alpha]\nx = 0\n", "positive"),
    ):
        registry_file.write_text(bad + "\n" + text, encoding="utf-8")
        monkeypatch.setenv("TINYTORCH_REGISTRY", str(registry_file))
        with pytest.raises(ValueError, match=words.replace("[", r"\[")):
            autograde.load_settings()


RELEASED = replace(FAST, released=["alpha"])  # alpha's reference handed out (its deadline passed)


def test_isolation_grades_a_module_on_the_released_reference_and_strict_mode_does_not(tmp_path):
    student = submission(tmp_path, ALPHA_STUB, BETA_SOLUTION)  # beta solved, alpha (which it uses) not
    assert scores(autograde.grade(student, settings=RELEASED, only=["beta"])) == {"beta": 20}
    # a reference that is not released never serves: beta runs on the student's own alpha
    unreleased = autograde.grade(student, settings=FAST, only=["beta"])
    assert scores(unreleased) == {"beta": 0}
    assert "NotImplementedError: double" in outcome(unreleased, "test_quadruple").message
    strict = autograde.grade(student, strict=True, settings=RELEASED, only=["16"])
    assert scores(strict) == {"beta": 0}
    assert "NotImplementedError: double" in outcome(strict, "test_quadruple").message


def test_a_spent_time_budget_leaves_the_remaining_tests_unrun(repo):
    settings = autograde.Settings(timeout=4, module_timeout=60, total_timeout=0.5, collect_timeout=30)
    grade = autograde.grade(repo / "solutions", settings=settings)
    assert grade.score == 0 and grade.max_score == 30
    assert all(t.outcome == "not run" and "time budget" in t.message for m in grade.modules for t in m.tests)


# --------------------------------------------------------------------------- tampering

OMEGA_REGISTRY = """
[[module]]
number = 18
name = "omega"
title = "Omega: a module whose tests each meet a different misbehaviour"
kata = "katas/omega"
solution = "solutions/omega"
tests = "tests/test_omega.py"
points = 40
status = "ready"
"""

OMEGA_TESTS = """\
import pytest
from tinytorch.perf.omega import act

CASES = ["honest", "sys_exit", "os_exit", "segfault", "sleep", "sleep_no_alarm", "allocate", "honest_too"]


@pytest.mark.parametrize("case", CASES)
def test_act(case):
    assert act(case) == case
"""

OMEGA_MISBEHAVING = """\
import os
import signal
import sys
import time

import numpy as np


def act(case):
    if case == "sys_exit":
        sys.exit(0)
    if case == "os_exit":
        os._exit(0)
    if case == "segfault":
        import faulthandler

        faulthandler._sigsegv()
    if case == "sleep":
        time.sleep(10**6)
    if case == "sleep_no_alarm":
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
        time.sleep(10**6)
    if case == "allocate":  # 800 MB a block, without end: the memory limit stops it
        blocks = [np.empty(10**8) for _ in range(10**6)]
        return len(blocks)
    return case
"""


@pytest.fixture(scope="module")
def omega_repo(tmp_path_factory):
    root = make_repo(tmp_path_factory.mktemp("omega") / "repo")
    with open(root / "modules.toml", "a", encoding="utf-8") as f:
        f.write(OMEGA_REGISTRY)
    (root / "tests" / "test_omega.py").write_text(OMEGA_TESTS, encoding="utf-8")
    for tree, body in (
        ("katas", "def act(case):\n    raise NotImplementedError('act')\n"),
        ("solutions", "def act(case):\n    return case\n"),
    ):
        (root / tree / "omega").mkdir()
        (root / tree / "omega" / "__init__.py").write_text(body, encoding="utf-8")
    return root


def test_a_test_that_exits_crashes_hangs_or_allocates_fails_alone(omega_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_ROOT", str(omega_repo))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(omega_repo / "modules.toml"))
    student = tmp_path / "student"
    (student / "omega").mkdir(parents=True)
    (student / "omega" / "__init__.py").write_text(OMEGA_MISBEHAVING, encoding="utf-8")
    # 1 s a test: the honest ones take milliseconds; the two that sleep wait it out
    settings = autograde.Settings(timeout=1, module_timeout=60, collect_timeout=30, memory_mb=1024)
    grade = autograde.grade(student, settings=settings, only=["omega"])
    got = {t.name.split("[")[1].rstrip("]"): t for t in grade.modules[0].tests}
    assert {case: t.outcome for case, t in got.items()} == {
        "honest": "passed",
        "sys_exit": "failed",  # SystemExit inside a test is an ordinary failure
        "os_exit": "crashed",
        "segfault": "crashed",
        "sleep": "timeout",
        "sleep_no_alarm": "timeout",
        "allocate": "failed",  # MemoryError at the RLIMIT_AS limit
        "honest_too": "passed",
    }
    assert grade.score == 10  # 2 of 8 equally weighted tests of a 40-point module
    assert "SystemExit" in got["sys_exit"].message
    assert "exited with code 0" in got["os_exit"].message and "during this test" in got["os_exit"].message
    assert "SIGSEGV" in got["segfault"].message
    assert "longer than 1 s" in got["sleep_no_alarm"].message
    assert "MemoryError" in got["allocate"].message


@pytest.mark.parametrize(
    "prelude, words",
    [
        ("import sys\nsys.exit(3)\n", "SystemExit"),
        ("import os\nos._exit(0)\n", "while importing"),
        ("raise RuntimeError('broken on import')\n", "RuntimeError: broken on import"),
        ("def broken(:\n", "SyntaxError"),
        ("import time\ntime.sleep(10**6)\n", "longer than"),
    ],
    ids=["sys.exit", "os._exit", "raise", "syntax", "sleep"],
)
def test_a_module_that_dies_on_import_scores_zero_and_the_others_do_not(tmp_path, prelude, words):
    # 8 s to import: every case but the sleep ends its import at once, and must not be taken for a
    # hang on a busy machine; the sleep waits the whole bound, so it gets a short one (the
    # outcome is the same whatever the bound)
    bound = 1 if "sleep" in prelude else 8
    settings = autograde.Settings(timeout=4, module_timeout=60, collect_timeout=bound, memory_mb=1024)
    grade = autograde.grade(submission(tmp_path, prelude + ALPHA_SOLUTION), settings=settings, only=["alpha"])
    assert scores(grade) == {"alpha": 0}
    assert all(words in t.message for t in grade.modules[0].tests), grade.modules[0].tests[0].message


def test_writing_results_json_is_refused_and_the_grader_writes_the_real_one(tmp_path):
    out = tmp_path / "out" / "results.json"
    cheat = f"""
import json, os
for path in [{str(out)!r}, "results.json", "/tmp/results.json"]:
    try:
        with open(path, "w") as f:
            json.dump({{"score": 1000, "tests": []}}, f)
    except OSError:
        pass
"""
    student = submission(tmp_path, cheat + ALPHA_SOLUTION)
    assert autograde.main([str(student), "--out", str(out), "--quiet", "--module", "alpha"]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["score"] == 10  # what alpha earned
    assert "refused: writing" in results["output"] and "results.json" in results["output"]


PATCH_PYTEST = """
import _pytest.runner as _runner

_original = _runner.call_and_report


def _always_pass(item, when, log=True, **kwargs):
    report = _original(item, when, log=False, **kwargs)
    report.outcome = "passed"
    if log:
        item.ihook.pytest_runtest_logreport(report=report)
    return report


_runner.call_and_report = _always_pass
"""

PATCH_CLASS = """
import _pytest.reports
try:
    _pytest.reports.TestReport.failed = property(lambda self: False)
except PermissionError:
    pass
"""

PATCH_TEST = """
import sys


def _patch():
    test_module = sys.modules["test_alpha"]
    test_module.test_double_negative.__code__ = (lambda: None).__code__
"""

FORGE = """
import json, os
for fd in range(3, 30):
    try:
        os.write(fd, json.dumps({"ev": "result", "nodeid": "tests/test_alpha.py::test_double_negative",
                                 "outcome": "passed", "text": ""}).encode() + b"\\n")
    except OSError:
        pass
"""


@pytest.mark.parametrize(
    "cheat, words",
    [
        (PATCH_PYTEST, "_pytest.runner.call_and_report was replaced"),
        (PATCH_CLASS, "_pytest.reports.TestReport gained or lost an attribute"),
        (FORGE, "did not come from the grader"),
    ],
    ids=["replace-pytest-function", "patch-pytest-class", "forge-result-line"],
)
def test_patching_pytest_or_forging_results_zeroes_the_module(tmp_path, cheat, words):
    grade = autograde.grade(submission(tmp_path, cheat + ALPHA_BUGGY), settings=FAST, only=["alpha"])
    alpha = grade.modules[0]
    assert words in alpha.tampered
    assert alpha.score == 0
    assert "TAMPERING" in grade.summary()
    assert all("tampering" in t.message for t in alpha.tests if t.outcome == "passed")


def test_patching_a_test_function_from_the_kata_is_refused(tmp_path):
    cheat = ALPHA_BUGGY.replace("    if x < 0:\n", "    _patch()\n    if x < 0:\n") + PATCH_TEST
    grade = autograde.grade(submission(tmp_path, cheat), settings=FAST, only=["alpha"])
    assert "patched test_alpha.test_double_negative.__code__" in grade.modules[0].tampered
    assert scores(grade) == {"alpha": 0}


SNOOP = """
import os, subprocess
from pathlib import Path

attempts = []
for action in (
    lambda: Path({solution!r}).read_text(),
    lambda: Path({registry!r}).read_text(),
    lambda: subprocess.run(["cat", {solution!r}]),
    lambda: os.kill(os.getppid(), 0),
    lambda: os.kill({grader}, 0),
    lambda: __import__("ctypes").CDLL(None),
    lambda: os.remove({registry!r}),
):
    try:
        action()
        attempts.append("allowed")
    except OSError as e:
        attempts.append(str(e))
"""


def test_reading_the_solutions_starting_processes_or_signalling_the_grader_is_refused(repo, tmp_path):
    snoop = SNOOP.format(
        solution=str(repo / "solutions" / "alpha" / "core.py"),
        registry=str(repo / "modules.toml"),
        grader=os.getpid(),  # the grader, whether or not it is the sandbox's parent
    )
    grade = autograde.grade(submission(tmp_path, snoop + ALPHA_SOLUTION), settings=FAST, only=["alpha"])
    assert scores(grade) == {"alpha": 10}  # refused actions, caught: the honest code still earns
    notes = " ".join(grade.modules[0].notes)
    assert "reading " + str((repo / "solutions" / "alpha" / "core.py").resolve()) in notes
    for words in ("subprocess.Popen", "os.kill of another process", "ctypes.dlopen", "os.remove"):
        assert words in notes
    assert (repo / "modules.toml").is_file()


def test_an_unreleased_reference_of_another_module_is_not_in_the_process(tmp_path):
    snoop = BETA_SOLUTION + (
        "\n\nimport inspect\nimport tinytorch.perf.alpha.core as _core\n\n"
        "def quadruple(x):\n    return len(inspect.getsource(_core.double)) and double(double(x))\n"
    )
    grade = autograde.grade(submission(tmp_path, ALPHA_STUB, snoop), settings=FAST, only=["beta"])
    assert scores(grade) == {"beta": 0}
    # what the process holds as alpha is the student's own stub, not the reference
    assert "NotImplementedError: double" in outcome(grade, "test_quadruple").message


def test_a_grader_crash_still_writes_results(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("grader bug")

    monkeypatch.setattr(autograde, "grade", boom)
    out = tmp_path / "results.json"
    assert autograde.main([str(tmp_path), "--out", str(out)]) == 1
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["score"] == 0 and results["extra_data"]["status"] == "grader-error"
    assert "grader bug" in results["output"]
