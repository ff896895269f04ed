"""``quantize_model``: calibrate a float model, then swap its layers for INT8 ones (module 17).

Post-training static quantization in three steps:

1. check that every layer has a rule: ``Linear`` -> :class:`QuantizedLinear`, ``Conv2d`` ->
   :class:`QuantizedConv2d`, parameter-free layers (ReLU, MaxPool2d, Flatten, ...) stay float,
   ``Sequential`` is walked; anything else (LayerNorm, Embedding, attention) is an error;
2. calibrate: run the calibration data through the float model and observe the input range of
   every Linear / Conv2d (:func:`calibrate`);
3. build a copy of the model in which each Linear / Conv2d is replaced by its quantized
   version, using the observed input parameters. The float model is left unchanged.

Between quantized layers the activations are dequantized to float32 (ReLU and pooling run in
float); each quantized layer re-quantizes its input with its own calibrated parameters.
"""

from __future__ import annotations

import copy  # noqa: F401 (copy.deepcopy: the float model must stay unchanged)
from collections.abc import Callable
from typing import Any

import numpy as np

from tinytorch.conv import Conv2d, MaxPool2d
from tinytorch.layers import GELU, Dropout, Flatten, Linear, Module, ReLU, Sequential, Softmax

from .layers import QuantizedConv2d, QuantizedLinear, int8_backend  # noqa: F401
from .observers import calibrate  # noqa: F401
from .qparams import check_float_data

__all__ = ["PASS_THROUGH", "check_rules", "quantize_model", "weight_bytes"]

PASS_THROUGH = (ReLU, GELU, Softmax, Flatten, Dropout, MaxPool2d)  # no parameters: they stay float
_RULES = "Linear -> QuantizedLinear, Conv2d -> QuantizedConv2d, Sequential (walked), " + ", ".join(
    t.__name__ for t in PASS_THROUGH
) + " (kept in float)"


def check_rules(model: Module) -> None:
    """``ValueError`` naming the first layer that ``quantize_model`` has no rule for (its dotted
    name and type) and listing the rules; ``TypeError`` if ``model`` is not a Module."""
    if not isinstance(model, Module):
        raise TypeError(f"quantize_model: model must be a tinytorch Module, got {type(model).__name__}")
    for name, layer in model.named_modules():
        if not isinstance(layer, (Linear, Conv2d, Sequential, *PASS_THROUGH)):
            raise ValueError(
                f"quantize_model: no rule for layer {name or '(the model)'!r} of type "
                f"{type(layer).__name__}; the rules are: {_RULES}"
            )


def _set_child(parent: Sequential, name: str, child: Module) -> None:
    """Replace the direct child ``name`` of a ``Sequential``: ``layers.i``, the i-th of its list."""
    attr, _, index = name.partition(".")
    getattr(parent, attr)[int(index)] = child


def quantize_model(
    model: Module,
    calibration_data: np.ndarray,
    observer: str | Callable[[], Any] = "minmax",
    backend: Any = None,
    batch_size: int = 256,
) -> Module:
    """A copy of ``model`` with every Linear / Conv2d replaced by its INT8 version.

    ``calibration_data`` float (N, ...) representative inputs (e.g. a few hundred training
    images); ``observer`` ``"minmax"``, ``"percentile"`` or an observer factory; ``backend`` the
    one backend every quantized layer dispatches to (default: a fresh :func:`int8_backend`).
    Each quantized layer's input parameters are its observer's affine (asymmetric) ones: after a
    ReLU every activation is >= 0, and a symmetric grid would leave half of the levels unused.
    The result runs end to end on float inputs, in eval mode. A model that is a single Linear or
    Conv2d gives its quantized layer.
    """
    check_rules(model)
    check_float_data(calibration_data, "quantize_model: calibration_data")
    raise NotImplementedError(
        "quantize_model (module 17, quantization): "
        "implement it in katas/quantization/model.py"
    )


def weight_bytes(model: Module) -> int:
    """Bytes a model stores for inference: float parameters at their own size, and for each
    quantized layer its int8 weight (1 byte per value), int32 bias and per-channel parameters.
    The weight column sums (one int32 per output channel) are recomputed from the weight when a
    layer is built, so they are not counted."""
    total = sum(int(p.data.nbytes) for p in model.parameters())
    for layer in model.modules():
        if isinstance(layer, (QuantizedLinear, QuantizedConv2d)):
            params = [layer.weight.params.scale, layer.weight.params.zero_point]
            params += [layer.input_params.scale, layer.input_params.zero_point]
            total += layer.weight.nbytes + sum(int(a.nbytes) for a in params)
            total += 0 if layer.bias_q is None else int(layer.bias_q.nbytes)
    return total
