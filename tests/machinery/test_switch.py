"""The implementation switch: tinytorch.perf.<module> served by katas/ or solutions/."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from tinytorch import perf


def load(name: str):
    """Import a kata module afresh (the switch caches modules in sys.modules)."""
    for key in [
        k for k in sys.modules if k == f"tinytorch.perf.{name}" or k.startswith(f"tinytorch.perf.{name}.")
    ]:
        del sys.modules[key]
    return importlib.import_module(f"tinytorch.perf.{name}")


def test_katas_by_default(fake_repo: Path):
    alpha = load("alpha")
    assert Path(alpha.__file__) == fake_repo / "katas" / "alpha" / "__init__.py"
    with pytest.raises(NotImplementedError, match=r"double \(module 15, alpha\): .* katas/alpha/core.py"):
        alpha.double(2)


def test_solutions(fake_repo: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TINYTORCH_IMPL", "solutions")
    alpha = load("alpha")
    assert Path(alpha.__file__) == fake_repo / "solutions" / "alpha" / "__init__.py"
    assert alpha.double(3) == 6
    assert load("beta").quadruple(2) == 8


def test_submodules_and_relative_imports_come_from_the_chosen_tree(fake_repo: Path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_IMPL", "solutions")
    alpha = load("alpha")  # its __init__ does `from .core import ...`
    core = importlib.import_module("tinytorch.perf.alpha.core")
    assert Path(core.__file__) == fake_repo / "solutions" / "alpha" / "core.py"
    assert alpha.double is core.double


@pytest.mark.parametrize("value", ["solutions,alpha=katas", "solutions, 15 = katas", "katas,beta=solutions"])
def test_per_module_override(fake_repo: Path, monkeypatch: pytest.MonkeyPatch, value: str):
    """beta's reference body on top of the student's alpha: the stub's error comes through."""
    monkeypatch.setenv("TINYTORCH_IMPL", value)
    assert perf.impl_for("alpha") == "katas"
    assert perf.impl_for("beta") == "solutions"
    assert perf.source_dir("alpha") == fake_repo / "katas" / "alpha"
    beta = load("beta")
    assert Path(beta.__file__).parent == fake_repo / "solutions" / "beta"
    with pytest.raises(NotImplementedError, match="katas/alpha/core.py"):
        beta.quadruple(1)


def test_parse_impl(fake_repo: Path):
    assert perf.parse_impl(None) == ("katas", {})
    assert perf.parse_impl("") == ("katas", {})
    assert perf.parse_impl("solutions") == ("solutions", {})
    assert perf.parse_impl("16=solutions,alpha=solutions") == (
        "katas",
        {"alpha": "solutions", "beta": "solutions"},
    )
    assert perf.impl_for("beta", "solutions,16=katas") == "katas"


@pytest.mark.parametrize("value", ["solution", "katas,alpha=mine", "reference"])
def test_unknown_implementation_lists_the_valid_ones(fake_repo: Path, value: str):
    with pytest.raises(ValueError, match=r"unknown implementation .*valid: katas, solutions"):
        perf.parse_impl(value)


@pytest.mark.parametrize("value", ["zeta=katas", "99=solutions", "=katas"])
def test_unknown_module_lists_the_valid_ones(fake_repo: Path, value: str):
    with pytest.raises(ValueError, match=r"unknown module .*valid: alpha, beta, gamma"):
        perf.parse_impl(value)


