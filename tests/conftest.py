"""Suite-wide pytest setup: markers from the registry and the hypothesis profiles.

Markers. Every module in ``tinytorch/course/modules.toml`` gets a marker named after it, applied here to
each test collected from that module's registry ``tests`` file, so ``pytest -m profiling`` runs
module 15 and test files never set their own marker. Tests under ``tests/foundation/`` get
``foundation`` and tests under ``tests/machinery/`` get ``machinery``. Markers are strict
(``strict_markers = true`` in pyproject.toml): a typo in a marker is an error, not a silent no-op.

Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``:

* ``dev`` (the default): fewer examples, no deadline; fast enough to run after every edit.
* ``ci`` (tox, CI, grading): derandomized so every run checks the same examples, no deadline (a
  slow CI machine must not fail a correct kata), no example database, and a reproduction blob
  printed with every failure.
"""

from __future__ import annotations

import os
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# `grading` is a top-level folder of the checkout, not an installed package, and `tinytorch` may be
# none either (a bare `pytest` from a python without the venv's editable install): make both
# importable however pytest was started (`pytest`, `python -m pytest`, `coverage run -m pytest`),
# before the first import of either.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tinytorch.course import registry  # noqa: E402 - needs the path above

SUITE_MARKERS = {
    "foundation": "the finished foundation (tinytorch/, course modules 1-14)",
    "machinery": "the switch, the registry, the CLI and the integrity checks",
}

PROFILE_ENV = "HYPOTHESIS_PROFILE"
_default = settings.get_profile("default")
settings.register_profile(
    "ci", _default, max_examples=100, derandomize=True, deadline=None, database=None, print_blob=True
)
settings.register_profile("dev", _default, max_examples=25, deadline=None)
_profile = os.environ.get(PROFILE_ENV, "dev")
if _profile not in ("ci", "dev"):
    raise pytest.UsageError(f"{PROFILE_ENV}={_profile!r}: unknown hypothesis profile; valid: ci, dev")
settings.load_profile(_profile)


def pytest_configure(config: pytest.Config) -> None:
    for module in registry.modules():
        config.addinivalue_line("markers", f"{module.marker}: module {module.number}, {module.title}")
    for marker, description in SUITE_MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {description}")


def pytest_report_header(config: pytest.Config) -> str:
    impl = os.environ.get("TINYTORCH_IMPL") or "katas (default)"
    return f"tinytorch: TINYTORCH_IMPL={impl}, hypothesis profile {_profile}"


def marker_for(path: Path) -> str | None:
    """The marker of a test file: its module's name, ``foundation``, ``machinery`` or None."""
    try:
        relative = Path(path).resolve().relative_to(ROOT)
    except ValueError:
        return None
    for module in registry.modules():
        if relative == Path(module.tests):
            return module.marker
    if relative.parts[:1] == ("tests",) and len(relative.parts) > 2 and relative.parts[1] in SUITE_MARKERS:
        return relative.parts[1]
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markers: dict[Path, str | None] = {}
    for item in items:
        if item.path not in markers:
            markers[item.path] = marker_for(item.path)
        if markers[item.path]:
            item.add_marker(markers[item.path])


# -- a clean profiling state for every test -----------------------------------------------------
# A half-done MemoryProfiler (a kata whose stop() still raises) leaves tracemalloc running and its
# watermark in module 15's list of open profilers. Tracing slows every later test several times
# over and stale watermarks distort later profilers, so each test starts with tracing as it was
# when the session began (off, unless Python was started with -X tracemalloc) and no open profiler.
_TRACING_AT_START = tracemalloc.is_tracing()


@pytest.fixture(autouse=True)
def clean_profiling_state() -> Iterator[None]:
    if tracemalloc.is_tracing() and not _TRACING_AT_START:
        tracemalloc.stop()
    memory = sys.modules.get("tinytorch.perf.profiling.memory")
    open_profilers = getattr(memory, "_open", None)
    if isinstance(open_profilers, list):
        open_profilers.clear()
    yield
