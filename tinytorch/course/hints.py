"""``tinytorch hint``: the next hint for a module's first failing test, and the hints a student took.

The registry holds each module's hints, each on the ladder of the tests it names, from a nudge to
the full recipe; ``hint`` shows one rung at a time and remembers the rungs taken in
``.tinytorch/hints.json`` (by a digest of each hint's content, so an instructor's edit to the
registry leaves them taken). A test failing in a function not written yet starts with that
function's ladder, possibly an earlier module's. The module's general advice comes once, before
its first hint; the classic mistakes a failing test catches (``grading/mistakes``) are named.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import textwrap
from pathlib import Path
from typing import TextIO

from tinytorch.course import board, registry
from tinytorch.course.results import TestOutcome
from tinytorch.course.usage import FAILING, OK, check_impl, released_module

HINTS_FILE = Path(".tinytorch") / "hints.json"
HINT_WIDTH = 100  # hints are wrapped to this many columns


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


def _unwritten(outcome: TestOutcome) -> tuple[registry.Module, str] | None:
    """The module and the kata function whose ``NotImplementedError`` failed a test, if any: the
    exception's own line, else the last one of the traceback."""
    found = _UNWRITTEN.search(outcome.message) or ([None] + list(_UNWRITTEN.finditer(outcome.details)))[-1]
    if found is None:
        return None
    try:
        return registry.get(found.group(3)), found.group(1)
    except KeyError:
        return None


def hint_ladder(module: registry.Module, outcome: TestOutcome) -> tuple[list[Rung], str]:
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
    module = released_module(args.module, args.command)
    impl = check_impl(args.impl)
    progress = _load_progress()
    if args.reset:
        progress.pop(module.name, None)
        _save_progress(progress)
        print(f"hints of module {module.number} {module.name} reset", file=out)
        return OK
    result = board.run_tests([module], impl)
    if not result.report_found:
        return board.no_report(result, out)
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
    print(f"First failing test: {first.nodeid}\n  at {board.where_failed(first, module)}", file=out)
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
