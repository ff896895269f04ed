"""Modules and the basic layers: Linear, activations, Flatten, Dropout, Sequential, Embedding, LayerNorm.

A :class:`Module` is a container of parameters (Tensors with ``requires_grad``) and submodules.
Nothing has to be registered: ``parameters()`` walks the instance attributes in the order they
were assigned and collects

* leaf Tensors with ``requires_grad=True`` (the parameters; an op's result stored on the module,
  such as a cached activation, is not one),
* Modules (recursively),
* lists or tuples of Modules (``self.blocks = [Block(), Block()]``, named ``blocks.0``, ``blocks.1``).

so a model is written like nanoGPT's ``model.py``::

    class MLP(Module):
        def __init__(self):
            super().__init__()
            self.fc1 = Linear(64, 32)
            self.fc2 = Linear(32, 10)

        def forward(self, x):
            return self.fc2(self.fc1(x).relu())

    MLP().named_parameters()  # [("fc1.weight", ...), ("fc1.bias", ...), ("fc2.weight", ...), ...]

Weights are initialised from a seeded generator: every constructor that draws random numbers
takes ``rng: np.random.Generator | None``; with ``None`` it draws from this module's default
generator, which :func:`manual_seed` resets (``np.random.default_rng(0)`` at import).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from tinytorch.tensor import Tensor

__all__ = [
    "GELU",
    "Dropout",
    "Embedding",
    "Flatten",
    "HookHandle",
    "LayerNorm",
    "Linear",
    "Module",
    "ReLU",
    "Sequential",
    "Softmax",
    "bind_inputs",
    "default_rng",
    "manual_seed",
    "parameter",
]

_default_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reset the default generator used by initialisers and Dropout when no ``rng`` is passed."""
    global _default_rng
    _default_rng = np.random.default_rng(seed)


def default_rng() -> np.random.Generator:
    """The module-level generator (see :func:`manual_seed`)."""
    return _default_rng


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    if rng is None:
        return _default_rng
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng


def _as_tensor(x: Any) -> Tensor:
    """Layers accept a Tensor or anything ``np.asarray`` takes (wrapped as a constant Tensor)."""
    return x if isinstance(x, Tensor) else Tensor(x)


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int: TypeError naming ``name`` for a non-int (bools included), ValueError
    when it is below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def parameter(data: np.ndarray, dtype: Any = np.float32) -> Tensor:
    """A trainable Tensor holding a copy of ``data`` (float32 by default)."""
    return Tensor(np.array(data, dtype=dtype), requires_grad=True, dtype=dtype)


def bind_inputs(module: Any, args: tuple, kwargs: Mapping[str, Any]) -> tuple:
    """The arguments of a call ``module(*args, **kwargs)`` as one tuple in ``forward``'s order.

    Keyword arguments are put at their parameter's position (``forward(self, x, past_kv=None)``
    called as ``m(x, past_kv=kv)`` gives ``(x, kv)``; ``m(x=x)`` gives ``(x,)``), so a hook or a
    profiler reads ``inputs[0]`` whichever way the layer was called. Parameters skipped in
    between keep their defaults. Keyword-only arguments, or a call that does not fit the class's
    ``forward`` signature, are appended in call order.
    """
    if not kwargs:
        return tuple(args)
    forward = getattr(type(module), "forward", None)
    try:
        signature = inspect.signature(forward)
        bound = signature.bind(module, *args, **kwargs)
    except (TypeError, ValueError):  # no inspectable forward, or a signature the call does not fit
        return (*args, *kwargs.values())
    given = set(bound.arguments)
    bound.apply_defaults()
    inputs: list[Any] = []
    pending: list[Any] = []  # defaults of skipped parameters, kept only if a later one was given
    extra: list[Any] = []
    for name, param in list(signature.parameters.items())[1:]:  # [0] is self
        value = bound.arguments[name]
        if param.kind is param.VAR_POSITIONAL:
            if value:
                inputs += [*pending, *value]
                pending = []
        elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            pending.append(value)
            if name in given:
                inputs += pending
                pending = []
        elif param.kind is param.KEYWORD_ONLY:
            if name in given:
                extra.append(value)
        else:  # **kwargs
            extra += list(value.values())
    return (*inputs, *extra)


