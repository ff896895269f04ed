"""Structured pruning: remove whole conv filters (or hidden units) and get a genuinely smaller model.

Zeroing single weights (unstructured pruning) leaves every matrix its full size: dense kernels
do the same work on the zeros. Removing a whole *filter* (an output channel of a ``Conv2d``)
removes a row of its im2col product, so the layer really is smaller and faster:

    Conv2d weight (F, C, kh, kw), bias (F,)  --keep filters `keep`-->  weight[keep], bias[keep]

The layer that *consumes* those channels must shrink with it, or the model no longer runs:

    next Conv2d weight (F2, F, kh, kw)     -> weight[:, keep]                (its input channels)
    Linear after Flatten, weight (F*h*w, O) -> the rows of the kept channels (Flatten orders its
                                              features channel by channel: c*h*w ... (c+1)*h*w - 1)

Filters are ranked by their L2 norm ``||weight[f]||`` and the ``round(amount * F)`` smallest are
removed (ties: the lower index goes first), which is magnitude pruning applied to the norms.
Layers between a conv and its consumer must act on each channel separately (ReLU, GELU,
MaxPool2d, Dropout). The same works for the hidden units of an MLP: a ``Linear``'s output unit
j is column j of its weight (in, out) and row j of the next Linear's weight.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from tinytorch.conv import Conv2d, MaxPool2d
from tinytorch.layers import GELU, Dropout, Flatten, Linear, ReLU, Sequential

from .magnitude import check_sparsity, magnitude_mask

__all__ = [
    "CHANNELWISE",
    "check_keep",
    "conv_like",
    "filter_norms",
    "find_consumer",
    "linear_like",
    "prune_conv_filters",
    "prune_filters",
    "prune_linear_units",
    "prune_neurons",
    "prune_structured",
    "shrink_conv_inputs",
    "shrink_linear_inputs",
    "unit_norms",
    "units_to_keep",
]

CHANNELWISE = (ReLU, GELU, MaxPool2d, Dropout)  # act on each channel alone: they keep the channel order


def check_keep(keep: np.ndarray, n: int, name: str = "keep") -> np.ndarray:
    """``keep`` as a sorted int64 array of distinct indices in [0, n), not empty; else ``ValueError``."""
    keep = np.asarray(keep)
    if keep.ndim != 1 or keep.size == 0 or keep.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a non-empty 1-D integer array, not {keep.dtype} {keep.shape}")
    if np.any(np.diff(keep) <= 0) or keep[0] < 0 or keep[-1] >= n:
        raise ValueError(f"{name} must be sorted, distinct indices in [0, {n}), got {keep.tolist()}")
    return keep.astype(np.int64)


def conv_like(conv: Conv2d, weight: np.ndarray, bias: np.ndarray | None) -> Conv2d:
    """A new Conv2d with ``conv``'s kernel size, stride and padding and the given weight and bias.

    weight (F, C, kh, kw) gives its channels; bias (F,) or None (no bias). The arrays are copied
    in (float32): the new layer shares no array with ``conv``.
    """
    out_channels, in_channels = weight.shape[:2]
    new = Conv2d(
        in_channels,
        out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        bias=bias is not None,
        rng=np.random.default_rng(0),
    )
    # its random init is overwritten in place; load_state_dict checks every shape and that a
    # bias is given exactly when the layer was built with one
    new.load_state_dict({"weight": weight} if bias is None else {"weight": weight, "bias": bias})
    return new


def linear_like(weight: np.ndarray, bias: np.ndarray | None) -> Linear:
    """A new Linear with the given weight (in, out) and bias (out,) or None (no bias), copied in (float32)."""
    new = Linear(weight.shape[0], weight.shape[1], bias=bias is not None, rng=np.random.default_rng(0))
    new.load_state_dict({"weight": weight} if bias is None else {"weight": weight, "bias": bias})
    return new


def filter_norms(conv: Conv2d) -> np.ndarray:
    """The L2 norm of each filter: ``norms[f] = sqrt(sum_{c,i,j} weight[f, c, i, j]^2)``, float64 (F,)."""
    if not isinstance(conv, Conv2d):
        raise TypeError(f"conv must be a Conv2d, got {type(conv).__name__}")
    w = conv.weight.data.astype(np.float64)
    return np.sqrt((w * w).sum(axis=(1, 2, 3)))


def unit_norms(linear: Linear) -> np.ndarray:
    """The L2 norm of each output unit's incoming weights (a column of weight (in, out)), float64 (out,)."""
    if not isinstance(linear, Linear):
        raise TypeError(f"linear must be a Linear, got {type(linear).__name__}")
    w = linear.weight.data.astype(np.float64)
    return np.sqrt((w * w).sum(axis=0))


