"""The autograder: ``python -m grading grade <submission> [--out results.json]``.

Grades one student's work (a repository, a ``katas/`` tree, or a zip of either) with the
grader's own copy of the tests and writes a Gradescope ``results.json`` plus a per-module summary.

How a submission is graded
--------------------------
* **The list of tests is the grader's.** It is collected once from the reference (the grader's
  tests on ``solutions/``); a test the student's run never reports (a crash, a hang, a collection
  error) is a failed test, never a missing one.
* **Points come from the registry** (``tinytorch/course/modules.toml``): each ready module's ``points``
  are split over its tests in proportion to their weights. Every test weighs 1 unless the
  registry's ``[grading.weights]`` table gives a weight to a substring of its id (the first
  matching pattern wins), so by default a module's points are split evenly over its tests. A test
  earns its whole share or nothing. Planned modules are not graded and count for nothing.
* **Isolation** (the default): each module is graded in its own process on top of the reference
  implementation of every other module, so an unfinished module 15 does not zero module 20. The
  process serves the graded module from a staged copy of the student's folder and the others from
  a staged copy of the reference, through the switch (``TINYTORCH_IMPL=/stage/ref,<m>=/stage/katas/<m>``).
  **Strict mode** (``--strict``) serves every module from the student's code
  (``TINYTORCH_IMPL=/stage/katas``): module 20 then depends on the student's 15 to 19.
* **The student's code runs only in child processes** started by ``grading/sandbox.py`` (read it
  for what the sandbox refuses and for its honest limits), one per module, with a memory limit
  (``RLIMIT_AS``), a per-test timeout, a time budget per module and one for the whole submission
  enforced from this process, which kills the child's whole process group. When a child exits,
  crashes or hangs, the test it was running fails with the reason and the rest of the module's
  tests run again in a new child.
* **The results come from this process**: it reads test outcomes from a pipe (each line carries a
  per-run secret), scores them against its own list and writes ``results.json`` itself, always,
  even when every child crashed. A detected attempt to patch pytest, numpy, the tests or the grader
  from the student's code zeroes the module in which it happened, with a message saying so.
* **The class leaderboard** (``[grading] leaderboard``): once module 20 earns all its points, its
  competition runs in one more sandboxed child and its figures, validated here as untrusted
  input, become Gradescope's ``leaderboard`` array; display only, after the grade is computed
  (``grading/competition.py``).
* Only regular files are taken from a submission: symlinks, native extensions and files that
  would configure pytest or Python (``conftest.py``, ``sitecustomize.py``, ``*.pth``, ...) are
  dropped and listed in the output. Zips are unpacked with limits on size and file count.

``grade()`` is the API (``batch`` and the Gradescope ``run_autograder`` call it through the CLI).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path

from grading import answerkey, competition, parse_source, review
from grading import boundary as boundary_
from grading.release import absolute_imports
from tinytorch.course import forkserver, registry

SANDBOX = Path(__file__).with_name("sandbox.py")
# Gradescope visibility of the tests in a module's instructor-only files (the registry's `hidden`)
HIDDEN_VISIBILITY = "after_published"


def test_files(module: registry.Module) -> list[str]:
    """The test files the grader runs for a module: its suite, its instructor-only files, its answer
    key (staged under ``keys/``; see :func:`key_files`)."""
    key = [f"keys/{Path(module.key).name}"] if module.key else []
    return [module.tests, *module.hidden, *key]


# files of a submission that are never staged: they would configure pytest or Python itself
DROPPED_NAMES = {
    "conftest.py",
    "sitecustomize.py",
    "usercustomize.py",
    "pytest.ini",
    "pyproject.toml",
    "setup.cfg",
    "tox.ini",
    "setup.py",
}
DROPPED_PATTERNS = ("*.pth", "*.so", "*.pyd", "*.dylib", "*.dll", "*.pyc", "*.pyo", "*.egg-link")
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_TOTAL_BYTES = 50 * 1024 * 1024
MAX_FILES = 5000

# modules whose classes and functions the student's code must not patch (the audit hook's list)
TRUSTED_MODULES = ("_pytest", "pytest", "pluggy", "numpy", "hypothesis", "builtins", "tinytorch", "grading")

STATUS_OK = "graded"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """The registry's ``[grading]`` table, with command-line overrides."""

    timeout: float = 60.0  # seconds per test
    module_timeout: float = 300.0  # seconds for all of one module's tests (collection included)
    total_timeout: float = 1200.0  # seconds for the whole submission (every module)
    collect_timeout: float = 120.0  # seconds to import the module and collect its tests
    memory_mb: int = 4096  # RLIMIT_AS of a child process
    visibility: str = "visible"  # Gradescope visibility of every test
    weights: dict = field(default_factory=dict)  # {module: {substring of a test id: weight}}
    key_share: float = 0.2  # share of a module's points earned by its answer key (registry `key`)
    key_visibility: str = "after_published"  # Gradescope visibility of the answer-key checks
    released: list = field(default_factory=list)  # modules whose reference may serve under another
    sandbox_user: str = "auto"  # as root: the children's user ("auto", a name, a uid, or "none")
    landlock: bool = True  # confine the children with Landlock where the kernel offers it
    max_processes: int = 256  # RLIMIT_NPROC of the sandbox user
    inconsistency_gap: float = 0.5  # tests' pass share above the key's that withholds the tests' credit
    leaderboard: bool = True  # run module 20's competition for Gradescope's leaderboard (display only)
    leaderboard_timeout: float = 180.0  # seconds the competition may take (from the total budget)


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read ``[grading]`` from the registry file (the one ``tinytorch.course.registry`` reads)."""
    path = Path(path or os.environ.get("TINYTORCH_REGISTRY") or registry.REGISTRY_FILE)
    with open(path, "rb") as f:
        table = tomllib.load(f).get("grading", {})
    known = {f.name for f in fields(Settings)}
    unknown = set(table) - known
    if unknown:
        raise ValueError(f"{path}: unknown [grading] setting(s) {sorted(unknown)}; valid: {sorted(known)}")
    weights = table.get("weights", {})
    for module, patterns in weights.items():
        if module not in registry.names(path):
            raise ValueError(f"{path}: [grading.weights] names unknown module {module!r}")
        for pattern, weight in patterns.items():
            if not isinstance(weight, int | float) or weight <= 0:
                raise ValueError(f"{path}: weight of {module}.{pattern!r} must be a positive number")
    values = {k: v for k, v in table.items() if k != "weights"}
    if not 0 <= float(values.get("key_share", 0.2)) < 1:
        raise ValueError(f"{path}: key_share must be at least 0 and below 1")
    modules = {m.name: m for m in registry.modules(path)} | {str(m.number): m for m in registry.modules(path)}
    released = values.get("released", [])
    unknown = [str(r) for r in released if str(r) not in modules]
    if unknown:
        raise ValueError(f"{path}: released names unknown module(s) {unknown}")
    values["released"] = [modules[str(r)].name for r in released]
    values["sandbox_user"] = str(values.get("sandbox_user", "auto"))
    if not isinstance(values.get("leaderboard", True), bool):
        raise ValueError(f"{path}: leaderboard must be true or false")
    budget = values.get("leaderboard_timeout", 180.0)
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget <= 3600:
        raise ValueError(f"{path}: leaderboard_timeout must be a number of seconds in (0, 3600]")
    return Settings(weights=weights, **values)


def test_weight(settings: Settings, module: str, nodeid: str) -> Fraction:
    """A test's weight: the first ``[grading.weights.<module>]`` pattern in its id, else 1."""
    for pattern, weight in settings.weights.get(module, {}).items():
        if pattern in nodeid:
            return Fraction(weight).limit_denominator(10**6)
    return Fraction(1)


def is_key(nodeid: str) -> bool:
    """Whether a test id is a check of an answer key (staged under ``keys/``)."""
    return nodeid.startswith("keys/")


def decides(check: answerkey.Reference, nodeid: str, units: frozenset) -> bool:
    """Whether a failed answer-key check withholds the credit of a test: the test calls, on the
    reference, every kata function the check calls (so whatever the check found wrong is code the
    test runs), and the check ``covers`` the test (when it names any). A check that calls no kata
    function decides nothing. This keeps an honest partial solution's credit: a check that also
    exercises a function the test never calls does not take the test's points."""
    if not check.units or not check.units <= units:
        return False
    return not check.covers or covered(nodeid, check.covers)


