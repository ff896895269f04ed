"""The machinery that runs the course, kept apart from the foundation a student reads.

- ``registry.py`` and ``modules.toml``: the one registry (numbers, names, markers, points, hints).
- ``cli.py``: the ``tinytorch`` command (status, test, hint, watch, list, bench, submit, leaderboard).
- ``runner.py``, ``pytest_plugin.py``, ``forkserver.py``: each module's tests in a child of its own,
  read test by test.
- ``leaderboard/``: the TinyMLPerf board (module 20's entries, their checks, the stored board).

It may import the foundation and the switch ``tinytorch.perf``; the foundation never imports it.
Importing ``tinytorch.course`` loads nothing: each part is imported by name.
"""
