"""The student release: ``python -m grading release <dest>``.

Builds the repository a class receives from the instructor's checkout:

* the files git knows (tracked, or new and not ignored), read from the working tree, so caches,
  virtualenvs, ``.tox``, ``.hypothesis`` and built wheels never come along;
* without ``solutions/``, without ``grading/`` (the autograder, the integrity checks and the
  gallery of classic mistakes are instructor tools; the gallery holds patches of reference code),
  without ``.ci/`` and ``.github/`` of the instructor, without every test file that imports
  ``grading`` or ``solutions``, and without the test files the registry marks ``hidden``;
* with the student's versions of the files that differ (``grading/classroom/``): ``tox.ini``
  (the check a student's clone can pass: foundation and tool tests, lint; the kata tests run
  with ``tinytorch status``/``test``), ``.ci/run``, and the GitHub Actions workflow for forks,
  ``.github/workflows/katas.yml``;
* ``README.md`` with its instructor-only blocks (between ``<!-- instructor-only -->`` and
  ``<!-- end instructor-only -->``) removed and its student-only blocks (an HTML comment that
  starts ``<!-- student-only``) shown;
* the gallery's notes without its patches: ``grading/mistakes/<module>.toml`` keeps each mistake's
  ``name``, ``why`` and ``caught_by`` only, so ``tinytorch hint`` can still name the likely mistake
  behind a failing test;
* a fresh git repository with a single commit (no history, so no earlier reference code), unless
  ``--no-git``.

Before it finishes, the release is searched for the reference bodies (:func:`find_leaks`): every
run of three consecutive statements of a solution body that the stub does not give is looked for
in every text file, whitespace folded. A leak is an error and the release is not written.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tinytorch import registry

CLASSROOM = Path(__file__).resolve().parent / "classroom"

# release path -> file in grading/classroom that replaces (or adds) it
STUDENT_FILES = {
    "tox.ini": "tox.ini",
    ".ci/run": "ci-run",
    ".github/workflows/katas.yml": "katas.yml",
}
EXCLUDED_DIRS = ("solutions/", "grading/", ".ci/", ".github/")
INSTRUCTOR_BLOCK = re.compile(r"<!-- instructor-only -->.*?<!-- end instructor-only -->\n?", re.DOTALL)
STUDENT_BLOCK = re.compile(r"<!-- student-only\n(.*?)-->\n?", re.DOTALL)
WINDOW = 3  # consecutive reference statements that count as a leak
NOTE_KEYS = ("name", "why", "caught_by")  # what a student release keeps of the gallery


class ReleaseError(RuntimeError):
    """The release cannot be built (a leak, a missing template, a destination in the way)."""


# --------------------------------------------------------------------------- what goes in


def source_files(root: Path) -> list[str]:
    """The files of the checkout, relative and sorted: what git tracks or would add."""
    if (root / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return sorted(p for p in listed.split("\0") if p and (root / p).is_file())
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in p.parts)
    )


def absolute_imports(text: str) -> set[str]:
    """The modules Python source imports absolutely (``import a.b``, ``from a.b import c``: ``a.b``).

    ``SyntaxError`` when ``text`` is not Python.
    """
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def imports_instructor_code(text: str) -> bool:
    """True when Python source imports ``grading`` or ``solutions`` (instructor-only code)."""
    try:
        names = absolute_imports(text)
    except SyntaxError:
        return False
    return any(name.split(".")[0] in ("grading", "solutions") for name in names)


def hidden_tests(modules: Iterable[registry.Module]) -> set[str]:
    """Test files the registry marks instructor-only (``hidden = [...]`` of a module)."""
    return {path for m in modules for path in getattr(m, "hidden", ())}


def released(path: str, root: Path, hidden: set[str]) -> bool:
    """Whether the instructor's file ``path`` goes into the student release unchanged."""
    if path.startswith(EXCLUDED_DIRS) or path in STUDENT_FILES or path in hidden:
        return False
    if path.startswith("tests/") and path.endswith(".py"):
        return not imports_instructor_code((root / path).read_text(encoding="utf-8"))
    return True


def mistake_notes(toml_text: str) -> str:
    """A gallery file without its patches: each mistake's name, why and caught_by, as TOML."""
    notes = ["# Classic mistakes of this module: what tinytorch hint names when a test catches one."]
    for entry in tomllib.loads(toml_text).get("mistake", []):
        notes.append("\n[[mistake]]")
        notes += [f"{key} = {json.dumps(entry[key])}" for key in NOTE_KEYS if isinstance(entry.get(key), str)]
    return "\n".join(notes) + "\n"