def declared_covers(key_file: Path) -> dict[str, list[str]]:
    """Each check of an answer-key file with the patterns of its ``covers`` marker (read, not run)."""
    import ast

    found = {}
    for node in ast.walk(parse_source(Path(key_file).read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef):
            found[node.name] = [
                arg.value
                for dec in node.decorator_list
                if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "covers"
                for arg in dec.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ]
    return found


def covered(nodeid: str, patterns: list[str]) -> bool:
    """Whether an answer-key check that ``covers`` these patterns decides this test: a pattern is a
    test's function or class name (``test_round_trip``, ``TestDoubler``; parameters ignored), or a
    glob of one (``test_quantize_*``)."""
    parts = [part.split("[", 1)[0] for part in nodeid.split("::")[1:]]
    return any(fnmatch.fnmatchcase(part, pattern) for part in parts for pattern in patterns)


def shares(settings: Settings, module: registry.Module, nodeids: list[str]) -> dict[str, Fraction]:
    """Each test's share of the module's points: the answer key's checks share ``key_share`` of
    them evenly, the tests the rest in proportion to their weights."""
    keys = [n for n in nodeids if is_key(n)]
    tests = [n for n in nodeids if not is_key(n)]
    points = Fraction(module.points)
    key_points = (
        points * Fraction(settings.key_share).limit_denominator(1000) if keys and tests else Fraction(0)
    )
    weights = {n: test_weight(settings, module.name, n) for n in tests}
    total = sum(weights.values())
    result = {n: (points - key_points) * w / total for n, w in weights.items()} if total else {}
    result.update({n: (key_points if tests else points) / len(keys) for n in keys})
    return result


# --------------------------------------------------------------------------- results


@dataclass
class TestResult:
    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str  # passed, failed, skipped, timeout, crashed, not run
    message: str = ""
    max_score: Fraction = Fraction(0)
    score: Fraction = Fraction(0)

    @property
    def name(self) -> str:
        name = self.nodeid.split("::", 1)[1] if "::" in self.nodeid else self.nodeid
        return f"answer key: {name}" if is_key(self.nodeid) else name


@dataclass
class ModuleGrade:
    module: registry.Module
    tests: list[TestResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tampered: str = ""
    inconsistent: list[str] = field(default_factory=list)  # tests passed while a check covering them failed
    survivors: int = 0  # processes of the sandbox user killed after its children were done
    review: list = field(default_factory=list)  # grading.review findings in the student's folder

    @property
    def score(self) -> Fraction:
        return sum((t.score for t in self.tests), Fraction(0))

    @property
    def max_score(self) -> Fraction:
        return Fraction(self.module.points) if self.tests else Fraction(0)

    @property
    def passed(self) -> int:
        return sum(t.outcome == "passed" and t.score > 0 for t in self.tests)

    @property
    def failing(self) -> list[str]:
        return [t.nodeid for t in self.tests if t.score == 0]


@dataclass
class Grade:
    submission: str
    mode: str
    modules: list[ModuleGrade] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = STATUS_OK  # graded, missing, broken-zip, no-katas, too-large, grader-error
    execution_time: float = 0.0
    visibility: str = "visible"
    key_visibility: str = HIDDEN_VISIBILITY
    boundary: dict = field(default_factory=dict)  # grading.boundary.Boundary.to_json()
    seed: str = ""  # a digest of the secret seed the answer keys' inputs were drawn from
    # Gradescope's leaderboard (grading/competition.py): display only, never part of the score
    leaderboard: list = field(default_factory=list)
    leaderboard_note: str = ""  # why there is no leaderboard ("" when posted or not attempted)
    leaderboard_seconds: float = 0.0  # how long the competition's child ran (0: not run)

    @property
    def score(self) -> Fraction:
        return sum((m.score for m in self.modules), Fraction(0))

    @property
    def max_score(self) -> Fraction:
        return sum((m.max_score for m in self.modules), Fraction(0))

    def summary(self) -> str:
        """The per-module table for a terminal (also the results' top-level output)."""
        mode = (
            "isolation (each module on top of the released reference of the others, else the student's own)"
            if self.mode == "isolation"
            else "strict"
        )
        lines = [f"TinyTorch autograder: {self.submission}", f"mode: {mode}"]
        if self.boundary:
            lines.append(
                f"boundary: {self.boundary.get('kind', 'none')}"
                + "".join(f"; not enforced: {m}" for m in self.boundary.get("missing", []))
            )
        lines.append("")
        width = max([len(m.module.name) for m in self.modules] + [6])
        lines.append(f"  {'#':>2}  {'module':<{width}}  {'tests':>7}  {'points':>15}")
        for m in self.modules:
            tests = f"{m.passed}/{len(m.tests)}"
            points = f"{_num(m.score)}/{_num(m.max_score)}"
            flag = "  TAMPERING" if m.tampered else "  INCONSISTENT" if m.inconsistent else ""
            lines.append(f"  {m.module.number:>2}  {m.module.name:<{width}}  {tests:>7}  {points:>15}{flag}")
        lines.append(
            f"  {'':>2}  {'total':<{width}}  {'':>7}  {_num(self.score) + '/' + _num(self.max_score):>15}"
        )
        for m in self.modules:
            notes = ([f"tampering: {m.tampered}"] if m.tampered else []) + m.notes
            if m.inconsistent:
                notes.append(
                    f"inconsistent: {len(m.inconsistent)} test(s) reported passed while the answer key, "
                    "run on new inputs, says the code they test is wrong; they earn nothing"
                )
            if m.survivors:
                notes.append(
                    f"{m.survivors} process(es) of the submission were still running after it; killed"
                )
            failing = [t for t in m.tests if t.score == 0]
            if not notes and not failing:
                continue
            lines += ["", f"module {m.module.number} {m.module.name}:"]
            lines += [f"  ! {note}" for note in notes]
            groups: dict[str, list[TestResult]] = {}
            for t in failing:  # one line per distinct reason, e.g. the stub's NotImplementedError
                groups.setdefault(headline(t.message) or t.outcome, []).append(t)
            for reason, tests in list(groups.items())[:8]:
                first = tests[0]
                more = f" (and {len(tests) - 1} more)" if len(tests) > 1 else ""
                lines.append(f"  {first.outcome:<8} {first.name}{more}: {reason}")
            if len(groups) > 8:
                rest = sum(len(tests) for tests in list(groups.values())[8:])
                lines.append(f"  ... and {rest} more failing test(s)")
        if self.notes:
            lines += ["", *[f"! {note}" for note in self.notes]]
        if self.leaderboard or self.leaderboard_note:
            shown = competition.describe(self.leaderboard) if self.leaderboard else self.leaderboard_note
            lines += ["", f"leaderboard (display only, not part of the grade): {shown}"]
        return "\n".join(lines)

    def to_gradescope(self) -> dict:
        extra = {}
        if self.leaderboard or self.leaderboard_note:
            extra["leaderboard"] = {
                "posted": bool(self.leaderboard),
                "note": self.leaderboard_note,
                "seconds": round(self.leaderboard_seconds, 1),
            }
        tests = []
        for m in self.modules:
            for t in m.tests:
                output = t.message if t.outcome != "passed" else ""
                tests.append(
                    {
                        "name": f"{m.module.number} {m.module.name}: {t.name}",
                        "number": f"{m.module.number}",
                        "score": _round(t.score),
                        "max_score": _round(t.max_score),
                        "status": "passed" if t.score == t.max_score and t.outcome == "passed" else "failed",
                        "output": output,
                        "visibility": self.key_visibility
                        if is_key(t.nodeid)
                        else HIDDEN_VISIBILITY
                        if t.nodeid.split("::", 1)[0] in m.module.hidden
                        else self.visibility,
                    }
                )
        results = {
            "score": _round(self.score),
            "execution_time": round(self.execution_time),
            "output": self.summary(),
            "visibility": self.visibility,
            "stdout_visibility": "hidden",
            "tests": tests,
            "extra_data": {
                "status": self.status,
                "mode": self.mode,
                "max_score": _round(self.max_score),
                "notes": self.notes,
                "boundary": self.boundary,
                "seed_digest": self.seed,
                "modules": {
                    m.module.name: {
                        "number": m.module.number,
                        "score": _round(m.score),
                        "max_score": _round(m.max_score),
                        "passed": m.passed,
                        "total": len(m.tests),
                        "tampered": m.tampered,
                        "inconsistent": m.inconsistent,
                        "survivors": m.survivors,
                        "review": [f.as_dict() for f in m.review],
                        "notes": m.notes,
                        "failing": m.failing,
                    }
                    for m in self.modules
                },
                **extra,
            },
        }
        if self.leaderboard:
            results["leaderboard"] = [dict(entry) for entry in self.leaderboard]
        return results


_EXCEPTION_LINE = re.compile(r"^(E\s+)?[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b.*")


def headline(message: str, width: int = 160) -> str:
    """The line of a failure that names the exception (else its last line), for a one-line summary."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line) and not line.startswith(("Traceback", "During handling")):
            return line.removeprefix("E").strip()[:width]
    return lines[-1][:width] if lines else ""


def _round(value: Fraction) -> float | int:
    return value.numerator if value.denominator == 1 else round(float(value), 4)


def _num(value: Fraction) -> str:
    return f"{float(value):.2f}".rstrip("0").rstrip(".") if value.denominator != 1 else str(value.numerator)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it: never half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_results(grade: Grade, out: Path) -> None:
    """Write ``results.json`` atomically (a temporary file, then a rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(out, json.dumps(grade.to_gradescope(), indent=2) + "\n")


# --------------------------------------------------------------------------- the submission


class SubmissionError(Exception):
    """A submission that cannot be graded at all (a broken zip, no katas folder)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def unpack_zip(path: Path, dest: Path) -> Path:
    """Extract a zip safely: regular files only, no absolute or ``..`` paths, size limits."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_FILES:
                raise SubmissionError("broken-zip", f"{path.name}: more than {MAX_FILES} files")
            total = 0
            for info in members:
                name = info.filename.replace("\\", "/")
                parts = [p for p in name.split("/") if p not in ("", ".")]
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if info.is_dir() or is_link or not parts or ".." in parts:
                    continue
                if "__MACOSX" in parts:
                    continue
                total += info.file_size
                if info.file_size > MAX_FILE_BYTES or total > MAX_TOTAL_BYTES:
                    raise SubmissionError("broken-zip", f"{path.name}: too large unpacked ({info.filename})")
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,
    ) as e:
        raise SubmissionError("broken-zip", f"{path.name} is not a readable zip file: {e}") from None
    return dest


def find_katas(root: Path, modules: list[registry.Module], refused: list[str] | None = None) -> Path | None:
    """The folder holding one sub-folder per module: ``katas/`` of a repository, or the tree itself.

    Looks at the submission's root, its ``katas/`` and, one level down (a zip of a folder), the
    same; the first that holds at least one module folder wins. A folder that is a symbolic link,
    or resolves to a place outside the submission, is never taken (it is named in ``refused``).
    """
    folders = {Path(m.kata).name for m in modules}
    base = root.resolve()
    refused = [] if refused is None else refused

    def inside(path: Path) -> bool:
        if path.is_symlink() or not path.resolve().is_relative_to(base):
            shown = path.relative_to(root).as_posix() if path != root else "."
            if shown not in refused:
                refused.append(shown)
            return False
        return True

    def holds(path: Path) -> bool:  # is_dir() follows links, so a linked folder reaches inside()
        return (
            path.is_dir() and inside(path) and any((path / f).is_dir() and inside(path / f) for f in folders)
        )

    candidates = [root / "katas", root]
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name != "__MACOSX")
    for sub in subdirs:
        candidates += [sub / "katas", sub]
    return next((c for c in candidates if holds(c)), None)


def stage_tree(src: Path, dest: Path, dropped: list[str], label: str) -> None:
    """Copy a student's module folder: regular files only, never pytest or Python configuration.

    Nothing is followed: symbolic links (to a folder or a file, inside or outside the submission)
    are dropped, and every file is opened without following a link and checked to be regular."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        here = Path(dirpath)
        relative = here.relative_to(src)
        for d in list(dirnames):
            if (here / d).is_symlink() or d in ("__pycache__", ".hypothesis", ".pytest_cache"):
                if (here / d).is_symlink():
                    dropped.append(f"{label}/{(relative / d).as_posix()} (a symbolic link)")
                dirnames.remove(d)
        for name in sorted(filenames):
            path = here / name
            shown = f"{label}/{(relative / name).as_posix()}"
            if path.is_symlink() or not path.is_file():
                dropped.append(f"{shown} (a symbolic link or special file)")
                continue
            if name in DROPPED_NAMES or any(fnmatch.fnmatch(name, p) for p in DROPPED_PATTERNS):
                if not name.endswith((".pyc", ".pyo")):
                    dropped.append(f"{shown} (configures Python or pytest, or is native code)")
                continue
            if path.stat().st_size > MAX_FILE_BYTES:
                dropped.append(f"{shown} (larger than {MAX_FILE_BYTES // 1024 // 1024} MB)")
                continue
            count += 1
            if count > MAX_FILES:
                raise SubmissionError("too-large", f"{label}: more than {MAX_FILES} files")
            target = dest / relative / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                dropped.append(f"{shown} (a symbolic link or unreadable)")
                continue
            with os.fdopen(fd, "rb") as source:
                info = os.fstat(source.fileno())
                if not stat.S_ISREG(info.st_mode):
                    dropped.append(f"{shown} (not a regular file)")
                    continue
                if info.st_nlink > 1:  # another name for a file that may live outside the submission
                    dropped.append(f"{shown} (a hard link)")
                    continue
                copy = open(target, "wb")
                with copy:
                    shutil.copyfileobj(source, copy, MAX_FILE_BYTES)
    dest.mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------- staging the grader's side


def _copy_tests(root: Path, stage: Path, modules: list[registry.Module] = ()) -> None:
    """The grader's pristine tests (not its machinery or foundation suites), the modules' answer
    keys (``keys/``, with their fixture) and pytest's configuration."""
    # The stage is TINYTORCH_ROOT of every child, and a checkout has a katas/ folder: tools that ask
    # for the repository root (tinytorch submit's resolved_impl, which module 20's tests call) find
    # one even in the reference's runs, before the submission is staged into it.
    (stage / "katas").mkdir(exist_ok=True)
    keys = [root / m.key for m in modules if m.key and (root / m.key).is_file()]
    if keys:
        (stage / "keys").mkdir()
        shutil.copyfile(root / "grading" / "keys" / "conftest.py", stage / "keys" / "conftest.py")
        for key in keys:
            shutil.copyfile(key, stage / "keys" / key.name)
    tests = stage / "tests"
    src = root / "tests"
    skip = {"machinery", "foundation", "__pycache__", ".hypothesis", ".pytest_cache"}
    shutil.copytree(src, tests, ignore=lambda d, names: [n for n in names if n in skip and Path(d) == src])
    for name in ("pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini"):
        if (root / name).is_file():
            shutil.copyfile(root / name, stage / name)
    shutil.copyfile(os.environ.get("TINYTORCH_REGISTRY") or registry.REGISTRY_FILE, stage / "modules.toml")
    # helpers of the checkout the tests import by name (``benchmarks``): the grader's copies
    private = {"katas", "solutions", "tinytorch", "tests", "grading"}
    for name in _test_imports(stage, []):
        top = name.split(".")[0]
        if top in private or (stage / top).exists():
            continue
        if (root / top).is_dir():
            shutil.copytree(root / top, stage / top, ignore=shutil.ignore_patterns("__pycache__"))
        elif (root / f"{top}.py").is_file():
            shutil.copyfile(root / f"{top}.py", stage / f"{top}.py")


def _test_imports(stage: Path, files: list[str]) -> list[str]:
    """Absolute imports of the test files, conftest and helpers: pre-imported before student code."""
    names = set()
    for path in [stage / f for f in files] + list((stage / "tests").glob("*.py")):
        try:
            names |= absolute_imports(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            continue
    return sorted(n for n in names if not n.startswith("tinytorch.perf"))


@dataclass
class Context:
    """One grading run's staging folder and settings."""

    root: Path  # the grader's checkout
    stage: Path  # temporary: tests/, katas/ (student), modules.toml, runs/<m>/
    settings: Settings
    modules: list[registry.Module]  # the ready modules
    deny: list[str]
    python: str = sys.executable
    plan_file: Path | None = None  # a cache of the test plan shared by a batch
    boundary: boundary_.Boundary = field(default_factory=boundary_.Boundary)
    private: Path | None = None  # root-only: the reference's staged copies and key values
    seed: int = 0  # the answer keys' inputs are drawn from it
    references: dict = field(default_factory=dict)  # key check id -> answerkey.Reference
    units: dict = field(default_factory=dict)  # test id -> the kata functions it calls on the reference
    pending_references: Future | None = None  # reference_keys() running in the background
    plan_stamp: str = ""  # the digest the plan was cached under

    def reference(self, nodeid: str) -> answerkey.Reference | None:
        """The reference's values of an answer-key check (waiting for the reference run if needed)."""
        if self.pending_references is not None:
            self.references = self.pending_references.result()  # its error is the grader's, raised here
            self.pending_references = None
        return self.references.get(nodeid)


def _tinytorch_parent() -> str:
    import tinytorch

    return str(Path(tinytorch.__file__).resolve().parent.parent)


# The sandboxed children are forked from a server started like them (``python -I -B``, the fixed
# part of their environment) that imported the libraries every grading run imports before any
# student code (tinytorch/course/forkserver.py): about half a second less per module. The server never
# runs student code; each child still reads its own configuration, installs its own audit hook
# and loads the reference and the student's code itself (grading/sandbox.py).
SANDBOX_PRELOAD = ("ctypes", "numpy", "numpy.testing", "hypothesis", "pytest")
_SANDBOX_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "LANG": "C.UTF-8",
    "HYPOTHESIS_PROFILE": "ci",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
_sandbox_server = forkserver.ForkServer(SANDBOX_PRELOAD, isolated=True, env=_SANDBOX_ENV)


def _rlimits(memory_mb: int, cpu_seconds: float) -> dict[str, tuple[int, int]]:
    memory = memory_mb * 1024 * 1024
    cpu = int(cpu_seconds) + 5
    return {
        "RLIMIT_AS": (memory, memory),
        "RLIMIT_CORE": (0, 0),
        "RLIMIT_FSIZE": (256 * 1024 * 1024, 256 * 1024 * 1024),
        "RLIMIT_CPU": (cpu, cpu + 5),
    }


@dataclass
class ChildOutcome:
    results: dict[str, tuple[str, str]]  # nodeid -> (outcome, text)
    collected: list[str] | None = None
    collect_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    tamper: str = ""
    fatal: str = ""
    ended: str = ""  # exit, crash, test-timeout, collect-timeout, budget
    running: str | None = None  # the test that was running when the child stopped
    returncode: int | None = None
    stderr: str = ""
    boundary_error: str = ""
    survivors: int = 0  # processes of the sandbox user still alive when the child was done
    units: dict[str, list[str]] = field(default_factory=dict)  # traced runs: test id -> functions called


def run_child(
    ctx: Context,
    name: str,
    run_dir: Path,
    impl: str,
    test_files: list[str],
    preload: dict[str, str],
    student: list[str],
    deselect: list[str],
    budget: float,
    collect_only: bool = False,
    collect_timeout: float | None = None,
    trusted: bool = False,
    key_out: Path | None = None,
    trace: str = "",
    env_extra: dict[str, str] | None = None,
) -> ChildOutcome:
    """One sandboxed pytest process; its events read from a pipe, its time watched from here.

    ``trusted``: the process runs only the grader's code (collecting the plan, the reference's
    answer keys), so it stays outside the kernel boundary; every other child is confined by
    ``ctx.boundary`` and, once it is gone, every process of the sandbox user is killed."""
    scratch = run_dir / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "tmp").mkdir(parents=True)
    if not trusted:
        ctx.boundary.own(scratch)
        ctx.boundary.own(scratch / "tmp")
    nonce = secrets.token_hex(16)
    read_fd, write_fd = os.pipe()
    args = [str(ctx.stage / f) for f in test_files]
    args += ["-p", "no:cacheprovider", "-q", "--tb=native", "--rootdir", str(ctx.stage)]
    args += ["--basetemp", str(scratch / "basetemp"), "-W", "ignore::pytest.PytestUnraisableExceptionWarning"]
    if collect_only:
        args.append("--collect-only")
    for nodeid in deselect:
        args += ["--deselect", nodeid]
    trusted_modules = list(TRUSTED_MODULES) + [Path(f).stem for f in (ctx.stage / "tests").glob("*.py")]
    readable = [str(ctx.stage), *boundary_.python_paths(), *boundary_.SYSTEM_READ, str(SANDBOX.resolve())]
    config = {
        "fd": write_fd,
        "nonce": nonce,
        "module": name,
        "scratch": str(scratch),
        "syspath": [_tinytorch_parent()],
        "preload": preload,
        "args": args,
        "deny": [str(Path(p).resolve()) for p in ctx.deny] + [str(ctx.stage.parent)],
        "allow": [
            str(ctx.stage.resolve()),
            str(run_dir.resolve()),
            *{str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)},
            str(Path(_tinytorch_parent()) / "tinytorch"),
            str(SANDBOX.resolve()),
        ],
        "writable": [str(scratch.resolve()), "/dev/null", "/dev/shm"],  # /dev/shm: multiprocessing
        "student": [str(Path(s).resolve()) for s in student],
        "trusted": trusted_modules,
        "preimport": _test_imports(ctx.stage, test_files),
        "boundary": None
        if trusted
        else ctx.boundary.child_config(readable, [str(scratch), *boundary_.SYSTEM_WRITE]),
        "grader": os.getpid(),  # never to be signalled (the child's parent may be the fork server)
        "trace": trace if trusted else "",
    }
    config_path = run_dir / "sandbox.json"
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the secret: root's only
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(config))
    env = {
        **_SANDBOX_ENV,  # PATH, LANG, the ci profile, one BLAS thread: the sandbox server's too
        "HOME": str(scratch),
        "TMPDIR": str(scratch / "tmp"),
        "TINYTORCH_IMPL": impl,
        "TINYTORCH_ROOT": str(ctx.stage),
        "TINYTORCH_REGISTRY": str(ctx.stage / "modules.toml"),
    }
    if key_out is not None:
        env[answerkey.SEED_ENV] = str(ctx.seed)
        env[answerkey.OUT_ENV] = str(key_out)
    env.update(env_extra or {})
    out = ChildOutcome(results={})
    stderr_path = run_dir / "stderr.txt"
    started = time.monotonic()
    with open(stderr_path, "wb") as stderr:
        proc = _sandbox_server.start(
            [ctx.python, "-I", "-B", str(SANDBOX), str(config_path)],
            env=env,
            cwd=scratch,
            output=stderr.fileno(),
            pass_fds=(write_fd,),
            new_session=True,
            limits=_rlimits(ctx.settings.memory_mb, budget),
        )
    os.close(write_fd)
    buffer = b""
    test_started = started
    selector = selectors.DefaultSelector()
    selector.register(read_fd, selectors.EVENT_READ)
    try:
        while True:
            now = time.monotonic()
            if out.collected is None:
                deadline = started + (collect_timeout or ctx.settings.collect_timeout)
                why = "collect-timeout"
            elif out.running is not None:
                deadline = test_started + ctx.settings.timeout
                why = "test-timeout"
            else:
                deadline = started + budget
                why = "budget"
            if started + budget < deadline:
                deadline, why = started + budget, "budget"
            if now >= deadline:
                out.ended = why
                break
            if not selector.select(timeout=min(deadline - now, 1.0)):
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                out.ended = "exit" if out.ended == "exit" else "crash"
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                event = _parse_event(line, nonce, out)
                if event is None:
                    continue
                kind = event.get("ev")
                if kind == "start":
                    out.running = str(event.get("nodeid"))
                    test_started = time.monotonic()
                elif kind == "result":
                    out.results[str(event.get("nodeid"))] = (
                        str(event.get("outcome")),
                        str(event.get("text", "")),
                    )
                    out.running = None
                elif kind == "collected":
                    out.collected = [str(i) for i in event.get("ids", [])]
                elif kind == "collect_error":
                    out.collect_errors.append(str(event.get("text", "")))
                elif kind == "tamper":
                    out.tamper = out.tamper or str(event.get("text", ""))
                elif kind == "refused":
                    out.refused.append(str(event.get("text", "")))
                elif kind == "note":
                    out.notes.append(str(event.get("text", "")))
                elif kind == "fatal":
                    out.fatal = str(event.get("text", ""))
                elif kind == "boundary":
                    out.boundary_error = str(event.get("text", ""))
                elif kind == "units" and trace:
                    out.units[str(event.get("nodeid"))] = [str(u) for u in event.get("units", [])]
                elif kind == "exit":
                    out.ended = "exit"
            if out.ended == "exit":  # done; a leftover process holding the pipe is killed below
                break
    finally:
        selector.close()
        os.close(read_fd)
        _kill_group(proc)
        if not trusted:
            out.survivors = ctx.boundary.sweep()  # every process of the sandbox user, escaped or not
        out.returncode = proc.returncode
        out.stderr = _tail(stderr_path)
    if out.boundary_error:
        raise RuntimeError(
            f"the kernel boundary could not be set up ({out.boundary_error}); no student "
            'code was run. Run the grader with [grading] sandbox_user = "none" to grade '
            "without it."
        )
    return out


