"""The kernel boundary (grading/boundary.py and the child's side, grading/sandbox.py's ``confine``).

Each test grades a submission of the fake repository of ``conftest.py`` for real, or starts a
confined child, and checks what the kernel refused. The cases that need a root grader skip with
the reason where the run is not root; CI runs as root, so there they all run.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ALPHA_SOLUTION, ALPHA_STUB, make_repo

from grading import autograde, boundary

FAST = autograde.Settings(timeout=4, module_timeout=60, collect_timeout=30, memory_mb=1024)
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not ROOT, reason="a user of its own for the student's code needs a root grader"
)
needs_landlock = pytest.mark.skipif(not boundary.landlock_abi(), reason="this kernel does not offer Landlock")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = make_repo(tmp_path / "repo")
    monkeypatch.setenv("TINYTORCH_ROOT", str(root))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(root / "modules.toml"))
    monkeypatch.delenv("TINYTORCH_IMPL", raising=False)
    return root


def submission(tmp_path: Path, repo: Path, alpha: str) -> Path:
    root = tmp_path / "student"
    shutil.copytree(repo / "katas", root / "katas")
    (root / "katas" / "alpha" / "core.py").write_text(alpha, encoding="utf-8")
    return root


# What a submission tries: each attempt's outcome is appended to the double's result, so the test
# reads it back from the failure message (double returns a string, never 2 * x).
PROBE = """
import os

def _attempt(what, action):
    try:
        action()
        return what + "=allowed"
    except Exception as error:
        return what + "=" + type(error).__name__

def _write(path):
    with open(path, "w") as f:
        f.write("x")

def _read(path):
    with open(path) as f:
        f.read(1)

def double(x, factor=2):
    import socket
    results = [
        _attempt("read_reference", lambda: _read({reference!r})),
        _attempt("read_git", lambda: _read({git!r})),
        _attempt("write_checkout", lambda: _write({checkout_file!r})),
        _attempt("read_other_stage", lambda: _read({other!r})),
        _attempt("read_class", lambda: _read({classmate!r})),
        _attempt("write_tmp", lambda: _write("/tmp/tinytorch-probe-" + str(os.getpid()))),
        _attempt("tcp", lambda: socket.create_connection(("127.0.0.1", 9), timeout=1)),
        _attempt("uid", lambda: (_ for _ in ()).throw(RuntimeError(str(os.getuid())))),
    ]
    raise AssertionError("PROBE " + " ".join(results))
