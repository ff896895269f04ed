"""The student CLI on the fake repository (tests/machinery/conftest.py).

Each command runs in-process (``main([...])``); its tests run in a real pytest subprocess on the
fake repository, so these tests check what a student would see.
"""

from __future__ import annotations

import io
import json
import runpy
import sys
from pathlib import Path

import pytest
from conftest import ALPHA_BUGGY, ALPHA_SOLUTION

from tinytorch import cli, registry, runner


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


# --------------------------------------------------------------------------- status and test


def test_status_on_the_stubs(fake_repo: Path):
    code, out = run("status")
    assert code == 0
    assert "tests against your code in katas/" in out
    assert "15  alpha" in out and "0/3  [....................]" in out
    assert "16  beta" in out and "0/1" in out
    assert "17  gamma" in out and "planned  not released yet" in out
    assert "Next step: module 15 alpha: test_double fails at katas/alpha/core.py:6 in double" in out
    assert "NotImplementedError: double (module 15, alpha): implement it in katas/alpha/core.py" in out


def test_status_when_everything_passes(fake_repo: Path, monkeypatch):
    result = canned("alpha", *(runner.TestOutcome(f"t::{i}", "passed") for i in range(3)))
    result.modules["beta"] = runner.ModuleResult(registry.get("beta"), [runner.TestOutcome("t::b", "passed")])
    monkeypatch.setattr(cli, "_run", lambda modules, impl: result)
    code, out = run("status")
    assert code == 0
    assert "3/3  [####################] done" in out and "1/1" in out
    assert "every released module passes" in out


def test_status_next_step_is_the_first_module_not_passing(fake_repo: Path, monkeypatch):
    result = canned("alpha", runner.TestOutcome("t::a", "passed"))
    beta = registry.get("beta")
    result.modules["beta"] = runner.ModuleResult(beta, [])
    monkeypatch.setattr(cli, "_run", lambda modules, impl: result)
    code, out = run("status")
    assert "1/1  [####################] done" in out and "no tests" in out
    assert "Next step: module 16 beta has no tests yet (tests/test_beta.py)" in out


def test_test_on_the_stubs_points_at_the_kata(fake_repo: Path):
    code, out = run("test", "15")  # by number
    assert code == 1
    assert "module 15 alpha: 0/3 tests pass (katas)" in out
    assert (
        "FAILED tests/test_alpha.py::TestDoubler::test_apply\n  at katas/alpha/core.py:13 in Doubler.apply"
        in out
    )
    assert "still raising NotImplementedError: Doubler.apply in katas/alpha/core.py; double in" in out


def test_test_with_a_bug_and_with_a_solution(fake_repo: Path):
    (fake_repo / "katas" / "alpha" / "core.py").write_text(ALPHA_BUGGY)
    code, out = run("test", "alpha")
    assert code == 1
    assert "2/3 tests pass" in out
    assert "FAILED tests/test_alpha.py::test_double_negative\n  at katas/alpha/core.py:7 in double" in out
    assert "IndexError: list index out of range" in out


def test_test_reports_a_kata_that_cannot_be_imported(fake_repo: Path, monkeypatch):
    error = runner.TestOutcome(
        "tests/test_beta.py",
        "error",
        "SyntaxError: '(' was never closed",
        location=runner.Location("katas/beta/__init__.py", 2),
        collection=True,
    )
    result = canned("beta", error)
    result.modules["alpha"] = runner.ModuleResult(
        registry.get("alpha"), [runner.TestOutcome("t::a", "passed")]
    )
    monkeypatch.setattr(cli, "_run", lambda modules, impl: result)
    code, out = run("test", "beta")
    assert code == 1
    assert "module 16 beta: the tests cannot be collected (katas)" in out
    assert (
        "ERROR tests/test_beta.py\n  at katas/beta/__init__.py:2\n  | SyntaxError: '(' was never closed"
        in out
    )
    code, out = run("status")
    assert "16  beta              error  cannot import: see test" in out
    assert "Next step: module 16 beta: tests/test_beta.py fails at katas/beta/__init__.py:2" in out


def test_test_lists_the_rest_of_many_failures(fake_repo: Path, monkeypatch):
    many = canned("alpha", *(failing(f"tests/test_alpha.py::test_{i}") for i in range(8)))
    monkeypatch.setattr(cli, "_run", lambda modules, impl: many)
    code, out = run("test", "alpha")
    assert code == 1 and out.count("\nFAILED tests/") == cli.SHOWN_FAILURES
    assert "... and 3 more" in out and "  FAILED test_7" in out
    code, out = run("test", "alpha", "--all")
    assert out.count("\nFAILED tests/") == 8 and "more" not in out
    monkeypatch.setattr(cli, "_run", lambda modules, impl: canned("alpha"))
    assert run("test", "alpha") == (
        1,
        "module 15 alpha: 0/0 tests pass (katas)\n  no tests found in tests/test_alpha.py\n",
    )


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
    monkeypatch.setattr(cli, "_run", lambda modules, impl: seen.append(impl) or canned("alpha"))
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
    monkeypatch.setattr(cli, "_run", lambda modules, impl: both)
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
    monkeypatch.setattr(cli, "_run", lambda modules, impl: broken)
    for argv in (("status",), ("test", "alpha"), ("hint", "alpha"), ("watch", "alpha", "--max-runs", "1")):
        code, out = run(*argv)
        assert code == 3 and "pytest wrote no report" in out and "ERROR: usage" in out