def _parse_event(line: bytes, nonce: str, out: ChildOutcome) -> dict | None:
    try:
        event = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        event = None
    if not isinstance(event, dict) or event.get("n") != nonce:
        out.tamper = (
            out.tamper or "a line on the grader's result channel did not come from the grader's plugin"
        )
        return None
    return event


def _kill_group(proc: subprocess.Popen | forkserver.Child) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
        pass


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


def _describe_exit(out: ChildOutcome) -> str:
    code = out.returncode
    if out.fatal:
        return f"the test process stopped: {out.fatal}"
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        if name == "SIGXCPU":
            return "the test process used up its CPU time limit"
        return f"the test process was killed by {name} (a crash, or the memory limit)"
    return f"the test process exited with code {code} (sys.exit, os._exit or a crash)"


# --------------------------------------------------------------------------- the test plan


_PLANS: dict[str, dict] = {}
CACHE_DIR = Path(".grading-cache")  # under the checkout, its owner's only: `python -m grading prepare`
PLAN_CACHE = CACHE_DIR / "plan.json"
KEY_TRACE_SEEDS = (1, 2, 3)  # the answer keys' calls are traced at these seeds too (and the plan's own)
# changes whenever what the plan records changes
PLAN_VERSION = b"plan 4: function units; keys traced at several seeds\n"


