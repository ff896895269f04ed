"""Grading one module: its tests run in sandboxed children until each has an outcome, then points.

When a child exits, crashes or hangs, the test it was running fails with the reason and the rest
of the module's tests run again in a new child. The answer key's checks are judged here, from the
values the child wrote, against the reference's; a failed check withholds the credit of the tests
it decides (``decides``), and a module whose tests pass far more often than its key agrees earns
the key's points alone. Detected tampering zeroes the module.
"""

from __future__ import annotations

import fnmatch
import shutil
import time
from pathlib import Path

from grading import answerkey, parse_source, review
from grading.grade_child import ChildOutcome, describe_exit, run_child, served
from grading.grade_plan import test_files
from grading.grade_results import ModuleGrade, TestResult, headline
from grading.grade_settings import is_key, shares
from grading.grade_stage import Context
from tinytorch.course import registry


def decides(check: answerkey.Reference, nodeid: str, units: frozenset) -> bool:
    """Whether a failed answer-key check withholds the credit of a test: the test calls, on the
    reference, every kata function the check calls (so whatever the check found wrong is code the
    test runs), and the check ``covers`` the test (when it names any). A check that calls no kata
    function decides nothing. This keeps an honest partial solution's credit: a check that also
    exercises a function the test never calls does not take the test's points."""
    if not check.units or not check.units <= units:
        return False
    return not check.covers or covered(nodeid, check.covers)


