"""The student release (``python -m grading release``), built from this very checkout.

One release is built per test session into a temporary folder; the tests then prove what a class
receives: no reference code anywhere, the stubs in place, the student's tox/CI files, a README
without the instructor's sections, a single commit, and tests that run in the release itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from grading import release
from tinytorch import registry

ROOT = Path(release.__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    dest = tmp_path_factory.mktemp("release") / "katas-release"
    written = release.build(dest, root=ROOT)
    return dest, written


def files_of(folder: Path) -> list[str]:
    found = (p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)
    return sorted(p.relative_to(folder).as_posix() for p in found)


def test_no_solutions_and_no_instructor_tools(built):
    dest, written = built
    files = files_of(dest)
    assert files == written
    assert not [f for f in files if f.startswith("solutions/")]
    # of the instructor tools only the gallery's notes come along (name, why, caught_by: no patch)
    assert {f for f in files if f.startswith("grading/")} == {
        f"grading/mistakes/{p.name}" for p in (ROOT / "grading" / "mistakes").glob("*.toml")
    }
    for path in files:
        if path.startswith("tests/") and path.endswith(".py"):
            assert not release.imports_instructor_code((dest / path).read_text()), path
    # the stubs are all there, byte for byte
    for m in registry.modules():
        kata = ROOT / m.kata
        for stub in kata.rglob("*") if kata.is_dir() else ():
            if stub.is_file() and "__pycache__" not in stub.parts:
                relative = stub.relative_to(ROOT).as_posix()
                assert (dest / relative).read_bytes() == stub.read_bytes(), relative


def test_no_reference_body_anywhere_in_the_release(built):
    dest, _ = built
    assert release.find_leaks(dest, ROOT) == []


def test_the_leak_search_finds_a_solution_pasted_anywhere(built, tmp_path: Path):
    dest, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(dest, copy, ignore=shutil.ignore_patterns(".git"))
    solution = next((ROOT / m.solution) for m in registry.modules() if m.ready)
    source = next(p for p in sorted(solution.glob("*.py")) if p.name != "__init__.py")
    (copy / "docs" / "notes.py").write_text(source.read_text())
    # the same body as a code block in a guide, re-indented
    body = [line for line in source.read_text().splitlines() if line.startswith("        ")]
    (copy / "docs" / "guide.md").write_text("```python\n" + "\n".join(line[4:] for line in body) + "\n```\n")
    leaks = {leak.path for leak in release.find_leaks(copy, ROOT)}
    assert leaks == {"docs/notes.py", "docs/guide.md"}


def test_the_student_files_replace_the_instructors(built):
    dest, _ = built
    for path, template in release.STUDENT_FILES.items():
        assert (dest / path).read_text() == (release.CLASSROOM / template).read_text()
    assert os.access(dest / ".ci" / "run", os.X_OK)
    tox = (dest / "tox.ini").read_text()
    assert "solutions" not in tox.split("# The reference solutions")[0]
    assert "check = tools, lint" in tox


def test_the_readme_keeps_the_student_parts(built):
    dest, _ = built
    readme = (dest / "README.md").read_text()
    assert "instructor-only" not in readme and "student-only" not in readme
    assert "For instructors and CI" not in readme
    assert ".venv/bin/tinytorch status" in readme  # the student's command
    assert ".venv/bin/tox run -m check" in readme  # the check, which .ci/run runs
    assert "unfinished ones do not fail it" in readme
    table = readme.split(registry.README_BEGIN)[1].split(registry.README_END)[0].strip()
    assert table == registry.markdown_table(registry.REGISTRY_FILE)


def test_a_single_commit_and_no_history(built):
    dest, _ = built
    log = subprocess.run(["git", "log", "--format=%s"], cwd=dest, capture_output=True, text=True, check=True)
    assert log.stdout.splitlines() == ["TinyTorch optimization katas: student release"]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=dest, capture_output=True, text=True)
    assert status.stdout == ""


def test_the_fork_workflow(built):
    dest, _ = built
    workflow = yaml.safe_load((dest / ".github" / "workflows" / "katas.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "push" in triggers
    job = workflow["jobs"]["board"]
    versions = job["strategy"]["matrix"]["python-version"]
    assert versions[0] == "3.11" and len(versions) >= 4
    assert [int(v.split(".")[1]) for v in versions] == list(range(11, 11 + len(versions)))
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert 'pip install -e ".[test]"' in script
    assert "tinytorch status" in script and "$GITHUB_STEP_SUMMARY" in script
    assert "tox run -m check" in script


def test_the_release_runs_its_own_tests(built):
    """The release's tinytorch (not this checkout's) answers, and a test of its own passes there."""
    dest, _ = built
    env = {**os.environ, "TINYTORCH_ROOT": str(dest), "HYPOTHESIS_PROFILE": "ci"}
    env.pop("TINYTORCH_REGISTRY", None)
    env.pop("TINYTORCH_IMPL", None)
    where = subprocess.run(
        [sys.executable, "-c", "import tinytorch, tinytorch.perf.profiling as p; print(tinytorch.__file__, p.__file__)"],  # noqa: E501
        cwd=dest, env=env, capture_output=True, text=True,
    )
    assert where.returncode == 0, where.stderr
    assert all(Path(path).is_relative_to(dest) for path in where.stdout.split())
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/machinery/test_registry.py"],
        cwd=dest, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_the_destination_must_be_new_and_outside(tmp_path: Path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("")
    with pytest.raises(release.ReleaseError, match="exists and is not empty"):
        release.build(busy, root=ROOT)
    with pytest.raises(release.ReleaseError, match="inside the instructor's checkout"):
        release.build(ROOT / "build" / "release", root=ROOT)


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert release.main([str(tmp_path / "r"), "--no-git"]) == 0
    out = capsys.readouterr().out
    assert "no reference code found" in out and "katas/profiling/" in out
    assert not (tmp_path / "r" / ".git").exists()
    assert release.main([str(tmp_path / "r")]) == 1  # not empty now
    assert "exists and is not empty" in capsys.readouterr().err


def test_the_gallery_notes_come_without_their_patches(built):
    dest, _ = built
    for gallery in sorted((ROOT / "grading" / "mistakes").glob("*.toml")):
        full = tomllib.loads(gallery.read_text())["mistake"]
        notes = tomllib.loads((dest / "grading" / "mistakes" / gallery.name).read_text())["mistake"]
        assert notes == [{k: m[k] for k in release.NOTE_KEYS if k in m} for m in full]
        assert all(set(note) <= set(release.NOTE_KEYS) for note in notes)
    # and the release's registry reads them, as `tinytorch hint` does there
    env = {**os.environ, "TINYTORCH_ROOT": str(dest)}
    proc = subprocess.run(
        [sys.executable, "-c", "from tinytorch import registry; print(len(registry.mistakes('profiling')))"],
        cwd=dest, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0 and int(proc.stdout) > 0, proc.stderr


def test_hidden_tests_stay_with_the_instructor(tmp_path: Path):
    (tmp_path / "tests" / "hidden").mkdir(parents=True)
    (tmp_path / "tests" / "hidden" / "test_more.py").write_text("def test_x():\n    pass\n")
    (tmp_path / "tests" / "test_open.py").write_text("def test_y():\n    pass\n")
    hidden = {"tests/hidden/test_more.py"}
    assert not release.released("tests/hidden/test_more.py", tmp_path, hidden)
    assert release.released("tests/test_open.py", tmp_path, hidden)
