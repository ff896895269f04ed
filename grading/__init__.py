"""The instructor's tools: ``python -m grading <command>`` (``__main__.py`` lists them).

The integrity checks, the gallery of classic mistakes, mutation testing, the autograder and its
sandbox, the student release and the Gradescope zip. They read the one registry
(``tinytorch/course/modules.toml``) and work on every *ready* module. None of it is in a student
release.
"""

from __future__ import annotations

import ast
import threading

_PARSE_LOCK = threading.Lock()


def parse_source(text: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse``, one call at a time in this process.

    The grader parses in two threads at once (the reference's answer keys run in the background
    while the student's modules are staged and reviewed), and CPython 3.11's AST validator keeps
    its recursion counter per interpreter, not per thread: two parses that interleave fail with
    "SystemError: AST constructor recursion depth mismatch". The lock costs nothing otherwise.
    """
    with _PARSE_LOCK:
        return ast.parse(text, filename=filename)
