"""The matmul hook (tinytorch.backend): 2-D forward products go through the active backend."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch import Tensor, backend
from tinytorch.backend import get_backend, use_backend


class RecordingBackend:
    """Records every dispatch and answers 2 * (a @ b), so a routed product is recognisable."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.calls: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []

    def dispatch(self, op, *args):
        a, b = args
        self.calls.append((op, a.shape, b.shape))
        return 2.0 * (a @ b)


rng = np.random.default_rng(0)
A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))


def test_no_backend_by_default_is_plain_numpy():
    assert get_backend() is None
    np.testing.assert_array_equal(backend.matmul(A, B), A @ B)


def test_active_backend_serves_2d_products():
    fake = RecordingBackend()
    with use_backend(fake) as active:
        assert active is fake and get_backend() is fake
        out = backend.matmul(A, B)
        y = Tensor(A) @ Tensor(B)
    assert fake.calls == [("matmul", (3, 4), (4, 5)), ("matmul", (3, 4), (4, 5))]
    np.testing.assert_allclose(out, 2 * (A @ B))
    np.testing.assert_allclose(y.data, 2 * (A @ B), rtol=1e-6)  # float32 tensor product
    assert get_backend() is None


@pytest.mark.parametrize(
    "shape_a,shape_b",
    [((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5))],
    ids=["vector @ matrix", "matrix @ vector", "dot", "batched @ matrix", "matrix @ batched"],
)
def test_products_that_are_not_2d_by_2d_bypass_the_backend(shape_a, shape_b):
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    fake = RecordingBackend()
    with use_backend(fake):
        out = backend.matmul(a, b)
        y = Tensor(a, dtype=np.float64) @ Tensor(b, dtype=np.float64)
    assert fake.calls == []
    np.testing.assert_array_equal(out, a @ b)
    np.testing.assert_array_equal(y.data, a @ b)


def test_nesting_restores_the_previous_backend():
    outer, inner = RecordingBackend("outer"), RecordingBackend("inner")
    with use_backend(outer):
        with use_backend(inner):
            assert get_backend() is inner
            backend.matmul(A, B)
        assert get_backend() is outer
        with use_backend(None):  # plain numpy inside a backend block
            np.testing.assert_array_equal(backend.matmul(A, B), A @ B)
        assert get_backend() is outer
        backend.matmul(A, B)
    assert get_backend() is None
    assert len(inner.calls) == 1 and len(outer.calls) == 1


def test_backend_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError), use_backend(RecordingBackend()):
        1 / 0  # noqa: B018
    assert get_backend() is None


def test_backward_products_use_numpy_and_gradients_stay_correct():
    """Only the forward product is dispatched; backward is the gradient of a @ b (what a real
    backend computes) in plain numpy, whatever the backend answered (here 2 * a @ b)."""
    fake = RecordingBackend()
    x = Tensor(A, requires_grad=True, dtype=np.float64)
    w = Tensor(B, requires_grad=True, dtype=np.float64)
    with use_backend(fake):
        (x @ w).sum().backward()
    assert len(fake.calls) == 1
    np.testing.assert_allclose(x.grad, np.ones((3, 5)) @ B.T, rtol=1e-12)
    np.testing.assert_allclose(w.grad, A.T @ np.ones((3, 5)), rtol=1e-12)


def test_use_backend_rejects_objects_without_dispatch():
    with pytest.raises(TypeError, match="backend"):
        with use_backend(object()):
            pass
    assert get_backend() is None


def test_a_backend_answering_the_wrong_shape_is_named():
    class Broken:
        def dispatch(self, op, a, b):
            return (a @ b).T

    with use_backend(Broken()), pytest.raises(ValueError, match=r"Broken.*\(5, 3\).*\(3, 5\)"):
        backend.matmul(A, B)