def test_list(fake_repo: Path):
    code, out = run("list")
    assert code == 0
    assert " 15  alpha         ready        10  Alpha: doubling" in out
    assert " 17  gamma         planned      30  Gamma: not built yet" in out


def test_bar():
    assert cli.bar(0, 4, 8) == "[........]"
    assert cli.bar(2, 4, 8) == "[####....]"
    assert cli.bar(99, 100, 8) == "[#######.]"  # only a full pass fills the bar
    assert cli.bar(4, 4, 8) == "[########]"
    assert cli.bar(0, 0, 4) == "[....]"


# --------------------------------------------------------------------------- hint


def test_hint_shows_the_next_hint_for_the_first_failing_test(fake_repo: Path, monkeypatch):
    stub = canned(
        "alpha",
        runner.TestOutcome(
            "tests/test_alpha.py::test_double",
            "failed",
            "NotImplementedError: double",
            location=runner.Location("katas/alpha/core.py", 6, "double"),
        ),
        failing("tests/test_alpha.py::test_double_negative"),
    )
    monkeypatch.setattr(cli, "_run", lambda modules, impl: stub)
    code, out = run("hint", "alpha")  # test_double fails first; only the "" hint matches it
    assert code == 0
    assert "First failing test: tests/test_alpha.py::test_double\n  at katas/alpha/core.py:6 in double" in out
    assert "Hint 1 of 1: Return 2 * x." in out
    progress = fake_repo / ".tinytorch" / "hints.json"
    assert json.loads(progress.read_text()) == {"alpha": [1]}

    negative = canned(
        "alpha", runner.TestOutcome("t::a", "passed"), failing("tests/test_alpha.py::test_double_negative")
    )
    monkeypatch.setattr(cli, "_run", lambda modules, impl: negative)
    code, out = run("hint", "alpha")  # two hints match; the "" one is shown already
    assert "Hint 1 of 2: Negative numbers double too." in out
    assert json.loads(progress.read_text()) == {"alpha": [0, 1]}
    code, out = run("hint", "alpha")
    assert code == 0 and "Every hint for this test (2) is shown already:" in out
    assert "1. Negative numbers double too.\n  2. Return 2 * x." in out

    assert run("hint", "alpha", "--reset") == (0, "hints of module 15 alpha reset\n")
    assert json.loads(progress.read_text()) == {}
    code, out = run("hint", "alpha")
    assert "Hint 1 of 2: Negative numbers double too." in out and "again for the next one" in out


def test_hint_without_a_matching_hint_or_when_all_pass(fake_repo: Path, monkeypatch):
    result = canned("beta", failing("tests/test_beta.py::test_quadruple"))
    monkeypatch.setattr(cli, "_run", lambda modules, impl: result)
    code, out = run("hint", "beta")
    assert code == 0 and "No hint in the registry for this test" in out
    result = canned("beta", runner.TestOutcome("tests/test_beta.py::test_quadruple", "passed"))
    code, out = run("hint", "beta")
    assert code == 0 and "Every test of module 16 beta passes (1/1): no hint needed." in out
    result = canned("beta")
    code, out = run("hint", "beta")
    assert code == 1 and "has no tests" in out


def test_hint_survives_a_corrupt_progress_file(fake_repo: Path, monkeypatch):
    (fake_repo / ".tinytorch").mkdir()
    (fake_repo / ".tinytorch" / "hints.json").write_text("{not json")
    monkeypatch.setattr(
        cli, "_run", lambda modules, impl: canned("alpha", failing("tests/test_alpha.py::test_x"))
    )
    code, out = run("hint", "alpha")
    assert "Hint 1 of 1: Return 2 * x." in out
    (fake_repo / ".tinytorch" / "hints.json").write_text("[1, 2]")
    assert "Hint 1 of 1" in run("hint", "alpha")[1]


# --------------------------------------------------------------------------- watch


def test_watch_reruns_when_a_kata_file_is_saved(fake_repo: Path, monkeypatch):
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 2:  # the student saves a solution while the watcher waits
            solve_alpha(fake_repo)

    monkeypatch.setattr(cli, "_sleep", sleep)
    code, out = run("watch", "alpha", "--max-runs", "2", "--interval", "0.25")
    assert code == 0
    assert polls == [0.25, 0.25]
    assert out.index("0/3 tests pass") < out.index("change detected") < out.index("3/3 tests pass")


def test_watch_stops_on_ctrl_c(fake_repo: Path, monkeypatch):
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_sleep", interrupt)
    monkeypatch.setattr(cli, "_run", lambda modules, impl: canned("alpha", failing("t::a")))
    code, out = run("watch", "alpha")
    assert code == 0 and out.endswith("stopped watching\n")


def test_snapshot_sees_saves_new_and_deleted_files(tmp_path: Path):
    (tmp_path / "a.py").write_text("x = 1\n")
    before = cli.snapshot(tmp_path)
    (tmp_path / "a.py").write_text("x = 22\n")
    after = cli.snapshot(tmp_path)
    assert before != after
    (tmp_path / "b.py").write_text("")
    assert set(cli.snapshot(tmp_path)) == {str(tmp_path / "a.py"), str(tmp_path / "b.py")}


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
