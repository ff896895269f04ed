"""Golden tests of the autograder (grading/autograde.py, grading/sandbox.py, grading/batch.py).

They grade submissions built from the tiny fake repository of ``conftest.py`` (``alpha``: 3 tests,
10 points; ``beta``: 1 test, 20 points, built on ``alpha``), so each grading takes about a second.
Every tampering case is a submission that does the bad thing, and the test checks both that the
grader survives and that the score is exactly what the honest part of the submission earned.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import (
    ALPHA_BUGGY,
    ALPHA_SOLUTION,
    ALPHA_STUB,
    BENCH_SOLUTION,
    BETA_SOLUTION,
    add_bench_module,
    make_repo,
)

from grading import autograde

GRADER_PARENT = Path(autograde.__file__).resolve().parent.parent
FAST = autograde.Settings(timeout=4, module_timeout=60, collect_timeout=30, memory_mb=1024)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("grader") / "repo")


@pytest.fixture(autouse=True)
def grader_env(repo, monkeypatch):
    monkeypatch.setenv("TINYTORCH_ROOT", str(repo))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(repo / "modules.toml"))
    monkeypatch.delenv("TINYTORCH_IMPL", raising=False)


def submission(
    tmp_path: Path, alpha: str = ALPHA_STUB, beta: str | None = None, extra: dict | None = None
) -> Path:
    """A student's repository: the fake stubs with alpha's core.py (and beta) replaced."""
    root = tmp_path / "student"
    shutil.copytree(Path(os.environ["TINYTORCH_ROOT"]) / "katas", root / "katas")
    (root / "katas" / "alpha" / "core.py").write_text(alpha, encoding="utf-8")
    if beta is not None:
        (root / "katas" / "beta" / "__init__.py").write_text(beta, encoding="utf-8")
    for relative, text in (extra or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def scores(grade: autograde.Grade) -> dict[str, Fraction]:
    return {m.module.name: m.score for m in grade.modules}


def outcome(grade: autograde.Grade, test: str) -> autograde.TestResult:
    return next(t for m in grade.modules for t in m.tests if t.nodeid.endswith(test))


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


def test_configuration_files_in_a_submission_are_dropped(tmp_path, monkeypatch):
    force_pass = (
        "import pytest\n\n@pytest.hookimpl(wrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    report = yield\n    report.outcome = 'passed'\n    return report\n"
    )
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "sitecustomize.py").write_text("import os; os._exit(0)\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(evil))  # the grader's own environment: not passed on
    files = {
        "katas/alpha/conftest.py": force_pass,
        "katas/conftest.py": force_pass,
        "katas/alpha/sitecustomize.py": "import os; os._exit(0)\n",
        "katas/alpha/usercustomize.py": "import os; os._exit(0)\n",
        "katas/alpha/evil.pth": "import os; os._exit(0)\n",
        "katas/alpha/_native.so": "not really a library\n",
    }
    grade = autograde.grade(submission(tmp_path, ALPHA_BUGGY, extra=files), settings=FAST, only=["alpha"])
    assert scores(grade) == {"alpha": Fraction(20, 3)}
    ignored = " ".join(grade.notes)
    for name in ("katas/alpha/conftest.py", "sitecustomize.py", "usercustomize.py", "evil.pth", "_native.so"):
        assert name in ignored


def test_a_symlink_to_the_solutions_is_not_followed(repo, tmp_path):
    student = submission(tmp_path)
    core = student / "katas" / "alpha" / "core.py"
    core.unlink()
    core.symlink_to(repo / "solutions" / "alpha" / "core.py")
    grade = autograde.grade(student, settings=FAST, only=["alpha"])
    assert scores(grade) == {"alpha": 0}
    assert "symbolic link" in " ".join(grade.notes)


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


# --------------------------------------------------------------------------- batch


def make_class(repo: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copytree(repo / "solutions", folder / "ada" / "katas")  # a full repository layout
    stubs = folder / "bob.zip"  # the stubs: a zip of a folder holding a katas/ tree
    with zipfile.ZipFile(stubs, "w") as z:
        for path in (repo / "katas").rglob("*.py"):
            z.write(path, Path("bob-main") / path.relative_to(repo))
        z.writestr("../../escape.py", "outside the folder")  # never extracted
    partial = submission(tmp_path / "c", ALPHA_BUGGY)
    shutil.move(partial, folder / "cy")
    (folder / "dee.zip").write_bytes(b"PK\x03\x04 this is not a zip")  # a broken zip
    (folder / ".DS_Store").write_text("ignored", encoding="utf-8")
    return folder


def read_gradebook(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def assert_the_class_gradebook(out: Path) -> None:
    """The gradebook, summary and results of ``make_class``'s four students, graded."""
    book = read_gradebook(out)
    assert set(book) == {"ada", "bob", "cy", "dee"}
    assert (book["ada"]["score"], book["ada"]["15 alpha"], book["ada"]["16 beta"]) == ("30", "10", "20")
    assert book["bob"]["score"] == "0" and book["bob"]["status"] == "graded"
    assert book["cy"]["score"] == "6.6667" and book["cy"]["15 alpha"] == "6.6667"
    assert "tests/test_alpha.py::test_double_negative" in book["cy"]["failing tests"]
    assert book["dee"]["status"] == "broken-zip" and book["dee"]["score"] == "0"
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["students"]["cy"]["modules"]["alpha"]["failing"] == [
        "tests/test_alpha.py::test_double_negative"
    ]
    assert summary["graded"] == summary["total"] == 4
    dee = json.loads((out / "dee" / "results.json").read_text(encoding="utf-8"))
    assert "not a readable zip" in dee["output"]


