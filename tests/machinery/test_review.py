"""The static review of a submission (grading/review.py): every rule finds what it is for, at the
right line; the real references and stubs give nothing with their registry allow lists (which
keeps both the rules and the registry honest); whatever a file holds, the review reports instead
of raising; summaries stay short."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from grading import review
from grading.review import Finding, review_folder, review_source, summarize, summarize_modules
from tinytorch.course import registry

ROOT = Path(__file__).resolve().parents[2]
READY = [m for m in registry.modules(registry.REGISTRY_FILE) if m.ready]


def found(source: str, allow: tuple[str, ...] = ()) -> set[tuple[int, str]]:
    """(line, name) of every finding in ``source`` (dedented; line 1 is its first line)."""
    return {(f.line, f.name) for f in review_source(textwrap.dedent(source).lstrip("\n"), "k.py", allow)}


# --- every rule class, with its line ---------------------------------------------------------


def test_every_import_form_is_found_at_its_line():
    source = """
        import numpy as np
        import gc
        import os.path
        import ctypes as c
        from subprocess import run
        from importlib.machinery import SourceFileLoader
        mod = __import__("pickle")
        lib = import_module("socket.x")
        from . import sibling
        import json, threading
        """
    assert found(source) == {
        (2, "import gc"),
        (3, "import os"),
        (4, "import ctypes"),
        (5, "import subprocess"),
        (6, "import importlib"),
        (7, "__import__"),
        (7, "import pickle"),
        (8, "import socket"),
        (10, "import threading"),
    }


def test_dunder_and_frame_attributes_are_found_and_self_is_exempt_where_harmless():
    source = """
        def f(self, fn, other, exc):
            fn.__globals__["expected"] = 1
            code = fn.__code__
            self.__dict__["a"] = 1
            other.__dict__["a"] = 1
            kind = self.__class__
            every = other.__class__.__mro__[-1].__subclasses__()
            frame = exc.__traceback__.tb_frame.f_back.f_locals
            here = __file__
            return fn.__name__, type(self).__name__
        """
    assert found(source) == {
        (2, "__globals__"),
        (3, "__code__"),
        (5, "__dict__"),
        (7, "__class__"),
        (7, "__mro__"),
        (7, "__subclasses__"),
        (8, "__traceback__"),
        (8, "tb_frame"),
        (8, "f_back"),
        (8, "f_locals"),
        (9, "__file__"),
    }


def test_code_from_strings_and_namespaces_are_found():
    source = """
        exec("x = 1")
        y = eval("1 + 1")
        code = compile("1", "<s>", "eval")
        g = globals()
        run = eval
        pattern = re.compile("a")
        raise KeyboardInterrupt
        """
    expected = {
        (1, "exec"),
        (2, "eval"),
        (3, "compile"),
        (4, "globals"),
        (5, "eval"),
        (7, "KeyboardInterrupt"),
    }
    assert found(source) == expected


def test_computed_attribute_names_are_found_and_literal_ones_judged_by_their_value():
    source = """
        def f(self, obj, name, optimizer):
            getattr(obj, name)
            getattr(obj, "weight", None)
            getattr(obj, "__globals__")
            for method in ("step", "zero_grad"):
                getattr(optimizer, method)
            for attr, minimum in (("runs", 1), ("warmup", 0)):
                getattr(self, attr)
            for attr in ("step", "zero_grad"):
                attr = name
                getattr(obj, attr)
            values = [getattr(obj, key) for key in ("a", "b")]
            setattr(obj, name, 1)
            setattr(obj, "weight", 1)
            object.__setattr__(self, "scale", 1)
            object.__setattr__(obj, name, 1)
            hasattr(obj, name)
            get = getattr
            attrgetter(name)
            attrgetter("f.__closure__")
        """
    assert found(source) == {
        (2, "getattr(non-literal)"),
        (4, "__globals__"),
        (11, "getattr(non-literal)"),
        (13, "setattr(non-literal)"),
        (16, "setattr(non-literal)"),
        (18, "getattr(non-literal)"),
        (19, "attrgetter(non-literal)"),
        (20, "__closure__"),
    }


def test_patching_what_the_file_imports_is_found_and_the_own_package_is_not():
    source = """
        import numpy as np
        from tinytorch.layers import Linear
        from .kv_cache import KVCache
        np.testing.assert_allclose = lambda *a, **k: None
        setattr(np, "allclose", lambda *a, **k: True)
        del Linear.forward
        KVCache.limit = 3
        def f(layer):
            layer.weight = None
        """
    assert found(source) == {(4, "patch numpy"), (5, "patch numpy"), (6, "patch tinytorch")}


def test_a_file_that_does_not_parse_is_one_finding_at_its_line(tmp_path: Path):
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("import gc\n\ndef f(:\n    pass\n")
    (tmp_path / "nul.py").write_bytes(b"x = 1\x00\n")
    (tmp_path / "latin.py").write_bytes(b"s = '\xff'\n")
    findings = review_folder(tmp_path)
    assert [(f.file, f.line, f.name) for f in findings] == [
        ("broken.py", 3, "syntax error"),
        ("latin.py", 1, "syntax error"),
        ("nul.py", 1, "syntax error"),
    ]


def test_too_deep_code_is_a_finding_not_a_crash():
    for source in ("(" * 500 + ")" * 500, "x = " + "-" * 200_000 + "1", "a" + ".b" * 50_000 + " = 1"):
        assert [f.name for f in review_source(source)] == ["syntax error"]


def test_the_folder_walk_is_bounded_sorted_and_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.py").write_text("import gc\n")
    (tmp_path / "a.py").write_text("import sys\n")
    (tmp_path / "notes.txt").write_text("import gc\n")
    (tmp_path / "big.py").write_text("x = 1\n" * 10)
    (tmp_path / "link.py").symlink_to(tmp_path / "a.py")
    monkeypatch.setattr(review, "MAX_FILE_BYTES", 50)
    findings = review_folder(tmp_path)
    assert [(f.file, f.line, f.name) for f in findings] == [
        ("a.py", 1, "import sys"),
        ("big.py", 0, "file too large"),
        ("sub/deep.py", 1, "import gc"),
    ]
    monkeypatch.setattr(review, "MAX_FILES", 2)
    assert [f.name for f in review_folder(tmp_path)][-1] == "too many files"
    monkeypatch.setattr(review, "MAX_FILES", 100)
    (tmp_path / "many.py").write_text("exec('1')\n" * 6)
    monkeypatch.setattr(review, "MAX_FILE_BYTES", 10_000)
    monkeypatch.setattr(review, "MAX_FINDINGS", 3)
    assert [f.name for f in review_folder(tmp_path)][-1] == "too many findings"
    assert review_folder(tmp_path / "missing") == []


# --- the allow list --------------------------------------------------------------------------


def test_an_allowed_name_is_not_reported_by_name_subject_or_use():
    source = "import os\nos.cpu_count()\ngetattr(x, name)\nvars(x)\n"
    everything = {(1, "import os"), (3, "getattr(non-literal)"), (4, "vars")}
    assert found(source) == everything
    assert found(source, ("os", "getattr", "vars")) == set()
    assert found(source, ("import os", "getattr(non-literal)")) == {(4, "vars")}
    assert found(source, ("os.cpu_count",)) == everything - {(1, "import os")}
    assert found("from os import cpu_count\n", ("os.cpu_count",)) == set()
    # an entry below the module allows only that: any other use, or the module as a value, is listed
    assert found("import os\nos.cpu_count()\nos.kill(1, 9)\n", ("os.cpu_count",)) == {(1, "import os")}
    assert "os.kill" in review_source("import os\nos.kill(1, 9)\n", allow=("os.cpu_count",))[0].text
    assert found("import os\nf(os)\n", ("os.cpu_count",)) == {(1, "import os")}
    assert found("import os\nos = 1\n", ("os.cpu_count",)) == {(1, "import os")}
    assert found("from os import *\n", ("os.cpu_count",)) == {(1, "import os")}
    assert review.allowed("import threading", ["threading"]) and not review.allowed("import os", ["o"])


@pytest.mark.parametrize("module", READY, ids=lambda m: m.name)
def test_the_reference_and_the_stubs_give_no_finding_with_the_registry_allow_list(module: registry.Module):
    for tree in (module.solution, module.kata):
        findings = review_folder(ROOT / tree, module.review_allow)
        assert findings == [], f"{tree}: {[str(f) for f in findings]}; add to review_allow or fix the rule"


@pytest.mark.parametrize("module", [m for m in READY if m.review_allow], ids=lambda m: m.name)
def test_every_allow_entry_is_needed_by_the_reference(module: registry.Module):
    for entry in module.review_allow:
        rest = [e for e in module.review_allow if e != entry]
        assert review_folder(ROOT / module.solution, rest), (
            f"{module.name}: review_allow {entry!r} allows nothing"
        )


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    module=st.sampled_from(sorted(review.IMPORTS)),
    form=st.sampled_from(["import {m}", "import {m}.x as y", "from {m} import y", "y = __import__({q})"]),
    blank=st.integers(0, 5),
)
def test_every_flagged_module_is_found_in_every_import_form_at_its_line(module: str, form: str, blank: int):
    source = "import numpy as np\n" + "\n" * blank + form.format(m=module, q=repr(module)) + "\n"
    assert (blank + 2, f"import {module}") in {(f.line, f.name) for f in review_source(source)}


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
@example("def f(:\n")
@example(b"\xef\xbb\xbfimport gc\n")
def test_any_source_gives_findings_never_an_exception(source: str | bytes):
    findings = review_source(source, "k.py")
    assert all(isinstance(f, Finding) and f.file == "k.py" and f.line >= 0 for f in findings)
    assert all("\n" not in f.text for f in findings)


findings_strategy = st.lists(
    st.builds(
        Finding,
        st.text(max_size=120),
        st.integers(0, 10**6),
        st.sampled_from(["import gc", "exec"]),
        st.just(""),
    ),
    max_size=60,
)


@settings(max_examples=50, deadline=None)
@given(findings=findings_strategy, max_chars=st.integers(0, 300))
def test_a_summary_is_one_bounded_line_and_counts_what_it_leaves_out(findings: list[Finding], max_chars: int):
    text = summarize(findings, max_chars)
    assert len(text) <= max(max_chars, 40) and "\n" not in text and "\r" not in text
    assert (text == "") == (not findings)
    if findings and "more" not in text.rsplit("; ", 1)[-1]:
        assert text.count(";") >= len(findings) - 1


def test_summaries_read_as_the_gradebook_shows_them():
    findings = [Finding("core.py", 3, "import gc", ""), Finding("core.py", 10, "__globals__", "")]
    findings += [Finding("core.py", 20 + i, "exec", "") for i in range(2)]
    assert summarize(findings[:2]) == "import gc (core.py:3); __globals__ (core.py:10)"
    assert summarize(findings, 60) == "import gc (core.py:3); __globals__ (core.py:10); +2 more"
    assert summarize([]) == ""
    text = summarize_modules({"profiling": findings[:1], "caching": [], "benchmarking": findings[3:]})
    assert text == "profiling: import gc (core.py:3)\nbenchmarking: exec (core.py:21)"


# --- the command line ------------------------------------------------------------------------


def test_the_command_line_prints_the_findings_and_uses_the_module_allow_list(tmp_path: Path, capsys):
    (tmp_path / "submission.py").write_text("import os\nprint(os.cpu_count())\n")
    assert review.main([str(tmp_path)]) == 1
    assert "submission.py:1: import os: " in capsys.readouterr().out
    assert review.main([str(tmp_path), "--module", "benchmarking"]) == 0
    assert "0 findings" in capsys.readouterr().out
    assert review.main([str(tmp_path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)[0] == {
        "file": "submission.py",
        "line": 1,
        "name": "import os",
        "text": "processes, signals, the environment and files",
    }
    with pytest.raises(SystemExit):
        review.main([str(tmp_path), "--module", "no-such-module"])
