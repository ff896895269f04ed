"""A tiny fake repository for the machinery tests.

The switch, the CLI and the integrity checks are tested on a throwaway checkout with its own
registry, so the tests are fast (one-function katas) and do not depend on the real modules:

* ``alpha`` (15, ready): ``double(x)`` in ``core.py``; three tests, two hints;
* ``beta`` (16, ready): ``quadruple(x)``, which reaches ``alpha`` through ``tinytorch.perf.alpha``;
* ``gamma`` (17, planned): announced, no files.

``TINYTORCH_ROOT`` and ``TINYTORCH_REGISTRY`` point every tool at it; the fake repository's
``tests/conftest.py`` is a copy of the real one, so the markers and profiles are tested too.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest

REAL_ROOT = Path(__file__).resolve().parents[2]

REGISTRY = """\
[[module]]
number = 15
name = "alpha"
title = "Alpha: doubling"
kata = "katas/alpha"
solution = "solutions/alpha"
tests = "tests/test_alpha.py"
points = 10
status = "ready"

[[module.hint]]
tests = "negative"
text = "Negative numbers double too."

[[module.hint]]
tests = ""
text = "Return 2 * x."

[[module]]
number = 16
name = "beta"
title = "Beta: quadrupling"
kata = "katas/beta"
solution = "solutions/beta"
tests = "tests/test_beta.py"
points = 20
status = "ready"

[[module]]
number = 17
name = "gamma"
title = "Gamma: not built yet"
kata = "katas/gamma"
solution = "solutions/gamma"
tests = "tests/test_gamma.py"
points = 30
status = "planned"
"""

ALPHA_STUB = '''\
"""Alpha: doubling."""


def double(x: int, factor: int = 2) -> int:
    """Return factor * x."""
    raise NotImplementedError("double (module 15, alpha): implement it in katas/alpha/core.py")


class Doubler:
    """Doubles."""

    def apply(self, x: int) -> int:
        raise NotImplementedError("Doubler.apply (module 15, alpha): implement it in katas/alpha/core.py")
'''

ALPHA_SOLUTION = '''\
"""Alpha: doubling."""


def double(x: int, factor: int = 2) -> int:
    """Return factor * x."""
    return factor * x


class Doubler:
    """Doubles."""

    def apply(self, x: int) -> int:
        return double(x)
'''

# A wrong kata that raises inside the kata file for negative input.
ALPHA_BUGGY = '''\
"""Alpha: doubling."""


def double(x: int, factor: int = 2) -> int:
    """Return factor * x."""
    if x < 0:
        return [][0]
    return factor * x


class Doubler:
    """Doubles."""

    def apply(self, x: int) -> int:
        return double(x)
'''

ALPHA_INIT = '''\
"""Alpha."""

from .core import Doubler, double

__all__ = ["Doubler", "double"]
'''

ALPHA_TESTS = """\
from tinytorch.perf.alpha import Doubler, double


def test_double():
    assert double(2) == 4


def test_double_negative():
    assert double(-3) == -6


class TestDoubler:
    def test_apply(self):
        assert Doubler().apply(5) == 10
"""

BETA_STUB = '''\
"""Beta: quadrupling, built on alpha."""

from tinytorch.perf.alpha import double  # noqa: F401


def quadruple(x: int) -> int:
    raise NotImplementedError("quadruple (module 16, beta): implement it in katas/beta/__init__.py")
'''

BETA_SOLUTION = '''\
"""Beta: quadrupling, built on alpha."""

from tinytorch.perf.alpha import double


def quadruple(x: int) -> int:
    return double(double(x))
'''

BETA_TESTS = """\
import tinytorch.perf.beta as beta


def test_quadruple():
    assert beta.quadruple(1) == 4
