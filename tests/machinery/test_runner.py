"""The runner's JUnit reader: outcomes, node ids and where in the kata a failure happened."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import ALPHA_SOLUTION

from tinytorch.course import registry, runner

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
def outcomes(tmp_path: Path) -> dict[str, runner.TestOutcome]:
    (tmp_path / "katas" / "alpha").mkdir(parents=True)
    (tmp_path / "katas" / "alpha" / "timer.py").write_text(KATA_SOURCE)
    files = ["tests/test_alpha.py", "tests/test_beta.py"]
    kata_dirs = {
        "tests/test_alpha.py": tmp_path / "katas" / "alpha",
        "tests/test_beta.py": tmp_path / "katas" / "beta",
    }
    parsed = runner.parse_junit(report(tmp_path), files, kata_dirs, tmp_path)
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
    assert failure.location == runner.Location("katas/alpha/timer.py", 4, "Timer.measure.inner")
    assert str(failure.location) == "katas/alpha/timer.py:4 in Timer.measure.inner"
    assert str(failure.test_location) == "tests/test_alpha.py:12 in test_measure"
    assert not failure.collection and not failure.not_implemented


def test_an_assertion_in_the_test_has_no_kata_frame(outcomes):
    failure = outcomes["tests/test_alpha.py::test_order"]
    assert failure.location is None
    assert failure.test_location == runner.Location("tests/test_alpha.py", 30, "test_order")
    lines = failure.summary_lines()
    assert lines[0] == "AssertionError: assert 3 <= 2"
    assert "Falsifying example: test_order(" in lines and "more text" not in lines


def test_collection_errors_name_the_exception_and_the_kata_line(outcomes):
    error = outcomes["tests/test_beta.py"]
    assert error.collection and error.name == "tests/test_beta.py"
    assert error.message == "ImportError: cannot import name 'x'"
    assert error.location == runner.Location("katas/beta/__init__.py", 3, "")


def test_module_result_counts(outcomes):
    from tinytorch.course.registry import Module

    module = Module(15, "alpha", "t", "katas/alpha", "solutions/alpha", "tests/test_alpha.py", 1, "ready")
    result = runner.ModuleResult(module, [o for n, o in outcomes.items() if n.startswith("tests/test_alpha")])
    assert (result.passed, result.total, result.all_passed) == (1, 5, False)
    assert [o.name for o in result.failures] == [
        "TestTimer::test_measure[1-2]",
        "test_order",
        "test_skipped",
        "test_setup",
    ]
    beta = runner.ModuleResult(module, [outcomes["tests/test_beta.py"]])
    assert (beta.total, len(beta.failures), beta.all_passed) == (0, 1, False)


def test_summary_lines_drop_hypothesis_advice_the_student_cannot_use():
    message = (
        "NotImplementedError: f (module 15, m): implement it in katas/m/a.py\n"
        "(note: 5 other explicit examples also failed with this error; use Verbosity.verbose to view)\n"
        "(note: 1 other explicit example also failed with this error; use Verbosity.verbose to view)"
    )
    assert runner.TestOutcome("t::x", "failed", message).summary_lines() == [
        "NotImplementedError: f (module 15, m): implement it in katas/m/a.py",
        "(5 other explicit examples also failed with this error)",
        "(1 other explicit example also failed with this error)",
    ]


def test_summary_lines_are_bounded():
    outcome = runner.TestOutcome("t", "failed", "\n".join(f"line {i}" for i in range(20)))
    assert outcome.summary_lines(4) == ["line 0", "line 1", "line 2", "..."]
    # a stub raising in a fixture (a test's setup) is unwritten code, not an exception of the kata
    setup = 'failed on setup with "NotImplementedError: build (module 20, x): implement it in katas/x/a.py"'
    assert runner.TestOutcome("t", "error", setup).kind == "not written", "a stub raising in a fixture"
    assert runner.TestOutcome("t", "error", 'failed on setup with "KeyError: 1"').exception == "KeyError"
    bare = runner.TestOutcome("t", "error", "", "a\nb\nKeyError: 'x'\n")
    assert bare.summary_lines() == ["a", "b", "KeyError: 'x'"]


def test_collection_message_fallbacks():
    assert runner._collection_message("") == "the test file could not be collected"
    assert runner._collection_message("something odd\nE   nothing to see") == "nothing to see"


def test_enclosing_function(tmp_path: Path):
    path = tmp_path / "k.py"
    path.write_text(KATA_SOURCE)
    assert runner.enclosing_function(path, 2) == "Timer.measure"
    assert runner.enclosing_function(path, 9) == "helper"
    assert runner.enclosing_function(path, 7) == ""
    assert runner.enclosing_function(tmp_path / "missing.py", 1) == ""


def test_locate_outside_the_root_keeps_the_absolute_path(tmp_path: Path):
    details = f'  File "{tmp_path}/k.py", line 3, in f\n'
    assert runner.locate(details, tmp_path, tmp_path / "elsewhere") == runner.Location(
        f"{tmp_path}/k.py", 3, "f"
    )
    assert runner.locate("no frames here", tmp_path, tmp_path) is None


def test_the_subprocess_imports_this_tinytorch(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    env = runner.pytest_env("solutions")
    assert env["TINYTORCH_IMPL"] == "solutions"
    assert env["PYTHONPATH"].split(":") == [str(Path(runner.__file__).resolve().parents[2]), "/somewhere"]


def test_no_test_files_means_no_run(fake_repo: Path):
    from tinytorch.course import registry

    (fake_repo / "tests" / "test_alpha.py").unlink()
    result = runner.run_modules([registry.get("alpha")], root=fake_repo)
    assert result.report_found and result.returncode == 0 and result["alpha"].total == 0


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
    assert runner.locate(details, tmp_path / "katas" / "alpha", tmp_path) == runner.Location(
        "katas/alpha/core.py", 12, ""
    )
    outcome = runner.TestOutcome("tests/test_alpha.py", "error", "SyntaxError: invalid syntax", details)
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
    assert runner.locate(dump, kata.parent, tmp_path) == runner.Location(
        "katas/alpha/timer.py", 4, "Timer.measure.inner"
    )


def test_a_failure_in_another_modules_kata_points_there(tmp_path: Path):
    details = (
        f'  File "{tmp_path}/tests/test_beta.py", line 3, in test_quadruple\n'
        f'  File "{tmp_path}/katas/beta/__init__.py", line 7, in quadruple\n'
        f'  File "{tmp_path}/katas/alpha/core.py", line 6, in double\n'
    )
    folders = [tmp_path / "katas" / "beta", tmp_path / "katas" / "alpha"]
    assert runner.locate(details, folders, tmp_path) == runner.Location("katas/alpha/core.py", 6, "double")


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
    outcome = runner.TestOutcome(
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
    outcome = runner.TestOutcome("t::x", "failed", message)
    assert outcome.summary_lines(1) == [message.splitlines()[0]]
    assert outcome.summary_lines(2) == [
        message.splitlines()[0],
        "(5 other explicit examples also failed with this error)",
    ]
    longer = runner.TestOutcome("t::x", "failed", message + "\nmore\nand more")
    assert longer.summary_lines(2) == [message.splitlines()[0], "..."]
    assert longer.summary_lines(0) == [message.splitlines()[0]]


# --------------------------------------------------------------------------- the child's plugin, in process


def test_the_run_log_survives_a_line_cut_by_a_dying_process(tmp_path: Path):
    log = tmp_path / "log.jsonl"

    def report(when: str, outcome: str, message: str, details: str) -> str:
        fields = {"nodeid": "t::a", "when": when, "outcome": outcome, "message": message, "details": details}
        return json.dumps({"event": "report", **fields}) + "\n"

    log.write_text(
        '{"event": "session"}\n{"event": "collected", "nodeids": ["t::a", "t::b", "t::c"]}\n'
        '{"event": "start", "nodeid": "t::a"}\n'
        + report("setup", "passed", "", "")
        + report("call", "failed", "E: x", "d")
        + report("teardown", "failed", "T", "")
        + '{"event": "finish", "nodeid": "t::a"}\n{"event": "start", "nodeid": "t::b"}\n{"event": "rep'
    )
    progress = runner.read_log(log)
    assert progress.started and progress.collected == ["t::a", "t::b", "t::c"]
    assert progress.running == "t::b" and progress.finished == ["t::a"]
    assert runner._merge_reports(progress.reports["t::a"]) == ("failed", "E: x", "d")  # call beats teardown
    setup_error = [{"when": "setup", "outcome": "failed", "message": "S", "details": "s"}]
    skipped = [{"when": "setup", "outcome": "skipped", "message": "Skipped: no", "details": ""}]
    assert runner._merge_reports(setup_error) == ("error", "S", "s")
    assert runner._merge_reports(skipped) == ("skipped", "Skipped: no", "")
    assert runner.read_log(tmp_path / "missing.jsonl") == runner.Progress()


def test_the_plugin_turns_exits_into_failures_and_logs_each_test(tmp_path: Path, monkeypatch):
    from types import SimpleNamespace

    from tinytorch.course import pytest_plugin as plugin

    def drive(wrapper, exc: BaseException):
        """Run a hook wrapper around an inner hook that raised ``exc``; what it returns or raises."""
        next(wrapper)
        try:
            wrapper.throw(exc)
        except StopIteration as stop:
            return stop.value
        raise AssertionError("the wrapper yielded twice")

    for exc, how in [
        (SystemExit(3), "called sys.exit(3) during the test"),
        (KeyboardInterrupt(), "raised KeyboardInterrupt during the test"),
        (plugin._OsExit(0), "called os._exit(0) during the test"),
    ]:
        with pytest.raises(plugin.KataExit, match=re.escape(how)):
            drive(plugin.pytest_runtest_call(None), exc)
    with pytest.raises(plugin.KataExit, match="in the test's setup"):
        drive(plugin.pytest_runtest_setup(None), SystemExit(None))
    with pytest.raises(plugin.KataExit, match="in the test's teardown"):
        drive(plugin.pytest_runtest_teardown(None, None), SystemExit(0))
    with pytest.raises(ValueError):  # anything else passes through untouched
        drive(plugin.pytest_runtest_call(None), ValueError("x"))
    gen = plugin.pytest_runtest_call(None)
    next(gen)
    with pytest.raises(StopIteration) as stop:
        gen.send("result")
    assert stop.value.value == "result"

    collect = plugin.pytest_make_collect_report(SimpleNamespace(nodeid="tests/test_alpha.py"))
    report = drive(collect, SystemExit(3))
    assert report.failed and report.nodeid == "tests/test_alpha.py"
    assert "KataExit: the code under test called sys.exit(3) while the tests imported it" in str(
        report.longrepr
    )

    # the log: configure, events, os._exit in the main thread raises, elsewhere it exits
    log = tmp_path / "log.jsonl"
    exits = []
    config = SimpleNamespace(
        getoption=lambda name, default=None: {"tinytorch_log": str(log), "timeout": 5}[name]
    )
    monkeypatch.setattr(plugin.os, "_exit", exits.append)
    plugin.pytest_configure(config)
    try:
        assert plugin._log is not None and plugin.os._exit == plugin._log.os_exit
        plugin.pytest_sessionstart(None)
        session = SimpleNamespace(config=config, items=[SimpleNamespace(nodeid="t::a")])
        collection = plugin.pytest_collection(session)
        next(collection)
        with pytest.raises(StopIteration):
            collection.send(None)
        plugin.pytest_collection_finish(session)
        plugin.pytest_runtest_logstart("t::a", ())
        crash = SimpleNamespace(message="AssertionError: no")
        failed = SimpleNamespace(
            nodeid="t::a",
            when="call",
            outcome="failed",
            longrepr=SimpleNamespace(reprcrash=crash),
            longreprtext="Traceback\nAssertionError: no",
            skipped=False,
        )
        skipped = SimpleNamespace(
            nodeid="t::a",
            when="teardown",
            outcome="skipped",
            longrepr=("f.py", 1, "Skipped: later"),
            longreprtext="",
            skipped=True,
        )
        for report in (failed, skipped):
            plugin.pytest_runtest_logreport(report)
        plugin.pytest_runtest_logfinish("t::a", ())
        with pytest.raises(SystemExit) as raised:
            plugin.os._exit(4)
        assert isinstance(raised.value, plugin._OsExit) and raised.value.code == 4
        thread = threading.Thread(target=plugin.os._exit, args=(5,))
        thread.start()
        thread.join()
        assert exits == [5]  # pytest-timeout's timer thread still ends the process
        plugin._log.watch_parent(-1)  # its parent is gone: the child ends itself
        assert exits == [5, 1]
    finally:
        plugin.pytest_unconfigure(config)
    assert plugin._log is None and plugin.os._exit == exits.append
    progress = runner.read_log(log)
    assert progress.started and progress.collected == ["t::a"] and progress.running is None
    assert [r["message"] for r in progress.reports["t::a"]] == ["AssertionError: no", "Skipped: later"]


# --------------------------------------------------------------------------- hang-proof runs (real children)


def write_alpha(root: Path, body: str) -> None:
    """A kata whose double(x) runs ``body`` for negative x (test_double_negative) and passes otherwise."""
    source = ALPHA_SOLUTION.replace(
        "    return factor * x\n",
        "    if x < 0:\n" + textwrap.indent(body, "        ") + "    return factor * x\n",
        1,
    )
    (root / "katas" / "alpha" / "core.py").write_text(source)


def line_of(text: str, source: str) -> int:
    """The line number of the first line of ``source`` that contains ``text``."""
    return next(n for n, line in enumerate(source.splitlines(), 1) if text in line)


# where a `while True: pass` loop in double() is caught: the `while` line or the `pass` line
LOOP = [runner.Location("katas/alpha/core.py", line, "double") for line in (7, 8)]


def outcomes_of(result: runner.RunResult, module: str) -> dict[str, runner.TestOutcome]:
    return {o.name: o for o in result[module].outcomes}


def test_a_test_stuck_in_an_endless_loop_times_out_and_the_others_still_run(fake_repo: Path, start_children):
    write_alpha(fake_repo, "while True:\n    pass\n")
    result = runner.run_modules([registry.get("alpha")], test_timeout=1, run_timeout=60)
    got = outcomes_of(result, "alpha")
    stuck = got["test_double_negative"]
    assert (stuck.label, stuck.problem) == ("TIMEOUT", "timeout")
    assert stuck.message.startswith("Timeout: the test ran longer than 1 s")
    assert stuck.location in LOOP  # the loop, with its function
    assert got["test_double"].ok and got["TestDoubler::test_apply"].ok  # run after the restart
    assert result["alpha"].broken and (result["alpha"].passed, result["alpha"].total) == (2, 3)


def test_the_whole_run_is_bounded_even_when_the_test_timeout_is_not(fake_repo: Path):
    # an endless polling loop: it hangs like `while True: pass` without taking a core from the
    # tests running beside this one for the whole bound
    write_alpha(fake_repo, "while True:\n    __import__('time').sleep(0.05)\n")
    started = time.monotonic()
    # 3 s: pytest must get to the test on a busy machine before the bound runs out (a forked
    # child starts in a tenth of a second, a plain process in about half a second)
    result = runner.run_modules([registry.get("alpha")], test_timeout=120, run_timeout=3)
    assert time.monotonic() - started < 20
    got = outcomes_of(result, "alpha")
    stuck = got["test_double_negative"]
    assert stuck.problem == "timeout" and "went over its bound of 3 s" in stuck.message
    assert stuck.location in LOOP  # from the SIGUSR1 stack dump
    assert got["test_double"].ok
    assert got["TestDoubler::test_apply"].problem == "not run"
    assert "its 3 s were used up" in got["TestDoubler::test_apply"].message


def test_an_endless_loop_at_import_times_out_with_its_line(fake_repo: Path):
    (fake_repo / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION + "\nwhile True:\n    pass\n")
    result = runner.run_modules([registry.get("alpha")], test_timeout=1, run_timeout=60)
    [error] = result["alpha"].outcomes
    assert error.collection and error.problem == "timeout"
    assert error.message.startswith("Timeout: importing the tests took longer than 1 s")
    assert error.location is not None and error.location.path == "katas/alpha/core.py"
    assert error.location.line in (len(ALPHA_SOLUTION.splitlines()) + 2, len(ALPHA_SOLUTION.splitlines()) + 3)


def test_a_syntax_error_in_a_kata_points_at_its_line(fake_repo: Path):
    core = fake_repo / "katas" / "alpha" / "core.py"
    core.write_text(ALPHA_SOLUTION.replace("def apply(self, x: int)", "def apply(self, x: int"))
    result = runner.run_modules([registry.get("alpha")])
    [error] = result["alpha"].outcomes
    assert error.collection and error.message.startswith("SyntaxError: ")
    assert error.location == runner.Location("katas/alpha/core.py", 12, "")
    (fake_repo / "katas" / "alpha" / "helper.py").write_text("def f():\n  x = 1\n    return x\n")
    core.write_text("from .helper import f  # noqa: F401\n" + ALPHA_SOLUTION)
    [error] = runner.run_modules([registry.get("alpha")])["alpha"].outcomes
    assert error.message == "IndentationError: unexpected indent"
    assert error.location == runner.Location("katas/alpha/helper.py", 3, "")


INDEPENDENT_BETA = "def quadruple(x: int) -> int:\n    return 4 * x\n"


@pytest.mark.parametrize(
    ("code", "how"),
    [
        ("import sys\nsys.exit(3)\n", "called sys.exit(3)"),
        ("import os\nos._exit(0)\n", "called os._exit(0)"),
        ("raise KeyboardInterrupt\n", "raised KeyboardInterrupt"),
    ],
)
def test_a_kata_that_exits_at_import_fails_its_own_module_only(fake_repo: Path, code: str, how: str):
    (fake_repo / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION + "\n" + code)
    (fake_repo / "katas" / "beta" / "__init__.py").write_text(INDEPENDENT_BETA)
    result = runner.run_modules([registry.get("alpha"), registry.get("beta")])
    assert result.report_found
    [error] = result["alpha"].outcomes
    assert error.collection and error.problem == "exit" and error.label == "EXIT"
    assert error.message == (
        f"KataExit: the code under test {how} while the tests imported it; a kata must return a value "
        "or raise an exception, never end the test process"
    )
    assert error.location is not None and error.location.path == "katas/alpha/core.py"
    assert error.location.line == len(ALPHA_SOLUTION.splitlines()) + 1 + len(code.splitlines())  # its last
    assert result["beta"].all_passed and result["beta"].total == 1  # the other module keeps its results


EXITING_TESTS = """\
from tinytorch.perf.alpha import core