def test_an_interrupted_batch_resumes_without_regrading_and_makes_the_gradebook(repo, tmp_path):
    folder = make_class(repo, tmp_path)
    out = tmp_path / "grades"
    command = [
        sys.executable,
        "-m",
        "grading",
        "batch",
        str(folder),
        "--jobs",
        "1",
        "--out",
        str(out),
        "--timeout",
        "4",
    ]
    env = {**os.environ, "PYTHONPATH": str(GRADER_PARENT)}
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while not list(out.glob("*/fingerprint")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the batch and the grading in flight stop
    proc.wait(timeout=30)
    first = {
        p.parent.name: p.stat().st_mtime_ns
        for p in out.glob("*/results.json")
        if (p.parent / "fingerprint").is_file()
    }
    assert 1 <= len(first) < 4
    command[command.index("--jobs") + 1] = "2"
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(first)} already graded, {4 - len(first)} to grade" in resumed.stdout
    for student, stamp in first.items():
        assert (out / student / "results.json").stat().st_mtime_ns == stamp  # not graded again
    assert_the_class_gradebook(out)
    # a changed submission is graded again; the others are not
    (folder / "cy" / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION, encoding="utf-8")
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert "3 already graded, 1 to grade" in again.stdout
    assert read_gradebook(out)["cy"]["score"] == "10"


# --------------------------------------------------------------------------- unpacking (no pytest run)


def test_a_zip_is_unpacked_without_escaping_links_or_bombs(tmp_path):
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ada/katas/alpha/core.py", "x = 1\n")
        z.writestr("../escape.py", "outside")
        z.writestr("/abs.py", "absolute")
        z.writestr("__MACOSX/ada/._core.py", "resource fork")
        link = zipfile.ZipInfo("ada/katas/alpha/link.py")
        link.external_attr = 0o120777 << 16
        z.writestr(link, "/etc/passwd")
    dest = autograde.unpack_zip(archive, tmp_path / "out")
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["abs.py", "ada/katas/alpha/core.py"]  # "/abs.py" lands inside, never at /
    assert not (tmp_path / "escape.py").exists()
    from tinytorch.course import registry

    assert autograde.find_katas(dest, list(registry.modules())) == dest / "ada" / "katas"
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("katas/alpha/big.py", b"0" * (autograde.MAX_FILE_BYTES + 1))
    with pytest.raises(autograde.SubmissionError, match="too large"):
        autograde.unpack_zip(bomb, tmp_path / "bomb")


def test_a_spent_time_budget_leaves_the_remaining_tests_unrun(repo):
    settings = autograde.Settings(timeout=4, module_timeout=60, total_timeout=0.5, collect_timeout=30)
    grade = autograde.grade(repo / "solutions", settings=settings)
    assert grade.score == 0 and grade.max_score == 30
    assert all(t.outcome == "not run" and "time budget" in t.message for m in grade.modules for t in m.tests)


