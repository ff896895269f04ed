"""The board's commands: ``tinytorch leaderboard``, ``tinytorch leaderboard verify`` and ``tinytorch submit``.

``tinytorch leaderboard`` prints (or writes) the board as Markdown or HTML. ``tinytorch submit``
builds the submission of the implementation ``TINYTORCH_IMPL`` chooses, runs the competition,
records what ran (:mod:`~tinytorch.course.leaderboard.watch`) and the machine
(:mod:`~tinytorch.course.leaderboard.machine`), and adds the entry as verified: the board's own
process measured it. ``tinytorch submit --json`` adds a file's figures as unverified.
``tinytorch leaderboard verify`` re-runs recorded entries from the code they name (``impl``) in a
fresh interpreter and records the re-measured score beside the claimed one, or why there is none.
``tinytorch.course.cli`` adds these options to its parser and calls these functions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from tinytorch.course.leaderboard.entry import (
    FORBIDDEN_CATEGORIES,
    TEXT_LIMITS,
    Entry,
    InvalidEntry,
    format_interval,
    text_problem,
)
from tinytorch.course.leaderboard.machine import machine_description
from tinytorch.course.leaderboard.render import UNVERIFIED, VERIFIED, tie_ranks
from tinytorch.course.leaderboard.store import ENV_VAR, Leaderboard, default_path
from tinytorch.course.leaderboard.watch import CodeWatch, observe, served_modules, watch_events

# How long one entry's re-run may take: a full competition takes about a minute on 2 cores
# (`tinytorch bench benchmarking` runs three in one to two), 15 minutes leave room for a loaded
# machine.
VERIFY_TIMEOUT = 900.0
# The time budget of each event's paired rounds in a quick run (`tinytorch submit --quick`,
# `tinytorch bench benchmarking --quick`), in seconds; a full run uses the competition's own
# (tinytorch.perf.benchmarking.BUDGET, 10 s). An event never stops before the rounds a 95 %
# interval needs, so a slow event may take longer.
QUICK_BUDGET = 3.0
FOLDER_GONE = "folder gone"
NO_FOLDER = "no folder recorded"


def add_leaderboard_arguments(parser: Any) -> None:
    """The options of ``tinytorch leaderboard [verify]`` (an argparse parser)."""
    parser.add_argument(
        "action",
        nargs="?",
        choices=("show", "verify"),
        default="show",
        help="show the board (the default), or verify: re-run recorded entries from their code and "
        "record the re-measured score beside the claimed one",
    )
    parser.add_argument("--db", default=None, help=f"the database (default: ${ENV_VAR} or {default_path()})")
    parser.add_argument("--format", choices=("markdown", "html"), default="markdown", help="default markdown")
    parser.add_argument("--output", default=None, help="write to this file instead of printing")
    parser.add_argument("--limit", type=int, default=None, help="show the best N entries only")
    parser.add_argument(
        "--top", type=int, default=None, metavar="N", help="verify: re-run the best N entries (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="verify: fewer timed runs per event")
    parser.add_argument(
        "--timeout",
        type=float,
        default=VERIFY_TIMEOUT,
        metavar="SECONDS",
        help=f"verify: give up on one entry's run after this long (default {VERIFY_TIMEOUT:g})",
    )


def add_submit_arguments(parser: Any) -> None:
    """The options of ``tinytorch submit`` (an argparse parser; ``--impl`` is the CLI's own)."""
    parser.add_argument("--db", default=None, help=f"the database (default: ${ENV_VAR} or {default_path()})")
    parser.add_argument("--name", default=None, help="the entry's name (default: the submission's)")
    parser.add_argument("--author", default=None, help="who submits (default: the submission's)")
    parser.add_argument(
        "--json",
        default=None,
        help="submit recorded results (an entry as JSON) instead of running; recorded unverified",
    )
    parser.add_argument("--save-json", default=None, help="also write the entry as JSON to this file")
    parser.add_argument("--quick", action="store_true", help="fewer timed runs per event")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="measure and print the score (and --save-json), add nothing to the board",
    )


