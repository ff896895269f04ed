"""Magnitude pruning: zero the weights of smallest |w|, exactly ``round(sparsity * n)`` of them.

A trained network is redundant: many weights are tiny and removing them barely changes its
output. Magnitude pruning keeps the ``n - k`` largest magnitudes and zeroes the other ``k``::

    k    = round(sparsity * n)          Python's round: half to even, round(2.5) == 2
    mask = True for the n - k largest |w| (kept), False for the k smallest (pruned)

*Ties* are broken by position: among equal magnitudes the entry that comes first in C order
(``weights.ravel()``) is pruned first, so the mask is deterministic and exactly ``k`` entries are
pruned even when many weights share the threshold value (all-equal weights, quantized weights).

*Layer-wise* pruning prunes every weight array to the same sparsity. *Global* pruning ranks all
of a model's weights together, with one threshold: layers with many small weights lose more of
them, and the overall sparsity is exactly ``round(sparsity * N) / N`` for the N weights in total.

``sparsity`` is a fraction in [0, 1] (0.7 means 70 % zeros). ``70`` is a ``ValueError``, not 70 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["check_sparsity", "check_weights", "global_magnitude_masks", "magnitude_mask", "magnitude_prune"]


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """``sparsity`` as a float in [0, 1]; ``TypeError`` for a non-number, ``ValueError`` outside [0, 1].

    A value in (1, 100] is almost always a percentage (``70`` for 70 %): the error says so and
    names the fraction to pass (``... not a percentage: 70 % is sparsity=0.7``).
    """
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(sparsity).__name__} {sparsity!r}")
    value = float(sparsity)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        hint = ""
        if 1.0 < value <= 100.0:
            hint = f"; it is a fraction, not a percentage: {value:g} % is {name}={value / 100:g}"
        raise ValueError(f"{name} must be a fraction in [0, 1], got {sparsity!r}{hint}")
    return value


def check_weights(weights: np.ndarray, name: str = "weights") -> np.ndarray:
    """``weights`` unchanged if it is a non-empty, finite, floating ``np.ndarray``.

    ``TypeError`` for anything else than a floating ndarray, ``ValueError`` for an empty array or
    one holding NaN or inf (its magnitudes cannot be ranked).
    """
    if not isinstance(weights, np.ndarray) or weights.dtype.kind != "f":
        what = f"dtype {weights.dtype}" if isinstance(weights, np.ndarray) else type(weights).__name__
        raise TypeError(f"{name} must be a floating np.ndarray, got {what}")
    if weights.size == 0:
        raise ValueError(f"{name} is empty (shape {weights.shape}): there is nothing to prune")
    if not np.all(np.isfinite(weights)):
        raise ValueError(f"{name} holds NaN or inf: magnitudes cannot be ranked")
    return weights


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """The keep-mask of magnitude pruning: ``False`` at the ``round(sparsity * n)`` smallest |w|.

    Shapes: weights (any shape, n entries) -> bool mask of the same shape, ``True`` = kept.
    Ties are broken by position (the earlier entry in C order is pruned first).

    >>> magnitude_mask(np.array([0.5, -0.1, 0.3, 0.1], np.float32), 0.5)
    array([ True, False,  True, False])
    """
    weights = check_weights(weights)
    sparsity = check_sparsity(sparsity)
    k = round(sparsity * weights.size)
    order = np.argsort(np.abs(weights), axis=None, kind="stable")  # ascending |w|, ties by index
    mask = np.ones(weights.size, dtype=bool)
    mask[order[:k]] = False
    return mask.reshape(weights.shape)


def magnitude_prune(weights: np.ndarray, sparsity: float) -> tuple[np.ndarray, np.ndarray]:
    """(pruned copy of ``weights``, keep-mask): the pruned entries are exactly 0 (never -0.0).

    The copy has the shape and dtype of ``weights``, which is not modified.
    """
    mask = magnitude_mask(weights, sparsity)
    return np.where(mask, weights, np.zeros((), weights.dtype)), mask


def global_magnitude_masks(arrays: Sequence[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """One threshold across all ``arrays``: their keep-masks, pruning ``round(sparsity * N)`` in total.

    N is the total number of entries. The magnitudes are ranked together, as if the arrays were
    one vector (each flattened in C order, in the order given), ties broken by that position.
    Shapes: a list of arrays -> a list of bool masks of the same shapes.
    """
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, Sequence) or len(arrays) == 0:
        raise ValueError("arrays must be a non-empty list of weight arrays")
    arrays = [check_weights(a, f"arrays[{i}]") for i, a in enumerate(arrays)]
    sparsity = check_sparsity(sparsity)
    flat = np.concatenate([np.abs(a).ravel() for a in arrays])
    mask = magnitude_mask(flat, sparsity)
    pieces = np.split(mask, np.cumsum([a.size for a in arrays])[:-1])
    return [piece.reshape(a.shape) for piece, a in zip(pieces, arrays, strict=True)]