def _plan_stamp(ctx: Context) -> str:
    """A digest of everything the plan depends on: the registry, the staged tests and keys, the
    reference of every module (content, not times, so a fresh clone of the same commit matches)."""
    digest = hashlib.sha256(PLAN_VERSION + (ctx.stage / "modules.toml").read_bytes())
    files = [p for folder in ("tests", "keys") for p in sorted((ctx.stage / folder).rglob("*.py"))]
    files += [p for m in ctx.modules for p in sorted((ctx.root / m.solution).rglob("*.py"))]
    for path in files:
        digest.update(
            str(path.relative_to(ctx.stage if path.is_relative_to(ctx.stage) else ctx.root)).encode()
        )
        digest.update(path.read_bytes())
    return digest.hexdigest()


def collect_plan(ctx: Context) -> dict[str, list[str]]:
    """The grader's list of tests per module and, for each test, the kata functions it calls on the
    reference (``ctx.units``): one run of every test and answer key on the reference, traced, in a
    process of the grader's own. It must pass whole. Cached by content: in memory, in a batch's
    plan file, and in the checkout's ``.grading-cache/`` (``python -m grading prepare`` fills it
    ahead, as Gradescope's ``setup.sh`` does), so a submission seldom pays for it."""
    stamp = ctx.plan_stamp = _plan_stamp(ctx)
    caches = [c for c in (ctx.plan_file, ctx.root / PLAN_CACHE) if c]
    saved = _PLANS.get(stamp)
    for cache in caches if saved is None else []:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(cache.read_text(encoding="utf-8"))
            if data.get("key") == stamp:
                saved = data
                break
    if saved is None:
        saved = {"key": stamp, **_run_plan(ctx)}
        for cache in caches:  # shared by the graders of a batch and later gradings: written atomically
            with contextlib.suppress(OSError):
                if cache.parent.name == CACHE_DIR.name:
                    _private_dir(cache.parent)
                cache.parent.mkdir(parents=True, exist_ok=True)
                _write_atomically(cache, json.dumps(saved))
    _PLANS[stamp] = saved
    ctx.units = {n: frozenset(u) for n, u in saved["units"].items()}
    return saved["plan"]


