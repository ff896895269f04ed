"""The class leaderboard: module 20's competition, run in one more sandboxed child.

Once module 20 earns all its points (``[grading] leaderboard``), its competition runs in a confined
child; the figures it writes are validated here as untrusted input (``grading/competition.py``) and
become Gradescope's ``leaderboard`` array. Display only: it runs after every module is scored and
reads or changes no score.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace

from grading import competition
from grading.grade_child import describe_exit, run_child, served
from grading.grade_results import Grade, ModuleGrade, headline
from grading.grade_score import clean
from grading.grade_stage import Context
from tinytorch.course import registry

LEADERBOARD_MIN_SECONDS = 5.0  # less time left than this in the submission's budget: not run


def post_leaderboard(
    ctx: Context, grade_: Grade, module_grade: ModuleGrade, strict: bool, limit: float
) -> None:
    """Run module 20's competition in a sandboxed child (grading/competition.py) and put its
    validated figures in ``grade_.leaderboard``, Gradescope's ``leaderboard`` array, or say in
    ``grade_.leaderboard_note`` why there is none. Display only: it runs after every module is
    scored and reads or changes no score. Never raises: a failure is a note."""
    module = module_grade.module
    passed = sum(t.score == t.max_score and t.outcome == "passed" for t in module_grade.tests)
    if module_grade.tampered:
        grade_.leaderboard_note = f"not posted: tampering was detected in module {module.number}"
        return
    if module_grade.inconsistent:
        grade_.leaderboard_note = f"not posted: module {module.number} is flagged inconsistent"
        return
    if not module_grade.tests or passed < len(module_grade.tests):
        grade_.leaderboard_note = (
            f"not posted: module {module.number} is not finished ({passed} of {len(module_grade.tests)} "
            "tests earn their points); the competition runs once every test passes"
        )
        return
    if limit < LEADERBOARD_MIN_SECONDS:
        grade_.leaderboard_note = "not posted: the submission's time budget ran out before the competition"
        return
    budget = min(ctx.settings.leaderboard_timeout, limit)
    began = time.monotonic()
    try:
        grade_.leaderboard_note, figures = _run_competition(ctx, module, strict, budget)
    except Exception as error:  # noqa: BLE001 - the leaderboard never costs the grade
        grade_.leaderboard_note = (
            f"not posted: the grader could not run the competition ({type(error).__name__}: {error})"
        )
        return
    finally:
        grade_.leaderboard_seconds = time.monotonic() - began
    if figures:
        grade_.leaderboard = competition.entries(figures)


def _run_competition(
    ctx: Context, module: registry.Module, strict: bool, budget: float
) -> tuple[str, dict[str, float]]:
    """(note, figures): one confined child runs the staged entry point; its file is judged here."""
    run_dir = ctx.stage / "runs" / "leaderboard"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    competition.stage(ctx.stage)
    impl, preload = served(ctx, module, run_dir, strict)
    figures_file = run_dir / "scratch" / competition.FIGURES_FILE
    # the competition is one test: the per-test limit is the competition's budget
    child_ctx = replace(ctx, settings=replace(ctx.settings, timeout=budget))
    out = run_child(
        child_ctx,
        module.name,
        run_dir,
        impl,
        [competition.STAGED],
        preload,
        [str(ctx.stage / "katas")],
        [],
        budget,
        env_extra={competition.OUT_ENV: str(figures_file)},
    )
    outcome, text = out.results.get(f"{competition.STAGED}::test_competition", ("", ""))
    if out.tamper:
        return f"not posted: tampering was detected during the competition ({out.tamper[:200]})", {}
    if out.ended in ("test-timeout", "budget") and outcome == "":
        return f"not posted: the competition took longer than its {budget:g} s", {}
    if outcome == "":
        why = "collection failed" if out.collect_errors else describe_exit(out)
        return f"not posted: the competition did not finish ({why})", {}
    if outcome != "passed":
        return f"not posted: the competition failed: {headline(clean(text, ctx))}", {}
    try:
        return "", competition.read_figures(figures_file)
    except competition.FiguresError as error:
        return f"not posted: the competition's figures were refused: {error}", {}
