"""Hostile submissions: each class of attack on the grader, graded for real.

Each case is a submission written by a student who has read the grader's code. The untouched stub
earns 0, so every case here must score exactly what its honest part earns (0 unless it says
otherwise), be flagged where the grader can tell, and leave nothing behind. The fake repository of
``conftest.py`` gets an answer key for ``alpha`` (``grading/keys/test_key_alpha.py``) so the
grader has a verdict of its own.

The cases that need the kernel boundary (a user of its own needs root; Landlock needs a kernel
that offers it) skip with the reason where the run has neither; CI runs as root on a kernel with
Landlock, so there they all run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import ALPHA_SOLUTION, ALPHA_STUB, BETA_SOLUTION, REAL_ROOT, make_repo

from grading import autograde, boundary

FAST = autograde.Settings(timeout=4, module_timeout=60, collect_timeout=30, memory_mb=1024)
ROOT = os.geteuid() == 0
LANDLOCK = boundary.landlock_abi() > 0
needs_root = pytest.mark.skipif(
    not ROOT, reason="a user of its own for the student's code needs a root grader"
)
needs_landlock = pytest.mark.skipif(not LANDLOCK, reason="this kernel does not offer Landlock")

ALPHA_KEY = '''\
"""alpha's answer key: double and Doubler.apply on integers drawn at grading time."""

import numpy as np
import pytest


@pytest.mark.covers("test_double")
def test_double_positive(answer):
    from tinytorch.perf.alpha import double

    xs = answer.rng.integers(1, 10**6, size=6)
    answer.record(doubled=np.array([double(int(x)) for x in xs], dtype=np.int64))


@pytest.mark.covers("test_double_negative")
def test_double_negative(answer):
    from tinytorch.perf.alpha import double

    xs = answer.rng.integers(-(10**6), 0, size=6)
    answer.record(doubled=np.array([double(int(x)) for x in xs], dtype=np.int64))


@pytest.mark.covers("TestDoubler")
def test_doubler(answer):
    from tinytorch.perf.alpha import Doubler

    xs = answer.rng.integers(1, 10**6, size=6)
    answer.record(applied=np.array([Doubler().apply(int(x)) for x in xs], dtype=np.int64))