def test_unknown_impl_in_the_environment_fails_the_import(fake_repo: Path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_IMPL", "solutoins")
    with pytest.raises(ValueError, match="valid: katas, solutions"):
        load("alpha")


def test_planned_module_is_a_clear_module_not_found(fake_repo: Path):
    with pytest.raises(ModuleNotFoundError, match=r"module 17 \(gamma\) is planned and not built yet"):
        load("gamma")


def test_missing_ready_module(fake_repo: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TINYTORCH_IMPL", "solutions")
    (fake_repo / "solutions" / "beta" / "__init__.py").unlink()
    with pytest.raises(ModuleNotFoundError, match=r"module 16 \(beta\) is missing: no .*solutions/beta"):
        load("beta")


def test_unknown_module_import_lists_the_modules(fake_repo: Path):
    with pytest.raises(
        ModuleNotFoundError, match=r"'zeta' is not a kata module; the modules are: 15 alpha, 16 beta"
    ):
        load("zeta")


def test_the_finder_leaves_other_imports_alone(fake_repo: Path, tmp_path: Path):
    finder = perf._SwitchFinder()
    assert finder.find_spec("tinytorch.course.registry") is None
    assert finder.find_spec("tinytorch.perf.alpha.core") is None  # the package's __path__ serves it
    (tmp_path / "helpers.py").write_text("")  # a real submodule of tinytorch.perf: the usual finders load it
    assert finder.find_spec("tinytorch.perf.helpers", [str(tmp_path)]) is None


def test_the_finder_is_installed_once():
    importlib.reload(perf)
    assert sum(isinstance(f, perf._SwitchFinder) for f in sys.meta_path) == 1


def test_a_module_served_from_a_folder(fake_repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """An override may name the module's own folder: a variant or a student's copy, nothing copied."""
    variant = tmp_path / "variant" / "alpha"
    variant.mkdir(parents=True)
    (variant / "__init__.py").write_text("def double(x):\n    return 2 * x + 1  # a classic mistake\n")
    monkeypatch.setenv("TINYTORCH_IMPL", f"solutions,alpha={variant}")
    assert perf.source_dir("alpha") == variant
    assert perf.source_dir("beta") == fake_repo / "solutions" / "beta"
    alpha = load("alpha")
    assert Path(alpha.__file__) == variant / "__init__.py"
    assert alpha.double(3) == 7


def test_a_default_folder_holds_one_folder_per_module(fake_repo: Path, monkeypatch, tmp_path: Path):
    """A folder as the default is a whole tree laid out like katas/: strict grading of a submission."""
    tree = tmp_path / "submission" / "katas"
    (tree / "alpha").mkdir(parents=True)
    (tree / "alpha" / "__init__.py").write_text("def double(x):\n    return x + x\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYTORCH_IMPL", "./submission/katas,beta=solutions")
    assert perf.impl_for("alpha") == str(tree)
    assert perf.source_dir("alpha") == tree / "alpha"
    assert perf.source_dir("beta") == fake_repo / "solutions" / "beta"
    assert load("alpha").double(4) == 8


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/no/such/folder", r"no folder '/no/such/folder'"),
        ("solutions,alpha=./missing", r"no folder './missing'"),
        ("katas,solutions", r"two defaults \('katas' and 'solutions'\)"),
        ("solutions,alpha=katas,15=solutions", r"module 'alpha' is given twice"),
    ],
)
def test_ambiguous_or_missing_trees_are_refused(fake_repo: Path, value: str, message: str):
    with pytest.raises(ValueError, match=message):
        perf.parse_impl(value)


def test_the_error_names_where_the_value_came_from(fake_repo: Path):
    with pytest.raises(ValueError, match=r"^--impl='bogus': unknown implementation 'bogus'"):
        perf.parse_impl("bogus", source="--impl")


def test_kata_code_written_before_the_course_moved_still_imports(fake_repo: Path, monkeypatch):
    """A student who started from a release cut before the course moved to tinytorch.course has
    module 20's given line `from tinytorch.leaderboard import EventRecord`: kata code is loaded by
    the switch, which answers the old names with the very modules of the new ones."""
    monkeypatch.setenv("TINYTORCH_IMPL", "solutions")
    alpha = fake_repo / "solutions" / "alpha"
    text = (alpha / "__init__.py").read_text(encoding="utf-8")
    old_lines = (
        "from tinytorch.leaderboard import EventRecord, Leaderboard, format_interval\n"
        "from tinytorch.registry import repo_root\n"
        "import tinytorch.runner as old_runner\n"
    )
    (alpha / "__init__.py").write_text(old_lines + text, encoding="utf-8")
    for name in ("tinytorch.leaderboard", "tinytorch.registry", "tinytorch.runner"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = load("alpha")
    from tinytorch.course import leaderboard, registry, runner

    assert (
        module.EventRecord is leaderboard.EventRecord
        and module.format_interval is leaderboard.format_interval
    )
    assert module.repo_root is registry.repo_root and module.old_runner is runner, "one module, two names"
    assert sys.modules["tinytorch.leaderboard"] is leaderboard
    assert leaderboard.__spec__.name == "tinytorch.course.leaderboard", "its own name's spec is kept"
    assert set(perf.MOVED) == {
        f"tinytorch.{n}" for n in ("cli", "forkserver", "leaderboard", "pytest_plugin", "registry", "runner")
    }


def test_the_old_names_belong_to_the_switch_not_to_the_foundation():
    """Without the switch there is no tinytorch.leaderboard: the foundation holds none of the course."""
    import subprocess

    code = (
        "import tinytorch, tinytorch.tensor\n"
        "try:\n    import tinytorch.leaderboard\nexcept ModuleNotFoundError:\n    print('absent')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "absent", out.stdout + out.stderr
