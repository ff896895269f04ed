"""Answer key of module 18 (compression): held-out checks on inputs drawn from the grading seed.

Each check calls as few of the module's functions as it can (one public function or method, with
the helpers it necessarily calls), so that the grader can tie it to the tests of that function: a
failed check withholds the credit of a test only when the test calls every kata function the check
calls (grading/grade_score.py, ``decides``). What the checks cover (each records values; the grader
compares them with the reference's):

* magnitude pruning of one array: the keep-mask (``magnitude_mask``) and the pruned copy
  (``magnitude_prune``) for drawn shapes, fill styles (ties, constant, zeros already, six orders of
  magnitude, integers) and sparsities (exact halves that round to even, 0, 1); +0.0 (never -0.0)
  where pruned; pruning twice;
* global pruning over a drawn list of arrays of different scales (one ranking, one threshold);
* bad input, one check per function: sparsities outside [0, 1] (a percentage, just above 1,
  negative, NaN, inf, text, None, a bool), NaN/inf/empty/integer weights, an empty list, models
  without weights, layers of the wrong type: the exception's type name;
* ``prune_model`` layer-wise and global on drawn MLPs and CNNs, and the ``sparsity_report``
  (exact zeros: -0.0 counts, 1e-30 does not);
* ``MaskedOptimizer``: the masks held through an optimizer that moves every weight (layer-wise and
  global masks) and through SGD with momentum on drawn data; ``apply_masks`` and its bad masks;
* structured pruning: ``units_to_keep`` (ties, never all), L2 norms of filters and units, the
  layer surgery (``prune_conv_filters``, ``shrink_conv_inputs``, ``prune_linear_units``,
  ``shrink_linear_inputs``) and its helpers' errors, ``prune_filters``/``prune_neurons`` on drawn
  models (consumer shrink, parameter count, the function computed, nothing shared), on the zoo
  models, and what they refuse;
* CSR: ``from_dense``/``to_dense`` (empty rows first, last and in runs, all-zero, one row, one
  column, no rows, tiny nonzeros, repeated columns), ``density``, the structure checks, the
  product through ``csr_matmul`` and the backend, no Python loop per row, ``SparseLinear`` (its
  CSR, its size, one dispatched product, its bias, its errors) and ``sparsify``;
* the zoo MLP pruned globally and fine-tuned with its masks held.

No check names the tests it decides (``covers``) except three value checks, of functions whose
unsolved stubs already refuse bad input (the refusals are given code): a partial solution passes
the suite's refusal tests with them, so those checks name the tests that need the function to
work. The settrace check (no Python loop per row) traces itself, hides from the grader's trace
and so decides no test: it counts only as a check.

Products are checked on dyadic numbers (multiples of 1/8 and 1/4, small): every product and
partial sum is exact in float32, so the result does not depend on the order of the additions
and is compared exactly.

One file, whole: it is the module's answer key as the registry names it (``key = ...`` in
tinytorch/course/modules.toml), run by the grader in one child beside the module's suite.
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


def pruning_cases(rng: np.random.Generator):
    """Twelve (weights, sparsity) cases: every fill style, both float dtypes, every sparsity kind."""
    for i in range(12):
        shape = tuple(int(s) for s in rng.integers(1, 8, int(rng.integers(1, 4))))
        dtype = np.float64 if i % 3 == 2 else np.float32
        w = fill(rng, shape, FILLS[i % len(FILLS)], dtype)
        yield i, w, draw_sparsity(rng, w.size, SPARSITY_KINDS[i % len(SPARSITY_KINDS)])


def test_magnitude_mask_prunes_exactly_round_s_n(answer):
    from tinytorch.perf.compression import magnitude_mask

    for i, w, sparsity in pruning_cases(answer.rng):
        original = w.copy()
        mask = magnitude_mask(w, sparsity)
        answer.record(**{f"mask{i}": mask, f"input_untouched{i}": np.array_equal(w, original)})


def test_magnitude_prune_zeroes_exactly_the_masked_weights(answer):
    from tinytorch.perf.compression import magnitude_prune

    for i, w, sparsity in pruning_cases(answer.rng):
        original = w.copy()
        pruned, prune_mask = magnitude_prune(w, sparsity)
        again, again_mask = magnitude_prune(pruned, sparsity)
        answer.record(
            **{
                f"prune_mask{i}": prune_mask,
                f"pruned{i}": pruned,
                f"pruned_dtype{i}": str(pruned.dtype),
                f"pruned_signbit{i}": np.signbit(pruned),
                f"again{i}": again,
                f"again_mask{i}": again_mask,
                f"input_untouched{i}": np.array_equal(w, original),
            }
        )


# The unsolved stub of global_magnitude_masks refuses bad input (its checks are given): the suite's
# refusal tests then pass, and this check, failing, must not take their credit.
@pytest.mark.covers(
    "test_global_pruning_*",
    "test_empty_list_of_arrays_rejected",
    "test_masks_hold_through_real_training",
    "test_prune_model_*",
    "test_sparsify_*",
    "test_zoo_model_*",
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
        masks = global_magnitude_masks(arrays, np.float64(sparsity) if case == 1 else sparsity)
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


# --------------------------------------------------------------------------------------------
# Bad input to magnitude pruning: one check per function
# --------------------------------------------------------------------------------------------


def bad_sparsities(rng: np.random.Generator, s: float) -> dict[str, object]:
    """Sparsities a pruning function must refuse: a percentage, just outside [0, 1], not a number."""
    percent = int(rng.integers(2, 101))
    return {
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


def bad_weights(rng: np.random.Generator, w: np.ndarray) -> dict[str, object]:
    """Weights whose magnitudes cannot be ranked: NaN, inf, empty, integers, a list."""
    nan = w.copy()
    nan[int(rng.integers(w.size))] = np.nan
    inf = w.copy().reshape(1, -1)
    inf[0, int(rng.integers(w.size))] = -np.inf if rng.random() < 0.5 else np.inf
    return {
        "nan": nan,
        "inf": inf,
        "empty": np.zeros((0, int(rng.integers(1, 5))), np.float32),
        "integers": np.arange(int(rng.integers(2, 9))),
        "list": [0.1, 0.2],
    }


def test_magnitude_mask_refuses_bad_sparsities_and_weights(answer):
    from tinytorch.perf.compression import magnitude_mask

    rng = answer.rng
    w = rng.standard_normal(int(rng.integers(3, 13))).astype(np.float32)
    s = float(rng.uniform(0.05, 0.95))
    # valid calls first: the int 1 is the fraction 1, numpy numbers are numbers
    answer.record(
        pruned_at_int_one=np.int64((~magnitude_mask(w, 1)).sum()),
        pruned_at_numpy_float=np.int64((~magnitude_mask(w, np.float64(s))).sum()),
        pruned_at_int_zero=np.int64((~magnitude_mask(w, 0)).sum()),
    )
    for label, bad in bad_sparsities(rng, s).items():
        answer.record(**{f"sparsity_{label}": answer.raises(magnitude_mask, w, bad)})
    for label, bad in bad_weights(rng, w).items():
        answer.record(**{f"weights_{label}": answer.raises(magnitude_mask, bad, s)})


def test_global_pruning_refuses_bad_sparsities_weights_and_lists(answer):
    from tinytorch.perf.compression import global_magnitude_masks, magnitude_mask

    rng = answer.rng
    w = rng.standard_normal(int(rng.integers(3, 13))).astype(np.float32)
    s = float(rng.uniform(0.05, 0.95))
    # The one valid call is magnitude_mask's, as in the suite's refusal tests: global pruning's
    # own refusals come before any ranking, so a global_magnitude_masks that only refuses (not
    # solved yet) passes those tests, and this check with them.
    answer.record(valid_mask=magnitude_mask(w, s))
    for label, bad in bad_sparsities(rng, s).items():
        answer.record(**{f"sparsity_{label}": answer.raises(global_magnitude_masks, [w], bad)})
    for label, bad in bad_weights(rng, w).items():
        answer.record(**{f"weights_{label}": answer.raises(global_magnitude_masks, [w, bad], s)})
    answer.record(
        empty_list=answer.raises(global_magnitude_masks, [], s),
        bare_array=answer.raises(global_magnitude_masks, w, s),
    )


def test_prune_model_refuses_bad_sparsities(answer):
    from tinytorch.perf.compression import magnitude_mask, prune_model

    rng = answer.rng
    model = Sequential(Linear(3, 2, rng=rng))
    s = float(rng.uniform(0.05, 0.95))
    # prune_model checks the sparsity before it looks at the model (the suite's refusals call
    # magnitude_mask too, not prunable_weights): the one valid call here is magnitude_mask's
    answer.record(valid_mask=magnitude_mask(model[0].weight.data, s))
    for label, bad in bad_sparsities(rng, s).items():
        answer.record(**{f"sparsity_{label}": answer.raises(prune_model, model, bad)})


def test_prune_model_refuses_what_it_cannot_prune(answer):
    from tinytorch.perf.compression import prune_model

    rng = answer.rng
    s = float(rng.uniform(0.05, 0.95))
    answer.record(
        without_weights=answer.raises(prune_model, Sequential(ReLU(), Flatten()), s),
        not_a_module=answer.raises(prune_model, np.ones((3, 3), np.float32), s),
        bad_scope=answer.raises(prune_model, Sequential(Linear(3, 2, rng=rng)), s, scope="network"),
    )


def test_sparsity_report_refuses_a_model_without_weights(answer):
    from tinytorch.perf.compression import sparsity_report

    answer.record(
        relu=answer.raises(sparsity_report, ReLU()),
        pool_and_flatten=answer.raises(sparsity_report, Sequential(MaxPool2d(2), Flatten())),
    )


def test_layer_functions_refuse_layers_of_the_wrong_type(answer):
    from tinytorch.perf.compression import (
        SparseLinear,
        filter_norms,
        prune_conv_filters,
        prune_model,
        unit_norms,
    )

    # These functions check the layer's type before anything else (their unsolved stubs too):
    # the one valid call is prune_model's, as in the suite's test of these refusals.
    rng = answer.rng
    model = random_mlp(rng, [int(n) for n in rng.integers(2, 9, 3)])
    masks = prune_model(model, float(rng.uniform(0.2, 0.8)))
    answer.record(
        valid_masks=np.concatenate([masks[n].ravel() for n in sorted(masks)]),
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


def test_prune_model_layer_wise_masks_every_weight_and_reports_it(answer):
    from tinytorch.perf.compression import prune_model

    rng = answer.rng
    mlp = random_mlp(rng, [int(n) for n in rng.integers(2, 13, 4)])
    masks = prune_model(mlp, draw_sparsity(rng, 20, SPARSITY_KINDS[int(rng.integers(8))]), scope="layer")
    record_pruned_model(answer, "mlp_layer", mlp, masks)
    linear = Linear(int(rng.integers(1, 9)), int(rng.integers(1, 9)), rng=rng)
    # a bare Linear: its mask is "weight"
    masks = prune_model(linear, float(rng.uniform(0, 1)), scope="layer")
    record_pruned_model(answer, "bare_linear", linear, masks)


def test_prune_model_global_masks_every_weight_and_reports_it(answer):
    from tinytorch.perf.compression import prune_model

    rng = answer.rng
    cnn, _ = random_cnn(rng)
    masks = prune_model(cnn, float(rng.uniform(0.2, 0.95)), scope="global")
    record_pruned_model(answer, "cnn_global", cnn, masks)
    linear = Linear(int(rng.integers(1, 9)), int(rng.integers(1, 9)), rng=rng)
    masks = prune_model(linear, float(rng.uniform(0, 1)), scope="global")
    record_pruned_model(answer, "bare_linear", linear, masks)


def test_sparsity_report_counts_exact_zeros(answer):
    from tinytorch.perf.compression import sparsity_report

    # exact zeros: -0.0 is a zero, 1e-30 is not; biases are not counted
    rng = answer.rng
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
        exact_overall=np.float64(report.overall),
        exact_per_layer=np.array([report.per_layer[n] for n in names], np.float64),
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


def masks_through_moving_steps(answer, scope: str) -> None:
    from tinytorch.perf.compression import MaskedOptimizer, prune_model

    rng = answer.rng
    model = random_mlp(rng, [int(n) for n in rng.integers(2, 11, 4)])
    masks = prune_model(model, float(rng.uniform(0.3, 0.8)), scope=scope)
    inner = MovesEverything(model.parameters())
    optimizer = MaskedOptimizer(inner, model, masks)
    for _ in range(int(rng.integers(1, 4))):
        optimizer.zero_grad()
        optimizer.step()
    _, values = state(model)
    answer.record(
        moved_steps=np.int64(inner.steps),
        moved_zero_grads=np.int64(inner.zeroed),
        moved_params=np.concatenate([v.ravel() for v in values]),
        moved_zero_pattern=np.concatenate([v.ravel() == 0 for v in values]),
    )


def test_masked_optimizer_reapplies_layer_wise_masks_after_every_step(answer):
    masks_through_moving_steps(answer, "layer")


def test_masked_optimizer_reapplies_global_masks_after_every_step(answer):
    masks_through_moving_steps(answer, "global")


@pytest.mark.tolerance(
    rtol=1e-4,
    atol=1e-5,
    why="SGD steps through float32 products whose summation order may differ between processes "
    "(BLAS); a pruned weight that moved is off by O(0.1), and the zero pattern is compared exactly",
)
def test_masks_hold_through_sgd_with_momentum(answer):
    from tinytorch.perf.compression import MaskedOptimizer, prune_model

    from tinytorch.losses import cross_entropy
    from tinytorch.optim import SGD

    # real training: SGD with momentum, the kept weights train and the pruned stay 0
    rng = answer.rng
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
    _, values = state(model)
    answer.record(
        sgd_params=np.concatenate([v.ravel() for v in values]),
        sgd_zero_pattern=np.concatenate([v.ravel() == 0 for v in values]),
    )


def test_apply_masks_zeroes_the_masked_weights_and_refuses_bad_masks(answer):
    from tinytorch.perf.compression import MaskedOptimizer, apply_masks

    # apply_masks on drawn masks, and masks that do not fit
    rng = answer.rng
    model = random_mlp(rng, [int(n) for n in rng.integers(2, 9, 3)])
    first = model[1]
    drawn = {"layers.1.weight": rng.random(first.weight.shape) < 0.5}
    apply_masks(model, drawn)
    _, values = state(model)
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
# Structured pruning: ranking, layer surgery, whole models
# --------------------------------------------------------------------------------------------


def test_units_to_keep_drops_the_smallest_norms(answer):
    from tinytorch.perf.compression import units_to_keep

    rng = answer.rng
    for i in range(8):
        n = int(rng.integers(1, 13))
        norms = rng.choice([0.0, 0.5, 1.0, 2.0, 3.5], size=n)  # ties: the earlier unit goes first
        amount = float(rng.choice([0.0, 0.25, 0.5, 0.75, rng.random()]))
        if round(amount * n) >= n:
            answer.record(**{f"keep{i}": answer.raises(units_to_keep, norms, amount)})
        else:
            answer.record(**{f"keep{i}": np.asarray(units_to_keep(norms, amount)).astype(np.int64)})
    answer.record(
        remove_all=answer.raises(units_to_keep, rng.random(int(rng.integers(1, 5))), 1.0),
        amount_percent=answer.raises(units_to_keep, rng.random(4), float(rng.integers(2, 101))),
        norms_2d=answer.raises(units_to_keep, np.ones((2, 2)), 0.5),
    )


NORMS = pytest.mark.tolerance(
    rtol=2e-5,
    atol=0.0,
    why="L2 norms of at most 27 weights: in float64 (the contract) any order agrees to ~1e-15; summed "
    "in float32 within n u32 ~ 2e-6, tolerated (the ranking is what counts); an L1 norm is larger by O(1)",
)


# The unsolved stubs of filter_norms and unit_norms refuse a layer of the wrong type (given
# checks): test_a_layer_without_weights_is_a_clear_error then passes, and these checks must not
# take its credit.
@NORMS
@pytest.mark.covers("test_filter*", "test_structured_pruning_refuses_*", "test_zoo_cnn_*")
def test_filters_are_ranked_by_their_l2_norm(answer):
    from tinytorch.perf.compression import filter_norms

    rng = answer.rng
    for i in range(2):
        conv = Conv2d(int(rng.integers(1, 4)), int(rng.integers(2, 7)), int(rng.integers(2, 4)), rng=rng)
        conv.weight.data[...] = rng.standard_normal(conv.weight.shape) * rng.uniform(
            0.1, 2, (conv.weight.shape[0], 1, 1, 1)
        )
        answer.record(**{f"filter_norms{i}": filter_norms(conv)})


@NORMS
@pytest.mark.covers("test_neuron_pruned_*")
def test_units_are_ranked_by_their_l2_norm(answer):
    from tinytorch.perf.compression import unit_norms

    rng = answer.rng
    for i in range(2):
        linear = Linear(int(rng.integers(2, 9)), int(rng.integers(2, 9)), rng=rng)
        linear.weight.data[...] *= rng.uniform(0.1, 2, linear.weight.shape[1])
        answer.record(**{f"unit_norms{i}": unit_norms(linear)})


@NORMS
def test_units_to_keep_keeps_the_filters_of_largest_norm(answer):
    from tinytorch.perf.compression import filter_norms, units_to_keep

    rng = answer.rng
    conv = Conv2d(int(rng.integers(1, 4)), int(rng.integers(2, 7)), int(rng.integers(2, 4)), rng=rng)
    conv.weight.data[...] = rng.standard_normal(conv.weight.shape) * rng.uniform(
        0.1, 2, (conv.weight.shape[0], 1, 1, 1)
    )
    norms = filter_norms(conv)
    answer.record(
        norms=norms,
        kept=np.asarray(units_to_keep(norms, float(rng.uniform(0, 0.6)))).astype(np.int64),
    )


@NORMS
def test_units_to_keep_keeps_the_units_of_largest_norm(answer):
    from tinytorch.perf.compression import unit_norms, units_to_keep

    rng = answer.rng
    linear = Linear(int(rng.integers(2, 9)), int(rng.integers(2, 9)), rng=rng)
    norms = unit_norms(linear)
    answer.record(
        norms=norms,
        kept=np.asarray(units_to_keep(norms, float(rng.uniform(0, 0.6)))).astype(np.int64),
    )


def draw_keep(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sorted distinct indices in [0, n), at least one."""
    return np.sort(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False)).astype(np.int64)


