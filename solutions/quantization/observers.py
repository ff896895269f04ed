"""Calibration: run representative batches through the float model and record each layer's
input range (module 17).

Static INT8 inference fixes every activation's scale before deployment, so it needs the range
the activations will take. An *observer* watches the values flowing into a layer:

* :class:`MinMaxObserver` keeps the running minimum and maximum. Every observed value is
  covered, so nothing clamps, but one outlier stretches the scale for all the other values.
* :class:`PercentileObserver` keeps, per batch, the ``100 - p`` and ``p`` percentiles (e.g. the
  0.01 % and 99.99 % points) and the running min / max of those. It clips the rare outliers
  to the ends and spends the 256 levels on the values that actually occur.

:func:`calibrate` hooks an observer onto the input of every ``Linear`` and ``Conv2d`` of a model
and runs the calibration data through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinytorch.conv import Conv2d
from tinytorch.layers import Linear, Module, check_int
from tinytorch.training import inference

from .qparams import QuantParams, check_float_data, choose_qparams

__all__ = ["OBSERVERS", "QUANTIZABLE", "MinMaxObserver", "PercentileObserver", "calibrate", "make_observer"]

QUANTIZABLE = (Linear, Conv2d)  # the layers whose inputs are observed (and that get quantized)


class MinMaxObserver:
    """Running min and max of every value observed.

    >>> obs = MinMaxObserver(); obs.observe(np.array([0.5, -1.0])); obs.observe(np.array([3.0]))
    >>> obs.range()
    (-1.0, 3.0)
    """

    def __init__(self) -> None:
        self.min_val: float | None = None
        self.max_val: float | None = None
        self.batches = 0

    def observe(self, x: np.ndarray) -> None:
        """Widen the recorded range to cover every value of ``x`` (any shape): the first batch
        sets ``min_val`` / ``max_val``, each later one widens them (the running min and max as
        floats); every call counts one batch in ``self.batches``."""
        x = check_float_data(x, f"{type(self).__name__}.observe: x")
        lo, hi = float(x.min()), float(x.max())
        self.min_val = lo if self.min_val is None else min(self.min_val, lo)
        self.max_val = hi if self.max_val is None else max(self.max_val, hi)
        self.batches += 1

    def range(self) -> tuple[float, float]:
        """(min, max) observed so far; ``RuntimeError`` before the first ``observe``."""
        if self.min_val is None or self.max_val is None:
            raise RuntimeError(f"{type(self).__name__}: nothing observed yet; call observe(x) first")
        return self.min_val, self.max_val

    def qparams(self, symmetric: bool = False) -> QuantParams:
        """Quantization parameters for the observed range (:func:`choose_qparams`)."""
        return choose_qparams(*self.range(), symmetric=symmetric)


class PercentileObserver(MinMaxObserver):
    """The range from the ``100 - percentile`` and ``percentile`` points of each batch.

    With ``percentile=99.99`` the lowest and highest 0.01 % of a batch (the outliers) fall
    outside the range and will clamp; the range is the running min / max of those per-batch
    percentiles (numpy's linear interpolation). ``percentile=100`` is :class:`MinMaxObserver`.
    Given: ``TypeError`` for a ``percentile`` that is not a number (a bool is not one),
    ``ValueError`` outside (50, 100] (at 50 or below the high point is not above the low one).
    """

    def __init__(self, percentile: float = 99.99) -> None:
        super().__init__()
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)):
            raise TypeError(
                f"PercentileObserver: percentile must be a number, got {type(percentile).__name__}"
            )
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"PercentileObserver: percentile must be in (50, 100], got {percentile}")
        self.percentile = float(percentile)

    def observe(self, x: np.ndarray) -> None:
        """Widen the range to the percentiles of ``x``, [P(100 - p), P(p)] (``np.percentile``),
        as :meth:`MinMaxObserver.observe` does with the min and max: the first batch sets the
        range, each later one widens it; every call counts one batch in ``self.batches``."""
        x = check_float_data(x, f"{type(self).__name__}.observe: x")
        lo, hi = np.percentile(x, [100.0 - self.percentile, self.percentile])
        self.min_val = float(lo) if self.min_val is None else min(self.min_val, float(lo))
        self.max_val = float(hi) if self.max_val is None else max(self.max_val, float(hi))
        self.batches += 1


OBSERVERS: dict[str, Callable[[], MinMaxObserver]] = {
    "minmax": MinMaxObserver,
    "percentile": PercentileObserver,
}


def make_observer(observer: str | Callable[[], Any]) -> Any:
    """A fresh observer from a name in ``OBSERVERS`` or a factory (a class or a callable)."""
    if isinstance(observer, str):
        if observer not in OBSERVERS:
            raise ValueError(f"unknown observer {observer!r}; valid: {', '.join(OBSERVERS)} or a factory")
        return OBSERVERS[observer]()
    if not callable(observer):
        raise TypeError(f"observer must be a name or a callable factory, got {type(observer).__name__}")
    made = observer()
    if not callable(getattr(made, "observe", None)):
        raise TypeError(f"observer factory gave {type(made).__name__}, which has no observe(x) method")
    return made


def calibrate(
    model: Module,
    calibration_data: np.ndarray,
    observer: str | Callable[[], Any] = "minmax",
    batch_size: int = 256,
) -> dict[str, Any]:
    """Run ``calibration_data`` through ``model`` in batches and observe the input of every
    ``Linear`` and ``Conv2d``: returns {dotted layer name: observer}, in model order (the names
    of ``model.named_modules()``: a model that is itself a Linear or Conv2d is named ``""``).

    The batches are ``data[start : start + batch_size]`` for start = 0, batch_size, ...: every
    row runs through the model exactly once, so each observer sees ceil(N / batch_size) batches
    (the last one shorter). The forward passes run under :func:`tinytorch.training.inference`
    (eval mode, no graph); the hooks are removed afterwards even when the model raises (its
    error propagates). The model is not changed: the same parameters, its train / eval mode
    restored. Given: ``TypeError`` for a model that is not a Module or an observer that is not a
    name or a factory, ``ValueError`` for an unknown observer name (checked before anything runs,
    even for a model without a Linear or Conv2d), the errors of ``check_float_data`` and
    ``check_int`` (a ``batch_size`` below 1 included).
    """
    if not isinstance(model, Module):
        raise TypeError(f"calibrate: model must be a tinytorch Module, got {type(model).__name__}")
    data = check_float_data(calibration_data, "calibrate: calibration_data")
    check_int(batch_size, "calibrate: batch_size")
    make_observer(observer)  # a bad observer fails here, before any forward pass
    observers: dict[str, Any] = {}
    handles = []
    for name, layer in model.named_modules():
        if isinstance(layer, QUANTIZABLE):
            observers[name] = make_observer(observer)
            handles.append(layer.register_forward_hook(_observe_input(observers[name])))
    try:
        with inference(model):
            for start in range(0, len(data), batch_size):
                model(data[start : start + batch_size])
    finally:
        for handle in handles:
            handle.remove()
    return observers


def _observe_input(obs: Any) -> Callable[[Module, tuple, Any], None]:
    def hook(module: Module, inputs: tuple, output: Any) -> None:
        x = inputs[0]
        obs.observe(x.data if hasattr(x, "requires_grad") else np.asarray(x))

    return hook
