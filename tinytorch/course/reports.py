"""Reading what a pytest child leaves behind: its JUnit report, its JSON-lines log, its stack dump.

A child that ran to the end wrote a JUnit XML report, read test by test with ``xml.etree``: the
outcome (passed, failed, error, skipped), the message and, for a failure, where it happened: the
last traceback frame inside the module's kata folder (file, line and the qualified function name)
and the last one inside the test file. A child that died wrote no report; its log
(``tinytorch/course/pytest_plugin.py`` writes it, one JSON object a line, flushed at once) says
which tests finished, with their reports, and which one was running, and the stack it dumped on
``SIGUSR1`` or on a timeout at import lies next to the log (:func:`stack_file`).
"""

from __future__ import annotations

import ast
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tinytorch.course.results import Location, TestOutcome

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
# Python's line between two exceptions of a chain, in a native traceback
_CHAINED = re.compile(
    r"^(?:During handling of the above exception, another exception occurred|"
    r"The above exception was the direct cause of the following exception):$",
    re.MULTILINE,
)


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


def make_outcome(
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
        outcomes.append(
            make_outcome(nodeid, outcome, message, details, kata_dirs, root, collection=whole_file)
        )
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


def merge_reports(reports: list[dict]) -> tuple[str, str, str]:
    """(outcome, message, details) of one test from its setup/call/teardown reports, as JUnit does."""
    outcome, message, details = "passed", "", ""
    for report in reports:
        if report["outcome"] == "skipped" and outcome == "passed":
            outcome, message, details = "skipped", report["message"], report["details"]
        elif report["outcome"] == "failed" and outcome != "failed":
            outcome = "failed" if report["when"] == "call" else "error"
            message, details = report["message"], report["details"]
    return outcome, message, details