def draw_conv(rng: np.random.Generator) -> Conv2d:
    c_in, c_out = int(rng.integers(1, 5)), int(rng.integers(2, 7))
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    bias = bool(rng.random() < 0.75)
    conv = Conv2d(c_in, c_out, kernel, int(rng.integers(1, 3)), int(rng.integers(0, 2)), bias=bias, rng=rng)
    if bias:
        conv.bias.data[...] = rng.standard_normal(c_out)
    return conv


def record_conv(answer, tag: str, conv, layer) -> None:
    answer.record(
        **{
            f"{tag}_is_new_conv": isinstance(layer, Conv2d) and layer is not conv,
            f"{tag}_weight": layer.weight.data,
            f"{tag}_has_bias": layer.bias is not None,
            f"{tag}_bias": np.zeros(0) if layer.bias is None else layer.bias.data,
            f"{tag}_meta": np.array(
                [layer.out_channels, layer.in_channels, layer.stride, layer.padding, *layer.kernel_size],
                np.int64,
            ),
        }
    )


def record_linear(answer, tag: str, layer) -> None:
    answer.record(
        **{
            f"{tag}_weight": layer.weight.data,
            f"{tag}_has_bias": layer.bias is not None,
            f"{tag}_bias": np.zeros(0) if layer.bias is None else layer.bias.data,
        }
    )


