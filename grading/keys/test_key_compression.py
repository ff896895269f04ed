"""Answer key of module 18 (compression): held-out checks on inputs drawn from the grading seed.

What it covers (each check records values; the grader compares them with the reference's):

* magnitude pruning of one array: the keep-mask and the pruned copy for drawn shapes, fill
  styles (ties, constant, zeros already, six orders of magnitude, integers) and sparsities
  (exact halves that round to even, 0, 1); +0.0 (never -0.0) where pruned; pruning twice;
* global pruning over a drawn list of arrays of different scales (one ranking, one threshold);
* bad input: sparsities outside [0, 1] (a percentage, just above 1, negative, NaN, inf, text,
  None, a bool), NaN/inf/empty/integer weights, an empty list, models without weights, layers
  of the wrong type: the exception's type name;
* ``prune_model`` layer-wise and global on drawn MLPs and CNNs, and the ``sparsity_report``
  (exact zeros: -0.0 counts, 1e-30 does not);
* ``MaskedOptimizer``: the masks held through an optimizer that moves every weight and through
  SGD with momentum on drawn data; ``apply_masks`` and its bad masks;
* structured pruning: L2 norms of filters and units, ``units_to_keep`` (ties, never all), the
  layer surgery (``prune_conv_filters``, ``shrink_conv_inputs``, ``prune_linear_units``,
  ``shrink_linear_inputs``), ``prune_filters``/``prune_neurons`` on drawn models (consumer
  shrink, parameter count, the function computed, nothing shared) and on the zoo models;
* CSR: ``from_dense``/``to_dense`` (empty rows first, last and in runs, all-zero, one row, one
  column, no rows, tiny nonzeros, repeated columns), the product through ``csr_matmul`` and the
  backend, no Python loop per row, ``SparseLinear`` (one dispatched product, its bias, its
  errors) and ``sparsify``;
* the zoo MLP pruned globally and fine-tuned with its masks held.

Products are checked on dyadic numbers (multiples of 1/8 and 1/4, small): every product and
partial sum is exact in float32, so the result does not depend on the order of the additions
and is compared exactly.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from tinytorch.conv import Conv2d, MaxPool2d
from tinytorch.layers import Flatten, LayerNorm, Linear, ReLU, Sequential
from tinytorch.tensor import Tensor, no_grad

FILLS = ("normal", "ties", "constant", "with_zeros", "mixed_scale", "integers")
SPARSITY_KINDS = ("half", "uniform", "half", "zero", "half", "classic", "one", "uniform")


def fill(rng: np.random.Generator, shape: tuple[int, ...], style: str, dtype=np.float32) -> np.ndarray:
    """An array of ``shape`` in one of the ``FILLS`` styles (the traps of magnitude pruning)."""
    if style == "normal":
        x = rng.standard_normal(shape)
    elif style == "ties":  # few magnitudes, both signs: many entries share the threshold
        x = rng.choice([-1.5, -1.0, -0.5, 0.5, 1.0, 1.5], size=shape)
    elif style == "constant":
        x = np.full(shape, rng.choice([-0.75, 0.75]))
    elif style == "with_zeros":
        x = rng.standard_normal(shape) * (rng.random(shape) > 0.35)
    elif style == "mixed_scale":
        x = rng.uniform(-1, 1, shape) * 10.0 ** rng.uniform(-3, 3, shape)
    else:  # integers
        x = rng.integers(-3, 4, shape).astype(np.float64)
    return np.asarray(x, dtype=dtype)


def draw_sparsity(rng: np.random.Generator, n: int, kind: str) -> float:
    """A sparsity for n entries: an exact half (k + 0.5) / n, any fraction, an end, or a classic."""
    if kind == "half":
        return (int(rng.integers(0, n)) + 0.5) / n
    if kind == "zero":
        return 0.0
    if kind == "one":
        return 1.0
    if kind == "classic":
        return float(rng.choice([0.5, 0.7, 0.9]))
    return float(rng.random())


def dyadic(rng: np.random.Generator, shape, denominator: int, bound: float, dtype=np.float32) -> np.ndarray:
    """Multiples of 1/denominator in [-bound, bound]: small sums of their products are exact in float32."""
    top = int(bound * denominator)
    return (rng.integers(-top, top + 1, shape) / denominator).astype(dtype)


def random_mlp(rng: np.random.Generator, sizes: list[int]) -> Sequential:
    """Flatten, then Linear/ReLU pairs of the given widths (the last Linear without a ReLU); random biases."""
    layers: list = [Flatten()]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(Linear(a, b, rng=rng))
        layers[-1].bias.data[...] = rng.uniform(-0.5, 0.5, b)
        if i < len(sizes) - 2:
            layers.append(ReLU())
    return Sequential(*layers)


def random_cnn(rng: np.random.Generator) -> tuple[Sequential, tuple[int, int, int]]:
    """Conv, ReLU, pool, Conv, ReLU, Flatten, Linear, ReLU, Linear of drawn widths; its input (C, H, W)."""
    c_in, f1, f2 = int(rng.integers(1, 4)), int(rng.integers(2, 7)), int(rng.integers(2, 6))
    side = int(rng.integers(6, 9))
    after = side // 2 - 1  # 3x3 conv with padding 1 keeps the side, the pool halves it, a 2x2 conv takes 1
    hidden, classes = int(rng.integers(3, 9)), int(rng.integers(2, 6))
    model = Sequential(
        Conv2d(c_in, f1, 3, padding=1, rng=rng),
        ReLU(),
        MaxPool2d(2),
        Conv2d(f1, f2, 2, rng=rng),
        ReLU(),
        Flatten(),
        Linear(f2 * after * after, hidden, rng=rng),
        ReLU(),
        Linear(hidden, classes, rng=rng),
    )
    for layer in model:
        if getattr(layer, "bias", None) is not None:
            layer.bias.data[...] = rng.uniform(-0.5, 0.5, layer.bias.shape)
    return model, (c_in, side, side)


def state(model) -> tuple[list[str], list[np.ndarray]]:
    """(names, copies of the parameters) in ``named_parameters`` order."""
    named = model.named_parameters()
    return [n for n, _ in named], [p.data.copy() for _, p in named]


# --------------------------------------------------------------------------------------------
# Magnitude pruning
# --------------------------------------------------------------------------------------------


@pytest.mark.covers(
    "test_sparsity_is_exactly_round_s_times_n",
    "test_ties_are_broken_by_index",
    "test_worked_examples",
    "test_pruning_again_at_the_same_sparsity_changes_nothing",
    "test_sparsity_zero_keeps_everything_and_one_prunes_everything",
)
def test_magnitude_pruning_prunes_exactly_round_s_n(answer):
    from tinytorch.perf.compression import magnitude_mask, magnitude_prune

    rng = answer.rng
    for i in range(12):
        shape = tuple(int(s) for s in rng.integers(1, 8, int(rng.integers(1, 4))))
        dtype = np.float64 if i % 3 == 2 else np.float32
        w = fill(rng, shape, FILLS[i % len(FILLS)], dtype)
        sparsity = draw_sparsity(rng, w.size, SPARSITY_KINDS[i % len(SPARSITY_KINDS)])
        original = w.copy()
        mask = magnitude_mask(w, sparsity)
        pruned, prune_mask = magnitude_prune(w, sparsity)
        again, _ = magnitude_prune(pruned, sparsity)
        answer.record(
            **{
                f"mask{i}": mask,
                f"prune_mask{i}": prune_mask,
                f"pruned{i}": pruned,
                f"pruned_dtype{i}": str(pruned.dtype),
                f"pruned_signbit{i}": np.signbit(pruned),
                f"again{i}": again,
                f"input_untouched{i}": np.array_equal(w, original),
            }
        )


@pytest.mark.covers(
    "test_global_pruning_reaches_the_overall_target_exactly",
    "test_global_pruning_takes_most_from_the_layer_of_small_weights",
)
def test_global_pruning_ranks_every_array_together(answer):
    from tinytorch.perf.compression import global_magnitude_masks

    rng = answer.rng
    for case in range(5):
        shapes = [tuple(int(s) for s in rng.integers(1, 7, 2)) for _ in range(int(rng.integers(1, 5)))]
        style = FILLS[int(rng.integers(len(FILLS)))]
        arrays = [fill(rng, s, style) * np.float32(10.0 ** int(rng.integers(-2, 3))) for s in shapes]
        if case == 0:  # a layer of small weights next to a layer of large ones
            arrays = [np.full(shapes[0], 0.01, np.float32), *[np.abs(a) + 1 for a in arrays]]
        total = sum(a.size for a in arrays)
        sparsity = draw_sparsity(rng, total, SPARSITY_KINDS[case])
        masks = global_magnitude_masks(arrays, sparsity)
        answer.record(
            **{
                f"count{case}": np.int64(len(masks)),
                f"shapes{case}": np.array(
                    [np.shape(m) == a.shape for m, a in zip(masks, arrays, strict=False)]
                ),
                f"masks{case}": np.concatenate([np.asarray(m).ravel() for m in masks]),
                f"pruned_per_array{case}": np.array([int((~np.asarray(m)).sum()) for m in masks], np.int64),
            }
        )


@pytest.mark.covers(
    "test_sparsity_outside_zero_one_rejected",
    "test_bad_weights_rejected",
    "test_empty_list_of_arrays_rejected",
    "test_a_layer_without_weights_is_a_clear_error",
)
def test_bad_input_is_refused(answer):
    from tinytorch.perf.compression import (
        SparseLinear,
        filter_norms,
        global_magnitude_masks,
        magnitude_mask,
        prune_conv_filters,
        prune_model,
        sparsity_report,
        unit_norms,
    )

    rng = answer.rng
    w = rng.standard_normal(int(rng.integers(3, 13))).astype(np.float32)
    s = float(rng.uniform(0.05, 0.95))
    # valid calls first: the int 1 is the fraction 1, numpy numbers are numbers
    answer.record(
        pruned_at_int_one=np.int64((~magnitude_mask(w, 1)).sum()),
        pruned_at_numpy_float=np.int64((~magnitude_mask(w, np.float64(s))).sum()),
        pruned_at_int_zero=np.int64((~magnitude_mask(w, 0)).sum()),
    )
    percent = int(rng.integers(2, 101))
    bad_sparsities = {
        "percent": percent,  # 70 meaning 70 %
        "percent_float": percent - 0.5,
        "just_above_one": 1.0 + float(rng.uniform(1e-6, 0.5)),
        "negative": -float(rng.uniform(1e-6, 1.0)),
        "nan": float("nan"),
        "inf": float("inf"),
        "text": str(s),
        "none": None,
        "bool": True,
    }
    model = Sequential(Linear(3, 2, rng=rng))
    for label, bad in bad_sparsities.items():
        answer.record(
            **{
                f"mask_sparsity_{label}": answer.raises(magnitude_mask, w, bad),
                f"global_sparsity_{label}": answer.raises(global_magnitude_masks, [w], bad),
                f"model_sparsity_{label}": answer.raises(prune_model, model, bad),
            }
        )
    nan = w.copy()
    nan[int(rng.integers(w.size))] = np.nan
    inf = w.copy().reshape(1, -1)
    inf[0, int(rng.integers(w.size))] = -np.inf if rng.random() < 0.5 else np.inf
    bad_weights = {
        "nan": nan,
        "inf": inf,
        "empty": np.zeros((0, int(rng.integers(1, 5))), np.float32),
        "integers": np.arange(int(rng.integers(2, 9))),
        "list": [0.1, 0.2],
    }
    for label, bad in bad_weights.items():
        answer.record(
            **{
                f"mask_weights_{label}": answer.raises(magnitude_mask, bad, s),
                f"global_weights_{label}": answer.raises(global_magnitude_masks, [w, bad], s),
            }
        )
    answer.record(
        global_empty_list=answer.raises(global_magnitude_masks, [], s),
        global_bare_array=answer.raises(global_magnitude_masks, w, s),
        model_without_weights=answer.raises(prune_model, Sequential(ReLU(), Flatten()), s),
        report_without_weights=answer.raises(sparsity_report, ReLU()),
        model_not_a_module=answer.raises(prune_model, np.ones((3, 3), np.float32), s),
        model_bad_scope=answer.raises(prune_model, model, s, scope="network"),
        sparse_linear_of_relu=answer.raises(SparseLinear.from_linear, ReLU()),
        conv_filters_of_linear=answer.raises(prune_conv_filters, Linear(2, 2), np.array([0])),
        filter_norms_of_relu=answer.raises(filter_norms, ReLU()),
        unit_norms_of_pool=answer.raises(unit_norms, MaxPool2d(2)),
    )


# --------------------------------------------------------------------------------------------
# Pruning a model: masks, the report, the mask held through training
# --------------------------------------------------------------------------------------------


def record_pruned_model(answer, tag: str, model, masks) -> None:
    """Names, masks, parameters and the sparsity report of a pruned model, by sorted name."""
    from tinytorch.perf.compression import sparsity_report

    names = sorted(masks)
    params = dict(model.named_parameters())
    report = sparsity_report(model)
    report_names = sorted(report.sizes)
    answer.record(
        **{
            f"{tag}_mask_names": np.array(names, dtype=str),
            f"{tag}_masks": np.concatenate([np.asarray(masks[n]).ravel() for n in names]),
            f"{tag}_mask_dtypes": np.array([str(np.asarray(masks[n]).dtype) for n in names]),
            f"{tag}_params": np.concatenate([params[n].data.ravel() for n in sorted(params)]),
            f"{tag}_report_names": np.array(report_names, dtype=str),
            f"{tag}_report_zeros": np.array([report.zeros[n] for n in report_names], np.int64),
            f"{tag}_report_sizes": np.array([report.sizes[n] for n in report_names], np.int64),
            f"{tag}_report_overall": np.float64(report.overall),
            f"{tag}_report_per_layer": np.array([report.per_layer[n] for n in report_names], np.float64),
        }
    )


@pytest.mark.covers(
    "test_prune_model_reaches_the_sparsity_and_reports_it", "test_sparsity_report_counts_exact_zeros"
)
def test_prune_model_masks_every_weight_and_reports_it(answer):
    from tinytorch.perf.compression import prune_model, sparsity_report

    rng = answer.rng
    mlp = random_mlp(rng, [int(n) for n in rng.integers(2, 13, 4)])
    masks = prune_model(mlp, draw_sparsity(rng, 20, SPARSITY_KINDS[int(rng.integers(8))]), scope="layer")
    record_pruned_model(answer, "mlp_layer", mlp, masks)
    cnn, _ = random_cnn(rng)
    masks = prune_model(cnn, float(rng.uniform(0.2, 0.95)), scope="global")
    record_pruned_model(answer, "cnn_global", cnn, masks)
    linear = Linear(int(rng.integers(1, 9)), int(rng.integers(1, 9)), rng=rng)
    masks = prune_model(linear, float(rng.uniform(0, 1)))  # a bare Linear: its mask is "weight"
    record_pruned_model(answer, "bare_linear", linear, masks)

    # exact zeros: -0.0 is a zero, 1e-30 is not; biases are not counted
    a, b, c = (int(n) for n in rng.integers(2, 7, 3))
    model = Sequential(Linear(a, b, rng=rng), ReLU(), Linear(b, c, rng=rng))
    for layer in (model[0], model[2]):
        flat = layer.weight.data.reshape(-1)
        spots = rng.permutation(flat.size)[: int(rng.integers(1, flat.size + 1))]
        flat[spots] = rng.choice(np.array([0.0, -0.0, 1e-30, 5e-30], np.float32), spots.size)
        layer.bias.data[...] = 0.0
    report = sparsity_report(model)
    names = sorted(report.sizes)
    answer.record(
        exact_names=np.array(names, dtype=str),
        exact_zeros=np.array([report.zeros[n] for n in names], np.int64),
        exact_sizes=np.array([report.sizes[n] for n in names], np.int64),
    )


class MovesEverything:
    """A stand-in optimizer whose step moves every parameter, gradient or not (as momentum, weight
    decay and Adam's running averages do): only re-applying the masks keeps the zeros."""

    def __init__(self, params) -> None:
        self.params, self.steps, self.zeroed = list(params), 0, 0

    def step(self) -> None:
        self.steps += 1
        for p in self.params:
            p.data += np.float32(0.5)

    def zero_grad(self) -> None:
        self.zeroed += 1


@pytest.mark.tolerance(
    rtol=1e-4,
    atol=1e-5,
    why="SGD steps through float32 products whose summation order may differ between processes "
    "(BLAS); a pruned weight that moved is off by O(0.1), and the zero pattern is compared exactly",
)
@pytest.mark.covers(
    "test_masked_optimizer_reapplies_the_masks_after_every_step",
    "test_masks_hold_through_real_training",
    "test_apply_masks_and_bad_masks",
)
def test_masked_optimizer_holds_the_masks(answer):
    from tinytorch.perf.compression import MaskedOptimizer, apply_masks, prune_model

    from tinytorch.losses import cross_entropy
    from tinytorch.optim import SGD

    rng = answer.rng
    model = random_mlp(rng, [int(n) for n in rng.integers(2, 11, 4)])
    masks = prune_model(model, float(rng.uniform(0.3, 0.8)), scope=str(rng.choice(["layer", "global"])))
    inner = MovesEverything(model.parameters())
    optimizer = MaskedOptimizer(inner, model, masks)
    for _ in range(int(rng.integers(1, 4))):
        optimizer.zero_grad()
        optimizer.step()
    names, values = state(model)
    answer.record(
        moved_steps=np.int64(inner.steps),
        moved_zero_grads=np.int64(inner.zeroed),
        moved_params=np.concatenate([v.ravel() for v in values]),
        moved_zero_pattern=np.concatenate([v.ravel() == 0 for v in values]),
    )

    # real training: SGD with momentum, the kept weights train and the pruned stay 0
    features, classes = int(rng.integers(4, 13)), int(rng.integers(2, 5))
    model = random_mlp(rng, [features, int(rng.integers(4, 10)), int(rng.integers(3, 8)), classes])
    masks = prune_model(model, float(rng.uniform(0.3, 0.8)), scope="global")
    optimizer = MaskedOptimizer(SGD(model.parameters(), lr=0.1, momentum=0.9), model, masks)
    x = rng.standard_normal((32, features)).astype(np.float32)
    y = rng.integers(0, classes, 32)
    for _ in range(4):
        optimizer.zero_grad()
        cross_entropy(model(x), y).backward()
        optimizer.step()
    names, values = state(model)
    answer.record(
        sgd_params=np.concatenate([v.ravel() for v in values]),
        sgd_zero_pattern=np.concatenate([v.ravel() == 0 for v in values]),
    )

    # apply_masks on drawn masks, and masks that do not fit
    model = random_mlp(rng, [int(n) for n in rng.integers(2, 9, 3)])
    first = model[1]
    drawn = {"layers.1.weight": rng.random(first.weight.shape) < 0.5}
    apply_masks(model, drawn)
    names, values = state(model)
    answer.record(
        applied_params=np.concatenate([v.ravel() for v in values]),
        applied_signbit=np.concatenate([np.signbit(v).ravel() for v in values]),
        unknown_name=answer.raises(apply_masks, model, {"layers.9.weight": np.ones((2, 2), bool)}),
        wrong_shape=answer.raises(
            apply_masks, model, {"layers.1.weight": np.ones(first.weight.shape[::-1] + (1,), bool)}
        ),
        not_bool=answer.raises(
            apply_masks, model, {"layers.1.weight": np.ones(first.weight.shape, np.int64)}
        ),
        optimizer_without_step=answer.raises(MaskedOptimizer, object(), model, drawn),
    )


@pytest.mark.tolerance(
    rtol=0.0,
    atol=3 / 359,
    why="one epoch of Adam through float32 products whose summation order may differ between "
    "processes can flip a borderline test image or two (1/359 each); the zeros are compared exactly",
)
@pytest.mark.covers("test_zoo_model_at_70_percent_sparsity_loses_under_2_points")
def test_zoo_mlp_pruned_and_fine_tuned_keeps_its_zeros(answer):
    from tinytorch.perf.compression import fine_tune, prune_model, sparsity_report

    from tinytorch import zoo
    from tinytorch.data import load_digits

    rng = answer.rng
    model = zoo.load_model("mlp_digits")
    sparsity = float(rng.uniform(0.5, 0.9))
    masks = prune_model(model, sparsity, scope="global")
    before = sparsity_report(model)
    names = sorted(before.zeros)
    x, y = load_digits("train")
    rows = rng.choice(len(x), size=int(rng.integers(256, 513)), replace=False)
    losses = fine_tune(model, masks, x[rows], y[rows], epochs=1, seed=int(rng.integers(1000)))
    after = sparsity_report(model)
    answer.record(
        zeros_before=np.array([before.zeros[n] for n in names], np.int64),
        zeros_after=np.array([after.zeros[n] for n in names], np.int64),
        pruned_total=np.int64(sum(int((~m).sum()) for m in masks.values())),
        epochs=np.int64(len(losses)),
        training=bool(model.training),
        accuracy=np.float64(zoo.evaluate("mlp_digits", model)),
    )


# --------------------------------------------------------------------------------------------
# Structured pruning
# --------------------------------------------------------------------------------------------


@pytest.mark.tolerance(
    rtol=2e-5,
    atol=0.0,
    why="L2 norms of at most 27 weights: in float64 (the contract) any order agrees to ~1e-15; summed "
    "in float32 within n u32 ~ 2e-6, tolerated (the ranking is what counts); an L1 norm is larger by O(1)",
)
@pytest.mark.covers(
    "test_units_to_keep_drops_the_smallest_norms",
    "test_units_to_keep_never_removes_every_unit",
    "test_filters_are_ranked_by_their_l2_norm",
)
def test_units_are_ranked_by_their_l2_norm(answer):
    from tinytorch.perf.compression import filter_norms, unit_norms, units_to_keep

    rng = answer.rng
    for i in range(6):
        n = int(rng.integers(1, 13))
        norms = rng.choice([0.0, 0.5, 1.0, 2.0, 3.5], size=n)
        amount = float(rng.choice([0.0, 0.25, 0.5, 0.75, rng.random()]))
        if round(amount * n) >= n:
            answer.record(**{f"keep{i}": answer.raises(units_to_keep, norms, amount)})
        else:
            answer.record(**{f"keep{i}": np.asarray(units_to_keep(norms, amount)).astype(np.int64)})
    conv = Conv2d(int(rng.integers(1, 4)), int(rng.integers(2, 7)), int(rng.integers(2, 4)), rng=rng)
    conv.weight.data[...] = rng.standard_normal(conv.weight.shape) * rng.uniform(
        0.1, 2, (conv.weight.shape[0], 1, 1, 1)
    )
    linear = Linear(int(rng.integers(2, 9)), int(rng.integers(2, 9)), rng=rng)
    f_norms, u_norms = filter_norms(conv), unit_norms(linear)
    amount = float(rng.uniform(0, 0.6))
    answer.record(
        filter_norms=f_norms,
        unit_norms=u_norms,
        filters_kept=np.asarray(units_to_keep(f_norms, amount)).astype(np.int64),
        units_kept=np.asarray(units_to_keep(u_norms, amount)).astype(np.int64),
        remove_all=answer.raises(units_to_keep, rng.random(int(rng.integers(1, 5))), 1.0),
        amount_percent=answer.raises(units_to_keep, rng.random(4), float(rng.integers(2, 101))),
        norms_2d=answer.raises(units_to_keep, np.ones((2, 2)), 0.5),
    )


def draw_keep(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sorted distinct indices in [0, n), at least one."""
    return np.sort(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False)).astype(np.int64)


@pytest.mark.covers(
    "test_filter_pruned_conv_equals_the_original_on_kept_channels",
    "test_structured_helpers_reject_what_does_not_fit",
)
def test_layer_surgery_keeps_exactly_the_chosen_units(answer):
    from tinytorch.perf.compression import (
        check_keep,
        find_consumer,
        prune_conv_filters,
        prune_linear_units,
        shrink_conv_inputs,
        shrink_linear_inputs,
    )

    rng = answer.rng
    for i in range(3):
        c_in, c_out = int(rng.integers(1, 5)), int(rng.integers(2, 7))
        kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        bias = bool(rng.random() < 0.75)
        conv = Conv2d(
            c_in, c_out, kernel, int(rng.integers(1, 3)), int(rng.integers(0, 2)), bias=bias, rng=rng
        )
        if bias:
            conv.bias.data[...] = rng.standard_normal(c_out)
        before = conv.weight.data.copy()
        keep = draw_keep(rng, c_out)
        small = prune_conv_filters(conv, keep)
        keep_in = draw_keep(rng, c_in)
        reader = shrink_conv_inputs(conv, keep_in)
        for tag, layer in (("filters", small), ("inputs", reader)):
            answer.record(
                **{
                    f"conv{i}_{tag}_is_new_conv": isinstance(layer, Conv2d) and layer is not conv,
                    f"conv{i}_{tag}_weight": layer.weight.data,
                    f"conv{i}_{tag}_has_bias": layer.bias is not None,
                    f"conv{i}_{tag}_bias": np.zeros(0) if layer.bias is None else layer.bias.data,
                    f"conv{i}_{tag}_meta": np.array(
                        [
                            layer.out_channels,
                            layer.in_channels,
                            layer.stride,
                            layer.padding,
                            *layer.kernel_size,
                        ],
                        np.int64,
                    ),
                }
            )
        answer.record(**{f"conv{i}_untouched": np.array_equal(conv.weight.data, before)})

        n_in, n_out = int(rng.integers(2, 8)), int(rng.integers(2, 8))
        linear = Linear(n_in, n_out, bias=bool(rng.random() < 0.75), rng=rng)
        if linear.bias is not None:
            linear.bias.data[...] = rng.standard_normal(n_out)
        fewer_units = prune_linear_units(linear, draw_keep(rng, n_out))
        per_channel = int(rng.integers(1, 5))
        reader = Linear(int(rng.integers(1, 5)) * per_channel, n_out, rng=rng)
        fewer_rows = shrink_linear_inputs(
            reader, draw_keep(rng, reader.in_features // per_channel), per_channel
        )
        for tag, layer in (("units", fewer_units), ("rows", fewer_rows)):
            answer.record(
                **{
                    f"linear{i}_{tag}_weight": layer.weight.data,
                    f"linear{i}_{tag}_has_bias": layer.bias is not None,
                    f"linear{i}_{tag}_bias": np.zeros(0) if layer.bias is None else layer.bias.data,
                }
            )
    linear = Linear(6, 4, bias=False, rng=rng)
    answer.record(
        keep_unsorted=answer.raises(check_keep, np.array([2, 1]), 4),
        keep_float=answer.raises(check_keep, np.array([0.5]), 4),
        shrink_conv_of_linear=answer.raises(shrink_conv_inputs, linear, np.array([0])),
        prune_units_of_conv=answer.raises(prune_linear_units, Conv2d(1, 2, 1), np.array([0])),
        shrink_linear_of_relu=answer.raises(shrink_linear_inputs, ReLU(), np.array([0])),
        rows_not_a_multiple=answer.raises(
            shrink_linear_inputs, linear, np.array([0]), features_per_channel=4
        ),
        consumer_of_relu=answer.raises(find_consumer, [ReLU(), Linear(2, 2)], 0),
        unequal_blocks=answer.raises(find_consumer, [Conv2d(1, 3, 1), Flatten(), Linear(8, 2)], 0),
    )


@pytest.mark.tolerance(
    rtol=1e-5,
    atol=1e-6,
    why="the outputs of two models with identical float32 parameters: only the BLAS summation "
    "order may differ between processes; every parameter and shape is compared exactly",
)
@pytest.mark.covers(
    "test_filter_pruned_model_is_smaller_and_computes_the_same_function",
    "test_zoo_cnn_with_half_its_filters_removed",
    "test_neuron_pruned_mlp_is_smaller_and_computes_the_same_function",
    "test_structured_pruning_refuses_what_it_cannot_shrink",
)
def test_structured_pruning_shrinks_models_and_their_consumers(answer):
    from tinytorch.perf.compression import prune_filters, prune_neurons

    from tinytorch import zoo

    rng = answer.rng

    def record(tag: str, original, pruned, x) -> None:
        names, before = state(original)
        new_names, values = state(pruned)
        with no_grad():
            out = pruned(Tensor(x)).data
        for param in pruned.parameters():
            param.data += 1.0  # shares nothing with the original
        answer.record(
            **{
                f"{tag}_layers": np.array([type(layer).__name__ for layer in pruned], dtype=str),
                f"{tag}_names": np.array(new_names, dtype=str),
                f"{tag}_shapes": np.array([s for v in values for s in (v.ndim, *v.shape)], np.int64),
                f"{tag}_params": np.concatenate([v.ravel() for v in values]),
                f"{tag}_num_parameters": np.int64(pruned.num_parameters()),
                f"{tag}_training": bool(pruned.training),
                f"{tag}_output": out,
                f"{tag}_original_untouched": all(
                    np.array_equal(a, b) for a, b in zip(before, state(original)[1], strict=True)
                ),
            }
        )

    cnn, (c, h, w) = random_cnn(rng)
    if rng.random() < 0.5:
        cnn.eval()
    x = rng.standard_normal((int(rng.integers(1, 4)), c, h, w)).astype(np.float32)
    record("cnn", cnn, prune_filters(cnn, float(rng.uniform(0.1, 0.7))), x)
    record("cnn_second_conv", cnn, prune_filters(cnn, float(rng.uniform(0.1, 0.7)), layers=[3]), x)
    mlp = random_mlp(rng, [int(n) for n in rng.integers(3, 13, 4)])
    x = rng.standard_normal((int(rng.integers(1, 4)), mlp[1].in_features)).astype(np.float32)
    record("mlp", mlp, prune_neurons(mlp, float(rng.uniform(0.1, 0.7))), x)

    zoo_cnn = zoo.load_model("cnn_digits")
    images, _ = zoo.eval_data("cnn_digits")
    rows = rng.choice(len(images), size=3, replace=False)
    record("zoo_cnn", zoo_cnn, prune_filters(zoo_cnn, float(rng.choice([0.25, 0.5, 0.75]))), images[rows])
    zoo_mlp = zoo.load_model("mlp_digits")
    record("zoo_mlp", zoo_mlp, prune_neurons(zoo_mlp, float(rng.choice([0.25, 0.5, 0.75]))), images[rows])

    amount = float(rng.uniform(0.1, 0.7))
    answer.record(
        output_layer=answer.raises(prune_neurons, cnn, amount, layers=[8]),
        not_a_conv=answer.raises(prune_filters, cnn, amount, layers=[1]),
        channel_mixing_between=answer.raises(
            prune_filters,
            Sequential(Conv2d(1, 4, 3, rng=rng), LayerNorm(4), Conv2d(4, 2, 3, rng=rng)),
            amount,
        ),
        no_conv=answer.raises(prune_filters, Sequential(Linear(3, 3, rng=rng)), amount),
        not_sequential=answer.raises(prune_filters, Conv2d(1, 2, 3, rng=rng), amount),
        amount_percent=answer.raises(prune_filters, cnn, float(rng.integers(2, 101))),
        remove_every_filter=answer.raises(prune_filters, cnn, 1.0),
    )


# --------------------------------------------------------------------------------------------
# CSR storage, the sparse kernel, SparseLinear
# --------------------------------------------------------------------------------------------


def sparse_matrix(rng: np.random.Generator, case: int, dyadic_values: bool = False) -> np.ndarray:
    """A drawn sparse matrix for ``case``: empty first/last rows, a run of empty rows, all zero,
    one row, one column, no rows, tiny nonzeros, float64, or a plain random one."""
    m, k = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    dtype = np.float64 if case in (6, 8) else np.float32
    if case == 3:
        m = 1
    elif case == 4:
        k = 1
    elif case == 5:
        m = 0
    values = (
        dyadic(rng, (m, k), 8, 2.0, dtype) if dyadic_values else rng.standard_normal((m, k)).astype(dtype)
    )
    A = values * (rng.random((m, k)) < rng.uniform(0.2, 0.9))
    if case == 0 and m:  # empty first and last rows
        A[0] = A[-1] = 0
    elif case == 1 and m > 2:  # a run of empty rows
        start = int(rng.integers(0, m - 1))
        A[start : start + int(rng.integers(2, m + 1))] = 0
    elif case == 2:
        A[...] = 0
    elif case == 7 and A.size and not dyadic_values:  # tiny nonzeros: float32 1e-30 and a subnormal
        flat = A.reshape(-1)
        flat[rng.choice(flat.size, size=min(2, flat.size), replace=False)] = [1e-30, 1e-45][
            : min(2, flat.size)
        ]
    elif case == 8 and A.size and not dyadic_values:
        A.reshape(-1)[int(rng.integers(A.size))] = 5e-324  # the smallest float64
    return A


def csr_with_duplicates(rng: np.random.Generator):
    """A hand-built CSR (dyadic nonzeros) with an empty row and a row that repeats a column."""
    from tinytorch.perf.compression import CSRMatrix

    m, k = int(rng.integers(2, 7)), int(rng.integers(1, 4))
    counts = rng.integers(0, 5, m)
    empty, repeated = rng.choice(m, size=2, replace=False)
    counts[empty], counts[repeated] = 0, max(2, counts[repeated])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices = rng.integers(0, k, indptr[-1])
    indices[indptr[repeated] + 1] = indices[indptr[repeated]]
    data = dyadic(rng, indptr[-1], 8, 2.0)
    data[data == 0] = 0.125
    return CSRMatrix(data, indices, indptr, (m, k))


@pytest.mark.covers(
    "test_csr_round_trip_stores_exactly_the_nonzeros", "test_csr_structure_checks_and_properties"
)
def test_csr_stores_exactly_the_nonzeros(answer):
    from tinytorch.perf.compression import CSRMatrix

    rng = answer.rng
    for case in range(10):
        A = sparse_matrix(rng, case)
        csr = CSRMatrix.from_dense(A)
        back = csr.to_dense()
        answer.record(
            **{
                f"data{case}": csr.data,
                f"data_dtype{case}": str(csr.data.dtype),
                f"indices{case}": csr.indices,
                f"indptr{case}": csr.indptr,
                f"shape{case}": np.array(csr.shape, np.int64),
                f"nnz{case}": np.int64(csr.nnz),
                f"nbytes{case}": np.int64(csr.nbytes),
                f"density{case}": np.float64(csr.density),
                f"to_dense{case}": back,
                f"to_dense_dtype{case}": str(back.dtype),
            }
        )
    # a hand-built CSR may repeat a column in a row: its entries add up
    answer.record(duplicates_to_dense=csr_with_duplicates(rng).to_dense())

    csr = CSRMatrix.from_dense(sparse_matrix(rng, 9))
    rows = csr.shape[0]
    answer.record(
        from_dense_1d=answer.raises(CSRMatrix.from_dense, np.ones(int(rng.integers(1, 6)), np.float32)),
        from_dense_integers=answer.raises(CSRMatrix.from_dense, np.ones((2, 2), np.int64)),
        indptr_short=answer.raises(CSRMatrix, csr.data, csr.indices, csr.indptr[:-1], csr.shape),
        index_past_the_columns=answer.raises(
            CSRMatrix, csr.data, csr.indices + csr.shape[1], csr.indptr, csr.shape
        ),
        shape_1d=answer.raises(CSRMatrix, csr.data, csr.indices, csr.indptr, (rows,)),
        data_integers=answer.raises(CSRMatrix, csr.data.astype(np.int64), csr.indices, csr.indptr, csr.shape),
    )


@pytest.mark.covers(
    "test_csr_product_equals_the_dense_product",
    "test_csr_kernel_on_the_backend",
    "test_csr_bad_input",
)
def test_csr_product_equals_the_dense_product(answer):
    from tinytorch.perf.acceleration import OptimizedBackend
    from tinytorch.perf.compression import CSRMatrix, csr_matmul, register_sparse, sparse_backend

    rng = answer.rng
    for case in range(10):
        A = sparse_matrix(rng, case, dyadic_values=True)
        B = dyadic(rng, (A.shape[1], int(rng.integers(1, 6))), 4, 2.0)
        C = csr_matmul(CSRMatrix.from_dense(A), B)
        answer.record(**{f"product{case}": C, f"product_dtype{case}": str(np.asarray(C).dtype)})
    dup = csr_with_duplicates(rng)
    B = dyadic(rng, (dup.shape[1], int(rng.integers(1, 5))), 4, 2.0)
    answer.record(duplicates_product=csr_matmul(dup, B))

    A = sparse_matrix(rng, 0, dyadic_values=True)
    B = dyadic(rng, (A.shape[1], int(rng.integers(1, 5))), 4, 2.0)
    csr = CSRMatrix.from_dense(A)
    backend = OptimizedBackend()
    returned = register_sparse(backend)
    fresh = sparse_backend()
    answer.record(
        register_returns_the_backend=returned is backend,
        sparse_registered=("matmul", "sparse") in backend.supported(),
        dense_kept=("matmul", "dense") in backend.supported(),
        fresh_has_sparse=isinstance(fresh, OptimizedBackend) and ("matmul", "sparse") in fresh.supported(),
        dispatched=backend.dispatch("matmul", csr, B),
        inner_mismatch=answer.raises(csr_matmul, csr, B[:-1] if len(B) > 1 else np.ones((2, 1), np.float32)),
        integer_b=answer.raises(csr_matmul, csr, B.astype(np.int64)),
        dense_a=answer.raises(csr_matmul, A, B),
        register_on_object=answer.raises(register_sparse, object()),
    )


@pytest.mark.covers("test_csr_is_vectorised_no_python_loop_per_row_or_nonzero")
def test_csr_kernel_has_no_python_loop_per_row(answer):
    import tinytorch.perf.compression as compression
    from tinytorch.perf.compression import CSRMatrix, csr_matmul

    folder = os.path.dirname(os.path.abspath(compression.__file__)) + os.sep
    rng = answer.rng
    counts = []
    for m in (int(rng.integers(3, 7)), int(rng.integers(300, 500))):
        A = dyadic(rng, (m, 40), 8, 2.0) * (rng.random((m, 40)) < 0.3)
        A[1] = 0
        B = dyadic(rng, (40, 3), 4, 2.0)
        lines = [0]

        def trace(frame, event, arg, lines=lines):
            if not os.path.abspath(frame.f_code.co_filename).startswith(folder):
                return None
            if event == "line":
                lines[0] += 1
            return trace

        old = sys.gettrace()
        sys.settrace(trace)
        try:
            csr = CSRMatrix.from_dense(A)
            C = csr_matmul(csr, B)
            back = csr.to_dense()
        finally:
            sys.settrace(old)
        counts.append(lines[0])
        answer.record(**{f"product_{len(counts)}": C, f"round_trip_{len(counts)}": np.array_equal(back, A)})
    answer.record(same_python_lines_for_few_and_many_rows=counts[0] == counts[1])


@pytest.mark.covers(
    "test_sparse_linear_runs_its_forward_through_dispatch",
    "test_sparse_linear_needs_a_backend_with_the_sparse_kernel",
    "test_sparse_linear_is_smaller_at_70_percent",
    "test_sparsify_a_pruned_mlp_gives_the_same_predictions",
    "test_sparse_layer_and_backend_argument_checks",
)
def test_sparse_linear_computes_the_linear_through_one_dispatch(answer):
    from tinytorch.perf.acceleration import OptimizedBackend
    from tinytorch.perf.compression import CSRMatrix, SparseLinear, sparse_backend, sparsify

    from tinytorch.backend import use_backend

    rng = answer.rng
    n_in, n_out = int(rng.integers(4, 17)), int(rng.integers(3, 9))
    linear = Linear(n_in, n_out, rng=rng)
    linear.weight.data[...] = dyadic(rng, (n_in, n_out), 8, 2.0) * (
        rng.random((n_in, n_out)) > rng.uniform(0.3, 0.9)
    )
    linear.weight.data[:, int(rng.integers(n_out))] = 0  # an output unit with no weights: an empty CSR row
    linear.bias.data[...] = dyadic(rng, n_out, 8, 2.0)
    sparse = SparseLinear.from_linear(linear)
    answer.record(
        weight_t_data=sparse.weight_t.data,
        weight_t_indices=sparse.weight_t.indices,
        weight_t_indptr=sparse.weight_t.indptr,
        features=np.array([sparse.in_features, sparse.out_features], np.int64),
        nbytes=np.int64(sparse.weight_t.nbytes),
    )

    class Spy:
        def __init__(self, kernel) -> None:
            self.kernel, self.calls = kernel, 0

        def __call__(self, *args, **kwargs):
            self.calls += 1
            return self.kernel(*args, **kwargs)

    backend = sparse_backend()
    spy = Spy(backend.kernel_for("matmul", sparse.weight_t, np.ones((n_in, 1), np.float32)))
    backend.register("matmul", "sparse", spy)
    shapes = [
        (int(rng.integers(1, 6)), n_in),
        (int(rng.integers(1, 4)), int(rng.integers(1, 4)), n_in),
        (1, n_in),
    ]
    for i, shape in enumerate(shapes):
        x = dyadic(rng, shape, 4, 2.0)
        with use_backend(backend):
            y = sparse(Tensor(x))
        answer.record(
            **{
                f"y{i}": y.data,
                f"y_dtype{i}": str(y.data.dtype),
                f"y_is_tensor{i}": isinstance(y, Tensor),
                f"dispatches{i}": np.int64(spy.calls),
                f"y_own_backend{i}": sparse(x).data,
            }
        )
    x = dyadic(rng, (2, n_in), 4, 2.0)
    with use_backend(OptimizedBackend()):
        plain = answer.raises(sparse, x)
    no_bias = Linear(n_in, n_out, bias=False, rng=rng)
    no_bias.weight.data[...] = dyadic(rng, (n_in, n_out), 8, 2.0)
    sparse_no_bias = SparseLinear.from_linear(no_bias)
    answer.record(
        dispatches_after=np.int64(spy.calls),
        plain_backend=plain,
        wrong_features=answer.raises(sparse, np.ones((2, n_in - 1), np.float32)),
        no_bias_is_none=sparse_no_bias.bias is None,
        no_bias_y=sparse_no_bias(x).data,
        weight_t_not_csr=answer.raises(SparseLinear, no_bias.weight.data.T),
        bias_wrong_shape=answer.raises(
            SparseLinear,
            CSRMatrix.from_dense(np.ascontiguousarray(no_bias.weight.data.T)),
            np.zeros(n_in + 1),
        ),
    )

    widths = [int(n) for n in rng.integers(2, 7, 4)]
    mlp = random_mlp(rng, widths)
    for layer in mlp:
        if isinstance(layer, Linear):
            layer.weight.data[...] = dyadic(rng, layer.weight.shape, 8, 1.0) * (
                rng.random(layer.weight.shape) < 0.6
            )
            layer.bias.data[...] = dyadic(rng, layer.bias.shape, 8, 1.0)
    converted = sparsify(mlp)
    x = dyadic(rng, (int(rng.integers(1, 5)), widths[0]), 4, 1.0)
    answer.record(
        sparsified_layers=np.array([type(layer).__name__ for layer in converted], dtype=str),
        sparsified_y=converted(x).data,
        sparsify_linear=isinstance(sparsify(mlp[1]), SparseLinear),
        sparsify_relu=answer.raises(sparsify, ReLU()),
    )
