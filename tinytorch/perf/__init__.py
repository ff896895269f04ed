"""The implementation switch: ``tinytorch.perf.<module>`` is served by katas/ or solutions/.

Everyone imports a kata module the same way::

    from tinytorch.perf.profiling import Timer

and the environment variable ``TINYTORCH_IMPL`` decides which tree answers:

* ``katas`` (the default): the student's files under ``katas/<module>/``;
* ``solutions``: the reference bodies under ``solutions/<module>/``;
* a default plus per-module overrides, comma separated, e.g. ``solutions,caching=katas``
  (test one student module on top of reference ones) or ``katas,profiling=solutions``;
* a folder instead of a tree name (an absolute path, or one starting with ``./``, ``../`` or
  ``~``): as the default, a folder that holds one sub-folder per module, laid out like
  ``katas/`` (``TINYTORCH_IMPL=/submissions/ada/katas`` serves every module from a student's
  tree); as a per-module override, the module's own folder, the one holding its ``__init__.py``
  (``TINYTORCH_IMPL=solutions,profiling=/tmp/variant/profiling``). Nothing is copied: the grader
  and the gallery of classic mistakes serve a student's or a variant's code this way.

Module names come from the registry (``tinytorch/course/modules.toml``) and may be given by number
(``solutions,19=katas``); an unknown tree or module in ``TINYTORCH_IMPL``, a folder that does not
exist, two defaults (``katas,solutions``) or a module named twice is a ``ValueError`` that says
which, and importing an unknown or planned module is a ``ModuleNotFoundError``
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

from tinytorch.course import registry

IMPLS = ("katas", "solutions")
# The course's modules under the names they had before they moved to tinytorch.course: kata code
# written from a release cut before the move (module 20's given line ``from tinytorch.leaderboard
# import EventRecord``) still imports, and gets the very module object of the new name. Only code
# that has imported the switch sees these names (kata code always has); the foundation has none.
MOVED = {
    f"tinytorch.{name}": f"tinytorch.course.{name}"
    for name in ("cli", "forkserver", "leaderboard", "pytest_plugin", "registry", "runner")
}
ENV_VAR = "TINYTORCH_IMPL"
DEFAULT_IMPL = "katas"


def is_folder(impl: str) -> bool:
    """True when a tree value is a folder path rather than ``katas`` or ``solutions``."""
    return impl.startswith(("/", "./", "../", "~")) or os.sep in impl or "/" in impl


def _check_tree(impl: str, value: str | None, source: str) -> str:
    """A tree value as given, or a folder made absolute; ``ValueError`` for anything else."""
    if is_folder(impl):
        folder = Path(impl).expanduser().resolve()
        if not folder.is_dir():
            raise ValueError(f"{source}={value!r}: no folder {impl!r} (resolved to {folder})")
        return str(folder)
    if impl not in IMPLS:
        raise ValueError(
            f"{source}={value!r}: unknown implementation {impl!r}; valid: {', '.join(IMPLS)} or a folder path"
        )
    return impl


def parse_impl(value: str | None, source: str = ENV_VAR) -> tuple[str, dict[str, str]]:
    """Parse a ``TINYTORCH_IMPL`` value into (default tree, {module name: tree}).

    A tree is ``"katas"``, ``"solutions"`` or an absolute folder path. ``source`` names where the
    value came from in error messages (``--impl`` for the CLI).
    """
    default, overrides = None, {}
    known = registry.names()
    numbers = {str(m.number): m.name for m in registry.modules()}
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, impl = item.partition("=") if "=" in item else ("", "", item)
        name, impl = name.strip(), _check_tree(impl.strip(), value, source)
        if not sep:
            if default is not None:
                raise ValueError(
                    f"{source}={value!r}: two defaults ({default!r} and {impl!r}); give one, "
                    "then module=tree overrides"
                )
            default = impl
            continue
        name = numbers.get(name, name)
        if name not in known:
            raise ValueError(f"{source}={value!r}: unknown module {name!r}; valid: {', '.join(known)}")
        if name in overrides:
            raise ValueError(f"{source}={value!r}: module {name!r} is given twice")
        overrides[name] = impl
    return default or DEFAULT_IMPL, overrides


def impl_for(name: str, value: str | None = None) -> str:
    """Which tree (``katas``, ``solutions`` or a folder) serves module ``name`` under ``value``
    (default: the current ``TINYTORCH_IMPL``)."""
    default, overrides = parse_impl(os.environ.get(ENV_VAR) if value is None else value)
    return overrides.get(name, default)


def source_dir(name: str, value: str | None = None) -> Path:
    """The folder that serves ``tinytorch.perf.<name>`` now (or under ``value``)."""
    module = registry.get(name)
    default, overrides = parse_impl(os.environ.get(ENV_VAR) if value is None else value)
    if module.name in overrides:
        impl = overrides[module.name]
        return Path(impl) if is_folder(impl) else registry.repo_root() / module.tree(impl)
    if is_folder(default):
        return Path(default) / module.name
    return registry.repo_root() / module.tree(default)


class _Alias(importlib.abc.Loader):
    """Loads a name of :data:`MOVED` as the module it moved to (one object under both names)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.spec = None

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # already executed under its own name; loading it again set __spec__ to the old name's
        module.__spec__ = self.spec


class _SwitchFinder(importlib.abc.MetaPathFinder):
    """Finds ``tinytorch.perf.<name>`` in the tree chosen by ``TINYTORCH_IMPL``.

    Only the top-level kata package is special: its ``__path__`` points into the chosen tree, so
    its submodules (``tinytorch.perf.profiling.timer``) and relative imports load from there. The
    names of :data:`MOVED` are answered with the modules they moved to.
    """

    prefix = __name__ + "."

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, _Alias(MOVED[fullname]))
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
