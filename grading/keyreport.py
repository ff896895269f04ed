"""``python -m grading.keyreport coverage|fairness [module ...]``: how well the answer keys guard the tests.

For instructors and key authors, not for grading.

* ``coverage``: per module, how many of its tests an answer-key check *decides* (the check's kata
  functions, traced on the reference, are all called by the test, and its ``covers`` name the
  test): a test no check decides keeps whatever verdict the student's process reports. Lists the
  undecided tests.
* ``fairness``: per module and kata file, grades the reference with that one file replaced by its
  stub (an honest, partly solved submission) and lists the tests whose credit an answer key took:
  there must be none (a key must never take an honest test's points).
* ``fairness --functions``: the same, finer: per function or method defined in the module's
  reference files (private ones, properties and decorated ones included), grades the reference
  with only that function's body replaced by ``raise NotImplementedError`` (its signature and
  docstring kept: "I have not written this one yet"). A function whose stub keeps the module from
  importing (one called at import time) is skipped and named. Every grading uses one seed,
  ``TINYTORCH_GRADING_SEED`` if set (else one drawn and printed, to rerun with). ``-k TEXT``
  limits it to the functions whose name contains TEXT.

Exit status 1 when a fairness report finds a test whose credit a key took.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from grading import autograde
from tinytorch.course import registry


def decided(plan: dict, units: dict, module: str) -> tuple[list[str], list[str]]:
    """The module's tests that some answer-key check decides, and those none does."""
    ids = plan[module]
    keys = [k for k in ids if autograde.is_key(k)]
    covers = autograde.declared_covers(registry.repo_root() / registry.get(module).key) if keys else {}
    yes, no = [], []
    for test in (i for i in ids if not autograde.is_key(i)):
        found = any(
            units.get(k)
            and units[k] <= units.get(test, frozenset())
            and (not covers.get(k.split("::", 1)[1]) or autograde.covered(test, covers[k.split("::", 1)[1]]))
            for k in keys
        )
        (yes if found else no).append(test)
    return yes, no


def coverage(modules: list[str]) -> int:
    plan, units = autograde.prepare()
    for module in modules:
        yes, no = decided(plan, units, module)
        print(f"{module}: {len(yes)}/{len(yes) + len(no)} tests decided by an answer-key check")
        for test in no:
            print(f"    undecided: {test.split('::', 1)[1]}")
    return 0


def fairness(modules: list[str]) -> int:
    root = registry.repo_root()
    settings = autograde.load_settings()
    unfair = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in modules:
            module = registry.get(name)
            for stub in sorted((root / module.kata).glob("*.py")):
                if stub.name == "__init__.py":
                    continue
                submission = Path(tmp) / f"{name}-{stub.stem}"
                shutil.copytree(root / "solutions", submission / "katas")
                shutil.copyfile(stub, submission / "katas" / Path(module.kata).name / stub.name)
                grade = autograde.grade(submission, settings=settings, only=[name]).modules[0]
                unfair += len(grade.inconsistent)
                print(
                    f"{name}, {stub.name} unsolved: {float(grade.score):.1f} points; "
                    f"credit taken by the key from {len(grade.inconsistent)} test(s)"
                )
                for test in grade.inconsistent:
                    print(f"    {test.split('::', 1)[1]}")
    return 1 if unfair else 0


# --------------------------------------------------------------------------- function-level stubs


@dataclass(frozen=True)
class Function:
    """A function or method defined in a source file (not inside another function's body)."""

    name: str  # ``Class.method``, a property's setter ``Class.prop.setter``, a redefinition ``f#2``
    lineno: int  # of the ``def``
    index: int  # its place among the file's functions (in source order)


def _definitions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function of a module with its qualified name: at the top level, in classes (nested
    ones too) and in blocks (``if``, ``try``, ...) there, but not those inside a function's body."""
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((prefix + child.name, child))
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                visit(child, prefix)

    visit(tree, "")
    return found


def functions(source: str) -> list[Function]:
    """The functions and methods :func:`stub_function` can replace, in source order."""
    result, seen = [], {}
    for index, (name, node) in enumerate(_definitions(ast.parse(source))):
        accessor = [
            d.attr
            for d in node.decorator_list
            if isinstance(d, ast.Attribute) and d.attr in ("setter", "getter", "deleter")
        ]
        if accessor:
            name = f"{name}.{accessor[0]}"
        seen[name] = seen.get(name, 0) + 1
        result.append(Function(name if seen[name] == 1 else f"{name}#{seen[name]}", node.lineno, index))
    return result


