"""The Gradescope autograder: ``python -m grading gradescope autograder.zip``.

Gradescope wants a zip with ``setup.sh`` and ``run_autograder`` at its top. It unpacks the zip
into ``/autograder/source``, runs ``setup.sh`` there once when it builds the image, and for every
submission puts the student's files in ``/autograder/submission``, runs ``run_autograder`` and
reads ``/autograder/results/results.json``.

The zip holds this repository as git sees it (tracked files and new ones not ignored: the tests,
the reference solutions, the grader, the package; not ``.ci/`` and ``.github/``) plus the two
scripts from ``grading/classroom/gradescope/``. ``setup.sh`` installs the package into ``/autograder/venv``;
``run_autograder`` calls ``python -m grading grade /autograder/submission --out
/autograder/results/results.json``. Both honour ``AUTOGRADER_ROOT`` (default ``/autograder``) and
``run_autograder`` also ``AUTOGRADER_PYTHON``, so the pair can be tried in a scratch folder laid
out as Gradescope lays it out.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

from grading.release import source_files
from tinytorch.course import registry

SCRIPTS = Path(__file__).resolve().parent / "classroom" / "gradescope"
SCRIPT_NAMES = ("setup.sh", "run_autograder")
LEFT_OUT = (".ci/", ".github/")


def build_zip(dest: Path, root: Path | None = None) -> list[str]:
    """Write the autograder zip to ``dest``; the names it holds."""
    root = (root or registry.repo_root()).resolve()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    names = []
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in SCRIPT_NAMES:
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o100755 << 16  # executable, as Gradescope runs them
            archive.writestr(info, (SCRIPTS / name).read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
            names.append(name)
        for path in source_files(root):
            if path.startswith(LEFT_OUT) or path in SCRIPT_NAMES:
                continue
            archive.write(root / path, path)
            names.append(path)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grading gradescope",
        description="Build the Gradescope autograder zip (setup.sh, run_autograder and this repository).",
    )
    parser.add_argument("dest", type=Path, help="the zip to write, e.g. autograder.zip")
    args = parser.parse_args(argv)
    names = build_zip(args.dest)
    files = len(names) - len(SCRIPT_NAMES)
    print(f"gradescope: {args.dest} holds setup.sh, run_autograder and {files} files of this repository")
    print("upload it as the assignment's autograder (Configure Autograder -> Zip file upload)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
