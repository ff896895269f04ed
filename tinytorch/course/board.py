"""The commands that run a module's tests and show them: ``status`` (the board), ``test`` and ``watch``.

The board draws one row per module (tests passed, a progress bar readable without colour, why a
module's tests could not all run) and names the next step; ``test`` prints one module's failures,
each with its label, where it happened and what that means, the stubs still raising
``NotImplementedError`` and what the module needs from earlier ones; ``watch`` reruns ``test``
whenever a kata file is saved. Every run goes through :func:`run_tests`, which bounds it (a
per-test timeout and a bound on each module's run) and hands it to :mod:`tinytorch.course.runner`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from tinytorch import perf
from tinytorch.course import registry, runner
from tinytorch.course.needs import needs, still_raising
from tinytorch.course.results import Location, ModuleResult, RunResult, TestOutcome
from tinytorch.course.usage import BROKEN, FAILING, OK, UsageError, check_impl, released_module

BAR_WIDTH = 20
SHOWN_FAILURES = 5

# Waits between polls of `watch`; a module attribute so tests can replace it.
_sleep: Callable[[float], None] = time.sleep


def bar(passed: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[#######.............]``: a progress bar readable without colour."""
    filled = round(width * passed / total) if total else 0
    if passed < total:
        filled = min(filled, width - 1)  # only a full pass fills the bar
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _owner(location: Location | None) -> registry.Module | None:
    """The module whose kata or solution folder holds ``location``, if any."""
    path = location.path if location else ""
    for m in registry.modules():
        if any(path.startswith(tree.rstrip("/") + "/") for tree in (m.kata, m.solution)):
            return m
    return None


# What happened, in words, where a test's label and message leave it open (TestOutcome.kind).
_WHY = {
    "wrong result": "the test's check: the code under test returned a wrong result",
    "setup error": "in the test's setup or teardown, not inside the code under test",
    "import error": "the tests cannot import a name or a module they need",
    "syntax error": "the code does not parse, so the tests cannot import it",
    "error at import": "raised while the tests imported the code",
}


def where_failed(outcome: TestOutcome, module: registry.Module | None = None) -> str:
    """Where a test failed (the kata frame, else the test line), and in words what happened there
    when its label and message leave it open. ``module``: the module whose tests ran, so that a
    failure inside another module's code says which."""
    kind = outcome.kind
    owner = _owner(outcome.location)
    other = owner if owner and module and owner.name != module.name else None
    of_other = f"module {other.number} {other.name}" if other else ""
    place = outcome.location or outcome.test_location
    why = _WHY.get(kind, "")
    if kind == "not written" and other:
        why = f"a function of {of_other}, not written yet: module {module.number} needs it"
    elif kind == "raised":
        why = f"raised inside {of_other}'s code" if other else "raised inside the code under test"
    elif kind in ("wrong result", "test error"):
        place = outcome.test_location or place
        if kind == "test error":
            raised = outcome.exception or "an exception"
            why = f"{raised} raised by the test's own code, not by the code under test"
        elif "DID NOT RAISE" in outcome.message:
            why = "the test's check: the code under test did not raise"
    where = str(place) if place else outcome.nodeid
    return f"{where} ({why})" if why else where


# The per-test timeout of this invocation (`--timeout`), set by cli.main(); None: the runner's default.
timeout_option: float | None = None


def run_tests(modules: list[registry.Module], impl: str) -> RunResult:
    """Run the tests of ``modules`` against ``impl`` under this invocation's timeouts; a bad
    timeout in the environment is a UsageError."""
    try:
        test_timeout = timeout_option or runner.seconds_from_env(runner.TEST_TIMEOUT_ENV, runner.TEST_TIMEOUT)
        run_timeout = runner.seconds_from_env(runner.RUN_TIMEOUT_ENV, runner.RUN_TIMEOUT)
    except ValueError as error:
        raise UsageError(str(error)) from None
    # a run takes at least a few test timeouts: raising --timeout raises the bound of the run too
    run_timeout = max(run_timeout, 4 * test_timeout)
    return runner.run_modules(modules, impl=impl, test_timeout=test_timeout, run_timeout=run_timeout)