"""


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def make_repo(root: Path) -> Path:
    """Write the fake repository under ``root`` and return it."""
    write(
        root,
        {
            "modules.toml": REGISTRY,
            "pytest.ini": "[pytest]\nstrict_markers = true\n",
            "katas/alpha/__init__.py": ALPHA_INIT,
            "katas/alpha/core.py": ALPHA_STUB,
            "solutions/alpha/__init__.py": ALPHA_INIT,
            "solutions/alpha/core.py": ALPHA_SOLUTION,
            "katas/beta/__init__.py": BETA_STUB,
            "solutions/beta/__init__.py": BETA_SOLUTION,
            "tests/test_alpha.py": ALPHA_TESTS,
            "tests/test_beta.py": BETA_TESTS,
        },
    )
    shutil.copy(REAL_ROOT / "tests" / "conftest.py", root / "tests" / "conftest.py")
    return root


# A fake module 20 with the public API the competition's entry point calls (grading/competition.py):
# build_submission(), TinyMLPerf(warmup, runs, budget), validate(bench), compute_score(bench) -> .score,
# .counted. Its figures are fixed: speedups 2, 4, 8, whose geometric mean is 4.
BENCH_REGISTRY = """
[[module]]
number = 20
name = "benchmarking"
title = "Benchmarking: a fake competition"
kata = "katas/benchmarking"
solution = "solutions/benchmarking"
tests = "tests/test_benchmarking.py"
points = 40
status = "ready"
"""

BENCH_SOLUTION = '''\
"""A fake module 20: the competition's public API, fixed figures."""

from dataclasses import dataclass

SPEEDUPS = {"MLP_SPRINT": 2.0, "CNN_MARATHON": 4.0, "TRANSFORMER_DECATHLON": 8.0}


@dataclass
class ScoreCard:
    score: float
    counted: dict


class TinyMLPerf:
    def __init__(self, warmup=None, runs=None, budget=10.0):
        self.warmup, self.runs, self.budget = warmup, runs, budget


class Submission:
    def validate(self, bench):
        return []

    def compute_score(self, bench):
        return ScoreCard(score=4.0, counted=dict(SPEEDUPS))


def build_submission():
    return Submission()
'''

BENCH_TESTS = """\
from tinytorch.perf.benchmarking import TinyMLPerf, build_submission


def test_the_score_is_positive():
    assert build_submission().compute_score(TinyMLPerf()).score > 0


def test_it_validates():
    assert build_submission().validate(TinyMLPerf()) == []
"""


def add_bench_module(root: Path) -> Path:
    """Add the fake module 20 (``benchmarking``: 2 tests, 40 points) to a fake repository."""
    with open(root / "modules.toml", "a", encoding="utf-8") as f:
        f.write(BENCH_REGISTRY)
    (root / "tests" / "test_benchmarking.py").write_text(BENCH_TESTS, encoding="utf-8")
    stub = "def build_submission():\n    raise NotImplementedError('build_submission (module 20)')\n"
    for tree, body in (("katas", stub), ("solutions", BENCH_SOLUTION)):
        (root / tree / "benchmarking").mkdir()
        (root / tree / "benchmarking" / "__init__.py").write_text(body, encoding="utf-8")
    return root


def forget_fake_modules() -> None:
    """Drop the fake modules from ``sys.modules``: the switch caches what it imported."""
    for name in list(sys.modules):
        if name.split(".")[:3] in (["tinytorch", "perf", m] for m in ("alpha", "beta", "gamma")):
            del sys.modules[name]


@pytest.fixture
def fake_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The fake repository, with TINYTORCH_ROOT and TINYTORCH_REGISTRY pointing at it."""
    root = make_repo(tmp_path / "repo")
    monkeypatch.setenv("TINYTORCH_ROOT", str(root))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(root / "modules.toml"))
    monkeypatch.delenv("TINYTORCH_IMPL", raising=False)
    forget_fake_modules()
    yield root
    forget_fake_modules()


@pytest.fixture(autouse=True)
def ctrl_c_is_not_ignored():
    """Ctrl-C behaves as in a terminal, even when the suite itself was started with SIGINT ignored
    (a shell's background job `pytest &` is): the Ctrl-C tests send SIGINT to this process and to
    children, which inherit an ignored SIGINT but not a handler."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(params=["forked", "subprocess"])
def start_children(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the runner and the grader start their children: forked from the fork server
    (tinytorch/course/forkserver.py, the default on Linux) and as plain subprocesses (elsewhere)."""
    if request.param == "subprocess":
        monkeypatch.setenv("TINYTORCH_FORKSERVER", "0")
    elif not sys.platform.startswith("linux"):
        pytest.skip("the fork server runs on Linux only")
    return request.param
