"""Run kata test files in pytest subprocesses: start, bound and supervise them, rerun after a death.

The CLI (``tinytorch status/test/hint/watch``) and the integrity checks (``grading.integrity``)
share this runner. Each module's test file runs in its own ``python -m pytest`` process (several
modules in parallel), with ``TINYTORCH_IMPL`` set to the implementation under test, so one
module's crash never hides another module's results. What a child leaves behind (its JUnit
report, its log, its stack dump) is read by :mod:`tinytorch.course.reports` into the outcomes of
:mod:`tinytorch.course.results`, one per test.

The student loop never hangs and never lies:

* every test has a timeout (the pytest-timeout plugin, thread method: a test stuck in an endless
  loop, even inside Hypothesis, is stopped with a dump of its stack), importing the tests has one
  (``faulthandler``), and the whole run of a module has a bound (the process group is killed);
* a small pytest plugin, loaded in the child (``tinytorch/course/pytest_plugin.py``), logs each test
  as it starts and ends (JSON lines), turns ``sys.exit()``, ``os._exit()`` and
  ``KeyboardInterrupt`` raised by the code under test into an ordinary failure of that test (or
  a collection error when it happens at import), and dumps the stack on request;
* when the child dies anyway (a timeout, a crash, a kill), the log says which tests finished and
  which one was running: those keep their outcome, the running one is reported as a timeout or a
  crash with the kata line it was on, and the rest run again in a fresh process (a few times);
* Ctrl-C kills the children (they run in their own process group) and re-raises
  ``KeyboardInterrupt`` for the caller to report.

On Linux the children are forked from a server process that imported pytest, numpy and
hypothesis once (``tinytorch/course/forkserver.py``), which saves about 0.3 s per module after
the first (measured there); each child is still a new process. ``TINYTORCH_FORKSERVER=0`` starts
plain subprocesses.

Reading the report, never pytest's exit code, is what lets ``tox -e unsolved`` demand that
*every single* test fails on the stubs. The outcomes a run returns, the report reader and the
stub checks of :mod:`tinytorch.course.needs` are re-exported here (``__all__``): the grader and
the registry's checks take them from the runner.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tinytorch import perf
from tinytorch.course import forkserver, registry
from tinytorch.course.needs import defined_functions, raises_not_implemented
from tinytorch.course.reports import Progress, make_outcome, merge_reports, parse_junit, read_log, stack_file
from tinytorch.course.results import Location, ModuleResult, RunResult, TestOutcome

__all__ = [
    "MAX_RESTARTS",
    "PRELOAD",
    "RUN_TIMEOUT",
    "RUN_TIMEOUT_ENV",
    "TEST_TIMEOUT",
    "TEST_TIMEOUT_ENV",
    "Location",
    "ModuleResult",
    "RunResult",
    "TestOutcome",
    "defined_functions",
    "kill_children",
    "parse_junit",
    "pytest_env",
    "raises_not_implemented",
    "run_module",
    "run_modules",
    "seconds_from_env",
    "stack_file",
]

# Seconds one test may take (pytest-timeout), and one module's whole run; the environment variables
# override them (the CLI's --timeout sets the first). Generous: a module's whole suite takes
# seconds on a quiet machine, and its slowest test took up to 30 s on a loaded two-core one.
TEST_TIMEOUT_ENV, RUN_TIMEOUT_ENV = "TINYTORCH_TEST_TIMEOUT", "TINYTORCH_RUN_TIMEOUT"
TEST_TIMEOUT = 60.0
RUN_TIMEOUT = 300.0
# Fresh processes started for the tests left after the test process died (timeouts, crashes).
MAX_RESTARTS = 2
# pytest-timeout's banner around the stacks it dumps before it ends a test process.
_TIMEOUT_BANNER = re.compile(r"\+{3,} Timeout \+{3,}")  # after the progress dots, maybe


# --------------------------------------------------------------------------- running pytest

# Every pytest child the course starts (the runner's, the gallery's, the grader's sandbox) loads
# the plugins it needs by name and nothing else from the interpreter's site-packages: a plugin
# installed for other work (pytest-benchmark, pytest-cov, xdist) neither adds its import and its
# warnings to each child nor changes what the child reports.
NO_AUTOLOAD = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def child_plugins() -> list[str]:
    """``-p`` options for the plugins of a child: Hypothesis's, and pytest-timeout's where it is
    installed (``timeout`` in pyproject.toml needs it)."""
    names = ["_hypothesis_pytestplugin"]
    if importlib.util.find_spec("pytest_timeout") is not None:
        names.append("pytest_timeout")
    return [option for name in names for option in ("-p", name)]


def pytest_env(impl: str) -> dict[str, str]:
    """The environment of the pytest subprocess: ``TINYTORCH_IMPL=impl``, this tinytorch, and no
    plugin loaded that :func:`child_plugins` does not name."""
    env = dict(os.environ)
    env["TINYTORCH_IMPL"] = impl
    env.update(NO_AUTOLOAD)
    # The subprocess must import the same tinytorch as this process, installed or not.
    package_parent = str(Path(__file__).resolve().parents[2])
    paths = [package_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable ``name``, else ``default``."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{name}={value!r}: give a positive number of seconds")
    return seconds


_children: set[subprocess.Popen | forkserver.Child] = set()
_children_lock = threading.Lock()
_stopping = threading.Event()  # set by kill_children: no new child may start

# The pytest children are forked from a server that imported these once (tinytorch/course/forkserver.py):
# about 0.3 s less per module after the first. Nothing that reads TINYTORCH_* is preloaded.
PRELOAD = ("pytest", "_pytest.junitxml", "pytest_timeout", "numpy", "numpy.testing", "hypothesis")
_server = forkserver.ForkServer(PRELOAD)


def _kill(proc: subprocess.Popen | forkserver.Child) -> None:
    """Kill a child and everything it started (it leads its own process group)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def kill_children() -> None:
    """Kill every pytest child still running, and start no new one (Ctrl-C in the parent)."""
    with _children_lock:
        _stopping.set()
        children = list(_children)
    for proc in children:
        _kill(proc)


