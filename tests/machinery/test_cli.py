"""The student CLI on the fake repository (tests/machinery/conftest.py): its door.

Each command runs in-process (``main([...])``); its tests run in a real pytest subprocess on the
fake repository, so these tests check what a student would see. Here: usage errors and option
values, exit codes, ``list`` and ``bench``, ``python -m``, Ctrl-C. The board and a module's report
are tests/machinery/test_cli_board.py, the hints tests/machinery/test_cli_hints.py; both take the
helpers below.
"""

from __future__ import annotations

import io
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ALPHA_SOLUTION

from tinytorch.course import board, cli, registry, runner


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


def solve_alpha(root: Path) -> None:
    (root / "katas" / "alpha" / "core.py").write_text(ALPHA_SOLUTION)


def canned(module: str, *outcomes: runner.TestOutcome) -> runner.RunResult:
    m = registry.get(module)
    return runner.RunResult({m.name: runner.ModuleResult(m, list(outcomes))}, 1, "", report_found=True)


def failing(nodeid: str, message: str = "AssertionError: no") -> runner.TestOutcome:
    return runner.TestOutcome(nodeid, "failed", message)


# --------------------------------------------------------------------------- usage errors, list


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("test", "zeta"), "unknown module 'zeta'; the modules are: 15 alpha, 16 beta, 17 gamma"),
        (
            ("test", "gamma"),
            "module 17 (gamma) is planned and not released yet; the released modules are: 15 alpha",
        ),
        (("hint", "17"), "planned and not released yet"),
        (("watch", "gamma"), "planned and not released yet"),
        (("bench", "zeta"), "unknown module 'zeta'"),
        (
            ("test", "alpha", "--impl", "reference"),
            "unknown implementation 'reference'; valid: katas, solutions",
        ),
        (("status", "--impl", "katas,zeta=solutions"), "unknown module 'zeta'"),
    ],
)
def test_usage_errors_exit_2_and_say_what_is_valid(fake_repo: Path, argv, message):
    code, out = run(*argv)
    assert code == 2
    assert message in out


def test_the_code_under_test_follows_tinytorch_impl_unless_impl_is_given(fake_repo: Path, monkeypatch):
    seen = []
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: seen.append(impl) or canned("alpha"))
    monkeypatch.setenv("TINYTORCH_IMPL", "solutions,alpha=katas")
    code, out = run("test", "alpha")
    assert code == 1 and "(solutions,alpha=katas)" in out
    run("test", "alpha", "--impl", "katas")
    monkeypatch.setenv("TINYTORCH_IMPL", " ")
    run("test", "alpha")
    assert seen == ["solutions,alpha=katas", "katas", "katas"]
    monkeypatch.setenv("TINYTORCH_IMPL", "solutions,alpha=katas")
    both = canned("alpha")
    both.modules["beta"] = runner.ModuleResult(registry.get("beta"), [runner.TestOutcome("t::b", "passed")])
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: both)
    code, out = run("status")
    assert "tests against TINYTORCH_IMPL=solutions,alpha=katas" in out
    monkeypatch.setenv("TINYTORCH_IMPL", "bogus")
    code, out = run("status")
    assert code == 2 and "unknown implementation 'bogus'; valid: katas, solutions" in out


def test_argparse_errors_and_help(capsys: pytest.CaptureFixture[str]):
    assert run("frobnicate")[0] == 2
    assert run("--help")[0] == 0
    assert "exit codes" in capsys.readouterr().out


def test_outside_a_checkout(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_ROOT", str(tmp_path))
    code, out = run("bench", "profiling")
    assert code == 2 and "no katas/ folder" in out


def test_no_report_exits_3(fake_repo: Path, monkeypatch):
    broken = runner.RunResult({}, 4, "ERROR: usage: pytest ...", report_found=False)
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: broken)
    for argv in (("status",), ("test", "alpha"), ("hint", "alpha"), ("watch", "alpha", "--max-runs", "1")):
        code, out = run(*argv)
        assert code == 3 and "pytest wrote no report" in out and "ERROR: usage" in out


def test_list(fake_repo: Path):
    code, out = run("list")
    assert code == 0
    assert " 15  alpha         ready        10  Alpha: doubling" in out
    assert " 17  gamma         planned      30  Gamma: not built yet" in out


# --------------------------------------------------------------------------- bench and __main__


