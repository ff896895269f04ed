"""The one registry: tinytorch/course/modules.toml, parsed and validated by tinytorch.course.registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinytorch.course import registry

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
    root = Path(registry.__file__).resolve().parents[2]
    for m in modules:
        assert m.marker == m.name
        assert m.points > 0 and m.title
        assert (m.kata, m.solution, m.tests) == (
            f"katas/{m.name}",
            f"solutions/{m.name}",
            f"tests/test_{m.name}.py",
        )
        if m.ready:
            # a student release (python -m grading release, which it does not hold) has no solutions/
            # but those of the modules whose reference the instructor handed out (--reference)
            instructor = (root / "grading" / "release.py").is_file()
            released = (m.kata, m.solution) if instructor or (root / m.solution).exists() else (m.kata,)
            for relative in released:
                assert (root / relative / "__init__.py").is_file(), relative
            assert (root / m.tests).is_file()
        for hint in m.hints:
            assert hint.text.strip()


def test_every_test_of_a_ready_module_has_a_hint_of_its_own():
    """`tinytorch hint` gives each failing test more than the module's general advice: at least one
    hint whose ``tests`` (a substring of the test's name) picks it out."""
    import ast

    if registry.hints_held(registry.REGISTRY_FILE) != "all":
        pytest.skip("this copy of the course holds only some of the hints (a student release)")
    root = Path(registry.__file__).resolve().parents[2]
    for m in registry.modules(registry.REGISTRY_FILE):
        if not m.ready:
            continue
        tree = ast.parse((root / m.tests).read_text(encoding="utf-8"))
        names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
        specific = [h.tests for h in m.hints if h.tests]
        without = [name for name in names if not any(part in name for part in specific)]
        assert names and not without, f"{m.name}: no hint of their own for {without}"


def _test_names(path: Path) -> set[str]:
    """The test functions of a test file, methods of test classes included."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def _unwritten_functions(kata: Path) -> set[str]:
    """The qualified names of the functions a module's stubs leave to the student (they raise
    NotImplementedError)."""
    import ast

    found = set()

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef):
                for raised in ast.walk(child):
                    exc = getattr(raised, "exc", None) if isinstance(raised, ast.Raise) else None
                    called = exc.func if isinstance(exc, ast.Call) else exc
                    if isinstance(called, ast.Name) and called.id == "NotImplementedError":
                        found.add(prefix + child.name)

    for file in sorted(kata.rglob("*.py")):
        visit(ast.parse(file.read_text(encoding="utf-8")), "")
    return found


def test_every_unwritten_function_leads_to_the_hints_that_teach_it():
    """A test that fails in a function the student has not written yet (its NotImplementedError)
    gets that function's hints first: the registry's ``ladders`` name, for every function a stub
    leaves open, a test of the module whose hints teach it."""
    root = Path(registry.__file__).resolve().parents[2]
    every_hint = registry.hints_held(registry.REGISTRY_FILE) == "all"  # a student release may hold fewer
    for m in registry.modules(registry.REGISTRY_FILE):
        if not m.ready:
            continue
        unwritten, named = _unwritten_functions(root / m.kata), dict(m.ladders)
        assert unwritten and set(named) == unwritten, (
            f"{m.name}: ladders for no stub function {sorted(set(named) - unwritten)}; "
            f"stub functions without a ladder {sorted(unwritten - set(named))}"
        )
        tests = _test_names(root / m.tests)
        for function, test in named.items():
            assert test in tests, f"{m.name}: ladders[{function!r}] names no test of {m.tests}: {test!r}"
            assert m.hints_for(test) or not every_hint, f"{m.name}: ladders[{function!r}]: {test} has no hint"


def test_a_hint_that_points_to_another_tests_hints_leads_there():
    """"see the hints of test_x" is reachable while test_x passes: the hint names test_x in ``see``,
    so ``tinytorch hint`` continues with test_x's ladder."""
    import re

    root = Path(registry.__file__).resolve().parents[2]
    every_hint = registry.hints_held(registry.REGISTRY_FILE) == "all"  # a student release may hold fewer
    for m in registry.modules(registry.REGISTRY_FILE):
        if not m.ready:
            continue
        tests = _test_names(root / m.tests)
        for hint in m.hints:
            for test in hint.see:
                assert test in tests, f"{m.name}: see {test!r}: no such test"
                assert m.hints_for(test) or not every_hint, f"{m.name}: see {test!r}: a test without hints"
            for test in re.findall(r"hints of (test_\w+)|[Mm]ake (test_\w+) pass", hint.text):
                test = "".join(test)  # a test named in the text, in full or by the start of its name
                assert any(name.startswith(test) for name in hint.see), f"{m.name}: {test} not in see"


