"""What a grading produces: each test's outcome and points, each module's grade and the
submission's, the per-module summary for a terminal and Gradescope's ``results.json``.

Only the grader's own process builds these, from its own list of tests; ``write_results`` writes
the file atomically, so a reader never sees half of one, whatever the children did.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from grading import competition
from grading.grade_settings import is_key
from tinytorch.course import registry

# Gradescope visibility of the tests in a module's instructor-only files (the registry's `hidden`)
HIDDEN_VISIBILITY = "after_published"

STATUS_OK = "graded"


@dataclass
class TestResult:
    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str  # passed, failed, skipped, timeout, crashed, not run
    message: str = ""
    max_score: Fraction = Fraction(0)
    score: Fraction = Fraction(0)

    @property
    def name(self) -> str:
        name = self.nodeid.split("::", 1)[1] if "::" in self.nodeid else self.nodeid
        return f"answer key: {name}" if is_key(self.nodeid) else name


@dataclass
class ModuleGrade:
    module: registry.Module
    tests: list[TestResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tampered: str = ""
    inconsistent: list[str] = field(default_factory=list)  # tests passed while a check covering them failed
    survivors: int = 0  # processes of the sandbox user killed after its children were done
    review: list = field(default_factory=list)  # grading.review findings in the student's folder

    @property
    def score(self) -> Fraction:
        return sum((t.score for t in self.tests), Fraction(0))

    @property
    def max_score(self) -> Fraction:
        return Fraction(self.module.points) if self.tests else Fraction(0)

    @property
    def passed(self) -> int:
        return sum(t.outcome == "passed" and t.score > 0 for t in self.tests)

    @property
    def failing(self) -> list[str]:
        return [t.nodeid for t in self.tests if t.score == 0]


@dataclass
class Grade:
    submission: str
    mode: str
    modules: list[ModuleGrade] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = STATUS_OK  # graded, missing, broken-zip, no-katas, too-large, grader-error
    execution_time: float = 0.0
    visibility: str = "visible"
    key_visibility: str = HIDDEN_VISIBILITY
    boundary: dict = field(default_factory=dict)  # grading.boundary.Boundary.to_json()
    seed: str = ""  # a digest of the secret seed the answer keys' inputs were drawn from
    # Gradescope's leaderboard (grading/competition.py): display only, never part of the score
    leaderboard: list = field(default_factory=list)
    leaderboard_note: str = ""  # why there is no leaderboard ("" when posted or not attempted)
    leaderboard_seconds: float = 0.0  # how long the competition's child ran (0: not run)

    @property
    def score(self) -> Fraction:
        return sum((m.score for m in self.modules), Fraction(0))

    @property
    def max_score(self) -> Fraction:
        return sum((m.max_score for m in self.modules), Fraction(0))

    def summary(self) -> str:
        """The per-module table for a terminal (also the results' top-level output)."""
        mode = (
            "isolation (each module on top of the released reference of the others, else the student's own)"
            if self.mode == "isolation"
            else "strict"
        )
        lines = [f"TinyTorch autograder: {self.submission}", f"mode: {mode}"]
        if self.boundary:
            lines.append(
                f"boundary: {self.boundary.get('kind', 'none')}"
                + "".join(f"; not enforced: {m}" for m in self.boundary.get("missing", []))
            )
        lines.append("")
        width = max([len(m.module.name) for m in self.modules] + [6])
        lines.append(f"  {'#':>2}  {'module':<{width}}  {'tests':>7}  {'points':>15}")
        for m in self.modules:
            tests = f"{m.passed}/{len(m.tests)}"
            points = f"{_num(m.score)}/{_num(m.max_score)}"
            flag = "  TAMPERING" if m.tampered else "  INCONSISTENT" if m.inconsistent else ""
            lines.append(f"  {m.module.number:>2}  {m.module.name:<{width}}  {tests:>7}  {points:>15}{flag}")
        lines.append(
            f"  {'':>2}  {'total':<{width}}  {'':>7}  {_num(self.score) + '/' + _num(self.max_score):>15}"
        )
        for m in self.modules:
            notes = ([f"tampering: {m.tampered}"] if m.tampered else []) + m.notes
            if m.inconsistent:
                notes.append(
                    f"inconsistent: {len(m.inconsistent)} test(s) reported passed while the answer key, "
                    "run on new inputs, says the code they test is wrong; they earn nothing"
                )
            if m.survivors:
                notes.append(
                    f"{m.survivors} process(es) of the submission were still running after it; killed"
                )
            failing = [t for t in m.tests if t.score == 0]
            if not notes and not failing:
                continue
            lines += ["", f"module {m.module.number} {m.module.name}:"]
            lines += [f"  ! {note}" for note in notes]
            groups: dict[str, list[TestResult]] = {}
            for t in failing:  # one line per distinct reason, e.g. the stub's NotImplementedError
                groups.setdefault(headline(t.message) or t.outcome, []).append(t)
            for reason, tests in list(groups.items())[:8]:
                first = tests[0]
                more = f" (and {len(tests) - 1} more)" if len(tests) > 1 else ""
                lines.append(f"  {first.outcome:<8} {first.name}{more}: {reason}")
            if len(groups) > 8:
                rest = sum(len(tests) for tests in list(groups.values())[8:])
                lines.append(f"  ... and {rest} more failing test(s)")
        if self.notes:
            lines += ["", *[f"! {note}" for note in self.notes]]
        if self.leaderboard or self.leaderboard_note:
            shown = competition.describe(self.leaderboard) if self.leaderboard else self.leaderboard_note
            lines += ["", f"leaderboard (display only, not part of the grade): {shown}"]
        return "\n".join(lines)

    def to_gradescope(self) -> dict:
        extra = {}
        if self.leaderboard or self.leaderboard_note:
            extra["leaderboard"] = {
                "posted": bool(self.leaderboard),
                "note": self.leaderboard_note,
                "seconds": round(self.leaderboard_seconds, 1),
            }
        tests = []
        for m in self.modules:
            for t in m.tests:
                output = t.message if t.outcome != "passed" else ""
                tests.append(
                    {
                        "name": f"{m.module.number} {m.module.name}: {t.name}",
                        "number": f"{m.module.number}",
                        "score": _round(t.score),
                        "max_score": _round(t.max_score),
                        "status": "passed" if t.score == t.max_score and t.outcome == "passed" else "failed",
                        "output": output,
                        "visibility": self.key_visibility
                        if is_key(t.nodeid)
                        else HIDDEN_VISIBILITY
                        if t.nodeid.split("::", 1)[0] in m.module.hidden
                        else self.visibility,
                    }
                )
        results = {
            "score": _round(self.score),
            "execution_time": round(self.execution_time),
            "output": self.summary(),
            "visibility": self.visibility,
            "stdout_visibility": "hidden",
            "tests": tests,
            "extra_data": {
                "status": self.status,
                "mode": self.mode,
                "max_score": _round(self.max_score),
                "notes": self.notes,
                "boundary": self.boundary,
                "seed_digest": self.seed,
                "modules": {
                    m.module.name: {
                        "number": m.module.number,
                        "score": _round(m.score),
                        "max_score": _round(m.max_score),
                        "passed": m.passed,
                        "total": len(m.tests),
                        "tampered": m.tampered,
                        "inconsistent": m.inconsistent,
                        "survivors": m.survivors,
                        "review": [f.as_dict() for f in m.review],
                        "notes": m.notes,
                        "failing": m.failing,
                    }
                    for m in self.modules
                },
                **extra,
            },
        }
        if self.leaderboard:
            results["leaderboard"] = [dict(entry) for entry in self.leaderboard]
        return results


_EXCEPTION_LINE = re.compile(r"^(E\s+)?[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b.*")


def headline(message: str, width: int = 160) -> str:
    """The line of a failure that names the exception (else its last line), for a one-line summary."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line) and not line.startswith(("Traceback", "During handling")):
            return line.removeprefix("E").strip()[:width]
    return lines[-1][:width] if lines else ""


def _round(value: Fraction) -> float | int:
    return value.numerator if value.denominator == 1 else round(float(value), 4)


def _num(value: Fraction) -> str:
    return f"{float(value):.2f}".rstrip("0").rstrip(".") if value.denominator != 1 else str(value.numerator)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it: never half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_results(grade: Grade, out: Path) -> None:
    """Write ``results.json`` atomically (a temporary file, then a rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, json.dumps(grade.to_gradescope(), indent=2) + "\n")


def failed_grade(submission: str, status: str, message: str, mode: str = "isolation") -> Grade:
    """A results file for a run the grader could not finish: score 0 and the reason."""
    grade_ = Grade(submission, mode, status=status)
    grade_.notes.append(message)
    return grade_
