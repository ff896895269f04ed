"""``tinytorch status``, ``test`` and ``watch`` on the fake repository: what the board and a report say.

Canned runs (``board.run_tests`` replaced) and real ones: the progress bars and the next step, each
failure's label and place, a kata that cannot be imported, exits, hangs or crashes, and what a
module needs from earlier ones.
"""

from __future__ import annotations

from pathlib import Path

from conftest import ALPHA_BUGGY, ALPHA_SOLUTION
from test_cli import canned, failing, run, solve_alpha

from tinytorch.course import board, registry, runner

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
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: result)
    code, out = run("status")
    assert code == 0
    assert "3/3  [####################] done" in out and "1/1" in out
    assert "every released module passes" in out


def test_status_next_step_is_the_first_module_not_passing(fake_repo: Path, monkeypatch):
    result = canned("alpha", runner.TestOutcome("t::a", "passed"))
    beta = registry.get("beta")
    result.modules["beta"] = runner.ModuleResult(beta, [])
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: result)
    code, out = run("status")
    assert "1/1  [####################] done" in out and "no tests" in out
    assert "Next step: module 16 beta has no tests yet (tests/test_beta.py)" in out


def test_test_on_the_stubs_points_at_the_kata(fake_repo: Path):
    code, out = run("test", "15")  # by number
    assert code == 1
    assert "module 15 alpha: 0/3 tests pass (katas)" in out
    assert (
        "NOT WRITTEN tests/test_alpha.py::TestDoubler::test_apply\n"
        "  at katas/alpha/core.py:13 in Doubler.apply\n"
    ) in out
    assert "still raising NotImplementedError: Doubler.apply in katas/alpha/core.py; double in" in out


def test_test_with_a_bug_and_with_a_solution(fake_repo: Path):
    (fake_repo / "katas" / "alpha" / "core.py").write_text(ALPHA_BUGGY)
    code, out = run("test", "alpha")
    assert code == 1
    assert "2/3 tests pass" in out
    assert (
        "EXCEPTION tests/test_alpha.py::test_double_negative\n"
        "  at katas/alpha/core.py:7 in double (raised inside the code under test)\n"
    ) in out
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
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: result)
    code, out = run("test", "beta")
    assert code == 1
    assert "module 16 beta: the tests cannot be collected (katas)" in out
    assert (
        "SYNTAX ERROR tests/test_beta.py\n"
        "  at katas/beta/__init__.py:2 (the code does not parse, so the tests cannot import it)\n"
        "  | SyntaxError: '(' was never closed"
    ) in out
    code, out = run("status")
    assert "16  beta              error  syntax error: see test" in out
    assert "Next step: module 16 beta: tests/test_beta.py fails at katas/beta/__init__.py:2 (the code" in out


def test_test_lists_the_rest_of_many_failures(fake_repo: Path, monkeypatch):
    many = canned("alpha", *(failing(f"tests/test_alpha.py::test_{i}") for i in range(8)))
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: many)
    code, out = run("test", "alpha")
    assert code == 1 and out.count("\nWRONG RESULT tests/") == board.SHOWN_FAILURES
    assert "... and 3 more" in out and "  WRONG RESULT test_7" in out
    code, out = run("test", "alpha", "--all")
    assert out.count("\nWRONG RESULT tests/") == 8 and "more" not in out
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: canned("alpha"))
    assert run("test", "alpha") == (
        1,
        "module 15 alpha: 0/0 tests pass (katas)\n  no tests found in tests/test_alpha.py\n",
    )


def test_bar():
    assert board.bar(0, 4, 8) == "[........]"
    assert board.bar(2, 4, 8) == "[####....]"
    assert board.bar(99, 100, 8) == "[#######.]"  # only a full pass fills the bar
    assert board.bar(4, 4, 8) == "[########]"
    assert board.bar(0, 0, 4) == "[....]"


# --------------------------------------------------------------------------- watch