def no_report(result: RunResult, out: TextIO) -> int:
    """pytest's own output when it wrote no report (bad arguments, a broken conftest): exit 3."""
    print("error: pytest wrote no report; its output was:", file=out)
    print(result.output.rstrip(), file=out)
    return BROKEN


# --------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    impl = check_impl(args.impl)
    ready = [m for m in registry.modules() if m.ready]
    result = run_tests(ready, impl)
    if not result.report_found:
        return no_report(result, out)
    against = "your code in katas/" if impl == perf.DEFAULT_IMPL else f"TINYTORCH_IMPL={impl}"
    print(f"TinyTorch optimization katas: tests against {against}\n", file=out)
    print(f"{'#':>3}  {'module':<13} {'tests':>9}  {'progress':<{BAR_WIDTH + 2}}  title", file=out)
    next_step = None
    for m in registry.modules():
        if not m.ready:
            progress = "not released yet"
            print(
                f"{m.number:>3}  {m.name:<13} {'planned':>9}  {progress:<{BAR_WIDTH + 2}}  {m.title}",
                file=out,
            )
            continue
        r = result[m.name]
        if r.collection_errors:
            tests = "error"
            first = r.collection_errors[0]
            progress = _IMPORT_PROBLEMS.get(first.kind, "cannot import: see test")
        elif r.total == 0:
            tests, progress = "no tests", ""
        else:
            tests = f"{r.passed}/{r.total}"
            progress = bar(r.passed, r.total) + (" done" if r.all_passed else "")
        print(f"{m.number:>3}  {m.name:<13} {tests:>9}  {progress:<{BAR_WIDTH + 2}}  {m.title}", file=out)
        if r.broken:  # say how, under the row: the other modules' rows stay as they are
            print(f"{'':>5}{'':<13} {'':>9}  ! {_broken_note(r)}", file=out)
        if next_step is None and not r.all_passed:
            next_step = (m, r)
    print(file=out)
    code = FAILING if any(result[m.name].broken for m in ready) else OK
    if next_step is None:
        print("Next step: every released module passes. Well done; try `tinytorch bench <module>`.", file=out)
        return code
    m, r = next_step
    if r.failures:
        first = r.failures[0]
        print(
            f"Next step: module {m.number} {m.name}: {first.name} fails at {where_failed(first, m)}", file=out
        )
        print(f"  {first.summary_lines(1)[0]}", file=out)
    else:
        print(f"Next step: module {m.number} {m.name} has no tests yet ({m.tests}).", file=out)
    print(f"  run `tinytorch test {m.name}`, or `tinytorch hint {m.name}` for a hint", file=out)
    return code


# How the board names a test file that could not be imported, by what happened (TestOutcome.kind).
_IMPORT_PROBLEMS = {
    "exit": "exits at import: see test",
    "timeout": "import timed out: see test",
    "crash": "crashed at import: see test",
    "syntax error": "syntax error: see test",
    "import error": "import error: see test",
    "error at import": "error at import: see test",
}


def _broken_note(result: ModuleResult) -> str:
    """One line on why a module's tests could not all run: how many, how, and the first place."""
    kinds = {"timeout": "timed out", "crash": "crashed the process", "exit": "exited", "not run": "not run"}
    counts = {}
    for o in result.outcomes:
        if o.problem and not o.collection:
            counts[kinds[o.problem]] = counts.get(kinds[o.problem], 0) + 1
    first = next(o for o in result.failures if o.collection or o.problem)
    what = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "the tests cannot be imported"
    return f"{what}: {first.summary_lines(1)[0]} (at {where_failed(first, result.module)})"


# --------------------------------------------------------------------------- test