def test_bench_runs_the_module_benchmark_with_its_arguments(
    fake_repo: Path, capfd: pytest.CaptureFixture[str]
):
    code, out = run("bench", "alpha")
    assert code == 1 and "module 15 alpha has no benchmark (no benchmarks/alpha.py)" in out
    (fake_repo / "benchmarks").mkdir()
    (fake_repo / "benchmarks" / "alpha.py").write_text(
        "import sys\nprint('bench', sys.argv[1:])\nsys.exit(5)\n"
    )
    code, out = run("bench", "alpha", "--size", "64")
    assert code == 5
    assert "bench ['--size', '64']" in capfd.readouterr().out


def test_python_dash_m_tinytorch(fake_repo: Path, monkeypatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setattr(sys, "argv", ["tinytorch", "list"])
    with pytest.raises(SystemExit) as exit:
        runpy.run_module("tinytorch", run_name="__main__")
    assert exit.value.code == 0
    assert "alpha" in capsys.readouterr().out


def test_python_dash_m_tinytorch_dot_cli(fake_repo: Path):
    """`python -m tinytorch.course.cli` runs the CLI too: it once exited 0 silently, which a student read
    as "every test passes"."""
    command = [sys.executable, "-m", "tinytorch.course.cli", "list"]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0 and "alpha" in proc.stdout, proc.stderr


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError


def test_a_closed_pipe_ends_quietly_with_exit_1(fake_repo: Path):
    # `tinytorch list | head -1`: the reader closes the pipe; no traceback, a failing exit code
    assert cli.main(["list"], out=_ClosedPipe()) == 1


def test_list_markdown_prints_the_registry_table(fake_repo: Path):
    code, out = run("list", "--markdown")
    assert code == 0
    assert out.strip() == registry.markdown_table()
    assert "| 15 |" in out and "| 17 |" in out and "not released yet" in out


def test_no_command_prints_the_help_and_exits_2(fake_repo: Path):
    code, out = run()
    assert code == 2
    for command in ("status", "test", "hint", "watch", "list", "bench"):
        assert command in out


# --------------------------------------------------------------------------- registry, options, Ctrl-C


@pytest.mark.parametrize("command", ["hint", "test", "watch"])
def test_a_command_without_its_module_lists_the_modules(fake_repo: Path, command: str):
    code, out = run(command)
    assert code == 2
    assert out == (
        f"tinytorch {command}: which module? `tinytorch {command} <module>` takes a module's name or "
        "number; the released modules are: 15 alpha, 16 beta (`tinytorch list` shows them all)\n"
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no modules; the registry lists each kata module as a [[module]] table"),
        ("[[module]\nnumber = 15\n", "not valid TOML: "),
        ('[[module]]\nnumber = 15\nname = "alpha"\n', "[[module]] number 1 ('alpha'): missing kata, points"),
    ],
)
@pytest.mark.parametrize("argv", [("status",), ("list",), ("test", "alpha"), ("hint",)])
def test_a_broken_registry_is_a_usage_error_naming_the_file(fake_repo: Path, text: str, error: str, argv):
    registry_file = fake_repo / "modules.toml"
    registry_file.write_text(text)
    code, out = run(*argv)
    assert code == 2
    assert out.startswith(f"tinytorch {argv[0]}: {registry_file}: ") and error in out
    assert "Traceback" not in out
    registry_file.unlink()
    code, out = run(*argv)
    assert code == 2 and f"cannot read the registry {registry_file}" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("watch", "alpha", "--interval", "0"),
            "argument --interval: expected a number greater than 0, got '0'",
        ),
        (("watch", "alpha", "--interval", "-1"), "expected a number greater than 0, got '-1'"),
        (("watch", "alpha", "--interval", "nan"), "expected a number greater than 0, got 'nan'"),
        (("watch", "alpha", "--interval", "inf"), "expected a number greater than 0, got 'inf'"),
        (("watch", "alpha", "--interval", "soon"), "expected a number greater than 0, got 'soon'"),
        (
            ("watch", "alpha", "--max-runs", "0"),
            "argument --max-runs: expected a whole number greater than 0",
        ),
        (("watch", "alpha", "--max-runs", "1.5"), "expected a whole number greater than 0, got '1.5'"),
        (
            ("test", "alpha", "--timeout", "0"),
            "argument --timeout: expected a number greater than 0, got '0'",
        ),
        (("status", "--timeout", "-5"), "argument --timeout: expected a number greater than 0"),
    ],
)
def test_bad_option_values_are_usage_errors(fake_repo: Path, capsys, argv, message):
    code, out = run(*argv)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_bad_timeout_in_the_environment_is_a_usage_error(fake_repo: Path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_TEST_TIMEOUT", "soon")
    code, out = run("test", "alpha")
    assert code == 2 and "TINYTORCH_TEST_TIMEOUT='soon': give a positive number of seconds" in out


def test_the_timeouts_reach_the_runner(fake_repo: Path, monkeypatch):
    seen = []

    def fake_run(modules, impl, test_timeout, run_timeout):
        seen.append((test_timeout, run_timeout))
        return canned("alpha")

    monkeypatch.setattr(runner, "run_modules", fake_run)
    run("test", "alpha", "--timeout", "7")
    monkeypatch.setenv("TINYTORCH_TEST_TIMEOUT", "9")
    monkeypatch.setenv("TINYTORCH_RUN_TIMEOUT", "100")
    run("test", "alpha")
    run("test", "alpha", "--timeout", "50")  # the run's bound is at least four test timeouts
    assert seen == [(7, runner.RUN_TIMEOUT), (9, 100), (50, 200)]


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ("--impl", "bogus"),
            None,
            "--impl='bogus': unknown implementation 'bogus'; valid: katas, solutions",
        ),
        ((), "bogus", "TINYTORCH_IMPL='bogus': unknown implementation 'bogus'"),
        (
            ("--impl", "katas,solutions"),
            None,
            "--impl='katas,solutions': two defaults ('katas' and 'solutions')",
        ),
        (("--impl", "solutions,alpha=katas,15=solutions"), None, "module 'alpha' is given twice"),
        (("--impl", "./no/such/folder"), None, "--impl='./no/such/folder': no folder './no/such/folder'"),
    ],
)
def test_impl_errors_name_where_the_value_came_from(fake_repo: Path, monkeypatch, argv, env, message):
    if env:
        monkeypatch.setenv("TINYTORCH_IMPL", env)
    code, out = run("test", "alpha", *argv)
    assert code == 2 and message in out


