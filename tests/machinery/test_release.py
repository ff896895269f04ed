"""The student release (``python -m grading release``), built from this very checkout.

One release is built per test session into a temporary folder; the tests then prove what a class
receives: no reference code anywhere, the stubs in place, the student's tox/CI files, a README
without the instructor's sections, a single commit, and tests that run in the release itself.
Two more releases prove the instructor's options: the nudges only (no recipe level) with module
16's reference handed out, and no hints at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from grading import release
from tinytorch.course import registry

ROOT = Path(release.__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    dest = tmp_path_factory.mktemp("release") / "katas-release"
    written = release.build(dest, root=ROOT)
    return dest, written


@pytest.fixture(scope="module")
def nudges(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A release with the nudges only and module 16's reference handed out (by number)."""
    dest = tmp_path_factory.mktemp("release") / "nudges"
    return dest, release.build(dest, root=ROOT, git=False, hints="nudges", references=["16"])


@pytest.fixture(scope="module")
def no_hints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    dest = tmp_path_factory.mktemp("release") / "none"
    return dest, release.build(dest, root=ROOT, git=False, hints="none")


def in_release(dest: Path, *argv: str, impl: str = "katas") -> subprocess.CompletedProcess:
    """Run a command in the release, with the release's own tinytorch and registry."""
    env = {**os.environ, "TINYTORCH_ROOT": str(dest), "HYPOTHESIS_PROFILE": "ci", "TINYTORCH_IMPL": impl}
    env.pop("TINYTORCH_REGISTRY", None)
    return subprocess.run([sys.executable, *argv], cwd=dest, env=env, capture_output=True, text=True)