class HookHandle:
    """Returned by :meth:`Module.register_forward_hook`; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: dict[int, Callable], key: int) -> None:
        self._hooks = hooks
        self._key = key

    def remove(self) -> None:
        """Unregister the hook (a second call does nothing)."""
        self._hooks.pop(self._key, None)


class Module:
    """Base class of every layer and model.

    Subclasses set parameters and submodules as attributes in ``__init__`` (after calling
    ``super().__init__()``) and implement ``forward``. Calling the module runs ``forward`` and
    then every forward hook, in registration order.
    """

    training: bool = True

    def __init__(self) -> None:
        self.training = True
        self._forward_hooks: dict[int, Callable] = {}
        self._next_hook_id = 0

    # -- calling ---------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        output = self.forward(*args, **kwargs)
        hooks = list(getattr(self, "_forward_hooks", {}).values())
        if hooks:
            inputs = bind_inputs(self, args, kwargs)
            for hook in hooks:
                hook(self, inputs, output)
        return output

    def register_forward_hook(self, fn: Callable[[Module, tuple, Any], Any]) -> HookHandle:
        """Call ``fn(module, inputs, output)`` after every forward; ``inputs`` is the arguments as
        a tuple in ``forward``'s order, keyword arguments included (:func:`bind_inputs`:
        ``mha(x, past_kv=kv)`` gives ``(x, kv)``). The hook's return value is ignored (hooks
        observe, they do not replace the output). Returns a handle whose ``remove()``
        unregisters the hook."""
        if not callable(fn):
            raise TypeError(f"register_forward_hook(fn): fn must be callable, got {type(fn).__name__}")
        if "_forward_hooks" not in self.__dict__:  # a subclass that skipped Module.__init__
            self._forward_hooks, self._next_hook_id = {}, 0
        key = self._next_hook_id
        self._next_hook_id += 1
        self._forward_hooks[key] = fn
        return HookHandle(self._forward_hooks, key)

    # -- discovery -------------------------------------------------------------------------
    def _members(self) -> Iterator[tuple[str, Tensor | Module]]:
        """(name, member) for direct parameters and direct submodules, in attribute order."""
        for name, value in vars(self).items():
            if isinstance(value, Tensor):
                if value.requires_grad and value.is_leaf:  # not a cached intermediate result
                    yield name, value
            elif isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Module) for v in value):
                for i, item in enumerate(value):
                    yield f"{name}.{i}", item

    def named_children(self) -> list[tuple[str, Module]]:
        """Direct submodules with their names (list elements named ``attr.i``)."""
        return [(n, m) for n, m in self._members() if isinstance(m, Module)]

    def children(self) -> list[Module]:
        """Direct submodules."""
        return [m for _, m in self.named_children()]

    def named_modules(self, prefix: str = "") -> list[tuple[str, Module]]:
        """Every module in the tree, depth first: ``("", self)`` first, then dotted names.

        A module reachable under several names (``Sequential(fc, ReLU(), fc)``) is listed once,
        under its first name, as tied parameters are in :meth:`named_parameters`: whoever walks
        the tree (a hook per module, a profiler) then sees each call once.
        """
        seen: set[int] = set()
        out: list[tuple[str, Module]] = []

        def walk(module: Module, name: str) -> None:
            if id(module) in seen:
                return
            seen.add(id(module))
            out.append((name, module))
            for child_name, child in module.named_children():
                walk(child, f"{name}.{child_name}" if name else child_name)

        walk(self, prefix)
        return out

    def modules(self) -> list[Module]:
        """Every module in the tree, depth first, self first."""
        return [m for _, m in self.named_modules()]

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        """(dotted name, parameter) in a deterministic order (attribute order, depth first).

        A Tensor shared by two modules (tied weights) is listed once, under its first name."""
        seen: set[int] = set()
        out: list[tuple[str, Tensor]] = []

        def walk(module: Module, prefix: str) -> None:
            for name, member in module._members():
                full = f"{prefix}{name}"
                if isinstance(member, Module):
                    walk(member, full + ".")
                elif id(member) not in seen:
                    seen.add(id(member))
                    out.append((full, member))

        walk(self, "")
        return out

    def parameters(self) -> list[Tensor]:
        """Every trainable Tensor, in the order of :meth:`named_parameters`."""
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        """Total number of trainable scalars."""
        return sum(int(p.data.size) for p in self.parameters())

    # -- modes and gradients ---------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set ``training`` on this module and every submodule; returns self."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (Dropout becomes the identity); returns self."""
        return self.train(False)

    def astype(self, dtype: Any) -> Module:
        """Convert every parameter to ``dtype`` in place (e.g. float64 for gradient checks);
        returns self. Gradients are dropped."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        return self

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``grad = None``)."""
        for p in self.parameters():
            p.grad = None

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """{dotted name: copy of the parameter's data}."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy ``state`` into the parameters (in place, keeping each parameter's dtype).

        Raises ``KeyError`` naming the missing or unexpected names (with ``strict=True``) and
        ``ValueError`` naming the parameter whose shape does not match. Nothing is changed
        unless every check passes.
        """
        params = dict(self.named_parameters())
        if strict:
            missing = [n for n in params if n not in state]
            unexpected = [n for n in state if n not in params]
            if missing or unexpected:
                problems = []
                if missing:
                    problems.append(f"missing parameter(s) {missing}")
                if unexpected:
                    problems.append(f"unexpected parameter(s) {unexpected}")
                raise KeyError(f"load_state_dict: {'; '.join(problems)}")
        updates = []
        for name, p in params.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            if value.shape != p.data.shape:
                raise ValueError(
                    f"load_state_dict: shape mismatch for parameter '{name}': "
                    f"the model has {p.data.shape}, the weights have {value.shape}"
                )
            if not np.issubdtype(value.dtype, np.number):
                raise ValueError(f"load_state_dict: parameter '{name}' has non-numeric dtype {value.dtype}")
            updates.append((p, value))
        for p, value in updates:
            p.data[...] = value

    def __repr__(self) -> str:
        children = self.named_children()
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    def extra_repr(self) -> str:
        return ""


