"""Module plumbing and the basic layers (tinytorch.layers).

Gradients are checked against central finite differences in float64 (layercheck.py /
gradcheck.py). Forward values are compared with plain numpy references computed in float64;
float32 layers are compared with rtol 1e-5: a float32 dot product of K <= 64 terms has a
relative rounding error of about K * eps32 / sqrt-ish ~ 64 * 6e-8 ~ 4e-6 in the worst case.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from layercheck import RecordingBackend, check_module_grads
from strategies import float_arrays, tensor_shapes

from tinytorch import (
    GELU,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    Module,
    ReLU,
    Sequential,
    Softmax,
    Tensor,
    manual_seed,
)
from tinytorch.backend import use_backend
from tinytorch.layers import bind_inputs

F32_RTOL = 1e-5  # float32 products/sums of at most ~64 terms vs a float64 reference (see module doc)
F32_ATOL = 1e-6


class Block(Module):
    """A nested module with a list of submodules, a buffer and a plain attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = Tensor(np.ones(3), requires_grad=True)
        self.buffer = Tensor(np.zeros(3))  # requires_grad=False: not a parameter
        self.fc = Linear(3, 2, rng=np.random.default_rng(0))
        self.layers = [Linear(2, 2, bias=False, rng=np.random.default_rng(1)), ReLU()]
        self.name = "block"

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc(x * self.scale)
        for layer in self.layers:
            x = layer(x)
        return x


class Net(Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Block()
        self.head = Sequential(Linear(2, 4, rng=np.random.default_rng(2)), GELU())

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.block(x))


# --- discovery ---------------------------------------------------------------------------------


def test_named_parameters_dotted_and_in_attribute_order():
    assert [n for n, _ in Net().named_parameters()] == [
        "block.scale",
        "block.fc.weight",
        "block.fc.bias",
        "block.layers.0.weight",
        "head.layers.0.weight",
        "head.layers.0.bias",
    ]


def test_parameters_match_named_parameters_and_skip_buffers():
    net = Net()
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]
    assert all(p is not net.block.buffer for p in net.parameters())


def test_named_modules_depth_first_with_empty_name_for_self():
    net = Net()
    names = [n for n, _ in net.named_modules()]
    assert names == [
        "",
        "block",
        "block.fc",
        "block.layers.0",
        "block.layers.1",
        "head",
        "head.layers.0",
        "head.layers.1",
    ]
    assert net.named_modules()[0][1] is net
    assert net.children() == [net.block, net.head]


def test_num_parameters_counts_every_scalar():
    # scale 3 + fc 3*2+2 + layers.0 2*2 + head 2*4+4
    assert Net().num_parameters() == 3 + 8 + 4 + 12


def test_cached_activation_is_not_a_parameter():
    net = Net()
    before = [n for n, _ in net.named_parameters()]
    net.block.last = net.block.fc(np.ones((1, 3), dtype=np.float32))  # requires grad, but an op result
    assert net.block.last.requires_grad
    assert [n for n, _ in net.named_parameters()] == before


def test_tied_weight_listed_once():
    shared = Linear(2, 2)
    a, b = Sequential(shared, ReLU()), Sequential(shared)
    pair = Sequential(a, b)
    assert len(pair.parameters()) == 2
    assert [n for n, _ in pair.named_parameters()] == ["layers.0.layers.0.weight", "layers.0.layers.0.bias"]


# --- modes, gradients, state -------------------------------------------------------------------


