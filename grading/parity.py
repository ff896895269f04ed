"""The parity check: ``python -m grading.integrity parity`` (``python -m grading parity``).

For every ready module, compares ``katas/<m>/`` with ``solutions/<m>/``:

* the same ``.py`` files;
* the same public names per file (module-level names not starting with ``_``, without
  imported modules and without names imported from outside the package), and for classes the
  same public methods and the same special methods such as ``__init__``;
* the same signatures (``inspect.signature``: parameter names, kinds, defaults, annotations
  as strings) for every function and method;
* every name a test imports (``from tinytorch.perf.<m> import X``, ``tinytorch.perf.<m>.X``,
  ``import tinytorch.perf.<m> as p`` then ``p.X``; read with ``ast``) exists in the stub;
* every stub function that raises ``NotImplementedError`` says so with a message that names
  its qualified name, ``module <N>`` and its kata file (``katas/<m>/<file>.py``);
* the plumbing given in a stub is the solution's, word for word: every module-level function,
  class, assignment and every class body item (method, field, docstring, decorators and
  bases) of a stub that does not raise ``NotImplementedError`` has the same AST, docstrings
  included (comments are not in the AST, so ``# noqa`` notes may differ), as the same-named
  item of the solution file. Only the bodies of the lesson may differ.

:func:`check_parity` returns every problem found; ``grading/integrity.py`` prints them and sets
the exit code.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
import types
from collections.abc import Iterator
from pathlib import Path

from tinytorch.course import registry

PERF = "tinytorch.perf"


# --------------------------------------------------------------------------- loading


def _load_package(alias: str, folder: Path) -> types.ModuleType:
    """Import ``folder`` as a package named ``alias`` so its relative imports resolve inside it."""
    spec = importlib.util.spec_from_file_location(
        alias, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:  # pragma: no cover - spec_from_file_location on a .py
        raise ImportError(f"cannot load {folder}")
    for name in [n for n in sys.modules if n == alias or n.startswith(alias + ".")]:
        del sys.modules[name]  # a fresh load: never a stale copy from an earlier check
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def _py_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*.py") if "__pycache__" not in p.parts
    )


def _submodule_name(alias: str, relative: str) -> str:
    parts = relative.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([alias, *parts])


# --------------------------------------------------------------------------- comparing


def _annotation(annotation: object) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def signature_text(obj: object) -> str:
    """A signature with annotations as strings: ``(x: np.ndarray, k: int = 3) -> float``."""
    try:
        sig = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "<no signature>"
    params = []
    previous_kind = None
    for p in sig.parameters.values():
        if p.kind is p.KEYWORD_ONLY and previous_kind not in (p.KEYWORD_ONLY, p.VAR_POSITIONAL):
            params.append("*")
        if previous_kind is p.POSITIONAL_ONLY and p.kind is not p.POSITIONAL_ONLY:
            params.append("/")
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        params.append(text)
        previous_kind = p.kind
    if previous_kind is inspect.Parameter.POSITIONAL_ONLY:
        params.append("/")
    ret = f" -> {_annotation(sig.return_annotation)}" if sig.return_annotation is not sig.empty else ""
    return f"({', '.join(params)}){ret}"


def public_names(module: types.ModuleType, package: str) -> dict[str, object]:
    """Module-level public names: not ``_``-prefixed, not modules, not imported from outside."""
    names = {}
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        origin = getattr(value, "__module__", None)
        if isinstance(value, type) or inspect.isfunction(value):
            if origin != package and not str(origin).startswith(package + "."):
                continue  # imported from the foundation, numpy, typing, ...
        names[name] = value
    return names


def _members(cls: type) -> dict[str, object]:
    """A class's own public attributes and special methods (``__init__``, ``__call__``, ...)."""
    members = {}
    for name, value in vars(cls).items():
        special = name.startswith("__") and name.endswith("__")
        if name.startswith("_") and not (special and callable(getattr(cls, name, None))):
            continue
        if special and not inspect.isfunction(value):
            continue  # __hash__ = None, __dataclass_fields__, ...
        members[name] = value
    return members


