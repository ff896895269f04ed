"""The machinery that runs the course, kept apart from the foundation a student reads.

- ``registry.py`` and ``modules.toml``: the one registry (numbers, names, markers, points, hints).
- The ``tinytorch`` command: ``cli.py`` (parser, dispatch, ``list``, ``bench``, ``submit``),
  ``board.py`` (``status``, ``test``, ``watch``), ``hints.py`` (``hint``), ``usage.py`` (exit codes,
  what it accepts).
- Each module's tests in a child of its own, read test by test: ``runner.py`` (start, bound,
  supervise, rerun), ``forkserver.py`` (warm children), ``pytest_plugin.py`` (the child's side),
  ``reports.py`` (what a child leaves behind), ``results.py`` (each test's outcome and kind of
  failure), ``summary.py`` (a failure cut for a terminal), ``needs.py`` (what a module needs of
  earlier ones).
- ``leaderboard/``: the TinyMLPerf board (module 20's entries, their checks, the stored board, its
  pages and commands).

It may import the foundation and the switch ``tinytorch.perf``; the foundation never imports it.
Importing ``tinytorch.course`` loads nothing: each part is imported by name.
"""
