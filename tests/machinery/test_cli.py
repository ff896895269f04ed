"""The student CLI on the fake repository (tests/machinery/conftest.py).

Each command runs in-process (``main([...])``); its tests run in a real pytest subprocess on the
fake repository, so these tests check what a student would see.
"""

from __future__ import annotations

import io
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ALPHA_BUGGY, ALPHA_SOLUTION

from tinytorch.course import cli, registry, runner


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
    monkeypatch.setattr(cli, "_run", lambda modules, impl: result)
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
    monkeypatch.setattr(cli, "_run", lambda modules, impl: many)
    code, out = run("test", "alpha")
    assert code == 1 and out.count("\nWRONG RESULT tests/") == cli.SHOWN_FAILURES
    assert "... and 3 more" in out and "  WRONG RESULT test_7" in out
    code, out = run("test", "alpha", "--all")
    assert out.count("\nWRONG RESULT tests/") == 8 and "more" not in out
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
    code, out = run("hint", "alpha")  # test_double fails first; it has no hint of its own
    assert code == 0
    assert "First failing test: tests/test_alpha.py::test_double\n  at katas/alpha/core.py:6 in double" in out
    # the module's general hint ("" tests) is no rung of a ladder: it stands in for a missing one
    assert out.endswith("\nNo hint of its own for test_double; about module 15 alpha:\n  Return 2 * x.\n")
    progress = fake_repo / ".tinytorch" / "hints.json"
    ids = [cli._hint_id(h) for h in registry.get("alpha").hints]  # ["negative" hint, "" hint]
    assert json.loads(progress.read_text()) == {"alpha": [ids[1]]}

    negative = canned(
        "alpha", runner.TestOutcome("t::a", "passed"), failing("tests/test_alpha.py::test_double_negative")
    )
    monkeypatch.setattr(cli, "_run", lambda modules, impl: negative)
    code, out = run("hint", "alpha")  # one hint of its own; the general one was shown already
    assert "About module" not in out
    assert "Hint 1 of 1 for test_double_negative:\n  Negative numbers double too.\n" in out
    assert "That was the last hint for this test.\nTaken: hint 1 of 1" in out
    assert json.loads(progress.read_text()) == {"alpha": sorted(ids)}
    code, out = run("hint", "alpha")
    assert code == 0 and "Every hint for this test (1) is shown already:" in out
    assert "1. Negative numbers double too.\n(`tinytorch hint alpha --reset` starts over)" in out

    assert run("hint", "alpha", "--reset") == (0, "hints of module 15 alpha reset\n")
    assert json.loads(progress.read_text()) == {}
    code, out = run("hint", "alpha")  # after a reset the general hint comes once more, before hint 1
    assert "\nAbout module 15 alpha:\n  Return 2 * x.\n\nHint 1 of 1 for test_double_negative" in out
    code, out = run("hint", "alpha", "--shown")
    assert "About module 15 alpha:\n  Return 2 * x.\n\nHints taken for test_double_negative (1 of 1)" in out


def test_hints_taken_stay_taken_when_the_registry_changes(fake_repo: Path, monkeypatch):
    """Progress names hints by their content, not their place: an instructor who adds a hint in
    front of the others does not make a student's taken hints look new (or new ones look taken)."""
    (fake_repo / "modules.toml").write_text(LEVELS)
    registry._load.cache_clear()
    stuck = canned("alpha", failing("tests/test_alpha.py::test_double_negative"))
    monkeypatch.setattr(cli, "_run", lambda modules, impl: stuck)
    run("hint", "alpha")
    run("hint", "alpha")  # the nudge and "Negative numbers double too." are taken
    first_hint = '[[module.hint]]\ntests = "test_double"\ntext = "A nudge'
    added = '[[module.hint]]\ntests = "negative"\ntext = "A new first hint."\n\n'
    (fake_repo / "modules.toml").write_text(LEVELS.replace(first_hint, added + first_hint))
    registry._load.cache_clear()
    code, out = run("hint", "alpha", "--shown")
    assert "Hints taken for test_double_negative (2 of 4):" in out, out
    assert "A nudge" in out and "Negative numbers double too." in out and "A new first hint" not in out
    code, out = run("hint", "alpha")
    assert "Hint 1 of 4 for test_double_negative:\n  A new first hint." in out


