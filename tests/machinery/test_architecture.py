"""The map of the house, checked against the code: the rooms and the imports allowed between them.

docs/ARCHITECTURE.md draws the rooms of the repository and the arrows between them (a Mermaid
diagram). These tests read every first-party import from the source with :mod:`ast` (``import``,
``from … import``, relative imports, imports inside functions, ``importlib.import_module`` of a
literal name) and check two things:

* the rules that make the foundation a thing a student can read on its own: it imports nothing of
  the course, the katas, the solutions, grading or the benchmarks; katas and solutions import only
  the foundation and the switch ``tinytorch.perf`` (module 20, the competition, also the board it
  submits to); nothing reaches a kata tree except through the switch;
* that the diagram's arrows are exactly the imports between rooms, so the map cannot drift from
  the code: a new kind of import fails here until the diagram shows it, and an arrow that no code
  uses any more fails too.

A name imported by a string the code builds at run time (the switch loads ``katas/<module>`` that
way) is not an import of the source, and is not on the map.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("tinytorch", "katas", "solutions", "grading", "benchmarks", "tests")
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

# Third-party packages a room may import at all (the rest is the standard library or first party).
RUNTIME = {"numpy"}
THIRD_PARTY = {
    "foundation": RUNTIME | {"onnx", "onnxruntime"},  # onnx*: the optional int8 extra, int8_gemm.py only
    "katas": RUNTIME,
    "solutions": RUNTIME,
    "switch": set(),
}
OPTIONAL_KERNEL = ROOT / "tinytorch" / "int8_gemm.py"
# Module 20 is the competition: its code writes entries to the course's board, and nothing else
# of the course is open to a kata.
COMPETITION_MODULE = "benchmarking"
BOARD = "tinytorch.course.leaderboard"


def room_of_path(path: Path) -> str:
    """The room a source file belongs to (see the diagram)."""
    parts = path.relative_to(ROOT).parts
    top = parts[0]
    if top == "tinytorch":
        if parts[1] == "perf":
            return "switch"
        if parts[1] == "course" or parts[1] == "__main__.py":  # `python -m tinytorch` is the CLI's door
            return "course"
        return "foundation"
    if top == "grading" and parts[1] == "keys":  # the held-out answer keys are test suites
        return "tests"
    return top


def room_of_module(name: str) -> str | None:
    """The room of an imported dotted name, or None for the standard library and third parties."""
    parts = name.split(".")
    if parts[0] not in FIRST_PARTY:
        return None
    if parts[0] == "tinytorch":
        if parts[1:2] == ["perf"]:
            return "switch"
        if parts[1:2] == ["course"] or parts[1:2] == ["__main__"]:
            return "course"
        return "foundation"
    if parts[0] == "grading" and parts[1:2] == ["keys"]:
        return "tests"
    return parts[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported(node: ast.AST, package: str) -> Iterator[str]:
    """The modules one AST node imports, fully dotted (``package`` resolves relative imports)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
        source = ".".join(base + ([node.module] if node.module else []))
        for alias in node.names:
            # `from tinytorch import perf` imports the switch, `from tinytorch import Tensor` the package
            candidate = f"{source}.{alias.name}"
            yield candidate if is_module(candidate) else source
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        yield node.args[0].value


