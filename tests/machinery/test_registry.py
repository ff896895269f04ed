"""The one registry: tinytorch/modules.toml, parsed and validated by tinytorch.registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinytorch import registry

ENTRY = """
[[module]]
number = {number}
name = "{name}"
title = "t"
kata = "katas/{name}"
solution = "solutions/{name}"
tests = "tests/test_{name}.py"
points = 5
status = "{status}"
"""


def write_registry(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "modules.toml"
    path.write_text("".join(entries))
    return path


def test_the_real_registry():
    """Modules 15-20 in order, unique, each ready one with its kata, solution and tests on disk."""
    modules = registry.modules(registry.REGISTRY_FILE)
    assert [m.number for m in modules] == list(range(15, 21))
    assert [m.name for m in modules] == [
        "profiling",
        "acceleration",
        "quantization",
        "compression",
        "caching",
        "benchmarking",
    ]
    root = Path(registry.__file__).resolve().parent.parent
    for m in modules:
        assert m.marker == m.name
        assert m.points > 0 and m.title
        assert (m.kata, m.solution, m.tests) == (
            f"katas/{m.name}",
            f"solutions/{m.name}",
            f"tests/test_{m.name}.py",
        )
        if m.ready:
            # a student release (python -m grading release) has no solutions/ folder at all
            released = (m.kata,) if not (root / "solutions").exists() else (m.kata, m.solution)
            for relative in released:
                assert (root / relative / "__init__.py").is_file(), relative
            assert (root / m.tests).is_file()
        for hint in m.hints:
            assert hint.text.strip()


def test_every_test_of_a_ready_module_has_a_hint_of_its_own():
    """`tinytorch hint` gives each failing test more than the module's general advice: at least one
    hint whose ``tests`` (a substring of the test's name) picks it out."""
    import ast

    root = Path(registry.__file__).resolve().parent.parent
    for m in registry.modules(registry.REGISTRY_FILE):
        if not m.ready:
            continue
        tree = ast.parse((root / m.tests).read_text(encoding="utf-8"))
        names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
        specific = [h.tests for h in m.hints if h.tests]
        without = [name for name in names if not any(part in name for part in specific)]
        assert names and not without, f"{m.name}: no hint of their own for {without}"


def test_parse_and_lookup(tmp_path: Path):
    path = write_registry(
        tmp_path,
        ENTRY.format(number=16, name="b", status="planned"),
        ENTRY.format(number=15, name="a", status="ready"),
        '[[module.hint]]\ntests = "neg"\ntext = "first"\n[[module.hint]]\ntext = "always"\n',
    )
    a, b = registry.modules(path)  # ordered by number
    assert (a.name, a.ready, b.name, b.ready) == ("a", True, "b", False)
    assert registry.get(15, path) is a and registry.get("15", path) is a and registry.get("b", path) is b
    assert registry.names(path) == ["a", "b"]
    assert [h.text for h in a.hints_for("tests/test_a.py::test_neg")] == ["first", "always"]
    assert [h.text for h in a.hints_for("tests/test_a.py::test_pos")] == ["always"]
    assert a.tree("katas") == "katas/a" and a.tree("solutions") == "solutions/a"
    with pytest.raises(ValueError, match="impl must be 'katas' or 'solutions'"):
        a.tree("reference")
    with pytest.raises(KeyError, match="unknown module 'c'; the modules are: 15 a, 16 b"):
        registry.get("c", path)


def test_the_environment_chooses_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = write_registry(tmp_path, ENTRY.format(number=1, name="only", status="ready"))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(path))
    assert registry.names() == ["only"]


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ((ENTRY.format(number=1, name="a", status="done"),), "status must be one of"),
        (
            (
                ENTRY.format(number=1, name="a", status="ready"),
                ENTRY.format(number=1, name="b", status="ready"),
            ),
            "must be unique",
        ),
        (
            (
                ENTRY.format(number=1, name="a", status="ready"),
                ENTRY.format(number=2, name="a", status="ready"),
            ),
            "must be unique",
        ),
    ],
)
def test_invalid_registries(tmp_path: Path, entries: tuple[str, ...], error: str):
    with pytest.raises(ValueError, match=error):
        registry.modules(write_registry(tmp_path, *entries))


