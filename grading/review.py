"""A static review of a student's submission, per module: ``python -m grading.review <folder>``.

What it does
------------
Reads every ``*.py`` file of one module's folder as the grader staged it (a student's
``katas/<module>/``) with :mod:`ast` -- never importing or running it -- and lists the imports and
constructs that a kata never needs: reaching the grader's objects through the garbage collector or
the frames, rebinding the tests' names through a function's ``__globals__``, running code built
from strings, starting processes, smuggling data out, patching an imported module. Every rule is a
line of :data:`grading.review_rules.RULES`, with the reason it is there; this file is the reviewer
that applies them.

It only reports
---------------
A finding is a question for the instructor, not a verdict: nothing is zeroed because of it. The
grader shows the findings next to the scores (a ``review`` column in the gradebook,
``extra_data.modules[<m>].review`` in ``results.json``), and a human decides. The command line
prints them for one folder (exit 1 when there are any, 0 when none).

What a module may use
---------------------
The reference of a module sometimes needs a name the rules list (``os.cpu_count()`` to describe
the machine, a ``threading.Lock``); the registry says so in the module's ``review_allow``
(``tinytorch/course/modules.toml``), and the tests prove that the reference and the untouched stubs of
every module give no finding with their allow list. An allow entry ``E`` silences a finding when

1. ``E`` is the finding's name: ``"import os"``, ``"__dict__"``, ``"getattr(non-literal)"``,
   ``"patch numpy"``; or
2. ``E`` is the finding's subject: the module of an import (``"os"`` silences ``import os``,
   whatever the file does with it), the function of a call with a computed name (``"getattr"``
   silences ``getattr(non-literal)``); or
3. for an import only, ``E`` is a dotted name under the module (``"os.cpu_count"``) and every use
   the file makes of that module is ``E`` or below it: ``import os`` then only ``os.cpu_count()``,
   or ``from os import cpu_count``. Any other use keeps the finding: another attribute, the
   module passed around as a value, its name bound to something else somewhere in the file.
   Prefer this narrow form; it leaves the rest of ``os`` reported.

Its limits
----------
Static analysis sees only what is written. It cannot see through an attribute name computed at
run time (``getattr(obj, name_from_data)`` is reported as such, not what it reaches), code built
from strings or loaded from data, a dangerous object handed in by a caller, or modules reached
through innocent ones (``numpy`` can load a library; ``pathlib`` reads files), or an imported
module patched through an alias (``m = np; m.allclose = ...``). It resolves a few literal forms
(a string constant; a loop variable over a literal tuple of strings) and no more. Each file is
reviewed alone, within bounds: ``MAX_FILE_BYTES``, ``MAX_FILES``, ``MAX_FINDINGS``.
What enforces is elsewhere: the process boundary and the limits of ``grading/sandbox.py``, and
the answer keys whose values the grader judges in its own process (``grading/answerkey.py``). This
review only points a human at code worth reading.

API: :func:`review_folder`, :func:`review_module`, :func:`review_source`, :func:`summarize`,
:func:`summarize_modules`, :func:`allowed`; :class:`Finding`.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from grading import parse_source
from grading.review_rules import (
    ATTRIBUTES,
    BUILTINS,
    DYNAMIC,
    FILE_RULES,
    IMPORTS,
    NON_LITERAL,
    PATCH,
    Finding,
    allowed,
    one_line,
    subject,
    summarize,
    summarize_modules,
)

__all__ = [
    "Finding",
    "allowed",
    "main",
    "review_folder",
    "review_module",
    "review_source",
    "summarize",
    "summarize_modules",
]

MAX_FILE_BYTES = 1_000_000  # a kata file is a few KB; bigger files are reported, not parsed
MAX_FILES = 2_000  # a module is a handful of files
MAX_FINDINGS = 500  # per folder; a file of a thousand exec calls needs no thousand lines

# where the attribute name sits among a call's positional arguments (getattr(obj, name, ...))
_NAME_ARG = {"getattr": 1, "setattr": 1, "delattr": 1, "hasattr": 1}
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.Module)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


# ---------------------------------------------------------------------------------------------
# One file


class _File:
    """The facts about one parsed file that the rules need beyond a single node."""

    def __init__(self, tree: ast.Module) -> None:
        self.parents: dict[ast.AST, ast.AST] = {}
        self.rebound: set[str] = set()  # names bound other than by an import, anywhere in the file
        self.imported: dict[str, str] = {}  # local name -> the module it comes from (absolute)
        self.loads: dict[str, list[ast.Name]] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
            if isinstance(node, ast.Import):
                for alias in node.names:
                    local = alias.asname or alias.name.split(".")[0]
                    self.imported[local] = alias.name if alias.asname else local
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    if alias.name != "*":
                        self.imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Name):
                if isinstance(node.ctx, ast.Load):
                    self.loads.setdefault(node.id, []).append(node)
                else:
                    self.rebound.add(node.id)
            elif isinstance(node, ast.arg):
                self.rebound.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.rebound.add(node.name)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self.rebound.add(node.name)
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                self.rebound.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self.rebound.add(node.rest)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                self.rebound.update(node.names)

    def import_of(self, node: ast.AST) -> str | None:
        """The absolute module path behind the base name of ``node`` (``np`` in ``np.a.b``) when
        an absolute import in the file binds that name (even if something else binds it too:
        a human reads the line); else None."""
        while isinstance(node, ast.Attribute):
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.imported:
            return self.imported[node.id]
        return None

    def uses(self, local: str, prefix: str) -> set[str] | None:
        """Every use of the imported name ``local`` as a dotted name under ``prefix`` (``os`` then
        ``os.cpu_count``); None when a use is not ``local.attr`` or the name is bound otherwise."""
        if local in self.rebound:
            return None
        found = set()
        for name in self.loads.get(local, []):
            parent = self.parents.get(name)
            if not (isinstance(parent, ast.Attribute) and parent.value is name):
                return None
            found.add(f"{prefix}.{parent.attr}")
        return found


def _literal_string(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _binding(target: ast.AST, iterable: ast.AST, var: str) -> tuple[bool, frozenset[str] | None]:
    """Whether the loop ``for target in iterable`` binds ``var``, and if so to which strings when
    they are all literal (``for n in ("a", "b")``, ``for n, k in (("a", 0), ("b", 1))``)."""
    binds = any(isinstance(n, ast.Name) and n.id == var for n in ast.walk(target))
    if not binds or not isinstance(iterable, (ast.Tuple, ast.List, ast.Set)) or not iterable.elts:
        return binds, None
    if isinstance(target, ast.Name):
        values = [_literal_string(e) for e in iterable.elts]
    elif isinstance(target, (ast.Tuple, ast.List)):
        positions = [i for i, e in enumerate(target.elts) if isinstance(e, ast.Name) and e.id == var]
        if len(positions) != 1 or any(isinstance(e, ast.Starred) for e in target.elts):
            return True, None
        size, i = len(target.elts), positions[0]
        rows = [
            e.elts if isinstance(e, (ast.Tuple, ast.List)) and len(e.elts) == size else None
            for e in iterable.elts
        ]
        values = [_literal_string(row[i]) if row else None for row in rows]
    else:
        return True, None
    return True, (frozenset(values) if all(v is not None for v in values) else None)


def _stores(body: Iterable[ast.AST], var: str) -> bool:
    return any(
        isinstance(n, ast.Name) and n.id == var and not isinstance(n.ctx, ast.Load)
        for statement in body
        for n in ast.walk(statement)
    )


def _literal_names(node: ast.AST | None, facts: _File) -> frozenset[str] | None:
    """The strings an attribute-name argument can be, when decidable: a string constant, or a
    loop variable over a literal collection of strings that the loop body never rebinds."""
    value = _literal_string(node)
    if value is not None:
        return frozenset({value})
    if not isinstance(node, ast.Name):
        return None
    child, parent = node, facts.parents.get(node)
    while parent is not None and not isinstance(parent, _SCOPES):
        if isinstance(parent, (ast.For, ast.AsyncFor)) and any(child is s for s in parent.body):
            binds, values = _binding(parent.target, parent.iter, node.id)
            if binds:
                return None if values is None or _stores(parent.body, node.id) else values
        elif isinstance(parent, _COMPREHENSIONS) and not any(child is g for g in parent.generators):
            for generator in reversed(parent.generators):
                binds, values = _binding(generator.target, generator.iter, node.id)
                if binds:
                    return values
        child, parent = parent, facts.parents.get(parent)
    return None


def _is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _code(node: ast.AST, limit: int) -> str:
    """A short one-line rendering of ``node`` for a finding's text."""
    try:
        return one_line(ast.unparse(node), limit)
    except (RecursionError, ValueError, AttributeError, TypeError):  # absurdly deep or odd trees
        return "(code)"