def test_a_progress_file_of_positions_is_still_read(fake_repo: Path, monkeypatch):
    # an earlier version saved each taken hint's position in the module's list
    (fake_repo / "modules.toml").write_text(LEVELS)
    registry._load.cache_clear()
    (fake_repo / ".tinytorch").mkdir()
    (fake_repo / ".tinytorch" / "hints.json").write_text('{"alpha": [0, 1, 99, true]}')
    stuck = canned("alpha", failing("tests/test_alpha.py::test_double_negative"))
    monkeypatch.setattr(cli, "_run", lambda modules, impl: stuck)
    code, out = run("hint", "alpha")
    assert "Hint 3 of 3 for test_double_negative:\n  The recipe" in out, out


LEVELS = """\
[[module]]
number = 15
name = "alpha"
title = "Alpha: doubling"
kata = "katas/alpha"
solution = "solutions/alpha"
tests = "tests/test_alpha.py"
points = 10
status = "ready"

[[module.hint]]
tests = "test_double"
text = "A nudge: what does doubling do to a sign?"

[[module.hint]]
tests = "negative"
text = "Negative numbers double too."

[[module.hint]]
tests = "test_double"
text = \"\"\"The recipe: return factor * x,
with the factor you were given.\"\"\"
"""


def test_hint_levels_go_from_a_nudge_to_the_recipe_and_can_be_shown_again(fake_repo: Path, monkeypatch):
    (fake_repo / "modules.toml").write_text(LEVELS)
    registry._load.cache_clear()
    monkeypatch.setattr(
        cli,
        "_run",
        lambda modules, impl: canned("alpha", failing("tests/test_alpha.py::test_double_negative")),
    )
    code, out = run("hint", "alpha", "--shown")  # nothing taken yet: nothing revealed either
    assert (
        code == 0
        and "No hint taken for test_double_negative yet: `tinytorch hint alpha` shows the first of 3." in out
    )
    assert "nudge" not in out and not (fake_repo / ".tinytorch" / "hints.json").exists()

    outs = [run("hint", "alpha")[1] for _ in range(4)]
    assert "Hint 1 of 3 for test_double_negative:\n  A nudge: what does doubling do to a sign?\n" in outs[0]
    assert "2 more for this test, each more explicit: run `tinytorch hint alpha` again." in outs[0]
    assert "Hint 2 of 3 for test_double_negative:\n  Negative numbers double too.\n1 more" in outs[1]
    # a hint written over several lines of the registry is one paragraph
    assert (
        "Hint 3 of 3 for test_double_negative:\n"
        "  The recipe: return factor * x, with the factor you were given." in outs[2]
    )
    assert "That was the last hint for this test.\nTaken: hints 1-3 of 3;" in outs[2]
    assert "Every hint for this test (3) is shown already:" in outs[3]

    run("hint", "alpha", "--reset")
    run("hint", "alpha")
    code, out = run("hint", "alpha", "--shown")
    assert (
        "Hints taken for test_double_negative (1 of 3):\n  1. A nudge: what does doubling do to a sign?\n"
        in out
    )
    assert "(2 more: run `tinytorch hint alpha`)" in out and "Negative numbers" not in out
    run("hint", "alpha")
    run("hint", "alpha")
    code, out = run("hint", "alpha", "--shown")
    assert (
        "Hints taken for test_double_negative (3 of 3):" in out
        and "(that is every hint for this test)" in out
    )

    # another test shares the first and last levels: they count as taken there too
    monkeypatch.setattr(
        cli,
        "_run",
        lambda modules, impl: canned("alpha", failing("tests/test_alpha.py::TestDoubler::test_double_x[1]")),
    )
    code, out = run("hint", "alpha", "--shown")
    assert "Hints taken for test_double_x[1] (2 of 2):" in out
    assert run("hint", "alpha", "--shown", "--reset")[0] == 2  # argparse: one or the other
    assert cli._levels([1, 2, 3, 5]) == "hints 1-3, 5" and cli._levels([4]) == "hint 4"
    registry._load.cache_clear()


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