def stub_function(source: str, function: Function, message: str) -> str:
    """``source`` with the body of ``function`` replaced by ``raise NotImplementedError(message)``:
    its decorators, signature and docstring are kept, the rest of the file byte for byte."""
    node = _definitions(ast.parse(source))[function.index][1]
    data = source.encode("utf-8")  # ast columns count UTF-8 bytes
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(lineno: int, col: int) -> int:
        return starts[lineno - 1] + col

    body = node.body
    first = body[0]
    documented = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    rest = body[1:] if documented else body
    statement = f"raise NotImplementedError({message!r})".encode()
    if rest:
        head = rest[0]
        decorators = getattr(head, "decorator_list", None)
        at = decorators[0] if decorators else head
        begin = offset(at.lineno, at.col_offset)
        if decorators:  # back to the "@" (the decorator's column is its expression's)
            begin = data.rindex(b"@", starts[at.lineno - 1], begin + 1)
        end = offset(body[-1].end_lineno, body[-1].end_col_offset)
        new = data[:begin] + statement + data[end:]
    else:  # a docstring alone
        end = offset(first.end_lineno, first.end_col_offset)
        indent = data[starts[first.lineno - 1] : offset(first.lineno, first.col_offset)]
        joint = b"\n" + indent if not indent.strip() else b"; "
        new = data[:end] + joint + statement + data[end:]
    text = new.decode("utf-8")
    stubbed = _definitions(ast.parse(text))[function.index][1]
    if not isinstance(stubbed.body[-1], ast.Raise) or len(stubbed.body) != 1 + documented:
        raise AssertionError(f"{function.name}: the body was not replaced as intended")
    return text


def _segment(source: str, function: Function) -> tuple[int, int]:
    """The lines of a definition, its decorators included: (first, end) as 0-based line indices."""
    node = _definitions(ast.parse(source))[function.index][1]
    return min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1, node.end_lineno


def _only_raises(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether a definition's body (its docstring aside) is a single ``raise``."""
    body = node.body[1:] if ast.get_docstring(node, clean=False) is not None else node.body
    return len(body) == 1 and isinstance(body[0], ast.Raise)


def kata_stub(reference: str, kata: str, function: Function) -> str | None:
    """``reference`` with ``function`` replaced whole by the kata's stub of it, when the kata's does
    more than raise (the argument checks a stub gives, say): what a student who has written every
    other function submits. ``None`` when the kata has no such stub (none, the reference's own
    definition, or a bare ``raise``, which :func:`stub_function` already covers)."""
    found = [f for f in functions(kata) if f.name == function.name]
    if not found:
        return None
    node = _definitions(ast.parse(kata))[found[0].index][1]
    raises = any(
        isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n.exc or ast.Constant(None))
        for n in ast.walk(node)
    )
    if not raises or _only_raises(node):
        return None
    start, end = _segment(reference, function)
    kata_start, kata_end = _segment(kata, found[0])
    lines, kata_lines = reference.splitlines(keepends=True), kata.splitlines(keepends=True)
    text = "".join(lines[:start] + kata_lines[kata_start:kata_end] + lines[end:])
    ast.parse(text)
    return text


@dataclass(frozen=True)
class Variant:
    """The reference of a module with one function stubbed."""

    file: Path  # relative to the module's folder
    function: Function
    kind: str  # "raise" (its body raises) or "kata" (the kata's stub of it, argument checks and all)
    text: str  # the file's new source


def variants(folder: Path, module: str, katas: Path | None = None) -> list[Variant]:
    """For each function of each ``.py`` file under ``folder`` (a module's reference): its body
    replaced by ``raise NotImplementedError``, and, when the kata folder ``katas`` has a stub of it
    that does more than raise, that stub."""
    found = []
    for path in sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts):
        source = path.read_text(encoding="utf-8")
        relative = path.relative_to(folder)
        kata_file = katas / relative if katas else None
        kata = kata_file.read_text(encoding="utf-8") if kata_file and kata_file.is_file() else None
        for function in functions(source):
            message = f"{function.name} (module {module}): not written yet (stub of {relative}, keyreport)"
            found.append(Variant(relative, function, "raise", stub_function(source, function, message)))
            text = kata_stub(source, kata, function) if kata is not None else None
            if text is not None:
                found.append(Variant(relative, function, "kata", text))
    return found


