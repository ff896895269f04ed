"""Pruning a model: masks for every weight matrix, held through fine-tuning, and a sparsity report.

The prunable weights are the ``weight`` of every ``Linear`` and ``Conv2d`` (biases are few and
are kept). :func:`prune_model` zeroes them in place, layer by layer or with one global threshold,
and returns the masks ``{parameter name: keep-mask}``.

Pruning costs accuracy; a short *fine-tune* wins most of it back. The optimizer knows nothing
about the masks, so after every step it has moved the pruned weights away from zero again (Adam
moves every weight that has a gradient; momentum and weight decay move weights whose gradient is
0). :class:`MaskedOptimizer` re-applies the masks after every ``step()``: the zeros stay zeros::

    masks = prune_model(model, 0.7, scope="global")
    fine_tune(model, masks, x_train, y_train)          # Adam wrapped in a MaskedOptimizer
    sparsity_report(model).overall                      # still 0.7 (to the nearest weight)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tinytorch.conv import Conv2d
from tinytorch.layers import Linear, Module
from tinytorch.losses import cross_entropy
from tinytorch.optim import Adam
from tinytorch.tensor import Tensor
from tinytorch.training import fit, minibatches

from .magnitude import check_sparsity, global_magnitude_masks, magnitude_mask  # noqa: F401 (yours to use)

__all__ = [
    "PRUNABLE",
    "SCOPES",
    "MaskedOptimizer",
    "SparsityReport",
    "apply_masks",
    "check_masks",
    "fine_tune",
    "prunable_weights",
    "prune_model",
    "sparsity_report",
]

PRUNABLE = (Linear, Conv2d)
SCOPES = ("layer", "global")


def prunable_weights(model: Module) -> list[tuple[str, Tensor]]:
    """(parameter name, weight) of every ``Linear`` and ``Conv2d`` in ``model``, in module order.

    The names are those of ``model.named_parameters()`` (``"layers.1.weight"``). ``TypeError`` if
    ``model`` is not a Module, ``ValueError`` if it has no such layer (nothing to prune).
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a tinytorch Module, got {type(model).__name__}")
    found = [
        (f"{name}.weight" if name else "weight", module.weight)
        for name, module in model.named_modules()
        if isinstance(module, PRUNABLE)
    ]
    if not found:
        raise ValueError(
            f"model {type(model).__name__} has no Linear or Conv2d weights to prune (a layer without weights)"
        )
    return found


def check_masks(model: Module, masks: Mapping[str, np.ndarray]) -> list[tuple[Tensor, np.ndarray]]:
    """(parameter, mask) pairs for ``masks``; ``KeyError`` for a name the model does not have,
    ``ValueError`` for a mask that is not a bool array of the parameter's shape."""
    params = dict(model.named_parameters())
    pairs = []
    for name, mask in masks.items():
        if name not in params:
            raise KeyError(f"mask {name!r}: the model has no parameter of that name")
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != params[name].shape:
            raise ValueError(
                f"mask {name!r} must be a bool array of shape {params[name].shape}, "
                f"got {mask.dtype} {mask.shape}"
            )
        pairs.append((params[name], mask))
    return pairs


def prune_model(model: Module, sparsity: float, scope: str = "layer") -> dict[str, np.ndarray]:
    """Magnitude-prune every Linear and Conv2d weight of ``model`` in place; return the masks.

    ``scope="layer"``: each weight array loses ``round(sparsity * n)`` of its n entries.
    ``scope="global"``: one ranking over all of them together, ``round(sparsity * N)`` in total.
    Returns ``{parameter name: bool keep-mask}`` (names as in ``model.named_parameters()``).
    ``ValueError`` for a model without a Linear or Conv2d (:func:`prunable_weights` says so).

    Example: ``Sequential(Linear(4, 2), ReLU(), Linear(2, 1))`` at 0.5, ``scope="layer"``: 4 of
    ``layers.0.weight``'s 8 entries and 1 of ``layers.2.weight``'s 2 become 0; the masks are
    ``{"layers.0.weight": (4, 2) bool, "layers.2.weight": (2, 1) bool}``. Biases are untouched.

    Task: the masks from magnitude.py (per weight, or one global ranking), applied to the model.
    """
    sparsity = check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    raise NotImplementedError(
        "prune_model (module 18, compression): implement it in katas/compression/pruning.py"
    )


