"""The runner's children on the fake repository: timeouts, deaths and reruns, Ctrl-C, real reports.

Each test here starts real pytest children (forked from the fork server, or plain subprocesses
where ``start_children`` asks for both) and reads what they leave behind.
"""

from __future__ import annotations

import os
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
    # child starts in a tenth of a second, a plain process in about a third of a second or more)
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


# --------------------------------------------------------------------------- what a real run reports


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