def test_sys_exit():
    core.leave("sys")


def test_os_exit():
    core.leave("os")


def test_interrupt():
    core.leave("interrupt")


def test_crash():
    core.leave("kill")


def test_fine():
    assert core.double(2) == 4
"""

LEAVE = """

def leave(how):
    import os
    import signal
    import sys

    if how == "sys":
        sys.exit(3)
    if how == "os":
        os._exit(0)
    if how == "interrupt":
        raise KeyboardInterrupt
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_kata_function_that_exits_fails_its_test_and_the_run_goes_on(fake_repo: Path, start_children):
    (fake_repo / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION + LEAVE)
    (fake_repo / "tests" / "test_alpha.py").write_text(EXITING_TESTS)
    result = runner.run_modules([registry.get("alpha")])
    got = outcomes_of(result, "alpha")
    assert list(got) == ["test_sys_exit", "test_os_exit", "test_interrupt", "test_crash", "test_fine"]
    for name, how, line in [
        ("test_sys_exit", "called sys.exit(3)", line_of("sys.exit(3)", ALPHA_SOLUTION + LEAVE)),
        ("test_os_exit", "called os._exit(0)", line_of("os._exit(0)", ALPHA_SOLUTION + LEAVE)),
        (
            "test_interrupt",
            "raised KeyboardInterrupt",
            line_of("raise KeyboardInterrupt", ALPHA_SOLUTION + LEAVE),
        ),
    ]:
        assert got[name].problem == "exit", got[name]
        assert got[name].message.startswith(f"KataExit: the code under test {how} during the test")
        assert got[name].location == runner.Location("katas/alpha/core.py", line, "leave")
    crash = got["test_crash"]
    assert crash.problem == "crash" and crash.message.startswith(
        "Crash: the test process ended (exit code -9)"
    )
    assert got["test_fine"].ok  # run in a fresh process after the crash
    assert result["alpha"].broken


