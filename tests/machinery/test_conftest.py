"""tests/conftest.py: markers from the registry, applied by path, and the hypothesis profiles."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from tinytorch.course import runner

REAL_ROOT = Path(__file__).resolve().parents[2]


def real_conftest():
    spec = importlib.util.spec_from_file_location("_real_conftest", REAL_ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_markers_by_path():
    conftest = real_conftest()
    tests = REAL_ROOT / "tests"
    assert conftest.marker_for(tests / "test_profiling.py") == "profiling"
    assert conftest.marker_for(tests / "test_caching.py") == "caching"  # planned modules have markers too
    assert conftest.marker_for(tests / "foundation" / "test_tensor.py") == "foundation"
    assert conftest.marker_for(tests / "machinery" / "deeper" / "test_x.py") == "machinery"
    assert conftest.marker_for(tests / "strategies.py") is None
    assert conftest.marker_for(tests / "test_unregistered.py") is None
    assert conftest.marker_for(Path("/elsewhere/tests/test_profiling.py")) is None


def test_hypothesis_profiles():
    ci, dev = settings.get_profile("ci"), settings.get_profile("dev")
    assert ci.derandomize and ci.deadline is None and ci.database is None and ci.print_blob
    assert dev.deadline is None and dev.max_examples < ci.max_examples
    assert settings().derandomize == (settings._current_profile == "ci")


def collect(root: Path, *args: str, profile: str = "ci") -> subprocess.CompletedProcess[str]:
    env = runner.pytest_env("katas") | {"HYPOTHESIS_PROFILE": profile}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", *args]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)


def test_markers_select_a_module_and_are_strict(fake_repo: Path):
    (fake_repo / "tests" / "foundation").mkdir()
    (fake_repo / "tests" / "foundation" / "test_base.py").write_text("def test_base():\n    pass\n")
    proc = collect(fake_repo, "-q", "-m", "alpha or foundation")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    selected = sorted(line for line in proc.stdout.splitlines() if "::" in line)
    assert selected == [
        "tests/foundation/test_base.py::test_base",
        "tests/test_alpha.py::TestDoubler::test_apply",
        "tests/test_alpha.py::test_double",
        "tests/test_alpha.py::test_double_negative",
    ]
    assert "1 deselected" in proc.stdout  # test_beta
    (fake_repo / "tests" / "test_beta.py").write_text(
        "import pytest\n\n@pytest.mark.betta\ndef test_x():\n    pass\n"
    )
    proc = collect(fake_repo, "tests/test_beta.py", profile="dev")
    assert proc.returncode != 0
    assert "'betta' not found in `markers`" in proc.stdout
    assert "hypothesis profile dev" in proc.stdout


def test_an_unknown_profile_is_an_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "fast")
    with pytest.raises(
        pytest.UsageError, match=r"HYPOTHESIS_PROFILE='fast': unknown hypothesis profile; valid: ci, dev"
    ):
        real_conftest()


def test_every_registry_module_is_a_registered_marker(pytestconfig: pytest.Config):
    from tinytorch.course import registry

    known = {line.split(":")[0].strip() for line in pytestconfig.getini("markers")}
    assert {"foundation", "machinery", *registry.names(registry.REGISTRY_FILE)} <= known