def test_prune_conv_filters_keeps_exactly_the_chosen_filters(answer):
    from tinytorch.perf.compression import prune_conv_filters

    rng = answer.rng
    for i in range(3):
        conv = draw_conv(rng)
        before = conv.weight.data.copy()
        record_conv(answer, f"conv{i}", conv, prune_conv_filters(conv, draw_keep(rng, conv.out_channels)))
        answer.record(**{f"conv{i}_untouched": np.array_equal(conv.weight.data, before)})


def test_shrink_conv_inputs_keeps_exactly_the_chosen_channels(answer):
    from tinytorch.perf.compression import shrink_conv_inputs

    rng = answer.rng
    for i in range(3):
        conv = draw_conv(rng)
        before = conv.weight.data.copy()
        record_conv(answer, f"conv{i}", conv, shrink_conv_inputs(conv, draw_keep(rng, conv.in_channels)))
        answer.record(**{f"conv{i}_untouched": np.array_equal(conv.weight.data, before)})


def test_prune_linear_units_keeps_exactly_the_chosen_units(answer):
    from tinytorch.perf.compression import prune_linear_units

    rng = answer.rng
    for i in range(3):
        n_in, n_out = int(rng.integers(2, 8)), int(rng.integers(2, 8))
        linear = Linear(n_in, n_out, bias=bool(rng.random() < 0.75), rng=rng)
        if linear.bias is not None:
            linear.bias.data[...] = rng.standard_normal(n_out)
        record_linear(answer, f"linear{i}", prune_linear_units(linear, draw_keep(rng, n_out)))