def test_a_child_that_dies_again_and_again_leaves_the_rest_not_run(fake_repo: Path, monkeypatch):
    monkeypatch.setattr(runner, "MAX_RESTARTS", 0)
    (fake_repo / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION + LEAVE)
    (fake_repo / "tests" / "test_alpha.py").write_text(EXITING_TESTS.replace('"sys"', '"kill"'))
    got = outcomes_of(runner.run_modules([registry.get("alpha")]), "alpha")
    assert got["test_sys_exit"].problem == "crash"
    assert [got[n].problem for n in ("test_os_exit", "test_interrupt", "test_crash", "test_fine")] == [
        "not run"
    ] * 4
    assert got["test_fine"].message == (
        "Not run: the test process ended in tests/test_alpha.py::test_sys_exit, after 0 restart(s); "
        "fix that test first"
    )


def test_pytest_that_cannot_start_is_no_report(fake_repo: Path):
    result = runner.run_modules([registry.get("alpha")], extra_args=["--no-such-option"])
    assert not result.report_found and "--no-such-option" in result.output


def test_timeouts_from_the_environment(monkeypatch):
    monkeypatch.setenv(runner.TEST_TIMEOUT_ENV, "12.5")
    assert runner.seconds_from_env(runner.TEST_TIMEOUT_ENV, 30) == 12.5
    monkeypatch.delenv(runner.TEST_TIMEOUT_ENV)
    assert runner.seconds_from_env(runner.TEST_TIMEOUT_ENV, 30) == 30
    for bad in ("0", "-1", "nan", "inf", "soon"):
        monkeypatch.setenv(runner.TEST_TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=f"TINYTORCH_TEST_TIMEOUT={bad!r}: give a positive number"):
            runner.seconds_from_env(runner.TEST_TIMEOUT_ENV, 30)