def _run_plan(ctx: Context) -> dict:
    files = [f for m in ctx.modules for f in test_files(m) if (ctx.stage / f).is_file()]
    # the grader's own code: a generous bound, whatever the students' limits are
    budget = max(ctx.settings.total_timeout, 900.0)
    with _reference_copy(ctx, "plan") as (run_dir, ref):
        out = run_child(
            ctx,
            "",
            run_dir,
            str(ref),
            files,
            {},
            [],
            [],
            budget,
            collect_timeout=budget,
            trusted=True,
            key_out=run_dir / "scratch" / "values",
            trace=str(ref) + "/",
        )
    if out.collected is None or out.collect_errors:
        raise RuntimeError(
            "the grader's tests do not collect on the reference solutions:\n"
            + "\n".join(out.collect_errors + [out.fatal, out.stderr])
        )
    failing = [f"{n}: {o}\n{t}" for n, (o, t) in out.results.items() if o != "passed"]
    missing = [n for n in out.collected if n not in out.results]
    if failing or missing:
        raise RuntimeError(
            "the grader's tests do not pass on the reference solutions:\n"
            + "\n".join(failing[:5] + [f"{n}: did not run ({out.ended})" for n in missing[:5]])
        )
    plan = {m.name: [i for i in out.collected if i.split("::", 1)[0] in test_files(m)] for m in ctx.modules}
    units = {n: set(out.units.get(n, [])) for n in out.collected}
    # A check draws its inputs from the grading seed, so what it calls may vary with it: its units
    # are the union over a few seeds (more units decide fewer tests: the safe side).
    keys = [f for m in ctx.modules for f in key_files(ctx, m)]
    seed = ctx.seed
    try:
        for ctx.seed in KEY_TRACE_SEEDS if keys else ():
            with _reference_copy(ctx, "keys") as (run_dir, ref):
                again = run_child(
                    ctx,
                    "",
                    run_dir,
                    str(ref),
                    keys,
                    {},
                    [],
                    [],
                    budget,
                    trusted=True,
                    key_out=run_dir / "scratch" / "values",
                    trace=str(ref) + "/",
                )
            for nodeid, called in again.units.items():
                units.setdefault(nodeid, set()).update(called)
    finally:
        ctx.seed = seed
    return {"plan": plan, "units": {n: sorted(u) for n, u in units.items()}}


@contextlib.contextmanager
def _reference_copy(ctx: Context, name: str):
    """A copy of every module's reference in a folder only root can enter, removed afterwards: the
    grader's own runs (the plan, the answer keys) never leave the reference in a student's reach."""
    private = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=ctx.private))
    try:
        for m in ctx.modules:
            shutil.copytree(
                ctx.root / m.solution, private / "ref" / m.name, ignore=shutil.ignore_patterns("__pycache__")
            )
        yield private, private / "ref"
    finally:
        shutil.rmtree(private, ignore_errors=True)


def key_files(ctx: Context, module: registry.Module) -> list[str]:
    """The module's answer key as staged (``keys/<file>``), if the registry names one."""
    if not module.key or ctx.settings.key_share <= 0:
        return []
    staged = f"keys/{Path(module.key).name}"
    return [staged] if (ctx.stage / staged).is_file() else []