def student_readme(text: str) -> str:
    """The README without its instructor-only blocks, with its student-only blocks shown."""
    return STUDENT_BLOCK.sub(r"\1", INSTRUCTOR_BLOCK.sub("", text))


# --------------------------------------------------------------------------- the leak search


@dataclass(frozen=True)
class Leak:
    path: str  # the release file that holds reference code
    source: str  # solution file and function it comes from
    text: str  # the statements found

    def __str__(self) -> str:
        return f"{self.path}: holds reference code of {self.source}: {self.text!r}"


def _fold(text: str) -> str:
    return " ".join(text.split())


def _functions(tree: ast.AST) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method of a module, by qualified name."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + child.name, child
                yield from walk(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, prefix + child.name + ".")

    yield from walk(tree, "")


GENERIC = {"else:", "try:", "finally:", "pass", "return", "continue", "break", "return None", "raise"}


def _meaningful(line: str) -> bool:
    """A folded line worth comparing: not a comment, not punctuation or a bare keyword."""
    if len(line) <= 3 or line.startswith("#") or line in GENERIC:
        return False
    return any(c.isalnum() for c in line)


def _source_lines(source: str) -> list[str]:
    """The source's lines with their ends, split as ``ast`` splits them (on \\r\\n, \\r, \\n only)."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", source)


def _segment(lines: list[str], node: ast.stmt) -> str:
    """``ast.get_source_segment(source, node)`` from the source split once (that function splits
    the whole source again for every node: quadratic in the file, seconds for the solutions).
    Column offsets are UTF-8 byte offsets, as in ``ast``."""
    first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    if first == last:
        return lines[first].encode()[node.col_offset : node.end_col_offset].decode()
    head = lines[first].encode()[node.col_offset :].decode()
    tail = lines[last].encode()[: node.end_col_offset].decode()
    return head + "".join(lines[first + 1 : last]) + tail


def _statements(function: ast.FunctionDef | ast.AsyncFunctionDef, source: str | list[str]) -> list[str]:
    """The body's source lines, folded, the docstring and trivial lines left out (``source``: the
    text, or its :func:`_source_lines`)."""
    source_lines = _source_lines(source) if isinstance(source, str) else source
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    lines: list[str] = []
    for statement in body:
        segment = _segment(source_lines, statement)
        lines += [folded for folded in map(_fold, segment.splitlines()) if _meaningful(folded)]
    return lines


def _windows(lines: list[str]) -> Iterator[str]:
    for i in range(len(lines) - WINDOW + 1):
        yield " ".join(lines[i : i + WINDOW])


def reference_windows(root: Path) -> dict[str, str]:
    """{folded run of WINDOW reference statements: 'solution file:function'} for every module.

    Only what the stubs do not give counts: a run of statements that also stands in a stub
    (given plumbing, argument checks before the ``raise NotImplementedError``) is public.
    """
    windows: dict[str, str] = {}
    given: set[str] = set()
    for m in registry.modules():
        solution, kata = root / m.solution, root / m.kata
        for file in sorted(kata.rglob("*.py")) if kata.is_dir() else ():
            source = file.read_text(encoding="utf-8")
            lines = _source_lines(source)
            for _, function in _functions(ast.parse(source)):
                given.update(_windows(_statements(function, lines)))
        for file in sorted(solution.rglob("*.py")) if solution.is_dir() else ():
            relative = file.relative_to(solution).as_posix()
            source = file.read_text(encoding="utf-8")
            lines = _source_lines(source)
            for name, function in _functions(ast.parse(source)):
                for window in _windows(_statements(function, lines)):
                    if window not in given:
                        windows.setdefault(window, f"{m.solution}/{relative}:{name}")
    return windows


def _text_lines(path: Path) -> list[str]:
    """A text file's meaningful lines, folded; nothing for a binary file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return []
    return [folded for folded in map(_fold, text.splitlines()) if _meaningful(folded)]


def find_leaks(release: Path, root: Path | None = None) -> list[Leak]:
    """Every file under ``release`` in which WINDOW consecutive lines of a reference body stand.

    Lines are compared with their white space folded, in any text file (code, docs, data), so a
    solution pasted into a guide's code block is found as well as a copied ``.py`` file.
    """
    windows = reference_windows(root or registry.repo_root())
    leaks = []
    for path in sorted(p for p in release.rglob("*") if p.is_file() and ".git" not in p.parts):
        for window in _windows(_text_lines(path)):
            if window in windows:
                leaks.append(Leak(path.relative_to(release).as_posix(), windows[window], window))
                break
    return leaks