LADDERS = (
    LEVELS
    + """
[[module.hint]]
tests = ""
text = "Work in order: double, then Doubler.apply."

[[module.hint]]
tests = "test_apply"
text = "apply calls double: see the hints of test_double."
see = ["test_double"]

[module.ladders]
double = "test_double"
"Doubler.apply" = "test_apply"

[[module]]
number = 16
name = "beta"
title = "Beta: quadrupling"
kata = "katas/beta"
solution = "solutions/beta"
tests = "tests/test_beta.py"
points = 20
status = "ready"

[[module.hint]]
tests = "quadruple"
text = "Quadrupling is doubling twice."
"""
)


def use_registry(fake_repo: Path, text: str) -> None:
    (fake_repo / "modules.toml").write_text(text)
    registry._load.cache_clear()


def test_the_general_hint_comes_once_and_is_no_rung_of_a_ladder(fake_repo: Path, monkeypatch):
    """The module's general advice ("work in this order") is shown once, above the first hint taken
    in the module; hint 1 of a failing test is the first hint for *that* test."""
    use_registry(fake_repo, LADDERS)
    stuck = canned("alpha", failing("tests/test_alpha.py::test_double_negative"))
    monkeypatch.setattr(cli, "_run", lambda modules, impl: stuck)
    code, out = run("hint", "alpha")
    assert code == 0
    assert (
        "\nAbout module 15 alpha:\n  Work in order: double, then Doubler.apply.\n\n"
        "Hint 1 of 3 for test_double_negative:\n  A nudge: what does doubling do to a sign?\n"
    ) in out
    code, out = run("hint", "alpha")
    assert "Work in order" not in out and "Hint 2 of 3 for test_double_negative:\n  Negative numbers" in out
    code, out = run("hint", "alpha", "--shown")
    assert "About module 15 alpha:\n  Work in order" in out and "(2 of 3)" in out
    registry._load.cache_clear()


def test_a_hint_that_points_to_another_tests_hints_leads_to_them(fake_repo: Path, monkeypatch):
    """"see the hints of test_double" is followed by those hints, though test_double passes."""
    use_registry(fake_repo, LADDERS)
    apply_fails = canned(
        "alpha",
        runner.TestOutcome("tests/test_alpha.py::test_double", "passed"),
        failing("tests/test_alpha.py::TestDoubler::test_apply"),
    )
    monkeypatch.setattr(cli, "_run", lambda modules, impl: apply_fails)
    outs = [run("hint", "alpha")[1] for _ in range(3)]
    assert "Hint 1 of 3 for test_apply:\n  apply calls double: see the hints of test_double.\n" in outs[0]
    assert "Hint 2 of 3 for test_apply:\n  A nudge: what does doubling do to a sign?\n" in outs[1]
    assert "Hint 3 of 3 for test_apply:\n  The recipe: return factor * x," in outs[2]
    registry._load.cache_clear()