def test_hidden_tests_are_a_list_of_files(tmp_path: Path):
    entry = ENTRY.format(number=1, name="a", status="ready")
    path = write_registry(tmp_path, entry + 'hidden = ["tests/hidden/test_a_more.py"]\n')
    assert registry.modules(path)[0].hidden == ("tests/hidden/test_a_more.py",)
    (tmp_path / "b").mkdir()
    assert registry.modules(write_registry(tmp_path / "b", entry))[0].hidden == ()
    (tmp_path / "c").mkdir()
    with pytest.raises(registry.RegistryError, match="hidden must be a list of test file paths"):
        registry.modules(write_registry(tmp_path / "c", entry + 'hidden = ["", 3]\n'))


def test_unknown_field_is_an_error(tmp_path: Path):
    with pytest.raises(
        registry.RegistryError, match=r"\[\[module\]\] number 1 \('a'\): unknown field\(s\) colour"
    ):
        registry.modules(
            write_registry(tmp_path, ENTRY.format(number=1, name="a", status="ready") + 'colour = "red"\n')
        )


GOOD = ENTRY.format(number=1, name="a", status="ready")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no modules; the registry lists each kata module as a [[module]] table"),
        ("# only a comment\n", "no modules"),
        ("[[module]\nnumber = 1\n", "not valid TOML: "),
        ("module = 3\n", "'module' must be a list of [[module]] tables, got an integer"),
        ("module = [1]\n", "[[module]] number 1: expected a table, got an integer"),
        (GOOD.replace('title = "t"\n', ""), "[[module]] number 1 ('a'): missing title"),
        (GOOD.replace("number = 1", 'number = "1"'), "number must be an integer, got '1'"),
        (GOOD.replace("points = 5", "points = true"), "points must be an integer, got True"),
        (GOOD.replace('name = "a"', "name = 7"), "[[module]] number 1: name must be a string, got 7"),
        (GOOD.replace('title = "t"', 'title = "  "'), "title is empty"),
        (GOOD + "[[module.hint]]\ntests = 'x'\n", "[[module]] number 1 ('a'), hint 1: missing text"),
        (GOOD + "[[module.hint]]\ntext = 'x'\nlevel = 2\n", "hint 1: unknown field(s) level"),
        (GOOD + ENTRY.format(number=2, name="a", status="ready"), "name 'a' is given twice"),
        (b"\xff\xfe[[module]]", "not valid TOML"),
    ],
)
def test_a_broken_registry_is_an_error_naming_the_file(tmp_path: Path, text: str | bytes, error: str):
    path = tmp_path / "modules.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(registry.RegistryError) as raised:
        registry.modules(path)
    assert str(raised.value).startswith(str(path)) and error in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_missing_registry_is_an_error_naming_the_file(tmp_path: Path):
    with pytest.raises(registry.RegistryError, match=f"cannot read the registry {tmp_path / 'none.toml'}: "):
        registry.modules(tmp_path / "none.toml")


def test_repo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TINYTORCH_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no katas/ folder"):
        registry.repo_root()
    (tmp_path / "katas").mkdir()
    assert registry.repo_root() == tmp_path
    monkeypatch.delenv("TINYTORCH_ROOT")
    assert registry.repo_root() == Path(registry.__file__).resolve().parent.parent


def test_the_readme_table_of_modules_is_the_registry():
    # The docs read the registry: the README's table is `tinytorch list --markdown`, verbatim.
    readme = (registry.repo_root() / "README.md").read_text(encoding="utf-8")
    table = readme.split(registry.README_BEGIN)[1].split(registry.README_END)[0].strip()
    assert table == registry.markdown_table(registry.REGISTRY_FILE), (
        "README.md's modules table is stale: replace it with the output of `tinytorch list --markdown`"
    )
