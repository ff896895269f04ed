"""Reading a run: the JUnit report, where in the kata a failure happened, what it says and needs.

The outcome of each test (:mod:`tinytorch.course.results`) as read from a report
(:mod:`tinytorch.course.reports`), the summary a terminal shows (:mod:`tinytorch.course.summary`)
and a module's needs (:mod:`tinytorch.course.needs`), on canned reports and tracebacks: no child
runs here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ALPHA_SOLUTION

from tinytorch.course import needs, registry, reports, results, summary

KATA_SOURCE = """\
class Timer:
    def measure(self, func):
        def inner():
            return 1 / 0
        return inner()


def helper():
    return 1
"""


def report(root: Path) -> str:
    kata = root / "katas" / "alpha" / "timer.py"
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3/site-packages/_pytest/python.py", line 166, in pytest_pyfunc_call\n'
        "    result = testfunction(**testargs)\n"
        f'  File "{root}/tests/test_alpha.py", line 12, in test_measure\n'
        "    Timer().measure(f)\n"
        f'  File "{kata}", line 5, in measure\n'
        "    return inner()\n"
        f'  File "{kata}", line 4, in inner\n'
        "    return 1 / 0\n"
        '  File "/usr/lib/python3.11/numbers.py", line 1, in fake\n'
        "ZeroDivisionError: division by zero\n"
    )
    assertion = (
        "Traceback (most recent call last):\n"
        f'  File "{root}/tests/test_alpha.py", line 30, in test_order\n'
        "    assert p50 <= p95\n"
        "AssertionError: assert 3 <= 2\n"
        "Falsifying example: test_order(\n    data=[0.0],\n)\n\nmore text\n"
    )
    collection = (
        "ImportError while importing test module 'tests/test_beta.py'.\nTraceback:\n"
        "tests/test_beta.py:1: in <module>\n    import tinytorch.perf.beta\n"
        "katas/beta/__init__.py:3: in <module>\n    from .core import x\n"
        "E   ImportError: cannot import name 'x'\n"
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="2" failures="2" skipped="1" tests="6">
<testcase classname="tests.test_alpha" name="test_ok" time="0.001" />
<testcase classname="tests.test_alpha.TestTimer" name="test_measure[1-2]" time="0.001">
  <failure message="ZeroDivisionError: division by zero">{escape(traceback)}</failure></testcase>
<testcase classname="tests.test_alpha" name="test_order" time="0.001">
  <failure message="AssertionError: assert 3 &lt;= 2">{escape(assertion)}</failure>
  <system-out>noise</system-out></testcase>
<testcase classname="tests.test_alpha" name="test_skipped" time="0.0">
  <skipped type="pytest.skip" message="no reason" /></testcase>
<testcase classname="tests.test_alpha" name="test_setup" time="0.0">
  <error message="failed on setup with &quot;KeyError: 'x'&quot;">KeyError: 'x'</error></testcase>
<testcase classname="" name="tests.test_beta" time="0.0">
  <error message="collection failure">{escape(collection)}</error></testcase>
<testcase classname="elsewhere" name="test_x" time="0.0" />
</testsuite></testsuites>"""


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


@pytest.fixture
def outcomes(tmp_path: Path) -> dict[str, results.TestOutcome]:
    (tmp_path / "katas" / "alpha").mkdir(parents=True)
    (tmp_path / "katas" / "alpha" / "timer.py").write_text(KATA_SOURCE)
    files = ["tests/test_alpha.py", "tests/test_beta.py"]
    kata_dirs = {
        "tests/test_alpha.py": tmp_path / "katas" / "alpha",
        "tests/test_beta.py": tmp_path / "katas" / "beta",
    }
    parsed = reports.parse_junit(report(tmp_path), files, kata_dirs, tmp_path)
    return {o.nodeid: o for o in parsed}


def test_every_testcase_in_order_with_its_outcome(outcomes):
    assert {nodeid: o.outcome for nodeid, o in outcomes.items()} == {
        "tests/test_alpha.py::test_ok": "passed",
        "tests/test_alpha.py::TestTimer::test_measure[1-2]": "failed",
        "tests/test_alpha.py::test_order": "failed",
        "tests/test_alpha.py::test_skipped": "skipped",
        "tests/test_alpha.py::test_setup": "error",
        "tests/test_beta.py": "error",
        "elsewhere::test_x": "passed",
    }
    assert list(outcomes)[0] == "tests/test_alpha.py::test_ok"