def review_source(source: bytes | str, file: str = "<source>", allow: Iterable[str] = ()) -> list[Finding]:
    """The findings of one file's source (sorted, without what ``allow`` silences).

    ``file`` is the name the findings carry. Never raises for any source: a file that does not
    parse is one ``syntax error`` finding at the line of the error.
    """
    allow = frozenset(allow)
    try:
        with warnings.catch_warnings():  # SyntaxWarnings (invalid escapes) are the student's, not ours
            warnings.simplefilter("ignore")
            tree = parse_source(source, filename=file)
    except SyntaxError as error:
        return _silence([_file_finding(file, error.lineno or 1, "syntax error", error.msg)], allow)
    except (ValueError, RecursionError, MemoryError) as error:  # null bytes; nesting too deep
        return _silence([_file_finding(file, 1, "syntax error", str(error) or type(error).__name__)], allow)
    facts = _File(tree)
    found: dict[tuple[int, str], str] = {}
    import_uses: dict[tuple[int, str], set[str] | None] = {}

    def add(node: ast.AST, name: str, text: str) -> None:
        found.setdefault((getattr(node, "lineno", 1), name), text)

    def add_import(node: ast.AST, module: str, uses: set[str] | None, how: str) -> None:
        top = module.split(".")[0]
        if top not in IMPORTS:
            return
        key = (getattr(node, "lineno", 1), f"import {top}")
        add(node, key[1], IMPORTS[top].reason if how == key[1] else f"{how}: {IMPORTS[top].reason}")
        previous = import_uses.get(key, set())
        import_uses[key] = None if uses is None or previous is None else previous | uses

    def add_attribute(node: ast.AST, attr: str, owner: ast.AST | None, how: str) -> None:
        rule = ATTRIBUTES.get(attr)
        if rule is not None and not (rule.self_ok and owner is not None and _is_self(owner)):
            add(node, attr, f"{how}: {rule.reason}")

    def add_dynamic(node: ast.AST, function: str, how: str) -> None:
        add(node, function + NON_LITERAL, f"{how}: {DYNAMIC[function].reason}")

    def add_patch(node: ast.AST, target: ast.AST, how: str) -> None:
        module = facts.import_of(target)
        if module is not None:
            add(node, f"patch {module.split('.')[0]}", f"{how}: {PATCH.reason}")

    handled_strings: set[int] = set()  # string constants judged as an attribute-name argument
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                prefix = alias.name if alias.asname else local
                add_import(node, alias.name, facts.uses(local, prefix), f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            uses = {f"{node.module}.{a.name}" for a in node.names}
            add_import(
                node,
                node.module,
                None if "*" in {a.name for a in node.names} else uses,
                f"from {node.module} import ...",
            )
        elif isinstance(node, ast.Attribute):
            add_attribute(node, node.attr, node.value, f"attribute .{node.attr}")
            if not isinstance(node.ctx, ast.Load):
                add_patch(node, node.value, f"assigns or deletes {_code(node, 80)}")
            if node.attr in ("__setattr__", "__delattr__"):
                call = facts.parents.get(node)
                function = node.attr.strip("_")
                if not (isinstance(call, ast.Call) and call.func is node):
                    add_dynamic(node, function, f"{node.attr} passed as a value")
                else:  # object.__setattr__(obj, name, value), obj.__setattr__(name, value)
                    unbound = isinstance(node.value, ast.Name) and node.value.id in ("object", "type")
                    arg = call.args[1 if unbound else 0] if len(call.args) > unbound else None
                    value = _literal_string(arg)
                    if value is None:
                        add_dynamic(node, function, _code(call, 80))
                    else:
                        handled_strings.add(id(arg))
                        add_attribute(node, value, None, f"{node.attr}({value!r})")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            parent = facts.parents.get(node)
            called = isinstance(parent, ast.Call) and parent.func is node
            if node.id in BUILTINS:
                how = _code(parent, 80) if called else f"{node.id} by name"
                add(node, node.id, f"{how}: {BUILTINS[node.id].reason}")
            elif node.id.startswith("__") and node.id in ATTRIBUTES:
                add(node, node.id, f"name {node.id}: {ATTRIBUTES[node.id].reason}")
            elif node.id in DYNAMIC and not called:
                add_dynamic(node, node.id, f"{node.id} passed as a value")
        elif isinstance(node, ast.Call):
            function = _callee(node)
            if function in _NAME_ARG and isinstance(node.func, ast.Name):
                position = _NAME_ARG[function]
                arg = node.args[position] if len(node.args) > position else None
                if any(isinstance(a, ast.Starred) for a in node.args[: position + 1]):
                    arg = None
                names = _literal_names(arg, facts)
                owner = node.args[0] if node.args and not isinstance(node.args[0], ast.Starred) else None
                if arg is not None and isinstance(arg, ast.Constant):
                    handled_strings.add(id(arg))
                if names is None:
                    if function != "hasattr":  # hasattr returns a bool: it reaches nothing
                        add_dynamic(node, function, _code(node, 80))
                else:
                    for value in sorted(names):
                        add_attribute(node, value, owner, f"{function}(..., {value!r})")
                if function in ("setattr", "delattr") and owner is not None:
                    add_patch(node, owner, f"{function}({_code(owner, 60)}, ...)")
            elif function in ("attrgetter", "methodcaller"):
                args = node.args if function == "attrgetter" else node.args[:1]
                if not args or any(_literal_string(a) is None for a in args):
                    add_dynamic(node, function, _code(node, 80))
            elif function in ("__import__", "import_module") and node.args:
                module = _literal_string(node.args[0])
                if module and not module.startswith("."):
                    add_import(node, module, None, f"{function}({module!r})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in handled_strings and len(node.value) <= 200 and _DOTTED.fullmatch(node.value):
                for part in node.value.split("."):
                    add_attribute(node, part, None, f"the string {node.value!r} names it")

    findings = []
    for (line, name), text in found.items():
        if allowed(name, allow):
            continue
        entries = (
            [e for e in allow if e.startswith(subject(name) + ".")] if name.startswith("import ") else []
        )
        if entries:  # rule 3: every use of the module is an entry or below one
            uses = import_uses.get((line, name))
            if uses is None:
                text = f"{text} (used as a value, not only as {', '.join(sorted(entries))})"
            else:
                others = sorted(u for u in uses if not any(u == e or u.startswith(e + ".") for e in entries))
                if not others:
                    continue
                text = f"{text} (not allowed: {', '.join(others)})"
        findings.append(Finding(file, line, name, one_line(text)))
    return sorted(findings)


def _file_finding(file: str, line: int, name: str, detail: str = "") -> Finding:
    reason = FILE_RULES[name].reason
    return Finding(file, line, name, one_line(f"{detail}: {reason}" if detail else reason))


def _silence(findings: list[Finding], allow: Iterable[str]) -> list[Finding]:
    return [f for f in findings if not allowed(f.name, allow)]


# ---------------------------------------------------------------------------------------------
# A folder


def _relative(path: str, folder: str) -> str:
    rel = Path(os.path.relpath(path, folder)).as_posix()
    # an undecodable file name (surrogate escapes) must still serialise as JSON and CSV
    return one_line(rel.encode("utf-8", "backslashreplace").decode("utf-8"), 200)


def _python_files(folder: Path, limit: int) -> tuple[list[str], bool]:
    """Up to ``limit`` regular, non-symlink ``*.py`` files under ``folder`` in a stable order, and
    whether there were more. Symlinked folders are not followed."""
    found: list[str] = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            if name.endswith(".py") and not os.path.islink(path) and os.path.isfile(path):
                if len(found) == limit:
                    return found, True
                found.append(path)
    return found, False


def review_folder(folder: Path | str, allow: Iterable[str] = ()) -> list[Finding]:
    """The findings of every ``*.py`` file under ``folder``, sorted by file and line.

    ``folder`` is one module's folder as the grader staged it (``katas/<module>/``); ``allow`` is
    the module's ``review_allow`` from the registry (see the module docstring for how an entry
    matches). Nothing is imported or run. Never raises for what the folder holds: a file that
    does not parse, is over ``MAX_FILE_BYTES`` or cannot be read is one finding; past
    ``MAX_FILES`` files or ``MAX_FINDINGS`` findings the rest is one finding. A folder that does
    not exist has no findings.
    """
    allow = frozenset(allow)
    root = str(folder)
    files, more = _python_files(Path(root), MAX_FILES)
    findings: list[Finding] = []
    for path in files:
        rel = _relative(path, root)
        try:
            size = os.stat(path).st_size
            if size > MAX_FILE_BYTES:
                findings += _silence([_file_finding(rel, 0, "file too large", f"{size:,} bytes")], allow)
                continue
            with open(path, "rb") as handle:
                source = handle.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            findings += _silence([_file_finding(rel, 0, "unreadable file", error.strerror or "")], allow)
            continue
        if len(source) > MAX_FILE_BYTES:
            findings += _silence([_file_finding(rel, 0, "file too large", "grew while read")], allow)
            continue
        findings += review_source(source, rel, allow)
    if more:
        note = f"reviewed the first {MAX_FILES:,}"
        findings += _silence([_file_finding(".", 0, "too many files", note)], allow)
    if len(findings) > MAX_FINDINGS:
        rest = len(findings) - MAX_FINDINGS
        findings = findings[:MAX_FINDINGS] + [_file_finding(".", 0, "too many findings", f"{rest:,} more")]
    return findings


def review_module(
    folder: Path | str, module: str | int, registry_path: str | os.PathLike | None = None
) -> list[Finding]:
    """:func:`review_folder` with the registry's ``review_allow`` of ``module`` (a name or number)."""
    from tinytorch.course import registry

    return review_folder(folder, registry.get(module, registry_path).review_allow)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grading.review",
        description="List the imports and constructs in a module's code that a kata never needs "
        "(a static review: nothing is imported or run; it reports, a human decides).",
    )
    parser.add_argument("folder", type=Path, help="a module's folder, e.g. a student's katas/<module>")
    parser.add_argument("--module", help="use this module's review_allow from the registry (name or number)")
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"not a folder: {args.folder}")
    allow: tuple[str, ...] = ()
    if args.module is not None:
        from tinytorch.course import registry

        try:
            allow = registry.get(args.module).review_allow
        except KeyError as error:
            parser.error(str(error.args[0]))
    findings = review_folder(args.folder, allow)
    if args.json:
        print(json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        for finding in findings:
            print(finding)
        label = f" (allowed for {args.module}: {', '.join(allow) or 'nothing'})" if args.module else ""
        print(f"{len(findings)} finding{'s' * (len(findings) != 1)} in {args.folder}{label}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
