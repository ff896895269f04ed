"""Staging a submission (grading/grade_stage.py): only the student's own regular files reach a
child. Zips are unpacked without escaping links or bombs; links and files that would configure
pytest or Python are dropped and named; each user stages under a folder of its own.
"""

from __future__ import annotations

import os
import zipfile
from fractions import Fraction
from pathlib import Path

import pytest
from autograde_support import FAST, graded_repo, grading_env, scores, submission  # noqa: F401 - the fixtures
from conftest import ALPHA_BUGGY

from grading import autograde, grade_stage


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
    dest = grade_stage.unpack_zip(archive, tmp_path / "out")
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["abs.py", "ada/katas/alpha/core.py"]  # "/abs.py" lands inside, never at /
    assert not (tmp_path / "escape.py").exists()
    from tinytorch.course import registry

    assert grade_stage.find_katas(dest, list(registry.modules())) == dest / "ada" / "katas"
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("katas/alpha/big.py", b"0" * (grade_stage.MAX_FILE_BYTES + 1))
    with pytest.raises(grade_stage.SubmissionError, match="too large"):
        grade_stage.unpack_zip(bomb, tmp_path / "bomb")


def test_each_user_grades_under_a_folder_of_its_own(tmp_path: Path, monkeypatch) -> None:
    """Root's /tmp/tinytorch-grading (0711) is not usable by another user: a grader that is not
    root works under its own folder, and refuses one of that name that it does not own."""
    monkeypatch.setattr(grade_stage.tempfile, "gettempdir", lambda: str(tmp_path))
    if os.geteuid() == 0:
        assert grade_stage.work_parent() == tmp_path / "tinytorch-grading", "root's folder"
        assert (tmp_path / "tinytorch-grading").stat().st_mode & 0o777 == 0o711, "root's folder is 0711"
    other = os.geteuid() + 4242
    monkeypatch.setattr(grade_stage.os, "geteuid", lambda: other)
    planted = tmp_path / f"tinytorch-grading-user{other}"
    planted.mkdir()  # made by this process's real user, not by uid `other`: someone else's
    with pytest.raises(PermissionError, match=f"uid {other}"):
        grade_stage.work_parent()
