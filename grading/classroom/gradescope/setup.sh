#!/usr/bin/env bash
# Gradescope runs this once, as root, in /autograder/source, when it builds the autograder image.
# It installs this repository (the instructor's: tests, reference solutions, grader) and its
# test dependencies into a virtualenv; run_autograder then grades each submission with it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import sys; assert sys.version_info >= (3, 11)"; then
    apt-get update -q
    apt-get install -y -q python3 python3-venv python3-pip
fi
python3 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install -q --upgrade pip
/autograder/venv/bin/python -m pip install -q -e ".[test]"
/autograder/venv/bin/python -m grading prepare  # the grading plan, once: no submission pays for it
