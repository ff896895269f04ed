"""The grader's settings: the registry's ``[grading]`` table, and the points it gives each test.

``load_settings`` reads and checks the table (``tinytorch/course/modules.toml``; the command line
overrides a few values). ``shares`` splits a ready module's points over its tests: the answer key's
checks (test ids under ``keys/``) share ``key_share`` of them evenly, the tests the rest in
proportion to their weights (1 unless ``[grading.weights]`` gives a substring of the id another).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path

from tinytorch.course import registry


@dataclass(frozen=True)
class Settings:
    """The registry's ``[grading]`` table, with command-line overrides."""

    timeout: float = 60.0  # seconds per test
    module_timeout: float = 300.0  # seconds for all of one module's tests (collection included)
    total_timeout: float = 1200.0  # seconds for the whole submission (every module)
    collect_timeout: float = 120.0  # seconds to import the module and collect its tests
    memory_mb: int = 4096  # RLIMIT_AS of a child process
    visibility: str = "visible"  # Gradescope visibility of every test
    weights: dict = field(default_factory=dict)  # {module: {substring of a test id: weight}}
    key_share: float = 0.2  # share of a module's points earned by its answer key (registry `key`)
    key_visibility: str = "after_published"  # Gradescope visibility of the answer-key checks
    released: list = field(default_factory=list)  # modules whose reference may serve under another
    sandbox_user: str = "auto"  # as root: the children's user ("auto", a name, a uid, or "none")
    landlock: bool = True  # confine the children with Landlock where the kernel offers it
    max_processes: int = 256  # RLIMIT_NPROC of the sandbox user
    inconsistency_gap: float = 0.5  # tests' pass share above the key's that withholds the tests' credit
    leaderboard: bool = True  # run module 20's competition for Gradescope's leaderboard (display only)
    leaderboard_timeout: float = 180.0  # seconds the competition may take (from the total budget)


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read ``[grading]`` from the registry file (the one ``tinytorch.course.registry`` reads)."""
    path = Path(path or os.environ.get("TINYTORCH_REGISTRY") or registry.REGISTRY_FILE)
    with open(path, "rb") as f:
        table = tomllib.load(f).get("grading", {})
    known = {f.name for f in fields(Settings)}
    unknown = set(table) - known
    if unknown:
        raise ValueError(f"{path}: unknown [grading] setting(s) {sorted(unknown)}; valid: {sorted(known)}")
    weights = table.get("weights", {})
    for module, patterns in weights.items():
        if module not in registry.names(path):
            raise ValueError(f"{path}: [grading.weights] names unknown module {module!r}")
        for pattern, weight in patterns.items():
            if not isinstance(weight, int | float) or weight <= 0:
                raise ValueError(f"{path}: weight of {module}.{pattern!r} must be a positive number")
    values = {k: v for k, v in table.items() if k != "weights"}
    if not 0 <= float(values.get("key_share", 0.2)) < 1:
        raise ValueError(f"{path}: key_share must be at least 0 and below 1")
    modules = {m.name: m for m in registry.modules(path)} | {str(m.number): m for m in registry.modules(path)}
    released = values.get("released", [])
    unknown = [str(r) for r in released if str(r) not in modules]
    if unknown:
        raise ValueError(f"{path}: released names unknown module(s) {unknown}")
    values["released"] = [modules[str(r)].name for r in released]
    values["sandbox_user"] = str(values.get("sandbox_user", "auto"))
    if not isinstance(values.get("leaderboard", True), bool):
        raise ValueError(f"{path}: leaderboard must be true or false")
    budget = values.get("leaderboard_timeout", 180.0)
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget <= 3600:
        raise ValueError(f"{path}: leaderboard_timeout must be a number of seconds in (0, 3600]")
    return Settings(weights=weights, **values)


def test_weight(settings: Settings, module: str, nodeid: str) -> Fraction:
    """A test's weight: the first ``[grading.weights.<module>]`` pattern in its id, else 1."""
    for pattern, weight in settings.weights.get(module, {}).items():
        if pattern in nodeid:
            return Fraction(weight).limit_denominator(10**6)
    return Fraction(1)


def is_key(nodeid: str) -> bool:
    """Whether a test id is a check of an answer key (staged under ``keys/``)."""
    return nodeid.startswith("keys/")


def shares(settings: Settings, module: registry.Module, nodeids: list[str]) -> dict[str, Fraction]:
    """Each test's share of the module's points: the answer key's checks share ``key_share`` of
    them evenly, the tests the rest in proportion to their weights."""
    keys = [n for n in nodeids if is_key(n)]
    tests = [n for n in nodeids if not is_key(n)]
    points = Fraction(module.points)
    key_points = (
        points * Fraction(settings.key_share).limit_denominator(1000) if keys and tests else Fraction(0)
    )
    weights = {n: test_weight(settings, module.name, n) for n in tests}
    total = sum(weights.values())
    result = {n: (points - key_points) * w / total for n, w in weights.items()} if total else {}
    result.update({n: (key_points if tests else points) / len(keys) for n in keys})
    return result