def _import_error(module: str, folder: Path) -> str:
    """Why ``tinytorch.perf.<module>`` served from ``folder`` fails to import ("" when it imports)."""
    env = {**os.environ, "TINYTORCH_IMPL": f"solutions,{module}={folder}", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", f"import tinytorch.perf.{module}"],
        cwd=registry.repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode == 0:
        return ""
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


@contextlib.contextmanager
def _reference_keys_once():
    """While open, the grader runs the answer keys on the reference once per seed and content (the
    plan's stamp) rather than once per grading: every variant here is graded with the same seed on
    the same reference, and that run is half of a grading's time."""
    run = autograde.reference_keys
    done: dict[tuple[int, str], dict] = {}

    def reference_keys(ctx: autograde.Context, plan: dict) -> dict:
        key = (ctx.seed, autograde._plan_stamp(ctx))
        if key not in done:
            done[key] = run(ctx, plan)
        return done[key]

    autograde.reference_keys = reference_keys
    try:
        yield
    finally:
        autograde.reference_keys = run


def function_fairness(modules: list[str], match: str = "") -> int:
    """Per function of each module's reference: the reference with that function stubbed, graded
    for that module only; the tests whose credit an answer key took (there must be none)."""
    root = registry.repo_root()
    settings = autograde.load_settings()
    previous = os.environ.get("TINYTORCH_GRADING_SEED")
    seed = int(previous) if previous else secrets.randbits(31)
    os.environ["TINYTORCH_GRADING_SEED"] = str(seed)
    print(f"seed {seed} (rerun with TINYTORCH_GRADING_SEED={seed})", flush=True)
    unfair, totals = 0, []
    try:
        with tempfile.TemporaryDirectory() as tmp, _reference_keys_once():
            submission = Path(tmp) / "submission"
            shutil.copytree(
                root / "solutions", submission / "katas", ignore=shutil.ignore_patterns("__pycache__")
            )
            for name in modules:
                module = registry.get(name)
                folder = submission / "katas" / Path(module.solution).name
                graded, skipped, taken = {"raise": 0, "kata": 0}, 0, 0
                for variant in variants(root / module.solution, name, root / module.kata):
                    if match and match not in variant.function.name:
                        continue
                    path = folder / variant.file
                    original = path.read_bytes()
                    path.write_text(variant.text, encoding="utf-8")
                    label = f"{name}, {variant.file}:{variant.function.lineno} {variant.function.name}"
                    label += " (kata's stub)" if variant.kind == "kata" else ""
                    try:
                        error = _import_error(name, folder)
                        if error:
                            skipped += 1
                            print(f"{label}: skipped, the module does not import with it stubbed ({error})")
                            continue
                        grade = autograde.grade(submission, settings=settings, only=[name]).modules[0]
                    finally:
                        path.write_bytes(original)
                    graded[variant.kind] += 1
                    taken += len(grade.inconsistent)
                    passed = sum(t.outcome == "passed" for t in grade.tests if not autograde.is_key(t.nodeid))
                    tests = sum(not autograde.is_key(t.nodeid) for t in grade.tests)
                    print(
                        f"{label} unsolved: {float(grade.score):.1f} points, {passed}/{tests} tests pass; "
                        f"credit taken by the key from {len(grade.inconsistent)} test(s)",
                        flush=True,
                    )
                    messages = {t.nodeid: t.message for t in grade.tests}
                    for test in grade.inconsistent:
                        print(f"    {test.split('::', 1)[1]}: {messages.get(test, '')}")
                    for note in grade.notes:
                        if note.startswith("inconsistent:"):
                            print(f"    {note}")
                unfair += taken
                totals.append(
                    f"{name}: {graded['raise']} function(s) stubbed, {graded['kata']} as the kata's stub, "
                    f"{skipped} skipped, {taken} wrong decision(s)"
                )
    finally:
        if previous is None:
            os.environ.pop("TINYTORCH_GRADING_SEED", None)
    print("\n".join(totals))
    return 1 if unfair else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grading.keyreport",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("report", choices=("coverage", "fairness"))
    parser.add_argument(
        "modules", nargs="*", help="names or numbers (default: every ready module with a key)"
    )
    parser.add_argument(
        "--functions",
        action="store_true",
        help="fairness: stub one function or method of the reference at a time, not one file",
    )
    parser.add_argument(
        "-k", dest="match", default="", help="--functions: only functions whose name contains this"
    )
    args = parser.parse_intermixed_args(argv)
    if (args.functions or args.match) and args.report != "fairness":
        parser.error("--functions and -k go with the fairness report")
    if args.match and not args.functions:
        parser.error("-k goes with --functions")
    names = [registry.get(m).name for m in args.modules] or [
        m.name for m in registry.modules() if m.ready and m.key
    ]
    if args.report == "coverage":
        return coverage(names)
    return function_fairness(names, args.match) if args.functions else fairness(names)


if __name__ == "__main__":
    raise SystemExit(main())