'''


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = make_repo(tmp_path_factory.mktemp("hostile") / "repo")
    text = (root / "modules.toml").read_text(encoding="utf-8")
    text = text.replace('status = "ready"', 'status = "ready"\nkey = "grading/keys/test_key_alpha.py"', 1)
    (root / "modules.toml").write_text(text, encoding="utf-8")
    (root / "grading" / "keys").mkdir(parents=True)
    shutil.copy(REAL_ROOT / "grading" / "keys" / "conftest.py", root / "grading" / "keys" / "conftest.py")
    (root / "grading" / "keys" / "test_key_alpha.py").write_text(ALPHA_KEY, encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def grader_env(repo, monkeypatch):
    monkeypatch.setenv("TINYTORCH_ROOT", str(repo))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(repo / "modules.toml"))
    monkeypatch.delenv("TINYTORCH_IMPL", raising=False)


def student(tmp_path: Path, repo: Path, alpha: str = ALPHA_STUB, beta: str | None = None) -> Path:
    root = tmp_path / "student"
    shutil.copytree(repo / "katas", root / "katas")
    (root / "katas" / "alpha" / "core.py").write_text(alpha, encoding="utf-8")
    if beta is not None:
        (root / "katas" / "beta" / "__init__.py").write_text(beta, encoding="utf-8")
    return root


def alpha_grade(grade: autograde.Grade) -> autograde.ModuleGrade:
    return next(m for m in grade.modules if m.module.name == "alpha")


# --------------------------------------------------------------------------- honest baselines


def test_with_a_key_the_reference_earns_full_marks_the_stub_none_and_a_partial_its_share(repo, tmp_path):
    assert autograde.grade(repo / "solutions", settings=FAST, only=["alpha"]).score == 10
    assert autograde.grade(repo / "katas", settings=FAST, only=["alpha"]).score == 0
    buggy = ALPHA_SOLUTION.replace("    return factor * x\n", "    return factor * x if x >= 0 else 0\n", 1)
    grade = autograde.grade(student(tmp_path, repo, buggy), settings=FAST, only=["alpha"])
    # 8 points over 3 tests, 2 points over 3 key checks: everything but the negative case
    assert alpha_grade(grade).score == Fraction(8, 3) * 2 + Fraction(2, 3) * 2
    assert alpha_grade(grade).inconsistent == []
    results = grade.to_gradescope()
    keys = [t for t in results["tests"] if "key" in t["name"]]
    assert len(keys) == 3 and {t["visibility"] for t in keys} == {"after_published"}


# --------------------------------------------------------------------------- 1: links


@pytest.mark.parametrize("absolute", [True, False], ids=["absolute", "relative"])
def test_a_katas_folder_that_links_to_the_reference_is_refused(repo, tmp_path, absolute):
    root = tmp_path / "student"
    root.mkdir()
    target = repo / "solutions"
    (root / "katas").symlink_to(target if absolute else os.path.relpath(target, root))
    grade = autograde.grade(root, settings=FAST)
    assert grade.score == 0
    assert any("refused: katas" in note for note in grade.notes)
    assert "refused: katas" in json.dumps(grade.to_gradescope())


def test_linked_module_folders_and_files_are_not_staged(repo, tmp_path):
    root = tmp_path / "student"
    shutil.copytree(repo / "katas", root / "katas")
    shutil.rmtree(root / "katas" / "beta")
    (root / "katas" / "beta").symlink_to(repo / "solutions" / "beta")
    (root / "katas" / "alpha" / "core.py").unlink()
    (root / "katas" / "alpha" / "core.py").symlink_to(repo / "solutions" / "alpha" / "core.py")
    grade = autograde.grade(root, settings=FAST)
    assert grade.score == 0
    notes = " ".join(grade.notes)
    assert "katas/alpha/core.py (a symbolic link" in notes


def test_a_hard_link_to_the_reference_is_not_staged(repo, tmp_path):
    root = tmp_path / "student"
    shutil.copytree(repo / "katas", root / "katas")
    (root / "katas" / "alpha" / "core.py").unlink()
    os.link(repo / "solutions" / "alpha" / "core.py", root / "katas" / "alpha" / "core.py")
    grade = autograde.grade(root, settings=FAST, only=["alpha"])
    assert grade.score == 0
    assert "katas/alpha/core.py (a hard link)" in " ".join(grade.notes)


# --------------------------------------------------------------------------- 2: the reference


READ_THE_REFERENCE = """
import glob
import os

_SOURCE = None
_ROUTES = []


def _try(route, read):
    global _SOURCE
    if _SOURCE is not None:
        return
    try:
        text = read()
    except Exception as error:
        _ROUTES.append(f"{{route}}: {{type(error).__name__}}")
        return
    if text and "return factor * x" in text:
        _SOURCE = text
        _ROUTES.append(route + ": READ")


def _read_at(path):
    with open(path) as f:
        return f.read()


def _read_relative(path):
    # relative to a directory descriptor of a folder the process may open: the hook sees only "rel"
    here = os.open(".", os.O_RDONLY)
    rel = os.path.relpath(path, os.getcwd())
    fd = os.open(rel, os.O_RDONLY, dir_fd=here)
    return os.read(fd, 100000).decode()


def _read_any_copy():
    # the grader's own staged copies of the reference (the plan, the answer keys)
    for path in glob.glob("/tmp/**/alpha/core.py", recursive=True):
        text = _read_at(path)
        if "return factor * x" in text:
            return text
    return None


_try("open", lambda: _read_at({solution!r}))
_try("dir_fd", lambda: _read_relative({solution!r}))
_try("copies", _read_any_copy)
if _SOURCE is not None:
    exec(_SOURCE)
"""


@needs_landlock
def test_the_reference_of_the_graded_module_cannot_be_read_by_any_route(repo, tmp_path):
    hostile = ALPHA_STUB + READ_THE_REFERENCE.format(solution=str(repo / "solutions" / "alpha" / "core.py"))
    grade = autograde.grade(student(tmp_path, repo, hostile), settings=FAST, only=["alpha"])
    assert grade.score == 0
    assert "NotImplementedError: double" in alpha_grade(grade).tests[0].message


# --------------------------------------------------------------------------- 3: the verdict


FORGE_THE_CHANNEL = """
import gc


def _forge():
    for obj in gc.get_objects():
        if type(obj).__name__ == "Channel" and hasattr(obj, "nonce"):
            real = obj.send

            def send(event, _real=real, **data):  # every outcome signed as passed, no tampering told
                if event == "tamper":
                    return
                if event == "result":
                    data.update(outcome="passed", text="")
                _real(event, **data)

            obj.send = send
        if type(obj).__name__ == "Reporter" and hasattr(obj, "tampered"):
            obj.tampered = True  # the snapshot check switched off
"""

FORGE_THE_REPORT = '''
code = """
import _pytest.reports as reports
original = reports.TestReport.__init__
def __init__(self, *args, **kwargs):
    original(self, *args, **kwargs)
    self.outcome = "passed"
    self.longrepr = None
reports.TestReport.__init__ = __init__
"""
exec(compile(code, "<frozen importlib._bootstrap>", "exec"))
'''


@pytest.mark.parametrize(
    "forgery", [FORGE_THE_CHANNEL + "\n_forge()\n", FORGE_THE_REPORT], ids=["signed-lines", "makereport"]
)
def test_a_forged_verdict_earns_nothing_and_is_flagged(repo, tmp_path, forgery):
    grade = autograde.grade(student(tmp_path, repo, ALPHA_STUB + forgery), settings=FAST, only=["alpha"])
    alpha = alpha_grade(grade)
    assert alpha.score == 0
    flagged = alpha.inconsistent or alpha.tampered
    assert flagged, alpha


def test_a_partial_forgery_earns_exactly_its_honest_part(repo, tmp_path):
    # Doubler.apply solved honestly; double forged through the channel
    stub_line = ALPHA_STUB.splitlines()[-1]
    assert "NotImplementedError" in stub_line
    honest_apply = ALPHA_STUB.replace(stub_line, "        return 2 * x")
    forgery = honest_apply + FORGE_THE_CHANNEL + "\n_forge()\n"
    grade = autograde.grade(student(tmp_path, repo, forgery), settings=FAST, only=["alpha"])
    alpha = alpha_grade(grade)
    # the honest part: TestDoubler (8/3) and the answer key's check of Doubler (2/3)
    assert alpha.score == Fraction(8, 3) + Fraction(2, 3)
    assert sorted(n.split("::", 1)[1] for n in alpha.inconsistent) == ["test_double", "test_double_negative"]


def test_a_forgery_no_check_decides_is_caught_by_the_module_backstop(repo, tmp_path, monkeypatch):
    """Checks that decide no test (their covers name none) leave only the module-level comparison:
    the tests claim 100 %, the key confirms 0 %: the tests' credit is withheld pending review."""
    blind = tmp_path / "repo"
    shutil.copytree(repo, blind, ignore=shutil.ignore_patterns(".grading-cache"))
    key = blind / "grading" / "keys" / "test_key_alpha.py"
    key.write_text(key.read_text().replace('@pytest.mark.covers("', '@pytest.mark.covers("nothing_'), "utf-8")
    monkeypatch.setenv("TINYTORCH_ROOT", str(blind))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(blind / "modules.toml"))
    forgery = ALPHA_STUB + FORGE_THE_CHANNEL + "\n_forge()\n"
    grade = autograde.grade(student(tmp_path, blind, forgery), settings=FAST, only=["alpha"])
    alpha = alpha_grade(grade)
    assert alpha.score == 0
    assert len(alpha.inconsistent) == 3 and any("pending the instructor's review" in n for n in alpha.notes)
    honest = autograde.grade(blind / "solutions", settings=FAST, only=["alpha"])
    assert honest.score == 10 and not alpha_grade(honest).inconsistent


# --------------------------------------------------------------------------- 4: escaping the tree


ESCAPE = '''
import os, signal, time