def test_the_gradebook_says_which_boundary_held_and_what_needs_a_human_look(tmp_path):
    from grading import batch

    folder, out = tmp_path / "class", tmp_path / "grades"
    (folder / "ada").mkdir(parents=True)
    (out / "ada").mkdir(parents=True)
    finding = {"file": "core.py", "line": 3, "name": "import gc", "text": "reaches every object"}
    results = {
        "score": 4,
        "tests": [],
        "extra_data": {
            "status": "graded",
            "max_score": 30,
            "boundary": {"kind": "user+landlock"},
            "modules": {
                "alpha": {
                    "score": 4,
                    "tampered": "",
                    "inconsistent": ["t1", "t2"],
                    "survivors": 3,
                    "notes": ["skipped: 1 test(s)"],
                    "review": [finding],
                    "failing": [],
                },
                "beta": {
                    "score": 0,
                    "tampered": "pytest patched",
                    "inconsistent": [],
                    "survivors": 0,
                    "notes": [],
                    "review": [],
                    "failing": [],
                },
            },
        },
    }
    (out / "ada" / "results.json").write_text(json.dumps(results))
    batch.gradebook(folder, out)
    with open(out / "gradebook.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["boundary"] == "user+landlock"
    assert "alpha: inconsistent (2 test(s)" in row["flagged"] and "skipped tests" in row["flagged"]
    assert (
        "3 process(es) outlived the module" in row["flagged"]
        and "beta: tampering (pytest patched)" in row["flagged"]
    )
    assert "import gc (core.py:3)" in row["review"]


# --------------------------------------------------------------------------- the class leaderboard

# what a hostile submission does once its tests pass: only the competition's quick run (runs=3)
HOSTILE = {
    "huge": "return ScoreCard(score=10**400, counted=dict(SPEEDUPS))",
    "unknown": 'return ScoreCard(score=4.0, counted={**SPEEDUPS, "EVIL": 2.0})',
    "nan": 'return ScoreCard(score=float("nan"), counted=dict(SPEEDUPS))',
    "hang": "import time; time.sleep(10**6)",
    "raise": 'raise RuntimeError("no competition today")',
    "symlink": (
        "import os; os.symlink(os.path.join(os.getcwd(), 'elsewhere.json'), "
        "os.environ['TINYTORCH_LEADERBOARD_OUT']); return ScoreCard(score=4.0, counted=dict(SPEEDUPS))"
    ),
}


@pytest.fixture(scope="module")
def bench_repo(tmp_path_factory):
    return add_bench_module(make_repo(tmp_path_factory.mktemp("bench") / "repo"))


@pytest.fixture
def bench_env(bench_repo, monkeypatch):
    monkeypatch.setenv("TINYTORCH_ROOT", str(bench_repo))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(bench_repo / "modules.toml"))
    return bench_repo


def bench_submission(tmp_path: Path, hostile: str = "") -> Path:
    """The fake module 20 solved; ``hostile``: what its compute_score does in the quick run."""
    body = BENCH_SOLUTION
    if hostile:
        body = body.replace(
            "    def compute_score(self, bench):\n",
            "    def compute_score(self, bench):\n"
            f"        if bench.runs == 3:\n            {HOSTILE[hostile]}\n",
        )
    root = tmp_path / "student"
    (root / "katas" / "benchmarking").mkdir(parents=True)
    (root / "katas" / "benchmarking" / "__init__.py").write_text(body, encoding="utf-8")
    return root


BENCH = replace(FAST, leaderboard_timeout=10)


def test_a_finished_module_20_posts_gradescopes_leaderboard(bench_env, tmp_path):
    """The leaderboard field as Gradescope's specification has it: a top-level array of objects
    with a name, a numeric value and an order ("desc": higher ranks higher, as for a speedup)."""
    grade = autograde.grade(bench_submission(tmp_path), settings=BENCH, only=["benchmarking"])
    results = grade.to_gradescope()
    assert results["score"] == 40, "score of the solved fake module 20 (its 40 points)"
    board = results["leaderboard"]
    assert board == [
        {"name": "Score", "value": 4.0, "order": "desc"},
        {"name": "MLP_SPRINT", "value": 2.0, "order": "desc"},
        {"name": "CNN_MARATHON", "value": 4.0, "order": "desc"},
        {"name": "TRANSFORMER_DECATHLON", "value": 8.0, "order": "desc"},
    ], "leaderboard entries: the score, then each event's speedup in the events' order"
    for entry in board:  # the specification's types, as results.json holds them
        assert set(entry) == {"name", "value", "order"}, f"keys of leaderboard entry {entry}"
        assert isinstance(entry["name"], str) and entry["order"] in ("asc", "desc"), f"entry {entry}"
        value = entry["value"]
        assert isinstance(value, float) and math.isfinite(value), f"value of leaderboard entry {entry}"
    assert json.loads(json.dumps(results, allow_nan=False))["leaderboard"] == board, "leaderboard JSON"
    extra = results["extra_data"]["leaderboard"]
    assert (extra["posted"], extra["note"]) == (True, ""), "extra_data.leaderboard"
    assert 0 < extra["seconds"] < BENCH.leaderboard_timeout, "extra_data.leaderboard.seconds of the run"
    assert "leaderboard (display only, not part of the grade): Score 4x" in results["output"], "output"


