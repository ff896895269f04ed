"""The integrity checks catch what they exist to catch (on the fake repository)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ALPHA_SOLUTION, ALPHA_STUB

from grading import integrity


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


# --------------------------------------------------------------------------- unsolved


def test_unsolved_accepts_stubs_that_fail_every_test(fake_repo: Path, capsys: pytest.CaptureFixture[str]):
    assert integrity.main(["unsolved"]) == 0
    assert "unsolved: every test fails on the untouched stubs (alpha, beta)" in capsys.readouterr().out


def test_unsolved_catches_a_passing_test_a_skip_and_a_collection_error(fake_repo: Path, capsys):
    stub = fake_repo / "katas" / "alpha" / "core.py"
    # a stub that already solves Doubler.apply: its test cannot tell solved from unsolved
    edit(
        stub,
        'raise NotImplementedError("Doubler.apply',
        'return 2 * x\n        raise NotImplementedError("Doubler.apply',
    )
    tests = fake_repo / "tests" / "test_alpha.py"
    tests.write_text(
        tests.read_text() + "\n\nimport pytest\n\n\ndef test_hidden():\n    pytest.skip('no code yet')\n"
    )
    (fake_repo / "katas" / "beta" / "__init__.py").write_text("def quadruple(x:\n")  # a syntax error
    assert integrity.main(["unsolved"]) == 1
    out = capsys.readouterr().out
    assert "tests/test_alpha.py::TestDoubler::test_apply: PASSED on the untouched stubs" in out
    assert "tests/test_alpha.py::test_hidden: SKIPPED on the untouched stubs: no code yet" in out
    assert "tests/test_beta.py: collection error on the stubs: SyntaxError" in out
    assert "test_double:" not in out and "test_double_negative" not in out  # these fail, as they must
    assert "unsolved: 3 problem(s)" in out


def test_unsolved_catches_a_module_without_tests(fake_repo: Path):
    (fake_repo / "tests" / "test_beta.py").write_text("# nothing yet\n")
    (fake_repo / "tests" / "test_alpha.py").unlink()
    assert integrity.check_unsolved(fake_repo) == [
        "module 15 alpha: no test file tests/test_alpha.py",
        "module 16 beta: no tests collected from tests/test_beta.py",
    ]


# --------------------------------------------------------------------------- parity


def test_parity_accepts_matching_trees(fake_repo: Path, capsys: pytest.CaptureFixture[str]):
    assert integrity.main(["parity"]) == 0
    assert "parity: stubs and solutions agree" in capsys.readouterr().out


def test_parity_catches_a_missing_name_and_a_missing_file(fake_repo: Path):
    edit(
        fake_repo / "solutions" / "alpha" / "core.py",
        "class Doubler:",
        "def halve(x):\n    return x / 2\n\n\nclass Doubler:",
    )
    edit(
        fake_repo / "solutions" / "alpha" / "core.py",
        "    def apply(",
        "    limit = 3\n\n    def reset(self):\n        pass\n\n    def apply(",
    )
    (fake_repo / "solutions" / "alpha" / "extra.py").write_text("")
    (fake_repo / "katas" / "beta" / "notes.py").write_text("")
    problems = integrity.check_parity(fake_repo)
    assert problems == [
        "module 15 alpha: solutions/alpha/extra.py has no stub katas/alpha/extra.py",
        "katas/alpha/core.py: 'halve' is in the solution but missing from the stub",
        "katas/alpha/core.py: class Doubler: 'limit' is in the solution but missing from the stub",
        "katas/alpha/core.py: class Doubler: 'reset' is in the solution but missing from the stub",
        "module 16 beta: katas/beta/notes.py has no solution solutions/beta/notes.py",
    ]


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "factor: int = 2",
            "factor: int = 3",
            "signature of 'double' differs: stub double(x: int, factor: int = 3) -> int, "
            "solution double(x: int, factor: int = 2) -> int",
        ),
        ("x: int, factor", "x: float, factor", "signature of 'double' differs: stub double(x: float"),
        (
            "x: int, factor: int = 2) -> int",
            "x: int, *, factor: int = 2) -> int",
            "stub double(x: int, *, factor: int = 2)",
        ),
        (
            "def apply(self, x: int)",
            "def apply(self, y: int)",
            "signature of 'apply' differs: stub apply(self, y: int)",
        ),
    ],
)
def test_parity_catches_a_signature_mismatch(fake_repo: Path, old: str, new: str, problem: str):
    edit(fake_repo / "katas" / "alpha" / "core.py", old, new)
    problems = integrity.check_parity(fake_repo)
    assert len(problems) == 1 and problem in problems[0], problems


def test_parity_catches_a_name_of_another_kind(fake_repo: Path):
    edit(fake_repo / "katas" / "alpha" / "core.py", "def double(", "double = 2\n\n\ndef _double(")
    problems = integrity.check_parity(fake_repo)
    assert (
        "katas/alpha/__init__.py: 'double' is a value in the stub but a function in the solution" in problems
    )
    assert "katas/alpha/core.py: 'double' is a value in the stub but a function in the solution" in problems


@pytest.mark.parametrize(
    ("message", "missing"),
    [
        ('"double: implement it in katas/alpha/core.py"', "'module 15'"),
        ('"double (module 15, alpha): implement it"', "'katas/alpha/core.py'"),
        ('"(module 15, alpha): implement it in katas/alpha/core.py"', "'double'"),
        ("", "needs a literal message"),
        ('f"{1}"', "needs a literal message"),
    ],
)
def test_parity_catches_a_bad_not_implemented_message(fake_repo: Path, message: str, missing: str):
    good = '"double (module 15, alpha): implement it in katas/alpha/core.py"'
    edit(fake_repo / "katas" / "alpha" / "core.py", good, message)
    problems = integrity.check_parity(fake_repo)
    assert len(problems) == 1, problems
    assert (
        problems[0].startswith("katas/alpha/core.py:6 double: NotImplementedError") and missing in problems[0]
    )


def test_parity_checks_the_qualname_of_methods_and_ignores_other_raises(fake_repo: Path):
    core = fake_repo / "katas" / "alpha" / "core.py"
    edit(core, '"Doubler.apply (module 15', '"apply (module 15')
    edit(
        core,
        '    """Return factor * x."""',
        '    """Return factor * x."""\n    if x is None:\n        raise TypeError("x")',
    )
    edit(core, "class Doubler:", "def bare():\n    raise NotImplementedError\n\n\nclass Doubler:")
    edit(
        fake_repo / "solutions" / "alpha" / "core.py",
        "class Doubler:",
        "def bare():\n    pass\n\n\nclass Doubler:",
    )
    problems = integrity.check_parity(fake_repo)
    assert problems == [
        "katas/alpha/core.py:12 bare: NotImplementedError needs a literal message naming bare, "
        "module and file",
        "katas/alpha/core.py:19 Doubler.apply: NotImplementedError message "
        "'apply (module 15, alpha): implement it in katas/alpha/core.py' does not name 'Doubler.apply'",
    ]


def test_parity_checks_every_name_the_tests_import(fake_repo: Path):
    (fake_repo / "tests" / "test_more.py").write_text(
        "import tinytorch.perf.alpha.core\n"
        "import tinytorch.perf.beta as b\n"
        "from tinytorch.perf import alpha as a\n"
        "from tinytorch.perf.alpha import core, halve\n"
        "from tinytorch.perf.alpha.core import Doubler, triple\n"
        "from tinytorch.perf.alpha.missing import thing\n"
        "from tinytorch.perf.gamma import planned\n"
        "import numpy as np\n\n"
        "def test_x():\n"
        "    b.quadruple, b.quintuple, a.double, a.Doubler.apply, a.nothing, a.Doubler.missing\n"
        "    tinytorch.perf.alpha.core.double, tinytorch.perf.alpha.core.gone, np.zeros\n"
    )
    problems = integrity.check_parity(fake_repo)
    assert problems == [
        "tests/test_more.py:4: imports 'halve' from tinytorch.perf.alpha, which the stub lacks",
        "tests/test_more.py:5: imports 'triple' from tinytorch.perf.alpha.core, which the stub lacks",
        "tests/test_more.py:6: imports 'thing' from tinytorch.perf.alpha.missing, which the stub lacks",
        "tests/test_more.py:7: imports tinytorch.perf.gamma.planned, but module 17 gamma is planned",
        "tests/test_more.py:11: imports 'quintuple' from tinytorch.perf.beta, which the stub lacks",
        "tests/test_more.py:11: imports 'nothing' from tinytorch.perf.alpha, which the stub lacks",
        "tests/test_more.py:11: imports 'missing' from tinytorch.perf.alpha.Doubler, which the stub lacks",
        "tests/test_more.py:12: imports 'gone' from tinytorch.perf.alpha.core, which the stub lacks",
    ]


def test_parity_reports_a_tree_that_cannot_be_imported(fake_repo: Path, capsys):
    (fake_repo / "solutions" / "alpha" / "core.py").write_text("raise RuntimeError('boom')\n")
    (fake_repo / "katas" / "beta" / "__init__.py").unlink()
    assert integrity.main(["parity"]) == 1
    out = capsys.readouterr().out
    assert "module 15 alpha: cannot import: RuntimeError: boom" in out
    assert "module 16 beta: no katas/beta/__init__.py" in out
    assert "parity: 2 problem(s)" in out


def test_parity_reports_a_submodule_that_cannot_be_imported_and_a_missing_solution(fake_repo: Path):
    (fake_repo / "katas" / "alpha" / "lazy.py").write_text("raise ImportError('not loaded by __init__')\n")
    (fake_repo / "solutions" / "alpha" / "lazy.py").write_text("")
    (fake_repo / "solutions" / "beta" / "__init__.py").unlink()
    assert integrity.check_parity(fake_repo) == [
        "module 15 alpha: cannot import katas/alpha/lazy.py: ImportError: not loaded by __init__",
        "module 16 beta: no solutions/beta/__init__.py",
    ]


def test_signature_text():
    def f(a, /, b: int, *args: str, c: list[int] = None, **kw) -> np.ndarray: ...  # noqa: F821

    def g(a, /): ...

    def h(*, key=1): ...

    assert (
        integrity.signature_text(f) == "(a, /, b: int, *args: str, c: list[int] = None, **kw) -> np.ndarray"
    )
    assert integrity.signature_text(g) == "(a, /)"
    assert integrity.signature_text(h) == "(*, key = 1)"
    assert integrity.signature_text(print) != ""
    assert integrity.signature_text(object()) == "<no signature>"


def test_the_fake_stub_and_solution_differ_only_in_bodies():
    assert ALPHA_STUB.splitlines()[:4] == ALPHA_SOLUTION.splitlines()[:4]


# --------------------------------------------------------------------------- parity: plumbing

HELPER = '''

def _check(x: int) -> int:
    """Validate x."""
    if not isinstance(x, int):
        raise TypeError(f"x must be an int, got {type(x).__name__}")
    return x
'''


def add_to_both(repo: Path, old: str, new: str) -> None:
    for tree in ("katas", "solutions"):
        edit(repo / tree / "alpha" / "core.py", old, new)


def test_parity_accepts_identical_plumbing(fake_repo: Path):
    add_to_both(fake_repo, "\n\nclass Doubler:", HELPER + "\n\nclass Doubler:")
    given = '    """Doubles."""\n\n    limit: int = 3\n\n    def reset(self) -> None:\n        pass\n'
    add_to_both(fake_repo, '    """Doubles."""\n', given)
    # comments are not part of the AST: a lint note in the stub is no drift
    edit(fake_repo / "katas" / "alpha" / "core.py", "return x\n", "return x  # noqa: E501 (a note)\n")
    assert integrity.check_parity(fake_repo) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "got {type(x).__name__}",
            "got something else",
            "katas/alpha/core.py:9 _check: the plumbing given in the stub differs from "
            "solutions/alpha/core.py:9 (stub `raise TypeError(f'x must be an int, got something else')` "
            "vs solution `raise TypeError(f'x must be an int, got {type(x).__name__}')`)",
        ),
        (
            '"""Validate x."""',
            '"""Validate x: an int."""',
            "katas/alpha/core.py:9 _check: the plumbing given in the stub differs from "
            'solutions/alpha/core.py:9 (stub `"""Validate x: an int."""` vs solution `"""Validate x."""`)',
        ),
        (
            '"""Doubles."""',
            '"""Doubles, fast."""',
            "katas/alpha/core.py:17 Doubler.<docstring>: the plumbing given in the stub differs from "
            "solutions/alpha/core.py:17",
        ),
        (
            "class Doubler:",
            "class Doubler(object):",
            "katas/alpha/core.py:16 Doubler: the class's decorators or bases differ from "
            "solutions/alpha/core.py:16",
        ),
        (
            "    def apply(",
            "    def _spare(self) -> None:\n        pass\n\n    def apply(",
            "katas/alpha/core.py:19 Doubler._spare: given in the stub but not in solutions/alpha/core.py",
        ),
    ],
)
def test_parity_reports_drifted_plumbing_with_file_and_line(
    fake_repo: Path, old: str, new: str, problem: str
):
    add_to_both(fake_repo, "\n\nclass Doubler:", HELPER + "\n\nclass Doubler:")
    edit(fake_repo / "katas" / "alpha" / "core.py", old, new)
    problems = integrity.check_parity(fake_repo)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_parity_lets_the_lessons_bodies_differ_but_not_a_given_method(fake_repo: Path):
    # `double` raises NotImplementedError in the stub: its body is the lesson and may differ
    # (the fake stub and solution already differ there). A given method must not.
    given = '    """Doubles."""\n\n    def reset(self) -> int:\n        return 0\n'
    add_to_both(fake_repo, '    """Doubles."""\n', given)
    edit(fake_repo / "solutions" / "alpha" / "core.py", "return 0", "return 1")
    assert integrity.check_parity(fake_repo) == [
        "katas/alpha/core.py:12 Doubler.reset: the plumbing given in the stub differs from "
        "solutions/alpha/core.py:12 (stub `return 0` vs solution `return 1`)"
    ]