def test_train_eval_propagate_to_every_submodule():
    net = Net()
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_clears_every_parameter():
    net = Net()
    net(np.ones((2, 3), dtype=np.float32)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_is_a_copy_and_round_trips():
    src, dst = Net(), Net()
    for p in dst.parameters():
        p.data[...] = 7.0
    state = src.state_dict()
    assert list(state) == [n for n, _ in src.named_parameters()]
    state["block.fc.weight"][...] = 123.0  # mutating the copy does not touch the module
    assert not np.any(src.block.fc.weight.data == 123.0)
    state = src.state_dict()
    keep = dst.block.fc.weight
    dst.load_state_dict(state)
    assert dst.block.fc.weight is keep  # loaded in place: references stay valid
    for name, p in dst.named_parameters():
        np.testing.assert_array_equal(p.data, state[name])


def test_load_state_dict_missing_key_names_it():
    state = Net().state_dict()
    del state["block.fc.bias"]
    with pytest.raises(KeyError, match="block.fc.bias"):
        Net().load_state_dict(state)


def test_load_state_dict_unexpected_key_names_it():
    state = Net().state_dict()
    state["block.extra"] = np.zeros(3)
    with pytest.raises(KeyError, match="block.extra"):
        Net().load_state_dict(state)


def test_load_state_dict_shape_mismatch_names_parameter_and_changes_nothing():
    net = Net()
    before = net.state_dict()
    state = {n: a + 1 for n, a in before.items()}
    state["head.layers.0.bias"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"head\.layers\.0\.bias.*\(4,\).*\(5,\)"):
        net.load_state_dict(state)
    for name, p in net.named_parameters():  # the valid entries before the bad one were not applied
        np.testing.assert_array_equal(p.data, before[name])


def test_load_state_dict_non_strict_ignores_missing_and_unexpected():
    net = Net()
    net.load_state_dict({"block.scale": np.full(3, 2.0), "nonsense": np.zeros(1)}, strict=False)
    np.testing.assert_array_equal(net.block.scale.data, np.full(3, 2.0, dtype=np.float32))
    assert net.block.scale.dtype == np.float32  # keeps the parameter's dtype


# --- hooks -------------------------------------------------------------------------------------


def test_forward_hook_sees_inputs_and_output_and_can_be_removed():
    net = Net()
    calls = []
    handle = net.block.fc.register_forward_hook(lambda m, inputs, out: calls.append((m, inputs, out)))
    x = Tensor(np.ones((2, 3)))
    y = net(x)
    assert len(calls) == 1
    module, inputs, out = calls[0]
    assert module is net.block.fc
    assert isinstance(inputs, tuple) and len(inputs) == 1
    np.testing.assert_array_equal(inputs[0].data, (x * net.block.scale).data)
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out.data, net.block.fc(inputs[0]).data)
    assert y.shape == (2, 4)
    handle.remove()
    handle.remove()  # idempotent
    net(x)
    assert len(calls) == 2  # the direct call above fired once more; the forward after remove did not


def test_forward_hooks_fire_in_registration_order_and_return_value_is_ignored():
    relu = ReLU()
    order = []
    relu.register_forward_hook(lambda m, i, o: order.append("a") or "ignored")
    h = relu.register_forward_hook(lambda m, i, o: order.append("b"))
    out = relu(np.array([-1.0, 2.0]))
    assert order == ["a", "b"]
    np.testing.assert_array_equal(out.data, [0.0, 2.0])
    h.remove()
    relu(np.array([1.0]))
    assert order == ["a", "b", "a"]


def test_register_forward_hook_rejects_non_callable():
    with pytest.raises(TypeError, match="fn"):
        ReLU().register_forward_hook(42)


def test_repr_shows_the_tree():
    assert repr(Sequential(Linear(2, 3), ReLU())) == (
        "Sequential(\n  (layers.0): Linear(2, 3, bias=True)\n  (layers.1): ReLU()\n)"
    )
    nested = repr(Sequential(Sequential(ReLU())))
    assert nested == "Sequential(\n  (layers.0): Sequential(\n    (layers.0): ReLU()\n  )\n)"


def test_a_module_shared_under_two_names_is_listed_once():
    shared = Linear(2, 2)
    seq = Sequential(shared, ReLU(), shared)
    assert [n for n, _ in seq.named_modules()] == ["", "layers.0", "layers.1"]
    assert [id(m) for m in seq.modules()] == [id(seq), id(shared), id(seq.layers[1])]
    seen = []
    handle = shared.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    seq(np.ones((3, 2), np.float32))
    handle.remove()
    assert seen == [(3, 2), (3, 2)], "one hook, called once per call of the shared layer"


class KeywordForward(Module):
    def forward(self, x, scale=1.0, shift=0.0, *rest, tag=None, **extra):
        return x


def test_forward_hooks_get_keyword_arguments_in_forward_order():
    seen = []
    layer = KeywordForward()
    layer.register_forward_hook(lambda m, inputs, out: seen.append(inputs))
    layer(x=1)
    layer(1, shift=3.0)
    layer(1, 2.0, 3.0, 4.0, tag="t", other=5)
    assert seen == [(1,), (1, 1.0, 3.0), (1, 2.0, 3.0, 4.0, "t", 5)]
    assert bind_inputs(Linear(2, 2), (), {"x": 7}) == (7,)
    assert bind_inputs(Linear(2, 2), (1,), {"bogus": 2}) == (1, 2), "a call that does not fit: appended"


# --- Linear ------------------------------------------------------------------------------------


