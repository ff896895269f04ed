"""The autograder: ``python -m grading grade <submission> [--out results.json]``.

Grades one student's work (a repository, a ``katas/`` tree, or a zip of either) with the
grader's own copy of the tests and writes a Gradescope ``results.json`` plus a per-module summary.

How a submission is graded
--------------------------
* **The list of tests is the grader's.** It is collected once from the reference (the grader's
  tests on ``solutions/``); a test the student's run never reports (a crash, a hang, a collection
  error) is a failed test, never a missing one.
* **Points come from the registry** (``tinytorch/course/modules.toml``): each ready module's ``points``
  are split over its tests in proportion to their weights. Every test weighs 1 unless the
  registry's ``[grading.weights]`` table gives a weight to a substring of its id (the first
  matching pattern wins), so by default a module's points are split evenly over its tests. A test
  earns its whole share or nothing. Planned modules are not graded and count for nothing.
* **Isolation** (the default): each module is graded in its own process on top of the reference
  implementation of every other module, so an unfinished module 15 does not zero module 20. The
  process serves the graded module from a staged copy of the student's folder and the others from
  a staged copy of the reference, through the switch (``TINYTORCH_IMPL=/stage/ref,<m>=/stage/katas/<m>``).
  **Strict mode** (``--strict``) serves every module from the student's code
  (``TINYTORCH_IMPL=/stage/katas``): module 20 then depends on the student's 15 to 19.
* **The student's code runs only in child processes** started by ``grading/sandbox.py`` (read it
  for what the sandbox refuses and for its honest limits), one per module, with a memory limit
  (``RLIMIT_AS``), a per-test timeout, a time budget per module and one for the whole submission
  enforced from this process, which kills the child's whole process group. When a child exits,
  crashes or hangs, the test it was running fails with the reason and the rest of the module's
  tests run again in a new child.
* **The results come from this process**: it reads test outcomes from a pipe (each line carries a
  per-run secret), scores them against its own list and writes ``results.json`` itself, always,
  even when every child crashed. A detected attempt to patch pytest, numpy, the tests or the grader
  from the student's code zeroes the module in which it happened, with a message saying so.
* **The class leaderboard** (``[grading] leaderboard``): once module 20 earns all its points, its
  competition runs in one more sandboxed child and its figures, validated here as untrusted
  input, become Gradescope's ``leaderboard`` array; display only, after the grade is computed
  (``grading/competition.py``).
* Only regular files are taken from a submission: symlinks, native extensions and files that
  would configure pytest or Python (``conftest.py``, ``sitecustomize.py``, ``*.pth``, ...) are
  dropped and listed in the output. Zips are unpacked with limits on size and file count.

``grade()`` is the API (``batch`` and the Gradescope ``run_autograder`` call it through the CLI).

Where the work is
-----------------
This file is the entry: ``grade()``, ``prepare()`` and the command line, which walk a grading
through its steps in order. Each step is a module of its own:

* ``grading/grade_settings.py``: the registry's ``[grading]`` table and each test's share of points;
* ``grading/grade_stage.py``: the stage (the submission's files and the grader's tests), ``Context``;
* ``grading/grade_plan.py``: the plan of what to run and the reference's answer-key values;
* ``grading/grade_child.py``: one sandboxed child, its limits, its events and its clock;
* ``grading/grade_score.py``: one module graded (reruns after a crash, answer keys judged, points);
* ``grading/grade_leaderboard.py``: module 20's competition for Gradescope's leaderboard;
* ``grading/grade_results.py``: the grades, the summary and ``results.json``.

Every name of these modules that other code uses is importable from here too. ``grade()`` and
``prepare()`` look ``reference_keys`` up in this module, where ``grading/keyreport.py`` swaps it
for one that runs once per seed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from grading import boundary as boundary_
from grading import competition
from grading.grade_child import SANDBOX, TRUSTED_MODULES, ChildOutcome, run_child
from grading.grade_leaderboard import post_leaderboard
from grading.grade_plan import (
    CACHE_DIR,
    PLAN_CACHE,
    _plan_stamp,
    collect_plan,
    grading_seed,
    key_files,
    reference_keys,
    test_files,
)
from grading.grade_results import (
    HIDDEN_VISIBILITY,
    STATUS_OK,
    Grade,
    ModuleGrade,
    TestResult,
    failed_grade,
    headline,
    write_results,
)
from grading.grade_score import covered, decides, declared_covers, grade_module
from grading.grade_settings import Settings, is_key, load_settings, shares, test_weight
from grading.grade_stage import (
    DROPPED_NAMES,
    DROPPED_PATTERNS,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_TOTAL_BYTES,
    Context,
    SubmissionError,
    copy_tests,
    find_katas,
    stage_submission,
    stage_tree,
    unpack_zip,
    work_parent,
)
from tinytorch.course import registry

__all__ = [
    "CACHE_DIR",
    "DROPPED_NAMES",
    "DROPPED_PATTERNS",
    "HIDDEN_VISIBILITY",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_TOTAL_BYTES",
    "PLAN_CACHE",
    "SANDBOX",
    "STATUS_OK",
    "TRUSTED_MODULES",
    "ChildOutcome",
    "Context",
    "Grade",
    "ModuleGrade",
    "Settings",
    "SubmissionError",
    "TestResult",
    "_plan_stamp",
    "build_parser",
    "collect_plan",
    "copy_tests",
    "covered",
    "declared_covers",
    "decides",
    "failed_grade",
    "find_katas",
    "grade",
    "grade_module",
    "grading_seed",
    "headline",
    "is_key",
    "key_files",
    "load_settings",
    "main",
    "post_leaderboard",
    "prepare",
    "prepare_main",
    "reference_keys",
    "run_child",
    "shares",
    "stage_submission",
    "stage_tree",
    "test_files",
    "test_weight",
    "unpack_zip",
    "work_parent",
    "write_results",
]


def grade(
    submission: str | os.PathLike,
    *,
    strict: bool = False,
    only: list[str] | None = None,
    settings: Settings | None = None,
    deny: list[str] | None = None,
    workdir: str | os.PathLike | None = None,
    plan_file: str | os.PathLike | None = None,
) -> Grade:
    """Grade one submission (a folder or a zip); never raises for anything the submission does."""
    began = time.monotonic()
    root = registry.repo_root()
    settings = settings or load_settings()
    ready = [m for m in registry.modules() if m.ready]
    modules = [m for m in ready if not only or m.name in only or str(m.number) in only]
    submission = Path(submission)
    result = Grade(
        str(submission.name),
        "strict" if strict else "isolation",
        visibility=settings.visibility,
        key_visibility=settings.key_visibility,
    )
    parent = Path(workdir) if workdir else work_parent()
    parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chmod(parent, 0o711)  # the sandbox users may pass through, not list the stages
    stage = Path(tempfile.mkdtemp(prefix="grade-", dir=parent)).resolve()
    private = Path(tempfile.mkdtemp(prefix="private-", dir=parent)).resolve()  # 0700: root's only
    deny = [str(root), *(deny or [])]  # the checkout (solutions/, grading/) and, in a batch, the class
    fence = boundary_.choose(
        settings.sandbox_user,
        settings.landlock,
        settings.max_processes,
        secrets=[root / d for d in boundary_.SECRET_DIRS] + [Path(d) for d in deny[1:]],
        memory_mb=settings.memory_mb,
    )
    result.boundary = fence.to_json()
    try:
        fence.share(stage)
        seed = grading_seed(root)
        ctx = Context(
            root,
            stage,
            settings,
            ready,
            deny,
            plan_file=Path(plan_file) if plan_file else None,
            boundary=fence,
            private=private,
            seed=seed,
        )
        result.seed = hashlib.sha256(str(seed).encode()).hexdigest()[:12]  # which seed, not the seed
        copy_tests(root, stage, ready)
        plan = collect_plan(ctx)
        # the reference's answer keys run while the first module is graded (two cores: no wait)
        keys_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reference-keys")
        ctx.pending_references = keys_pool.submit(reference_keys, ctx, plan)
        keys_pool.shutdown(wait=False)
        try:
            katas = stage_submission(submission, stage, ready, result)
        except SubmissionError as e:
            result.status = e.status
            result.notes.append(str(e))
            katas = None
        for module in modules:
            if katas is None:
                grade_ = ModuleGrade(module)
                share = shares(settings, module, plan[module.name])
                grade_.tests = [
                    TestResult(n, "not run", f"not graded: {result.notes[-1]}", share[n])
                    for n in plan[module.name]
                ]
                result.modules.append(grade_)
                continue
            left = settings.total_timeout - (time.monotonic() - began)
            result.modules.append(grade_module(ctx, module, plan[module.name], strict, limit=left))
        graded = {m.module.name: m for m in result.modules}
        if katas is not None and settings.leaderboard and competition.MODULE in graded:
            left = settings.total_timeout - (time.monotonic() - began)
            post_leaderboard(ctx, result, graded[competition.MODULE], strict, left)
    finally:
        pending = locals().get("ctx") and ctx.pending_references
        if pending:
            with contextlib.suppress(Exception):  # its private copy is removed below; wait for it
                pending.result()
        fence.release()  # every process of the sandbox user is gone before a result is written
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
        result.execution_time = time.monotonic() - began
    return result


def prepare(settings: Settings | None = None) -> tuple[dict[str, list[str]], dict[str, frozenset]]:
    """Run the grader's tests and answer keys once on the reference (traced) and cache the plan, the
    grading seed and the reference's answer-key values in the checkout's ``.grading-cache/``:
    ``python -m grading prepare``, which Gradescope's ``setup.sh`` runs when it builds the image,
    so no submission pays for it. Returns the plan (test ids per module) and the kata functions
    each test calls on the reference."""
    root = registry.repo_root()
    settings = settings or load_settings()
    ready = [m for m in registry.modules() if m.ready]
    stage = Path(tempfile.mkdtemp(prefix="prepare-", dir=work_parent())).resolve()
    try:
        ctx = Context(root, stage, settings, ready, [str(root)], private=stage, seed=grading_seed(root))
        copy_tests(root, stage, ready)
        plan = collect_plan(ctx)
        reference_keys(ctx, plan)  # the reference's values at the grading seed, cached too
        return plan, ctx.units
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def prepare_main(argv: list[str] | None = None) -> int:
    """``python -m grading prepare``: fill the plan cache (see :func:`prepare`)."""
    argparse.ArgumentParser(prog="python -m grading prepare", description=prepare.__doc__).parse_args(argv)
    began = time.monotonic()
    plan, _ = prepare()
    tests = sum(len(ids) for ids in plan.values())
    print(
        f"plan: {tests} tests and answer-key checks of {len(plan)} modules pass on the reference; "
        f"cached in {registry.repo_root() / PLAN_CACHE} ({time.monotonic() - began:.1f} s)"
    )
    return 0


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grading grade",
        description="Grade one submission (a repository, a katas/ tree or a zip of either) and write "
        "a Gradescope results.json; prints a per-module summary.",
    )
    parser.add_argument("submission", help="folder or .zip file")
    parser.add_argument(
        "--out", default="results.json", help="where to write results.json (default: ./results.json)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="grade every module from the student's code (no reference underneath)",
    )
    parser.add_argument(
        "--module", action="append", metavar="M", help="grade only this module (name or number; repeatable)"
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds per test (default: the registry's [grading] timeout)"
    )
    parser.add_argument("--memory-mb", type=int, help="memory limit of a test process in MB")
    parser.add_argument(
        "--no-leaderboard",
        action="store_true",
        help="do not run module 20's competition for Gradescope's leaderboard ([grading] leaderboard)",
    )
    parser.add_argument("--deny", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)  # batch: a shared cache of the test list
    parser.add_argument("--quiet", action="store_true", help="do not print the summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        settings = load_settings()
        overrides = {}
        if args.timeout:
            overrides["timeout"] = args.timeout
        if args.memory_mb:
            overrides["memory_mb"] = args.memory_mb
        if args.no_leaderboard:
            overrides["leaderboard"] = False
        if overrides:
            settings = replace(settings, **overrides)
        result = grade(
            args.submission,
            strict=args.strict,
            only=args.module,
            settings=settings,
            deny=args.deny,
            plan_file=args.plan,
        )
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001 - results.json is written whatever happened
        message = "the grader itself failed (not your code); tell the instructor:\n" + traceback.format_exc()
        result = failed_grade(
            Path(args.submission).name, "grader-error", message, "strict" if args.strict else "isolation"
        )
        write_results(result, out)
        print(message, file=sys.stderr)
        return 1
    write_results(result, out)
    if not args.quiet:
        print(result.summary())
        print(f"\nresults: {out}  ({result.execution_time:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