# --------------------------------------------------------------------------- building


def build(dest: Path, root: Path | None = None, git: bool = True) -> list[str]:
    """Write the student release into ``dest`` (which must not exist or be empty); its file list."""
    root = (root or registry.repo_root()).resolve()
    dest = Path(dest).resolve()
    if dest.exists() and any(dest.iterdir()):
        raise ReleaseError(f"release destination {dest} exists and is not empty")
    if dest.is_relative_to(root):
        raise ReleaseError(f"release destination {dest} is inside the instructor's checkout {root}")
    hidden = hidden_tests(registry.modules())
    with tempfile.TemporaryDirectory(prefix="tinytorch-release-") as scratch:
        staged = Path(scratch) / "release"
        written = []
        for path in source_files(root):
            if not released(path, root, hidden):
                continue
            target = staged / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if path == "README.md":
                target.write_text(student_readme((root / path).read_text(encoding="utf-8")), encoding="utf-8")
            else:
                shutil.copy2(root / path, target)
            written.append(path)
        for gallery in sorted((root / registry.MISTAKES_DIR).glob("*.toml")):
            path = (registry.MISTAKES_DIR / gallery.name).as_posix()
            target = staged / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(mistake_notes(gallery.read_text(encoding="utf-8")), encoding="utf-8")
            written.append(path)
        for path, template in STUDENT_FILES.items():
            source = CLASSROOM / template
            if not source.is_file():
                raise ReleaseError(f"missing template {source} for the release's {path}")
            target = staged / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            written.append(path)
        leaks = find_leaks(staged, root)
        if leaks:
            raise ReleaseError("reference code would leak into the release:\n" + "\n".join(map(str, leaks)))
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, dest, dirs_exist_ok=True)
    if git:
        _git_init(dest)
    return sorted(written)


def _git_init(dest: Path) -> None:
    """One commit, no history: ``git init`` + add + commit with a neutral author."""
    env = {
        "GIT_AUTHOR_NAME": "TinyTorch course",
        "GIT_AUTHOR_EMAIL": "course@example.invalid",
        "GIT_COMMITTER_NAME": "TinyTorch course",
        "GIT_COMMITTER_EMAIL": "course@example.invalid",
    }
    env = {**os.environ, **env}
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "TinyTorch optimization katas: student release"],
    ):
        subprocess.run(command, cwd=dest, env=env, check=True, capture_output=True)


def tree(paths: Iterable[str]) -> str:
    """A compact file tree of ``paths`` (folders with their file counts, top files by name)."""
    folders: dict[str, int] = {}
    top = []
    for path in paths:
        parts = path.split("/")
        if len(parts) == 1:
            top.append(path)
        else:
            nested = parts[0] in ("katas", "tests", "tinytorch") and len(parts) > 2
            key = "/".join(parts[:2]) if nested else parts[0]
            folders[key] = folders.get(key, 0) + 1
    lines = [f"{name}/  ({count} files)" for name, count in sorted(folders.items())]
    return "\n".join(lines + sorted(top))


def run_release_tests(dest: Path) -> int:
    """Run the release's own tests (its ``tools`` check: foundation and tools) in ``dest``; pytest's code.

    The release's ``tinytorch`` is imported (the release folder is the working directory and comes
    first on ``sys.path``), with ``TINYTORCH_ROOT`` pointing at it.
    """
    env = {**os.environ, "TINYTORCH_ROOT": str(dest), "HYPOTHESIS_PROFILE": "ci", "TINYTORCH_IMPL": "katas"}
    env.pop("TINYTORCH_REGISTRY", None)
    markers = "foundation or machinery"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", markers]
    return subprocess.run(command, cwd=dest, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grading release", description="Build the student release of this repository."
    )
    parser.add_argument("dest", type=Path, help="an empty or new folder outside this checkout")
    parser.add_argument("--no-git", action="store_true", help="do not make the release a git repository")
    parser.add_argument(
        "--check", action="store_true", help="then run the release's own tests in it (foundation and tools)"
    )
    args = parser.parse_args(argv)
    try:
        written = build(args.dest, git=not args.no_git)
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    print(tree(written))
    print(f"release: {len(written)} files written to {args.dest.resolve()}; no reference code found in them")
    if args.check:
        return run_release_tests(args.dest.resolve())
    print(
        f"next: cd {args.dest} && python3 -m venv .venv && .venv/bin/python -m pip install -q tox "
        "&& .venv/bin/tox run -m check"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