def test_recipe_levels_are_marked(tmp_path: Path):
    """A hint is a recipe when it is marked ``level = "recipe"`` or its lead-in says so ("summarize,
    the recipe: ..."), so a release with ``--hints nudges`` leaves it out; every ready module's
    ladders end in recipes, and a copy of the registry holds what it says it holds."""
    path = write_registry(
        tmp_path,
        ENTRY.format(number=15, name="a", status="ready"),
        '[[module.hint]]\ntests = ""\ntext = "Work in order: the hints go from a nudge to the recipe."\n'
        '[[module.hint]]\ntests = "x"\ntext = "KVCache.__init__ and nbytes, the recipe. __init__: ..."\n'
        '[[module.hint]]\ntests = "x"\ntext = "f, the recipe, after the checks: return 1"\nlevel = "nudge"\n'
        '[[module.hint]]\ntests = "x"\ntext = "k = round(s * n); order = np.argsort(w)"\nlevel = "recipe"\n',
    )
    assert [h.level for h in registry.modules(path)[0].hints] == ["nudge", "recipe", "nudge", "recipe"]
    held = registry.hints_held(registry.REGISTRY_FILE)
    modules = [m for m in registry.modules(registry.REGISTRY_FILE) if m.ready]
    if held == "none":
        assert [h for m in modules for h in m.hints] == []
        return
    for m in modules:
        assert any(h.recipe for h in m.hints) == (held == "all"), m.name


def test_a_ladder_follows_see_once_and_stops_at_a_cycle(tmp_path: Path):
    path = write_registry(
        tmp_path,
        ENTRY.format(number=15, name="a", status="ready"),
        '[[module.hint]]\ntests = "test_x"\ntext = "x1"\nsee = ["test_y"]\n'
        '[[module.hint]]\ntests = "test_y"\ntext = "y1"\nsee = ["test_x", "test_z"]\n'
        '[[module.hint]]\ntests = "test_z"\ntext = "z1"\nlevel = "recipe"\n'
        '[[module.hint]]\ntests = "test_x"\ntext = "x2"\n'
        '[module.ladders]\n"C.f" = "test_y"\n',
    )
    (a,) = registry.modules(path)
    assert [h.text for h in a.hints_for("tests/test_a.py::test_x[1]")] == ["x1", "y1", "z1", "x2"]
    assert [h.text for h in a.hints_for("test_y")] == ["y1", "x1", "x2", "z1"]
    assert a.hints[2].recipe and a.ladder_test("C.f") == "test_y" and a.ladder_test("g") is None


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
    # the general hint ("" tests) is the module's advice, no rung of a test's ladder
    assert [h.text for h in a.hints_for("tests/test_a.py::test_neg")] == ["first"]
    assert a.hints_for("tests/test_a.py::test_pos") == []
    assert [h.text for h in a.general_hints] == ["always"]
    assert (a.hints[0].level, a.hints[0].see, a.hints[0].recipe, a.ladders) == ("nudge", (), False, ())
    assert registry.hints_held(path) == "all"
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
        (GOOD + "[[module.hint]]\ntext = 'x'\ncolour = 2\n", "hint 1: unknown field(s) colour"),
        (GOOD + "[[module.hint]]\ntext = 'x'\nlevel = 2\n", "hint 1: level must be a string, got 2"),
        (GOOD + "[[module.hint]]\ntext = 'x'\nlevel = 'code'\n", "level must be one of ('nudge', 'recipe')"),
        (GOOD + "[[module.hint]]\ntext = 'x'\nsee = 'test_a'\n", "hint 1: see must be a list, got 'test_a'"),
        (GOOD + "[[module.hint]]\ntext = 'x'\nsee = ['']\n", "hint 1: see must be a list of test names"),
        (GOOD + "[module.ladders]\nf = 3\n", "('a'): ladders must map kata functions to test names"),
        ('hints = "some"\n' + GOOD, "hints must be one of ('all', 'nudges', 'none'), got 'some'"),
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
    assert registry.repo_root() == Path(registry.__file__).resolve().parents[2]


def test_the_readme_table_of_modules_is_the_registry():
    # The docs read the registry: the README's table is `tinytorch list --markdown`, verbatim.
    readme = (registry.repo_root() / "README.md").read_text(encoding="utf-8")
    table = readme.split(registry.README_BEGIN)[1].split(registry.README_END)[0].strip()
    assert table == registry.markdown_table(registry.REGISTRY_FILE), (
        "README.md's modules table is stale: replace it with the output of `tinytorch list --markdown`"
    )


# --------------------------------------------------------------------------- what a module needs from others


