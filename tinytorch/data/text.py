"""Character-level text: Python's own reference documentation, for the long-context zoo GPT.

The text is the ``pydoc_data.topics`` module that ships with CPython (the help pages that
``help("assert")`` prints: 79 topics, about 465,000 characters), extracted once from Python
3.11.7 and shipped compressed as ``pydoc_topics.json.gz`` (see ``PYDOC_TOPICS.md`` for the
licence, the PSF licence, and the checksums), so the data does not change with the Python
version that runs the course.

The alphabet is fixed: the newline and the 95 printable ASCII characters (space .. ``~``),
``TEXT_VOCAB_SIZE = 96`` tokens, token id = position in :data:`CHARS`. The extraction already
mapped the few typographic characters of the source to ASCII (curly quotes to straight ones,
dashes to ``-``, the ellipsis to ``...``), so every shipped character has a token.

Split: topics sorted by name, every :data:`TEST_EVERY`-th one (indices 9, 19, ...) is held out
for the ``test`` split; the topics of a split are joined with a blank line between them.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from tinytorch.layers import check_int

__all__ = [
    "CHARS",
    "TEXT_FILE",
    "TEXT_SPLITS",
    "TEXT_VOCAB_SIZE",
    "decode_text",
    "encode_text",
    "load_text",
    "load_topics",
    "text_windows",
]

TEXT_FILE = Path(__file__).with_name("pydoc_topics.json.gz")
CHARS: str = "\n" + "".join(chr(c) for c in range(32, 127))
TEXT_VOCAB_SIZE = len(CHARS)  # 96
TEXT_SPLITS = ("train", "test", "all")
TEST_EVERY = 10
_INDEX = np.full(128, -1, dtype=np.int64)
_INDEX[[ord(c) for c in CHARS]] = np.arange(TEXT_VOCAB_SIZE)


@lru_cache(maxsize=1)
def load_topics() -> dict[str, str]:
    """The shipped topics, ``{name: text}`` in name order (every character in :data:`CHARS`)."""
    if not TEXT_FILE.is_file():
        raise FileNotFoundError(f"{TEXT_FILE}: the shipped text is missing (see PYDOC_TOPICS.md)")
    topics = json.loads(gzip.decompress(TEXT_FILE.read_bytes()).decode("utf-8"))
    if not isinstance(topics, dict) or not all(isinstance(v, str) for v in topics.values()):
        raise ValueError(f"{TEXT_FILE}: expected a JSON object of topic name -> text")
    return dict(sorted(topics.items()))


def load_text(split: str = "train") -> str:
    """The text of a split: ``"train"`` (90 % of the topics), ``"test"`` (every 10th) or ``"all"``."""
    if split not in TEXT_SPLITS:
        raise ValueError(f"split must be one of {TEXT_SPLITS}, got {split!r}")
    texts = list(load_topics().values())
    if split == "test":
        texts = texts[TEST_EVERY - 1 :: TEST_EVERY]
    elif split == "train":
        texts = [t for i, t in enumerate(texts) if i % TEST_EVERY != TEST_EVERY - 1]
    return "\n\n".join(texts)


def encode_text(text: str) -> np.ndarray:
    """Token ids int64 (len(text),); ``ValueError`` naming the first character outside :data:`CHARS`."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    ids = np.where(codes < 128, _INDEX[np.minimum(codes, 127)], -1)
    bad = np.flatnonzero(ids < 0)
    if bad.size:
        raise ValueError(f"text: character {text[bad[0]]!r} at index {bad[0]} is not in the alphabet CHARS")
    return ids


def decode_text(ids: np.ndarray) -> str:
    """The string of token ids (any integer array of values in 0..95, read in C order)."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= TEXT_VOCAB_SIZE):
        raise ValueError(f"ids must be in 0..{TEXT_VOCAB_SIZE - 1}, got {ids.min()}..{ids.max()}")
    return "".join(CHARS[i] for i in ids.reshape(-1).tolist())


def text_windows(
    split: str, length: int, stride: int | None = None, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Next-character examples: (inputs, targets), both int64 (n, length).

    Windows of ``length + 1`` characters start every ``stride`` characters (default
    ``length``: consecutive, non-overlapping predictions); inputs are each window without its
    last character, targets without its first (``targets[:, t]`` follows ``inputs[:, t]``).
    ``limit`` keeps the first ``limit`` windows.
    """
    length = check_int(length, "length")
    stride = length if stride is None else check_int(stride, "stride")
    ids = encode_text(load_text(split))
    windows = np.lib.stride_tricks.sliding_window_view(ids, length + 1)[::stride]
    if limit is not None:
        windows = windows[: check_int(limit, "limit")]
    return np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, 1:])
