"""The pytest plugin of the runner's child process: ``python -m pytest -p tinytorch.course.pytest_plugin``.

``tinytorch.course.runner`` runs each module's tests with this plugin and ``--tinytorch-log=FILE``. It

* logs the session, the collected test ids, each test's start, reports and end as JSON lines,
  flushed at once, so the runner knows what finished and what was running if the process dies;
* turns ``sys.exit()``, ``os._exit()`` (patched in the test process's main thread only; a
  forked child or pytest-timeout's timer thread still exits) and ``KeyboardInterrupt`` raised by
  the code under test into an ordinary failure of that test (``KataExit``), or into a collection
  error of the test file when it happens while the tests import the katas;
* gives importing the tests the per-test timeout (``faulthandler`` dumps the stack, then exits);
* dumps the stack of every thread on ``SIGUSR1``, which the runner sends before it kills a run
  that went over its bound;
* prints a long numpy array in Hypothesis's falsifying example as one short line (shape, dtype,
  range and first values, :func:`array_summary`), so the CLI can show every argument.

Without ``--tinytorch-log`` only the exit guards act (a plain pytest run prints arrays as
Hypothesis does). Nothing here runs in the CLI's process.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import threading
import time
import traceback
from pathlib import Path

import pytest

from tinytorch.course.reports import stack_file


class KataExit(Exception):
    """The code under test tried to end the test process: ``sys.exit()``, ``os._exit()`` or
    ``KeyboardInterrupt``. Raised in its place, so the test fails and the run goes on."""


class _OsExit(SystemExit):
    """What ``os._exit(code)`` raises in the test process while the plugin is active."""


def exit_message(exc: BaseException, when: str) -> str:
    """Why a KataExit was raised: how the code tried to end the process, and ``when``."""
    if isinstance(exc, KeyboardInterrupt):
        how = "raised KeyboardInterrupt"
    elif isinstance(exc, _OsExit):
        how = f"called os._exit({exc.code!r})"
    else:
        how = f"called sys.exit({getattr(exc, 'code', None)!r})"
    return (
        f"the code under test {how} {when}; a kata must return a value or raise an exception, "
        "never end the test process"
    )


class RunLog:
    """The child's side: one JSON object per line, flushed at once (the process may die next)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        self.stack = open(stack_file(self.path), "w", encoding="utf-8")  # noqa: SIM115
        self.pid = os.getpid()
        self._os_exit = os._exit

    def write(self, **event: object) -> None:
        self.file.write(json.dumps(event) + "\n")
        self.file.flush()

    def os_exit(self, code: int) -> None:
        """``os._exit`` in the test process: raises in the code under test, exits anywhere else
        (pytest-timeout's timer thread, a forked child)."""
        if os.getpid() == self.pid and threading.current_thread() is threading.main_thread():
            raise _OsExit(code)
        self._os_exit(code)

    def start(self) -> None:
        os._exit = self.os_exit
        if hasattr(signal, "SIGUSR1"):  # the runner asks for the stack before it kills a hung run
            faulthandler.register(signal.SIGUSR1, file=self.stack, all_threads=True)
        # the runner killed (a closed terminal, an IDE's stop button): end too, never linger
        threading.Thread(target=self.watch_parent, args=(os.getppid(),), daemon=True).start()

    def watch_parent(self, parent: int, poll: float = 1.0) -> None:
        """End this process when its parent is gone (it is reparented: the parent id changes)."""
        while os.getppid() == parent:
            time.sleep(poll)
        self._os_exit(1)

    def close(self) -> None:
        os._exit = self._os_exit
        if hasattr(signal, "SIGUSR1"):
            faulthandler.unregister(signal.SIGUSR1)
        self.file.close()
        self.stack.close()


# An array whose repr is longer than this (or spans lines) is summarised in Hypothesis's examples.
ARRAY_REPR_WIDTH = 80
ARRAY_VALUES_SHOWN = 6