def cli_leaderboard(args: Any, out: TextIO) -> int:
    """``tinytorch leaderboard``: print (or write) the board as Markdown or HTML;
    ``tinytorch leaderboard verify``: :func:`cli_verify`."""
    if getattr(args, "action", "show") == "verify":
        return cli_verify(args, out)
    if args.limit is not None and args.limit < 1:
        print("tinytorch leaderboard: --limit must be >= 1", file=out)
        return 2
    board = Leaderboard(args.db)
    text = board.to_html(args.limit) if args.format == "html" else board.to_markdown(args.limit)
    if args.output:
        target = Path(args.output)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
        print(f"wrote {target} ({len(board)} submissions; database {board.path})", file=out)
    else:
        print(f"leaderboard: {board.path}\n", file=out)
        print(text, file=out, end="")
    return 0


def load_entry_json(path: str | os.PathLike) -> Entry:
    """An :class:`Entry` from a JSON file (``tinytorch submit --json``); InvalidEntry if malformed."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        # ValueError: JSONDecodeError, and an integer literal past Python's 4300-digit limit
        raise InvalidEntry([f"{path}: not a readable JSON file ({err})"]) from err
    return Entry.from_dict(record)


def _rejected(reasons: Sequence[str], out: TextIO) -> int:
    print("submission rejected; the leaderboard is unchanged:", file=out)
    for reason in reasons:
        print(f"  - {reason}", file=out)
    return 1


def _run_submission(args: Any, out: TextIO, submission: Any = None, benchmark: Any = None) -> Entry:
    """Build the submission of the implementation chosen by TINYTORCH_IMPL (or take the given
    one), validate it, run the competition (or the given ``TinyMLPerf``) and return its entry."""
    from tinytorch.perf.benchmarking import InvalidSubmission, TinyMLPerf, build_submission

    build = None
    if submission is None:
        with CodeWatch() as build:  # the pruning of modules 18 runs here, before any event
            submission = build_submission()
    for field_name in ("name", "author"):
        if getattr(args, field_name):
            setattr(submission, field_name, getattr(args, field_name))
    bench = (
        benchmark
        if benchmark is not None
        else TinyMLPerf(warmup=1, runs=3, budget=QUICK_BUDGET)
        if args.quick
        else TinyMLPerf()
    )
    problems = submission.validate(bench)
    if problems:
        raise InvalidSubmission(problems)
    print("running the competition (baseline and submission interleaved) ...", file=out)
    card = submission.compute_score(bench)
    print(card, file=out)
    runs = watch_events(bench, submission.models)  # after the timed runs: the watch slows calls
    entry = submission.to_entry()
    return replace(
        entry,
        impl=resolved_impl(),
        machine=machine_description(),
        observed=observe(entry.optimizations, runs, build),
        served=served_modules(),
    )


def resolved_impl(value: str | None = None) -> str:
    """``value`` (default: this process's ``TINYTORCH_IMPL``) with every tree made an absolute
    folder, so that the code can be found again from anywhere (``tinytorch leaderboard verify``):
    ``solutions,caching=katas`` -> ``/checkout/solutions,caching=/checkout/katas/caching``. A
    checkout whose path holds a ``,`` or ``=`` cannot be written so, and a process without a
    checkout (the grader's stage) has nothing to resolve against: the value is kept as given."""
    from tinytorch import perf
    from tinytorch.course import registry

    value = os.environ.get(perf.ENV_VAR, "") if value is None else value
    default, overrides = perf.parse_impl(value)
    try:
        root = registry.repo_root().resolve()
    except FileNotFoundError:  # no checkout (a grader's stage serves folders): nothing to resolve against
        return value.strip() or perf.DEFAULT_IMPL
    if any(c in str(root) for c in ",="):
        return value.strip() or perf.DEFAULT_IMPL
    trees = [default if perf.is_folder(default) else str(root / default)]
    for module, tree in sorted(overrides.items()):
        trees.append(f"{module}={tree if perf.is_folder(tree) else root / registry.get(module).tree(tree)}")
    return ",".join(trees)


def _submitter_problems(args: Any) -> list[str]:
    """What is wrong with ``--name`` and ``--author`` (checked before anything runs)."""
    found = []
    for name in ("name", "author"):
        value = getattr(args, name, None)
        why = None if value is None else text_problem(name, value, required=True)
        found += [f"--{name}: {why}"] if why else []
    return found


def cli_submit(args: Any, out: TextIO, impl: str | None = None) -> int:
    """``tinytorch submit``: run the submission (or read ``--json``) and add it to the board.

    Measured here (no ``--json``): recorded verified. ``--json``: the file's figures are
    self-reported, recorded unverified whatever the file says. ``--dry-run``: nothing is added.
    """
    problems = _submitter_problems(args)
    if problems:
        return _rejected(problems, out)
    measured = not args.json
    try:
        if args.json:
            entry = load_entry_json(args.json)
            entry = replace(entry, **{k: getattr(args, k) for k in ("name", "author") if getattr(args, k)})
            if entry.verified or entry.remeasured_score is not None or entry.remeasure_note:
                print(
                    f"{args.json}: a file cannot make an entry verified or re-measured; recorded as "
                    f"{UNVERIFIED}",
                    file=out,
                )
            # what ran is what `tinytorch submit` saw run, which a file cannot show: not recorded
            entry = replace(
                entry,
                observed={},
                served={},
                verified=False,
                remeasured_score=None,
                remeasured_at=None,
                remeasure_note="",
            )
        else:
            if impl:
                os.environ["TINYTORCH_IMPL"] = impl  # before tinytorch.perf.benchmarking is imported
            entry = _run_submission(args, out)
    except InvalidEntry as err:
        return _rejected(err.reasons, out)
    except NotImplementedError as err:
        print(f"tinytorch submit: your submission cannot run yet: {err}", file=out)
        return 1
    problems = entry.problems()
    if problems:
        return _rejected(problems, out)
    if args.save_json:
        Path(args.save_json).write_text(json.dumps(entry.to_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.save_json}", file=out)
    if getattr(args, "dry_run", False):
        done = "measured" if measured else "checked"
        score = format_interval(entry.score, *(entry.bounds or (None, None)), digits=3)
        print(f"{done} {entry.name!r}: score {score} (dry run: the board is unchanged)", file=out)
        return 0
    board = Leaderboard(args.db)
    entry_id = board._add(entry, verified=measured)
    entries = board.entries()
    rank = next(r for r, e in zip(tie_ranks(entries), entries, strict=True) if e.id == entry_id)
    status = f"{VERIFIED}: measured here" if measured else f"{UNVERIFIED}: self-reported figures"
    score = format_interval(entry.score, *(entry.bounds or (None, None)), digits=3)
    print(
        f"submitted {entry.name!r} by {entry.author}: score {score} ({status}), "
        f"rank {rank} of {len(board)} (entries whose intervals overlap share a rank)",
        file=out,
    )
    print(f"database: {board.path}", file=out)
    return 0


# ------------------------------------------------------------- CLI: tinytorch leaderboard verify


def _impl_folders(impl: str) -> list[Path]:
    """The folders a ``TINYTORCH_IMPL`` value names (a tree name: that tree of this checkout)."""
    from tinytorch import perf
    from tinytorch.course import registry

    folders = []
    for item in impl.split(","):
        tree = item.partition("=")[2] if "=" in item else item
        tree = tree.strip()
        if tree:
            folders.append(Path(tree).expanduser() if perf.is_folder(tree) else registry.repo_root() / tree)
    return folders


class Remeasured(NamedTuple):
    """What :func:`remeasure` found: the score and its 95 % interval, or no score and why not."""

    score: float | None
    bounds: tuple[float, float] | None
    note: str


def remeasure(entry: Entry, quick: bool = False, timeout: float = VERIFY_TIMEOUT) -> Remeasured:
    """Re-run ``entry``'s code as ``tinytorch submit`` measures it (``benchmarks/submit.py`` in a
    fresh interpreter, ``TINYTORCH_IMPL`` = the entry's ``impl``), adding nothing to any board:
    the score measured with its 95 % interval (None when the run gave none), or no score and why
    not: ``no folder recorded``, ``folder gone: PATH``, ``failed: ...`` (the run's last words, or
    its timeout)."""
    from tinytorch import perf
    from tinytorch.course import registry

    impl = entry.impl.strip() if isinstance(entry.impl, str) else ""
    if not impl:
        return Remeasured(None, None, NO_FOLDER)
    gone = [folder for folder in _impl_folders(impl) if not folder.is_dir()]
    if gone:
        return Remeasured(None, None, f"{FOLDER_GONE}: {gone[0]}")
    try:
        perf.parse_impl(impl)
    except ValueError as err:
        return Remeasured(None, None, _one_line(f"failed: the recorded code cannot be served ({err})"))
    script = registry.repo_root() / "benchmarks" / "submit.py"
    with tempfile.TemporaryDirectory(prefix="tinytorch-verify-") as tmp:
        result = Path(tmp) / "entry.json"
        command = [sys.executable, str(script), "--dry-run", "--save-json", str(result), *["--quick"] * quick]
        env = {**os.environ, perf.ENV_VAR: impl}
        try:
            done = subprocess.run(
                command, cwd=registry.repo_root(), env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return Remeasured(None, None, f"failed: no result within {timeout:g} s")
        said = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        if done.returncode != 0 or not result.is_file():
            last = said[-1] if said else f"exit status {done.returncode}"
            return Remeasured(None, None, _one_line(f"failed: {last}"))
        try:
            measured = load_entry_json(result).check()
        except InvalidEntry as err:
            why = f"failed: the run gave an invalid entry ({'; '.join(err.reasons)})"
            return Remeasured(None, None, _one_line(why))
    return Remeasured(float(measured.score), measured.bounds, "")


def _one_line(text: str) -> str:
    """``text`` as a remeasure note: visible characters only, cut to its limit."""
    limit = TEXT_LIMITS["remeasure_note"]
    text = "".join(" " if unicodedata.category(c) in FORBIDDEN_CATEGORIES else c for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cli_verify(args: Any, out: TextIO) -> int:
    """``tinytorch leaderboard verify [--top N]``: re-run the best N entries (all by default)
    from their recorded code and record each re-measured score beside the claimed one (or why
    there is none). Exit status 0 when every entry was re-measured, 1 when one could not be."""
    top = getattr(args, "top", None)
    if top is not None and top < 1:
        print("tinytorch leaderboard verify: --top must be >= 1", file=out)
        return 2
    if not args.timeout > 0:
        print("tinytorch leaderboard verify: --timeout must be > 0 seconds", file=out)
        return 2
    board = Leaderboard(args.db)
    entries = board.entries(top)
    if not entries:
        print(f"leaderboard: {board.path}: no entries to verify", file=out)
        return 0
    count = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    print(f"leaderboard: {board.path}: re-running {count}, one at a time", file=out)
    failed = 0
    for rank, entry in enumerate(entries, 1):
        print(
            f"{rank}. {entry.name!r} by {entry.author} (claimed {entry.score:.3f}x) ...", file=out, flush=True
        )
        score, bounds, note = remeasure(entry, quick=args.quick, timeout=args.timeout)
        board._record_remeasurement(entry.id, score, note, bounds=bounds)
        if score is None:
            failed += 1
            print(f"   not re-measured: {note}", file=out)
        else:
            remeasured = format_interval(score, *(bounds or (None, None)), digits=3)
            claimed = format_interval(entry.score, *(entry.bounds or (None, None)), digits=3)
            print(f"   re-measured {remeasured} (claimed {claimed})", file=out)
    print(f"recorded; {len(entries) - failed} re-measured, {failed} could not be", file=out)
    return 1 if failed else 0