def test_a_failure_points_at_the_last_kata_frame_with_its_qualname(outcomes):
    failure = outcomes["tests/test_alpha.py::TestTimer::test_measure[1-2]"]
    assert failure.name == "TestTimer::test_measure[1-2]"
    assert failure.message == "ZeroDivisionError: division by zero"
    assert failure.location == results.Location("katas/alpha/timer.py", 4, "Timer.measure.inner")
    assert str(failure.location) == "katas/alpha/timer.py:4 in Timer.measure.inner"
    assert str(failure.test_location) == "tests/test_alpha.py:12 in test_measure"
    assert not failure.collection and not failure.not_implemented


def test_an_assertion_in_the_test_has_no_kata_frame(outcomes):
    failure = outcomes["tests/test_alpha.py::test_order"]
    assert failure.location is None
    assert failure.test_location == results.Location("tests/test_alpha.py", 30, "test_order")
    lines = failure.summary_lines()
    assert lines[0] == "AssertionError: assert 3 <= 2"
    assert "Falsifying example: test_order(" in lines and "more text" not in lines


def test_collection_errors_name_the_exception_and_the_kata_line(outcomes):
    error = outcomes["tests/test_beta.py"]
    assert error.collection and error.name == "tests/test_beta.py"
    assert error.message == "ImportError: cannot import name 'x'"
    assert error.location == results.Location("katas/beta/__init__.py", 3, "")


def test_module_result_counts(outcomes):
    from tinytorch.course.registry import Module

    module = Module(15, "alpha", "t", "katas/alpha", "solutions/alpha", "tests/test_alpha.py", 1, "ready")
    result = results.ModuleResult(
        module, [o for n, o in outcomes.items() if n.startswith("tests/test_alpha")]
    )
    assert (result.passed, result.total, result.all_passed) == (1, 5, False)
    assert [o.name for o in result.failures] == [
        "TestTimer::test_measure[1-2]",
        "test_order",
        "test_skipped",
        "test_setup",
    ]
    beta = results.ModuleResult(module, [outcomes["tests/test_beta.py"]])
    assert (beta.total, len(beta.failures), beta.all_passed) == (0, 1, False)


def test_summary_lines_drop_hypothesis_advice_the_student_cannot_use():
    message = (
        "NotImplementedError: f (module 15, m): implement it in katas/m/a.py\n"
        "(note: 5 other explicit examples also failed with this error; use Verbosity.verbose to view)\n"
        "(note: 1 other explicit example also failed with this error; use Verbosity.verbose to view)"
    )
    assert results.TestOutcome("t::x", "failed", message).summary_lines() == [
        "NotImplementedError: f (module 15, m): implement it in katas/m/a.py",
        "(5 other explicit examples also failed with this error)",
        "(1 other explicit example also failed with this error)",
    ]


def test_summary_lines_are_bounded():
    outcome = results.TestOutcome("t", "failed", "\n".join(f"line {i}" for i in range(20)))
    assert outcome.summary_lines(4) == ["line 0", "line 1", "line 2", "..."]
    # a stub raising in a fixture (a test's setup) is unwritten code, not an exception of the kata
    setup = 'failed on setup with "NotImplementedError: build (module 20, x): implement it in katas/x/a.py"'
    assert results.TestOutcome("t", "error", setup).kind == "not written", "a stub raising in a fixture"
    assert results.TestOutcome("t", "error", 'failed on setup with "KeyError: 1"').exception == "KeyError"
    bare = results.TestOutcome("t", "error", "", "a\nb\nKeyError: 'x'\n")
    assert bare.summary_lines() == ["a", "b", "KeyError: 'x'"]


def test_collection_message_fallbacks():
    assert reports._collection_message("") == "the test file could not be collected"
    assert reports._collection_message("something odd\nE   nothing to see") == "nothing to see"


def test_enclosing_function(tmp_path: Path):
    path = tmp_path / "k.py"
    path.write_text(KATA_SOURCE)
    assert reports.enclosing_function(path, 2) == "Timer.measure"
    assert reports.enclosing_function(path, 9) == "helper"
    assert reports.enclosing_function(path, 7) == ""
    assert reports.enclosing_function(tmp_path / "missing.py", 1) == ""