@given(
    lead=st.lists(st.integers(1, 3), max_size=2).map(tuple),
    n_in=st.integers(1, 6),
    n_out=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
@example(lead=(), n_in=1, n_out=1, seed=0)  # a single vector, 1x1 weight
def test_linear_matches_numpy_for_any_leading_dims(lead, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    layer = Linear(n_in, n_out, rng=rng)
    layer.bias.data[...] = rng.standard_normal(n_out)
    x = rng.standard_normal((*lead, n_in)).astype(np.float32)
    y = layer(x)
    assert y.shape == (*lead, n_out) and y.dtype == np.float32
    expected = x.astype(np.float64) @ layer.weight.data.astype(np.float64) + layer.bias.data
    np.testing.assert_allclose(y.data, expected, rtol=F32_RTOL, atol=F32_ATOL)


def test_linear_init_is_seeded_xavier_uniform_with_zero_bias():
    a = Linear(20, 30, rng=np.random.default_rng(5))
    b = Linear(20, 30, rng=np.random.default_rng(5))
    c = Linear(20, 30, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    bound = math.sqrt(6 / 50)
    assert a.weight.shape == (20, 30) and a.weight.dtype == np.float32
    assert np.abs(a.weight.data).max() <= bound
    assert np.abs(a.weight.data).max() > 0.9 * bound  # 600 draws: max |U(-a, a)| > 0.9a w.p. 1 - 0.9^600
    np.testing.assert_array_equal(a.bias.data, np.zeros(30))
    assert Linear(3, 2, bias=False).bias is None


def test_manual_seed_makes_default_init_reproducible():
    manual_seed(123)
    a = Linear(4, 4).weight.data.copy()
    manual_seed(123)
    np.testing.assert_array_equal(Linear(4, 4).weight.data, a)


@given(lead=st.lists(st.integers(1, 3), max_size=2).map(tuple), seed=st.integers(0, 1000))
def test_linear_gradients_match_finite_differences(lead, seed):
    rng = np.random.default_rng(seed)
    layer = Linear(3, 2, rng=rng)
    layer.astype(np.float64)
    layer.bias.data[...] = rng.standard_normal(2)
    check_module_grads(layer, layer, rng.standard_normal((*lead, 3)))


def test_linear_wrong_input_size_names_both():
    with pytest.raises(ValueError, match=r"in_features=3.*\(2, 4\)|\(2, 4\).*in_features=3"):
        Linear(3, 2)(np.ones((2, 4)))


@pytest.mark.parametrize("args", [(0, 2), (2, -1), (2.0, 3)])
def test_linear_rejects_bad_sizes(args):
    with pytest.raises((ValueError, TypeError), match="features"):
        Linear(*args)


def test_linear_product_goes_through_the_active_backend_as_one_2d_matmul():
    layer = Linear(4, 3)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    fake = RecordingBackend()
    with use_backend(fake):
        y = layer(x)
    assert fake.calls == [("matmul", (10, 4), (4, 3))]
    np.testing.assert_allclose(y.data, layer(x).data, rtol=0, atol=0)


# --- activations, Flatten, Softmax ---------------------------------------------------------------


@given(x=float_arrays(tensor_shapes(min_dims=1)))
def test_activations_match_numpy(x):
    np.testing.assert_allclose(ReLU()(Tensor(x, dtype=np.float64)).data, np.maximum(x, 0))
    gelu = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(GELU()(Tensor(x, dtype=np.float64)).data, gelu, rtol=1e-12, atol=1e-12)
    e = np.exp(x - x.max(axis=0, keepdims=True))
    np.testing.assert_allclose(
        Softmax(axis=0)(Tensor(x, dtype=np.float64)).data, e / e.sum(axis=0), rtol=1e-12
    )


@given(x=float_arrays(tensor_shapes(min_dims=1)).filter(lambda a: np.all(np.abs(a) > 1e-3)))
def test_activation_gradients(x):
    # relu is not differentiable at 0: inputs are kept at least 1e-3 >> h = 1e-6 away from it
    for layer in (ReLU(), GELU(), Softmax(axis=-1)):
        check_module_grads(layer, layer, x)


@given(shape=tensor_shapes(min_dims=1, max_dims=4))
def test_flatten_keeps_batch_dim(shape):
    x = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    y = Flatten()(Tensor(x, dtype=np.float64))
    assert y.shape == (shape[0], math.prod(shape[1:]))
    np.testing.assert_array_equal(y.data, x.reshape(shape[0], -1))


# --- Dropout -----------------------------------------------------------------------------------


def test_dropout_zeroes_about_p_and_scales_survivors():
    x = np.ones((200, 100), dtype=np.float32)
    drop = Dropout(0.3, rng=np.random.default_rng(0))
    y = drop(x).data
    dropped = np.mean(y == 0)
    # 20000 Bernoulli(0.3) draws: std of the fraction = sqrt(0.3 * 0.7 / 20000) = 0.0032; 5 sigma
    assert abs(dropped - 0.3) < 0.016
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)  # inverted dropout: E[y] = x


def test_dropout_is_identity_in_eval_and_for_p_zero_and_is_seeded():
    x = Tensor(np.random.default_rng(1).standard_normal((4, 5)))
    drop = Dropout(0.5)
    drop.eval()
    assert drop(x) is x
    assert Dropout(0.0)(x) is x
    a = Dropout(0.5, rng=np.random.default_rng(9))(x).data
    b = Dropout(0.5, rng=np.random.default_rng(9))(x).data
    np.testing.assert_array_equal(a, b)


def test_dropout_gradient_is_the_scaled_mask():
    x = Tensor(np.ones((6, 7)), requires_grad=True)
    y = Dropout(0.25, rng=np.random.default_rng(3))(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)  # d(sum(x * m))/dx = m, and y = m for x = 1


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match="p"):
        Dropout(p)


# --- Sequential --------------------------------------------------------------------------------


def test_sequential_is_indexable_iterable_and_sliceable():
    layers = [Linear(2, 3), ReLU(), Linear(3, 1)]
    seq = Sequential(*layers)
    assert len(seq) == 3 and seq[0] is layers[0] and seq[-1] is layers[2]
    assert list(seq) == layers and seq.layers == layers
    head = seq[:2]
    assert isinstance(head, Sequential) and head.layers == layers[:2]
    x = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_array_equal(seq(x).data, layers[2](layers[1](layers[0](x))).data)


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="layer 1"):
        Sequential(ReLU(), lambda x: x)


