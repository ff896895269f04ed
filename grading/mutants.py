"""Mutation testing of a module's reference: ``python -m grading mutants <module> [...]``.

The gallery of classic mistakes (``grading/gallery.py``) holds the wrong answers a student is
likely to write; this command asks the wider question: *which small change to the reference does
no test notice?* It plants every mutation of every site in ``solutions/<module>/*.py``, one at a
time, and runs the module's test file on each variant; a variant is *killed* when a test fails
(or errors, or hangs past the timeout), and *survives* when every test still passes.

The mutations, at every site (not a sample):

* comparisons: ``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``is``/``is not``, ``in``/``not in``
  swapped (each operator of a chained comparison on its own);
* ``and``/``or`` swapped; ``not x`` -> ``x``; ``-x`` -> ``x``;
* arithmetic: ``+``/``-``, ``*``/``/``, ``//`` -> ``/``, ``%`` -> ``*``, ``**`` -> ``*``,
  ``&``/``|``, in expressions and augmented assignments (``+=`` -> ``-=``);
* numbers ``n`` -> ``n + 1`` (``0`` -> ``1``, ``1.0`` -> ``2.0``), ``True``/``False`` swapped;
* a slice bound ``x[a:b]`` -> ``x[a:b + 1]`` (and ``a + 1``), the off-by-one;
* a statement dropped: a call on its own line (``check_keep(...)``), a ``raise``, an ``assert``,
  an assignment to an attribute (``self.training = ...``) becomes ``pass``.

Left alone: docstrings and other strings, type annotations, the text of error messages (what a
``raise`` raises; the ``raise`` itself is dropped as a whole), ``__all__``, and lines marked
``# pragma: no mutate``.

Some mutants cannot be told apart from the reference by any test, because they compute the same
thing (``x[:n + 1]`` when the array has n rows, ``<`` vs ``<=`` on values that never tie). They
are *equivalent*, and are listed with the reason in ``grading/equivalent/<module>.toml``::

    [[equivalent]]
    file = "attention.py"                     # relative to solutions/<module>/
    function = "cached_attention"             # the enclosing def's qualified name ("" at top level)
    original = "past + t"                     # ast.unparse of the site, as this command prints it
    mutant = "past - t"
    occurrence = 2                            # optional (default 1): the n-th same change in
                                              # that function, as the command prints it
    why = "One line: why no input can tell the two apart."

The score is ``killed / (mutants - equivalent)``. An entry that matches no mutant any more is
reported as stale (the code changed under it). Exit status 1 when a mutant survives that is not
listed as equivalent and ``--min`` is not met (default 100 %), or a stale entry exists.

Speed: the variants run in parallel (``--jobs``) through the gallery's fork server, each with
``-x``, so a killed mutant costs only the tests up to its first failure. ``--json PATH`` writes
every mutant's verdict; ``--rerun PATH`` runs only the mutants that survived in such a file
(after adding a test), ``--function TEXT`` only the sites in functions whose name contains TEXT.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import shutil
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from grading import gallery
from tinytorch.course import registry

EQUIVALENT_DIR = Path("grading") / "equivalent"
NO_MUTATE = "pragma: no mutate"

_COMPARE_SWAP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_BINOP_SWAP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.Mult,
    ast.Pow: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
}


@dataclass
class Mutant:
    """One planted change: the text of ``file`` with ``[start, end)`` (byte offsets) replaced."""

    module: str
    file: str
    line: int
    function: str
    original: str  # ast.unparse of the site before ...
    mutant: str  # ... and after
    start: int
    end: int
    replacement: str
    occurrence: int = 1  # the n-th mutant with this file, function, original and mutant
    verdict: str = ""  # "killed", "survived", "equivalent"
    caught_by: str = ""
    seconds: float = 0.0

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return (self.file, self.function, self.original, self.mutant, self.occurrence)

    @property
    def label(self) -> str:
        where = f"{self.file}:{self.line}" + (f" {self.function}" if self.function else "")
        nth = f" (occurrence {self.occurrence})" if self.occurrence > 1 else ""
        return f"{where}: `{self.original}` -> `{self.mutant}`{nth}"


def _short(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Sites(ast.NodeVisitor):
    """Walks one file and lists its mutants (byte offsets into the UTF-8 source)."""

    def __init__(self, module: str, file: str, source: str) -> None:
        self.module, self.file = module, file
        self.data = source.encode("utf-8")
        self.lines = source.splitlines()
        starts, offset = [], 0
        for line in source.encode("utf-8").splitlines(keepends=True):
            starts.append(offset)
            offset += len(line)
        starts.append(offset)
        self.starts = starts
        self.stack: list[str] = []
        self.mutants: list[Mutant] = []

    # -- positions ---------------------------------------------------------------------------
    def _span(self, node: ast.AST) -> tuple[int, int]:
        start = self.starts[node.lineno - 1] + node.col_offset
        end = self.starts[node.end_lineno - 1] + node.end_col_offset
        return start, end

    def _skip_line(self, node: ast.AST) -> bool:
        return any(NO_MUTATE in self.lines[i - 1] for i in range(node.lineno, node.end_lineno + 1))

    def _add(self, node: ast.AST, new: ast.AST | None, text: str | None = None) -> None:
        """A mutant replacing ``node``'s source by ``new`` (or by the statement ``text``)."""
        if self._skip_line(node):
            return
        start, end = self._span(node)
        original = ast.unparse(node)
        if new is not None:
            replacement = f"({ast.unparse(new)})"
            mutant = ast.unparse(new)
        else:
            replacement = mutant = text or "pass"
        self.mutants.append(
            Mutant(
                module=self.module,
                file=self.file,
                line=node.lineno,
                function=".".join(self.stack),
                original=_short(original),
                mutant=_short(mutant),
                start=start,
                end=end,
                replacement=replacement,
            )
        )

    # -- scopes ------------------------------------------------------------------------------
    def _scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                self.visit(base)
        self.stack.append(node.name)
        if not isinstance(node, ast.ClassDef):
            self._arguments(node.args)  # a default is part of its function
        self._body(node.body)
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope

    def _arguments(self, args: ast.arguments) -> None:
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.visit(default)  # defaults yes, annotations no

    def _body(self, body: list[ast.stmt]) -> None:
        for index, stmt in enumerate(body):
            if index == 0 and _is_docstring(stmt):
                continue
            self.visit(stmt)

    def visit_Module(self, node: ast.Module) -> None:
        self._body(node.body)

    # -- statements --------------------------------------------------------------------------
    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant):  # a string or ``...`` on its own: not code
            return
        if isinstance(node.value, ast.Call):
            self._add(node, None)
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        self._add(node, None)  # the check dropped; the message itself is not mutated

    def visit_Assert(self, node: ast.Assert) -> None:
        self._add(node, None)

    def visit_Assign(self, node: ast.Assign) -> None:
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        if all(isinstance(t, ast.Attribute) for t in node.targets):
            self._add(node, None)
        self.visit(node.value)
        for target in node.targets:
            if not isinstance(target, ast.Name):
                self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:  # the annotation is left alone
            self.visit(node.value)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        swap = _BINOP_SWAP.get(type(node.op))
        if swap is not None:
            new = copy.deepcopy(node)
            new.op = swap()
            self._add_statement(node, new)
        self.visit(node.value)
        if not isinstance(node.target, ast.Name):
            self.visit(node.target)

    def _add_statement(self, node: ast.stmt, new: ast.stmt) -> None:
        self._add(node, None, text=ast.unparse(new))

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            return
        self.visit(node.test)
        self._body(node.body)
        self._body(node.orelse)

    # -- expressions -------------------------------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> None:
        for index, op in enumerate(node.ops):
            swap = _COMPARE_SWAP.get(type(op))
            if swap is not None:
                new = copy.deepcopy(node)
                new.ops[index] = swap()
                self._add(node, new)
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._add(node, new)
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        swap = _BINOP_SWAP.get(type(node.op))
        if swap is not None:
            new = copy.deepcopy(node)
            new.op = swap()
            self._add(node, new)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, (ast.Not, ast.USub)):
            self._add(node, copy.deepcopy(node.operand))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self._add(node, ast.Constant(not value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._add(node, ast.Constant(value + 1))

    def visit_Slice(self, node: ast.Slice) -> None:
        for bound in ("lower", "upper"):
            value = getattr(node, bound)
            if value is not None and not isinstance(value, ast.Constant):
                self._add(value, ast.BinOp(copy.deepcopy(value), ast.Add(), ast.Constant(1)))
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        return  # the text of a message


def _is_docstring(stmt: ast.stmt) -> bool:
    value = stmt.value if isinstance(stmt, ast.Expr) else None
    return isinstance(value, ast.Constant) and isinstance(value.value, str)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def mutants_of(name: str, root: Path | None = None) -> list[Mutant]:
    """Every mutant of module ``name``'s reference files, in file and line order; each one
    compiles (a site whose replacement would not is left out)."""
    root = root or registry.repo_root()
    module = registry.get(name)
    found: list[Mutant] = []
    for path in sorted((root / module.solution).glob("*.py")):
        source = path.read_text(encoding="utf-8")
        sites = _Sites(module.name, path.name, source)
        sites.visit(ast.parse(source))
        seen: dict[tuple[str, str, str, str], int] = {}
        for mutant in sites.mutants:
            try:
                compile(apply(mutant, source), path.name, "exec")
            except SyntaxError:
                continue
            same = (mutant.file, mutant.function, mutant.original, mutant.mutant)
            seen[same] = mutant.occurrence = seen.get(same, 0) + 1
            found.append(mutant)
    return found


def apply(mutant: Mutant, source: str) -> str:
    data = source.encode("utf-8")
    return (data[: mutant.start] + mutant.replacement.encode("utf-8") + data[mutant.end :]).decode("utf-8")


def load_equivalent(name: str, root: Path | None = None) -> list[dict]:
    """The module's equivalent mutants (``grading/equivalent/<module>.toml``), [] if none."""
    root = root or registry.repo_root()
    path = root / EQUIVALENT_DIR / f"{name}.toml"
    if not path.is_file():
        return []
    entries = tomllib.loads(path.read_text(encoding="utf-8")).get("equivalent", [])
    for index, entry in enumerate(entries):
        missing = {"file", "function", "original", "mutant", "why"} - set(entry)
        if missing:
            raise ValueError(f"{path}: entry {index + 1} lacks {', '.join(sorted(missing))}")
    return entries


def run_mutant(mutant: Mutant, root: Path, timeout: float) -> Mutant:
    """Plant ``mutant`` in a copy of its module's reference and run the module's tests on it."""
    module = registry.get(mutant.module)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"tinytorch-mutant-{mutant.module}-") as tmp:
        folder = Path(tmp) / module.name
        shutil.copytree(root / module.solution, folder, ignore=shutil.ignore_patterns("__pycache__"))
        path = folder / mutant.file
        path.write_text(apply(mutant, path.read_text(encoding="utf-8")), encoding="utf-8")
        try:
            outcomes, output = gallery._pytest(module, folder, root, None, timeout)
        except TimeoutError:
            mutant.verdict, mutant.caught_by = "killed", f"(ran past {timeout:g} s)"
        else:
            if outcomes is None:
                hung = "+ Timeout +" in output
                mutant.verdict = "killed"
                mutant.caught_by = "(a test hung)" if hung else "(pytest wrote no report)"
            else:
                failure = next((o for o in outcomes if o.outcome in ("failed", "error")), None)
                mutant.verdict = "killed" if failure else "survived"
                mutant.caught_by = failure.nodeid if failure else ""
    mutant.seconds = time.perf_counter() - started
    return mutant


def run(
    name: str,
    root: Path | None = None,
    jobs: int | None = None,
    timeout: float = gallery.RUN_TIMEOUT,
    function: str = "",
    only: set[tuple[str, str, str, str, int]] | None = None,
    progress=None,
) -> tuple[list[Mutant], list[dict]]:
    """Run every mutant of module ``name``: (mutants with verdicts, stale equivalent entries)."""
    root = root or registry.repo_root()
    mutants = [m for m in mutants_of(name, root) if function in m.function]
    if only is not None:
        mutants = [m for m in mutants if m.key in only]
    equivalent = load_equivalent(name, root)
    known = {
        (e["file"], e["function"], e["original"], e["mutant"], e.get("occurrence", 1)): e for e in equivalent
    }
    used: set[tuple[str, str, str, str, int]] = set()
    todo = []
    for mutant in mutants:
        if mutant.key in known:
            mutant.verdict = "equivalent"
            used.add(mutant.key)
        else:
            todo.append(mutant)
    with ThreadPoolExecutor(max_workers=jobs or len(_cpus())) as pool:
        for done in pool.map(lambda m: run_mutant(m, root, timeout), todo):
            if progress:
                progress(done)
    stale = [] if (function or only is not None) else [e for k, e in known.items() if k not in used]
    return mutants, stale


def _cpus() -> list[int]:
    try:
        import os

        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return [0, 1]


def score(mutants: list[Mutant]) -> tuple[int, int, int]:
    """(killed, counted, equivalent): counted excludes the equivalent ones."""
    killed = sum(m.verdict == "killed" for m in mutants)
    equivalent = sum(m.verdict == "equivalent" for m in mutants)
    return killed, len(mutants) - equivalent, equivalent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grading mutants",
        description="Plant every small change in a module's reference and run its tests on each; "
        "list the changes no test notices.",
    )
    parser.add_argument("modules", nargs="+", help="module names or numbers")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="variants run at once (default: CPUs)")
    parser.add_argument("--timeout", type=float, default=gallery.RUN_TIMEOUT, help="seconds per pytest run")
    parser.add_argument("--function", default="", help="only sites in functions whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the mutants without running them")
    parser.add_argument("--json", type=Path, help="write every mutant's verdict to this file")
    parser.add_argument("--rerun", type=Path, help="run only the mutants that survived in this --json file")
    parser.add_argument(
        "--min", type=float, default=100.0, help="exit 1 below this score in percent (default 100)"
    )
    args = parser.parse_args(argv)
    names = []
    for key in args.modules:
        try:
            names.append(registry.get(key).name)
        except KeyError as error:
            parser.error(str(error.args[0]))
    only = None
    if args.rerun:
        previous = json.loads(args.rerun.read_text(encoding="utf-8"))
        only = {
            (m["file"], m["function"], m["original"], m["mutant"], m["occurrence"])
            for m in previous["mutants"]
            if m["verdict"] == "survived"
        }
    failed, everything = False, []
    for name in names:
        if args.list:
            for mutant in mutants_of(name):
                if args.function in mutant.function:
                    print(mutant.label)
            continue
        started = time.perf_counter()
        mutants, stale = run(name, jobs=args.jobs, timeout=args.timeout, function=args.function, only=only)
        everything += mutants
        killed, counted, equivalent = score(mutants)
        survivors = [m for m in mutants if m.verdict == "survived"]
        for mutant in survivors:
            print(f"survived  {name}/{mutant.label}")
        for entry in stale:
            print(
                f"stale     {name}/{entry['file']} {entry['function']}: `{entry['original']}` -> "
                f"`{entry['mutant']}` (occurrence {entry.get('occurrence', 1)}) is listed as "
                "equivalent but is no mutant any more"
            )
        percent = 100.0 * killed / counted if counted else 100.0
        print(
            f"{name}: {len(mutants)} mutants, {equivalent} equivalent "
            f"({EQUIVALENT_DIR / (name + '.toml')}), {killed} of {counted} others killed: "
            f"{percent:.1f} % ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        failed |= bool(stale) or percent < args.min
    if args.json and not args.list:
        args.json.write_text(
            json.dumps({"mutants": [asdict(m) for m in everything]}, indent=1), encoding="utf-8"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
