"""``python -m grading.keyreport coverage|fairness [module ...]``: how well the answer keys guard the tests.

For instructors and key authors, not for grading.

* ``coverage``: per module, how many of its tests an answer-key check *decides* (the check's kata
  functions, traced on the reference, are all called by the test, and its ``covers`` name the
  test): a test no check decides keeps whatever verdict the student's process reports. Lists the
  undecided tests.
* ``fairness``: per module and kata file, grades the reference with that one file replaced by its
  stub (an honest, partly solved submission) and lists the tests whose credit an answer key took:
  there must be none (a key must never take an honest test's points).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from grading import autograde
from tinytorch import registry


def decided(plan: dict, units: dict, module: str) -> tuple[list[str], list[str]]:
    """The module's tests that some answer-key check decides, and those none does."""
    ids = plan[module]
    keys = [k for k in ids if autograde.is_key(k)]
    covers = autograde.declared_covers(registry.repo_root() / registry.get(module).key) if keys else {}
    yes, no = [], []
    for test in (i for i in ids if not autograde.is_key(i)):
        found = any(
            units.get(k)
            and units[k] <= units.get(test, frozenset())
            and (not covers.get(k.split("::", 1)[1]) or autograde.covered(test, covers[k.split("::", 1)[1]]))
            for k in keys
        )
        (yes if found else no).append(test)
    return yes, no


def coverage(modules: list[str]) -> int:
    plan, units = autograde.prepare()
    for module in modules:
        yes, no = decided(plan, units, module)
        print(f"{module}: {len(yes)}/{len(yes) + len(no)} tests decided by an answer-key check")
        for test in no:
            print(f"    undecided: {test.split('::', 1)[1]}")
    return 0


def fairness(modules: list[str]) -> int:
    root = registry.repo_root()
    settings = autograde.load_settings()
    unfair = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in modules:
            module = registry.get(name)
            for stub in sorted((root / module.kata).glob("*.py")):
                if stub.name == "__init__.py":
                    continue
                submission = Path(tmp) / f"{name}-{stub.stem}"
                shutil.copytree(root / "solutions", submission / "katas")
                shutil.copyfile(stub, submission / "katas" / Path(module.kata).name / stub.name)
                grade = autograde.grade(submission, settings=settings, only=[name]).modules[0]
                unfair += len(grade.inconsistent)
                print(
                    f"{name}, {stub.name} unsolved: {float(grade.score):.1f} points; "
                    f"credit taken by the key from {len(grade.inconsistent)} test(s)"
                )
                for test in grade.inconsistent:
                    print(f"    {test.split('::', 1)[1]}")
    return 1 if unfair else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grading.keyreport",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("report", choices=("coverage", "fairness"))
    parser.add_argument(
        "modules", nargs="*", help="names or numbers (default: every ready module with a key)"
    )
    args = parser.parse_args(argv)
    names = [registry.get(m).name for m in args.modules] or [
        m.name for m in registry.modules() if m.ready and m.key
    ]
    return coverage(names) if args.report == "coverage" else fairness(names)


if __name__ == "__main__":
    raise SystemExit(main())
