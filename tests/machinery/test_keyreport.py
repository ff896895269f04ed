"""``python -m grading.keyreport fairness --functions``: one function of the reference stubbed at a time.

The stubbing is tested on a small source with the shapes the reference files have (methods, a
property and its setter, decorated and nested definitions, a one-line ``def``, a docstring alone,
non-ASCII text); the report's exit status on the fake repository of ``conftest.py`` with an answer
key for ``alpha`` whose check takes the credit of an honest test, then with that check narrowed
by ``covers``.
"""

from __future__ import annotations

import ast
import asyncio
import shutil

import pytest
from conftest import ALPHA_SOLUTION, ALPHA_STUB, ALPHA_TESTS, REAL_ROOT, make_repo

from grading import keyreport

SOURCE = '''\
"""A small module with every kind of definition the reference has."""

import functools

SCALE = 3


def plain(x):
    """Times SCALE."""
    return x * SCALE


def decorate(f):
    @functools.wraps(f)
    def wrapper(*args):
        return f(*args) + 1

    return wrapper


@decorate
def decorated(x):
    return x


def one_liner(x): return x - 1  # noqa: E704


def docstring_only():
    """Returns None."""


class Box:
    """A box."""

    def __init__(self, v):
        self._v = v

    @property
    def value(self):
        """The value."""
        return self._v

    @value.setter
    def value(self, v):
        self._v = v

    @staticmethod
    def make(v):
        return 2 * v

    class Inner:
        def name(self):
            # a comment, then a line with text outside ASCII
            label = "\u00fcber"
            return label

    def first_is_decorated(self):
        @decorate
        def helper(x):
            return x

        return helper(1)


async def later():
    return 5
'''


def _box(namespace: dict, value: int = 0):
    """A Box made without its __init__ (so each call below runs one function of the module)."""
    box = namespace["Box"].__new__(namespace["Box"])
    box._v = value
    return box


def _set(box, value):
    box.value = value
    return box._v


# each function: how to call it (on a namespace holding the module) and what the reference returns
CALLS = {
    "plain": (lambda ns: ns["plain"](2), 6),
    "decorated": (lambda ns: ns["decorated"](4), 5),
    "one_liner": (lambda ns: ns["one_liner"](3), 2),
    "docstring_only": (lambda ns: ns["docstring_only"](), None),
    "Box.__init__": (lambda ns: ns["Box"](1)._v, 1),
    "Box.value": (lambda ns: _box(ns, 1).value, 1),
    "Box.value.setter": (lambda ns: _set(_box(ns), 7), 7),
    "Box.make": (lambda ns: ns["Box"].make(2), 4),
    "Box.Inner.name": (lambda ns: ns["Box"].Inner().name(), "\u00fcber"),
    "Box.first_is_decorated": (lambda ns: _box(ns).first_is_decorated(), 2),
    "later": (lambda ns: asyncio.run(ns["later"]()), 5),
}
IMPORT_TIME = {"decorate"}  # called while the module is imported: its stub stops the import


def load(source: str) -> dict:
    namespace = {"__name__": "small"}
    exec(compile(source, "small.py", "exec"), namespace)
    return namespace


def test_every_function_and_method_is_found_but_none_inside_a_function():
    names = [f.name for f in keyreport.functions(SOURCE)]
    assert sorted(names) == sorted([*CALLS, *IMPORT_TIME])
    namespace = load(SOURCE)
    assert {name: call(namespace) for name, (call, _) in CALLS.items()} == {
        name: value for name, (_, value) in CALLS.items()
    }


@pytest.mark.parametrize("name", sorted([*CALLS, *IMPORT_TIME]))
def test_the_stub_raises_and_the_rest_of_the_module_is_intact(name):
    function = next(f for f in keyreport.functions(SOURCE) if f.name == name)
    stubbed = keyreport.stub_function(SOURCE, function, f"{name}: not written yet")
    if name in IMPORT_TIME:
        with pytest.raises(NotImplementedError, match="decorate: not written yet"):
            load(stubbed)
        return
    namespace = load(stubbed)
    call, _ = CALLS[name]
    with pytest.raises(NotImplementedError, match=f"^{name}: not written yet$"):
        call(namespace)
    for other, (call, value) in CALLS.items():
        if other != name:
            assert call(namespace) == value, other
    # the docstrings are kept, and every line outside the function's body is the same
    assert namespace["plain"].__doc__ == "Times SCALE."
    assert namespace["Box"].value.__doc__ == "The value."
    assert namespace["docstring_only"].__doc__ == "Returns None."
    node = next(
        n
        for n in ast.walk(ast.parse(SOURCE))
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.lineno == function.lineno
    )
    before, after = SOURCE.splitlines(), stubbed.splitlines()
    tail = len(before) - node.end_lineno
    assert after[: node.lineno - 1] == before[: node.lineno - 1]
    assert after[len(after) - tail :] == before[len(before) - tail :]


