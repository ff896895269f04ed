"""Grade a whole class: ``python -m grading batch <folder> [--jobs N] [--out DIR]``.

Every entry of ``<folder>`` is one student's submission: a folder (a repository or a ``katas/``
tree) or a ``.zip`` of either; the student's id is the entry's name (without ``.zip``). Entries
whose name starts with ``.`` or ``_`` are ignored.

Each submission is graded by its own ``python -m grading grade`` process (at most ``--jobs`` at
a time), which writes ``<out>/<student>/results.json`` atomically when it is done. A finished
student is never graded again: a rerun after an interruption (Ctrl-C, a reboot) grades only the
students without a finished results file, or whose submission changed since (its fingerprint, a
hash of its files' names and contents, is kept in ``<out>/<student>/fingerprint``).
``--force`` regrades everyone.

At the end (also after a partial run) it writes ``<out>/gradebook.csv`` (one row per student:
status, total, one column per module, the failing tests) and ``<out>/summary.json`` (the same,
per module per student, with the failing test ids, plus class averages).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from grading import review
from tinytorch.course import registry

PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def submissions(folder: Path) -> dict[str, Path]:
    """Student id -> submission path, sorted by id."""
    found = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            found[entry.name] = entry
        elif entry.is_file() and entry.suffix.lower() == ".zip":
            found[entry.stem] = entry
    return found


def fingerprint(path: Path) -> str:
    """A hash of a submission's content: its files' relative names and bytes (a zip: its name and bytes)."""
    digest = hashlib.sha256()
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    )
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        try:
            digest.update(file.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


def finished(out: Path, print_: str) -> bool:
    """True when ``out/results.json`` is a complete result for the submission with this fingerprint."""
    results, stamp = out / "results.json", out / "fingerprint"
    if not results.is_file() or not stamp.is_file() or stamp.read_text().strip() != print_:
        return False
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return data.get("extra_data", {}).get("status") != "grader-error"


def grade_one(
    student: str, path: Path, out: Path, options: list[str], deny: list[str]
) -> tuple[str, float, str]:
    """Grade one submission in its own process; returns (student, seconds, problem or "")."""
    out.mkdir(parents=True, exist_ok=True)
    print_ = fingerprint(path)
    command = [
        sys.executable,
        "-m",
        "grading",
        "grade",
        str(path),
        "--out",
        str(out / "results.json"),
        "--quiet",
    ]
    command += options + ["--plan", str(out.parent / "_plan.json")]
    for d in deny:
        command += ["--deny", d]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT), *filter(None, [env.get("PYTHONPATH")])])
    began = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    (out / "grader.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    problem = "" if proc.returncode == 0 else f"grader exited with {proc.returncode}"
    if proc.returncode == 0:
        (out / "fingerprint").write_text(print_ + "\n", encoding="utf-8")
    return student, time.monotonic() - began, problem


def flags(modules: dict) -> str:
    """Why a student's results need a human look: tampering, an answer key that contradicts the
    tests, skipped tests, processes that outlived their module (one ``module: reason`` per module)."""
    found = []
    for name, data in modules.items():
        why = []
        if data.get("tampered"):
            why.append(f"tampering ({data['tampered'][:80]})")
        if data.get("inconsistent"):
            why.append(f"inconsistent ({len(data['inconsistent'])} test(s) contradicted by the answer key)")
        if any(str(n).startswith("skipped:") for n in data.get("notes", [])):
            why.append("skipped tests")
        if data.get("survivors"):
            why.append(f"{data['survivors']} process(es) outlived the module")
        if why:
            found.append(f"{name}: " + ", ".join(why))
    return "; ".join(found)


def gradebook(folder: Path, out: Path) -> dict:
    """Write ``gradebook.csv`` and ``summary.json`` from every finished results file."""
    modules = [m for m in registry.modules() if m.ready]
    students = {}
    for student in submissions(folder):
        results = out / student / "results.json"
        if not results.is_file():
            students[student] = {"status": "not graded", "score": 0, "max_score": 0, "modules": {}}
            continue
        data = json.loads(results.read_text(encoding="utf-8"))
        extra = data.get("extra_data", {})
        students[student] = {
            "status": extra.get("status", "graded"),
            "score": data.get("score", 0),
            "max_score": extra.get("max_score", 0),
            "notes": extra.get("notes", []),
            "modules": extra.get("modules", {}),
            "boundary": extra.get("boundary", {}).get("kind", ""),
        }
    columns = [f"{m.number} {m.name}" for m in modules]
    with open(out / "gradebook.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "student",
                "status",
                "score",
                "max_score",
                *columns,
                "boundary",
                "flagged",
                "review",
                "failing tests",
            ]
        )
        for student, row in students.items():
            per_module = [row["modules"].get(m.name, {}).get("score", 0) for m in modules]
            failing = [t for m in modules for t in row["modules"].get(m.name, {}).get("failing", [])]
            row["flagged"] = flags(row["modules"])
            found = {
                name: [review.Finding(**f) for f in data.get("review", [])]
                for name, data in row["modules"].items()
            }
            row["review"] = review.summarize_modules(found)
            writer.writerow(
                [
                    student,
                    row["status"],
                    row["score"],
                    row["max_score"],
                    *per_module,
                    row.get("boundary", ""),
                    row["flagged"],
                    row["review"],
                    " ".join(failing),
                ]
            )
    graded = [r for r in students.values() if r["status"] not in ("not graded",)]
    averages = {
        m.name: round(sum(r["modules"].get(m.name, {}).get("score", 0) for r in graded) / len(graded), 4)
        if graded
        else 0
        for m in modules
    }
    summary = {
        "modules": [{"number": m.number, "name": m.name, "points": m.points} for m in modules],
        "students": students,
        "averages": averages,
        "graded": len(graded),
        "total": len(students),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grading batch",
        description="Grade every submission in a folder (folders or .zip files) in parallel; resumable.",
    )
    parser.add_argument("folder", help="one entry per student: a folder or a .zip")
    parser.add_argument(
        "--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="submissions graded at once"
    )
    parser.add_argument("--out", help="output folder (default: <folder>-grades next to the folder)")
    parser.add_argument("--strict", action="store_true", help="grade every module from the student's code")
    parser.add_argument("--timeout", type=float, help="seconds per test")
    parser.add_argument("--memory-mb", type=int, help="memory limit of a test process in MB")
    parser.add_argument(
        "--no-leaderboard",
        action="store_true",
        help="do not run module 20's competition for each student (Gradescope's leaderboard field)",
    )
    parser.add_argument("--force", action="store_true", help="regrade students that are already graded")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folder = Path(args.folder).resolve()
    if not folder.is_dir():
        print(f"python -m grading batch: no folder {folder}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("python -m grading batch: --jobs must be at least 1", file=sys.stderr)
        return 2
    out = Path(args.out).resolve() if args.out else folder.with_name(folder.name + "-grades")
    out.mkdir(parents=True, exist_ok=True)
    options = (["--strict"] if args.strict else []) + (
        ["--timeout", str(args.timeout)] if args.timeout else []
    )
    options += ["--memory-mb", str(args.memory_mb)] if args.memory_mb else []
    options += ["--no-leaderboard"] if args.no_leaderboard else []
    found = submissions(folder)
    todo = {s: p for s, p in found.items() if args.force or not finished(out / s, fingerprint(p))}
    print(
        f"{len(found)} submission(s), {len(found) - len(todo)} already graded, "
        f"{len(todo)} to grade ({args.jobs} at a time)"
    )
    began = time.monotonic()
    problems = []
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    try:
        futures = [
            pool.submit(grade_one, s, p, out / s, options, [str(folder), str(out)]) for s, p in todo.items()
        ]
        for future in as_completed(futures):
            student, seconds, problem = future.result()
            print(f"  {student}: {'done' if not problem else problem} ({seconds:.1f} s)", flush=True)
            if problem:
                problems.append(student)
    except KeyboardInterrupt:
        # Ctrl-C: the graders in flight got it too (one process group); start no new one, so a
        # rerun resumes where this one stopped (a `with` block would grade every queued student)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        summary = gradebook(folder, out)
    print(
        f"graded {summary['graded']}/{summary['total']} in {time.monotonic() - began:.1f} s; "
        f"gradebook: {out / 'gradebook.csv'}"
    )
    return 1 if problems else 0