def reference_keys(ctx: Context, plan: dict[str, list[str]]) -> dict[str, answerkey.Reference]:
    """Run every module's answer key on the reference, in a process that runs no student code; the
    values of each check (by its test id), with its tolerance and the tests it covers."""
    files = [f for m in ctx.modules for f in key_files(ctx, m)]
    if not files:
        return {}
    budget = max(ctx.settings.module_timeout, 300.0)
    key_ids = [n for m in ctx.modules for n in plan[m.name] if is_key(n)]
    # The reference's values depend only on the plan and the seed: kept in the private cache, so
    # only the first grading with a seed (or `prepare`) pays for them.
    stamp = hashlib.sha256(f"{ctx.plan_stamp} {ctx.seed}".encode()).hexdigest()[:24]
    cached = ctx.root / CACHE_DIR / f"reference-{stamp}"
    if not all(answerkey.values_file(cached, n).is_file() for n in key_ids):
        with _reference_copy(ctx, "keys") as (run_dir, ref):
            out_dir = run_dir / "scratch" / "values"  # the only folder a sandbox child may write
            out = run_child(
                ctx, "", run_dir, str(ref), files, {}, [], [], budget, trusted=True, key_out=out_dir
            )
            for nodeid in key_ids:
                outcome, text = out.results.get(nodeid, ("not run", out.fatal or out.stderr))
                if outcome != "passed":
                    raise RuntimeError(f"the answer key {nodeid} fails on the reference: {outcome}\n{text}")
            with contextlib.suppress(OSError):  # a checkout that is not writable: values kept in memory
                _private_dir(ctx.root / CACHE_DIR)
                tmp = Path(tempfile.mkdtemp(prefix=".reference-", dir=ctx.root / CACHE_DIR))
                for nodeid in key_ids:
                    shutil.copyfile(
                        answerkey.values_file(out_dir, nodeid), answerkey.values_file(tmp, nodeid)
                    )
                os.replace(tmp, cached)
            if not cached.is_dir():
                cached = out_dir
            references = _load_references(ctx, key_ids, cached)
        return references
    return _load_references(ctx, key_ids, cached)


def _load_references(ctx: Context, key_ids: list[str], folder: Path) -> dict[str, answerkey.Reference]:
    references = {}
    for nodeid in key_ids:
        reference = answerkey.load_reference(answerkey.values_file(folder, nodeid))
        reference.units = ctx.units.get(nodeid, frozenset())  # traced when the plan was made
        references[nodeid] = reference
    return references


def _private_dir(path: Path) -> Path:
    """``path`` made (if needed) and kept for its owner alone: the plan, the seed, the reference's values."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def grading_seed(root: Path) -> int:
    """The seed the answer keys draw their inputs from: an instructor secret, never in a release.
    ``TINYTORCH_GRADING_SEED``, else ``.grading-cache/seed`` of the checkout (drawn at random the
    first time, by ``prepare`` on Gradescope: one seed per autograder image)."""
    if os.environ.get("TINYTORCH_GRADING_SEED"):
        return int(os.environ["TINYTORCH_GRADING_SEED"])
    path = root / CACHE_DIR / "seed"
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    seed = secrets.randbits(63)
    with contextlib.suppress(OSError):
        _private_dir(root / CACHE_DIR)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{seed}\n")
    with contextlib.suppress(OSError, ValueError):  # another grading drew first: its seed holds
        return int(path.read_text().strip())
    return seed


# --------------------------------------------------------------------------- grading one module


def _clean(text: str, ctx: Context, limit: int = 4000) -> str:
    """Staging paths shown as repository paths; long text trimmed from the middle."""
    for run in sorted((ctx.stage / "runs").glob("*"), reverse=True):
        text = text.replace(str(run / "scratch") + "/", "")
        text = text.replace(str(run / "ref") + "/", "solutions/")
    text = text.replace(str(ctx.stage) + "/", "")
    if len(text) > limit:
        text = text[: limit // 4] + "\n...\n" + text[-3 * limit // 4 :]
    return text.strip()


def _served(ctx: Context, module: registry.Module, run_dir: Path, strict: bool) -> tuple[str, dict[str, str]]:
    """The ``TINYTORCH_IMPL`` of a child of ``module`` and the references it preloads.

    Isolation: the other modules whose reference the instructor has released are served from it
    (staged under ``run_dir/ref``); every other module, the graded one first, from the student's
    own code. Strict: all from the student's. The graded module's reference is never staged
    where a child can read."""
    impl, preload = str(ctx.stage / "katas"), {}
    if not strict:
        ref = run_dir / "ref"
        for other in ctx.modules:
            if other.name != module.name and other.name in ctx.settings.released:
                shutil.copytree(
                    ctx.root / other.solution,
                    ref / other.name,
                    ignore=shutil.ignore_patterns("__pycache__"),
                )
                preload[other.name] = str(ref / other.name)
                impl += f",{other.name}={ref / other.name}"
    return impl, preload


def grade_module(
    ctx: Context, module: registry.Module, nodeids: list[str], strict: bool, limit: float | None = None
) -> ModuleGrade:
    """Run one module's tests in sandboxed children until every test of the plan has an outcome."""
    grade = ModuleGrade(module)
    share = shares(ctx.settings, module, nodeids)
    done: dict[str, tuple[str, str]] = {}
    student_dir = ctx.stage / "katas" / module.name
    run_dir = ctx.stage / "runs" / module.name
    began = time.monotonic()
    limit = ctx.settings.module_timeout if limit is None else min(limit, ctx.settings.module_timeout)
    collect_errors: list[str] = []
    grade.review = review.review_folder(student_dir, module.review_allow)
    if not any(student_dir.glob("*.py")):
        message = f"no folder katas/{module.name}/ with Python files in the submission"
        grade.notes.append(message)
        done = {n: ("failed", message) for n in nodeids}
    rounds = 0
    while len(done) < len(nodeids):
        rounds += 1
        budget = limit - (time.monotonic() - began)
        remaining = [n for n in nodeids if n not in done]
        if budget <= 1:
            for n in remaining:
                done[n] = (
                    "not run",
                    f"not run: the time budget of this module ({limit:.0f} s) ran out",
                )
            break
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        impl, preload = _served(ctx, module, run_dir, strict)
        key_out = run_dir / "scratch" / "keys"
        out = run_child(
            ctx,
            module.name,
            run_dir,
            impl,
            [f for f in test_files(module) if (ctx.stage / f).is_file()],
            preload,
            [str(ctx.stage / "katas")],
            sorted(done),
            budget,
            key_out=key_out,
        )
        _judge_keys(ctx, out, key_out)
        grade.survivors += out.survivors
        if out.tamper and not grade.tampered:
            grade.tampered = out.tamper
        grade.notes += [f"refused: {r}" for r in out.refused if f"refused: {r}" not in grade.notes]
        grade.notes += [n for n in out.notes if n not in grade.notes]
        collect_errors += out.collect_errors
        progress = False
        for nodeid, (outcome, text) in out.results.items():
            if nodeid in share and nodeid not in done:
                done[nodeid] = (outcome, _clean(text, ctx))
                progress = True
        if out.ended == "exit":
            if collect_errors:
                reason = "collection failed:\n" + _clean("\n".join(collect_errors), ctx)
            elif out.fatal:
                reason = f"not run: the test process stopped: {out.fatal}" + _stderr_note(out, ctx)
            else:
                reason = "not run: the test was not collected"
            for n in nodeids:
                if n not in done:
                    done[n] = ("failed", reason)
            break
        if out.running is not None and out.running in share and out.running not in done:
            if out.ended == "test-timeout":
                done[out.running] = (
                    "timeout",
                    f"timed out: took longer than {ctx.settings.timeout:g} s (the per-test limit); "
                    "the test process was stopped",
                )
            elif out.ended == "budget":
                done[out.running] = (
                    "timeout",
                    f"timed out: the time budget of this module ({limit:.0f} s) ran out during this test",
                )
            else:
                done[out.running] = (
                    "crashed",
                    _describe_exit(out) + " during this test" + _stderr_note(out, ctx),
                )
            progress = True
        if not progress:
            if out.ended == "collect-timeout":
                limit = ctx.settings.collect_timeout
                reason = f"importing the module and collecting its tests took longer than {limit:g} s"
            elif out.ended == "budget":
                reason = f"the time budget of this module ({limit:.0f} s) ran out"
            elif collect_errors:
                reason = "collection failed:\n" + _clean("\n".join(collect_errors), ctx)
            else:
                reason = (
                    _describe_exit(out)
                    + " before any test ran (while importing the module)"
                    + _stderr_note(out, ctx)
                )
            for n in nodeids:
                if n not in done:
                    done[n] = ("crashed" if out.ended == "crash" else "failed", reason)
            break
        if rounds > len(nodeids) + 1:  # pragma: no cover - every round settles at least one test
            break
    skipped = [n for n in nodeids if done[n][0] == "skipped"]
    if skipped:
        grade.notes.append(
            f"skipped: {len(skipped)} test(s) ({', '.join(n.split('::', 1)[-1] for n in skipped[:5])}"
            f"{', ...' if len(skipped) > 5 else ''}): the grader's tests never skip on the reference, so "
            "the submission's code made them skip; a skipped test earns nothing"
        )
    failed_keys = [ctx.reference(n) for n in nodeids if is_key(n) and done[n][0] != "passed"]
    failed_keys = [k for k in failed_keys if k is not None]
    keys = [n for n in nodeids if is_key(n)]
    tests = [n for n in nodeids if not is_key(n)]
    for nodeid in tests:
        outcome, text = done[nodeid]
        contradicted = [k.name for k in failed_keys if decides(k, nodeid, ctx.units.get(nodeid, frozenset()))]
        if outcome == "passed" and contradicted:
            done[nodeid] = (
                "failed",
                "no credit: the answer key's check(s) " + ", ".join(contradicted) + ", which decide this "
                "test, failed on inputs drawn at grading time (the module is flagged as inconsistent)",
            )
            grade.inconsistent.append(nodeid)
    # The backstop for tests no check decides: a module whose tests report far more passes than its
    # answer key confirms (a share of the tests at least `inconsistency_gap` above the share of the
    # key's checks) earns the key's points alone until an instructor has looked at it.
    if keys and tests:
        passed_tests = sum(done[n][0] == "passed" for n in tests) / len(tests)
        passed_keys = sum(done[n][0] == "passed" for n in keys) / len(keys)
        if passed_tests - passed_keys >= ctx.settings.inconsistency_gap:
            grade.notes.append(
                f"inconsistent: {passed_tests:.0%} of the tests report passed, {passed_keys:.0%} of the "
                "answer key's checks on new inputs agree; the tests' credit is withheld pending the "
                "instructor's review"
            )
            for nodeid in tests:
                if done[nodeid][0] == "passed":
                    done[nodeid] = (
                        "failed",
                        "no credit: withheld pending review (the module is inconsistent)",
                    )
                    grade.inconsistent.append(nodeid)
    for nodeid in nodeids:
        outcome, text = done[nodeid]
        result = TestResult(nodeid, outcome, text, max_score=share[nodeid])
        if outcome == "passed" and not grade.tampered:
            result.score = share[nodeid]
        elif outcome == "passed":
            result.message = f"no credit: tampering was detected in this module ({grade.tampered})"
        grade.tests.append(result)
    return grade


