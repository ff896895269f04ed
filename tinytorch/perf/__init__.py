"""The implementation switch: ``tinytorch.perf.<module>`` is served by katas/ or solutions/.

Everyone imports a kata module the same way::

    from tinytorch.perf.profiling import Timer

and the environment variable ``TINYTORCH_IMPL`` decides which tree answers:

* ``katas`` (the default): the student's files under ``katas/<module>/``;
* ``solutions``: the reference bodies under ``solutions/<module>/``;
* a default plus per-module overrides, comma separated, e.g. ``solutions,caching=katas``
  (test one student module on top of reference ones) or ``katas,profiling=solutions``.

Module names come from the registry (``tinytorch/modules.toml``) and may be given by number
(``solutions,19=katas``); an unknown tree or module in ``TINYTORCH_IMPL`` is a ``ValueError``
that lists the valid ones, and importing an unknown or planned module is a ``ModuleNotFoundError``
that says which. A module is imported once per process (``sys.modules``): set ``TINYTORCH_IMPL``
before the first import. Katas and solutions reach other modules only
through ``tinytorch.perf.*``, so the switch holds everywhere.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

from tinytorch import registry

IMPLS = ("katas", "solutions")
ENV_VAR = "TINYTORCH_IMPL"
DEFAULT_IMPL = "katas"


def parse_impl(value: str | None) -> tuple[str, dict[str, str]]:
    """Parse a ``TINYTORCH_IMPL`` value into (default tree, {module name: tree})."""
    default, overrides = DEFAULT_IMPL, {}
    known = registry.names()
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, impl = item.rpartition("=")
        name, impl = name.strip(), impl.strip()
        if impl not in IMPLS:
            raise ValueError(
                f"{ENV_VAR}={value!r}: unknown implementation {impl!r}; valid: {', '.join(IMPLS)}"
            )
        if not sep:
            default = impl
            continue
        if name.isdigit():
            name = registry.get(name).name if name in [str(m.number) for m in registry.modules()] else name
        if name not in known:
            raise ValueError(f"{ENV_VAR}={value!r}: unknown module {name!r}; valid: {', '.join(known)}")
        overrides[name] = impl
    return default, overrides


def impl_for(name: str, value: str | None = None) -> str:
    """Which tree (``katas`` or ``solutions``) serves module ``name`` under ``value``
    (default: the current ``TINYTORCH_IMPL``)."""
    default, overrides = parse_impl(os.environ.get(ENV_VAR) if value is None else value)
    return overrides.get(name, default)


def source_dir(name: str, value: str | None = None) -> Path:
    """The folder that serves ``tinytorch.perf.<name>`` now."""
    module = registry.get(name)
    return registry.repo_root() / module.tree(impl_for(module.name, value))


class _SwitchFinder(importlib.abc.MetaPathFinder):
    """Finds ``tinytorch.perf.<name>`` in the tree chosen by ``TINYTORCH_IMPL``.

    Only the top-level kata package is special: its ``__path__`` points into the chosen tree, so
    its submodules (``tinytorch.perf.profiling.timer``) and relative imports load from there.
    """

    prefix = __name__ + "."

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(self.prefix) or "." in fullname[len(self.prefix) :]:
            return None
        name = fullname[len(self.prefix) :]
        if name not in registry.names():
            if any(
                (Path(entry) / name).exists() or (Path(entry) / f"{name}.py").exists() for entry in path or ()
            ):
                return None  # a real submodule of tinytorch.perf, not a kata module
            valid = ", ".join(f"{m.number} {m.name}" for m in registry.modules())
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: {name!r} is not a kata module; the modules are: {valid}",
                name=fullname,
            )
        module = registry.get(name)
        folder = source_dir(name)
        init = folder / "__init__.py"
        if not init.is_file():
            state = "is planned and not built yet" if not module.ready else "is missing"
            raise ModuleNotFoundError(
                f"{fullname}: module {module.number} ({module.name}) {state}: no {init}", name=fullname
            )
        return importlib.util.spec_from_file_location(
            fullname, init, submodule_search_locations=[str(folder)]
        )


# Exactly one switch on the import path, also after importlib.reload of this module.
sys.meta_path[:] = [
    f for f in sys.meta_path if type(f).__qualname__ != "_SwitchFinder" or type(f).__module__ != __name__
]
sys.meta_path.insert(0, _SwitchFinder())
