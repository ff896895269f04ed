"""The student CLI: ``tinytorch status | test | hint | watch | list | bench | leaderboard | submit``.

Everything comes from the registry (``tinytorch/course/modules.toml``); tests run in a pytest
subprocess (``tinytorch.course.runner``) against the student's code (``katas``), or against what
``--impl``, else the environment's ``TINYTORCH_IMPL``, names (an unknown value is a usage
error). Plain text, no colour needed. Every run is bounded: a per-test timeout (``--timeout``,
default ``runner.TEST_TIMEOUT``) and a bound on each module's whole run; Ctrl-C stops cleanly.
Exit codes:

* 0: done; for ``test`` and ``watch``: every test passes; ``status``: the board was drawn;
* 1: ``test``/``watch``: some test fails (or cannot be collected); ``status``: a module's tests
  could not all run (an import error, a timeout, a crash, a kata that exits); ``bench``: no
  benchmark;
* 2: usage error: unknown command or module (the valid modules are listed), a planned module, a
  bad option value, a missing, empty or corrupt registry (the file is named);
* 3: the tests could not be run at all (pytest wrote no report);
* 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from tinytorch import perf
from tinytorch.course import leaderboard, registry, runner

OK, FAILING, USAGE, BROKEN = 0, 1, 2, 3
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
BAR_WIDTH = 20
SHOWN_FAILURES = 5
HINTS_FILE = Path(".tinytorch") / "hints.json"
HINT_WIDTH = 100  # hints are wrapped to this many columns

# Waits between polls of `watch`; a module attribute so tests can replace it.
_sleep: Callable[[float], None] = time.sleep


class UsageError(Exception):
    """A command the CLI cannot act on: the message says why and what would work."""


# --------------------------------------------------------------------------- helpers


def _valid_modules() -> str:
    return ", ".join(f"{m.number} {m.name}" for m in registry.modules())


def _module(key: str | None, command: str = "test") -> registry.Module:
    """A released module by name or number, else a UsageError that lists the valid ones (also
    when no module is given: ``tinytorch hint`` alone)."""
    if key is None:
        released = ", ".join(f"{m.number} {m.name}" for m in registry.modules() if m.ready)
        raise UsageError(
            f"which module? `tinytorch {command} <module>` takes a module's name or number; "
            f"the released modules are: {released or 'none yet'} (`tinytorch list` shows them all)"
        )
    try:
        module = registry.get(key)
    except KeyError:
        raise UsageError(f"unknown module {key!r}; the modules are: {_valid_modules()}") from None
    if not module.ready:
        released = ", ".join(f"{m.number} {m.name}" for m in registry.modules() if m.ready)
        raise UsageError(
            f"module {module.number} ({module.name}) is planned and not released yet; "
            f"the released modules are: {released}"
        )
    return module


def _check_impl(impl: str | None) -> str:
    """``--impl`` if given, else ``$TINYTORCH_IMPL``, else ``katas``; a UsageError lists the valid values."""
    given = impl is not None
    if impl is None:
        impl = os.environ.get(perf.ENV_VAR, "").strip() or perf.DEFAULT_IMPL
    try:
        perf.parse_impl(impl, source="--impl" if given else perf.ENV_VAR)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return impl


def bar(passed: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[#######.............]``: a progress bar readable without colour."""
    filled = round(width * passed / total) if total else 0
    if passed < total:
        filled = min(filled, width - 1)  # only a full pass fills the bar
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _owner(location: runner.Location | None) -> registry.Module | None:
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


def _where(outcome: runner.TestOutcome, module: registry.Module | None = None) -> str:
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


# The per-test timeout of this invocation (`--timeout`), set by main(); None: the runner's default.
_test_timeout: float | None = None


