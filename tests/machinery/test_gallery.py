"""The gallery of classic mistakes (grading/gallery.py) on the fake repository.

Loading and validating a gallery needs no pytest run; the tests that run variants start one small
pytest subprocess per variant on the fake repository's one-function katas.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import ALPHA_BUGGY, write

from grading import __main__ as grading_main
from grading import gallery
from tinytorch.course import cli, registry

ALPHA_MISTAKES = '''\
[[mistake]]
name = "sign-dropped"
file = "core.py"
why = "Doubles |x|: negative numbers come back positive."
caught_by = "test_double_negative"
old = """    return factor * x
"""
new = """    return factor * abs(x)
"""
'''

BETA_MISTAKES = """\
[[mistake]]
name = "doubled-once"
file = "__init__.py"
why = "Quadrupling doubles only once."
old = "return double(double(x))"
new = "return double(x)"
"""


@pytest.fixture
def gallery_repo(fake_repo: Path) -> Path:
    """The fake repository with a gallery for both ready modules: alpha's names its test, beta's not."""
    write(
        fake_repo,
        {"grading/mistakes/alpha.toml": ALPHA_MISTAKES, "grading/mistakes/beta.toml": BETA_MISTAKES},
    )
    return fake_repo


def problems_with(root: Path, alpha_toml: str) -> list[str]:
    (root / "grading" / "mistakes" / "alpha.toml").write_text(alpha_toml)
    return gallery.load(root)[1]


def remove_test(root: Path, name: str) -> None:
    tests = root / "tests" / "test_alpha.py"
    text = tests.read_text()
    start = text.index(f"def {name}(")
    end = text.index("\n\n\n", start)
    tests.write_text(text[:start] + text[end + 3 :])


# --------------------------------------------------------------------------- running the variants


def test_every_mistake_caught_prints_the_test_that_caught_it(
    gallery_repo: Path, capsys, monkeypatch, start_children
):
    assert gallery.main([]) == 0
    out = capsys.readouterr().out
    assert "caught  alpha/sign-dropped  by tests/test_alpha.py::test_double_negative" in out
    # beta's mistake has no caught_by: the whole file runs and its only test catches it
    assert "caught  beta/doubled-once   by tests/test_beta.py::test_quadruple" in out
    assert "mistakes: every one of 2 variants is caught by a test (alpha, beta;" in out
    # the variants were served from temporary copies: solutions/ is untouched
    assert "return factor * x\n" in (gallery_repo / "solutions" / "alpha" / "core.py").read_text()


def test_removing_the_test_that_catches_a_variant_fails_the_check(gallery_repo: Path, capsys):
    remove_test(gallery_repo, "test_double_negative")
    assert grading_main.main(["mistakes", "alpha"]) == 1
    out = capsys.readouterr().out
    assert "MISSED  alpha/sign-dropped  no test of tests/test_alpha.py fails on this variant." in out
    assert "The mistake: Doubles |x|: negative numbers come back positive." in out
    assert "mistakes: 1 problem(s) in 1 variants (alpha;" in out


def test_a_caught_by_that_does_not_catch_its_variant_is_named_with_the_test_that_does(gallery_repo: Path):
    (gallery_repo / "grading" / "mistakes" / "alpha.toml").write_text(
        ALPHA_MISTAKES.replace('caught_by = "test_double_negative"', 'caught_by = "test_apply"')
    )
    [mistake] = gallery.load(gallery_repo, ["alpha"])[0]
    verdict = gallery.run_variant(mistake)
    assert verdict.runs == ["caught_by", "file"]
    assert (
        verdict.caught_by is not None
        and verdict.caught_by.nodeid == "tests/test_alpha.py::test_double_negative"
    )
    assert verdict.problem.startswith("caught_by = 'test_apply' selects tests that all pass on this variant")
    assert "set caught_by to 'test_double_negative'" in verdict.problem


def test_a_variant_that_cannot_be_collected_is_a_problem_not_a_catch(gallery_repo: Path):
    (gallery_repo / "grading" / "mistakes" / "alpha.toml").write_text(
        ALPHA_MISTAKES.replace("return factor * abs(x)", "return factor * (x")
    )
    [mistake] = gallery.load(gallery_repo, ["alpha"])[0]
    verdict = gallery.run_variant(mistake)
    assert not verdict.ok and verdict.problem.startswith("the variant cannot be collected (SyntaxError")


# An endless loop that sleeps: it hangs like `while True: pass` without taking a core from the tests
# running beside this one while the timeout runs out.
HANG = "while True:\n        __import__('time').sleep(0.05)"


def test_a_variant_that_hangs_is_stopped(gallery_repo: Path, monkeypatch: pytest.MonkeyPatch, start_children):
    monkeypatch.setattr(gallery, "_timeout_args", lambda seconds: [])  # only the process timeout
    (gallery_repo / "grading" / "mistakes" / "alpha.toml").write_text(
        ALPHA_MISTAKES.replace("return factor * abs(x)", HANG)
    )
    [mistake] = gallery.load(gallery_repo, ["alpha"])[0]
    # whether the bound finds it hanging in the test or still starting, the verdict is the same
    verdict = gallery.run_variant(mistake, timeout=1)
    assert verdict.problem == "the tests ran past 1 s and were stopped"


def test_a_test_that_hangs_is_ended_by_pytest_timeout(gallery_repo: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(gallery, "TEST_TIMEOUT", 1)  # pytest-timeout is a test dependency (pyproject)
    (gallery_repo / "grading" / "mistakes" / "alpha.toml").write_text(
        ALPHA_MISTAKES.replace("return factor * abs(x)", HANG)
    )
    [mistake] = gallery.load(gallery_repo, ["alpha"])[0]
    verdict = gallery.run_variant(mistake, timeout=30)
    assert verdict.problem.startswith(
        "a test ran past 1 s and pytest-timeout ended the run: the variant hangs"
    )
    assert verdict.seconds < 30


# --------------------------------------------------------------------------- loading and validating


def test_load_reads_every_ready_module_and_skips_planned_ones(gallery_repo: Path):
    write(gallery_repo, {"grading/mistakes/gamma.toml": "this is not even TOML"})  # gamma is planned
    mistakes, problems = gallery.load(gallery_repo)
    assert problems == []
    assert [m.label for m in mistakes] == ["alpha/sign-dropped", "beta/doubled-once"]
    alpha, beta = mistakes
    assert alpha.edits == (
        gallery.Edit("core.py", "    return factor * x\n", "    return factor * abs(x)\n"),
    )
    assert (alpha.caught_by, beta.caught_by) == ("test_double_negative", None)


def test_unknown_modules_and_ready_modules_without_a_gallery_are_problems(gallery_repo: Path):
    (gallery_repo / "grading" / "mistakes" / "beta.toml").unlink()
    write(gallery_repo, {"grading/mistakes/zeta.toml": BETA_MISTAKES})
    problems = gallery.load(gallery_repo)[1]
    assert problems == [
        "grading/mistakes/zeta.toml: no module 'zeta' in the registry; the modules are: alpha, beta, gamma",
        "module 16 beta is ready but has no grading/mistakes/beta.toml: every ready module keeps a few "
        "classic mistakes",
    ]


def test_a_patch_the_solution_moved_away_from_says_to_re_anchor_it(gallery_repo: Path):
    core = gallery_repo / "solutions" / "alpha" / "core.py"
    core.write_text(core.read_text().replace("return factor * x", "return x * factor"))
    [problem] = gallery.load(gallery_repo)[1]
    assert problem.startswith(
        "mistake alpha/sign-dropped: its `old` text occurs 0 times in solutions/alpha/core.py (must be "
        "exactly once): the solution changed under the patch; re-anchor it."
    )
    core.write_text(core.read_text() + "\n\ndef again(x):\n    return x * factor\n")
    assert (
        "occurs 2 times" in problems_with(gallery_repo, ALPHA_MISTAKES.replace("factor * x", "x * factor"))[0]
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('name = "sign-dropped"', 'name = "Sign dropped"'), "`name` must be kebab-case"),
        (('why = "Doubles', 'whY = "Doubles'), "unknown key(s) ['whY']"),
        (
            ('file = "core.py"', 'file = "nowhere.py"'),
            "mistake alpha/sign-dropped: no file solutions/alpha/nowhere.py",
        ),
        (('file = "core.py"', 'file = "../beta/__init__.py"'), "no file solutions/alpha/../beta/__init__.py"),
        (("abs(x)", "x"), "`new` equals `old`: the edit changes nothing"),
        (('caught_by = "test_double_negative"', 'caught_by = "test_double[1]"'), "`caught_by` must be"),
        (('why = "Doubles |x|: negative', 'why = """Doubles |x|:\nnegative'), "not valid TOML"),
        (
            ('why = "Doubles |x|: negative numbers come back positive."', 'why = ""'),
            "`why` must be a non-empty",
        ),
    ],
)
def test_malformed_entries_are_named(gallery_repo: Path, change: tuple[str, str], message: str):
    old, new = change
    assert old in ALPHA_MISTAKES
    [problem] = problems_with(gallery_repo, ALPHA_MISTAKES.replace(old, new))
    assert message in problem
    assert problem.startswith(("grading/mistakes/alpha.toml", "mistake alpha/sign-dropped"))


