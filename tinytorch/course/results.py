"""What a run of a module's tests found: each test's outcome, and what kind of failure it is.

A :class:`TestOutcome` is one test (or one test file that could not be collected) as the runner
read it from the child's report: pytest's outcome, the exception's message and traceback, where in
the kata and in the test it happened, and what went wrong beyond an ordinary failure (a timeout, a
crash, an exit, a test never run). Its ``kind`` names the failure the way the CLI labels it
(``WRONG RESULT``, ``NOT WRITTEN``, ``EXCEPTION`` ...), decided from all of these and never from
pytest's outcome alone. :class:`ModuleResult` and :class:`RunResult` hold the outcomes of one
module and of one run. Cutting a failure's text for a terminal is :mod:`tinytorch.course.summary`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tinytorch.course import registry, summary

OUTCOMES = ("passed", "failed", "error", "skipped")
# What went wrong beyond an ordinary failure: the test ran out of time, the test process died,
# the test never ran because an earlier one killed the process, or the code under test tried to
# end the process (sys.exit, os._exit, KeyboardInterrupt).
PROBLEMS = ("timeout", "crash", "not run", "exit")

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
        """At most ``max_lines`` lines that say what went wrong, for a terminal: the exception's
        first line first, the lines that carry the values, then Hypothesis's example whole
        (:func:`tinytorch.course.summary.summary_lines`)."""
        return summary.summary_lines(self.message, self.details, max_lines)


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