def test_an_unfinished_module_20_or_a_switched_off_leaderboard_posts_none(bench_env, tmp_path):
    grade = autograde.grade(bench_env / "katas", settings=BENCH, only=["benchmarking"])
    results = grade.to_gradescope()
    assert "leaderboard" not in results, "leaderboard of the untouched stub"
    note = results["extra_data"]["leaderboard"]
    assert note["posted"] is False and "not finished (0 of 2 tests" in note["note"], "the note of a stub"
    off = autograde.grade(bench_submission(tmp_path), settings=replace(BENCH, leaderboard=False))
    results = off.to_gradescope()
    assert "leaderboard" not in results and "leaderboard" not in results["extra_data"], "switched off"
    assert off.score == 40, "score with the leaderboard off (no alpha, no beta, module 20 solved)"


@pytest.mark.parametrize(
    "hostile, words",
    [
        ("huge", "figures were refused: score is an integer of 401 digits"),
        ("unknown", "figures were refused: events names unknown event(s) ['EVIL']"),
        ("nan", "figures were refused: the figures file holds NaN"),
        ("hang", "took longer than its 3 s"),
        ("raise", "the competition failed: RuntimeError: no competition today"),
        ("symlink", "no figures were written"),
    ],
)
def test_a_hostile_or_failing_competition_posts_no_leaderboard_and_keeps_the_grade(
    bench_env, tmp_path, hostile, words
):
    settings = replace(BENCH, leaderboard_timeout=3)
    grade = autograde.grade(bench_submission(tmp_path, hostile), settings=settings, only=["benchmarking"])
    results = grade.to_gradescope()
    assert results["score"] == 40, f"score of a module 20 whose competition misbehaves ({hostile})"
    assert "leaderboard" not in results, f"leaderboard of a competition that misbehaves ({hostile})"
    note = results["extra_data"]["leaderboard"]["note"]
    assert note.startswith("not posted: ") and words in note, f"the note of {hostile}: {note!r}"


def test_the_leaderboard_settings_are_checked(bench_env, tmp_path, monkeypatch):
    text = (bench_env / "modules.toml").read_text(encoding="utf-8")
    for bad in ('leaderboard = "yes"', "leaderboard_timeout = 0", "leaderboard_timeout = true"):
        registry_file = tmp_path / "modules.toml"
        registry_file.write_text(f"[grading]\n{bad}\n\n" + text, encoding="utf-8")
        monkeypatch.setenv("TINYTORCH_REGISTRY", str(registry_file))
        with pytest.raises(ValueError, match=bad.split(" ")[0]):
            autograde.load_settings()
    registry_file.write_text("[grading]\nleaderboard = false\nleaderboard_timeout = 30\n\n" + text)
    settings = autograde.load_settings()
    assert (settings.leaderboard, settings.leaderboard_timeout) == (False, 30), "leaderboard settings read"