def apply_masks(model: Module, masks: Mapping[str, np.ndarray]) -> None:
    """Set every masked-out weight to exactly 0, in place: ``w[~mask] = 0`` for each named mask.

    Task: :func:`check_masks` gives the (parameter, mask) pairs; change ``param.data`` in place
    (the optimizer holds these very arrays).
    """
    raise NotImplementedError(
        "apply_masks (module 18, compression): implement it in katas/compression/pruning.py"
    )


class MaskedOptimizer:
    """An optimizer whose ``step()`` keeps pruned weights at zero.

    Wraps any optimizer (``SGD``, ``Adam``, a learning-rate schedule: anything with ``step()`` and
    ``zero_grad()``); ``masks`` as returned by :func:`prune_model`, checked here
    (:func:`check_masks`): a bad mask is refused at once, not at the first step.
    """

    def __init__(self, optimizer, model: Module, masks: Mapping[str, np.ndarray]) -> None:
        for method in ("step", "zero_grad"):
            if not callable(getattr(optimizer, method, None)):
                raise TypeError(f"optimizer must have a {method}() method, got {type(optimizer).__name__}")
        check_masks(model, masks)
        self.optimizer = optimizer
        self.model = model
        self.masks = dict(masks)

    def zero_grad(self) -> None:
        """The wrapped optimizer's ``zero_grad()``."""
        self.optimizer.zero_grad()

    def step(self) -> None:
        """One step of the wrapped optimizer, then the masks again: pruned weights are 0 after it.

        Task: masking the gradients is not enough: Adam's running averages, momentum and weight
        decay move a weight whose gradient is 0. After the step, every pruned weight is 0.
        """
        raise NotImplementedError(
            "MaskedOptimizer.step (module 18, compression): implement it in katas/compression/pruning.py"
        )


@dataclass(frozen=True)
class SparsityReport:
    """Exact zeros per prunable weight: ``zeros[name]`` of ``sizes[name]`` entries (frozen)."""

    zeros: dict[str, int]
    sizes: dict[str, int]

    @property
    def per_layer(self) -> dict[str, float]:
        """{parameter name: fraction of its entries that are exactly 0}."""
        return {name: self.zeros[name] / self.sizes[name] for name in self.sizes}

    @property
    def overall(self) -> float:
        """Zeros over entries, across all prunable weights together."""
        return sum(self.zeros.values()) / sum(self.sizes.values())

    def __str__(self) -> str:
        width = max(len(name) for name in self.sizes)
        lines = [
            f"{name:<{width}}  {self.zeros[name]:>7} / {self.sizes[name]:<7} {s:7.2%}"
            for name, s in self.per_layer.items()
        ]
        total = f"{sum(self.zeros.values()):>7} / {sum(self.sizes.values()):<7} {self.overall:7.2%}"
        return "\n".join([*lines, f"{'overall':<{width}}  {total}"])


def sparsity_report(model: Module) -> SparsityReport:
    """Count the exact zeros of every Linear and Conv2d weight of ``model`` (see :class:`SparsityReport`).

    ``ValueError`` for a model without a Linear or Conv2d (:func:`prunable_weights` says so).

    Example: a Linear whose (2, 3) weight is ``[[0, 1, -0.0], [2, 0, 1e-30]]`` has 3 zeros of 6
    (-0.0 is zero, 1e-30 is not): ``zeros == {"weight": 3}``, ``sizes == {"weight": 6}``.
    """
    raise NotImplementedError(
        "sparsity_report (module 18, compression): implement it in katas/compression/pruning.py"
    )


def fine_tune(
    model: Module,
    masks: Mapping[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    epochs: int = 3,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> list[float]:
    """Train a pruned classifier a little with its masks held; returns the per-epoch losses.

    Adam(lr) wrapped in a :class:`MaskedOptimizer`, cross-entropy, minibatches shuffled with
    ``default_rng(seed)``: deterministic. The model is left in eval mode.
    """
    optimizer = MaskedOptimizer(Adam(model.parameters(), lr=lr), model, masks)
    rng = np.random.default_rng(seed)
    history = fit(model, cross_entropy, optimizer, lambda: minibatches(x, y, batch_size, rng=rng), epochs)
    model.eval()
    return history