def declared_covers(key_file: Path) -> dict[str, list[str]]:
    """Each check of an answer-key file with the patterns of its ``covers`` marker (read, not run)."""
    import ast

    found = {}
    for node in ast.walk(parse_source(Path(key_file).read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef):
            found[node.name] = [
                arg.value
                for dec in node.decorator_list
                if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "covers"
                for arg in dec.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ]
    return found


def covered(nodeid: str, patterns: list[str]) -> bool:
    """Whether an answer-key check that ``covers`` these patterns decides this test: a pattern is a
    test's function or class name (``test_round_trip``, ``TestDoubler``; parameters ignored), or a
    glob of one (``test_quantize_*``)."""
    parts = [part.split("[", 1)[0] for part in nodeid.split("::")[1:]]
    return any(fnmatch.fnmatchcase(part, pattern) for part in parts for pattern in patterns)


def clean(text: str, ctx: Context, limit: int = 4000) -> str:
    """Staging paths shown as repository paths; long text trimmed from the middle."""
    for run in sorted((ctx.stage / "runs").glob("*"), reverse=True):
        text = text.replace(str(run / "scratch") + "/", "")
        text = text.replace(str(run / "ref") + "/", "solutions/")
    text = text.replace(str(ctx.stage) + "/", "")
    if len(text) > limit:
        text = text[: limit // 4] + "\n...\n" + text[-3 * limit // 4 :]
    return text.strip()


def grade_module(
    ctx: Context, module: registry.Module, nodeids: list[str], strict: bool, limit: float | None = None
) -> ModuleGrade:
    """Run one module's tests in sandboxed children until every test of the plan has an outcome."""
    grade = ModuleGrade(module)
    share = shares(ctx.settings, module, nodeids)
    done: dict[str, tuple[str, str]] = {}
    student_dir = ctx.stage / "katas" / module.name
    run_dir = ctx.stage / "runs" / module.name
    began = time.monotonic()
    limit = ctx.settings.module_timeout if limit is None else min(limit, ctx.settings.module_timeout)
    collect_errors: list[str] = []
    grade.review = review.review_folder(student_dir, module.review_allow)
    if not any(student_dir.glob("*.py")):
        message = f"no folder katas/{module.name}/ with Python files in the submission"
        grade.notes.append(message)
        done = {n: ("failed", message) for n in nodeids}
    rounds = 0
    while len(done) < len(nodeids):
        rounds += 1
        budget = limit - (time.monotonic() - began)
        remaining = [n for n in nodeids if n not in done]
        if budget <= 1:
            for n in remaining:
                done[n] = (
                    "not run",
                    f"not run: the time budget of this module ({limit:.0f} s) ran out",
                )
            break
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        impl, preload = served(ctx, module, run_dir, strict)
        key_out = run_dir / "scratch" / "keys"
        out = run_child(
            ctx,
            module.name,
            run_dir,
            impl,
            [f for f in test_files(module) if (ctx.stage / f).is_file()],
            preload,
            [str(ctx.stage / "katas")],
            sorted(done),
            budget,
            key_out=key_out,
        )
        _judge_keys(ctx, out, key_out)
        grade.survivors += out.survivors
        if out.tamper and not grade.tampered:
            grade.tampered = out.tamper
        grade.notes += [f"refused: {r}" for r in out.refused if f"refused: {r}" not in grade.notes]
        grade.notes += [n for n in out.notes if n not in grade.notes]
        collect_errors += out.collect_errors
        progress = False
        for nodeid, (outcome, text) in out.results.items():
            if nodeid in share and nodeid not in done:
                done[nodeid] = (outcome, clean(text, ctx))
                progress = True
        if out.ended == "exit":
            if collect_errors:
                reason = "collection failed:\n" + clean("\n".join(collect_errors), ctx)
            elif out.fatal:
                reason = f"not run: the test process stopped: {out.fatal}" + _stderr_note(out, ctx)
            else:
                reason = "not run: the test was not collected"
            for n in nodeids:
                if n not in done:
                    done[n] = ("failed", reason)
            break
        if out.running is not None and out.running in share and out.running not in done:
            if out.ended == "test-timeout":
                done[out.running] = (
                    "timeout",
                    f"timed out: took longer than {ctx.settings.timeout:g} s (the per-test limit); "
                    "the test process was stopped",
                )
            elif out.ended == "budget":
                done[out.running] = (
                    "timeout",
                    f"timed out: the time budget of this module ({limit:.0f} s) ran out during this test",
                )
            else:
                done[out.running] = (
                    "crashed",
                    describe_exit(out) + " during this test" + _stderr_note(out, ctx),
                )
            progress = True
        if not progress:
            if out.ended == "collect-timeout":
                limit = ctx.settings.collect_timeout
                reason = f"importing the module and collecting its tests took longer than {limit:g} s"
            elif out.ended == "budget":
                reason = f"the time budget of this module ({limit:.0f} s) ran out"
            elif collect_errors:
                reason = "collection failed:\n" + clean("\n".join(collect_errors), ctx)
            else:
                reason = (
                    describe_exit(out)
                    + " before any test ran (while importing the module)"
                    + _stderr_note(out, ctx)
                )
            for n in nodeids:
                if n not in done:
                    done[n] = ("crashed" if out.ended == "crash" else "failed", reason)
            break
        if rounds > len(nodeids) + 1:  # pragma: no cover - every round settles at least one test
            break
    skipped = [n for n in nodeids if done[n][0] == "skipped"]
    if skipped:
        grade.notes.append(
            f"skipped: {len(skipped)} test(s) ({', '.join(n.split('::', 1)[-1] for n in skipped[:5])}"
            f"{', ...' if len(skipped) > 5 else ''}): the grader's tests never skip on the reference, so "
            "the submission's code made them skip; a skipped test earns nothing"
        )
    failed_keys = [ctx.reference(n) for n in nodeids if is_key(n) and done[n][0] != "passed"]
    failed_keys = [k for k in failed_keys if k is not None]
    keys = [n for n in nodeids if is_key(n)]
    tests = [n for n in nodeids if not is_key(n)]
    for nodeid in tests:
        outcome, text = done[nodeid]
        contradicted = [k.name for k in failed_keys if decides(k, nodeid, ctx.units.get(nodeid, frozenset()))]
        if outcome == "passed" and contradicted:
            done[nodeid] = (
                "failed",
                "no credit: the answer key's check(s) " + ", ".join(contradicted) + ", which decide this "
                "test, failed on inputs drawn at grading time (the module is flagged as inconsistent)",
            )
            grade.inconsistent.append(nodeid)
    # The backstop for tests no check decides: a module whose tests report far more passes than its
    # answer key confirms (a share of the tests at least `inconsistency_gap` above the share of the
    # key's checks) earns the key's points alone until an instructor has looked at it.
    if keys and tests:
        passed_tests = sum(done[n][0] == "passed" for n in tests) / len(tests)
        passed_keys = sum(done[n][0] == "passed" for n in keys) / len(keys)
        if passed_tests - passed_keys >= ctx.settings.inconsistency_gap:
            grade.notes.append(
                f"inconsistent: {passed_tests:.0%} of the tests report passed, {passed_keys:.0%} of the "
                "answer key's checks on new inputs agree; the tests' credit is withheld pending the "
                "instructor's review"
            )
            for nodeid in tests:
                if done[nodeid][0] == "passed":
                    done[nodeid] = (
                        "failed",
                        "no credit: withheld pending review (the module is inconsistent)",
                    )
                    grade.inconsistent.append(nodeid)
    for nodeid in nodeids:
        outcome, text = done[nodeid]
        result = TestResult(nodeid, outcome, text, max_score=share[nodeid])
        if outcome == "passed" and not grade.tampered:
            result.score = share[nodeid]
        elif outcome == "passed":
            result.message = f"no credit: tampering was detected in this module ({grade.tampered})"
        grade.tests.append(result)
    return grade


def _judge_keys(ctx: Context, out: ChildOutcome, key_out: Path) -> None:
    """Each answer-key check the student's process ran: its verdict from the values it wrote,
    compared here with the reference's (what the process said about the check is not a verdict)."""
    for nodeid, (outcome, text) in list(out.results.items()):
        if not is_key(nodeid) or ctx.reference(nodeid) is None:
            continue
        if outcome != "passed":
            out.results[nodeid] = (
                "failed",
                "answer key: the check raised on inputs drawn at grading time:\n" + headline(text),
            )
            continue
        try:
            values = answerkey.load(answerkey.values_file(key_out, nodeid))
            problem = answerkey.compare(ctx.references[nodeid], values)
        except answerkey.KeyFileError as error:
            problem = str(error)
        out.results[nodeid] = (
            ("failed", "answer key: on inputs drawn at grading time, " + problem)
            if problem
            else ("passed", "")
        )


def _stderr_note(out: ChildOutcome, ctx: Context) -> str:
    tail = clean(out.stderr, ctx, limit=1200)
    return f"\n--- last output of the test process ---\n{tail}" if tail else ""
