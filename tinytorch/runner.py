"""Run kata test files in a pytest subprocess and read the outcome of every test.

The CLI (``tinytorch status/test/hint/watch``) and the integrity checks (``grading.integrity``)
share this runner. It starts ``python -m pytest`` on the registry test files of some modules,
with ``TINYTORCH_IMPL`` set to the implementation under test, writes a JUnit XML report to a
temporary file and reads it back test by test with ``xml.etree``: the outcome (passed, failed,
error, skipped), the message, and, for a failure, where in the kata it happened, i.e. the last
traceback frame inside the module's kata folder (file, line and the qualified function name).

Reading the report, never pytest's exit code, is what lets ``tox -e unsolved`` demand that
*every single* test fails on the stubs.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tinytorch import perf, registry

OUTCOMES = ("passed", "failed", "error", "skipped")

# One frame of a native Python traceback (pytest --tb=native), as in
#   File "/repo/katas/profiling/timer.py", line 42, in measure
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>\S+))?', re.MULTILINE)
# ... and one frame of pytest's short traceback, used for collection errors:
#   katas/profiling/__init__.py:3: in <module>
_SHORT_FRAME = re.compile(r"^(?P<path>[^\s:][^:\n]*\.py):(?P<line>\d+): in (?P<func>\S+)", re.MULTILINE)

# Hypothesis's "(note: 5 other explicit examples also failed with this error; use Verbosity.verbose
# to view)" names an API the student does not use; the CLI keeps only the count.
_HYPOTHESIS_NOTE = re.compile(r"\(note: (\d+ other explicit examples?) also failed with this error;[^)]*\)")


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

    @property
    def ok(self) -> bool:
        return self.outcome == "passed"

    @property
    def name(self) -> str:
        """The test id without its file: ``TestTimer::test_order[...]``."""
        return self.nodeid.split("::", 1)[1] if "::" in self.nodeid else self.nodeid

    @property
    def not_implemented(self) -> bool:
        return self.message.startswith("NotImplementedError")

    def summary_lines(self, max_lines: int = 6) -> list[str]:
        """A few lines that say what went wrong, for a terminal."""
        lines = [
            _HYPOTHESIS_NOTE.sub(r"(\1 also failed with this error)", line.rstrip())
            for line in self.message.strip().splitlines()
            if line.strip()
        ]
        if not lines and self.details:
            lines = [line.rstrip() for line in self.details.strip().splitlines() if line.strip()][-3:]
        if "Falsifying example" in self.details:
            example = self.details[self.details.index("Falsifying example") :].split("\n\n")[0]
            lines += example.splitlines()
        if len(lines) > max_lines:
            lines = lines[: max_lines - 1] + ["..."]
        return lines


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


@dataclass
class RunResult:
    """One pytest run over one or more modules."""

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


def locate(details: str, folder: Path, root: Path) -> Location | None:
    """The last traceback frame in ``details`` whose file lies under ``folder``."""
    folder = folder.resolve()
    found = None
    matches = list(_FRAME.finditer(details)) or list(_SHORT_FRAME.finditer(details))
    for match in matches:
        path = Path(match["path"])
        if not path.is_absolute():
            path = root / path
        path = path.resolve()
        if path.is_relative_to(folder):
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


def parse_junit(
    xml_text: str | bytes,
    test_files: Sequence[str],
    kata_dirs: dict[str, Path] | None = None,
    root: Path | None = None,
) -> list[TestOutcome]:
    """Every test case of a pytest JUnit report, in report (collection) order.

    ``test_files`` are the files pytest ran (relative to ``root``); ``kata_dirs`` maps a test file
    to the kata folder whose frames locate its failures.
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
        test_file = nodeid.split("::", 1)[0]
        location = None
        test_location = None
        if outcome in ("failed", "error"):
            test_location = locate(details, root / test_file, root)
            if test_file in kata_dirs:
                location = locate(details, kata_dirs[test_file], root)
        if whole_file and outcome == "error" and message == "collection failure":
            message = _collection_message(details)
        outcomes.append(
            TestOutcome(
                nodeid,
                outcome,
                message,
                details,
                location,
                test_location,
                collection=whole_file and outcome == "error",
            )
        )
    return outcomes


def _collection_message(details: str) -> str:
    """The useful line of a collection error: the exception, not pytest's preamble."""
    lines = [line.strip() for line in details.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        text = line.removeprefix("E").strip()
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", text):
            return text
    return lines[-1].removeprefix("E").strip() if lines else "the test file could not be collected"


# --------------------------------------------------------------------------- running pytest


def pytest_env(impl: str) -> dict[str, str]:
    """The environment of the pytest subprocess: ``TINYTORCH_IMPL=impl`` and this tinytorch."""
    env = dict(os.environ)
    env["TINYTORCH_IMPL"] = impl
    # The subprocess must import the same tinytorch as this process, installed or not.
    package_parent = str(Path(__file__).resolve().parent.parent)
    paths = [package_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def run_modules(
    modules: Iterable[registry.Module],
    impl: str = "katas",
    root: Path | None = None,
    extra_args: Sequence[str] = (),
) -> RunResult:
    """Run the test files of ``modules`` in one pytest subprocess with ``TINYTORCH_IMPL=impl``."""
    root = root or registry.repo_root()
    modules = list(modules)
    results = {m.name: ModuleResult(m) for m in modules}
    files = [m.tests for m in modules if (root / m.tests).is_file()]
    if not files:
        return RunResult(results, 0, "", report_found=True)
    with tempfile.TemporaryDirectory(prefix="tinytorch-") as tmp:
        report = Path(tmp) / "report.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            *files,
            f"--junitxml={report}",
            "-o",
            "junit_family=xunit2",
            "-p",
            "no:cacheprovider",
            "--tb=native",
            "-q",
            "--continue-on-collection-errors",
            *extra_args,
        ]
        proc = subprocess.run(command, cwd=root, env=pytest_env(impl), capture_output=True, text=True)
        output = proc.stdout + proc.stderr
        if not report.is_file():
            return RunResult(results, proc.returncode, output, report_found=False)
        xml_text = report.read_bytes()
    kata_dirs = {m.tests: perf.source_dir(m.name, impl) for m in modules}
    by_file = {m.tests: results[m.name] for m in modules}
    for outcome in parse_junit(xml_text, files, kata_dirs, root):
        test_file = outcome.nodeid.split("::", 1)[0]
        if test_file in by_file:
            by_file[test_file].outcomes.append(outcome)
    return RunResult(results, proc.returncode, output, report_found=True)