def _run(modules: list[registry.Module], impl: str) -> runner.RunResult:
    try:
        test_timeout = _test_timeout or runner.seconds_from_env(runner.TEST_TIMEOUT_ENV, runner.TEST_TIMEOUT)
        run_timeout = runner.seconds_from_env(runner.RUN_TIMEOUT_ENV, runner.RUN_TIMEOUT)
    except ValueError as error:
        raise UsageError(str(error)) from None
    # a run takes at least a few test timeouts: raising --timeout raises the bound of the run too
    run_timeout = max(run_timeout, 4 * test_timeout)
    return runner.run_modules(modules, impl=impl, test_timeout=test_timeout, run_timeout=run_timeout)


def positive_number(kind: type[int] | type[float] = float, minimum: float = 0.0) -> Callable[[str], float]:
    """An argparse ``type``: a finite number of ``kind`` above ``minimum`` (``nan``, ``inf``, 0 and
    negatives are usage errors naming the value, never silently replaced)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not minimum < value < float("inf"):
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what} greater than {minimum:g}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _no_report(result: runner.RunResult, out: TextIO) -> int:
    print("error: pytest wrote no report; its output was:", file=out)
    print(result.output.rstrip(), file=out)
    return BROKEN


# --------------------------------------------------------------------------- list


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    if args.markdown:
        print(registry.markdown_table(), file=out)
        return OK
    modules = registry.modules()  # first: a broken registry is an error, not half a table
    print(f"{'#':>3}  {'module':<13} {'status':<8} {'points':>6}  title", file=out)
    for m in modules:
        print(f"{m.number:>3}  {m.name:<13} {m.status:<8} {m.points:>6}  {m.title}", file=out)
    print("\nEdit the stubs in katas/<module>/; run `tinytorch test <module>`.", file=out)
    return OK


# --------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    impl = _check_impl(args.impl)
    ready = [m for m in registry.modules() if m.ready]
    result = _run(ready, impl)
    if not result.report_found:
        return _no_report(result, out)
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
        print(f"Next step: module {m.number} {m.name}: {first.name} fails at {_where(first, m)}", file=out)
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


def _broken_note(result: runner.ModuleResult) -> str:
    """One line on why a module's tests could not all run: how many, how, and the first place."""
    kinds = {"timeout": "timed out", "crash": "crashed the process", "exit": "exited", "not run": "not run"}
    counts = {}
    for o in result.outcomes:
        if o.problem and not o.collection:
            counts[kinds[o.problem]] = counts.get(kinds[o.problem], 0) + 1
    first = next(o for o in result.failures if o.collection or o.problem)
    what = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "the tests cannot be imported"
    return f"{what}: {first.summary_lines(1)[0]} (at {_where(first, result.module)})"


# --------------------------------------------------------------------------- test


def report_module(result: runner.ModuleResult, impl: str, out: TextIO, show_all: bool = False) -> int:
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
        print(f"  at {_where(outcome, m)}", file=out)
        for line in outcome.summary_lines():
            print(f"  | {line}", file=out)
    if len(failures) > len(shown):
        print(
            f"\n... and {len(failures) - len(shown)} more (`tinytorch test {m.name} --all` shows them):",
            file=out,
        )
        for outcome in failures[len(shown) :]:
            print(f"  {outcome.label} {outcome.name}", file=out)
    todo = [f"{location.function} in {location.path}" for location in runner.still_raising(failures)]
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


def _print_needs(module: registry.Module, impl: str, outcomes: list[runner.TestOutcome], out: TextIO) -> None:
    """What the module needs from other modules (the registry's ``needs``), and how much of it
    is written in the code under test: one line, then one per module it needs."""
    found = runner.needs(module, impl, outcomes)
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
    module = _module(args.module, args.command)
    impl = _check_impl(args.impl)
    result = _run([module], impl)
    if not result.report_found:
        return _no_report(result, out)
    return report_module(result[module.name], impl, out, show_all=args.all)


# --------------------------------------------------------------------------- hint


def _hints_path() -> Path:
    return registry.repo_root() / HINTS_FILE


def _hint_id(hint: registry.Hint) -> str:
    """A hint's identity in the progress file: a digest of its ``tests`` and text, so a hint added,
    removed or moved in the registry leaves the hints a student took marked as taken."""
    return hashlib.sha256(f"{hint.tests}\0{hint.text}".encode()).hexdigest()[:16]


