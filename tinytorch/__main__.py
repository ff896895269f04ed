"""``python -m tinytorch``: the student CLI, :mod:`tinytorch.course.cli` (the course's door, not the
foundation's: importing ``tinytorch`` never runs this file)."""

import sys

from tinytorch.course.cli import main

sys.exit(main())
