"""A synthetic sequence task for the transformer: sort a short string of digits.

Each example is ``length`` random digits, a separator, then the same digits sorted::

    3 1 4 1 5 | 1 1 3 4 5          (length = 5, tokens 0..9 are the digits, 10 is "|")

A GPT learns it by next-token prediction (as in minGPT's sort demo): the model reads the
sequence without its last token and predicts every next token, and the loss counts only the
positions whose target is an answer digit (``mask``); the prompt digits are random, so
predicting them would only add noise. At test time the model gets the prompt (the digits and
the separator) and generates ``length`` tokens greedily; an example counts as solved when every
generated digit is right (:func:`sequence_accuracy`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tinytorch.layers import check_int

VOCAB: tuple[str, ...] = tuple("0123456789") + ("|",)
VOCAB_SIZE = len(VOCAB)
SEP = VOCAB.index("|")  # the separator token between the digits and their sorted copy
DEFAULT_LENGTH = 6


class SequenceTask(NamedTuple):
    """A batch of the sorting task, ready for next-token training.

    With ``L`` digits per example, the full sequence is ``digits | sorted`` (2L + 1 tokens):

    * ``inputs``  int64 (n, 2L): the sequence without its last token;
    * ``targets`` int64 (n, 2L): the sequence without its first token (``targets[:, t]`` is the
      token that follows ``inputs[:, t]``);
    * ``mask``    bool  (n, 2L): True where the target is an answer digit (the last L columns).
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray

    @property
    def length(self) -> int:
        """L, the number of digits to sort."""
        return self.inputs.shape[1] // 2

    @property
    def prompts(self) -> np.ndarray:
        """int64 (n, L + 1): the digits and the separator, what generation starts from."""
        return self.inputs[:, : self.length + 1]

    @property
    def answers(self) -> np.ndarray:
        """int64 (n, L): the expected output, the sorted digits."""
        return self.targets[:, self.length :]


def make_sequence_task(n: int, seed: int, length: int = DEFAULT_LENGTH) -> SequenceTask:
    """Draw ``n`` sorting examples of ``length`` digits from ``np.random.default_rng(seed)``.

    The same (n, seed, length) always gives the same arrays, and a larger ``n`` with the same
    seed extends the smaller batch (its first rows are identical).
    """
    n = check_int(n, "n", 1)
    seed = check_int(seed, "seed", 0)
    length = check_int(length, "length", 1)
    digits = np.random.default_rng(seed).integers(0, 10, size=(n, length), dtype=np.int64)
    sep = np.full((n, 1), SEP, dtype=np.int64)
    full = np.concatenate([digits, sep, np.sort(digits, axis=1)], axis=1)  # (n, 2L + 1)
    mask = np.zeros((n, 2 * length), dtype=bool)
    mask[:, length:] = True
    return SequenceTask(inputs=full[:, :-1], targets=full[:, 1:], mask=mask)


def _check_pair(predicted: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted, expected = np.asarray(predicted), np.asarray(expected)
    if predicted.shape != expected.shape:
        raise ValueError(
            f"predicted and expected must have the same shape, got {predicted.shape} and {expected.shape}"
        )
    if predicted.ndim != 2 or predicted.shape[0] == 0:
        raise ValueError(f"predicted must be a non-empty (n, L) array of tokens, got shape {predicted.shape}")
    return predicted, expected


def sequence_accuracy(predicted: np.ndarray, expected: np.ndarray) -> float:
    """Exact match: the fraction of rows where every token of ``predicted`` equals ``expected``.

    Both are integer arrays of shape (n, L), e.g. generated answers and ``task.answers``.
    """
    predicted, expected = _check_pair(predicted, expected)
    return float(np.mean(np.all(predicted == expected, axis=1)))


def token_accuracy(predicted: np.ndarray, expected: np.ndarray) -> float:
    """Per-token accuracy: the fraction of all n * L positions that match."""
    predicted, expected = _check_pair(predicted, expected)
    return float(np.mean(predicted == expected))


def encode(text: str) -> np.ndarray:
    """Token ids of a string over the vocabulary, e.g. ``encode("31|13")`` -> [3, 1, 10, 1, 3]."""
    unknown = sorted(set(text) - set(VOCAB))
    if unknown:
        raise ValueError(f"text contains characters outside the vocabulary {''.join(VOCAB)!r}: {unknown}")
    return np.array([VOCAB.index(ch) for ch in text], dtype=np.int64)


def decode(tokens: np.ndarray) -> str:
    """The string of a 1-D sequence of token ids (inverse of :func:`encode`)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or (tokens.size and (tokens.min() < 0 or tokens.max() >= VOCAB_SIZE)):
        raise ValueError(f"tokens must be a 1-D array of ids in [0, {VOCAB_SIZE}), got {tokens!r}")
    return "".join(VOCAB[int(t)] for t in tokens)
