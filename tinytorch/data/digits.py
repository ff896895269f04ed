"""The UCI handwritten digits: 1,797 images of 8x8 pixels, values 0..16, labels 0..9.

The arrays ship inside the package as ``digits.npz`` (see ``DIGITS.md`` for provenance, licence
and checksum). :func:`load_digits` returns float32 images shaped ``(N, 1, 8, 8)`` (NCHW, ready
for ``Conv2d``; flatten them for an MLP) and int64 labels.

The train/test split is stratified and fixed: in every class, a permutation drawn from
``np.random.default_rng(SPLIT_SEED)`` puts ``round(TEST_FRACTION * n_class)`` images in the
test split and the rest in the train split. That gives 1,438 train and 359 test images, with
every digit at the same 80/20 ratio (to within one image).
"""

from __future__ import annotations

import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

DIGITS_FILE = Path(__file__).with_name("digits.npz")
NUM_CLASSES = 10
NUM_IMAGES = 1797
IMAGE_SIZE = 8
MAX_PIXEL = 16  # each pixel counts the "on" bits of a 4x4 block of a 32x32 bitmap: 0..16
TEST_FRACTION = 0.2
SPLIT_SEED = 0
SPLITS = ("train", "test", "all")


def stratified_split(
    labels: np.ndarray, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into (train, test), keeping every class at the same ratio.

    For each class c with n_c samples, a seeded permutation of its indices sends the first
    ``round(test_fraction * n_c)`` to the test split. Both index arrays are returned sorted
    (int64), disjoint, and together cover ``range(len(labels))``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    rng = np.random.default_rng(seed)
    test_parts = []
    for c in np.unique(labels):  # sorted classes: the draw order is fixed
        members = np.flatnonzero(labels == c)
        n_test = int(round(test_fraction * members.size))
        test_parts.append(rng.permutation(members)[:n_test])
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.zeros(0, dtype=np.int64)
    is_test = np.zeros(labels.size, dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test).astype(np.int64), test.astype(np.int64)


def _read_digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate the shipped arrays: images uint8 (N, 8, 8) in 0..16, labels uint8 (N,)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"digits data file {path} is missing; it ships with the package "
            "(reinstall tinytorch, or see tinytorch/data/DIGITS.md to rebuild it)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        # not an npz (numpy then refuses to unpickle it), truncated, or holding object arrays
        raise ValueError(f"digits data file {path} is corrupt or not an .npz file: {err}") from err
    missing = {"images", "labels"} - set(arrays)
    if missing:
        raise ValueError(f"digits data file {path} is corrupt: missing arrays {sorted(missing)}")
    images, labels = arrays["images"], arrays["labels"]
    size = IMAGE_SIZE
    if images.dtype != np.uint8 or images.shape != (NUM_IMAGES, size, size):
        raise ValueError(
            f"digits data file {path} is corrupt: images should be uint8 {(NUM_IMAGES, size, size)}, "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.shape != (NUM_IMAGES,):
        raise ValueError(
            f"digits data file {path} is corrupt: labels should be uint8 ({NUM_IMAGES},), "
            f"got {labels.dtype} {labels.shape}"
        )
    if images.max() > MAX_PIXEL or labels.max() >= NUM_CLASSES:
        raise ValueError(f"digits data file {path} is corrupt: pixel or label values out of range")
    return images, labels


@lru_cache(maxsize=4)
def _cached_digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _read_digits(path)
    images.flags.writeable = False  # shared by every caller: copies are handed out
    labels.flags.writeable = False
    return images, labels


def load_digits(
    split: str = "train", normalize: bool = True, path: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load the UCI digits.

    Args:
        split: ``"train"`` (1,438 images), ``"test"`` (359) or ``"all"`` (1,797, file order).
        normalize: divide pixels by 16 so they lie in [0, 1]; otherwise keep 0..16 (as float32).
        path: the .npz to read (default: the file shipped in the package).

    Returns:
        ``x`` float32 of shape (N, 1, 8, 8) and ``y`` int64 of shape (N,) with values 0..9;
        fresh arrays the caller may modify.

    Raises:
        ValueError: unknown ``split``, or a corrupt data file.
        FileNotFoundError: the data file is missing.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    images, labels = _cached_digits(Path(path) if path is not None else DIGITS_FILE)
    if split == "all":
        index = np.arange(labels.size)
    else:
        train, test = stratified_split(labels)
        index = train if split == "train" else test
    x = images[index].astype(np.float32)[:, None, :, :]
    if normalize:
        x /= np.float32(MAX_PIXEL)
    return x, labels[index].astype(np.int64)
