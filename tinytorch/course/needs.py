"""What a module needs from earlier modules, and whether the code under test has written it.

The registry's ``needs`` names the functions of other modules a module's tests call
(``alpha.Doubler.apply``). A function counts as written when the code serving its module defines
it, its own body raises no ``NotImplementedError`` (a stub's) and no test of the run was seen
failing in its ``NotImplementedError``. ``tinytorch test`` prints the count under a failing run;
the registry's checks use :func:`defined_functions` and :func:`raises_not_implemented` on the
katas and the solutions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tinytorch import perf
from tinytorch.course import registry
from tinytorch.course.results import Location, TestOutcome


def still_raising(outcomes: Iterable[TestOutcome]) -> list[Location]:
    """The functions a run found still raising ``NotImplementedError`` (the kata frame of each such
    failure), one per function, ordered by ``"function in path"``."""
    found: dict[str, Location] = {}
    for o in outcomes:
        if o.not_implemented and o.location:
            found.setdefault(f"{o.location.function} in {o.location.path}", o.location)
    return [found[key] for key in sorted(found)]


def raises_not_implemented(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether a function's own body (not a function or class nested in it) raises
    ``NotImplementedError``: a stub not written yet."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(child, ast.Raise) and child.exc is not None:
            exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                return True
        stack.extend(ast.iter_child_nodes(child))
    return False


def defined_functions(folder: Path) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """The functions and methods of the ``.py`` files under ``folder`` by qualified name
    (``OptimizedBackend.dispatch``), those nested in a function's body aside; a file that does
    not parse defines none."""
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                found.setdefault(prefix + child.name, child)
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.stmt):  # definitions under `if`, `try`, ...
                visit(child, prefix)

    for path in sorted(Path(folder).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        try:
            visit(ast.parse(path.read_text(encoding="utf-8")), "")
        except (OSError, SyntaxError, ValueError):
            continue
    return found


@dataclass(frozen=True)
class Need:
    """A function of another module that a module's tests need (the registry's ``needs``)."""

    module: registry.Module  # the module that defines it
    function: str  # its qualified name there: "OptimizedBackend.dispatch"
    written: bool  # the serving code defines it, it raises no NotImplementedError, none was seen


def needs(
    module: registry.Module,
    impl: str = "katas",
    outcomes: Iterable[TestOutcome] = (),
    root: Path | None = None,
) -> list[Need]:
    """The functions of other modules that ``module`` needs, each with whether it is written in the
    code that serves its module under ``impl``: it is defined there, its body raises no
    ``NotImplementedError`` (a stub's), and no test of ``outcomes`` found it still raising one
    (what ``tinytorch test`` lists as "still raising NotImplementedError")."""
    root = root or registry.repo_root()
    raising = []
    for location in still_raising(outcomes):
        path = Path(location.path)
        raising.append(((path if path.is_absolute() else root / path).resolve(), location.function))
    found = []
    for name, functions in module.needs_by_module().items():
        other = registry.get(name)
        folder = perf.source_dir(other.name, impl).resolve()
        defined = defined_functions(folder)
        for function in functions:
            seen = any(f == function and path.is_relative_to(folder) for path, f in raising)
            node = defined.get(function)
            written = node is not None and not seen and not raises_not_implemented(node)
            found.append(Need(other, function, written))
    return found