def _callable_of(value: object) -> object | None:
    if isinstance(value, staticmethod | classmethod):
        return value.__func__
    if isinstance(value, property):
        return None
    return value if callable(value) else None


def _kind(value: object) -> str:
    if isinstance(value, type):
        return "class"
    if isinstance(value, staticmethod):
        return "staticmethod"
    if isinstance(value, classmethod):
        return "classmethod"
    if isinstance(value, property):
        return "property"
    if callable(value):
        return "function"
    return "value"


def compare_names(
    where: str, stub: dict[str, object], solution: dict[str, object], home: str | None = None
) -> Iterator[str]:
    """Problems between a stub's and a solution's names, recursing into classes.

    With ``home`` (the solution module's name), names re-exported from another file of the
    package (an ``__init__.py`` re-exporting a topic file) are checked for presence and kind only:
    their own file compares their signatures.
    """
    for name in sorted(solution.keys() - stub.keys()):
        yield f"{where}: {name!r} is in the solution but missing from the stub"
    for name in sorted(stub.keys() - solution.keys()):
        yield f"{where}: {name!r} is in the stub but not in the solution"
    for name in sorted(stub.keys() & solution.keys()):
        a, b = stub[name], solution[name]
        if _kind(a) != _kind(b):
            yield f"{where}: {name!r} is a {_kind(a)} in the stub but a {_kind(b)} in the solution"
            continue
        if home is not None and getattr(b, "__module__", home) != home:
            continue
        if isinstance(a, type) and isinstance(b, type):
            yield from compare_names(f"{where}: class {name}", _members(a), _members(b))
        fa, fb = _callable_of(a), _callable_of(b)
        if fa is not None and fb is not None:
            sa, sb = signature_text(fa), signature_text(fb)
            if sa != sb:
                yield f"{where}: signature of {name!r} differs: stub {name}{sa}, solution {name}{sb}"


# --------------------------------------------------------------------------- tests and stubs


def imported_names(test_file: Path, module_names: set[str]) -> Iterator[tuple[str, str, int]]:
    """(dotted module under tinytorch.perf, name, line) for every kata name a test file uses."""
    tree = ast.parse(test_file.read_text(encoding="utf-8"), filename=str(test_file))
    aliases: dict[str, str] = {}  # local name -> "tinytorch.perf.<m>[.sub]"

    def kata_module(dotted: str) -> str | None:
        parts = dotted.split(".")
        if parts[:2] == ["tinytorch", "perf"] and len(parts) >= 3 and parts[2] in module_names:
            return dotted
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if kata_module(node.module):
                for alias in node.names:
                    yield node.module, alias.name, node.lineno
            elif node.module == PERF:
                for alias in node.names:
                    if alias.name in module_names:
                        aliases[alias.asname or alias.name] = f"{PERF}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if kata_module(alias.name) and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            dotted = _dotted_name(node.value)
            if dotted is None:
                continue
            head, _, rest = dotted.partition(".")
            target = aliases[head] + (f".{rest}" if rest else "") if head in aliases else dotted
            if kata_module(target):
                yield target, node.attr, node.lineno