def report_module(result: ModuleResult, impl: str, out: TextIO, show_all: bool = False) -> int:
    """Print one module's outcomes concisely; return the exit code (0 all pass, 1 otherwise)."""
    m = result.module
    failures = result.failures
    if result.collection_errors:
        print(f"module {m.number} {m.name}: the tests cannot be collected ({impl})", file=out)
    else:
        print(f"module {m.number} {m.name}: {result.passed}/{result.total} tests pass ({impl})", file=out)
    if result.total == 0 and not failures:
        print(f"  no tests found in {m.tests}", file=out)
        return FAILING
    shown = failures if show_all else failures[:SHOWN_FAILURES]
    for outcome in shown:
        print(f"\n{outcome.label} {outcome.nodeid}", file=out)
        print(f"  at {where_failed(outcome, m)}", file=out)
        for line in outcome.summary_lines():
            print(f"  | {line}", file=out)
    if len(failures) > len(shown):
        print(
            f"\n... and {len(failures) - len(shown)} more (`tinytorch test {m.name} --all` shows them):",
            file=out,
        )
        for outcome in failures[len(shown) :]:
            print(f"  {outcome.label} {outcome.name}", file=out)
    todo = [f"{location.function} in {location.path}" for location in still_raising(failures)]
    if todo:
        print("\nstill raising NotImplementedError: " + "; ".join(todo), file=out)
    if failures and m.needs:
        _print_needs(m, impl, result.outcomes, out)
    if failures:
        print(f"\nNext: fix the first failure above; `tinytorch hint {m.name}` gives a hint.", file=out)
        return FAILING
    print("\nAll tests pass.", file=out)
    return OK


def _and(items: list[str]) -> str:
    """``["15", "16", "18"]`` -> ``15, 16 and 18``."""
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _print_needs(module: registry.Module, impl: str, outcomes: list[TestOutcome], out: TextIO) -> None:
    """What the module needs from other modules (the registry's ``needs``), and how much of it
    is written in the code under test: one line, then one per module it needs."""
    found = needs(module, impl, outcomes)
    owners = list(dict.fromkeys(need.module for need in found))
    numbers = _and([str(m.number) for m in owners])
    written = sum(need.written for need in found)
    functions = f"{len(found)} function{'s' * (len(found) != 1)}"
    print(
        f"\nmodule {module.number} uses {functions} of module{'s' * (len(owners) > 1)} {numbers}: "
        f"{written} written (its guide, {module.kata}/README.md, lists them)",
        file=out,
    )
    for owner in owners:
        mine = [need for need in found if need.module == owner]
        left = [need.function for need in mine if not need.written]
        line = f"  module {owner.number} {owner.name}: {len(mine) - len(left)} of {len(mine)} written"
        print(line + (f"; still to write: {', '.join(left)}" if left else ""), file=out)


def cmd_test(args: argparse.Namespace, out: TextIO) -> int:
    module = released_module(args.module, args.command)
    impl = check_impl(args.impl)
    result = run_tests([module], impl)
    if not result.report_found:
        return no_report(result, out)
    return report_module(result[module.name], impl, out, show_all=args.all)


# --------------------------------------------------------------------------- watch


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(mtime in ns, size) of every .py file under ``folder``: a change means a save."""
    state = {}
    for path in sorted(folder.rglob("*.py")):
        try:
            stat = path.stat()
        except OSError:  # deleted between listing and stat
            continue
        state[str(path)] = (stat.st_mtime_ns, stat.st_size)
    return state


def cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    module = released_module(args.module, args.command)
    impl = check_impl(args.impl)
    folder = perf.source_dir(module.name, impl)
    print(f"watching {folder}: the tests rerun when you save; Ctrl-C stops", file=out)
    runs, code = 0, OK
    try:
        state = snapshot(folder)
        while True:
            result = run_tests([module], impl)
            code = (
                report_module(result[module.name], impl, out)
                if result.report_found
                else no_report(result, out)
            )
            runs += 1
            out.flush()
            if args.max_runs is not None and runs >= args.max_runs:
                return code
            print(f"\n--- waiting for a change in {module.kata}/ (Ctrl-C stops) ---", file=out)
            out.flush()
            while (new := snapshot(folder)) == state:
                _sleep(args.interval)
            state = new
            print(f"\n--- change detected: rerunning module {module.number} {module.name} ---\n", file=out)
    except KeyboardInterrupt:
        print("\nstopped watching", file=out)
        return OK