def imports(path: Path, top_level: bool = False) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports (only its top-level statements' with ``top_level``), with the line."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body if top_level else ast.walk(tree):
        for name in imported(node, package):
            yield name, node.lineno


def sources() -> list[Path]:
    found = []
    for top in FIRST_PARTY:
        for path in sorted((ROOT / top).rglob("*.py")):
            if not {"__pycache__", ".tox", ".venv"} & set(path.parts):
                found.append(path)
    return found


EDGES: list[tuple[str, str, str, Path, int]] = []  # (importer's room, imported room, name, file, line)
THIRD: list[tuple[str, str, Path, int]] = []  # (importer's room, top-level package, file, line)
for _path in sources():
    _room = room_of_path(_path)
    for _name, _line in imports(_path):
        _target = room_of_module(_name)
        if _target is not None:
            EDGES.append((_room, _target, _name, _path, _line))
        elif _name.split(".")[0] not in sys.stdlib_module_names and _name != "__future__":
            THIRD.append((_room, _name.split(".")[0], _path, _line))


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


PRESENT = {room_of_path(_path) for _path in sources()}  # a student release holds no solutions/ or grading/


def test_the_sources_are_found():
    """The checks below read real code: the rooms a student release holds have files and imports
    (a wrong ROOT would pass every check), and a checkout holds every room."""
    assert {"foundation", "switch", "course", "katas", "benchmarks", "tests"} <= PRESENT
    if (ROOT / "solutions").is_dir():
        assert {"solutions", "grading"} <= PRESENT
    assert len({(a, b) for a, b, *_ in EDGES}) > 10


def test_the_foundation_imports_only_itself():
    """tinytorch/ minus the switch and the course: readable on its own, like micrograd."""
    wrong = [f"{where(p, n)} imports {name}" for a, b, name, p, n in EDGES if a == "foundation" and b != a]
    assert not wrong, "the foundation imports another room:\n" + "\n".join(wrong)


@pytest.mark.parametrize("room", sorted(THIRD_PARTY))
def test_third_party_packages_of_the_readable_rooms(room: str):
    """The foundation, the switch, katas and solutions need numpy alone (the INT8 extra is optional)."""
    wrong = [
        f"{where(p, n)} imports {package}"
        for a, package, p, n in THIRD
        if a == room
        and (package not in THIRD_PARTY[room] or (package.startswith("onnx") and p != OPTIONAL_KERNEL))
    ]
    assert not wrong, f"{room} imports a package the course does not require:\n" + "\n".join(wrong)


@pytest.mark.parametrize("room", ["katas", "solutions"])
def test_katas_and_solutions_import_the_foundation_and_the_switch(room: str):
    """Kata code reaches other modules only as tinytorch.perf.<module>; the competition also its board."""
    wrong = []
    for a, b, name, path, line in EDGES:
        if a != room or b in ("foundation", "switch"):
            continue
        module = path.relative_to(ROOT / room).parts[0]
        board = name == BOARD or name.startswith(BOARD + ".")
        if b == room and name.startswith(f"{room}.{module}"):
            continue  # its own module's files (relative imports)
        if not (module == COMPETITION_MODULE and board):
            wrong.append(f"{where(path, line)} imports {name}")
    assert not wrong, f"{room} imports past the foundation and the switch:\n" + "\n".join(wrong)


def test_no_kata_tree_is_imported_by_name():
    """katas/ and solutions/ are served by the switch alone, so one test runs against either."""
    wrong = [
        f"{where(p, n)} imports {name}"
        for a, b, name, p, n in EDGES
        if b in ("katas", "solutions") and not name.startswith(f"{a}.")
    ]
    assert not wrong, "\n".join(wrong)


def test_the_switch_reads_only_the_registry():
    wrong = [
        f"{where(p, n)} imports {name}"
        for a, b, name, p, n in EDGES
        if a == "switch" and b != "switch" and not name.startswith("tinytorch.course.registry")
    ]
    assert not wrong, "tinytorch.perf imports more than the registry:\n" + "\n".join(wrong)


def test_nothing_but_tests_imports_the_tests():
    wrong = [f"{where(p, n)} imports {name}" for a, b, name, p, n in EDGES if b == "tests" and a != "tests"]
    assert not wrong, "\n".join(wrong)


def test_the_foundation_has_no_import_cycle():
    """Module-level imports among the foundation's modules form a DAG (read bottom-up: tensor first)."""
    graph: dict[str, set[str]] = {}
    for path in sources():
        if room_of_path(path) != "foundation":
            continue
        here = module_name(path)
        graph.setdefault(here, set())
        for name, _ in imports(path, top_level=True):  # a function's import runs when it is called
            if room_of_module(name) == "foundation" and name != here and is_module(name):
                graph[here].add(name)
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 2:
            return
        assert state.get(node) != 1, "import cycle: " + " -> ".join(trail + [node])
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, trail + [node])
        state[node] = 2
        order.append(node)

    for node in sorted(graph):
        visit(node, [])
    assert "tinytorch.tensor" in order


def diagram_edges() -> set[tuple[str, str]]:
    """The arrows of the Mermaid diagram in docs/ARCHITECTURE.md, as (importer, imported) rooms."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = re.search(r"```mermaid\n(.*?)```", text, re.DOTALL)
    assert block, "docs/ARCHITECTURE.md has no mermaid diagram"
    arrows = re.findall(r"^\s*(\w+)\s*-->(?:\|[^|]*\|)?\s*(\w+)\s*$", block.group(1), re.MULTILINE)
    assert arrows, "the diagram has no arrows"
    return set(arrows)


def test_the_diagram_shows_exactly_the_imports_between_rooms():
    """Each arrow importer --> imported is an import the code makes, and each such import is drawn
    (the tests, which may import any room, are left out of the picture; in a student release the
    arrows of the rooms it does not hold cannot be checked)."""
    drawn = diagram_edges()
    made: dict[tuple[str, str], str] = {}
    for a, b, name, path, line in EDGES:
        if a != b and a != "tests":
            made.setdefault((a, b), f"{where(path, line)} imports {name}")
    missing = [f"{a} --> {b}   ({why})" for (a, b), why in sorted(made.items()) if (a, b) not in drawn]
    stale = [f"{a} --> {b}" for a, b in sorted(drawn - set(made)) if {a, b} <= PRESENT]
    assert not missing, "imports the diagram does not draw:\n" + "\n".join(missing)
    assert not stale, "arrows no code makes any more:\n" + "\n".join(stale)