@dataclass
class _Attempt:
    returncode: int
    output: str
    junit: bytes | None
    killed: bool  # the run's time bound ran out and the process was killed
    progress: Progress
    stack: str


def _attempt(
    command: list[str], root: Path, env: dict[str, str], tmp: Path, n: int, budget: float
) -> _Attempt:
    report, log, out = tmp / f"report-{n}.xml", tmp / f"log-{n}.jsonl", tmp / f"output-{n}.txt"
    command = [*command, f"--junitxml={report}", f"--tinytorch-log={log}"]
    with open(out, "wb") as output:
        with _children_lock:
            if _stopping.is_set():
                raise KeyboardInterrupt
            # its own session: Ctrl-C reaches the parent only; it stops the child itself
            proc = _server.start(command, env=env, cwd=root, output=output.fileno(), new_session=True)
            _children.add(proc)
    killed = False
    try:
        try:
            proc.wait(timeout=max(budget, 0.01))
        except subprocess.TimeoutExpired:
            killed = True
            if hasattr(signal, "SIGUSR1"):  # ask for the stack first (faulthandler, see RunLog)
                proc.send_signal(signal.SIGUSR1)
                time.sleep(0.5)
            _kill(proc)
            proc.wait()
    except BaseException:
        _kill(proc)
        proc.wait()
        raise
    finally:
        with _children_lock:
            _children.discard(proc)
    junit = report.read_bytes() if report.is_file() and not killed else None
    try:
        stack = stack_file(log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        stack = ""
    output_text = out.read_bytes().decode("utf-8", "replace")
    return _Attempt(proc.returncode, output_text, junit, killed, read_log(log), stack)


def _died(
    attempt: _Attempt, test_timeout: float, run_timeout: float, collecting: bool
) -> tuple[str, str, str]:
    """(problem, message, details) for the test (or the import) a dead child was running."""
    doing = "while the tests imported the code" if collecting else "during this test"
    banner = _TIMEOUT_BANNER.search(attempt.output)
    if banner:  # pytest-timeout: the test ran past its timeout; its stack follows the banner
        return (
            "timeout",
            f"Timeout: the test ran longer than {test_timeout:g} s and was stopped (an endless loop?)",
            attempt.output[banner.start() :],
        )
    if collecting and attempt.stack.startswith("Timeout ("):  # the faulthandler watchdog
        return (
            "timeout",
            f"Timeout: importing the tests took longer than {test_timeout:g} s and was stopped "
            "(an endless loop at import?)",
            attempt.stack,
        )
    if attempt.killed:
        return (
            "timeout",
            f"Timeout: the module's run went over its bound of {run_timeout:g} s and was stopped {doing}",
            attempt.stack + attempt.output,
        )
    return (
        "crash",
        f"Crash: the test process ended (exit code {attempt.returncode}) {doing}; does the code call "
        "os.abort(), kill its own process or crash the interpreter?",
        attempt.output + attempt.stack,
    )


def run_module(
    module: registry.Module,
    impl: str = "katas",
    root: Path | None = None,
    extra_args: Sequence[str] = (),
    test_timeout: float | None = None,
    run_timeout: float | None = None,
) -> tuple[ModuleResult, str, int, bool]:
    """Run one module's test file; (result, output, pytest's return code, report found).

    The child runs under a per-test timeout and a bound on the whole run; if it dies, the tests
    it had not run yet run again in a fresh process (at most ``MAX_RESTARTS`` times).
    """
    root = root or registry.repo_root()
    test_timeout = test_timeout or seconds_from_env(TEST_TIMEOUT_ENV, TEST_TIMEOUT)
    run_timeout = run_timeout or seconds_from_env(RUN_TIMEOUT_ENV, RUN_TIMEOUT)
    result = ModuleResult(module)
    if not (root / module.tests).is_file():
        return result, "", 0, True
    # its own kata folder first; the others too: a test can fail in a kata its module builds on
    folders = [perf.source_dir(module.name, impl)]
    folders += [perf.source_dir(m.name, impl) for m in registry.modules() if m.name != module.name]
    kata_dirs: dict[str, Path | Sequence[Path]] = {module.tests: folders}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "tinytorch.course.pytest_plugin",
        *child_plugins(),
        f"--timeout={test_timeout:g}",
        "-o",
        "timeout_method=thread",
        "-o",
        "junit_family=xunit2",
        "-p",
        "no:cacheprovider",
        "--tb=native",
        "-q",
        "--continue-on-collection-errors",
        # a child forked from the server finds hypothesis and pytest_timeout (pytest plugins)
        # already imported, so pytest cannot rewrite their asserts; neither has tests to rewrite
        "-W",
        "ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning",
        *extra_args,
    ]
    env = pytest_env(impl)
    deadline = time.monotonic() + run_timeout
    order: list[str] = []
    known: dict[str, TestOutcome] = {}
    outputs: list[str] = []
    returncode = 0
    with tempfile.TemporaryDirectory(prefix="tinytorch-") as tmp:
        for n in range(MAX_RESTARTS + 1):
            # the first run takes the file; a rerun names the tests left (not --deselect: it takes
            # prefixes, so deselecting test_x would drop test_x2 too)
            targets = [nodeid for nodeid in order if nodeid not in known] if known else [module.tests]
            attempt = _attempt(command + targets, root, env, Path(tmp), n, deadline - time.monotonic())
            outputs.append(attempt.output)
            returncode = attempt.returncode
            if attempt.junit is not None:
                for outcome in parse_junit(attempt.junit, [module.tests], kata_dirs, root):
                    if outcome.nodeid.split("::", 1)[0] != module.tests:  # pytest's own internal error
                        outcome = make_outcome(
                            module.tests, "error", "", outcome.details, kata_dirs, root, collection=True
                        )
                    if outcome.nodeid not in order:
                        order.append(outcome.nodeid)
                    known[outcome.nodeid] = outcome
                break
            progress = attempt.progress
            if not progress.started and not attempt.killed:
                # pytest stopped by itself before its session: bad arguments, a broken conftest
                return result, "\n".join(outputs), returncode, False
            if progress.collected is None:  # died while importing the tests
                problem, message, details = _died(attempt, test_timeout, run_timeout, collecting=True)
                known[module.tests] = make_outcome(
                    module.tests, "error", message, details, kata_dirs, root, collection=True, problem=problem
                )
                order.append(module.tests)
                break
            order = order or list(progress.collected)
            for nodeid in progress.finished:
                outcome, message, details = merge_reports(progress.reports[nodeid])
                known[nodeid] = make_outcome(nodeid, outcome, message, details, kata_dirs, root)
            if progress.running:
                problem, message, details = _died(attempt, test_timeout, run_timeout, collecting=False)
                known[progress.running] = make_outcome(
                    progress.running, "error", message, details, kata_dirs, root, problem=problem
                )
            left = [nodeid for nodeid in order if nodeid not in known]
            if not left:
                break
            if n == MAX_RESTARTS or deadline - time.monotonic() <= 1 or not progress.running:
                where = f"in {progress.running}" if progress.running else "between two tests"
                if deadline - time.monotonic() <= 1:
                    why = f"the module's run was stopped {where}: its {run_timeout:g} s were used up"
                else:
                    why = f"the test process ended {where}, after {n} restart(s)"
                message = f"Not run: {why}; fix that test first"
                for nodeid in left:
                    known[nodeid] = TestOutcome(nodeid, "error", message, problem="not run")
                break
    result.outcomes = [known[nodeid] for nodeid in order if nodeid in known]
    return result, "\n".join(outputs), returncode, True