def test_watch_reruns_when_a_kata_file_is_saved(fake_repo: Path, monkeypatch):
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 2:  # the student saves a solution while the watcher waits
            solve_alpha(fake_repo)

    monkeypatch.setattr(board, "_sleep", sleep)
    code, out = run("watch", "alpha", "--max-runs", "2", "--interval", "0.25")
    assert code == 0
    assert polls == [0.25, 0.25]
    assert out.index("0/3 tests pass") < out.index("change detected") < out.index("3/3 tests pass")


def test_watch_stops_on_ctrl_c(fake_repo: Path, monkeypatch):
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(board, "_sleep", interrupt)
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: canned("alpha", failing("t::a")))
    code, out = run("watch", "alpha")
    assert code == 0 and out.endswith("stopped watching\n")


def test_snapshot_sees_saves_new_and_deleted_files(tmp_path: Path):
    (tmp_path / "a.py").write_text("x = 1\n")
    before = board.snapshot(tmp_path)
    (tmp_path / "a.py").write_text("x = 22\n")
    after = board.snapshot(tmp_path)
    assert before != after
    (tmp_path / "b.py").write_text("")
    assert set(board.snapshot(tmp_path)) == {str(tmp_path / "a.py"), str(tmp_path / "b.py")}


# --------------------------------------------------------------------------- when the code fails


def exiting_alpha(root: Path) -> int:
    """alpha's kata calls sys.exit(3) at import; beta no longer needs alpha. The exit's line."""
    source = ALPHA_SOLUTION + "\nimport sys\n\nsys.exit(3)\n"
    (root / "katas" / "alpha" / "core.py").write_text(source)
    (root / "katas" / "beta" / "__init__.py").write_text("def quadruple(x: int) -> int:\n    return 4 * x\n")
    return len(source.splitlines())


def test_status_names_the_module_whose_kata_exits_and_keeps_the_others(fake_repo: Path):
    line = exiting_alpha(fake_repo)
    code, out = run("status")
    assert code == 1  # a module's tests could not run: not a quiet 0
    assert "15  alpha             error  exits at import: see test" in out
    assert (
        f"! the tests cannot be imported: KataExit: the code under test called sys.exit(3) while the tests "
        f"imported it; a kata must return a value or raise an exception, never end the test process "
        f"(at katas/alpha/core.py:{line})"
    ) in out
    assert "16  beta                1/1  [####################] done" in out
    assert (
        f"Next step: module 15 alpha: tests/test_alpha.py fails at katas/alpha/core.py:{line}\n  KataExit: "
        in out
    )
    code, out = run("test", "alpha")
    assert code == 1 and f"EXIT tests/test_alpha.py\n  at katas/alpha/core.py:{line}\n  | KataExit: " in out


def test_a_timed_out_test_is_reported_as_such_with_its_function(fake_repo: Path, monkeypatch):
    timed_out = runner.TestOutcome(
        "tests/test_alpha.py::test_double_negative",
        "error",
        "Timeout: the test ran longer than 30 s and was stopped (an endless loop?)",
        location=runner.Location("katas/alpha/core.py", 7, "double"),
        test_location=runner.Location("tests/test_alpha.py", 9, "test_double_negative"),
        problem="timeout",
    )
    result = canned(
        "alpha", runner.TestOutcome("tests/test_alpha.py::test_double", "passed"), timed_out, failing("t::c")
    )
    result.modules["beta"] = runner.ModuleResult(registry.get("beta"), [runner.TestOutcome("t::b", "passed")])
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: result)
    code, out = run("test", "alpha")
    assert code == 1
    assert (
        "TIMEOUT tests/test_alpha.py::test_double_negative\n  at katas/alpha/core.py:7 in double\n"
        "  | Timeout: the test ran longer than 30 s and was stopped (an endless loop?)"
    ) in out
    code, out = run("status")
    assert code == 1
    assert "15  alpha               1/3  [#######.............]" in out
    assert (
        "! 1 timed out: Timeout: the test ran longer than 30 s" in out
        and "(at katas/alpha/core.py:7 in double)" in out
    )
    assert "Next step: module 15 alpha: test_double_negative fails at katas/alpha/core.py:7 in double" in out
    crashed = runner.TestOutcome(
        "t::x",
        "error",
        "Crash: the test process ended",
        problem="crash",
        test_location=runner.Location("tests/test_alpha.py", 3, "test_x"),
    )
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: canned("alpha", crashed))
    code, out = run("test", "alpha")
    assert (
        "CRASH t::x\n  at tests/test_alpha.py:3 in test_x\n" in out
    )  # not "the kata returned a wrong result"


