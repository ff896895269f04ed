"""Module: the base class of every layer and model (parameters, submodules, hooks, state).

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

Calling a module runs ``forward`` and then its forward hooks; :func:`bind_inputs` gives the hooks
the call's arguments in ``forward``'s order. The layers built on it are in :mod:`tinytorch.layers`,
which also exports these names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from tinytorch.tensor import Tensor

__all__ = ["HookHandle", "Module", "bind_inputs"]


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
