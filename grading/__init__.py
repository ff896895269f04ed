"""Instructor tools: the integrity checks (``python -m grading.integrity unsolved|parity``).

They read the one registry (``tinytorch/modules.toml``) and check every *ready* module.
"""