def test_the_next_step_is_never_cut_to_an_ellipsis(fake_repo: Path, monkeypatch):
    # the first failure of a Hypothesis test with explicit examples: the message has a note line
    message = (
        "NotImplementedError: double (module 15, alpha): implement it in katas/alpha/core.py\n"
        "(note: 5 other explicit examples also failed with this error; use Verbosity.verbose to view)"
    )
    first = runner.TestOutcome(
        "tests/test_alpha.py::test_double",
        "failed",
        message,
        location=runner.Location("katas/alpha/core.py", 6, "double"),
    )
    result = canned("alpha", first)
    result.modules["beta"] = runner.ModuleResult(registry.get("beta"), [runner.TestOutcome("t::b", "passed")])
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: result)
    code, out = run("status")
    assert code == 0
    assert (
        "Next step: module 15 alpha: test_double fails at katas/alpha/core.py:6 in double\n"
        "  NotImplementedError: double (module 15, alpha): implement it in katas/alpha/core.py\n"
    ) in out
    assert "\n  ...\n" not in out


def test_a_failure_shows_the_actual_and_desired_values(fake_repo: Path, monkeypatch):
    from test_runner_results import NUMPY_DETAILS, NUMPY_MESSAGE

    outcome = runner.TestOutcome("tests/test_alpha.py::test_double", "failed", NUMPY_MESSAGE, NUMPY_DETAILS)
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: canned("alpha", outcome))
    code, out = run("test", "alpha")
    assert "  | AssertionError: Not equal to tolerance rtol=1e-07, atol=0\n" in out
    assert "  |  ACTUAL: array([ 0.,  1.,  2.," in out and "  |  DESIRED: array([ 0.,  3.,  6.," in out
    assert "  | Failing explicit example: test_matmul(" in out
    code, out = run("hint", "alpha")
    assert "  |  ACTUAL: array([ 0.,  1.,  2.," in out


def test_test_and_hint_show_every_argument_of_the_falsifying_example(fake_repo: Path, monkeypatch):
    details = (
        'File "tests/test_alpha.py", line 9, in test_double\n'
        "AssertionError: attention outputs differ by 0.945\n"
        "Falsifying explicit example: test_double(\n"
        "    past=3,\n    new=2,\n    seed=3,\n    causal=False,\n)\n"
    )
    message = "AssertionError: attention outputs differ by 0.945"
    outcome = runner.TestOutcome("tests/test_alpha.py::test_double", "failed", message, details)
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: canned("alpha", outcome))
    example = "  |     past=3,\n  |     new=2,\n  |     seed=3,\n  |     causal=False,\n  | )\n"
    for command in ("test", "hint"):
        code, out = run(command, "alpha")
        assert example in out, out


def test_a_collection_error_from_a_missing_name_is_an_import_error(fake_repo: Path):
    # the label once read "the test's check; the kata returned a wrong result"
    (fake_repo / "tests" / "test_beta.py").write_text("from tinytorch.perf.alpha import triple\n")
    code, out = run("test", "beta")
    assert code == 1
    assert (
        "IMPORT ERROR tests/test_beta.py\n"
        "  at tests/test_beta.py:1 (the tests cannot import a name or a module they need)\n"
        "  | ImportError: cannot import name 'triple' from 'tinytorch.perf.alpha'"
    ) in out, out
    assert "wrong result" not in out
    code, out = run("status")
    assert "16  beta              error  import error: see test" in out