def _shown_ids(module: registry.Module, saved: object) -> set[str]:
    """The ids of the module's hints a student took (a progress file of an earlier version holds
    positions in the module's hint list: read as the hints at those positions)."""
    if not isinstance(saved, list):
        return set()
    ids = {item for item in saved if isinstance(item, str)}
    for item in saved:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(module.hints):
            ids.add(_hint_id(module.hints[item]))
    return ids


def _load_progress() -> dict[str, list]:
    try:
        data = json.loads(_hints_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_progress(progress: dict[str, list]) -> None:
    path = _hints_path()
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(progress, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# A stub's NotImplementedError names its function and module: "summarize (module 15, profiling): ..."
_UNWRITTEN = re.compile(r"NotImplementedError: ([\w.<>]+) \(module (\d+), (\w+)\)")

Rung = tuple[registry.Module, registry.Hint]  # a hint and the module whose registry entry holds it


def _unwritten(outcome: runner.TestOutcome) -> tuple[registry.Module, str] | None:
    """The module and the kata function whose ``NotImplementedError`` failed a test, if any: the
    exception's own line, else the last one of the traceback."""
    found = _UNWRITTEN.search(outcome.message) or ([None] + list(_UNWRITTEN.finditer(outcome.details)))[-1]
    if found is None:
        return None
    try:
        return registry.get(found.group(3)), found.group(1)
    except KeyError:
        return None


def hint_ladder(module: registry.Module, outcome: runner.TestOutcome) -> tuple[list[Rung], str]:
    """The hints for one failing test, first to last, and a line saying why they start where they do.

    A test that fails because a kata function is not written yet (its ``NotImplementedError``,
    possibly in an earlier module) starts with that function's hints, the ladder of the test the
    function's module names for it (``ladders``); the test's own ladder follows. Otherwise the
    ladder is the test's own (``Module.hints_for``). The module's general hints are on no ladder.
    """
    own: list[Rung] = [(module, h) for h in module.hints_for(outcome.nodeid)]
    found = _unwritten(outcome)
    test = found[0].ladder_test(found[1]) if found else None
    if not found or not test:
        return own, ""
    owner, function = found
    first: list[Rung] = [(owner, h) for h in owner.hints_for(test)]
    if not first or own[: len(first)] == first:
        return own, ""
    where = "" if owner is module else f" of module {owner.number} {owner.name}"
    why = (
        f"It fails because {function}{where} is not written yet (its NotImplementedError): "
        f"the hints for {function} come first (those of {test})."
    )
    return first + [rung for rung in own if rung not in first], why


def cmd_hint(args: argparse.Namespace, out: TextIO) -> int:
    module = _module(args.module, args.command)
    impl = _check_impl(args.impl)
    progress = _load_progress()
    if args.reset:
        progress.pop(module.name, None)
        _save_progress(progress)
        print(f"hints of module {module.number} {module.name} reset", file=out)
        return OK
    result = _run([module], impl)
    if not result.report_found:
        return _no_report(result, out)
    r = result[module.name]
    if r.all_passed:
        print(
            f"Every test of module {module.number} {module.name} passes ({r.passed}/{r.total}): "
            "no hint needed.",
            file=out,
        )
        return OK
    if not r.failures:
        print(f"module {module.number} {module.name} has no tests in {module.tests}", file=out)
        return FAILING
    first = r.failures[0]
    print(f"First failing test: {first.nodeid}\n  at {_where(first, module)}", file=out)
    for line in first.summary_lines():
        print(f"  | {line}", file=out)
    ladder, why = hint_ladder(module, first)
    # the gallery of classic mistakes (grading/mistakes): wrong code, so not why unwritten code fails
    likely = [] if _unwritten(first) else module.mistakes_for(first.nodeid)
    if likely:
        print("\nClassic mistakes this test catches (is one of them yours?):", file=out)
        for mistake in likely:
            print(f"  - {mistake.why}", file=out)
    owners = {m.name: m for m, _ in [(module, None), *ladder]}  # a ladder may start in an earlier module
    shown = {name: _shown_ids(owner, progress.get(name)) for name, owner in owners.items()}

    def taken(rung: Rung) -> bool:
        return _hint_id(rung[1]) in shown[rung[0].name]

    def take(rungs: list[Rung]) -> None:
        for owner, hint in rungs:
            shown[owner.name].add(_hint_id(hint))
            progress[owner.name] = sorted(shown[owner.name])
        _save_progress(progress)

    general = [(module, h) for h in module.general_hints]
    name, again = _test_name(first.nodeid), f"tinytorch hint {module.name}"
    if not ladder:
        if general:
            _print_general(module, general, out, f"\nNo hint of its own for {name}; about module")
            take(general)
            return OK
        print(
            "\nNo hint in the registry for this test: read the failure above and the docstring of the "
            "function it points at.",
            file=out,
        )
        if registry.hints_held() == "none":
            print("(This copy of the course holds no hints: your instructor's choice.)", file=out)
        return OK
    if args.shown:
        about = [rung for rung in general if taken(rung)]
        if about:
            _print_general(module, about, out, "\nAbout module")
        numbers = [k for k, rung in enumerate(ladder, 1) if taken(rung)]
        if not numbers:
            print(f"\nNo hint taken for {name} yet: `{again}` shows the first of {len(ladder)}.", file=out)
            return OK
        print(f"\nHints taken for {name} ({len(numbers)} of {len(ladder)}):", file=out)
        for k in numbers:
            _print_hint(f"{k}.", ladder[k - 1][1].text, out)
        left = len(ladder) - len(numbers)
        print(f"({left} more: run `{again}`)" if left else "(that is every hint for this test)", file=out)
        return OK
    fresh = [k for k, rung in enumerate(ladder, 1) if not taken(rung)]
    if not fresh:
        print(f"\nEvery hint for this test ({len(ladder)}) is shown already:", file=out)
        for k, (_, hint) in enumerate(ladder, 1):
            _print_hint(f"{k}.", hint.text, out)
        print(f"(`{again} --reset` starts over)", file=out)
        return OK
    new_general = [rung for rung in general if not taken(rung)]
    if new_general:  # the module's general advice, once: before the first hint taken in the module
        _print_general(module, new_general, out, "\nAbout module")
    k = fresh[0]
    if why:
        print("\n" + textwrap.fill(why, width=HINT_WIDTH), file=out)
    print(f"\nHint {k} of {len(ladder)} for {name}:", file=out)
    _print_hint("", ladder[k - 1][1].text, out)
    take(new_general + [ladder[k - 1]])
    left = len(fresh) - 1
    if left:
        print(f"{left} more for this test, each more explicit: run `{again}` again.", file=out)
    elif registry.hints_held() == "nudges":
        print("That was the last hint for this test (this copy of the course holds no recipes).", file=out)
    else:
        print("That was the last hint for this test.", file=out)
    numbers = [n for n, rung in enumerate(ladder, 1) if taken(rung)]
    print(
        f"Taken: {_levels(numbers)} of {len(ladder)}; "
        f"`{again} --shown` repeats them, `--reset` forgets them.",
        file=out,
    )
    return OK


def _print_general(module: registry.Module, general: list[Rung], out: TextIO, lead: str) -> None:
    """The module's general advice under a heading (``lead`` + the module's number and name)."""
    print(f"{lead} {module.number} {module.name}:", file=out)
    for _, hint in general:
        _print_hint("", hint.text, out)


def _test_name(nodeid: str) -> str:
    """``tests/test_x.py::TestA::test_b[1]`` -> ``test_b[1]``: the name a student sees in the test file."""
    return nodeid.rpartition("::")[2] or nodeid


def _levels(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> ``hints 1-3, 5``; [2] -> ``hint 2``."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    text = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
    return ("hints " if len(numbers) > 1 else "hint ") + text


def _print_hint(label: str, text: str, out: TextIO) -> None:
    """A hint wrapped to the terminal's usual width, indented under its label."""
    prefix = f"  {label} " if label else "  "
    print(
        textwrap.fill(
            " ".join(text.split()),
            width=HINT_WIDTH,
            initial_indent=prefix,
            subsequent_indent=" " * len(prefix),
        ),
        file=out,
    )


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
    module = _module(args.module, args.command)
    impl = _check_impl(args.impl)
    folder = perf.source_dir(module.name, impl)
    print(f"watching {folder}: the tests rerun when you save; Ctrl-C stops", file=out)
    runs, code = 0, OK
    try:
        state = snapshot(folder)
        while True:
            result = _run([module], impl)
            code = (
                report_module(result[module.name], impl, out)
                if result.report_found
                else _no_report(result, out)
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


# --------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    """``bench <module>``: that module's benchmark; ``bench`` alone: every headline claim of the
    course side by side (benchmarks/overview.py). Either runs as a script in a fresh interpreter,
    so that it pins BLAS threads before numpy loads."""
    root = registry.repo_root()
    if args.module is None:
        script = root / "benchmarks" / "overview.py"
        if not script.is_file():
            print("no overview of the claims here (no benchmarks/overview.py)", file=out)
            return FAILING
        flags = ["--quick"] * args.quick + ["--no-plots"] * args.no_plots
        flags += ["--out", str(Path(args.out).resolve())] if args.out is not None else []
        return _measure(script, flags, out)
    if args.out is not None or args.no_plots:
        raise UsageError("--out and --no-plots belong to the overview: `tinytorch bench` without a module")
    module = _module(args.module, args.command)
    script = root / "benchmarks" / f"{module.name}.py"
    if not script.is_file():
        print(
            f"module {module.number} {module.name} has no benchmark (no benchmarks/{module.name}.py)",
            file=out,
        )
        return FAILING
    return _measure(script, [*["--quick"] * args.quick, *args.args], out)


def _measure(script: Path, flags: list[str], out: TextIO, impl: str | None = None) -> int:
    """Run a measuring script (a benchmark, the overview, ``benchmarks/submit.py``) in a fresh
    interpreter from the checkout's root; its exit code. Every one pins BLAS threads the same
    way before numpy loads (``benchmarks.pin_blas_threads``), which this process cannot do: it
    has loaded numpy already. ``impl``: the ``TINYTORCH_IMPL`` of the run (default: this one's)."""
    env = dict(os.environ)
    if impl is not None:
        env[perf.ENV_VAR] = impl
    out.flush()
    return subprocess.call([sys.executable, str(script), *flags], cwd=registry.repo_root(), env=env)


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinytorch",
        description="TinyTorch optimization katas (modules 15-20): run your tests, see your progress, "
        "get hints.",
        epilog="exit codes: 0 ok / all tests pass, 1 a test fails, 2 usage error (e.g. unknown module), "
        "3 the tests could not be run, 130 interrupted (Ctrl-C)",
    )
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)

    def add(name: str, help: str, module: bool = True, impl: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        if module:  # optional here, so that a missing module lists the modules (see _module)
            p.add_argument("module", nargs="?", help="module name or number, e.g. profiling or 15")
        if impl:
            p.add_argument(
                "--impl",
                default=None,
                help="the code under test, as TINYTORCH_IMPL, e.g. solutions,profiling=katas "
                "(default: $TINYTORCH_IMPL if set, else katas: your code)",
            )
            p.add_argument(
                "--timeout",
                type=positive_number(float),
                default=None,
                metavar="SECONDS",
                help=f"stop a test that runs longer than this (default ${runner.TEST_TIMEOUT_ENV} if set, "
                f"else {runner.TEST_TIMEOUT:g})",
            )
        return p

    add("status", "the board: tests passed per module and your next step", module=False)
    p = add("test", "run one module's tests against your code")
    p.add_argument("--all", action="store_true", help="show every failure, not only the first few")
    p = add("hint", "the next hint for the module's first failing test")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--shown", action="store_true", help="show again the hints taken for the failing test")
    which.add_argument("--reset", action="store_true", help="forget which hints of the module were taken")
    p = add("watch", "rerun one module's tests whenever a kata file is saved")
    p.add_argument(
        "--interval", type=positive_number(float), default=0.5, help="seconds between checks (default 0.5)"
    )
    p.add_argument("--max-runs", type=positive_number(int), default=None, help="stop after this many runs")
    p = add("list", "the modules in the registry", module=False, impl=False)
    p.add_argument("--markdown", action="store_true", help="the README's table of modules")
    p = add(
        "bench",
        "run a module's benchmark (benchmarks/<module>.py); without a module, measure every headline "
        "claim of the course against its promise (benchmarks/overview.py)",
        impl=False,
    )
    p.add_argument("--quick", action="store_true", help="the short run (the overview: about 1-2 minutes)")
    p.add_argument("--out", default=None, metavar="DIR", help="overview: folder of the JSON and the plots")
    p.add_argument("--no-plots", action="store_true", help="overview: the table and the JSON only")
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to the module's benchmark")
    p = add(
        "leaderboard",
        "the TinyMLPerf leaderboard (module 20) as a table; `leaderboard verify` re-runs its entries",
        module=False,
        impl=False,
    )
    leaderboard.add_leaderboard_arguments(p)
    p = add("submit", "run your TinyMLPerf submission (module 20), add it to the leaderboard", module=False)
    leaderboard.add_submit_arguments(p)
    return parser


def cmd_leaderboard(args: argparse.Namespace, out: TextIO) -> int:
    return leaderboard.cli_leaderboard(args, out)


def cmd_submit(args: argparse.Namespace, out: TextIO) -> int:
    """``submit --json FILE`` adds recorded results here (self-reported: unverified); otherwise
    the submission is measured like a benchmark, by ``benchmarks/submit.py`` in a fresh
    interpreter (:func:`_measure`), and recorded verified."""
    impl = _check_impl(args.impl)
    if args.json:  # nothing to measure
        return leaderboard.cli_submit(args, out, impl=impl)
    script = registry.repo_root() / "benchmarks" / "submit.py"
    if not script.is_file():
        print("no benchmarks/submit.py here: a submission is measured by it", file=out)
        return FAILING
    flags = ["--quick"] * args.quick + ["--dry-run"] * args.dry_run
    for name in ("name", "author"):
        flags += [f"--{name}", getattr(args, name)] if getattr(args, name) else []
    for name in ("db", "save_json"):  # paths from the caller's folder; the script runs in the root
        value = getattr(args, name)
        flags += [f"--{name.replace('_', '-')}", str(Path(value).resolve())] if value else []
    return _measure(script, flags, out, impl)


COMMANDS = {
    "status": cmd_status,
    "test": cmd_test,
    "hint": cmd_hint,
    "watch": cmd_watch,
    "list": cmd_list,
    "bench": cmd_bench,
    "leaderboard": cmd_leaderboard,
    "submit": cmd_submit,
}


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    out = out or sys.stdout
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # plain `tinytorch`: the commands, not argparse's terse usage error
        parser.print_help(file=out)
        return USAGE
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help (0) or a usage error (2); argparse printed the message
        return int(exit.code or 0)
    global _test_timeout
    _test_timeout = getattr(args, "timeout", None)
    try:
        return COMMANDS[args.command](args, out)
    except (UsageError, FileNotFoundError, registry.RegistryError) as error:
        print(f"tinytorch {args.command}: {error}", file=out)
        return USAGE
    except KeyboardInterrupt:  # Ctrl-C: the runner has stopped its pytest processes
        print("\ninterrupted (Ctrl-C): the run was stopped", file=out)
        return INTERRUPTED
    except BrokenPipeError:  # the reader went away (`tinytorch test 15 | head`): stop quietly
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # python -m tinytorch.course.cli works like python -m tinytorch
    sys.exit(main())