def units_to_keep(norms: np.ndarray, amount: float) -> np.ndarray:
    """The sorted integer indices that survive removing the ``round(amount * n)`` units of smallest norm.

    Ties: the lower index is removed first. At least one unit must survive (``ValueError``).
    """
    amount = check_sparsity(amount, "amount")
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim != 1 or norms.size == 0:
        raise ValueError(f"norms must be a non-empty 1-D array, got shape {norms.shape}")
    if round(amount * norms.size) >= norms.size:
        raise ValueError(
            f"amount={amount:g} would remove all {norms.size} units of the layer; keep at least one"
        )
    return np.flatnonzero(magnitude_mask(norms, amount))


def prune_conv_filters(conv: Conv2d, keep: np.ndarray) -> Conv2d:
    """A smaller Conv2d with only the filters ``keep``: its output is ``conv``'s output[:, keep].

    ``keep``: sorted distinct filter indices (``ValueError`` otherwise, :func:`check_keep`). A
    layer without a bias gives one without."""
    if not isinstance(conv, Conv2d):
        raise TypeError(f"conv must be a Conv2d, got {type(conv).__name__}")
    keep = check_keep(keep, conv.out_channels)
    bias = None if conv.bias is None else conv.bias.data[keep]
    return conv_like(conv, conv.weight.data[keep], bias)


def shrink_conv_inputs(conv: Conv2d, keep: np.ndarray) -> Conv2d:
    """A Conv2d that reads only the input channels ``keep`` (the producer kept those filters).

    ``keep``: sorted distinct channel indices (``ValueError`` otherwise). The bias, or its
    absence, is kept."""
    if not isinstance(conv, Conv2d):
        raise TypeError(f"conv must be a Conv2d, got {type(conv).__name__}")
    keep = check_keep(keep, conv.in_channels)
    bias = None if conv.bias is None else conv.bias.data.copy()
    return conv_like(conv, conv.weight.data[:, keep], bias)


def prune_linear_units(linear: Linear, keep: np.ndarray) -> Linear:
    """A smaller Linear with only the output units ``keep``: columns of weight (in, out), entries of bias.

    ``keep``: sorted distinct unit indices (``ValueError`` otherwise). A layer without a bias
    gives one without."""
    if not isinstance(linear, Linear):
        raise TypeError(f"linear must be a Linear, got {type(linear).__name__}")
    keep = check_keep(keep, linear.out_features)
    bias = None if linear.bias is None else linear.bias.data[keep]
    return linear_like(linear.weight.data[:, keep], bias)