def _dotted_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted_name(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def not_implemented_problems(path: Path, relative: str, module: registry.Module) -> Iterator[str]:
    """Every ``raise NotImplementedError`` in a stub whose message misses its qualname, module or file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def visit(node: ast.AST, prefix: str) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = f"{prefix}{child.name}"
                for raise_ in _raises(child):
                    yield from _check_raise(raise_, qualname)
                yield from visit(child, f"{qualname}.<locals>.")

    def _check_raise(node: ast.Raise, qualname: str) -> Iterator[str]:
        exc = node.exc
        name = exc.func if isinstance(exc, ast.Call) else exc
        if not (isinstance(name, ast.Name) and name.id == "NotImplementedError"):
            return
        where = f"{relative}:{node.lineno} {qualname}"
        args = exc.args if isinstance(exc, ast.Call) else []
        if not args or not isinstance(args[0], ast.Constant) or not isinstance(args[0].value, str):
            yield f"{where}: NotImplementedError needs a literal message naming {qualname}, module and file"
            return
        message = args[0].value
        for part in (qualname, f"module {module.number}", relative):
            if part not in message:
                yield f"{where}: NotImplementedError message {message!r} does not name {part!r}"

    yield from visit(tree, "")


def _raises(function: ast.AST) -> Iterator[ast.Raise]:
    """The raise statements of a function body, not of functions or classes nested in it."""
    for child in ast.iter_child_nodes(function):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(child, ast.Raise) and child.exc is not None:
            yield child
        yield from _raises(child)


def _raises_not_implemented(node: ast.AST) -> bool:
    """Does this function (or any method of this class) raise ``NotImplementedError``?"""
    if isinstance(node, ast.ClassDef):
        return False  # a class is compared item by item, never as a whole
    for raise_ in _raises(node):
        exc = raise_.exc.func if isinstance(raise_.exc, ast.Call) else raise_.exc
        if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
            return True
    return False


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _items(body: list[ast.stmt], in_class: bool) -> dict[str, ast.stmt]:
    """The named items of a module or class body: defs, classes, assignments to one name, and
    (in a class) the docstring. A name bound twice (a property's getter and setter) gets ``#2``."""
    items: dict[str, ast.stmt] = {}
    for i, node in enumerate(body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = node.name
        elif isinstance(node, ast.Assign) and [type(t) for t in node.targets] == [ast.Name]:
            name = node.targets[0].id  # type: ignore[attr-defined]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
        elif in_class and i == 0 and _is_docstring(node):
            name = "<docstring>"
        else:
            continue  # imports, the module docstring, `if TYPE_CHECKING:` blocks ...
        key, n = name, 1
        while key in items:
            n += 1
            key = f"{name}#{n}"
        items[key] = node
    return items


def _class_header(node: ast.ClassDef) -> str:
    return ast.dump(
        ast.ClassDef(
            name=node.name,
            bases=node.bases,
            keywords=node.keywords,
            body=[],
            decorator_list=node.decorator_list,
        )
    )


def _first_difference(a: ast.AST, b: ast.AST) -> str:
    """The first line where two items' sources differ (as ``ast.unparse`` writes them)."""
    la, lb = ast.unparse(a).splitlines(), ast.unparse(b).splitlines()
    for x, y in zip(la, lb, strict=False):
        if x != y:
            return f"stub `{x.strip()}` vs solution `{y.strip()}`"
    return f"the stub has {len(la)} line(s), the solution {len(lb)}"


def plumbing_problems(
    stub_path: Path, solution_path: Path, stub_label: str, solution_label: str
) -> Iterator[str]:
    """Items given in full in a stub (no ``NotImplementedError``) that differ from the solution's.

    A stub item with no counterpart in the solution is reported too when the name check would
    not report it (private helpers, class docstrings, dataclass fields without a default).
    """
    stub_tree = ast.parse(stub_path.read_text(encoding="utf-8"), filename=str(stub_path))
    solution_tree = ast.parse(solution_path.read_text(encoding="utf-8"), filename=str(solution_path))

    def compare(stub_body: list[ast.stmt], solution_body: list[ast.stmt], prefix: str, in_class: bool):
        theirs = _items(solution_body, in_class)
        for key, mine in _items(stub_body, in_class).items():
            qualname = f"{prefix}{key}"
            where = f"{stub_label}:{mine.lineno} {qualname}"
            other = theirs.get(key)
            if other is None:
                public = not key.startswith("_") or (key.startswith("__") and key.endswith("__"))
                checked_by_names = public and not isinstance(mine, ast.AnnAssign | ast.Expr)
                if not checked_by_names:
                    yield f"{where}: given in the stub but not in {solution_label}"
                continue
            there = f"{solution_label}:{other.lineno}"
            if isinstance(mine, ast.ClassDef) and isinstance(other, ast.ClassDef):
                if _class_header(mine) != _class_header(other):
                    yield f"{where}: the class's decorators or bases differ from {there}"
                yield from compare(mine.body, other.body, f"{qualname}.", True)
                continue
            if _raises_not_implemented(mine):
                continue  # the lesson: the student writes this body
            if ast.dump(mine) != ast.dump(other):
                yield (
                    f"{where}: the plumbing given in the stub differs from {there} "
                    f"({_first_difference(mine, other)})"
                )

    yield from compare(stub_tree.body, solution_tree.body, "", False)


def check_parity(root: Path | None = None) -> list[str]:
    """Problems between stubs and solutions of every ready module; empty when they agree."""
    root = root or registry.repo_root()
    ready = [m for m in registry.modules() if m.ready]
    problems: list[str] = []
    stubs: dict[str, types.ModuleType] = {}
    for m in ready:
        problems += _compare_module(m, root, stubs)
    module_names = {m.name for m in registry.modules()}
    test_files = sorted({*(root / "tests").rglob("*.py")} - {*(root / "tests" / "machinery").rglob("*.py")})
    for test_file in test_files:
        relative = test_file.relative_to(root).as_posix()
        for dotted, name, line in imported_names(test_file, module_names):
            module_name = dotted.split(".")[2]
            if module_name not in stubs:
                module = registry.get(module_name)
                if not module.ready:
                    problems.append(
                        f"{relative}:{line}: imports {dotted}.{name}, but module "
                        f"{module.number} {module.name} is planned"
                    )
                continue
            if not _exists(stubs[module_name], dotted, name):
                problems.append(f"{relative}:{line}: imports {name!r} from {dotted}, which the stub lacks")
    return problems


def _exists(stub_package: types.ModuleType, dotted: str, name: str) -> bool:
    """Does ``dotted.name`` exist in the stub (loaded under an alias)?

    ``dotted`` is ``tinytorch.perf.<m>`` followed by submodules and attributes, e.g.
    ``tinytorch.perf.profiling.timer.Timer``; each part is an attribute or else a submodule.
    """
    target: object = stub_package
    for part in [*dotted.split(".")[3:], name]:
        if hasattr(target, part):
            target = getattr(target, part)
            continue
        if not isinstance(target, types.ModuleType):
            return False
        try:
            target = importlib.import_module(f"{target.__name__}.{part}")
        except ImportError:
            return False
    return True


def _compare_module(m: registry.Module, root: Path, stubs: dict[str, types.ModuleType]) -> list[str]:
    kata, solution = root / m.kata, root / m.solution
    label = f"module {m.number} {m.name}"
    problems = []
    kata_files, solution_files = _py_files(kata), _py_files(solution)
    if "__init__.py" not in kata_files:
        return [f"{label}: no {m.kata}/__init__.py"]
    if "__init__.py" not in solution_files:
        return [f"{label}: no {m.solution}/__init__.py"]
    for f in sorted(set(solution_files) - set(kata_files)):
        problems.append(f"{label}: {m.solution}/{f} has no stub {m.kata}/{f}")
    for f in sorted(set(kata_files) - set(solution_files)):
        problems.append(f"{label}: {m.kata}/{f} has no solution {m.solution}/{f}")
    aliases = {"katas": f"_parity_katas_{m.name}", "solutions": f"_parity_solutions_{m.name}"}
    try:
        packages = {impl: _load_package(alias, root / m.tree(impl)) for impl, alias in aliases.items()}
    except Exception as error:  # the report must say which tree fails to import, whatever the error
        return problems + [f"{label}: cannot import: {type(error).__name__}: {error}"]
    stubs[m.name] = packages["katas"]
    for f in sorted(set(kata_files) & set(solution_files)):
        loaded = {}
        for impl, alias in aliases.items():
            try:
                loaded[impl] = importlib.import_module(_submodule_name(alias, f))
            except Exception as error:
                problems.append(f"{label}: cannot import {m.tree(impl)}/{f}: {type(error).__name__}: {error}")
        if len(loaded) == 2:
            problems += compare_names(
                f"{m.kata}/{f}",
                public_names(loaded["katas"], aliases["katas"]),
                public_names(loaded["solutions"], aliases["solutions"]),
                home=loaded["solutions"].__name__,
            )
        problems += not_implemented_problems(kata / f, f"{m.kata}/{f}", m)
        problems += plumbing_problems(kata / f, solution / f, f"{m.kata}/{f}", f"{m.solution}/{f}")
    return problems
