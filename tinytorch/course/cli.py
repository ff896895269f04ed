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

The commands live beside this door: :mod:`tinytorch.course.board` (status, test, watch),
:mod:`tinytorch.course.hints` (hint) and, here, list, bench, submit and leaderboard, which hand
over to a script or to :mod:`tinytorch.course.leaderboard`; :mod:`tinytorch.course.usage` holds
the exit codes and the usage errors.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from tinytorch import perf
from tinytorch.course import board, hints, leaderboard, registry, runner
from tinytorch.course.usage import FAILING, INTERRUPTED, OK, USAGE, UsageError, check_impl, released_module

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
        flags = ["--quick"] * args.quick + ["--no-plots"] * args.no_plots + ["--claims"] * args.claims
        flags += ["--out", str(Path(args.out).resolve())] if args.out is not None else []
        return _measure(script, flags, out)
    if args.out is not None or args.no_plots or args.claims:
        raise UsageError(
            "--out, --no-plots and --claims belong to the overview: `tinytorch bench` without a module"
        )
    module = released_module(args.module, args.command)
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


# --------------------------------------------------------------------------- leaderboard and submit


def cmd_leaderboard(args: argparse.Namespace, out: TextIO) -> int:
    return leaderboard.cli_leaderboard(args, out)


def cmd_submit(args: argparse.Namespace, out: TextIO) -> int:
    """``submit --json FILE`` adds recorded results here (self-reported: unverified); otherwise
    the submission is measured like a benchmark, by ``benchmarks/submit.py`` in a fresh
    interpreter (:func:`_measure`), and recorded verified."""
    impl = check_impl(args.impl)
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


# --------------------------------------------------------------------------- main


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
        if module:  # optional here, so that a missing module lists the modules (see released_module)
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
    p.add_argument(
        "--claims", action="store_true", help="overview: list the declared claims (Markdown); no run"
    )
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


COMMANDS = {
    "status": board.cmd_status,
    "test": board.cmd_test,
    "hint": hints.cmd_hint,
    "watch": board.cmd_watch,
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
    board.timeout_option = getattr(args, "timeout", None)
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