def test_shrink_linear_inputs_keeps_the_rows_of_the_kept_channels(answer):
    from tinytorch.perf.compression import shrink_linear_inputs

    rng = answer.rng
    for i in range(3):
        per_channel = int(rng.integers(1, 5))
        n_in, n_out = int(rng.integers(1, 5)) * per_channel, int(rng.integers(2, 8))
        reader = Linear(n_in, n_out, bias=bool(rng.random() < 0.75), rng=rng)
        if reader.bias is not None:
            reader.bias.data[...] = rng.standard_normal(n_out)
        keep = draw_keep(rng, reader.in_features // per_channel)
        record_linear(answer, f"linear{i}", shrink_linear_inputs(reader, keep, per_channel))


def test_layer_surgery_refuses_what_does_not_fit(answer):
    from tinytorch.perf.compression import (
        check_keep,
        find_consumer,
        prune_linear_units,
        shrink_conv_inputs,
        shrink_linear_inputs,
    )

    rng = answer.rng
    linear = Linear(6, 4, bias=False, rng=rng)
    keep = draw_keep(rng, 4)
    answer.record(
        valid=prune_linear_units(linear, keep).weight.data,
        keep_unsorted=answer.raises(check_keep, np.array([2, 1]), 4),
        keep_float=answer.raises(check_keep, np.array([0.5]), 4),
        keep_past_the_end=answer.raises(prune_linear_units, linear, np.array([0, 4])),
        keep_nothing=answer.raises(prune_linear_units, linear, np.zeros(0, np.int64)),
        shrink_conv_of_linear=answer.raises(shrink_conv_inputs, linear, np.array([0])),
        prune_units_of_conv=answer.raises(prune_linear_units, Conv2d(1, 2, 1), np.array([0])),
        shrink_linear_of_relu=answer.raises(shrink_linear_inputs, ReLU(), np.array([0])),
        rows_not_a_multiple=answer.raises(
            shrink_linear_inputs, linear, np.array([0]), features_per_channel=4
        ),
        consumer_of_relu=answer.raises(find_consumer, [ReLU(), Linear(2, 2)], 0),
        unequal_blocks=answer.raises(find_consumer, [Conv2d(1, 3, 1), Flatten(), Linear(8, 2)], 0),
    )


STRUCTURED = pytest.mark.tolerance(
    rtol=1e-5,
    atol=1e-6,
    why="the outputs of two models with identical float32 parameters: only the BLAS summation "
    "order may differ between processes; every parameter and shape is compared exactly",
)


def record_structured(answer, tag: str, original, pruned, x) -> None:
    """The pruned model's layers, parameters, size, mode and output; the original left alone."""
    _, before = state(original)
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


@STRUCTURED
def test_prune_filters_shrinks_a_drawn_cnn_and_its_consumers(answer):
    from tinytorch.perf.compression import prune_filters

    rng = answer.rng
    cnn, (c, h, w) = random_cnn(rng)
    if rng.random() < 0.5:
        cnn.eval()
    x = rng.standard_normal((int(rng.integers(1, 4)), c, h, w)).astype(np.float32)
    record_structured(answer, "cnn", cnn, prune_filters(cnn, float(rng.uniform(0.1, 0.7))), x)
    second = prune_filters(cnn, float(rng.uniform(0.1, 0.7)), layers=[3])  # its consumer is the Linear
    record_structured(answer, "cnn_second_conv", cnn, second, x)


@STRUCTURED
def test_prune_neurons_shrinks_a_drawn_mlp_and_its_consumers(answer):
    from tinytorch.perf.compression import prune_neurons

    rng = answer.rng
    mlp = random_mlp(rng, [int(n) for n in rng.integers(3, 13, 4)])
    if rng.random() < 0.5:
        mlp.eval()
    x = rng.standard_normal((int(rng.integers(1, 4)), mlp[1].in_features)).astype(np.float32)
    record_structured(answer, "mlp", mlp, prune_neurons(mlp, float(rng.uniform(0.1, 0.7))), x)


def zoo_images(rng: np.random.Generator) -> np.ndarray:
    from tinytorch import zoo

    images, _ = zoo.eval_data("cnn_digits")
    return images[rng.choice(len(images), size=3, replace=False)]


@STRUCTURED
def test_prune_filters_shrinks_the_zoo_cnn(answer):
    from tinytorch.perf.compression import prune_filters

    from tinytorch import zoo

    rng = answer.rng
    cnn = zoo.load_model("cnn_digits")
    amount = float(rng.choice([0.25, 0.5, 0.75]))
    record_structured(answer, "zoo_cnn", cnn, prune_filters(cnn, amount), zoo_images(rng))


@STRUCTURED
def test_prune_neurons_shrinks_the_zoo_mlp(answer):
    from tinytorch.perf.compression import prune_neurons

    from tinytorch import zoo

    rng = answer.rng
    mlp = zoo.load_model("mlp_digits")
    amount = float(rng.choice([0.25, 0.5, 0.75]))
    record_structured(answer, "zoo_mlp", mlp, prune_neurons(mlp, amount), zoo_images(rng))


def test_structured_pruning_refuses_what_it_cannot_shrink(answer):
    from tinytorch.perf.compression import prune_filters, prune_neurons

    rng = answer.rng
    cnn, _ = random_cnn(rng)
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
                f"to_dense{case}": back,
                f"to_dense_dtype{case}": str(back.dtype),
            }
        )


