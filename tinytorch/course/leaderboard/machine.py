"""Where a submission was measured: the machine on one line, without host or user names.

A speedup depends on the machine that measured it, so every entry carries
:func:`machine_description`: the CPU model (:func:`cpu_model`), the cores, the OS and
architecture, numpy, its BLAS and the kernels that BLAS runs (:func:`blas_kernel`, read from the
library itself as threadpoolctl does, without depending on it), and the BLAS threads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, sysctl on macOS), else platform's guess."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value and not value.isdigit():
                    return value
    except OSError:
        pass
    if sys.platform == "darwin":  # pragma: no cover - platform specific
        import subprocess

        done = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, check=False
        )
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return platform.processor() or platform.machine() or "unknown"


# The BLAS libraries numpy may load, by a word of the file name (threadpoolctl's prefixes).
_BLAS_FILE_WORDS = (
    ("openblas", "OpenBLAS"),
    ("mkl_rt", "MKL"),
    ("flexiblas", "FlexiBLAS"),
    ("blis", "BLIS"),
    ("accelerate", "Accelerate"),
)
# scipy-openblas (numpy's wheels) renames its symbols, e.g. scipy_openblas_get_corename64_: every
# prefix and suffix threadpoolctl's OpenBLASController tries.
_OPENBLAS_PREFIXES = ("", "scipy_")
_OPENBLAS_SUFFIXES = ("", "64_", "_64")


def _blas_library_path() -> str | None:
    """The BLAS shared library this process loaded for numpy: the first mapped file whose name
    holds a known BLAS word (/proc/self/maps, Linux), else one shipped inside numpy's wheel."""
    import numpy  # noqa: F401  - loads its BLAS, so the mapping below lists it

    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            fields = line.split(maxsplit=5)  # address, perms, offset, dev, inode, path
            path = fields[5] if len(fields) == 6 else ""
            if any(word in Path(path).name.lower() for word, _ in _BLAS_FILE_WORDS):
                return path
    except OSError:
        pass
    root = Path(numpy.__file__).parent  # wheels: numpy.libs/ (Linux), numpy/.dylibs (macOS)
    for folder in (root.parent / "numpy.libs", root / ".dylibs", root / ".libs"):
        for candidate in sorted(folder.glob("*")) if folder.is_dir() else ():
            if any(word in candidate.name.lower() for word, _ in _BLAS_FILE_WORDS):
                return str(candidate)
    return None


def blas_kernel(library: str | None = None) -> dict[str, Any]:
    """Which BLAS numpy uses and which kernels it runs, as threadpoolctl reports it (its
    ``internal_api`` and ``architecture``) without depending on it: a dict with ``library``
    ("OpenBLAS", "MKL", ..., or "unknown"), ``file`` (the library's file name, no folder),
    ``version``, ``architecture`` (OpenBLAS's core name, e.g. "Haswell": a DYNAMIC_ARCH build
    picks its kernels at load and may run AVX2 kernels on an AVX-512 CPU, which matters beside
    an INT8 GEMM that uses VNNI), ``threads`` and ``config``. Only OpenBLAS tells its kernels;
    other libraries give "unknown" there.

    ``library``: the shared library's path (default: the one numpy loaded). Never raises: a
    missing file, an unreadable library or a missing symbol give "unknown" fields.
    """
    info: dict[str, Any] = {
        "library": "unknown",
        "file": None,
        "version": None,
        "architecture": "unknown",
        "threads": None,
        "config": None,
    }
    try:
        path = library if library is not None else _blas_library_path()
        if not path:
            return info
        name = Path(path).name
        info["file"] = name
        info["library"] = next((label for word, label in _BLAS_FILE_WORDS if word in name.lower()), "unknown")
        if info["library"] != "OpenBLAS":
            return info
        import ctypes
        import itertools

        dynlib = ctypes.CDLL(path)

        def symbol(base: str) -> Any:
            for prefix, suffix in itertools.product(_OPENBLAS_PREFIXES, _OPENBLAS_SUFFIXES):
                found = getattr(dynlib, f"{prefix}{base}{suffix}", None)
                if found is not None:
                    return found
            return None

        for key, base, restype in (
            ("architecture", "openblas_get_corename", ctypes.c_char_p),
            ("config", "openblas_get_config", ctypes.c_char_p),
            ("threads", "openblas_get_num_threads", ctypes.c_int),
        ):
            function = symbol(base)
            if function is None:
                continue
            function.restype = restype
            function.argtypes = []
            value = function()
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace").strip()
            if value not in (None, ""):
                info[key] = value
        words = (info["config"] or "").split()
        if len(words) >= 2 and words[0] == "OpenBLAS":  # "OpenBLAS 0.3.31 DYNAMIC_ARCH ..."
            info["version"] = words[1]
    except Exception:  # informative only: a machine description must never stop a run
        pass
    return info


def blas_summary(info: dict[str, Any] | None = None) -> str:
    """:func:`blas_kernel` on a few words: "OpenBLAS 0.3.31 Haswell", "MKL (kernels unknown)"."""
    info = blas_kernel() if info is None else info
    words = [str(info.get("library") or "unknown")]
    if info.get("version"):
        words.append(str(info["version"]))
    architecture = info.get("architecture")
    words.append(str(architecture) if architecture and architecture != "unknown" else "(kernels unknown)")
    return " ".join(words)


def machine_description() -> str:
    """Where a submission was measured, on one line and without host or user names: the CPU
    model, the cores, the OS and architecture, numpy, its BLAS with the kernels it runs, and
    its threads."""
    import platform

    numpy = sys.modules.get("numpy")
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or "unpinned"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"numpy {getattr(numpy, '__version__', '?')}, {blas_summary()}, BLAS threads {threads}"
    )
