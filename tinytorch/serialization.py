"""Save and load a module's weights as ``.npz`` (one array per parameter, keyed by dotted name).

Loading never unpickles (``allow_pickle=False``) and checks the file against the module before
changing anything: a missing, corrupt, truncated or non-npz file, a missing or unexpected
parameter, a shape mismatch or a non-numeric array each raise ``ValueError`` naming the file and
the problem.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tinytorch.layers import Module

__all__ = ["load_weights", "save_weights"]


def save_weights(module: Module, path: str | os.PathLike) -> Path:
    """Write ``module.state_dict()`` to ``path`` exactly (no ``.npz`` is appended); returns the path.

    The file is written next to its destination and renamed into place, so an interrupted save
    never leaves a half-written file under ``path``.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **module.state_dict())
    os.replace(tmp, path)
    return path


_ZIP_MAGIC = b"PK\x03\x04"  # every .npz (a zip archive) starts with a local file header


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != _ZIP_MAGIC:
        raise ValueError(f"{path}: not an .npz file (it does not start with the zip signature)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated .npz file ({type(exc).__name__}: {exc})") from exc


def load_weights(module: Module, path: str | os.PathLike) -> None:
    """Load weights saved by :func:`save_weights` into ``module`` (in place).

    The checks are :meth:`Module.load_state_dict`'s (strict names, equal shapes, numeric
    dtypes; nothing changes unless all pass); their error is re-raised as a ``ValueError``
    that starts with the file's path.
    """
    path = Path(path)
    arrays = _read_npz(path)
    try:
        module.load_state_dict(arrays, strict=True)
    except (KeyError, ValueError) as err:
        reason = str(err.args[0]).removeprefix("load_state_dict: ")
        raise ValueError(f"{path}: {reason}") from err
