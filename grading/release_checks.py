"""The two searches a student release passes before it is written (``grading/release.py``).

* :func:`find_leaks`: reference code in the release. Every run of :data:`WINDOW` consecutive
  statements of a solution body that the stub does not give (the references handed out with
  ``--reference`` aside) is looked for in every text file of the release, whitespace folded, so a
  solution pasted into a guide's code block is found as well as a copied ``.py`` file.
* :func:`missing_references`: a use of a reference the release does not hold in its Markdown (a
  ``TINYTORCH_IMPL=solutions`` value, a ``solutions/`` path), so what a student reads speaks only
  of what the release holds.

Either finding is an error: the release is not written.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tinytorch.course import registry

# --------------------------------------------------------------------------- reference code in the release


WINDOW = 3  # consecutive reference statements that count as a leak


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


def _function_windows(folder: Path) -> Iterator[tuple[str, str, str]]:
    """(window, file relative to ``folder``, function) for every function of every file in it."""
    for file in sorted(folder.rglob("*.py")) if folder.is_dir() else ():
        source = file.read_text(encoding="utf-8")
        lines = _source_lines(source)
        for name, function in _functions(ast.parse(source)):
            for window in _windows(_statements(function, lines)):
                yield window, file.relative_to(folder).as_posix(), name


def reference_windows(root: Path, public: Iterable[registry.Module] = ()) -> dict[str, str]:
    """{folded run of WINDOW reference statements: 'solution file:function'} for every module.

    Only what the stubs do not give counts: a run of statements that also stands in a stub
    (given plumbing, argument checks before the ``raise NotImplementedError``) is public, and so is
    the whole reference of the ``public`` modules (handed out with ``--reference``).
    """
    public_names = {m.name for m in public}
    given = {window for m in registry.modules() for window, _, _ in _function_windows(root / m.kata)}
    for m in registry.modules():
        if m.name in public_names:
            given.update(window for window, _, _ in _function_windows(root / m.solution))
    windows: dict[str, str] = {}
    for m in registry.modules():
        for window, relative, name in _function_windows(root / m.solution):
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


def find_leaks(release: Path, root: Path | None = None, public: Iterable[registry.Module] = ()) -> list[Leak]:
    """Every file under ``release`` in which WINDOW consecutive lines of a reference body stand
    (the reference of the ``public`` modules aside: handed out on purpose).

    Lines are compared with their white space folded, in any text file (code, docs, data), so a
    solution pasted into a guide's code block is found as well as a copied ``.py`` file.
    """
    windows = reference_windows(root or registry.repo_root(), public)
    leaks = []
    for path in sorted(p for p in release.rglob("*") if p.is_file() and ".git" not in p.parts):
        for window in _windows(_text_lines(path)):
            if window in windows:
                leaks.append(Leak(path.relative_to(release).as_posix(), windows[window], window))
                break
    return leaks


# --------------------------------------------------------------------------- a reference the release lacks


# A use of the reference in a text: a TINYTORCH_IMPL (or --impl) value, or a path under solutions/.
_IMPL_VALUE = re.compile(r"(?:TINYTORCH_IMPL=|--impl[ =])([\w./~,=-]+)")
_SOLUTION_PATH = re.compile(r"(?<![\w/.-])solutions/([\w.-]+)?")


def missing_references(release: Path) -> list[str]:
    """Every place in the release's Markdown that uses a reference the release does not hold: a
    ``TINYTORCH_IMPL``/``--impl`` value that serves a module from ``solutions`` while there is no
    ``solutions/<module>/``, or a ``solutions/`` path that is not there. ``path:line: text``."""
    modules = registry.modules()
    names = {str(m.number): m.name for m in modules} | {m.name: m.name for m in modules}
    held = {m.name for m in modules if (release / "solutions" / m.name / "__init__.py").is_file()}
    found = []
    for path in sorted(p for p in release.rglob("*.md") if ".git" not in p.parts):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            served = set()
            for value in _IMPL_VALUE.findall(line):
                items = [item.partition("=") for item in value.split(",") if item]
                default = next((tree for tree, sep, _ in items if not sep), "katas")
                overrides = {names[m]: tree for m, sep, tree in items if sep and m in names}
                served |= {m.name for m in modules if overrides.get(m.name, default) == "solutions"}
            missing = sorted(served - held)
            if len(missing) == len(modules):
                missing = ["every module"]
            uses = [f"the reference of {', '.join(missing)}"] if missing else []
            absent = [f for f in _SOLUTION_PATH.findall(line) if not (release / "solutions" / f).exists()]
            uses += [f"solutions/{folder}" for folder in absent]
            if uses:
                where = path.relative_to(release).as_posix()
                found.append(f"{where}:{number}: uses {'; '.join(uses)}, not in the release: {line.strip()}")
    return found
