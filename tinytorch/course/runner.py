"""Run kata test files in pytest subprocesses and read the outcome of every test.

The CLI (``tinytorch status/test/hint/watch``) and the integrity checks (``grading.integrity``)
share this runner. Each module's test file runs in its own ``python -m pytest`` process (several
modules in parallel), with ``TINYTORCH_IMPL`` set to the implementation under test, so one
module's crash never hides another module's results. The child writes a JUnit XML report, read
back test by test with ``xml.etree``: the outcome (passed, failed, error, skipped), the message,
and, for a failure, where in the kata it happened, i.e. the last traceback frame inside the
module's kata folder (file, line and the qualified function name).

The student loop never hangs and never lies:

* every test has a timeout (the pytest-timeout plugin, thread method: a test stuck in an endless
  loop, even inside Hypothesis, is stopped with a dump of its stack), importing the tests has one
  (``faulthandler``), and the whole run of a module has a bound (the process group is killed);
* a small pytest plugin, loaded in the child (``tinytorch/course/pytest_plugin.py``), logs each test
  as it starts and ends (JSON lines), turns ``sys.exit()``, ``os._exit()`` and
  ``KeyboardInterrupt`` raised by the code under test into an ordinary failure of that test (or
  a collection error when it happens at import), and dumps the stack on request;
* when the child dies anyway (a timeout, a crash, a kill), the log says which tests finished and
  which one was running: those keep their outcome, the running one is reported as a timeout or a
  crash with the kata line it was on, and the rest run again in a fresh process (a few times);
* Ctrl-C kills the children (they run in their own process group) and re-raises
  ``KeyboardInterrupt`` for the caller to report.

On Linux the children are forked from a server process that imported pytest, numpy and
hypothesis once (``tinytorch/course/forkserver.py``), which saves about half a second per module and
run; each child is still a new process. ``TINYTORCH_FORKSERVER=0`` starts plain subprocesses.

Reading the report, never pytest's exit code, is what lets ``tox -e unsolved`` demand that
*every single* test fails on the stubs.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tinytorch import perf
from tinytorch.course import forkserver, registry

OUTCOMES = ("passed", "failed", "error", "skipped")
# What went wrong beyond an ordinary failure: the test ran out of time, the test process died,
# the test never ran because an earlier one killed the process, or the code under test tried to
# end the process (sys.exit, os._exit, KeyboardInterrupt).
PROBLEMS = ("timeout", "crash", "not run", "exit")

# Seconds one test may take (pytest-timeout), and one module's whole run; the environment variables
# override them (the CLI's --timeout sets the first). Generous: a module's whole suite takes
# seconds on a quiet machine, and its slowest test took up to 30 s on a loaded two-core one.
TEST_TIMEOUT_ENV, RUN_TIMEOUT_ENV = "TINYTORCH_TEST_TIMEOUT", "TINYTORCH_RUN_TIMEOUT"
TEST_TIMEOUT = 60.0
RUN_TIMEOUT = 300.0
# Fresh processes started for the tests left after the test process died (timeouts, crashes).
MAX_RESTARTS = 2

# One frame of a Python traceback, as in
#   File "/repo/katas/profiling/timer.py", line 42, in measure     (a native traceback)
#   E     File "/repo/katas/profiling/timer.py", line 84             (where pytest shows a SyntaxError)
#   File "/repo/katas/profiling/timer.py", line 42 in measure      (a faulthandler dump)
_FRAME = re.compile(
    r'^(?:E)?[ \t]*File "(?P<path>[^"]+)", line (?P<line>\d+)(?:,? in (?P<func>\S+))?', re.MULTILINE
)
# ... and one frame of pytest's short traceback, used for collection errors:
#   katas/profiling/__init__.py:3: in <module>
_SHORT_FRAME = re.compile(r"^(?P<path>[^\s:][^:\n]*\.py):(?P<line>\d+): in (?P<func>\S+)", re.MULTILINE)

# Hypothesis's "(note: 5 other explicit examples also failed with this error; use Verbosity.verbose
# to view)" names an API the student does not use; the CLI keeps only the count.
_HYPOTHESIS_NOTE = re.compile(r"\(note: (\d+ other explicit examples?) also failed with this error;[^)]*\)")
# The example Hypothesis reports with a failure, and what follows it.
_EXAMPLE = re.compile(r"^(Falsifying example|Failing explicit example|Falsifying explicit example)", re.M)
# pytest cuts a JUnit message after ten lines: "[+7 more lines; full report in element text]".
_JUNIT_CUT = re.compile(r"\n?\[\+\d+ more lines?; full report in element text\]$")
# Lines of an assertion message that carry the values, most telling first: numpy's ACTUAL/DESIRED
# arrays and its summary, pytest's "where" lines; then numpy's first mismatches.
_VALUE_LINES = (
    re.compile(
        r"^\s*(ACTUAL|DESIRED|[xy]): |^\s*Max absolute difference|^\s*Mismatched elements|"
        r"^\s*\+\s+where |^\s*(Left|Right) contains|^\s*At index"
    ),
    re.compile(r"\((ACTUAL|DESIRED)\)|^\s*Max relative difference"),
)
# pytest-timeout's banner around the stacks it dumps before it ends a test process.
_TIMEOUT_BANNER = re.compile(r"\+{3,} Timeout \+{3,}")  # after the progress dots, maybe


# How a test can end, and the label the CLI gives each (TestOutcome.kind, TestOutcome.label).
KINDS = {
    "passed": "PASSED",
    "skipped": "SKIPPED",
    "wrong result": "WRONG RESULT",  # the test's own check failed (an assert, pytest.raises, pytest.fail)
    "not written": "NOT WRITTEN",  # a stub still raising NotImplementedError
    "raised": "EXCEPTION",  # an exception raised inside the code under test
    "test error": "FAILED",  # another exception, raised by the test's own code
    "setup error": "ERROR",  # the same, in a fixture (the test's setup or teardown)
    "import error": "IMPORT ERROR",  # a name or module the tests import is missing
    "syntax error": "SYNTAX ERROR",  # the tests cannot import code that does not parse
    "error at import": "ERROR AT IMPORT",  # another exception while the tests imported the code
    "timeout": "TIMEOUT",
    "crash": "CRASH",
    "exit": "EXIT",
    "not run": "NOT RUN",
}
SYNTAX_ERRORS = ("SyntaxError", "IndentationError", "TabError")
IMPORT_ERRORS = ("ImportError", "ModuleNotFoundError")
# the exception's name at the start of a message: "AssertionError: ...", "numpy.linalg.LinAlgError"
_EXCEPTION_NAME = re.compile(r"(?P<name>[A-Za-z_][\w.]*)(?=:|$)")
# JUnit's message for an error in a fixture: `failed on setup with "NotImplementedError: ..."`
_FIXTURE_FAILURE = re.compile(r'failed on (?:setup|teardown) with "(?P<message>.*)')
# Python's line between two exceptions of a chain, in a native traceback
_CHAINED = re.compile(
    r"^(?:During handling of the above exception, another exception occurred|"
    r"The above exception was the direct cause of the following exception):$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Location:
    """A place in a source file: path relative to the repository root, line and function."""

    path: str
    line: int
    function: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where} in {self.function}" if self.function else where


@dataclass(frozen=True)
class TestOutcome:
    """The result of one test (or of collecting one test file) read from the JUnit report."""

    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str  # one of OUTCOMES
    message: str = ""  # the exception line, e.g. "NotImplementedError: Timer.measure (module 15, ...)"
    details: str = ""  # the full traceback text
    location: Location | None = None  # the last frame inside the kata folder, if any
    test_location: Location | None = None  # the last frame inside the test file, if any
    collection: bool = False  # the whole file failed to collect (an import or syntax error)
    problem: str = ""  # "" or one of PROBLEMS
    # the exception itself was raised inside a kata folder (its own traceback, not one it was
    # raised while handling, has a kata frame): the code under test raised, the test did not
    raised_in_code: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "passed"

    @property
    def name(self) -> str:
        """The test id without its file: ``TestTimer::test_order[...]``."""
        return self.nodeid.split("::", 1)[1] if "::" in self.nodeid else self.nodeid

    @property
    def not_implemented(self) -> bool:
        return self.exception == "NotImplementedError"

    @property
    def exception(self) -> str:
        """The name of the exception in the message (``AssertionError`` for pytest's bare
        ``assert ...``), or ""."""
        first = self.message.split("\n", 1)[0].strip()
        wrapped = _FIXTURE_FAILURE.match(first)  # pytest's message for an error in a fixture
        first = wrapped["message"] if wrapped else first
        if first.startswith("assert "):
            return "AssertionError"
        match = _EXCEPTION_NAME.match(first)
        return match["name"].rpartition(".")[2] if match else ""

    @property
    def kind(self) -> str:
        """What happened, one of ``KINDS``: how the test ended, decided from the outcome, the
        problem, the exception and where it was raised (never from pytest's outcome alone)."""
        if self.ok:
            return "passed"
        if self.problem:
            return self.problem
        if self.outcome == "skipped":
            return "skipped"
        exception = self.exception
        if self.collection:
            if exception in SYNTAX_ERRORS:
                return "syntax error"
            return "import error" if exception in IMPORT_ERRORS else "error at import"
        if exception == "NotImplementedError":
            return "not written"
        if exception in IMPORT_ERRORS:
            return "import error"
        if self.raised_in_code:
            return "raised"
        if exception == "AssertionError" or self.message.startswith("Failed:"):
            return "wrong result"
        return "setup error" if self.outcome == "error" else "test error"

    @property
    def label(self) -> str:
        """The kind in capitals, as the CLI prints it before the test id: ``WRONG RESULT``, ..."""
        return KINDS[self.kind]

    def summary_lines(self, max_lines: int = 12) -> list[str]:
        """At most ``max_lines`` lines that say what went wrong, for a terminal.

        The exception's first line always comes first (never a bare "..."); when the message is
        longer, the lines that carry the values (numpy's ACTUAL/DESIRED, pytest's "where") are kept
        before the others. The example Hypothesis reports follows whole, every argument on a line
        of its own (a long value cut in its middle), outside the bound: it is what decided the
        failure, and a bound of 1 (the board's one line) leaves it out.
        """
        lines = [
            _HYPOTHESIS_NOTE.sub(r"(\1 also failed with this error)", line.rstrip())
            for line in _full_message(self.message, self.details).splitlines()
            if line.strip()
        ]
        if not lines and self.details:
            lines = [line.rstrip() for line in self.details.strip().splitlines() if line.strip()][-3:]
        if len(lines) > 1 and re.fullmatch(r"[\w.]+:", lines[0].strip()):
            # "AssertionError:" alone on its line, as numpy writes it: join it with what follows
            lines[:2] = [f"{lines[0].strip()} {lines[1].strip()}"]
        if lines and _SYNTAX_ERROR.match(lines[0]):
            lines[1:1] = _syntax_error_source(self.details)
        example = _example_lines(self.details)
        if example and max_lines >= 4:
            return _excerpt(lines, max(2, max_lines - len(example))) + example
        return _excerpt(lines, max_lines)


_SYNTAX_ERROR = re.compile(r"(SyntaxError|IndentationError|TabError)\b")
# the offending line and its caret, as Python prints them after the error's `File "...", line N`
# (pytest prefixes them with "E" in a collection error)
_SYNTAX_SOURCE = re.compile(
    r'^E?[ \t]*File "[^"]+", line \d+\n((?:E?[ \t]+.*\n){1,3}?)'
    r"E?[ \t]*(SyntaxError|IndentationError|TabError)\b",
    re.MULTILINE,
)


def _syntax_error_source(details: str) -> list[str]:
    """The source line of a SyntaxError and the caret under it, from the traceback."""
    matches = list(_SYNTAX_SOURCE.finditer(details))
    if not matches:
        return []
    lines = [line[1:] if line.startswith("E") else line for line in matches[-1].group(1).splitlines()]
    return textwrap.indent(textwrap.dedent("\n".join(lines)), "    ").splitlines()


def _full_message(message: str, details: str) -> str:
    """The whole exception text: JUnit cuts long messages, the traceback in ``details`` has it all."""
    message = _JUNIT_CUT.sub("", message)
    first = message.splitlines()[0].rstrip() if message.strip() else ""
    start = details.rfind("\n" + first) if first else -1
    text = details[start + 1 :] if start >= 0 else message
    cut = _EXAMPLE.search(text)
    text = text[: cut.start()] if cut else text
    # what follows the exception: "(note: ...)" lines are kept, pytest's and Hypothesis's advice not
    kept = []
    for line in text.splitlines():
        if line.startswith(("You can reproduce", "You can add @seed", "Explanation:")):
            break
        kept.append(line)
    return "\n".join(kept)


# A value of Hypothesis's example longer than this (in characters, on one line) keeps its start
# and its end. The runner's child prints numpy arrays short already (pytest_plugin.array_summary).
EXAMPLE_VALUE_WIDTH = 160


def _example_lines(details: str) -> list[str]:
    """Hypothesis's ``Falsifying example: test(x=...)`` block, if the traceback has one: the call
    line, one line per argument (and per ``Draw`` of ``st.data()``), however many there are.

    Hypothesis spreads a long value over several lines (a list one item per line, an array one
    row per line); each value is joined into one line, and one still longer than
    ``EXAMPLE_VALUE_WIDTH`` is cut in its middle, saying how long it was.
    """
    match = _EXAMPLE.search(details)
    if not match:
        return []
    entries: list[list[str]] = []
    inside = False  # between "test(" and its ")": arguments are indented 4, their values deeper
    for line in details[match.start() :].split("\n\n")[0].splitlines():
        if not line.strip():
            continue
        if line.startswith(("You can reproduce", "You can add @seed", "Explanation:")):
            break
        indent = len(line) - len(line.lstrip())
        if not entries or indent <= (4 if inside else 0):
            entries.append([line.rstrip()])
            if len(entries) == 1:
                inside = line.rstrip().endswith("(")
            elif inside and line.strip() == ")" and indent == 0:
                inside = False
        else:
            entries[-1].append(line.strip())
    return [_one_line(entry) for entry in entries]


def _one_line(lines: list[str]) -> str:
    """One argument of an example on one line, cut in its middle when longer than the width."""
    text = " ".join(lines)
    indent = len(text) - len(text.lstrip())
    body = text[indent:]
    if len(body) <= EXAMPLE_VALUE_WIDTH:
        return text
    keep = EXAMPLE_VALUE_WIDTH // 2
    return f"{text[:indent]}{body[:keep]} ... {body[-keep // 2 :]}  [cut: {len(body)} characters]"


def _excerpt(lines: list[str], max_lines: int) -> list[str]:
    """``lines`` cut to ``max_lines``: the first line, then value-carrying lines, then the rest."""
    if len(lines) <= max_lines:
        return lines
    if max_lines <= 1:
        return lines[:1]

    def rank(i: int) -> tuple[int, int]:
        if i == 0:
            return (0, i)
        tier = next((t for t, pattern in enumerate(_VALUE_LINES, 1) if pattern.search(lines[i])), 3)
        return (tier, i)

    ranked = sorted(range(len(lines)), key=rank)
    keep = sorted(ranked[: max_lines - 1])
    return [lines[i] for i in keep] + ["..."]


@dataclass
class ModuleResult:
    """The outcomes of one module's test file."""

    module: registry.Module
    outcomes: list[TestOutcome] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(o.ok for o in self.outcomes if not o.collection)

    @property
    def total(self) -> int:
        return sum(not o.collection for o in self.outcomes)

    @property
    def collection_errors(self) -> list[TestOutcome]:
        return [o for o in self.outcomes if o.collection]

    @property
    def failures(self) -> list[TestOutcome]:
        """Every outcome that is not a pass, collection errors first, in collection order."""
        return self.collection_errors + [o for o in self.outcomes if not o.ok and not o.collection]

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and not self.failures

    @property
    def broken(self) -> bool:
        """The tests could not all run to an answer: an import error, a timeout, a crash, an exit."""
        return any(o.collection or o.problem for o in self.outcomes)


@dataclass
class RunResult:
    """One run over one or more modules."""

    modules: dict[str, ModuleResult]
    returncode: int
    output: str  # pytest's own stdout and stderr
    report_found: bool

    def __getitem__(self, name: str) -> ModuleResult:
        return self.modules[name]


# --------------------------------------------------------------------------- locating failures


def enclosing_function(path: Path, line: int) -> str:
    """The qualified name (``Timer.measure``) of the innermost function around ``line``, or ""."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ""
    best = ""

    def visit(node: ast.AST, prefix: str) -> None:
        nonlocal best
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                qualname = f"{prefix}{child.name}"
                inside = child.lineno <= line <= (child.end_lineno or child.lineno)
                if inside and not isinstance(child, ast.ClassDef):
                    best = qualname
                if inside:
                    visit(child, qualname + ".")

    visit(tree, "")
    return best


def locate(details: str, folder: Path | Sequence[Path], root: Path) -> Location | None:
    """The innermost traceback frame in ``details`` whose file lies under ``folder`` (or one of
    several folders: a module's test may fail inside another module's kata).

    Frames are read in the order they appear (pytest's short frames and native ones alike, so the
    ``File "...", line N`` pytest prints for a SyntaxError wins over the import that led to it); a
    faulthandler dump lists the most recent call first, so there the first frame wins.
    """
    folders = [Path(f).resolve() for f in ([folder] if isinstance(folder, str | Path) else folder)]
    found = None
    matches = sorted([*_FRAME.finditer(details), *_SHORT_FRAME.finditer(details)], key=lambda m: m.start())
    if "(most recent call first)" in details:
        matches.reverse()
    for match in matches:
        path = Path(match["path"])
        if not path.is_absolute():
            path = root / path
        path = path.resolve()
        if any(path.is_relative_to(f) for f in folders):
            found = (path, int(match["line"]), match["func"] or "")
    if found is None:
        return None
    path, line, func = found
    function = enclosing_function(path, line) or ("" if func == "<module>" else func)
    try:
        shown = path.relative_to(root.resolve()).as_posix()
    except ValueError:
        shown = str(path)
    return Location(shown, line, function)


# --------------------------------------------------------------------------- what a module needs


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


# --------------------------------------------------------------------------- the JUnit report


def _dotted(test_file: str) -> str:
    """``tests/test_profiling.py`` -> ``tests.test_profiling``: how JUnit names the file."""
    return re.sub(r"\.py$", "", test_file).replace("/", ".")


def _nodeid(classname: str, name: str, test_files: Sequence[str]) -> tuple[str, bool]:
    """Rebuild pytest's node id from a JUnit (classname, name); True if it names a whole file."""
    for test_file in sorted(test_files, key=len, reverse=True):
        dotted = _dotted(test_file)
        if not classname and name == dotted:
            return test_file, True
        if classname == dotted or classname.startswith(dotted + "."):
            classes = classname[len(dotted) :].lstrip(".")
            parts = [test_file, *(classes.split(".") if classes else []), name]
            return "::".join(parts), False
    return "::".join(p for p in (classname, name) if p), not classname


def _outcome(
    nodeid: str,
    outcome: str,
    message: str,
    details: str,
    kata_dirs: dict[str, Path | Sequence[Path]],
    root: Path,
    collection: bool = False,
    problem: str = "",
) -> TestOutcome:
    """A TestOutcome with its locations: the kata frame and the test frame."""
    test_file = nodeid.split("::", 1)[0]
    location = test_location = None
    raised_in_code = False
    if outcome in ("failed", "error"):
        test_location = locate(details, root / test_file, root)
        if test_file in kata_dirs:
            location = locate(details, kata_dirs[test_file], root)
            # the last exception of a chain is the one that ended the test: where was it raised?
            own = _CHAINED.split(details)[-1]
            raised_in_code = location is not None and locate(own, kata_dirs[test_file], root) is not None
    if collection and message in ("collection failure", ""):
        message = _collection_message(details)
    if not problem and "KataExit: " in message.split("\n", 1)[0]:
        problem = "exit"
        message = "KataExit: " + message.split("KataExit: ", 1)[1]  # without the plugin's module name
    return TestOutcome(
        nodeid, outcome, message, details, location, test_location, collection, problem, raised_in_code
    )


def parse_junit(
    xml_text: str | bytes,
    test_files: Sequence[str],
    kata_dirs: dict[str, Path | Sequence[Path]] | None = None,
    root: Path | None = None,
) -> list[TestOutcome]:
    """Every test case of a pytest JUnit report, in report (collection) order.

    ``test_files`` are the files pytest ran (relative to ``root``); ``kata_dirs`` maps a test file
    to the kata folder (or folders) whose frames locate its failures.
    """
    kata_dirs = kata_dirs or {}
    root = root or Path.cwd()
    outcomes = []
    for case in ET.fromstring(xml_text).iter("testcase"):
        nodeid, whole_file = _nodeid(case.get("classname", ""), case.get("name", ""), test_files)
        outcome, message, details = "passed", "", ""
        for tag in ("skipped", "error", "failure"):  # later tags win: a failure beats a teardown error
            element = case.find(tag)
            if element is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = element.get("message", "")
                details = element.text or ""
        whole_file = whole_file and outcome == "error"
        outcomes.append(_outcome(nodeid, outcome, message, details, kata_dirs, root, collection=whole_file))
    return outcomes


def _collection_message(details: str) -> str:
    """The useful line of a collection error: the exception, not pytest's preamble."""
    lines = [line.strip() for line in details.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        text = line.removeprefix("E").strip()
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", text):
            return text
    return lines[-1].removeprefix("E").strip() if lines else "the test file could not be collected"


# --------------------------------------------------------------------------- reading the log


def stack_file(log: Path) -> Path:
    """Where the child dumps its stack (faulthandler), next to its log."""
    return log.with_name(log.name + ".stack")


@dataclass
class Progress:
    """What a child's log says: whether the session started, the collected tests, the reports."""

    started: bool = False
    collected: list[str] | None = None
    reports: dict[str, list[dict]] = field(default_factory=dict)
    running: str | None = None  # started, not finished: the test the process died in

    @property
    def finished(self) -> list[str]:
        return [n for n in self.reports if n != self.running]


def read_log(path: Path) -> Progress:
    """Parse a child's log; a line cut short by the child's death is ignored."""
    progress = Progress()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return progress
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        kind = event.get("event")
        if kind == "session":
            progress.started = True
        elif kind == "collected":
            progress.collected = list(event["nodeids"])
        elif kind == "start":
            progress.running = event["nodeid"]
            progress.reports.setdefault(event["nodeid"], [])
        elif kind == "report":
            progress.reports.setdefault(event["nodeid"], []).append(event)
        elif kind == "finish" and progress.running == event["nodeid"]:
            progress.running = None
    return progress


def _merge_reports(reports: list[dict]) -> tuple[str, str, str]:
    """(outcome, message, details) of one test from its setup/call/teardown reports, as JUnit does."""
    outcome, message, details = "passed", "", ""
    for report in reports:
        if report["outcome"] == "skipped" and outcome == "passed":
            outcome, message, details = "skipped", report["message"], report["details"]
        elif report["outcome"] == "failed" and outcome != "failed":
            outcome = "failed" if report["when"] == "call" else "error"
            message, details = report["message"], report["details"]
    return outcome, message, details


# --------------------------------------------------------------------------- running pytest


def pytest_env(impl: str) -> dict[str, str]:
    """The environment of the pytest subprocess: ``TINYTORCH_IMPL=impl`` and this tinytorch."""
    env = dict(os.environ)
    env["TINYTORCH_IMPL"] = impl
    # The subprocess must import the same tinytorch as this process, installed or not.
    package_parent = str(Path(__file__).resolve().parents[2])
    paths = [package_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable ``name``, else ``default``."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{name}={value!r}: give a positive number of seconds")
    return seconds


_children: set[subprocess.Popen | forkserver.Child] = set()
_children_lock = threading.Lock()
_stopping = threading.Event()  # set by kill_children: no new child may start

# The pytest children are forked from a server that imported these once (tinytorch/course/forkserver.py):
# about half a second less per module and run. Nothing that reads TINYTORCH_* is preloaded.
PRELOAD = ("pytest", "_pytest.junitxml", "pytest_timeout", "numpy", "numpy.testing", "hypothesis")
_server = forkserver.ForkServer(PRELOAD)


def _kill(proc: subprocess.Popen | forkserver.Child) -> None:
    """Kill a child and everything it started (it leads its own process group)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def kill_children() -> None:
    """Kill every pytest child still running, and start no new one (Ctrl-C in the parent)."""
    with _children_lock:
        _stopping.set()
        children = list(_children)
    for proc in children:
        _kill(proc)


@dataclass
class _Attempt:
    returncode: int
    output: str
    junit: bytes | None
    killed: bool  # the run's time bound ran out and the process was killed
    progress: Progress
    stack: str


def _attempt(
    command: list[str], root: Path, env: dict[str, str], tmp: Path, n: int, budget: float
) -> _Attempt:
    report, log, out = tmp / f"report-{n}.xml", tmp / f"log-{n}.jsonl", tmp / f"output-{n}.txt"
    command = [*command, f"--junitxml={report}", f"--tinytorch-log={log}"]
    with open(out, "wb") as output:
        with _children_lock:
            if _stopping.is_set():
                raise KeyboardInterrupt
            # its own session: Ctrl-C reaches the parent only; it stops the child itself
            proc = _server.start(command, env=env, cwd=root, output=output.fileno(), new_session=True)
            _children.add(proc)
    killed = False
    try:
        try:
            proc.wait(timeout=max(budget, 0.01))
        except subprocess.TimeoutExpired:
            killed = True
            if hasattr(signal, "SIGUSR1"):  # ask for the stack first (faulthandler, see RunLog)
                proc.send_signal(signal.SIGUSR1)
                time.sleep(0.5)
            _kill(proc)
            proc.wait()
    except BaseException:
        _kill(proc)
        proc.wait()
        raise
    finally:
        with _children_lock:
            _children.discard(proc)
    junit = report.read_bytes() if report.is_file() and not killed else None
    try:
        stack = stack_file(log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        stack = ""
    output_text = out.read_bytes().decode("utf-8", "replace")
    return _Attempt(proc.returncode, output_text, junit, killed, read_log(log), stack)


def _died(
    attempt: _Attempt, test_timeout: float, run_timeout: float, collecting: bool
) -> tuple[str, str, str]:
    """(problem, message, details) for the test (or the import) a dead child was running."""
    doing = "while the tests imported the code" if collecting else "during this test"
    banner = _TIMEOUT_BANNER.search(attempt.output)
    if banner:  # pytest-timeout: the test ran past its timeout; its stack follows the banner
        return (
            "timeout",
            f"Timeout: the test ran longer than {test_timeout:g} s and was stopped (an endless loop?)",
            attempt.output[banner.start() :],
        )
    if collecting and attempt.stack.startswith("Timeout ("):  # the faulthandler watchdog
        return (
            "timeout",
            f"Timeout: importing the tests took longer than {test_timeout:g} s and was stopped "
            "(an endless loop at import?)",
            attempt.stack,
        )
    if attempt.killed:
        return (
            "timeout",
            f"Timeout: the module's run went over its bound of {run_timeout:g} s and was stopped {doing}",
            attempt.stack + attempt.output,
        )
    return (
        "crash",
        f"Crash: the test process ended (exit code {attempt.returncode}) {doing}; does the code call "
        "os.abort(), kill its own process or crash the interpreter?",
        attempt.output + attempt.stack,
    )


def run_module(
    module: registry.Module,
    impl: str = "katas",
    root: Path | None = None,
    extra_args: Sequence[str] = (),
    test_timeout: float | None = None,
    run_timeout: float | None = None,
) -> tuple[ModuleResult, str, int, bool]:
    """Run one module's test file; (result, output, pytest's return code, report found).

    The child runs under a per-test timeout and a bound on the whole run; if it dies, the tests
    it had not run yet run again in a fresh process (at most ``MAX_RESTARTS`` times).
    """
    root = root or registry.repo_root()
    test_timeout = test_timeout or seconds_from_env(TEST_TIMEOUT_ENV, TEST_TIMEOUT)
    run_timeout = run_timeout or seconds_from_env(RUN_TIMEOUT_ENV, RUN_TIMEOUT)
    result = ModuleResult(module)
    if not (root / module.tests).is_file():
        return result, "", 0, True
    # its own kata folder first; the others too: a test can fail in a kata its module builds on
    folders = [perf.source_dir(module.name, impl)]
    folders += [perf.source_dir(m.name, impl) for m in registry.modules() if m.name != module.name]
    kata_dirs: dict[str, Path | Sequence[Path]] = {module.tests: folders}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "tinytorch.course.pytest_plugin",
        "-p",
        "timeout",
        f"--timeout={test_timeout:g}",
        "-o",
        "timeout_method=thread",
        "-o",
        "junit_family=xunit2",
        "-p",
        "no:cacheprovider",
        "--tb=native",
        "-q",
        "--continue-on-collection-errors",
        # a child forked from the server finds hypothesis and pytest_timeout (pytest plugins)
        # already imported, so pytest cannot rewrite their asserts; neither has tests to rewrite
        "-W",
        "ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning",
        *extra_args,
    ]
    env = pytest_env(impl)
    deadline = time.monotonic() + run_timeout
    order: list[str] = []
    known: dict[str, TestOutcome] = {}
    outputs: list[str] = []
    returncode = 0
    with tempfile.TemporaryDirectory(prefix="tinytorch-") as tmp:
        for n in range(MAX_RESTARTS + 1):
            # the first run takes the file; a rerun names the tests left (not --deselect: it takes
            # prefixes, so deselecting test_x would drop test_x2 too)
            targets = [nodeid for nodeid in order if nodeid not in known] if known else [module.tests]
            attempt = _attempt(command + targets, root, env, Path(tmp), n, deadline - time.monotonic())
            outputs.append(attempt.output)
            returncode = attempt.returncode
            if attempt.junit is not None:
                for outcome in parse_junit(attempt.junit, [module.tests], kata_dirs, root):
                    if outcome.nodeid.split("::", 1)[0] != module.tests:  # pytest's own internal error
                        outcome = _outcome(
                            module.tests, "error", "", outcome.details, kata_dirs, root, collection=True
                        )
                    if outcome.nodeid not in order:
                        order.append(outcome.nodeid)
                    known[outcome.nodeid] = outcome
                break
            progress = attempt.progress
            if not progress.started and not attempt.killed:
                # pytest stopped by itself before its session: bad arguments, a broken conftest
                return result, "\n".join(outputs), returncode, False
            if progress.collected is None:  # died while importing the tests
                problem, message, details = _died(attempt, test_timeout, run_timeout, collecting=True)
                known[module.tests] = _outcome(
                    module.tests, "error", message, details, kata_dirs, root, collection=True, problem=problem
                )
                order.append(module.tests)
                break
            order = order or list(progress.collected)
            for nodeid in progress.finished:
                outcome, message, details = _merge_reports(progress.reports[nodeid])
                known[nodeid] = _outcome(nodeid, outcome, message, details, kata_dirs, root)
            if progress.running:
                problem, message, details = _died(attempt, test_timeout, run_timeout, collecting=False)
                known[progress.running] = _outcome(
                    progress.running, "error", message, details, kata_dirs, root, problem=problem
                )
            left = [nodeid for nodeid in order if nodeid not in known]
            if not left:
                break
            if n == MAX_RESTARTS or deadline - time.monotonic() <= 1 or not progress.running:
                where = f"in {progress.running}" if progress.running else "between two tests"
                if deadline - time.monotonic() <= 1:
                    why = f"the module's run was stopped {where}: its {run_timeout:g} s were used up"
                else:
                    why = f"the test process ended {where}, after {n} restart(s)"
                message = f"Not run: {why}; fix that test first"
                for nodeid in left:
                    known[nodeid] = TestOutcome(nodeid, "error", message, problem="not run")
                break
    result.outcomes = [known[nodeid] for nodeid in order if nodeid in known]
    return result, "\n".join(outputs), returncode, True


def run_modules(
    modules: Iterable[registry.Module],
    impl: str = "katas",
    root: Path | None = None,
    extra_args: Sequence[str] = (),
    test_timeout: float | None = None,
    run_timeout: float | None = None,
) -> RunResult:
    """Run the test files of ``modules``, each in its own pytest process, in parallel.

    ``TINYTORCH_IMPL=impl`` in each; ``test_timeout`` bounds one test and ``run_timeout`` one
    module's whole run (seconds; default from ``TINYTORCH_TEST_TIMEOUT``/``TINYTORCH_RUN_TIMEOUT``,
    else ``TEST_TIMEOUT``/``RUN_TIMEOUT``). Ctrl-C kills the children and re-raises.
    """
    root = root or registry.repo_root()
    modules = list(modules)
    test_timeout = test_timeout or seconds_from_env(TEST_TIMEOUT_ENV, TEST_TIMEOUT)
    run_timeout = run_timeout or seconds_from_env(RUN_TIMEOUT_ENV, RUN_TIMEOUT)
    if not modules:
        return RunResult({}, 0, "", report_found=True)
    _stopping.clear()

    def one(module: registry.Module) -> tuple[ModuleResult, str, int, bool]:
        return run_module(module, impl, root, extra_args, test_timeout, run_timeout)

    workers = max(1, min(len(modules), os.cpu_count() or 1))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinytorch-run")
    try:
        futures = [pool.submit(one, m) for m in modules]
        runs = [future.result() for future in futures]
    except BaseException:  # Ctrl-C: stop every child, then let the caller report it
        pool.shutdown(wait=False, cancel_futures=True)
        kill_children()
        raise
    pool.shutdown()
    results = {m.name: run[0] for m, run in zip(modules, runs, strict=True)}
    output = "\n".join(run[1] for run in runs if run[1])
    returncode = max(run[2] for run in runs)
    return RunResult(results, returncode, output, report_found=all(run[3] for run in runs))