class Linear(Module):
    """y = x @ W + b with W (in_features, out_features), b (out_features,).

    x has shape (..., in_features); the leading dimensions are flattened so the product is one
    2-D matmul (N, in) @ (in, out) that runs through :mod:`tinytorch.backend`.

    Init (Glorot/Xavier uniform): W ~ U(-a, a), a = sqrt(6 / (in + out)), which keeps the
    variance of activations and gradients roughly constant through the layer; b = 0.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, rng: np.random.Generator | None = None
    ) -> None:
        super().__init__()
        check_int(in_features, "in_features")
        check_int(out_features, "out_features")
        bound = math.sqrt(6.0 / (in_features + out_features))
        self.weight = parameter(_rng(rng).uniform(-bound, bound, size=(in_features, out_features)))
        self.bias = parameter(np.zeros(out_features)) if bias else None

    @property
    def in_features(self) -> int:
        """Read from ``weight``, so a layer whose weight is replaced (pruning) stays consistent."""
        return self.weight.shape[0]

    @property
    def out_features(self) -> int:
        return self.weight.shape[1]

    def forward(self, x: Tensor) -> Tensor:
        x = _as_tensor(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}): input x has shape {x.shape}, "
                f"its last dimension must be in_features={self.in_features}"
            )
        lead = x.shape[:-1]
        rows = int(np.prod(lead, dtype=np.int64))
        y = x.reshape(rows, self.in_features) @ self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return _as_tensor(x).relu()


class GELU(Module):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh approximation."""

    def forward(self, x: Tensor) -> Tensor:
        return _as_tensor(x).gelu()


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``axis`` (computed stably)."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return _as_tensor(x).softmax(axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...): keeps the batch dimension."""

    def forward(self, x: Tensor) -> Tensor:
        x = _as_tensor(x)
        if x.ndim < 1:
            raise ValueError("Flatten: input x must have a batch dimension, got a scalar")
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)))


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale the rest by
    1 / (1 - p), so the expected output equals the input; in eval mode (or p = 0) the identity.

    The mask is drawn from ``rng`` (or the module-level default generator).
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(p, (int, float, np.floating)) or not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout(p): p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = _rng(rng) if rng is not None else None

    def forward(self, x: Tensor) -> Tensor:
        x = _as_tensor(x)
        if not self.training or self.p == 0.0:
            return x
        rng = self.rng if self.rng is not None else _default_rng
        keep = rng.random(x.shape) >= self.p
        return x * (keep / (1.0 - self.p)).astype(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sequential(Module):
    """Apply ``layers`` in order. Indexable (an int gives a layer, a slice a Sequential),
    ``len`` and iterable; the layers are in ``.layers`` (parameter names ``layers.<i>.<name>``)."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} must be a Module, got {type(layer).__name__}")
        self.layers: list[Module] = list(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)


class Embedding(Module):
    """A lookup table: integer ids of any shape (...) -> vectors (..., dim), ``weight[ids]``.

    Init: weight ~ N(0, 1). The backward scatters (adds) each output gradient into the row of
    its id, so repeated ids accumulate.
    """

    def __init__(self, num_embeddings: int, dim: int, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.num_embeddings = check_int(num_embeddings, "num_embeddings")
        self.dim = check_int(dim, "dim")
        self.weight = parameter(_rng(rng).standard_normal((num_embeddings, dim)))

    def forward(self, ids: Any) -> Tensor:
        ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"Embedding: ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(
                f"Embedding: ids must be in [0, num_embeddings={self.num_embeddings}), "
                f"got values in [{ids.min()}, {ids.max()}]"
            )
        return self.weight[ids]

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.dim}"


class LayerNorm(Module):
    """Normalise over the last dimension, then scale and shift:

        y = (x - mean) / sqrt(var + eps) * weight + bias,   var = mean((x - mean)^2)  (biased)

    x (..., dim); weight = 1 and bias = 0 at init.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim")
        if not eps > 0:
            raise ValueError(f"LayerNorm(eps): eps must be > 0, got {eps!r}")
        self.eps = float(eps)
        self.weight = parameter(np.ones(dim))
        self.bias = parameter(np.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        x = _as_tensor(x)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(
                f"LayerNorm({self.dim}): input x has shape {x.shape}, last dimension must be {self.dim}"
            )
        centred = x - x.mean(axis=-1, keepdims=True)
        var = (centred * centred).mean(axis=-1, keepdims=True)
        return centred / (var + self.eps).sqrt() * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"