def test_csr_to_dense_adds_repeated_columns(answer):
    # a hand-built CSR may repeat a column in a row: its entries add up
    answer.record(duplicates_to_dense=csr_with_duplicates(answer.rng).to_dense())


def test_csr_density_counts_the_stored_entries(answer):
    from tinytorch.perf.compression import CSRMatrix

    rng = answer.rng
    for case in range(10):
        csr = CSRMatrix.from_dense(sparse_matrix(rng, case))
        answer.record(**{f"density{case}": np.float64(csr.density)})


def test_csr_refuses_a_malformed_structure(answer):
    from tinytorch.perf.compression import CSRMatrix

    rng = answer.rng
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


def test_csr_product_equals_the_dense_product(answer):
    from tinytorch.perf.compression import CSRMatrix, csr_matmul

    rng = answer.rng
    for case in range(10):
        A = sparse_matrix(rng, case, dyadic_values=True)
        B = dyadic(rng, (A.shape[1], int(rng.integers(1, 6))), 4, 2.0)
        C = csr_matmul(CSRMatrix.from_dense(A), B)
        answer.record(**{f"product{case}": C, f"product_dtype{case}": str(np.asarray(C).dtype)})


def test_csr_product_adds_repeated_columns(answer):
    from tinytorch.perf.compression import csr_matmul

    rng = answer.rng
    dup = csr_with_duplicates(rng)
    B = dyadic(rng, (dup.shape[1], int(rng.integers(1, 5))), 4, 2.0)
    answer.record(duplicates_product=csr_matmul(dup, B))