def test_locate_outside_the_root_keeps_the_absolute_path(tmp_path: Path):
    details = f'  File "{tmp_path}/k.py", line 3, in f\n'
    assert reports.locate(details, tmp_path, tmp_path / "elsewhere") == results.Location(
        f"{tmp_path}/k.py", 3, "f"
    )
    assert reports.locate("no frames here", tmp_path, tmp_path) is None


# --------------------------------------------------------------------------- where an error is


SYNTAX_COLLECTION = """\
tests/test_alpha.py:1: in <module>
    from tinytorch.perf.alpha import Doubler, double
katas/alpha/__init__.py:3: in <module>
    from .core import Doubler, double
E     File "{root}/katas/alpha/core.py", line 12
E       def apply(self, x: int:
E                             ^
E   SyntaxError: invalid syntax
"""


def test_a_syntax_error_is_blamed_on_its_file_and_line_not_on_the_import(tmp_path: Path):
    # pytest prints the SyntaxError's own frame as `E     File "...", line N`: that line wins over
    # the __init__.py that imported the file, the one students are told not to edit
    (tmp_path / "katas" / "alpha").mkdir(parents=True)
    details = SYNTAX_COLLECTION.format(root=tmp_path)
    assert reports.locate(details, tmp_path / "katas" / "alpha", tmp_path) == results.Location(
        "katas/alpha/core.py", 12, ""
    )
    outcome = results.TestOutcome("tests/test_alpha.py", "error", "SyntaxError: invalid syntax", details)
    assert outcome.summary_lines() == [  # with the line and the caret that points into it
        "SyntaxError: invalid syntax",
        "    def apply(self, x: int:",
        "                          ^",
    ]


def test_a_faulthandler_dump_names_the_innermost_frame_first(tmp_path: Path):
    kata = tmp_path / "katas" / "alpha" / "timer.py"
    kata.parent.mkdir(parents=True)
    kata.write_text(KATA_SOURCE)
    dump = (
        "Timeout (0:00:01)!\nCurrent thread 0x00007f (most recent call first):\n"
        f'  File "{kata}", line 4 in inner\n  File "{kata}", line 5 in measure\n'
        '  File "/usr/lib/python3/site-packages/_pytest/python.py", line 166 in pytest_pyfunc_call\n'
    )
    assert reports.locate(dump, kata.parent, tmp_path) == results.Location(
        "katas/alpha/timer.py", 4, "Timer.measure.inner"
    )


def test_a_failure_in_another_modules_kata_points_there(tmp_path: Path):
    details = (
        f'  File "{tmp_path}/tests/test_beta.py", line 3, in test_quadruple\n'
        f'  File "{tmp_path}/katas/beta/__init__.py", line 7, in quadruple\n'
        f'  File "{tmp_path}/katas/alpha/core.py", line 6, in double\n'
    )
    folders = [tmp_path / "katas" / "beta", tmp_path / "katas" / "alpha"]
    assert reports.locate(details, folders, tmp_path) == results.Location("katas/alpha/core.py", 6, "double")


# --------------------------------------------------------------------------- what a failure says

NUMPY_DETAILS = """\
Traceback (most recent call last):
  File "/repo/tests/test_acceleration.py", line 40, in test_matmul
    np.testing.assert_allclose(got, want)
AssertionError: \n\
Not equal to tolerance rtol=1e-07, atol=0

Mismatched elements: 19 / 20 (95%)
First 5 mismatches are at indices:
 [1]: 1.0 (ACTUAL), 3.0 (DESIRED)
 [2]: 2.0 (ACTUAL), 6.0 (DESIRED)
 [3]: 3.0 (ACTUAL), 9.0 (DESIRED)
 [4]: 4.0 (ACTUAL), 12.0 (DESIRED)
 [5]: 5.0 (ACTUAL), 15.0 (DESIRED)
Max absolute difference among violations: 38.
Max relative difference among violations: 0.66666667
 ACTUAL: array([ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12.,
       13., 14., 15., 16., 17., 18., 19.])
 DESIRED: array([ 0.,  3.,  6.,  9., 12., 15., 18., 21., 24., 27., 30., 33., 36.,
       39., 42., 45., 48., 51., 54., 57.])
(note: 1 other explicit example also failed with this error; use Verbosity.verbose to view)
You can reproduce this example by temporarily adding @reproduce_failure('6.1', b'AA') as a decorator
Failing explicit example: test_matmul(
    n=1,
)
"""
# what pytest puts in the JUnit message: the first ten lines, then a marker
NUMPY_MESSAGE = "\n".join(NUMPY_DETAILS.splitlines()[3:13]) + "\n[+7 more lines; full report in element text]"