def shrink_linear_inputs(linear: Linear, keep: np.ndarray, features_per_channel: int = 1) -> Linear:
    """A Linear that reads only the kept channels' features.

    Its input comes from ``channels * features_per_channel`` features ordered channel by channel
    (``Flatten`` of (N, C, h, w): ``features_per_channel = h * w``; a Linear producer: 1), so
    channel c owns rows ``c * fpc ... (c + 1) * fpc - 1`` of weight (in, out). ``keep``: sorted
    distinct channel indices (``ValueError`` otherwise). The bias, or its absence, is kept.
    """
    if not isinstance(linear, Linear):
        raise TypeError(f"linear must be a Linear, got {type(linear).__name__}")
    if linear.in_features % features_per_channel:
        raise ValueError(
            f"linear has {linear.in_features} inputs, "
            f"not a multiple of features_per_channel={features_per_channel}"
        )
    keep = check_keep(keep, linear.in_features // features_per_channel)
    rows = (keep[:, None] * features_per_channel + np.arange(features_per_channel)).ravel()
    bias = None if linear.bias is None else linear.bias.data.copy()
    return linear_like(linear.weight.data[rows], bias)


def find_consumer(layers: Sequence, index: int) -> tuple[int, int] | None:
    """(index of the layer that reads layer ``index``'s output channels, features per channel), or None.

    Walks forward over channel-wise layers (``CHANNELWISE``) and ``Flatten``; the consumer is the
    next ``Conv2d`` or ``Linear``. Features per channel: 1 for a Conv2d consumer or a Linear fed
    by a Linear; ``in_features // channels`` for a Linear after Flatten. None at the end of the
    model (the layer is the output: removing its channels would change the output).
    ``ValueError`` for a layer in between that mixes channels in an unknown way.

    It reads the producer's channel count, so it needs the layers as they were *before* layer
    ``index`` is pruned: a consumer that reads another number of channels than the producer
    makes is a ``ValueError`` (a Linear after Flatten can only be checked for equal blocks).
    :func:`prune_structured` finds every consumer first, then prunes.
    """
    producer = layers[index]
    if not isinstance(producer, (Conv2d, Linear)):
        raise TypeError(f"layer {index} must be a Conv2d or a Linear, got {type(producer).__name__}")
    channels = producer.out_channels if isinstance(producer, Conv2d) else producer.out_features
    flattened = False
    for j in range(index + 1, len(layers)):
        layer = layers[j]
        if isinstance(layer, CHANNELWISE):
            continue
        if isinstance(layer, Flatten) and isinstance(producer, Conv2d) and not flattened:
            flattened = True
            continue
        if isinstance(layer, Conv2d) and isinstance(producer, Conv2d) and not flattened:
            inputs = layer.in_channels
        elif isinstance(layer, Linear) and isinstance(producer, Linear):
            inputs = layer.in_features
        elif isinstance(layer, Linear) and flattened:
            if layer.in_features % channels:
                raise ValueError(
                    f"layer {j} (Linear, {layer.in_features} inputs) does not read the "
                    f"{channels} channels of layer {index} in equal blocks (was layer {index} "
                    "pruned already? find_consumer needs the layers before pruning)"
                )
            return j, layer.in_features // channels
        else:
            raise ValueError(
                f"layer {j} ({type(layer).__name__}) sits between layer {index} ({type(producer).__name__}) "
                "and its consumer: cannot tell which of its inputs belong to which channel"
            )
        if inputs != channels:
            raise ValueError(
                f"layer {j} ({type(layer).__name__}) reads {inputs} channels but layer {index} makes "
                f"{channels}: find_consumer needs the layers as they were before layer {index} was pruned"
            )
        return j, 1
    return None


def prune_structured(
    model: Sequential, amount: float, kind: type, layers: Sequence[int] | None = None
) -> Sequential:
    """A new, smaller model: each chosen layer of type ``kind`` (``Conv2d``: filters; ``Linear``:
    output units) loses its ``round(amount * units)`` units of smallest L2 norm, and its consumer
    (:func:`find_consumer`) the inputs that read them. ``model`` itself is not modified, and the
    new model shares no array with it (fine-tuning one leaves the other alone).

    ``layers``: indices of the layers to prune; default: every ``kind`` layer that has a consumer.
    The arguments are checked in order (``model``, ``amount``, ``layers``). Layers are pruned in
    order, each ranked by its norms at that moment. Every consumer is found before any layer
    changes (``consumers``: {layer index: (consumer index, features per channel)}, in order).
    The new model, every layer of it, is in ``model``'s train/eval mode (``model.training``; a
    new ``Sequential`` starts in training mode).
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a Sequential, got {type(model).__name__}")
    check_sparsity(amount, "amount")
    new = [copy.deepcopy(layer) for layer in model.layers]  # the new model shares nothing with `model`
    candidates = [i for i, layer in enumerate(new) if isinstance(layer, kind)]
    # {layer to prune: (its consumer, features per channel)}, found before any layer changes:
    # find_consumer reads the producer's channel count, which pruning the producer changes
    consumers = {}
    if layers is None:
        for i in candidates:
            found = find_consumer(new, i)
            if found is not None:
                consumers[i] = found
    else:
        for i in sorted(set(layers)):
            if i not in candidates:
                raise ValueError(f"layers: layer {i} is not a {kind.__name__} of the model")
            consumers[i] = find_consumer(new, i)
            if consumers[i] is None:
                raise ValueError(
                    f"layers: layer {i} is the model's output layer; removing its units changes the output"
                )
    if not consumers:
        raise ValueError(f"the model has no {kind.__name__} with a consumer layer to prune")
    for i, (j, per_channel) in consumers.items():
        if kind is Conv2d:
            keep = units_to_keep(filter_norms(new[i]), amount)
            new[i] = prune_conv_filters(new[i], keep)
        else:
            keep = units_to_keep(unit_norms(new[i]), amount)
            new[i] = prune_linear_units(new[i], keep)
        if isinstance(new[j], Conv2d):
            new[j] = shrink_conv_inputs(new[j], keep)
        else:
            new[j] = shrink_linear_inputs(new[j], keep, per_channel)
    return Sequential(*new).train(model.training)


def prune_filters(model: Sequential, amount: float, layers: Sequence[int] | None = None) -> Sequential:
    """A new, smaller model: each chosen Conv2d loses ``round(amount * F)`` filters (smallest L2
    norm), and its consumer (next Conv2d, or the Linear after Flatten) loses the matching inputs.

    ``layers``: indices of the Conv2d layers to prune (default: every Conv2d that has a consumer,
    in order). ``model`` is not modified. The output shape is unchanged; the parameter count
    drops by exactly the removed filters (weights and biases) and the consumer's matching inputs.
    """
    return prune_structured(model, amount, Conv2d, layers)


def prune_neurons(model: Sequential, amount: float, layers: Sequence[int] | None = None) -> Sequential:
    """A new, smaller MLP: each chosen hidden Linear loses ``round(amount * out)`` units (smallest
    L2 norm of their incoming weights), and the next Linear the matching input rows.

    ``layers``: indices of the Linear layers to prune (default: every Linear that feeds another
    Linear, so never the output layer). ``model`` is not modified.
    """
    return prune_structured(model, amount, Linear, layers)