def test_the_suite_itself_runs_under_a_per_test_timeout(pytestconfig: pytest.Config):
    # pytest-timeout is configured for every run of the suite (tox, CI, a bare pytest): the thread
    # method, the one Hypothesis cannot swallow
    assert float(pytestconfig.getini("timeout")) >= 60
    assert pytestconfig.getini("timeout_method") == "thread"


def _system_site_packages() -> bool:
    """True in a virtualenv made with --system-site-packages (it sees the base's packages)."""
    config = Path(sys.prefix) / "pyvenv.cfg"
    text = config.read_text(encoding="utf-8") if config.is_file() else ""
    return any(
        line.split("=", 1)[0].strip() == "include-system-site-packages"
        and line.split("=", 1)[1].strip() == "true"
        for line in text.splitlines()
        if "=" in line
    )


BARE_PYTEST = """\
import sys
sys.path.extend({paths!r})  # where this test's pytest and numpy live, without the editable install's .pth
try:
    import tinytorch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("tinytorch is importable without the checkout: the test proves nothing")
import numpy
import pytest
if {venv!r}:  # in a virtualenv, nothing may come from the base interpreter (a clean one has no pytest)
    import sysconfig
    from pathlib import Path
    base = [Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")]  # -S: the base's
    for module in (numpy, pytest):
        if any(Path(module.__file__).resolve().is_relative_to(folder) for folder in base):
            raise SystemExit(f"{{module.__name__}} came from the base interpreter's site-packages {{base}}")
sys.exit(pytest.console_main())
"""


