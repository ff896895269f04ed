"""Staging a grading: the folder in which the sandboxed children find the grader's tests and the
student's code, and the run's ``Context``.

* The submission (a folder, or a zip unpacked with limits on size and file count): its ``katas/``
  folder is found and each module's folder copied, regular files only. Symbolic and hard links,
  native extensions and files that would configure pytest or Python (``conftest.py``,
  ``sitecustomize.py``, ``*.pth``, ...) are dropped and listed in the output.
* The grader's side: its pristine tests, the modules' answer keys and pytest's configuration.
* ``work_parent``: the folder under which one user's gradings stage their work.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
import sys
import tempfile
import zipfile
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from grading import answerkey
from grading import boundary as boundary_
from grading.grade_results import Grade
from grading.grade_settings import Settings
from grading.release import absolute_imports
from tinytorch.course import registry

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


# --------------------------------------------------------------------------- where gradings stage


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


def stage_submission(submission: Path, stage: Path, modules: list[registry.Module], result: Grade) -> Path:
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


# --------------------------------------------------------------------------- the grader's side


def copy_tests(root: Path, stage: Path, modules: list[registry.Module] = ()) -> None:
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
    for name in test_imports(stage, []):
        top = name.split(".")[0]
        if top in private or (stage / top).exists():
            continue
        if (root / top).is_dir():
            shutil.copytree(root / top, stage / top, ignore=shutil.ignore_patterns("__pycache__"))
        elif (root / f"{top}.py").is_file():
            shutil.copyfile(root / f"{top}.py", stage / f"{top}.py")


def test_imports(stage: Path, files: list[str]) -> list[str]:
    """Absolute imports of the test files, conftest and helpers: pre-imported before student code."""
    names = set()
    for path in [stage / f for f in files] + list((stage / "tests").glob("*.py")):
        try:
            names |= absolute_imports(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            continue
    return sorted(n for n in names if not n.startswith("tinytorch.perf"))


# --------------------------------------------------------------------------- one grading run


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
