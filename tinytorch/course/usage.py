"""What the CLI accepts and how it answers: exit codes, usage errors, a module or implementation named.

Every command names its module by name or number and the code under test by ``--impl`` (else
``$TINYTORCH_IMPL``, else ``katas``); a value the CLI cannot act on is a :class:`UsageError` whose
message lists what would work, and ``main`` turns it into exit code 2. The exit codes are those
of ``tinytorch --help`` (see :mod:`tinytorch.course.cli`).
"""

from __future__ import annotations

import os

from tinytorch import perf
from tinytorch.course import registry

OK, FAILING, USAGE, BROKEN = 0, 1, 2, 3
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


class UsageError(Exception):
    """A command the CLI cannot act on: the message says why and what would work."""


def _valid_modules() -> str:
    return ", ".join(f"{m.number} {m.name}" for m in registry.modules())


def released_module(key: str | None, command: str = "test") -> registry.Module:
    """A released module by name or number, else a UsageError that lists the valid ones (also
    when no module is given: ``tinytorch hint`` alone)."""
    if key is None:
        released = ", ".join(f"{m.number} {m.name}" for m in registry.modules() if m.ready)
        raise UsageError(
            f"which module? `tinytorch {command} <module>` takes a module's name or number; "
            f"the released modules are: {released or 'none yet'} (`tinytorch list` shows them all)"
        )
    try:
        module = registry.get(key)
    except KeyError:
        raise UsageError(f"unknown module {key!r}; the modules are: {_valid_modules()}") from None
    if not module.ready:
        released = ", ".join(f"{m.number} {m.name}" for m in registry.modules() if m.ready)
        raise UsageError(
            f"module {module.number} ({module.name}) is planned and not released yet; "
            f"the released modules are: {released}"
        )
    return module


def check_impl(impl: str | None) -> str:
    """``--impl`` if given, else ``$TINYTORCH_IMPL``, else ``katas``; a UsageError lists the valid values."""
    given = impl is not None
    if impl is None:
        impl = os.environ.get(perf.ENV_VAR, "").strip() or perf.DEFAULT_IMPL
    try:
        perf.parse_impl(impl, source="--impl" if given else perf.ENV_VAR)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return impl