def test_a_bare_pytest_without_the_venv_finds_tinytorch_in_the_checkout(fake_repo: Path):
    # `pytest` from a python where tinytorch is not installed: tests/conftest.py must put the
    # checkout on sys.path before it imports tinytorch (-I -S: no PYTHONPATH, no site .pth files)
    (fake_repo / "tinytorch").symlink_to(Path(runner.__file__).resolve().parents[1])
    (fake_repo / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION)
    # The folders that hold pytest and numpy for this run, read from the modules themselves: under
    # -S, sysconfig names the *base* interpreter's site-packages, not the virtualenv's.
    import hypothesis
    import numpy

    paths = sorted({str(Path(m.__file__).resolve().parents[1]) for m in (pytest, numpy, hypothesis)})
    (fake_repo / "bare_pytest.py").write_text(
        BARE_PYTEST.format(paths=paths, venv=sys.prefix != sys.base_prefix and not _system_site_packages())
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "bare_pytest.py", "-p", "no:cacheprovider", "-q", "tests/test_alpha.py"],
        cwd=fake_repo,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout


def test_a_run_killed_before_its_session_is_a_timeout_not_a_missing_report(fake_repo: Path):
    conftest = fake_repo / "tests" / "conftest.py"
    conftest.write_text(conftest.read_text() + "\nimport time\n\ntime.sleep(60)\n")
    result = runner.run_modules([registry.get("alpha")], run_timeout=1.5)
    assert result.report_found
    [error] = result["alpha"].outcomes
    assert error.collection and error.problem == "timeout"
    assert "went over its bound of 1.5 s and was stopped while the tests imported the code" in error.message


