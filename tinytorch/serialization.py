"""Save and load a module's weights as ``.npz`` (one array per parameter, keyed by dotted name).

Loading never unpickles (``allow_pickle=False``) and checks the file against the module before
changing anything: a missing, corrupt, truncated or non-npz file, a missing or unexpected
parameter, a shape mismatch or a non-numeric array each raise ``ValueError`` naming the file and
the problem.

The checks come *before* any array is decompressed. An ``.npz`` is a zip archive of ``.npy``
files; the zip's directory gives each entry's name and uncompressed size, and each ``.npy``
starts with a small header giving its dtype and shape. Those are read first and compared with
the model (names, shapes, numeric dtypes, and a size that is exactly header + shape x itemsize),
so a small file that would decompress to gigabytes, or to arrays the model has no use for, is
refused having read a few hundred bytes. Only then is the data read, into arrays no larger than
the model's parameters.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from tinytorch.layers import Module

__all__ = ["load_weights", "save_weights"]

_NPY_HEADER_LIMIT = 10_000  # bytes; numpy's own default limit for a trusted .npy header


def save_weights(module: Module, path: str | os.PathLike) -> Path:
    """Write ``module.state_dict()`` to ``path`` exactly (no ``.npz`` is appended); returns the path.

    The file is written next to its destination and renamed into place, so an interrupted save
    never leaves a half-written file under ``path``, and a failed one leaves no temporary file
    either. A ``path`` that is a directory is a ``ValueError``.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"save_weights: {path} is a directory; give the path of the .npz file to write")
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **module.state_dict())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


_ZIP_MAGIC = b"PK\x03\x04"  # every .npz (a zip archive) starts with a local file header


class _Refused(ValueError):
    """A problem found in the archive's headers (reported as is, not as corruption)."""


def _npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length in bytes) of the .npy file open in ``f``; reads only the header."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=_NPY_HEADER_LIMIT)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=_NPY_HEADER_LIMIT)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(shape), np.dtype(dtype), f.tell()


def _check_entries(
    path: Path, archive: zipfile.ZipFile, expected: dict[str, tuple[int, ...]]
) -> dict[str, zipfile.ZipInfo]:
    """The archive's entries by parameter name, checked against ``expected`` (name -> shape)
    from the zip directory and the .npy headers alone."""
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name == info.filename or name in entries:
            raise _Refused(f"entry {info.filename!r} is not one .npy array per parameter")
        entries[name] = info
    missing = [n for n in expected if n not in entries]
    unexpected = [n for n in entries if n not in expected]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing parameter(s) {missing}")
        if unexpected:
            problems.append(f"unexpected parameter(s) {unexpected}")
        raise _Refused("; ".join(problems))
    for name, info in entries.items():
        with archive.open(info) as f:
            shape, dtype, header = _npy_header(f)
        if dtype.hasobject:
            raise _Refused(
                f"parameter '{name}' holds Python objects (dtype {dtype}), which only pickle could "
                "load: refused"
            )
        if dtype.kind not in "biuf":
            raise _Refused(f"parameter '{name}' has non-numeric dtype {dtype}")
        if shape != expected[name]:
            raise _Refused(
                f"shape mismatch for parameter '{name}': the model has {expected[name]}, "
                f"the weights have {shape}"
            )
        needed = header + math.prod(shape) * dtype.itemsize
        if info.file_size != needed:
            raise _Refused(
                f"entry '{info.filename}' declares {info.file_size} bytes but a {dtype} array of shape "
                f"{shape} takes {needed}: corrupt or padded, refused before decompressing it"
            )
    return entries


def _read_npz(path: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != _ZIP_MAGIC:
        raise ValueError(f"{path}: not an .npz file (it does not start with the zip signature)")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = _check_entries(path, archive, expected)
            arrays = {}
            for name, info in entries.items():
                with archive.open(info) as f:
                    arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
            return arrays
    except _Refused as err:
        raise ValueError(f"{path}: {err}") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated .npz file ({type(exc).__name__}: {exc})") from exc


def load_weights(module: Module, path: str | os.PathLike) -> None:
    """Load weights saved by :func:`save_weights` into ``module`` (in place).

    The archive's entries are checked against the module's parameters (names, shapes, numeric
    dtypes, sizes) from its headers before any data is read; then the checks of
    :meth:`Module.load_state_dict` run (nothing changes unless all pass). Every error is a
    ``ValueError`` that starts with the file's path.
    """
    path = Path(path)
    expected = {name: tuple(p.shape) for name, p in module.named_parameters()}
    arrays = _read_npz(path, expected)
    try:
        module.load_state_dict(arrays, strict=True)
    except (KeyError, ValueError) as err:  # pragma: no cover - _read_npz has checked the same
        reason = str(err.args[0]).removeprefix("load_state_dict: ")
        raise ValueError(f"{path}: {reason}") from err