def _escape():
    code = """
import os, signal, time
pid = os.fork()
if pid == 0:
    os.setsid()
    for _ in range(20):
        if os.fork() == 0:
            os.setsid()
            break
    time.sleep(1.5)
    try:
        with open({results!r}, "w") as f:
            f.write('{{"score": 600}}')
    except OSError:
        pass
    try:
        fd = os.pidfd_open({grader})
        signal.pidfd_send_signal(fd, signal.SIGSTOP)
    except OSError:
        pass
    time.sleep(60)
    os._exit(0)
"""
    exec(compile(code, "<frozen importlib._bootstrap>", "exec"))

_escape()
'''


@needs_root
def test_processes_that_leave_the_session_are_killed_and_cannot_touch_the_results(repo, tmp_path):
    out = tmp_path / "out" / "results.json"
    hostile = ALPHA_STUB + ESCAPE.format(results=str(out), grader=os.getpid())
    assert (
        autograde.main(
            [
                str(student(tmp_path, repo, hostile)),
                "--out",
                str(out),
                "--quiet",
                "--module",
                "alpha",
                "--timeout",
                "4",
            ]
        )
        == 0
    )
    written = out.read_text(encoding="utf-8")
    results = json.loads(written)
    assert results["score"] == 0
    uid = results["extra_data"]["boundary"]["uid"]
    assert results["extra_data"]["boundary"]["kind"].startswith("user")
    assert boundary.user_processes(uid) == []
    time.sleep(2)  # anything still alive would now rewrite the results or stop this process
    assert out.read_text(encoding="utf-8") == written
    assert results["extra_data"]["modules"]["alpha"]["survivors"] > 0


# --------------------------------------------------------------------------- 5: other modules


LEAK_ALPHA = """
import base64, marshal, zlib
import tinytorch.perf.alpha.core as _core


def quadruple(x):
    leaked = base64.b64encode(zlib.compress(marshal.dumps(_core.double.__code__))).decode()
    raise AssertionError("LEAK:" + leaked)
"""


def test_an_unreleased_reference_never_reaches_the_feedback(repo, tmp_path):
    import base64
    import marshal
    import zlib

    grade = autograde.grade(
        student(tmp_path, repo, ALPHA_STUB, BETA_SOLUTION + LEAK_ALPHA), settings=FAST, only=["beta"]
    )
    message = next(t for m in grade.modules for t in m.tests).message
    leaked = message.rsplit("LEAK:", 1)[1].split()[0].rstrip("'\"")
    code = marshal.loads(zlib.decompress(base64.b64decode(leaked)))
    assert "NotImplementedError" in code.co_names  # the student's own stub: no reference in the process
    released = autograde.grade(
        student(tmp_path / "r", repo, ALPHA_STUB, BETA_SOLUTION + LEAK_ALPHA),
        settings=replace(FAST, released=["alpha"]),
        only=["beta"],
    )
    assert released.score == 0  # a released reference may serve (and be read); the test still fails


# --------------------------------------------------------------------------- 6: smaller


PATCH_A_LATER_TEST = """
import sys


def _patch():
    module = sys.modules.get("test_alpha") or sys.modules.get("tests.test_alpha")
    if module is not None:
        module.test_double_negative = lambda: None


def double(x, factor=2):
    _patch()
    return factor * x if x > 0 else 0
"""


def test_patching_a_test_module_imported_after_the_snapshot_is_tampering(repo, tmp_path):
    grade = autograde.grade(
        student(tmp_path, repo, ALPHA_STUB + PATCH_A_LATER_TEST), settings=FAST, only=["alpha"]
    )
    assert alpha_grade(grade).tampered


SKIP_THE_EXAMPLES = """
import pytest


def double(x, factor=2):
    pytest.skip("nothing to see")
"""


def test_tests_the_submission_skips_earn_nothing_and_are_flagged(repo, tmp_path):
    grade = autograde.grade(
        student(tmp_path, repo, ALPHA_STUB + SKIP_THE_EXAMPLES), settings=FAST, only=["alpha"]
    )
    alpha = alpha_grade(grade)
    assert alpha.score == 0
    assert any("skipped" in note for note in alpha.notes)