def test_a_failure_shows_the_assertion_values_even_when_junit_cut_the_message():
    outcome = results.TestOutcome(
        "tests/test_acceleration.py::test_matmul", "failed", NUMPY_MESSAGE, NUMPY_DETAILS
    )
    lines = outcome.summary_lines()
    assert len(lines) <= 12
    assert lines[0] == "AssertionError: Not equal to tolerance rtol=1e-07, atol=0"
    assert " [1]: 1.0 (ACTUAL), 3.0 (DESIRED)" in lines
    assert " ACTUAL: array([ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12.," in lines
    assert any(line.startswith(" DESIRED: array([ 0.,  3.,") for line in lines)
    assert "Max absolute difference among violations: 38." in lines
    assert lines[-3:] == ["Failing explicit example: test_matmul(", "    n=1,", ")"]
    assert not any("[+7 more lines" in line or "Verbosity" in line for line in lines)


def test_a_summary_cut_to_one_line_is_the_exception_never_an_ellipsis():
    # the first failure of a Hypothesis test with explicit examples: message + a note line
    message = (
        "NotImplementedError: matmul_naive (module 16, acceleration): implement it in "
        "katas/acceleration/matmul.py\n(note: 5 other explicit examples also failed with this error; "
        "use Verbosity.verbose to view)"
    )
    outcome = results.TestOutcome("t::x", "failed", message)
    assert outcome.summary_lines(1) == [message.splitlines()[0]]
    assert outcome.summary_lines(2) == [
        message.splitlines()[0],
        "(5 other explicit examples also failed with this error)",
    ]
    longer = results.TestOutcome("t::x", "failed", message + "\nmore\nand more")
    assert longer.summary_lines(2) == [message.splitlines()[0], "..."]
    assert longer.summary_lines(0) == [message.splitlines()[0]]


# --------------------------------------------------------------------------- what a failure shows


def test_a_hypothesis_example_is_shown_whole_every_argument_on_a_line():
    # the argument that decided the failure came last; the summary once ended at `new=2, ...`
    details = (
        "Traceback (most recent call last):\n"
        '  File "/r/tests/test_caching.py", line 161, in test_cached_attention\n'
        "AssertionError: attention outputs differ by 0.945\n"
        "Falsifying explicit example: test_cached_attention(\n"
        "    past=3,\n    new=2,\n    seed=3,\n    causal=False,\n)\n"
    )
    message = "AssertionError: attention outputs differ by 0.945"
    outcome = results.TestOutcome("t::x", "failed", message, details)
    assert outcome.summary_lines() == [
        "AssertionError: attention outputs differ by 0.945",
        "Falsifying explicit example: test_cached_attention(",
        "    past=3,",
        "    new=2,",
        "    seed=3,",
        "    causal=False,",
        ")",
    ]
    assert outcome.summary_lines(1) == ["AssertionError: attention outputs differ by 0.945"]


