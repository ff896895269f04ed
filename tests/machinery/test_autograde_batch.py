"""Grading a class (``python -m grading batch``, grading/batch.py): one grading per submission,
resumable after an interruption, and the gradebook that says what needs an instructor's look.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from autograde_support import graded_repo, grading_env, submission  # noqa: F401 - the fixtures
from conftest import ALPHA_BUGGY, ALPHA_SOLUTION

from grading import autograde

GRADER_PARENT = Path(autograde.__file__).resolve().parent.parent


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
