"""What the autograder's golden tests share: the fake repository of ``conftest.py`` they grade
against (one per test file, named by the environment of every test), a student's submission built
from it (its stubs, with alpha's ``core.py`` and beta replaced), the fast settings they grade with,
and the scores read back from a grade.

A test file takes the fixtures by importing them: ``from autograde_support import graded_repo,
grading_env``; pytest finds them under their fixture names, ``repo`` and ``grader_env``.
"""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import ALPHA_STUB, make_repo

from grading import autograde

FAST = autograde.Settings(timeout=4, module_timeout=60, collect_timeout=30, memory_mb=1024)


@pytest.fixture(scope="module", name="repo")
def graded_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake repository the tests of one file grade against."""
    return make_repo(tmp_path_factory.mktemp("grader") / "repo")


@pytest.fixture(autouse=True, name="grader_env")
def grading_env(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs the grader on that repository, with no implementation chosen."""
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