# --- Embedding ---------------------------------------------------------------------------------


@given(ids=st.lists(st.integers(0, 4), min_size=1, max_size=8), seed=st.integers(0, 1000))
@example(ids=[2, 2, 2], seed=0)  # a repeated id must accumulate its gradients
def test_embedding_lookup_and_gradient(ids, seed):
    rng = np.random.default_rng(seed)
    emb = Embedding(5, 3, rng=rng)
    idx = np.array(ids).reshape(1, -1)
    y = emb(idx)
    assert y.shape == (1, len(ids), 3)
    np.testing.assert_array_equal(y.data, emb.weight.data[idx])
    check_module_grads(emb, lambda: emb(idx))


def test_embedding_rejects_out_of_range_and_float_ids():
    emb = Embedding(4, 2)
    with pytest.raises(ValueError, match="num_embeddings=4"):
        emb(np.array([0, 4]))
    with pytest.raises(ValueError, match="num_embeddings=4"):
        emb(np.array([-1]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([0.0, 1.0]))


# --- LayerNorm ---------------------------------------------------------------------------------


def _layernorm_reference(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


@given(x=float_arrays(tensor_shapes(min_dims=1, max_dims=3)), seed=st.integers(0, 1000))
@example(x=np.full((2, 4), 3.0), seed=0)  # constant rows: var = 0, output = bias, no NaN
@example(x=np.array([[5.0]]), seed=0)  # dim 1: every row is constant
def test_layernorm_matches_reference(x, seed):
    rng = np.random.default_rng(seed)
    ln = LayerNorm(x.shape[-1]).astype(np.float64)
    ln.weight.data[...] = rng.standard_normal(x.shape[-1])
    ln.bias.data[...] = rng.standard_normal(x.shape[-1])
    y = ln(Tensor(x, dtype=np.float64)).data
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(
        y, _layernorm_reference(x, ln.weight.data, ln.bias.data, 1e-5), rtol=1e-10, atol=1e-10
    )


def test_layernorm_default_output_has_zero_mean_unit_variance():
    x = np.random.default_rng(0).standard_normal((3, 16)) * 5 + 2
    y = LayerNorm(16).astype(np.float64)(Tensor(x, dtype=np.float64)).data
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-12)
    # var(y) = var / (var + eps) < 1, by at most eps / var ~ 1e-5 / 25
    np.testing.assert_allclose(y.var(axis=-1), 1, rtol=1e-6)


@given(shape=tensor_shapes(min_dims=1, max_dims=3, min_side=2), seed=st.integers(0, 1000))
def test_layernorm_gradients(shape, seed):
    # min_side 2 with normal inputs: the variance is bounded away from 0, so the function is smooth
    rng = np.random.default_rng(seed)
    ln = LayerNorm(shape[-1])
    ln.weight.data[...] = rng.standard_normal(shape[-1])
    ln.bias.data[...] = rng.standard_normal(shape[-1])
    check_module_grads(ln, ln, rng.standard_normal(shape))


def test_layernorm_wrong_dim():
    with pytest.raises(ValueError, match="last dimension must be 4"):
        LayerNorm(4)(np.ones((2, 3)))