# --------------------------------------------------------------------------- the class leaderboard

LEADERBOARD_MIN_SECONDS = 5.0  # less time left than this in the submission's budget: not run


def post_leaderboard(
    ctx: Context, grade_: Grade, module_grade: ModuleGrade, strict: bool, limit: float
) -> None:
    """Run module 20's competition in a sandboxed child (grading/competition.py) and put its
    validated figures in ``grade_.leaderboard``, Gradescope's ``leaderboard`` array, or say in
    ``grade_.leaderboard_note`` why there is none. Display only: it runs after every module is
    scored and reads or changes no score. Never raises: a failure is a note."""
    module = module_grade.module
    passed = sum(t.score == t.max_score and t.outcome == "passed" for t in module_grade.tests)
    if module_grade.tampered:
        grade_.leaderboard_note = f"not posted: tampering was detected in module {module.number}"
        return
    if module_grade.inconsistent:
        grade_.leaderboard_note = f"not posted: module {module.number} is flagged inconsistent"
        return
    if not module_grade.tests or passed < len(module_grade.tests):
        grade_.leaderboard_note = (
            f"not posted: module {module.number} is not finished ({passed} of {len(module_grade.tests)} "
            "tests earn their points); the competition runs once every test passes"
        )
        return
    if limit < LEADERBOARD_MIN_SECONDS:
        grade_.leaderboard_note = "not posted: the submission's time budget ran out before the competition"
        return
    budget = min(ctx.settings.leaderboard_timeout, limit)
    began = time.monotonic()
    try:
        grade_.leaderboard_note, figures = _run_competition(ctx, module, strict, budget)
    except Exception as error:  # noqa: BLE001 - the leaderboard never costs the grade
        grade_.leaderboard_note = (
            f"not posted: the grader could not run the competition ({type(error).__name__}: {error})"
        )
        return
    finally:
        grade_.leaderboard_seconds = time.monotonic() - began
    if figures:
        grade_.leaderboard = competition.entries(figures)


def _run_competition(
    ctx: Context, module: registry.Module, strict: bool, budget: float
) -> tuple[str, dict[str, float]]:
    """(note, figures): one confined child runs the staged entry point; its file is judged here."""
    run_dir = ctx.stage / "runs" / "leaderboard"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    competition.stage(ctx.stage)
    impl, preload = _served(ctx, module, run_dir, strict)
    figures_file = run_dir / "scratch" / competition.FIGURES_FILE
    # the competition is one test: the per-test limit is the competition's budget
    child_ctx = replace(ctx, settings=replace(ctx.settings, timeout=budget))
    out = run_child(
        child_ctx,
        module.name,
        run_dir,
        impl,
        [competition.STAGED],
        preload,
        [str(ctx.stage / "katas")],
        [],
        budget,
        env_extra={competition.OUT_ENV: str(figures_file)},
    )
    outcome, text = out.results.get(f"{competition.STAGED}::test_competition", ("", ""))
    if out.tamper:
        return f"not posted: tampering was detected during the competition ({out.tamper[:200]})", {}
    if out.ended in ("test-timeout", "budget") and outcome == "":
        return f"not posted: the competition took longer than its {budget:g} s", {}
    if outcome == "":
        why = "collection failed" if out.collect_errors else _describe_exit(out)
        return f"not posted: the competition did not finish ({why})", {}
    if outcome != "passed":
        return f"not posted: the competition failed: {headline(_clean(text, ctx))}", {}
    try:
        return "", competition.read_figures(figures_file)
    except competition.FiguresError as error:
        return f"not posted: the competition's figures were refused: {error}", {}


def _judge_keys(ctx: Context, out: ChildOutcome, key_out: Path) -> None:
    """Each answer-key check the student's process ran: its verdict from the values it wrote,
    compared here with the reference's (what the process said about the check is not a verdict)."""
    for nodeid, (outcome, text) in list(out.results.items()):
        if not is_key(nodeid) or ctx.reference(nodeid) is None:
            continue
        if outcome != "passed":
            out.results[nodeid] = (
                "failed",
                "answer key: the check raised on inputs drawn at grading time:\n" + headline(text),
            )
            continue
        try:
            values = answerkey.load(answerkey.values_file(key_out, nodeid))
            problem = answerkey.compare(ctx.references[nodeid], values)
        except answerkey.KeyFileError as error:
            problem = str(error)
        out.results[nodeid] = (
            ("failed", "answer key: on inputs drawn at grading time, " + problem)
            if problem
            else ("passed", "")
        )


def _stderr_note(out: ChildOutcome, ctx: Context) -> str:
    tail = _clean(out.stderr, ctx, limit=1200)
    return f"\n--- last output of the test process ---\n{tail}" if tail else ""


# --------------------------------------------------------------------------- grading a submission



def work_parent() -> Path:
    """The folder under which this user's gradings stage their work: ``tinytorch-grading`` in
    the temporary folder for root (0711: the sandbox users pass through, never list it), and
    ``tinytorch-grading-user<uid>`` (0700) for anyone else, so that a grader that is not root
    never trips over root's folder, nor uses one another user made for it in a shared /tmp."""
    uid = os.geteuid()
    name = "tinytorch-grading" if uid == 0 else f"tinytorch-grading-user{uid}"
    parent = Path(tempfile.gettempdir()) / name
    parent.mkdir(mode=0o711 if uid == 0 else 0o700, exist_ok=True)
    info = os.lstat(parent)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        raise PermissionError(f"{parent} is not a folder of uid {uid}'s: remove it, or pass a workdir")
    return parent