def test_csr_product_refuses_operands_that_do_not_fit(answer):
    from tinytorch.perf.compression import CSRMatrix, csr_matmul

    rng = answer.rng
    A = sparse_matrix(rng, 0, dyadic_values=True)
    B = dyadic(rng, (A.shape[1], int(rng.integers(1, 5))), 4, 2.0)
    csr = CSRMatrix.from_dense(A)
    answer.record(
        inner_mismatch=answer.raises(csr_matmul, csr, B[:-1] if len(B) > 1 else np.ones((2, 1), np.float32)),
        integer_b=answer.raises(csr_matmul, csr, B.astype(np.int64)),
        dense_a=answer.raises(csr_matmul, A, B),
    )


def test_csr_kernel_is_registered_on_the_backend(answer):
    from tinytorch.perf.acceleration import OptimizedBackend
    from tinytorch.perf.compression import CSRMatrix, register_sparse, sparse_backend

    rng = answer.rng
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
        fresh_dispatched=fresh.dispatch("matmul", csr, B),
    )


def test_register_sparse_refuses_what_is_not_a_backend(answer):
    from tinytorch.perf.acceleration import OptimizedBackend
    from tinytorch.perf.compression import register_sparse

    backend = OptimizedBackend()
    answer.record(valid_returns_the_backend=register_sparse(backend) is backend)

    answer.record(
        on_object=answer.raises(register_sparse, object()), on_none=answer.raises(register_sparse, None)
    )