def test_names_are_unique_and_edits_are_either_inline_or_tables(gallery_repo: Path):
    assert problems_with(gallery_repo, ALPHA_MISTAKES + "\n" + ALPHA_MISTAKES) == [
        "grading/mistakes/alpha.toml: mistake 'sign-dropped' is named twice"
    ]
    both = ALPHA_MISTAKES + '[[mistake.edit]]\nold = "a"\nnew = "b"\n'
    assert "either `old`/`new` or [[mistake.edit]] tables, not both" in problems_with(gallery_repo, both)[0]
    assert problems_with(gallery_repo, "title = 'x'\n") == [
        "grading/mistakes/alpha.toml: unknown top-level key(s) ['title']; only [[mistake]] tables",
        "grading/mistakes/alpha.toml: no [[mistake]] tables",
    ]


def test_a_mistake_with_several_edits_applies_them_in_order(gallery_repo: Path, tmp_path: Path):
    toml = """\
[[mistake]]
name = "applies-to-itself"
why = "Doubler.apply calls itself and double forgets its factor."
file = "core.py"

[[mistake.edit]]
old = "return double(x)"
new = "return self.apply(x) if x > 100 else double(x)"

[[mistake.edit]]
old = "return factor * x"
new = "return 2 * x"

[[mistake.edit]]
file = "__init__.py"
old = "__all__"
new = "# no star exports\\n__all__"
"""
    assert problems_with(gallery_repo, toml) == []
    [mistake] = gallery.load(gallery_repo, ["alpha"])[0]
    assert [e.file for e in mistake.edits] == ["core.py", "core.py", "__init__.py"]
    folder = gallery.build_variant(mistake, tmp_path)
    assert folder == tmp_path / "alpha"
    core = (folder / "core.py").read_text()
    assert "return self.apply(x) if x > 100 else double(x)" in core and "return 2 * x" in core
    assert (folder / "__init__.py").read_text().startswith('"""Alpha."""')
    assert "# no star exports" in (folder / "__init__.py").read_text()
    # a later edit sees the text the earlier ones left: the same `old` twice is a problem
    twice = toml + '\n[[mistake.edit]]\nold = "return factor * x"\nnew = "return 3 * x"\n'
    assert "edit 4: its `old` text occurs 0 times" in problems_with(gallery_repo, twice)[0]