def test_each_label_says_what_happened_where(fake_repo: Path, monkeypatch):
    test_line = runner.Location("tests/test_alpha.py", 4, "test_double")
    kata = runner.Location("katas/alpha/core.py", 6, "double")
    t, at = "tests/test_alpha.py::test_", {"test_location": test_line}
    outcomes = [
        runner.TestOutcome(t + "a", "failed", "AssertionError: no", **at),
        runner.TestOutcome(t + "b", "failed", "Failed: DID NOT RAISE <class 'ValueError'>", **at),
        runner.TestOutcome(t + "c", "failed", "IndexError: x", location=kata, raised_in_code=True, **at),
        runner.TestOutcome(t + "d", "failed", "AttributeError: 'int' has no 'data'", **at),
        runner.TestOutcome(t + "e", "error", "RuntimeError: fixture", **at),
    ]
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: canned("alpha", *outcomes))
    code, out = run("test", "alpha")
    assert (
        "\nWRONG RESULT tests/test_alpha.py::test_a\n  at tests/test_alpha.py:4 in test_double "
        "(the test's check: the code under test returned a wrong result)\n"
    ) in out
    assert (
        "\nWRONG RESULT tests/test_alpha.py::test_b\n  at tests/test_alpha.py:4 in test_double "
        "(the test's check: the code under test did not raise)\n"
    ) in out
    assert (
        "\nEXCEPTION tests/test_alpha.py::test_c\n  at katas/alpha/core.py:6 in double "
        "(raised inside the code under test)\n"
    ) in out
    assert (
        "\nFAILED tests/test_alpha.py::test_d\n  at tests/test_alpha.py:4 in test_double "
        "(AttributeError raised by the test's own code, not by the code under test)\n"
    ) in out
    assert (
        "\nERROR tests/test_alpha.py::test_e\n  at tests/test_alpha.py:4 in test_double "
        "(in the test's setup or teardown, not inside the code under test)\n"
    ) in out


def _beta_needs_alpha(root: Path) -> None:
    """The fake registry with beta needing alpha's double (beta's solution calls it)."""
    path = root / "modules.toml"
    beta = 'tests = "tests/test_beta.py"\npoints = 20\nstatus = "ready"\n'
    path.write_text(path.read_text().replace(beta, beta + 'needs = ["alpha.double"]\n'))
    registry._load.cache_clear()


def test_a_failing_run_says_what_the_module_needs_from_earlier_ones(fake_repo: Path):
    _beta_needs_alpha(fake_repo)
    code, out = run("test", "beta")
    assert code == 1
    assert (
        "\nmodule 16 uses 1 function of module 15: 0 written (its guide, katas/beta/README.md, lists them)\n"
        "  module 15 alpha: 0 of 1 written; still to write: double\n"
    ) in out
    # beta's reference on alpha's stub: the failure is in alpha's code, which beta needs
    code, out = run("test", "beta", "--impl", "katas,beta=solutions")
    assert (
        "NOT WRITTEN tests/test_beta.py::test_quadruple\n  at katas/alpha/core.py:6 in double "
        "(a function of module 15 alpha, not written yet: module 16 needs it)\n"
    ) in out
    assert "still raising NotImplementedError: double in katas/alpha/core.py\n" in out
    assert "module 16 uses 1 function of module 15: 0 written" in out
    solve_alpha(fake_repo)
    code, out = run("test", "beta")
    assert "module 16 uses 1 function of module 15: 1 written" in out
    assert "  module 15 alpha: 1 of 1 written\n" in out
    code, out = run("test", "beta", "--impl", "solutions")
    assert code == 0 and "uses" not in out  # all pass: nothing to say
