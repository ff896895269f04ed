"""The mutation pass (``python -m grading mutants``): the sites it plants changes in, and its
verdicts and exit status on the fake repository of ``conftest.py``."""

from __future__ import annotations

import ast

from grading import mutants

SOURCE = '''\
"""Module docstring: never mutated."""

__all__ = ["f"]


def f(x: int, scale: float = 1.5) -> float:
    """Docstring."""
    if x < 0 and not x == -1:
        raise ValueError(f"x must be >= 0, got {x}")
    total = 0
    total += x * scale
    check(x)
    return total if flag is True else x[1:n]  # pragma: no mutate


class C:
    def g(self, xs):
        self.seen = xs[a:b]
        return -xs % 3
'''


def sites(source: str = SOURCE) -> list[str]:
    walker = mutants._Sites("alpha", "core.py", source)
    walker.visit(ast.parse(source))
    return [f"{m.function}:{m.original} -> {m.mutant}" for m in walker.mutants]


def test_every_kind_of_site_is_planted_and_text_is_left_alone():
    found = sites()
    for expected in [
        "f:1.5 -> 2.5",  # a default
        "f:x < 0 and (not x == -1) -> x < 0 or not x == -1",
        "f:x < 0 -> x <= 0",
        "f:not x == -1 -> x == -1",
        "f:x == -1 -> x != -1",
        "f:raise ValueError(f'x must be >= 0, got {x}') -> pass",
        "f:0 -> 1",
        "f:total += x * scale -> total -= x * scale",
        "f:x * scale -> x / scale",
        "f:check(x) -> pass",
        "C.g:self.seen = xs[a:b] -> pass",
        "C.g:a -> a + 1",
        "C.g:b -> b + 1",
        "C.g:-xs % 3 -> -xs * 3",
        "C.g:-xs -> xs",
        "C.g:3 -> 4",
    ]:
        assert expected in found, f"no mutant {expected!r} among {found}"
    text = "\n".join(found)
    assert "Docstring" not in text and "__all__" not in text, "docstrings and __all__ are not code to mutate"
    assert "int" not in text, "annotations are left alone"
    assert "flag" not in text, "a line marked `pragma: no mutate` is left alone"
    assert "must be >= 0 ->" not in text, "the text of an error message is not mutated"


def test_a_mutant_replaces_only_its_site_and_compiles():
    walker = mutants._Sites("alpha", "core.py", SOURCE)
    walker.visit(ast.parse(SOURCE))
    for mutant in walker.mutants:
        changed = mutants.apply(mutant, SOURCE)
        compile(changed, "core.py", "exec")
        assert changed != SOURCE, f"{mutant.label} changes nothing"
        assert changed.startswith(SOURCE[: SOURCE.index("def f")]), (
            f"{mutant.label} touched the module header"
        )


def test_the_pass_kills_what_a_test_sees_and_lists_what_none_does(fake_repo, capsys):
    # every change to double is seen by the fake tests: 2 * x, the default 2, Doubler.apply
    assert mutants.main(["alpha", "-j", "1"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "alpha: 2 mutants, 0 equivalent" in out and "2 of 2 others killed: 100.0 %" in out, out

    # tests that always pass the factor cannot see the default change: it survives
    tests = fake_repo / "tests" / "test_alpha.py"
    tests.write_text(
        tests.read_text(encoding="utf-8")
        .replace("double(2)", "double(2, 2)")
        .replace("double(-3)", "double(-3, 2)")
        .replace("Doubler().apply(5) == 10", "Doubler is not None"),
        encoding="utf-8",
    )
    assert mutants.main(["alpha", "-j", "1", "--json", str(fake_repo / "out.json")]) == 1
    out = capsys.readouterr().out
    assert "survived  alpha/core.py:4 double: `2` -> `3`" in out and "1 of 2 others killed: 50.0 %" in out, (
        out
    )
    assert mutants.main(["alpha", "--rerun", str(fake_repo / "out.json"), "--min", "0"]) == 0
    assert "alpha: 1 mutants" in capsys.readouterr().out, "--rerun runs only the survivors"

    # listed as equivalent (with its reason), it no longer counts; an entry that matches nothing is stale
    listed = fake_repo / "grading" / "equivalent" / "alpha.toml"
    listed.parent.mkdir(parents=True)
    entry = (
        '[[equivalent]]\nfile = "core.py"\nfunction = "double"\noriginal = "{}"\nmutant = "3"\nwhy = "test"\n'
    )
    listed.write_text(entry.format("2"), encoding="utf-8")
    assert mutants.main(["alpha", "-j", "1"]) == 0
    assert "1 equivalent" in capsys.readouterr().out
    listed.write_text(entry.format("2") + entry.format("5"), encoding="utf-8")
    assert mutants.main(["alpha", "-j", "1"]) == 1
    assert "stale     alpha/core.py double: `5` -> `3`" in capsys.readouterr().out
