"""Integrity checks that keep the katas honest: ``python -m grading.integrity unsolved|parity``.

``unsolved``
    Runs every ready module's tests against the untouched stubs (``TINYTORCH_IMPL=katas``) and
    reads the JUnit report test by test. Every test must fail: a test that passes (or skips) on a
    stub cannot tell a solved kata from an unsolved one. A collection error or a module with no
    tests is a problem too. The exit code of pytest is never trusted, only the report.

``parity``
    For every ready module, compares ``katas/<m>/`` with ``solutions/<m>/``: the same files, the
    same public names and signatures, every name a test imports present in the stub, every
    ``NotImplementedError`` naming its function, module and kata file, and the plumbing given in a
    stub the solution's word for word; only the bodies of the lesson may differ. The rules, in
    full: ``grading/parity.py``.

Both print a report and exit 1 on any problem, 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grading.parity import check_parity, signature_text
from tinytorch.course import registry, runner

__all__ = ["check_parity", "check_unsolved", "main", "signature_text", "unsolved_summary"]


# --------------------------------------------------------------------------- unsolved


def check_unsolved(root: Path | None = None) -> list[str]:
    """Problems found running the ready modules' tests on the stubs; empty when every test fails."""
    root = root or registry.repo_root()
    ready = [m for m in registry.modules() if m.ready]
    problems = []
    for m in ready:
        if not (root / m.tests).is_file():
            problems.append(f"module {m.number} {m.name}: no test file {m.tests}")
    result = runner.run_modules(ready, impl="katas", root=root)
    if not result.report_found:
        return problems + ["pytest wrote no report; its output:\n" + result.output]
    for m in ready:
        r = result[m.name]
        for outcome in r.collection_errors:
            problems.append(f"{outcome.nodeid}: collection error on the stubs: {outcome.message}")
        if (root / m.tests).is_file() and r.total == 0 and not r.collection_errors:
            problems.append(f"module {m.number} {m.name}: no tests collected from {m.tests}")
        for outcome in r.outcomes:
            if outcome.outcome in ("passed", "skipped"):
                why = f": {outcome.message}" if outcome.message else ""
                problems.append(f"{outcome.nodeid}: {outcome.outcome.upper()} on the untouched stubs{why}")
    return problems


def unsolved_summary(root: Path | None = None) -> tuple[list[str], str]:
    problems = check_unsolved(root)
    ready = [m for m in registry.modules() if m.ready]
    names = ", ".join(m.name for m in ready)
    if problems:
        return problems, f"unsolved: {len(problems)} problem(s): every test must fail on the stubs ({names})"
    return problems, f"unsolved: every test fails on the untouched stubs ({names})"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading.integrity", description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=("unsolved", "parity"))
    args = parser.parse_args(argv)
    if args.check == "unsolved":
        problems, headline = unsolved_summary()
    else:
        problems = check_parity()
        names = ", ".join(m.name for m in registry.modules() if m.ready)
        headline = (
            f"parity: {len(problems)} problem(s) ({names})"
            if problems
            else f"parity: stubs and solutions agree; every name the tests import exists ({names})"
        )
    for problem in problems:
        print(f"  - {problem}")
    print(headline)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