def test_csr_kernel_has_no_python_loop_per_row(answer):
    # It traces itself (sys.settrace), so the grader's trace sees no kata function here: it decides
    # no test, and counts only as a check of its own.
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


def sparse_linear_and_input(rng: np.random.Generator):
    """A Linear of dyadic weights, about half of them zero, with an output unit of no weights (an
    empty CSR row) and a dyadic bias."""
    n_in, n_out = int(rng.integers(4, 17)), int(rng.integers(3, 9))
    linear = Linear(n_in, n_out, rng=rng)
    linear.weight.data[...] = dyadic(rng, (n_in, n_out), 8, 2.0) * (
        rng.random((n_in, n_out)) > rng.uniform(0.3, 0.9)
    )
    linear.weight.data[:, int(rng.integers(n_out))] = 0  # an output unit with no weights: an empty CSR row
    linear.bias.data[...] = dyadic(rng, n_out, 8, 2.0)
    return linear


def test_sparse_linear_from_linear_stores_the_transposed_weight_in_csr(answer):
    from tinytorch.perf.compression import SparseLinear

    rng = answer.rng
    sparse = SparseLinear.from_linear(sparse_linear_and_input(rng))
    answer.record(
        weight_t_data=sparse.weight_t.data,
        weight_t_indices=sparse.weight_t.indices,
        weight_t_indptr=sparse.weight_t.indptr,
        weight_t_shape=np.array(sparse.weight_t.shape, np.int64),
        bias=sparse.bias,
    )