def run_modules(
    modules: Iterable[registry.Module],
    impl: str = "katas",
    root: Path | None = None,
    extra_args: Sequence[str] = (),
    test_timeout: float | None = None,
    run_timeout: float | None = None,
) -> RunResult:
    """Run the test files of ``modules``, each in its own pytest process, in parallel.

    ``TINYTORCH_IMPL=impl`` in each; ``test_timeout`` bounds one test and ``run_timeout`` one
    module's whole run (seconds; default from ``TINYTORCH_TEST_TIMEOUT``/``TINYTORCH_RUN_TIMEOUT``,
    else ``TEST_TIMEOUT``/``RUN_TIMEOUT``). Ctrl-C kills the children and re-raises.
    """
    root = root or registry.repo_root()
    modules = list(modules)
    test_timeout = test_timeout or seconds_from_env(TEST_TIMEOUT_ENV, TEST_TIMEOUT)
    run_timeout = run_timeout or seconds_from_env(RUN_TIMEOUT_ENV, RUN_TIMEOUT)
    if not modules:
        return RunResult({}, 0, "", report_found=True)
    _stopping.clear()

    def one(module: registry.Module) -> tuple[ModuleResult, str, int, bool]:
        return run_module(module, impl, root, extra_args, test_timeout, run_timeout)

    workers = max(1, min(len(modules), os.cpu_count() or 1))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinytorch-run")
    try:
        futures = [pool.submit(one, m) for m in modules]
        runs = [future.result() for future in futures]
    except BaseException:  # Ctrl-C: stop every child, then let the caller report it
        pool.shutdown(wait=False, cancel_futures=True)
        kill_children()
        raise
    pool.shutdown()
    results = {m.name: run[0] for m, run in zip(modules, runs, strict=True)}
    output = "\n".join(run[1] for run in runs if run[1])
    returncode = max(run[2] for run in runs)
    return RunResult(results, returncode, output, report_found=all(run[3] for run in runs))