def in_release_at_once(dest: Path, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """Several commands in the release, run side by side (each waits mostly on its children)."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda argv: in_release(dest, *argv), commands))


REGISTRY_TESTS = "tests/machinery/test_registry.py"


def release_hints(dest: Path) -> tuple[str, list[registry.Hint]]:
    """What the release's registry says it holds, and every hint in it (parsed as its CLI does)."""
    path = dest / "tinytorch" / "course" / "modules.toml"
    return registry.hints_held(path), [h for m in registry.modules(path) for h in m.hints]


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
                if stub.suffix == ".md":  # a guide: what the student reads of it
                    assert (dest / relative).read_text() == release.student_text(stub.read_text()), relative
                else:
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
        [
            sys.executable,
            "-c",
            "from tinytorch.course import registry; print(len(registry.mistakes('profiling')))",
        ],
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


# --------------------------------------------------------------------------- hints and references


def test_a_default_release_holds_every_hint(built):
    dest, _ = built
    held, hints = release_hints(dest)
    source = [h for m in registry.modules(registry.REGISTRY_FILE) for h in m.hints]
    assert held == "all" and hints == source and any(h.recipe for h in hints)


def test_a_nudges_release_holds_no_recipe_level_and_its_cli_still_works(nudges):
    dest, _ = nudges
    held, hints = release_hints(dest)
    source = [h for m in registry.modules(registry.REGISTRY_FILE) for h in m.hints]
    assert held == "nudges"
    assert [h for h in hints if h.recipe] == []
    assert hints == [h for h in source if not h.recipe]  # every nudge kept, in its order
    registry_text = " ".join((dest / "tinytorch" / "course" / "modules.toml").read_text().split())
    for hint in (h for h in source if h.recipe):  # nor does a recipe's text stand anywhere else
        assert " ".join(hint.text.split()) not in registry_text
    # the released CLI reads its registry and gives the first nudge for a failing test
    proc, listed, tests = in_release_at_once(
        dest,
        ("-m", "tinytorch.course.cli", "hint", "acceleration"),
        ("-m", "tinytorch.course.cli", "list"),
        ("-m", "pytest", "-q", "-p", "no:cacheprovider", REGISTRY_TESTS),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "About module 16 acceleration:" in proc.stdout and "Hint 1 of " in proc.stdout
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert tests.returncode == 0, tests.stdout[-3000:]


def test_a_release_without_hints_holds_no_hint_and_no_mistake_notes(no_hints):
    dest, written = no_hints
    held, hints = release_hints(dest)
    assert held == "none" and hints == []
    assert not [f for f in written if f.startswith("grading/")]
    proc, tests = in_release_at_once(
        dest,
        ("-m", "tinytorch.course.cli", "hint", "profiling"),
        ("-m", "pytest", "-q", "-p", "no:cacheprovider", REGISTRY_TESTS),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No hint in the registry for this test" in proc.stdout and "holds no hints" in proc.stdout
    assert tests.returncode == 0, tests.stdout[-3000:]


def test_the_registry_keeps_its_comments_and_refuses_an_unknown_choice():
    text = registry.REGISTRY_FILE.read_text()
    assert release.registry_with_hints(text, "all").replace('hints = "all"', "") != ""
    nudges = release.registry_with_hints(text, "nudges")
    assert [line for line in text.splitlines() if line.startswith("#")] == [
        line for line in nudges.splitlines() if line.startswith("#")
    ]
    assert release.registry_with_hints(nudges, "nudges") == nudges  # already so: unchanged
    with pytest.raises(ValueError, match="hints must be one of all, nudges, none, got 'some'"):
        release.registry_with_hints(text, "some")


def test_a_handed_out_reference_serves_under_the_students_code(nudges, built):
    dest, written = nudges
    module = registry.get("acceleration")
    source = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / module.solution).rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert sorted(f for f in written if f.startswith("solutions/")) == ["solutions/README.md", *source]
    for path in source:
        assert (dest / path).read_bytes() == (ROOT / path).read_bytes(), path
    assert "TINYTORCH_IMPL=katas,acceleration=solutions" in (dest / "solutions" / "README.md").read_text()
    # the other references stay out, and the leak search still covers them
    assert release.find_leaks(dest, ROOT, [module]) == []
    assert {leak.source.split("/")[1] for leak in release.find_leaks(dest, ROOT)} == {"acceleration"}
    # the guide's fallback names what works in this release, and not in one without the reference
    guide = "katas/compression/README.md"
    assert "This release holds it: `TINYTORCH_IMPL=katas,acceleration=solutions" in (dest / guide).read_text()
    assert "This release holds it" not in (built[0] / guide).read_text()
    assert "your instructor can hand it out" in (built[0] / guide).read_text()
    # the documented value serves the release's reference under the student's katas
    show = "from tinytorch.perf import acceleration as a, profiling as p; print(a.__file__, p.__file__)"
    where = in_release(dest, "-c", show, impl="katas,acceleration=solutions")
    assert where.returncode == 0, where.stderr
    served, own = map(Path, where.stdout.split())
    assert served.is_relative_to(dest / "solutions" / "acceleration") and own.is_relative_to(dest / "katas")
    run = in_release(dest, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "tests/test_acceleration.py",
                     impl="katas,16=solutions")
    assert run.returncode == 0, run.stdout[-3000:]


def test_a_reference_must_be_a_module_with_one(tmp_path: Path):
    with pytest.raises(release.ReleaseError, match="--reference: unknown module '99'"):
        release.build(tmp_path / "r", root=ROOT, references=["99"])
    with pytest.raises(release.ReleaseError, match="--hints must be one of"):
        release.build(tmp_path / "r", root=ROOT, hints="recipes")


def test_what_a_student_reads_uses_no_reference_the_release_does_not_hold(built, nudges, tmp_path: Path):
    """The release's README and guides speak of what it holds: no TINYTORCH_IMPL=solutions, no
    --impl solutions, no solutions/ path, unless that reference is handed out."""
    for dest, _ in (built, nudges):
        assert release.missing_references(dest) == []
        for path in dest.rglob("*.md"):
            text = path.read_text()
            markers = ("instructor-only", "student-only", "with-reference")
            assert not [marker for marker in markers if marker in text], path
    readme = (built[0] / "README.md").read_text()
    assert "measure the reference" not in readme and "It measures the reference" not in readme
    assert "`TINYTORCH_IMPL=katas tinytorch bench` measures your code" in readme
    # the check finds what it is for
    copy = tmp_path / "copy"
    shutil.copytree(nudges[0], copy)
    (copy / "docs" / "extra.md").write_text(
        "`TINYTORCH_IMPL=solutions pytest`\n"
        "TINYTORCH_IMPL=katas,acceleration=solutions and TINYTORCH_IMPL=katas,16=solutions hold\n"
        "`tinytorch submit --impl solutions,caching=katas`\n"
        "see solutions/caching/attention.py, but solutions/acceleration/matmul.py is here\n"
        "TINYTORCH_IMPL=katas,<module>=solutions names no module\n"
    )
    found = release.missing_references(copy)
    assert [line.split(": uses ")[0] for line in found] == [f"docs/extra.md:{n}" for n in (1, 3, 4)]
    assert "the reference of benchmarking, caching, compression, profiling, quantization," in found[0]
    assert "the reference of benchmarking, compression, profiling, quantization," in found[1]
    assert found[2].startswith("docs/extra.md:4: uses solutions/caching, not in the release")
    (copy / "solutions").rename(tmp_path / "gone")  # without the handed-out one, no reference is there
    assert "uses the reference of every module, not in the release" in release.missing_references(copy)[0]


def test_the_markers_of_what_a_student_reads():
    text = (
        "a\n<!-- instructor-only -->\nsecret\n<!-- end instructor-only -->\n"
        "<!-- student-only\nfor students\n-->\n"
        "<!-- with-reference acceleration\nheld 16\n-->\n"
        "<!-- with-reference caching\nheld 19\n-->\nz\n"
    )
    assert release.student_text(text) == "a\nfor students\nz\n"
    assert release.student_text(text, ["acceleration"]) == "a\nfor students\nheld 16\nz\n"


def test_the_command_takes_the_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert release.main([str(tmp_path / "r"), "--no-git", "--hints", "nudges", "--reference", "16"]) == 0
    out = capsys.readouterr().out
    assert "nudges; no reference code found in them but the handed-out reference of acceleration" in out
    assert release.main([str(tmp_path / "s"), "--reference", "99"]) == 1
    assert "--reference: unknown module '99'" in capsys.readouterr().err