def test_needs_names_functions_of_other_modules(tmp_path: Path):
    b = ENTRY.format(number=2, name="b", status="ready") + 'needs = ["a.f", "a.C.g"]\n'
    path = write_registry(tmp_path, ENTRY.format(number=1, name="a", status="ready"), b)
    a_module, b_module = registry.modules(path)
    assert (a_module.needs, b_module.needs) == ((), ("a.f", "a.C.g"))
    assert b_module.needs_by_module() == {"a": ["f", "C.g"]}


@pytest.mark.parametrize(
    ("needs", "error"),
    [
        ('["b.f"]', "module 'b': needs 'b.f' names no other module of the registry"),
        ('["c.f"]', "module 'b': needs 'c.f' names no other module of the registry"),
        ('["a.f", "a.f"]', "module 'b': needs 'a.f' is named twice"),
        ('["a"]', 'needs must be a list of "<module>.<function>" names'),
        ('["a.f()"]', 'needs must be a list of "<module>.<function>" names'),
        ('"a.f"', "needs must be a list, got 'a.f'"),
    ],
)
def test_needs_that_name_nothing_are_an_error(tmp_path: Path, needs: str, error: str):
    b = ENTRY.format(number=2, name="b", status="ready") + f"needs = {needs}\n"
    path = write_registry(tmp_path, ENTRY.format(number=1, name="a", status="ready"), b)
    with pytest.raises(registry.RegistryError) as raised:
        registry.modules(path)
    assert error in str(raised.value)


NEEDS_HEADING = "## What it needs from earlier modules"


def _guide_needs(text: str) -> list[str] | None:
    """The functions a guide's needs section lists, as "<module>.<function>" in its order; None
    without the section. Each list item reads ``- module <number> <name>: `f`, `C.g` ``."""
    import re

    if NEEDS_HEADING not in text:
        return None
    section = text.split(NEEDS_HEADING, 1)[1].split("\n## ", 1)[0]
    listed = []
    for item in re.split(r"\n(?=- )", section):
        found = re.match(r"- module (\d+) (\w+): (.*)", item, re.DOTALL)
        if found:
            module = registry.get(found[1], registry.REGISTRY_FILE)
            assert module.name == found[2], f"the guide calls module {found[1]} {found[2]!r}: {module.name}"
            listed += [f"{module.name}.{name}" for name in re.findall(r"`([^`]+)`", found[3])]
    return listed


def test_each_guide_lists_exactly_the_functions_its_module_needs():
    """The registry's ``needs`` and the guide's section say the same, in the same order."""
    root = registry.repo_root()
    for m in registry.modules(registry.REGISTRY_FILE):
        if not m.ready:
            continue
        listed = _guide_needs((root / m.kata / "README.md").read_text(encoding="utf-8"))
        if not m.needs:
            assert listed is None, f"{m.kata}/README.md has {NEEDS_HEADING!r}, the registry lists no needs"
        else:
            assert listed == list(m.needs), f"{m.kata}/README.md: {NEEDS_HEADING!r} is not the registry's"


def test_every_need_is_a_function_a_student_writes_in_an_earlier_module():
    from tinytorch.course import runner

    root = registry.repo_root()
    instructor = (root / "grading" / "release.py").is_file()  # katas untouched, solutions present
    for m in registry.modules(registry.REGISTRY_FILE):
        for need in m.needs:
            owner = registry.get(need.partition(".")[0], registry.REGISTRY_FILE)
            function = need.partition(".")[2]
            assert owner.number < m.number, f"{m.name} needs {need} of a later module"
            kata = runner.defined_functions(root / owner.kata)
            assert function in kata, f"{m.name} needs {need}: no such function in {owner.kata}"
            if instructor:
                assert function in runner.defined_functions(root / owner.solution), need
                assert runner.raises_not_implemented(kata[function]), f"{need}: its stub does not raise"


def test_the_modules_needed_are_those_the_tests_and_the_code_import():
    """Every module whose ``tinytorch.perf.<name>`` a module's tests, stubs or reference import
    (anywhere in the file) has a function in ``needs``, and the other way round."""
    import ast

    root = registry.repo_root()
    names = set(registry.names(registry.REGISTRY_FILE))

    def imported(path: Path) -> set[str]:
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {m.split(".")[2] for m in modules if m.startswith("tinytorch.perf.")}
        return found & names

    instructor = (root / "grading" / "release.py").is_file()
    for m in registry.modules(registry.REGISTRY_FILE):
        if not m.ready:
            continue
        files = [root / m.tests, *sorted((root / m.kata).rglob("*.py"))]
        if instructor:
            files += sorted((root / m.solution).rglob("*.py"))
        found = set().union(*(imported(f) for f in files)) - {m.name}
        needed = set(m.needs_by_module())
        assert found <= needed, f"{m.name} imports {sorted(found - needed)} but needs none of their functions"
        if instructor:
            assert needed <= found, f"{m.name} needs functions of {sorted(needed - found)}, never imported"
