"""When, where and what ran (tinytorch/course/leaderboard/machine.py and watch.py): the machine
line and numpy's BLAS kernels, the code watch, and what ``tinytorch submit`` records from it.
"""

from __future__ import annotations

import io
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
from leaderboard_support import Generator, WatchedCompetition, WatchedSubmission, kata_function

from tinytorch.course import leaderboard
from tinytorch.course.leaderboard import Leaderboard


def test_blas_kernel_names_the_openblas_core_numpy_runs() -> None:
    import os

    built = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    info = leaderboard.blas_kernel()
    if "openblas" not in str(built.get("name", "")).lower():
        pytest.skip(f"numpy's BLAS is {built.get('name')!r}, not OpenBLAS: no core name to read")
    assert info["library"] == "OpenBLAS", f"library of numpy's BLAS: {info}"
    assert isinstance(info["architecture"], str) and info["architecture"] not in ("", "unknown"), (
        f"OpenBLAS core name (openblas_get_corename): {info}"
    )
    assert info["version"] and str(built.get("version", "")).startswith(info["version"]), (
        f"OpenBLAS version (openblas_get_config) against numpy's build's {built.get('version')!r}: {info}"
    )
    assert isinstance(info["threads"], int) and info["threads"] >= 1, f"OpenBLAS threads: {info}"
    assert "/" not in info["file"] and os.sep not in info["file"], f"library file name, no folder: {info}"
    summary = leaderboard.blas_summary(info)
    assert summary == f"OpenBLAS {info['version']} {info['architecture']}", f"short BLAS line: {summary!r}"
    assert summary in leaderboard.machine_description(), "the machine line names BLAS and its kernels"


def test_blas_kernel_never_raises_on_a_missing_library_or_missing_symbols(tmp_path: Path) -> None:
    import _ctypes

    unknown = {"version": None, "architecture": "unknown", "threads": None, "config": None}
    missing = leaderboard.blas_kernel(str(tmp_path / "libopenblas.so"))
    assert missing == {"library": "OpenBLAS", "file": "libopenblas.so", **unknown}, (
        f"a library file that does not exist: {missing}"
    )
    real = getattr(_ctypes, "__file__", None)
    if real:  # a real shared library without any openblas_* symbol, under an OpenBLAS name
        fake = tmp_path / "libscipy_openblas64_-fake.so"
        fake.symlink_to(real)
        no_symbols = leaderboard.blas_kernel(str(fake))
        assert no_symbols == {"library": "OpenBLAS", "file": fake.name, **unknown}, (
            f"a library without OpenBLAS's symbols: {no_symbols}"
        )
    mkl = leaderboard.blas_kernel("/opt/intel/libmkl_rt.so.2")
    assert mkl == {"library": "MKL", "file": "libmkl_rt.so.2", **unknown}, f"MKL, kernels unknown: {mkl}"
    assert leaderboard.blas_summary(mkl) == "MKL (kernels unknown)", "short line, no core name"
    assert leaderboard.blas_kernel("") == {"library": "unknown", "file": None, **unknown}, "no library at all"


def test_the_machine_is_described_by_its_cpu_and_cores_without_host_or_user_names() -> None:
    import getpass
    import os
    import platform

    text = leaderboard.machine_description()
    assert leaderboard.cpu_model() in text and f"{os.cpu_count()} cores" in text, f"cpu and cores: {text}"
    for private in (platform.node(), getpass.getuser()):
        if len(private) >= 4:  # a name that short could be part of a CPU model by chance
            assert private not in text, f"the machine line must not carry {private!r}: {text}"


def test_submit_records_what_ran_and_a_foundation_cache_is_not_module_19(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kv-cache named by a submission whose generator fell back to the foundation's cache is shown as
    the foundation's cache; an optimization named and never run as not seen; one run and not named
    as not named; module 18's pruning by the tree that served it."""
    import tinytorch.perf.benchmarking as perf_benchmarking

    monkeypatch.setattr(perf_benchmarking, "build_submission", WatchedSubmission)
    monkeypatch.setattr(perf_benchmarking, "TinyMLPerf", WatchedCompetition)
    args = Namespace(
        json=None, name=None, author=None, save_json=None, db=str(tmp_path / "w.sqlite3"), quick=True
    )
    out = io.StringIO()
    assert leaderboard.cli_submit(args, out) == 0, out.getvalue()
    (got,) = Leaderboard(args.db).entries()
    compression = got.served["compression"]
    assert compression in leaderboard.SOURCES, f"the tree that served module 18: {got.served}"
    assert got.observed == {
        "fused-inference": "MLP_SPRINT without the foundation's layers",
        "int8-quantization": leaderboard.NOT_SEEN,
        "structured-pruning": f"{compression} module 18",
        "sparse-csr": f"{compression} module 18",
        "kv-cache": leaderboard.FOUNDATION_CACHE,
    }, f"what ran, as recorded: {got.observed}"
    assert got.machine == leaderboard.machine_description(), "the machine line of the CLI's path"
    cell = leaderboard.optimizations_text(got.optimizations, got.observed)
    for shown in (
        "kv-cache (the foundation's cache, not module 19)",
        "int8-quantization (not seen)",
        f"sparse-csr ({compression} module 18; not named)",
    ):
        assert shown in cell and shown in Leaderboard(args.db).to_markdown(), f"the board shows {shown!r}"


def test_a_watch_sees_module_19_before_the_foundation_and_restores_the_tracer() -> None:

    previous = sys.gettrace()
    cached_forward = kata_function("caching", "cached_forward")
    with leaderboard.CodeWatch() as watch:
        cached_forward()
        Generator().generate(np.array([[1, 2]]), 3)
    assert sys.gettrace() is previous, "the watch leaves the tracer as it found it"
    assert watch.foundation_cache and ("caching", "cached_forward") in watch.kata_functions()
    source = leaderboard.served_modules()["caching"]
    observed = leaderboard.observe(["kv-cache"], {"TRANSFORMER_DECATHLON": watch})
    assert observed == {"kv-cache": f"{source} module 19"}, f"module 19's code ran: {observed}"


def test_the_code_watch_needs_no_checkout(monkeypatch) -> None:
    """The grader runs module 20 in a stage without katas/: naming each module's source must not
    need the checkout (every module is then served from a folder)."""
    import tinytorch.perf.profiling  # noqa: F401  (one kata module loaded, to be named)

    from tinytorch.course import registry

    def no_checkout() -> Path:
        raise FileNotFoundError("no katas/ folder")

    monkeypatch.setattr(registry, "repo_root", no_checkout)
    found = leaderboard.watch._kata_folders()
    assert ("profiling", "folder") in found.values(), f"the loaded module named without a checkout: {found}"