def test_a_long_value_of_an_example_is_one_line_cut_in_its_middle():
    items = "".join(f"     {i},\n" for i in range(1, 60))
    details = (
        "AssertionError: assert 60 < 50\n"
        "Falsifying example: test_list(\n"
        "    # The test always failed when commented parts were varied together.\n"
        f"    xs=[0,\n{items}     60],\n"
        "    shape=GPTShape(vocab_size=7,\n              max_seq_len=12),\n"
        "    flag=False,  # or any other generated value\n"
        ")\n"
        "Draw 1 (n): 3\n"
        "Draw 2 (rows): [[0.0, 1.0],\n [2.0, 3.0]]\n"
        "You can reproduce this example by temporarily adding @reproduce_failure('6.1', b'AA')\n"
    )
    lines = results.TestOutcome("t::x", "failed", "AssertionError: assert 60 < 50", details).summary_lines()
    assert lines[:3] == [
        "AssertionError: assert 60 < 50",
        "Falsifying example: test_list(",
        "    # The test always failed when commented parts were varied together.",
    ]
    long = lines[3]
    assert long.startswith("    xs=[0, 1, 2, 3,") and long.endswith("[cut: 238 characters]"), long
    assert " ... " in long and "58, 59, 60]," in long and len(long) < summary.EXAMPLE_VALUE_WIDTH + 60
    assert lines[4:] == [
        "    shape=GPTShape(vocab_size=7, max_seq_len=12),",
        "    flag=False,  # or any other generated value",
        ")",
        "Draw 1 (n): 3",
        "Draw 2 (rows): [[0.0, 1.0], [2.0, 3.0]]",
    ]


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        (results.TestOutcome("t::x", "passed"), "passed"),
        (results.TestOutcome("t::x", "failed", "assert 1 == 2"), "wrong result"),
        (results.TestOutcome("t::x", "failed", "Failed: DID NOT RAISE <class 'ValueError'>"), "wrong result"),
        (results.TestOutcome("t::x", "failed", "numpy.linalg.LinAlgError: singular"), "test error"),
        (results.TestOutcome("t::x", "failed", "KeyError: 'x'", raised_in_code=True), "raised"),
        (results.TestOutcome("t::x", "failed", "AssertionError: mine", raised_in_code=True), "raised"),
        (results.TestOutcome("t::x", "error", "RuntimeError: fixture"), "setup error"),
        (results.TestOutcome("t", "error", "SyntaxError: invalid syntax", collection=True), "syntax error"),
        (
            results.TestOutcome("t", "error", "ModuleNotFoundError: No module", collection=True),
            "import error",
        ),
        (results.TestOutcome("t", "error", "NameError: name 'x'", collection=True), "error at import"),
        (results.TestOutcome("t", "error", "KataExit: ...", collection=True, problem="exit"), "exit"),
        (results.TestOutcome("t::x", "error", "Timeout: ...", problem="timeout"), "timeout"),
        (results.TestOutcome("t::x", "error", "Crash: ...", problem="crash"), "crash"),
        (results.TestOutcome("t::x", "error", "Not run: ...", problem="not run"), "not run"),
    ],
)
def test_the_kind_of_an_outcome(outcome: results.TestOutcome, kind: str):
    assert outcome.kind == kind and outcome.label == results.KINDS[kind]


# --------------------------------------------------------------------------- what a module needs


def test_needs_says_which_functions_of_other_modules_are_written(fake_repo: Path):
    registry_file = fake_repo / "modules.toml"
    text = registry_file.read_text()
    beta = 'tests = "tests/test_beta.py"\npoints = 20\nstatus = "ready"\n'
    registry_file.write_text(text.replace(beta, beta + 'needs = ["alpha.double", "alpha.Doubler.apply"]\n'))
    registry._load.cache_clear()
    module = registry.get("beta")
    assert module.needs == ("alpha.double", "alpha.Doubler.apply")
    assert module.needs_by_module() == {"alpha": ["double", "Doubler.apply"]}

    def written(impl: str, outcomes=()) -> dict[str, bool]:
        return {need.function: need.written for need in needs.needs(module, impl, outcomes, fake_repo)}

    assert written("katas") == {"double": False, "Doubler.apply": False}  # the stubs raise
    assert written("solutions") == written("katas,alpha=solutions") == {"double": True, "Doubler.apply": True}
    (fake_repo / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION)
    assert written("katas") == {"double": True, "Doubler.apply": True}
    # a run that saw double still raising NotImplementedError (in a branch) counts it unwritten
    seen = results.TestOutcome(
        "tests/test_beta.py::test_quadruple",
        "failed",
        "NotImplementedError: double (module 15, alpha): implement it in katas/alpha/core.py",
        location=results.Location("katas/alpha/core.py", 6, "double"),
    )
    assert written("katas", [seen]) == {"double": False, "Doubler.apply": True}
    assert written("katas,alpha=solutions", [seen]) == {"double": True, "Doubler.apply": True}  # elsewhere
    (fake_repo / "katas" / "alpha" / "core.py").write_text("def double(x):\n    return 2 * x\n")
    assert written("katas") == {"double": True, "Doubler.apply": False}  # not defined: not written