def _number(value: object) -> str:
    """A numpy scalar as a student reads it: ``0.25``, ``-3``, ``1e+30``, ``True``, ``nan``."""
    value = value.item() if hasattr(value, "item") else value
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def array_summary(array: object) -> str:
    """A numpy array on one line: its own repr when that is short, else its shape, dtype, range
    (of its finite values, with how many are NaN or infinite) and first values, e.g.
    ``<array shape=(6, 40) dtype=float32 min=-2.5 max=3 nan=2 first=[0.5, nan, -1, 3, 0, 2, ...]>``.
    """
    import numpy as np

    text = repr(array)
    if "\n" not in text and len(text) <= ARRAY_REPR_WIDTH:
        return text
    a = np.asarray(array)
    parts = [f"shape={a.shape}", f"dtype={a.dtype}"]
    flat = a.ravel()
    if flat.size and a.dtype.kind in "biuf":
        finite = flat[np.isfinite(flat)] if a.dtype.kind == "f" else flat
        if finite.size:
            parts += [f"min={_number(finite.min())}", f"max={_number(finite.max())}"]
        if a.dtype.kind == "f":
            nan, inf = int(np.isnan(flat).sum()), int(np.isinf(flat).sum())
            parts += [f"nan={nan}"] * bool(nan) + [f"inf={inf}"] * bool(inf)
    shown = [_number(v) for v in flat[:ARRAY_VALUES_SHOWN]]
    if flat.size > ARRAY_VALUES_SHOWN:
        shown.append("...")
    parts.append(f"first=[{', '.join(shown)}]" if flat.size else "empty")
    return f"<array {' '.join(parts)}>"


def _pretty_array(array: object, printer: object, cycle: bool) -> None:
    printer.text(array_summary(array))


def _summarise_arrays_in_examples() -> object:
    """Make Hypothesis print numpy arrays with :func:`array_summary`; the printer it replaces."""
    try:
        from hypothesis.vendor import pretty
    except ImportError:  # pragma: no cover - hypothesis is a test dependency
        return None
    return pretty.for_type_by_name("numpy", "ndarray", _pretty_array)


def _restore_array_printer(previous: object) -> None:
    try:
        from hypothesis.vendor import pretty
    except ImportError:  # pragma: no cover
        return
    if previous is None:
        pretty._deferred_type_pprinters.pop(("numpy", "ndarray"), None)
    else:
        pretty.for_type_by_name("numpy", "ndarray", previous)


_log: RunLog | None = None
_previous_array_printer: object = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("tinytorch").addoption(
        "--tinytorch-log", default=None, help="log each test's start and outcome to this file (JSON lines)"
    )


def pytest_configure(config: pytest.Config) -> None:
    global _log, _previous_array_printer
    path = config.getoption("tinytorch_log", None)
    if path and _log is None:
        _log = RunLog(path)
        _log.start()
        _previous_array_printer = _summarise_arrays_in_examples()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _log
    if _log is not None:
        _log.close()
        _log = None
        _restore_array_printer(_previous_array_printer)


def _write(**event: object) -> None:
    if _log is not None:
        _log.write(**event)


def pytest_sessionstart(session: pytest.Session) -> None:
    _write(event="session")


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session):
    """Importing the tests (and so the katas) gets the per-test timeout too: a stack dump, then exit."""
    timeout = session.config.getoption("timeout", None)
    armed = _log is not None and bool(timeout) and float(timeout) > 0
    if armed:
        faulthandler.dump_traceback_later(float(timeout), exit=True, file=_log.stack)
    try:
        return (yield)
    finally:
        if armed:
            faulthandler.cancel_dump_traceback_later()


def pytest_collection_finish(session: pytest.Session) -> None:
    _write(event="collected", nodeids=[item.nodeid for item in session.items])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """An exit while a test file imports the katas: a collection error of that file, not the run's end."""
    try:
        return (yield)
    except (SystemExit, KeyboardInterrupt) as exc:
        text = "".join(traceback.format_exception(exc))
        text += f"E   {KataExit.__name__}: {exit_message(exc, 'while the tests imported it')}\n"
        return pytest.CollectReport(collector.nodeid, "failed", text, [])


def _guard(when: str):
    """A hook wrapper for one phase of a test: an exit becomes a failure of this test."""
    try:
        return (yield)
    except (SystemExit, KeyboardInterrupt) as exc:
        raise KataExit(exit_message(exc, when)) from exc


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item):
    return (yield from _guard("in the test's setup"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item):
    return (yield from _guard("during the test"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    return (yield from _guard("in the test's teardown"))


def pytest_runtest_logstart(nodeid: str, location: tuple) -> None:
    _write(event="start", nodeid=nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", "") if crash is not None else ""
    details = report.longreprtext if report.longrepr is not None else ""
    if report.skipped and isinstance(report.longrepr, tuple):  # (file, line, "Skipped: why")
        message = str(report.longrepr[2])
    _write(
        event="report",
        nodeid=report.nodeid,
        when=report.when,
        outcome=report.outcome,
        message=message or (details.strip().splitlines() or [""])[-1],
        details=details,
    )


def pytest_runtest_logfinish(nodeid: str, location: tuple) -> None:
    _write(event="finish", nodeid=nodeid)