def test_list_prints_the_gallery_without_running_it(gallery_repo: Path, capsys):
    assert gallery.main(["--list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "alpha/sign-dropped [test_double_negative]: Doubles |x|: negative numbers come back positive.",
        "beta/doubled-once: Quadrupling doubles only once.",
    ]
    with pytest.raises(SystemExit):
        gallery.main(["gamma"])  # planned
    with pytest.raises(SystemExit):
        gallery.main(["zeta"])
    assert "is not ready" in capsys.readouterr().err


# --------------------------------------------------------------------------- the hint names the mistake


def test_hint_names_the_classic_mistakes_the_failing_test_catches(gallery_repo: Path, monkeypatch):
    monkeypatch.chdir(gallery_repo)
    write(gallery_repo, {"katas/alpha/core.py": ALPHA_BUGGY})  # fails test_double_negative only
    out = io.StringIO()
    assert cli.main(["hint", "alpha"], out=out) == 0
    text = out.getvalue()
    assert "First failing test: tests/test_alpha.py::test_double_negative" in text
    assert "Classic mistakes this test catches (is one of them yours?):\n  - Doubles |x|: negative" in text
    assert "return factor" not in text, "the hint never shows the patch (reference code)"
    # the general advice is no rung of a test's ladder
    assert "Hint 1 of 1 for test_double_negative:\n  Negative numbers double too." in text


def test_mistake_notes_need_a_caught_by_and_tolerate_a_missing_or_broken_file(gallery_repo: Path):
    alpha, beta = registry.get("alpha"), registry.get("beta")
    assert alpha.mistakes_for("tests/test_alpha.py::test_double_negative") == [
        registry.MistakeNote(
            "sign-dropped", "Doubles |x|: negative numbers come back positive.", "test_double_negative"
        )
    ]
    assert alpha.mistakes_for("tests/test_alpha.py::test_double") == []
    assert beta.mistakes_for("tests/test_beta.py::test_quadruple") == []  # no caught_by: not shown
    (gallery_repo / "grading" / "mistakes" / "alpha.toml").write_text("not = toml = at all")
    assert registry.mistakes("alpha") == ()
    assert registry.mistakes("gamma") == ()  # no file


def test_reference_runs_the_caught_by_tests_on_the_unpatched_solution_first(gallery_repo: Path, capsys):
    assert gallery.main(["alpha", "--reference"]) == 0
    out = capsys.readouterr().out
    assert "passes  alpha/(reference)   its 1 caught_by selections pass on the unpatched solution" in out
    # a solution that fails the caught_by test makes every variant look caught: the check says so
    core = gallery_repo / "solutions" / "alpha" / "core.py"
    core.write_text(core.read_text().replace("return factor * x", "return factor * x if x > 0 else 0"))
    (gallery_repo / "grading" / "mistakes" / "alpha.toml").write_text(
        ALPHA_MISTAKES.replace('"""    return factor * x\n"""', '"""if x > 0 else 0"""').replace(
            '"""    return factor * abs(x)\n"""', '"""if x > 0 else 1"""'
        )
    )
    assert gallery.main(["alpha", "--reference"]) == 1
    out = capsys.readouterr().out
    assert (
        "BROKEN  alpha/(reference)   tests/test_alpha.py::test_double_negative fails on the unpatched" in out
    )
    assert "caught  alpha/sign-dropped " in out