def test_a_second_definition_of_a_name_is_told_apart():
    source = "if True:\n    def f():\n        return 1\nelse:\n    def f():\n        return 2\n"
    assert [f.name for f in keyreport.functions(source)] == ["f", "f#2"]
    stubbed = keyreport.stub_function(source, keyreport.functions(source)[1], "no")
    assert stubbed == source.replace("return 2", "raise NotImplementedError('no')")


REFERENCE = '''\
def check(x):
    if not isinstance(x, int):
        raise TypeError("x must be an int")


def triple(x):
    """3 x."""
    check(x)
    return 3 * x


def given(x):
    return x
'''
KATA = '''\
def check(x):
    raise NotImplementedError("check")


def triple(x):
    """3 x."""
    check(x)
    raise NotImplementedError("triple")


def given(x):
    return x
'''


def test_a_kata_stub_that_does_more_than_raise_stands_in_for_the_function(tmp_path):
    found = {f.name: f for f in keyreport.functions(REFERENCE)}
    text = keyreport.kata_stub(REFERENCE, KATA, found["triple"])
    assert text == REFERENCE.replace("    return 3 * x\n", '    raise NotImplementedError("triple")\n')
    assert keyreport.kata_stub(REFERENCE, KATA, found["check"]) is None  # a bare raise: stub_function's
    assert keyreport.kata_stub(REFERENCE, KATA, found["given"]) is None  # the kata gives it whole
    for tree, text in (("solutions", REFERENCE), ("katas", KATA)):
        (tmp_path / tree).mkdir()
        (tmp_path / tree / "small.py").write_text(text, encoding="utf-8")
    variants = keyreport.variants(tmp_path / "solutions", "small", tmp_path / "katas")
    assert [(v.function.name, v.kind) for v in variants] == [
        ("check", "raise"),
        ("triple", "raise"),
        ("triple", "kata"),
        ("given", "raise"),
    ]


# --------------------------------------------------------------------------- the report's exit status

# double() refuses what is not an int, and the kata's stub gives that check: a student who has not
# written double yet passes test_double_refuses_text, honestly
SOLUTION = ALPHA_SOLUTION.replace(
    '    """Return factor * x."""\n',
    '    """Return factor * x."""\n    if not isinstance(x, int):\n        raise TypeError("not an int")\n',
)
STUB = ALPHA_STUB.replace(
    '    """Return factor * x."""\n',
    '    """Return factor * x."""\n    if not isinstance(x, int):\n        raise TypeError("not an int")\n',
)
TESTS = (
    "import pytest\n"
    + ALPHA_TESTS
    + """

def test_double_refuses_text():
    with pytest.raises(TypeError):
        double("two")
"""
)
KEY = """\
import numpy as np
import pytest


@pytest.mark.covers({covers})
def test_doubled(answer):
    from tinytorch.perf.alpha import double

    xs = answer.rng.integers(-(10**6), 10**6, size=6)
    answer.record(doubled=np.array([double(int(x)) for x in xs], dtype=np.int64))
"""


def test_the_report_fails_while_a_check_takes_an_honest_tests_credit(tmp_path, monkeypatch, capsys):
    root = make_repo(tmp_path / "repo")
    (root / "solutions" / "alpha" / "core.py").write_text(SOLUTION, encoding="utf-8")
    (root / "katas" / "alpha" / "core.py").write_text(STUB, encoding="utf-8")
    (root / "tests" / "test_alpha.py").write_text(TESTS, encoding="utf-8")
    text = (root / "modules.toml").read_text(encoding="utf-8")
    text = text.replace('status = "ready"', 'status = "ready"\nkey = "grading/keys/test_key_alpha.py"', 1)
    (root / "modules.toml").write_text(text, encoding="utf-8")
    (root / "grading" / "keys").mkdir(parents=True)
    shutil.copy(REAL_ROOT / "grading" / "keys" / "conftest.py", root / "grading" / "keys" / "conftest.py")
    key = root / "grading" / "keys" / "test_key_alpha.py"
    monkeypatch.setenv("TINYTORCH_ROOT", str(root))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(root / "modules.toml"))
    monkeypatch.setenv("TINYTORCH_GRADING_SEED", "7")
    monkeypatch.delenv("TINYTORCH_IMPL", raising=False)

    # the check calls double only, as test_double_refuses_text does, and names no test: it decides
    # that test, which passes on the kata's stub of double while the check fails
    key.write_text(KEY.format(covers=""), encoding="utf-8")
    assert keyreport.main(["fairness", "--functions", "alpha", "-k", "double"]) == 1
    out = capsys.readouterr().out
    assert "core.py:4 double unsolved" in out  # its body raising: the refusal test fails too, fairly
    assert "core.py:4 double (kata's stub) unsolved" in out and "test_double_refuses_text: no credit" in out
    assert "alpha: 1 function(s) stubbed, 1 as the kata's stub, 0 skipped, 1 wrong decision(s)" in out

    # narrowed to the tests that need a value of double, it takes nothing
    key.write_text(KEY.format(covers='"test_double", "test_double_negative"'), encoding="utf-8")
    assert keyreport.main(["fairness", "--functions", "alpha", "-k", "double"]) == 0
    assert "1 as the kata's stub, 0 skipped, 0 wrong decision(s)" in capsys.readouterr().out