"""


def probe(repo: Path, tmp_path: Path, settings: autograde.Settings) -> tuple[dict, dict]:
    (repo / ".git").mkdir(exist_ok=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    # another grading's stage, laid out as the grader lays one out (root's, its own group's only)
    other = autograde.work_parent() / f"grade-other-{os.getpid()}"
    (other / "katas" / "alpha").mkdir(parents=True, exist_ok=True)
    (other / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION)
    if ROOT:
        os.chown(other, 0, boundary.FIRST_UID + boundary.POOL + 9)
        os.chmod(other, 0o750)
    # the class folder of a batch: every student's submission (denied to each student's process)
    classmate = tmp_path / "class" / "bob" / "katas" / "alpha" / "core.py"
    classmate.parent.mkdir(parents=True)
    classmate.write_text(ALPHA_SOLUTION)
    code = ALPHA_STUB + PROBE.format(
        reference=str(repo / "solutions" / "alpha" / "core.py"),
        git=str(repo / ".git" / "HEAD"),
        checkout_file=str(repo / "tests" / "planted.py"),
        other=str(other / "katas" / "alpha" / "core.py"),
        classmate=str(classmate),
    )
    try:
        grade = autograde.grade(
            submission(tmp_path, repo, code),
            settings=settings,
            only=["alpha"],
            deny=[str(tmp_path / "class")],
        )
    finally:
        shutil.rmtree(other, ignore_errors=True)
    message = grade.modules[0].tests[0].message
    line = message.rsplit("PROBE ", 1)[1].split("\n", 1)[0].strip("'\"")
    return dict(item.split("=", 1) for item in line.split()), grade.boundary


@needs_landlock
def test_landlock_keeps_the_checkout_the_network_and_shared_folders_out_of_reach(repo, tmp_path):
    seen, fence = probe(repo, tmp_path, replace(FAST, sandbox_user="none"))
    assert fence["kind"] == "landlock" and "a user of its own" in " ".join(fence["missing"])
    assert seen["read_other_stage"] == "PermissionError"
    assert seen["read_class"] == "PermissionError"
    assert seen["read_reference"] == "PermissionError"
    assert seen["read_git"] == "PermissionError"
    assert seen["write_checkout"] == "PermissionError"
    assert seen["write_tmp"] == "PermissionError"
    assert seen["tcp"] == "PermissionError"
    assert not (repo / "tests" / "planted.py").exists()


@needs_root
def test_as_root_the_student_runs_as_a_user_of_its_own(repo, tmp_path):
    seen, fence = probe(repo, tmp_path, FAST)
    assert fence["kind"].startswith("user")
    assert seen["uid"] == "RuntimeError"  # raised with the uid as its message
    assert fence["uid"] >= boundary.FIRST_UID
    assert seen["read_other_stage"] == "PermissionError"
    assert seen["read_class"] == "PermissionError"
    assert seen["read_reference"] == "PermissionError"
    assert seen["write_checkout"] == "PermissionError"


@needs_root
def test_without_landlock_the_user_and_locked_folders_still_hide_the_reference(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_LANDLOCK", "0")
    seen, fence = probe(repo, tmp_path, FAST)
    assert fence["kind"].startswith("user") and "landlock" not in fence["kind"]
    assert any("Landlock" in m for m in fence["missing"])
    assert seen["read_other_stage"] == "PermissionError"
    assert seen["read_class"] == "PermissionError"
    assert seen["read_reference"] == "PermissionError"
    assert seen["read_git"] == "PermissionError"
    assert seen["write_checkout"] == "PermissionError"
    assert stat.S_IMODE((repo / "solutions").stat().st_mode) & 0o077 == 0
    assert any("chmod go-rwx" in note for note in fence["notes"])


@needs_root
def test_the_boundary_holds_for_plain_subprocesses_too(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_FORKSERVER", "0")
    seen, fence = probe(repo, tmp_path, FAST)
    assert fence["kind"].startswith("user")
    assert seen["read_reference"] == "PermissionError"
    assert seen["write_checkout"] == "PermissionError"


def test_a_grader_that_is_not_root_says_which_boundary_applied(repo, tmp_path):
    grade = autograde.grade(repo / "solutions", settings=replace(FAST, sandbox_user="none"), only=["alpha"])
    assert grade.score == 10
    results = grade.to_gradescope()
    assert "not enforced: a user of its own" in results["output"]
    assert results["extra_data"]["boundary"]["kind"] in ("landlock", "none")


@needs_root
def test_as_a_user_that_is_not_root_the_grader_grades_behind_landlock_alone(tmp_path):
    """The whole grader run by an unprivileged user, as on a laptop or a CI runner without root."""
    uid = boundary.FIRST_UID + boundary.POOL + 7  # outside the sandbox pool
    home = Path(tempfile_dir()) / f"tinytorch-nonroot-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o755)
    try:
        repo = make_repo(home / "repo")
        for path in [home, *home.rglob("*")]:
            os.chown(path, uid, uid)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(home),
            "TINYTORCH_ROOT": str(repo),
            "TINYTORCH_REGISTRY": str(repo / "modules.toml"),
            "PYTHONPATH": str(Path(autograde.__file__).resolve().parent.parent),
        }
        out = home / "results.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "grading",
                "grade",
                str(repo / "solutions"),
                "--out",
                str(out),
                "--quiet",
                "--module",
                "alpha",
                "--timeout",
                "4",
            ],
            user=uid,
            group=uid,
            extra_groups=[],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        results = json.loads(out.read_text())
        assert results["score"] == 10
        fence = results["extra_data"]["boundary"]
        assert fence["uid"] is None and "the grader is not root" in " ".join(fence["missing"])
        assert fence["kind"] == ("landlock" if boundary.landlock_abi() else "none")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


@needs_root
def test_processes_are_bounded_for_the_whole_submission(repo, tmp_path):
    bomb = (
        ALPHA_SOLUTION
        + '''

def _bomb():
    import os
    code = """
import os
children = 0
for _ in range(100000):
    try:
        if os.fork() == 0:
            import time
            time.sleep(30)
            os._exit(0)
        children += 1
    except OSError:
        break
"""
    exec(compile(code, "<frozen importlib._bootstrap>", "exec"))

_bomb()
'''
    )
    grade = autograde.grade(
        submission(tmp_path, repo, bomb), settings=replace(FAST, max_processes=40), only=["alpha"]
    )
    alpha = grade.modules[0]
    assert alpha.survivors > 0  # the forked processes were found and killed
    assert boundary.user_processes(grade.boundary["uid"]) == []
    assert alpha.score > 0  # the honest double still earns once the fork bomb stops at its limit


def test_kill_user_and_remove_owned_clean_up_after_a_uid(tmp_path):
    if not ROOT:
        pytest.skip("switching to another uid needs root")
    uid = boundary.FIRST_UID + boundary.POOL + 8
    sleeper = subprocess.Popen(["sleep", "30"], user=uid, group=uid, extra_groups=[], start_new_session=True)
    left = Path(tempfile_dir()) / f"tinytorch-left-{os.getpid()}"
    left.write_text("x")
    os.chown(left, uid, uid)
    assert boundary.user_processes(uid) == [sleeper.pid]
    assert boundary.kill_user(uid) == 1
    sleeper.wait(timeout=5)
    assert boundary.user_processes(uid) == []
    boundary.remove_owned(uid, (tempfile_dir(),))
    assert not left.exists()