def grade(
    submission: str | os.PathLike,
    *,
    strict: bool = False,
    only: list[str] | None = None,
    settings: Settings | None = None,
    deny: list[str] | None = None,
    workdir: str | os.PathLike | None = None,
    plan_file: str | os.PathLike | None = None,
) -> Grade:
    """Grade one submission (a folder or a zip); never raises for anything the submission does."""
    began = time.monotonic()
    root = registry.repo_root()
    settings = settings or load_settings()
    ready = [m for m in registry.modules() if m.ready]
    modules = [m for m in ready if not only or m.name in only or str(m.number) in only]
    submission = Path(submission)
    result = Grade(
        str(submission.name),
        "strict" if strict else "isolation",
        visibility=settings.visibility,
        key_visibility=settings.key_visibility,
    )
    parent = Path(workdir) if workdir else work_parent()
    parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chmod(parent, 0o711)  # the sandbox users may pass through, not list the stages
    stage = Path(tempfile.mkdtemp(prefix="grade-", dir=parent)).resolve()
    private = Path(tempfile.mkdtemp(prefix="private-", dir=parent)).resolve()  # 0700: root's only
    deny = [str(root), *(deny or [])]  # the checkout (solutions/, grading/) and, in a batch, the class
    fence = boundary_.choose(
        settings.sandbox_user,
        settings.landlock,
        settings.max_processes,
        secrets=[root / d for d in boundary_.SECRET_DIRS] + [Path(d) for d in deny[1:]],
        memory_mb=settings.memory_mb,
    )
    result.boundary = fence.to_json()
    try:
        fence.share(stage)
        seed = grading_seed(root)
        ctx = Context(
            root,
            stage,
            settings,
            ready,
            deny,
            plan_file=Path(plan_file) if plan_file else None,
            boundary=fence,
            private=private,
            seed=seed,
        )
        result.seed = hashlib.sha256(str(seed).encode()).hexdigest()[:12]  # which seed, not the seed
        _copy_tests(root, stage, ready)
        plan = collect_plan(ctx)
        # the reference's answer keys run while the first module is graded (two cores: no wait)
        keys_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reference-keys")
        ctx.pending_references = keys_pool.submit(reference_keys, ctx, plan)
        keys_pool.shutdown(wait=False)
        try:
            katas = _stage_submission(submission, stage, ready, result)
        except SubmissionError as e:
            result.status = e.status
            result.notes.append(str(e))
            katas = None
        for module in modules:
            if katas is None:
                grade_ = ModuleGrade(module)
                share = shares(settings, module, plan[module.name])
                grade_.tests = [
                    TestResult(n, "not run", f"not graded: {result.notes[-1]}", share[n])
                    for n in plan[module.name]
                ]
                result.modules.append(grade_)
                continue
            left = settings.total_timeout - (time.monotonic() - began)
            result.modules.append(grade_module(ctx, module, plan[module.name], strict, limit=left))
        graded = {m.module.name: m for m in result.modules}
        if katas is not None and settings.leaderboard and competition.MODULE in graded:
            left = settings.total_timeout - (time.monotonic() - began)
            post_leaderboard(ctx, result, graded[competition.MODULE], strict, left)
    finally:
        pending = locals().get("ctx") and ctx.pending_references
        if pending:
            with contextlib.suppress(Exception):  # its private copy is removed below; wait for it
                pending.result()
        fence.release()  # every process of the sandbox user is gone before a result is written
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
        result.execution_time = time.monotonic() - began
    return result


def prepare(settings: Settings | None = None) -> tuple[dict[str, list[str]], dict[str, frozenset]]:
    """Run the grader's tests and answer keys once on the reference (traced) and cache the plan, the
    grading seed and the reference's answer-key values in the checkout's ``.grading-cache/``:
    ``python -m grading prepare``, which Gradescope's ``setup.sh`` runs when it builds the image,
    so no submission pays for it. Returns the plan (test ids per module) and the kata functions
    each test calls on the reference."""
    root = registry.repo_root()
    settings = settings or load_settings()
    ready = [m for m in registry.modules() if m.ready]
    stage = Path(tempfile.mkdtemp(prefix="prepare-", dir=work_parent())).resolve()
    try:
        ctx = Context(root, stage, settings, ready, [str(root)], private=stage, seed=grading_seed(root))
        _copy_tests(root, stage, ready)
        plan = collect_plan(ctx)
        reference_keys(ctx, plan)  # the reference's values at the grading seed, cached too
        return plan, ctx.units
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def prepare_main(argv: list[str] | None = None) -> int:
    """``python -m grading prepare``: fill the plan cache (see :func:`prepare`)."""
    argparse.ArgumentParser(prog="python -m grading prepare", description=prepare.__doc__).parse_args(argv)
    began = time.monotonic()
    plan, _ = prepare()
    tests = sum(len(ids) for ids in plan.values())
    print(
        f"plan: {tests} tests and answer-key checks of {len(plan)} modules pass on the reference; "
        f"cached in {registry.repo_root() / PLAN_CACHE} ({time.monotonic() - began:.1f} s)"
    )
    return 0


def _stage_submission(submission: Path, stage: Path, modules: list[registry.Module], result: Grade) -> Path:
    if not submission.exists():
        raise SubmissionError("missing", f"no submission at {submission}")
    source = submission
    if submission.is_file():
        source = unpack_zip(submission, stage / "unpacked")
    refused: list[str] = []
    katas = find_katas(source, modules, refused)
    if refused:
        result.notes.append(
            "refused: " + ", ".join(refused) + " (a symbolic link, or a path that leads outside the "
            "submission: only the submission's own files are graded)"
        )
    if katas is None:
        names = ", ".join(Path(m.kata).name for m in modules)
        raise SubmissionError("no-katas", f"no katas/ folder (with any of {names}) found in the submission")
    dropped: list[str] = []
    for module in modules:
        src = katas / Path(module.kata).name
        if src.is_dir() and not src.is_symlink() and src.resolve().is_relative_to(source.resolve()):
            stage_tree(src, stage / "katas" / module.name, dropped, f"katas/{module.name}")
        else:
            (stage / "katas" / module.name).mkdir(parents=True, exist_ok=True)
    if dropped:
        result.notes.append("ignored files: " + "; ".join(dropped))
    if submission.is_file():
        shutil.rmtree(stage / "unpacked", ignore_errors=True)
    return stage / "katas"


def failed_grade(submission: str, status: str, message: str, mode: str = "isolation") -> Grade:
    """A results file for a run the grader could not finish: score 0 and the reason."""
    grade_ = Grade(submission, mode, status=status)
    grade_.notes.append(message)
    return grade_


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grading grade",
        description="Grade one submission (a repository, a katas/ tree or a zip of either) and write "
        "a Gradescope results.json; prints a per-module summary.",
    )
    parser.add_argument("submission", help="folder or .zip file")
    parser.add_argument(
        "--out", default="results.json", help="where to write results.json (default: ./results.json)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="grade every module from the student's code (no reference underneath)",
    )
    parser.add_argument(
        "--module", action="append", metavar="M", help="grade only this module (name or number; repeatable)"
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds per test (default: the registry's [grading] timeout)"
    )
    parser.add_argument("--memory-mb", type=int, help="memory limit of a test process in MB")
    parser.add_argument(
        "--no-leaderboard",
        action="store_true",
        help="do not run module 20's competition for Gradescope's leaderboard ([grading] leaderboard)",
    )
    parser.add_argument("--deny", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)  # batch: a shared cache of the test list
    parser.add_argument("--quiet", action="store_true", help="do not print the summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        settings = load_settings()
        overrides = {}
        if args.timeout:
            overrides["timeout"] = args.timeout
        if args.memory_mb:
            overrides["memory_mb"] = args.memory_mb
        if args.no_leaderboard:
            overrides["leaderboard"] = False
        if overrides:
            settings = replace(settings, **overrides)
        result = grade(
            args.submission,
            strict=args.strict,
            only=args.module,
            settings=settings,
            deny=args.deny,
            plan_file=args.plan,
        )
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001 - results.json is written whatever happened
        message = "the grader itself failed (not your code); tell the instructor:\n" + traceback.format_exc()
        result = failed_grade(
            Path(args.submission).name, "grader-error", message, "strict" if args.strict else "isolation"
        )
        write_results(result, out)
        print(message, file=sys.stderr)
        return 1
    write_results(result, out)
    if not args.quiet:
        print(result.summary())
        print(f"\nresults: {out}  ({result.execution_time:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