def test_sparse_linear_size_is_its_csr_size(answer):
    from tinytorch.perf.compression import SparseLinear

    sparse = SparseLinear.from_linear(sparse_linear_and_input(answer.rng))
    answer.record(nbytes=np.int64(sparse.weight_t.nbytes))


class Spy:
    """Counts the calls of a kernel it wraps."""

    def __init__(self, kernel) -> None:
        self.kernel, self.calls = kernel, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.kernel(*args, **kwargs)


def test_sparse_linear_computes_the_linear_through_one_dispatch(answer):
    from tinytorch.perf.compression import SparseLinear, sparse_backend

    from tinytorch.backend import use_backend

    rng = answer.rng
    linear = sparse_linear_and_input(rng)
    n_in = linear.in_features
    sparse = SparseLinear.from_linear(linear)
    answer.record(features=np.array([sparse.in_features, sparse.out_features], np.int64))
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
    answer.record(dispatches_after=np.int64(spy.calls))


def test_sparse_linear_without_bias(answer):
    from tinytorch.perf.compression import SparseLinear

    rng = answer.rng
    n_in, n_out = int(rng.integers(4, 17)), int(rng.integers(3, 9))
    no_bias = Linear(n_in, n_out, bias=False, rng=rng)
    no_bias.weight.data[...] = dyadic(rng, (n_in, n_out), 8, 2.0)
    sparse = SparseLinear.from_linear(no_bias)
    answer.record(no_bias_is_none=sparse.bias is None, y=sparse(dyadic(rng, (2, n_in), 4, 2.0)).data)


def test_sparse_linear_needs_a_backend_with_the_sparse_kernel(answer):
    from tinytorch.perf.acceleration import OptimizedBackend
    from tinytorch.perf.compression import SparseLinear

    from tinytorch.backend import use_backend

    rng = answer.rng
    linear = sparse_linear_and_input(rng)
    sparse = SparseLinear.from_linear(linear)
    with use_backend(OptimizedBackend()):
        plain = answer.raises(sparse, dyadic(rng, (2, linear.in_features), 4, 2.0))
    answer.record(plain_backend=plain)


def test_sparse_linear_refuses_inputs_and_parts_that_do_not_fit(answer):
    from tinytorch.perf.compression import CSRMatrix, SparseLinear

    rng = answer.rng
    linear = sparse_linear_and_input(rng)
    n_in = linear.in_features
    sparse = SparseLinear.from_linear(linear)
    weight_t = CSRMatrix.from_dense(np.ascontiguousarray(linear.weight.data.T))
    answer.record(
        wrong_features=answer.raises(sparse, np.ones((2, n_in - 1), np.float32)),
        weight_t_not_csr=answer.raises(SparseLinear, linear.weight.data.T),
        bias_wrong_shape=answer.raises(SparseLinear, weight_t, np.zeros(n_in + 1)),
    )


def test_sparsify_replaces_every_linear(answer):
    from tinytorch.perf.compression import SparseLinear, sparsify

    rng = answer.rng
    widths = [int(n) for n in rng.integers(2, 7, 4)]
    mlp = random_mlp(rng, widths)
    for layer in mlp:
        if isinstance(layer, Linear):
            layer.weight.data[...] = dyadic(rng, layer.weight.shape, 8, 1.0) * (
                rng.random(layer.weight.shape) < 0.6
            )
            layer.bias.data[...] = dyadic(rng, layer.bias.shape, 8, 1.0)
    if rng.random() < 0.5:
        mlp.eval()
    converted = sparsify(mlp)
    x = dyadic(rng, (int(rng.integers(1, 5)), widths[0]), 4, 1.0)
    answer.record(
        sparsified_layers=np.array([type(layer).__name__ for layer in converted], dtype=str),
        sparsified_training=bool(converted.training),
        sparsified_y=converted(x).data,
        sparsify_linear=isinstance(sparsify(mlp[1]), SparseLinear),
        sparsify_relu=answer.raises(sparsify, ReLU()),
    )
