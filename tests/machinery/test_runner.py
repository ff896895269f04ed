"""The runner's JUnit reader: outcomes, node ids and where in the kata a failure happened."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinytorch import runner

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
    from tinytorch.registry import Module

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
    assert env["PYTHONPATH"].split(":") == [str(Path(runner.__file__).resolve().parents[1]), "/somewhere"]


def test_no_test_files_means_no_run(fake_repo: Path):
    from tinytorch import registry

    (fake_repo / "tests" / "test_alpha.py").unlink()
    result = runner.run_modules([registry.get("alpha")], root=fake_repo)
    assert result.report_found and result.returncode == 0 and result["alpha"].total == 0