def test_impl_serves_a_module_from_a_folder(fake_repo: Path):
    code, out = run("test", "alpha", "--impl", f"katas,alpha={fake_repo / 'solutions' / 'alpha'}")
    assert code == 0 and "3/3 tests pass" in out


def test_ctrl_c_during_a_run_exits_130_without_a_traceback(fake_repo: Path, monkeypatch):
    def interrupted(modules, impl):
        raise KeyboardInterrupt

    monkeypatch.setattr(board, "run_tests", interrupted)
    for argv in (("status",), ("test", "alpha"), ("hint", "alpha")):
        assert run(*argv) == (130, "\ninterrupted (Ctrl-C): the run was stopped\n")
    assert run("watch", "alpha") == (
        0,
        f"watching {fake_repo / 'katas' / 'alpha'}: the tests rerun when you "
        "save; Ctrl-C stops\n\nstopped watching\n",
    )


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to see the child's end")
def test_ctrl_c_on_a_hanging_kata_stops_the_cli_and_its_pytest_child(fake_repo: Path, tmp_path: Path):
    # the terminal sends SIGINT to the whole foreground process group; here: the CLI's new group
    marker = tmp_path / "hanging.pid"
    source = ALPHA_SOLUTION.replace(
        "    return factor * x\n",
        "    if x < 0:\n        import os\n\n"
        f"        open({str(marker)!r}, 'w').write(str(os.getpid()))\n"
        "        while True:\n            __import__('time').sleep(0.05)\n    return factor * x\n",
        1,
    )
    (fake_repo / "katas" / "alpha" / "core.py").write_text(source)

    def start_and_wait() -> tuple[subprocess.Popen, int]:
        """The CLI, once its pytest child is spinning in the kata: (CLI process, child's pid)."""
        marker.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tinytorch", "test", "alpha", "--timeout", "120"],
            env=runner.pytest_env("katas"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not (marker.is_file() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(marker.read_text())
        assert _alive(child)
        return proc, child

    def gone(pid: int) -> bool:
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return not _alive(pid)

    proc, child = start_and_wait()
    try:
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out + err
    assert out.endswith("interrupted (Ctrl-C): the run was stopped\n")
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    assert gone(child)  # the pytest child is gone, not left spinning

    proc, child = start_and_wait()  # the CLI killed outright (a closed terminal): its child ends too
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert gone(child)
