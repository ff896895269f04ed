"""``tinytorch hint`` on the fake repository: ladders from a nudge to the recipe, the hints taken.

Runs are canned (``board.run_tests`` replaced): each test says which hint comes next, what is
remembered in ``.tinytorch/hints.json`` and how the registry's ladders, ``see`` and ``ladders``
order the hints.
"""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import canned, failing, run

from tinytorch.course import board, hints, registry, runner

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
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: stub)
    code, out = run("hint", "alpha")  # test_double fails first; it has no hint of its own
    assert code == 0
    assert "First failing test: tests/test_alpha.py::test_double\n  at katas/alpha/core.py:6 in double" in out
    # the module's general hint ("" tests) is no rung of a ladder: it stands in for a missing one
    assert out.endswith("\nNo hint of its own for test_double; about module 15 alpha:\n  Return 2 * x.\n")
    progress = fake_repo / ".tinytorch" / "hints.json"
    ids = [hints._hint_id(h) for h in registry.get("alpha").hints]  # ["negative" hint, "" hint]
    assert json.loads(progress.read_text()) == {"alpha": [ids[1]]}

    negative = canned(
        "alpha", runner.TestOutcome("t::a", "passed"), failing("tests/test_alpha.py::test_double_negative")
    )
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: negative)
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
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: stuck)
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
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: stuck)
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
        board,
        "run_tests",
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
        board,
        "run_tests",
        lambda modules, impl: canned("alpha", failing("tests/test_alpha.py::TestDoubler::test_double_x[1]")),
    )
    code, out = run("hint", "alpha", "--shown")
    assert "Hints taken for test_double_x[1] (2 of 2):" in out
    assert run("hint", "alpha", "--shown", "--reset")[0] == 2  # argparse: one or the other
    assert hints._levels([1, 2, 3, 5]) == "hints 1-3, 5" and hints._levels([4]) == "hint 4"
    registry._load.cache_clear()


def test_hint_without_a_matching_hint_or_when_all_pass(fake_repo: Path, monkeypatch):
    result = canned("beta", failing("tests/test_beta.py::test_quadruple"))
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: result)
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
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: stuck)
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
    """ "see the hints of test_double" is followed by those hints, though test_double passes."""
    use_registry(fake_repo, LADDERS)
    apply_fails = canned(
        "alpha",
        runner.TestOutcome("tests/test_alpha.py::test_double", "passed"),
        failing("tests/test_alpha.py::TestDoubler::test_apply"),
    )
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: apply_fails)
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
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: apply_fails)
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
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: beta_fails)
    code, out = run("hint", "beta")
    assert "It fails because double of module 15 alpha is not written yet" in out
    assert "Hint 1 of 3 for test_quadruple:\n  A nudge: what does doubling do to a sign?\n" in out
    assert set(json.loads(progress.read_text())) == {"alpha"}  # a hint of module 15's entry, taken there
    outs = [run("hint", "beta")[1] for _ in range(2)]
    assert "Hint 3 of 3 for test_quadruple:\n  Quadrupling is doubling twice." in outs[1]
    assert set(json.loads(progress.read_text())) == {"alpha", "beta"}

    # once double is written, the test's own ladder is all there is
    monkeypatch.setattr(
        board,
        "run_tests",
        lambda modules, impl: canned("beta", failing("tests/test_beta.py::test_quadruple")),
    )
    code, out = run("hint", "beta", "--shown")
    assert "Hints taken for test_quadruple (1 of 1)" in out and "It fails because" not in out
    registry._load.cache_clear()


def test_a_copy_without_recipes_says_so_at_the_last_hint(fake_repo: Path, monkeypatch):
    use_registry(fake_repo, 'hints = "nudges"\n' + LEVELS)
    stuck = canned("alpha", failing("tests/test_alpha.py::test_double_negative"))
    monkeypatch.setattr(board, "run_tests", lambda modules, impl: stuck)
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
        board,
        "run_tests",
        lambda modules, impl: canned("alpha", failing("tests/test_alpha.py::test_x_negative")),
    )
    code, out = run("hint", "alpha")
    assert "Hint 1 of 1 for test_x_negative:\n  Negative numbers double too." in out
    (fake_repo / ".tinytorch" / "hints.json").write_text("[1, 2]")
    assert "Hint 1 of 1" in run("hint", "alpha")[1]
