"""``python -m grading prepare``: the grading plan, computed once (see ``autograde.prepare``)."""

from grading.autograde import prepare_main as main

__all__ = ["main"]