def figures_file(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "leaderboard.json"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


GOOD = {"score": 4, "events": {"MLP_SPRINT": 2.0, "CNN_MARATHON": 4.0, "TRANSFORMER_DECATHLON": 8.0}}


def hostile(**change) -> str:
    figures = json.loads(json.dumps(GOOD))
    for key, value in change.items():
        if key == "score":
            figures["score"] = value
        else:
            figures["events"][key] = value
    return json.dumps(figures)


@pytest.mark.parametrize(
    "text, words",
    [
        (hostile(score=float("nan")), "holds NaN, not a number"),
        (hostile(MLP_SPRINT=float("inf")), "holds Infinity, not a number"),
        ('{"score": -Infinity, "events": {}}', "holds -Infinity, not a number"),
        (hostile(score=1e300), "score is 1e+300, outside the plausible range"),
        (hostile(score=10**400), "score is an integer of 401 digits, outside the plausible range"),
        (hostile(CNN_MARATHON=-(10**400)), "events.CNN_MARATHON is an integer of 401 digits"),
        ('{"score": 1' + "0" * 5000 + ', "events": {}}', "not readable JSON"),  # past int's digit limit
        (hostile(score=0), "score is 0, outside the plausible range"),
        (hostile(score=True), "score must be a number, got bool"),
        (hostile(MLP_SPRINT="2.0"), "events.MLP_SPRINT must be a number, got str"),
        (hostile(MLP_SPRINT=[2.0]), "events.MLP_SPRINT must be a number, got list"),
        (hostile(EVIL=2.0), "unknown event(s) ['EVIL']"),
        (hostile(**{"<script>" * 100: 2.0}), "unknown event(s)"),
        (
            json.dumps({"score": 4, "events": {"MLP_SPRINT": 2.0}}),
            "lacks ['CNN_MARATHON', 'TRANSFORMER_DECATHLON']",
        ),
        (json.dumps({**GOOD, "rank": 1}), "exactly"),
        (json.dumps([4, 2, 4, 8]), "exactly"),
        (json.dumps({"score": 4, "events": [2, 4, 8]}), "events must map"),
        ("[" * 100_000 + "]" * 100_000, "larger than 64 KiB"),
        ("[" * 30_000 + "]" * 30_000, "not readable JSON"),  # nesting past the recursion limit
        (" " * (65 * 1024) + json.dumps(GOOD), "larger than 64 KiB"),
        (b"\xff\xfe", "not readable JSON"),
        ("", "not readable JSON"),
    ],
)
def test_hostile_figures_are_refused_whole_with_a_reason(tmp_path, text, words):
    from grading import competition

    with pytest.raises(competition.FiguresError) as caught:
        competition.read_figures(figures_file(tmp_path, text))
    assert words in str(caught.value), f"reason for refusing {str(text)[:60]!r}: {caught.value}"


def test_figures_that_are_not_a_regular_file_are_not_followed(tmp_path):
    from grading import competition

    target = figures_file(tmp_path, json.dumps(GOOD))
    link = tmp_path / "link.json"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # a reader that waited for a writer would hang the grader
    for path, words in (
        (link, "no figures were written"),
        (fifo, "not a regular file"),
        (tmp_path / "none", "no figures"),
    ):
        with pytest.raises(competition.FiguresError, match=words):
            competition.read_figures(path)
    assert competition.read_figures(target) == {
        "Score": 4.0,
        "MLP_SPRINT": 2.0,
        "CNN_MARATHON": 4.0,
        "TRANSFORMER_DECATHLON": 8.0,
    }, "figures of a valid file, in the leaderboard's order"


def test_values_are_rounded_to_four_significant_digits_and_kept_positive():
    from grading import competition

    board = competition.entries({"Score": 3.14159265, "MLP_SPRINT": 1.5e-6, "CNN_MARATHON": 123456.7})
    assert [e["value"] for e in board] == [3.142, 1.5e-06, 123500.0], "rounded leaderboard values"
    assert all(e["value"] > 0 for e in board), "a rounded value stays positive"


def test_the_grader_knows_module_20s_events():
    """grading/competition.py's EVENTS, which the grader checks the child's names against, are
    the reference's events, in order."""
    import subprocess as sp

    code = "from tinytorch.perf.benchmarking import EVENTS; print(','.join(e.name for e in EVENTS))"
    env = {**os.environ, "TINYTORCH_IMPL": "solutions"}
    for name in ("TINYTORCH_ROOT", "TINYTORCH_REGISTRY"):
        env.pop(name, None)
    done = sp.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    from grading import competition

    assert done.stdout.strip().split(",") == list(competition.EVENTS), f"module 20's events: {done.stderr}"


def test_no_leaderboard_on_the_command_line_switches_it_off(bench_env, tmp_path):
    out = tmp_path / "results.json"
    student = bench_submission(tmp_path)
    argv = [str(student), "--out", str(out), "--quiet", "--module", "benchmarking", "--timeout", "4"]
    assert autograde.main([*argv, "--no-leaderboard"]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["score"] == 40, "score of the solved fake module 20 without the leaderboard"
    assert "leaderboard" not in results and "leaderboard" not in results["extra_data"], "--no-leaderboard"
    assert autograde.main(argv) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert [e["name"] for e in results["leaderboard"]][0] == "Score", "the leaderboard without the flag"


def test_each_user_grades_under_a_folder_of_its_own(tmp_path: Path, monkeypatch) -> None:
    """Root's /tmp/tinytorch-grading (0711) is not usable by another user: a grader that is not
    root works under its own folder, and refuses one of that name that it does not own."""
    monkeypatch.setattr(autograde.tempfile, "gettempdir", lambda: str(tmp_path))
    if os.geteuid() == 0:
        assert autograde.work_parent() == tmp_path / "tinytorch-grading", "root's folder"
        assert (tmp_path / "tinytorch-grading").stat().st_mode & 0o777 == 0o711, "root's folder is 0711"
    other = os.geteuid() + 4242
    monkeypatch.setattr(autograde.os, "geteuid", lambda: other)
    planted = tmp_path / f"tinytorch-grading-user{other}"
    planted.mkdir()  # made by this process's real user, not by uid `other`: someone else's
    with pytest.raises(PermissionError, match=f"uid {other}"):
        autograde.work_parent()