def _interrupt_when_spinning(marker: Path) -> threading.Thread:
    """Ctrl-C (a real SIGINT to this process) once the kata below is spinning."""

    def wait_then_interrupt() -> None:
        deadline = time.monotonic() + 60
        while not (marker.is_file() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=wait_then_interrupt, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("parallel", [False, True], ids=["run_module", "run_modules"])
def test_ctrl_c_in_the_parent_kills_the_child_and_is_raised(fake_repo: Path, tmp_path: Path, parallel: bool):
    marker = tmp_path / "spinning.pid"
    write_alpha(
        fake_repo, f"import os\n\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\nwhile True:\n    pass\n"
    )
    waiter = _interrupt_when_spinning(marker)
    with pytest.raises(KeyboardInterrupt):
        if parallel:
            runner.run_modules([registry.get("alpha")], test_timeout=120, run_timeout=120)
        else:
            runner.run_module(registry.get("alpha"), test_timeout=120, run_timeout=120)
    waiter.join()
    child = int(marker.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (
        not Path(f"/proc/{child}").exists()
        or "Z" in Path(f"/proc/{child}/stat").read_text().split(")")[-1][:3]
    )
    if parallel:
        with pytest.raises(KeyboardInterrupt):  # no new child may start after Ctrl-C, until the next run
            runner._attempt(["true"], fake_repo, {}, tmp_path, 9, 1.0)
        runner._stopping.clear()


def test_a_run_warns_of_nothing_the_student_did(fake_repo: Path, start_children):
    # forked children find pytest's plugins (hypothesis, pytest_timeout) already imported: pytest
    # would warn that it cannot rewrite their asserts, on every run
    write_alpha(fake_repo, "pass\n")
    result = runner.run_modules([registry.get("alpha")], test_timeout=30, run_timeout=60)
    assert result["alpha"].total == 3
    assert "Warning" not in result.output, result.output


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
    outcome = runner.TestOutcome("t::x", "failed", message, details)
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
    lines = runner.TestOutcome("t::x", "failed", "AssertionError: assert 60 < 50", details).summary_lines()
    assert lines[:3] == [
        "AssertionError: assert 60 < 50",
        "Falsifying example: test_list(",
        "    # The test always failed when commented parts were varied together.",
    ]
    long = lines[3]
    assert long.startswith("    xs=[0, 1, 2, 3,") and long.endswith("[cut: 238 characters]"), long
    assert " ... " in long and "58, 59, 60]," in long and len(long) < runner.EXAMPLE_VALUE_WIDTH + 60
    assert lines[4:] == [
        "    shape=GPTShape(vocab_size=7, max_seq_len=12),",
        "    flag=False,  # or any other generated value",
        ")",
        "Draw 1 (n): 3",
        "Draw 2 (rows): [[0.0, 1.0], [2.0, 3.0]]",
    ]


def test_an_array_is_summarised_by_its_shape_dtype_range_and_first_values():
    import numpy as np

    from tinytorch.course.pytest_plugin import array_summary

    assert array_summary(np.arange(3, dtype=np.int8)) == "array([0, 1, 2], dtype=int8)"  # short: as is
    x = np.full((6, 40), 1.5, np.float32)
    x[0, 1], x[2, 3], x[5, 39] = np.nan, -np.inf, -2.25
    assert array_summary(x) == (
        "<array shape=(6, 40) dtype=float32 min=-2.25 max=1.5 nan=1 inf=1 "
        "first=[1.5, nan, 1.5, 1.5, 1.5, 1.5, ...]>"
    )
    empty = np.zeros((0,) + (1,) * 30)  # a repr longer than the width, and no values
    assert array_summary(empty) == f"<array shape={empty.shape} dtype=float64 empty>"
    assert array_summary(np.arange(100) > 50).startswith("<array shape=(100,) dtype=bool min=False max=True")


HYPOTHESIS_TESTS = """\
import numpy as np
from hypothesis import example, given, strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.perf.alpha import double


@given(hnp.arrays(np.float32, (6, 40), elements=st.floats(-3, 3, width=32)), st.integers(0, 3), st.booleans())
@example(np.full((6, 40), 1.5, np.float32), 2, False)
def test_double_with_a_flag(x, n, flag):
    assert double(n) == 2 * n and flag, "the flag decides"
"""


def test_a_run_shows_the_whole_example_with_its_arrays_summarised(fake_repo: Path):
    (fake_repo / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION)
    (fake_repo / "tests" / "test_alpha.py").write_text(HYPOTHESIS_TESTS)
    result = runner.run_modules([registry.get("alpha")], test_timeout=60, run_timeout=120)
    (failure,) = result["alpha"].failures
    assert failure.kind == "wrong result"
    lines = failure.summary_lines()
    assert lines[0] == "AssertionError: the flag decides"
    # Hypothesis names an @example's failure "Falsifying explicit example" up to 6.15x and
    # "Failing explicit example" after: the runner shows either as it comes
    lines[-5] = lines[-5].replace("Failing explicit example", "Falsifying explicit example")
    assert lines[-5:] == [
        "Falsifying explicit example: test_double_with_a_flag(",
        "    x=<array shape=(6, 40) dtype=float32 min=1.5 max=1.5 first=[1.5, 1.5, 1.5, 1.5, 1.5, 1.5, ...]>"
        ",",
        "    n=2,",
        "    flag=False,",
        ")",
    ], lines


KIND_KATA = """\
def double(x, factor=2):
    if x == "unwritten":
        raise NotImplementedError("double (module 15, alpha): implement it in katas/alpha/core.py")
    return factor * x


class Doubler:
    def apply(self, x):
        return double(x)
"""

KIND_TESTS = """\
import pytest

from tinytorch.perf.alpha import double


@pytest.fixture
def broken():
    raise RuntimeError("the fixture fails")


def test_wrong_result():
    assert double(2) == 5


def test_did_not_raise():
    with pytest.raises(ValueError):
        double(2)


def test_wrong_error_message():
    with pytest.raises(TypeError, match="must be a number"):
        double(None)


def test_raised():
    double(None)


def test_not_written():
    double("unwritten")


def test_test_error():
    double(2).data


def test_import_error():
    from tinytorch.perf.alpha import triple  # noqa: F401


def test_setup_error(broken):
    pass


def test_skipped():
    pytest.skip("later")
"""


def test_every_way_a_test_fails_has_a_kind_and_label_of_its_own(fake_repo: Path):
    (fake_repo / "katas" / "alpha" / "core.py").write_text(KIND_KATA)
    (fake_repo / "tests" / "test_alpha.py").write_text(KIND_TESTS)
    # beta's tests import a name alpha does not define: a collection error from a missing name
    (fake_repo / "tests" / "test_beta.py").write_text("from tinytorch.perf.alpha import triple\n")
    modules = [registry.get("alpha"), registry.get("beta")]
    result = runner.run_modules(modules, test_timeout=60, run_timeout=120)
    kinds = {o.name: (o.kind, o.label) for o in result["alpha"].outcomes}
    assert kinds == {
        "test_wrong_result": ("wrong result", "WRONG RESULT"),
        "test_did_not_raise": ("wrong result", "WRONG RESULT"),
        "test_wrong_error_message": ("wrong result", "WRONG RESULT"),  # the TypeError came first
        "test_raised": ("raised", "EXCEPTION"),
        "test_not_written": ("not written", "NOT WRITTEN"),
        "test_test_error": ("test error", "FAILED"),
        "test_import_error": ("import error", "IMPORT ERROR"),
        "test_setup_error": ("setup error", "ERROR"),
        "test_skipped": ("skipped", "SKIPPED"),
    }
    (beta,) = result["beta"].outcomes
    assert beta.collection and (beta.kind, beta.label) == ("import error", "IMPORT ERROR"), beta
    outcomes = {o.name: o for o in result["alpha"].outcomes}
    assert outcomes["test_raised"].exception == "TypeError" and outcomes["test_raised"].raised_in_code
    assert outcomes["test_test_error"].exception == "AttributeError"
    assert not outcomes["test_wrong_error_message"].raised_in_code


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        (runner.TestOutcome("t::x", "passed"), "passed"),
        (runner.TestOutcome("t::x", "failed", "assert 1 == 2"), "wrong result"),
        (runner.TestOutcome("t::x", "failed", "Failed: DID NOT RAISE <class 'ValueError'>"), "wrong result"),
        (runner.TestOutcome("t::x", "failed", "numpy.linalg.LinAlgError: singular"), "test error"),
        (runner.TestOutcome("t::x", "failed", "KeyError: 'x'", raised_in_code=True), "raised"),
        (runner.TestOutcome("t::x", "failed", "AssertionError: mine", raised_in_code=True), "raised"),
        (runner.TestOutcome("t::x", "error", "RuntimeError: fixture"), "setup error"),
        (runner.TestOutcome("t", "error", "SyntaxError: invalid syntax", collection=True), "syntax error"),
        (runner.TestOutcome("t", "error", "ModuleNotFoundError: No module", collection=True), "import error"),
        (runner.TestOutcome("t", "error", "NameError: name 'x'", collection=True), "error at import"),
        (runner.TestOutcome("t", "error", "KataExit: ...", collection=True, problem="exit"), "exit"),
        (runner.TestOutcome("t::x", "error", "Timeout: ...", problem="timeout"), "timeout"),
        (runner.TestOutcome("t::x", "error", "Crash: ...", problem="crash"), "crash"),
        (runner.TestOutcome("t::x", "error", "Not run: ...", problem="not run"), "not run"),
    ],
)
def test_the_kind_of_an_outcome(outcome: runner.TestOutcome, kind: str):
    assert outcome.kind == kind and outcome.label == runner.KINDS[kind]


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
        return {need.function: need.written for need in runner.needs(module, impl, outcomes, fake_repo)}

    assert written("katas") == {"double": False, "Doubler.apply": False}  # the stubs raise
    assert written("solutions") == written("katas,alpha=solutions") == {"double": True, "Doubler.apply": True}
    (fake_repo / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION)
    assert written("katas") == {"double": True, "Doubler.apply": True}
    # a run that saw double still raising NotImplementedError (in a branch) counts it unwritten
    seen = runner.TestOutcome(
        "tests/test_beta.py::test_quadruple",
        "failed",
        "NotImplementedError: double (module 15, alpha): implement it in katas/alpha/core.py",
        location=runner.Location("katas/alpha/core.py", 6, "double"),
    )
    assert written("katas", [seen]) == {"double": False, "Doubler.apply": True}
    assert written("katas,alpha=solutions", [seen]) == {"double": True, "Doubler.apply": True}  # elsewhere
    (fake_repo / "katas" / "alpha" / "core.py").write_text("def double(x):\n    return 2 * x\n")
    assert written("katas") == {"double": True, "Doubler.apply": False}  # not defined: not written
