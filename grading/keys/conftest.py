"""The answer keys' fixture: ``answer`` seeds a check's inputs and records its outputs as values.

An answer key (``grading/keys/test_key_<module>.py``, named by the registry's ``key``) is a set of
held-out checks. Each check is a pytest test that takes the ``answer`` fixture, draws its inputs
from ``answer.rng`` (seeded from the grading seed, which is drawn when the grading starts, and the
check's name), calls the module's public functions, and records what they returned with
``answer.record(name=value, ...)``: numpy arrays, numbers, booleans and strings only, written to
``$TINYTORCH_KEY_OUT/<key file>--<check>.npz`` without pickle.

The check passing in pytest means only that it ran. The verdict is the grader's
(``grading/answerkey.py``): it runs the same checks on the reference in a process of its own,
and compares the two sets of values with the tolerance each check declares::

    @pytest.mark.tolerance(rtol=1e-6, atol=0.0, why="float32 rounding of one multiply-add")
    @pytest.mark.covers("test_quantize", "test_round_trip")
    def test_round_trip(answer): ...

``tolerance`` (default: exact) applies to every floating-point output; integer, boolean and
string outputs are always compared exactly, dtype included. ``covers`` names the module's tests
whose credit depends on this check, each pattern a test function or class name (parameters
ignored) or a glob of one (``test_quantize_*``): a test the student's run reports as passed earns
nothing while a check that covers it fails (the module is then flagged as inconsistent). Cover
only the tests that exercise exactly what the check calls, so an honest partial solution keeps
the credit of what it solved.
"""

from __future__ import annotations

import json
import os
import zlib

import numpy as np
import pytest

SEED = "TINYTORCH_KEY_SEED"
OUT = "TINYTORCH_KEY_OUT"
META = "__meta__"  # the reference run's record of tolerances and covers (one JSON string)


def pytest_configure(config):
    config.addinivalue_line("markers", "tolerance(rtol, atol, why): how close a float output must be")
    config.addinivalue_line(
        "markers", "covers(*patterns): the module's tests whose credit this check decides"
    )


class Answer:
    """One check's seeded generator and its record of outputs."""

    def __init__(self, name: str, seed: int, out: str, meta: dict) -> None:
        self.name = name
        self.rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        self.out = out
        self.meta = meta
        self.values: dict[str, np.ndarray] = {}
        self.file = f"{name}.npz"

    def record(self, **values) -> None:
        """Keep each output as an array (numbers, booleans and strings as 0-d arrays)."""
        for key, value in values.items():
            if key in self.values or key == META:
                raise ValueError(f"{self.name}: output {key!r} recorded twice")
            array = np.asarray(value)
            if array.dtype.kind not in "biufcU":
                raise TypeError(f"{self.name}: output {key!r} is {array.dtype}, not numbers or text")
            self.values[key] = array

    @staticmethod
    def raises(func, *args, **kwargs) -> str:
        """The name of the exception ``func(*args, **kwargs)`` raises, or "" when it returns."""
        try:
            func(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the type is the recorded value
            return type(error).__name__
        return ""

    def save(self) -> None:
        os.makedirs(self.out, exist_ok=True)
        path = os.path.join(self.out, self.file)
        arrays = dict(self.values)
        arrays[META] = np.asarray(json.dumps(self.meta))
        tmp = path + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)


@pytest.fixture
def answer(request):
    tolerance = request.node.get_closest_marker("tolerance")
    covers = request.node.get_closest_marker("covers")
    meta = {
        "rtol": float(tolerance.kwargs.get("rtol", 0.0)) if tolerance else 0.0,
        "atol": float(tolerance.kwargs.get("atol", 0.0)) if tolerance else 0.0,
        "why": str(tolerance.kwargs.get("why", "")) if tolerance else "exact",
        "covers": list(covers.args) if covers else [],
    }
    recorder = Answer(request.node.name, int(os.environ.get(SEED, "0")), os.environ.get(OUT, ""), meta)
    recorder.file = f"{request.path.stem}--{request.node.name}.npz"  # checks of two keys may share a name
    yield recorder
    if recorder.out:  # a plain pytest run of the checks (no grader, no folder for values) keeps nothing
        recorder.save()
