"""``python -m grading <command> [args]``: the instructor's tools, one command each.

Each command is a module of this package with a ``main(argv) -> int``; this file only routes.
``python -m grading`` alone lists the commands.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module of this package, one line for the listing)
COMMANDS: dict[str, tuple[str, str]] = {
    "unsolved": ("integrity", "every test of every ready module fails on the untouched stubs"),
    "parity": ("integrity", "stubs and solutions expose the same names, signatures and plumbing"),
    "mistakes": ("gallery", "every classic mistake of grading/mistakes/ is caught by a test"),
    "gradescope": ("gradescope", "build the Gradescope autograder zip (setup.sh, run_autograder, this repo)"),
    "mutants": ("mutants", "plant every small change in a module's reference; list those no test notices"),
    "release": ("release", "build the student release: no solutions, no instructor tools, one commit"),
    "prepare": ("prepare", "run the tests and answer keys on the reference once; cache the grading plan"),
    "grade": ("autograde", "grade one submission (folder or zip): results.json for Gradescope + summary"),
    "batch": ("batch", "grade a folder of submissions in parallel: gradebook.csv + summary.json, resumable"),
}

# commands whose module takes the command name as its first argument (integrity's check names)
_PASS_COMMAND = {"unsolved", "parity"}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m grading <command> [args]  (each command has --help)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"python -m grading: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"grading.{COMMANDS[command][0]}")
    return module.main([command, *rest] if command in _PASS_COMMAND else rest)


if __name__ == "__main__":
    sys.exit(main())