def test_a_test_failing_in_an_unwritten_function_gets_its_hints_first(fake_repo: Path, monkeypatch):
    """test_apply fails in double's NotImplementedError: the hints for double come first (the
    ladder the registry names for it), then test_apply's own; across modules too."""
    use_registry(fake_repo, LADDERS.replace('see = ["test_double"]\n', ""))
    unwritten = "NotImplementedError: double (module 15, alpha): implement it in katas/alpha/core.py"
    apply_fails = canned("alpha", failing("tests/test_alpha.py::TestDoubler::test_apply", unwritten))
    monkeypatch.setattr(cli, "_run", lambda modules, impl: apply_fails)
    code, out = run("hint", "alpha")
    assert "It fails because double is not written yet (its NotImplementedError): the hints for double" in out
    assert "Hint 1 of 3 for test_apply:\n  A nudge: what does doubling do to a sign?\n" in out
    outs = [run("hint", "alpha")[1] for _ in range(2)]
    assert "Hint 3 of 3 for test_apply:\n  apply calls double" in outs[1]

    # module 16's test fails in module 15's double: module 15's hints for double, then its own
    progress = fake_repo / ".tinytorch" / "hints.json"
    progress.unlink()
    in_setup = f'failed on setup with "{unwritten}"'
    beta_fails = canned("beta", failing("tests/test_beta.py::test_quadruple", in_setup))
    monkeypatch.setattr(cli, "_run", lambda modules, impl: beta_fails)
    code, out = run("hint", "beta")
    assert "It fails because double of module 15 alpha is not written yet" in out
    assert "Hint 1 of 3 for test_quadruple:\n  A nudge: what does doubling do to a sign?\n" in out
    assert set(json.loads(progress.read_text())) == {"alpha"}  # a hint of module 15's entry, taken there
    outs = [run("hint", "beta")[1] for _ in range(2)]
    assert "Hint 3 of 3 for test_quadruple:\n  Quadrupling is doubling twice." in outs[1]
    assert set(json.loads(progress.read_text())) == {"alpha", "beta"}

    # once double is written, the test's own ladder is all there is
    monkeypatch.setattr(
        cli, "_run", lambda modules, impl: canned("beta", failing("tests/test_beta.py::test_quadruple"))
    )
    code, out = run("hint", "beta", "--shown")
    assert "Hints taken for test_quadruple (1 of 1)" in out and "It fails because" not in out
    registry._load.cache_clear()


def test_a_copy_without_recipes_says_so_at_the_last_hint(fake_repo: Path, monkeypatch):
    use_registry(fake_repo, 'hints = "nudges"\n' + LEVELS)
    stuck = canned("alpha", failing("tests/test_alpha.py::test_double_negative"))
    monkeypatch.setattr(cli, "_run", lambda modules, impl: stuck)
    outs = [run("hint", "alpha")[1] for _ in range(3)]
    assert "That was the last hint for this test (this copy of the course holds no recipes)." in outs[2]
    use_registry(fake_repo, 'hints = "none"\n' + LEVELS.split("[[module.hint]]")[0])
    code, out = run("hint", "alpha")
    assert "No hint in the registry for this test" in out and "holds no hints" in out
    registry._load.cache_clear()


def test_hint_survives_a_corrupt_progress_file(fake_repo: Path, monkeypatch):
    (fake_repo / ".tinytorch").mkdir()
    (fake_repo / ".tinytorch" / "hints.json").write_text("{not json")
    monkeypatch.setattr(
        cli, "_run", lambda modules, impl: canned("alpha", failing("tests/test_alpha.py::test_x_negative"))
    )
    code, out = run("hint", "alpha")
    assert "Hint 1 of 1 for test_x_negative:\n  Negative numbers double too." in out
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


# --------------------------------------------------------------------------- issue 7: what students do


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
    monkeypatch.setattr(cli, "_run", lambda modules, impl: result)
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
    monkeypatch.setattr(cli, "_run", lambda modules, impl: canned("alpha", crashed))
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
    monkeypatch.setattr(cli, "_run", lambda modules, impl: result)
    code, out = run("status")
    assert code == 0
    assert (
        "Next step: module 15 alpha: test_double fails at katas/alpha/core.py:6 in double\n"
        "  NotImplementedError: double (module 15, alpha): implement it in katas/alpha/core.py\n"
    ) in out
    assert "\n  ...\n" not in out


def test_a_failure_shows_the_actual_and_desired_values(fake_repo: Path, monkeypatch):
    from test_runner import NUMPY_DETAILS, NUMPY_MESSAGE

    outcome = runner.TestOutcome("tests/test_alpha.py::test_double", "failed", NUMPY_MESSAGE, NUMPY_DETAILS)
    monkeypatch.setattr(cli, "_run", lambda modules, impl: canned("alpha", outcome))
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
    monkeypatch.setattr(cli, "_run", lambda modules, impl: canned("alpha", outcome))
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
    monkeypatch.setattr(cli, "_run", lambda modules, impl: canned("alpha", *outcomes))
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

    monkeypatch.setattr(cli, "_run", interrupted)
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
