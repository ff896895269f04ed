"""Answer keys: held-out checks whose verdict is computed by the grader, not by the student's process.

A module's answer key (the registry's ``key``: ``grading/keys/test_key_<module>.py``, with the
``answer`` fixture of ``grading/keys/conftest.py``) is a set of checks that call the module's
public functions on inputs drawn at grading time from the grading seed and record the outputs as
values (``.npz``, no pickle). The grader runs them twice per submission:

* on the reference, in a process that runs no student code (``reference`` values, with each
  check's tolerance and the tests it ``covers``);
* on the student's code, in the same sandboxed process as the module's tests.

Then :func:`compare`, here in the trusted process, decides each check: the same outputs, the same
shapes, integer/boolean/text outputs equal (dtype included), floating-point outputs within the
check's ``rtol``/``atol`` (``|student - reference| <= atol + rtol * |reference|``, NaN where the
reference has NaN). What the student's process reports about a check (that it "passed") only
says that it ran; only the values count.

Files written by the student's process are read with :func:`load` (no symbolic links, a size
limit per file and per member, ``allow_pickle=False``).
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SEED_ENV = "TINYTORCH_KEY_SEED"
OUT_ENV = "TINYTORCH_KEY_OUT"
META = "__meta__"
MAX_FILE_BYTES = 64 * 1024 * 1024  # one check's outputs as written
MAX_VALUE_BYTES = 256 * 1024 * 1024  # one check's outputs unpacked


@dataclass
class Reference:
    """One check's reference outputs, its tolerance and the tests it covers."""

    values: dict[str, np.ndarray]
    rtol: float = 0.0
    atol: float = 0.0
    why: str = "exact"
    covers: list[str] = field(default_factory=list)
    name: str = ""  # the check's name
    units: frozenset = frozenset()  # the kata functions the check calls on the reference (traced)


class KeyFileError(ValueError):
    """A key file that is missing, not a regular file, too large or not values."""


def load(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` written by a check, read safely (the writer is not trusted)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise KeyFileError(f"no values were written ({error.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError("the values file is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise KeyFileError(f"the values file is larger than {MAX_FILE_BYTES // 2**20} MB")
        try:
            with zipfile.ZipFile(f) as archive:
                if sum(m.file_size for m in archive.infolist()) > MAX_VALUE_BYTES:
                    raise KeyFileError(f"the values unpack to more than {MAX_VALUE_BYTES // 2**20} MB")
            f.seek(0)
            with np.load(f, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except KeyFileError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever is wrong with the file, it is not values
            raise KeyFileError(f"the values file is unreadable: {type(error).__name__}: {error}") from None


def values_file(out: Path, nodeid: str) -> Path:
    """Where a check (``keys/<file>.py::<check>``) writes its values under ``out``."""
    file, name = nodeid.split("::", 1)
    return Path(out) / f"{Path(file).stem}--{name}.npz"


def load_reference(path: Path) -> Reference:
    values = load(path)
    meta = json.loads(str(values.pop(META, np.asarray("{}"))))
    return Reference(
        values,
        rtol=float(meta.get("rtol", 0.0)),
        atol=float(meta.get("atol", 0.0)),
        why=str(meta.get("why", "exact")),
        covers=[str(c) for c in meta.get("covers", [])],
        name=Path(path).stem.split("--", 1)[-1],
    )


def compare(reference: Reference, student: dict[str, np.ndarray]) -> str:
    """ "" when the student's outputs match the reference's, else what differs (one line per output)."""
    problems = []
    for name, want in reference.values.items():
        if name not in student:
            problems.append(f"{name}: not recorded")
            continue
        got = student[name]
        if got.shape != want.shape:
            problems.append(f"{name}: shape {got.shape}, the reference's is {want.shape}")
            continue
        if want.dtype.kind in "biuU" or got.dtype.kind not in "biufc":
            if got.dtype != want.dtype:
                problems.append(f"{name}: dtype {got.dtype}, the reference's is {want.dtype}")
            elif not np.array_equal(got, want):
                wrong = int(np.count_nonzero(got != want))
                problems.append(f"{name}: {wrong} of {want.size} values differ from the reference's (exact)")
            continue
        got64, want64 = got.astype(np.complex128), want.astype(np.complex128)
        nan_want, nan_got = np.isnan(want64), np.isnan(got64)
        bad = nan_want != nan_got
        close = np.abs(got64 - want64) <= reference.atol + reference.rtol * np.abs(want64)
        same_inf = (got64 == want64) & np.isinf(want64)
        bad |= ~nan_want & ~(close | same_inf)
        if bad.any():
            diff = np.abs(got64 - want64)[~nan_want & ~nan_got]
            worst = f", largest difference {float(np.nanmax(diff)):.3g}" if diff.size else ""
            problems.append(
                f"{name}: {int(bad.sum())} of {want.size} values differ from the reference's{worst} "
                f"(allowed: {reference.atol:g} + {reference.rtol:g}·|reference|; {reference.why})"
            )
    return "\n".join(problems)


def run(key_file: Path, impl: str, out: Path, seed: int, root: Path) -> dict[str, str]:
    """Run one answer key with pytest in a subprocess on ``impl``; each check's pytest outcome.

    For instructors and key authors (``python -m grading.answerkey``), not for grading: the grader
    runs keys inside its sandbox (grading/autograde.py).
    """
    import subprocess
    import sys
    import tempfile
    import xml.etree.ElementTree as ET

    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        env = {**os.environ, "TINYTORCH_IMPL": impl, SEED_ENV: str(seed), OUT_ENV: str(out)}
        env.setdefault("HYPOTHESIS_PROFILE", "ci")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--rootdir",
                str(root),
                f"--junitxml={junit}",
                str(key_file),
            ],
            env=env,
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        outcomes = {}
        for case in ET.parse(junit).getroot().iter("testcase"):
            failed = case.find("failure") is not None or case.find("error") is not None
            outcomes[case.get("name", "")] = "failed" if failed else "passed"
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """``python -m grading.answerkey <module> [--impl katas] [--seed N]``: each check's verdict."""
    import argparse
    import tempfile

    from tinytorch.course import registry

    parser = argparse.ArgumentParser(prog="python -m grading.answerkey", description=main.__doc__)
    parser.add_argument("module")
    parser.add_argument("--impl", default="katas", help="the implementation to judge (default: katas)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    module = registry.get(args.module)
    root = registry.repo_root()
    if not module.key:
        print(f"module {module.name} has no answer key in the registry")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        ref_out, student_out = Path(tmp) / "reference", Path(tmp) / "student"
        ref = run(root / module.key, "solutions", ref_out, args.seed, root)
        student = run(root / module.key, args.impl, student_out, args.seed, root)
        wrong = 0
        for name, outcome in ref.items():
            if outcome != "passed":
                print(f"{name}: the reference itself fails this check")
                wrong += 1
                continue
            if student.get(name) != "passed":
                verdict = "failed (raised)"
            else:
                file = f"{Path(module.key).stem}--{name}.npz"
                problem = compare(load_reference(ref_out / file), load(student_out / file))
                verdict = "failed\n    " + problem.replace("\n", "\n    ") if problem else "passed"
            wrong += verdict != "passed"
            print(f"{name}: {verdict}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
