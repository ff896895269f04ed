"""The gallery of classic mistakes: ``python -m grading mistakes [module ...]``.

A kata suite is only as good as the wrong answers it rejects. Every ready module keeps a few
realistic wrong variants of its reference in ``grading/mistakes/<module>.toml``, each a small
find/replace patch on one or more files of ``solutions/<module>/`` (the format, and how the files
are read and checked: ``grading/gallery_files.py``).

The check copies ``solutions/<module>/`` to a temporary folder, applies the edits, serves the copy
through the switch (``TINYTORCH_IMPL=solutions,<module>=<tmp>/<module>``; ``solutions/`` is never
touched) and runs the module's test file with ``-x`` and the ``ci`` hypothesis profile, reading
the JUnit report. A variant passes the check when a test fails on it; the check prints the first
test that caught each variant. It fails for:

* a variant that no test catches (its ``why`` is printed: a suite that passes a known-wrong answer
  is a defect);
* a ``caught_by`` that does not catch its variant (the tests it selects all pass, or it selects
  none), since ``tinytorch hint`` names the mistake to a student who fails that test;
* a variant that cannot even be collected (the patch broke the syntax or an import), one that
  runs past its timeout, or a patch that no longer applies: every ``old`` must occur exactly once
  in the current solution file, else the solution changed under the patch and it must be
  re-anchored;
* a malformed gallery file, one for a module the registry does not know, or a ready module
  without one. A module that is not ready yet is skipped.

A test that fails on the reference too would make every variant look caught: ``tox -m check``
proves in its ``solutions`` env that every test passes on the reference; ``--reference`` checks
the ``caught_by`` tests on an unpatched copy first, for a run on its own.

Speed: ``caught_by`` runs first (``-k``), the whole file only when it does not catch the variant;
variants run in parallel (``--jobs``, default: the number of CPUs), each in a fresh pytest process
forked from a server that imported numpy, hypothesis, pytest and the foundation once
(``tinytorch/course/forkserver.py``; a plain subprocess off Linux or with ``TINYTORCH_FORKSERVER=0``),
with ``--assert=plain`` (no assertion rewriting); every run has a per-test timeout
(pytest-timeout, when installed) and a hard process timeout. The summary line gives the wall
time and the CPU seconds the pytest processes used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from grading.gallery_files import Edit, GalleryError, Mistake, gallery_file, load, patched_files
from tinytorch.course import forkserver, registry, runner

__all__ = [
    "Edit",
    "GalleryError",
    "Mistake",
    "Verdict",
    "build_variant",
    "check",
    "cpu_seconds",
    "gallery_file",
    "load",
    "main",
    "patched_files",
    "run_reference",
    "run_variant",
]

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None

# Seconds. One test of a kata suite takes well under a second on the solutions; a mutant that
# loops forever is stopped by pytest-timeout per test, and by the subprocess timeout as a last resort.
TEST_TIMEOUT = 30
RUN_TIMEOUT = 120

# The variants run side by side: one BLAS thread each, so two jobs do not fight over the cores.
_QUIET_BLAS = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


@dataclass
class Verdict:
    """What running a module's tests on one variant showed."""

    mistake: Mistake
    caught_by: runner.TestOutcome | None = None  # the first test that failed on the variant
    problem: str = ""  # why this variant fails the check ("" when it passes)
    seconds: float = 0.0
    runs: list[str] = field(default_factory=list)  # what was run: "caught_by", "file"

    @property
    def ok(self) -> bool:
        return not self.problem


# --------------------------------------------------------------------------- running


def build_variant(mistake: Mistake, into: Path, root: Path | None = None) -> Path:
    """Copy ``solutions/<module>/`` to ``into/<module>``, apply the mistake, return the folder."""
    root = root or registry.repo_root()
    module = registry.get(mistake.module)
    texts = patched_files(mistake, root)
    folder = into / module.name
    shutil.copytree(root / module.solution, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for relative, text in texts.items():
        (folder / relative).write_text(text, encoding="utf-8")
    return folder


def _pytest(
    module: registry.Module, folder: Path, root: Path, keyword: str | None, timeout: float
) -> tuple[list[runner.TestOutcome] | None, str]:
    """Run the module's test file on the variant in ``folder``: (outcomes, or None if no report; output)."""
    stamp = time.monotonic_ns()
    report = folder.parent / f"report-{stamp}.xml"
    args = [
        module.tests,
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "--tb=native",
        "--assert=plain",  # no assertion rewriting: a second less per run; only pass/fail matters here
        f"--junitxml={report}",
        "-o",
        "junit_family=xunit2",
    ]
    if keyword:
        args += ["-k", keyword]
    args += runner.child_plugins() + _timeout_args(min(TEST_TIMEOUT, timeout))
    env = runner.pytest_env(f"solutions,{module.name}={folder}")
    env.update(_QUIET_BLAS, HYPOTHESIS_PROFILE="ci")
    log = folder.parent / f"output-{stamp}.txt"
    output = _pytest_run(args, env, root, timeout, log)
    if not report.is_file():
        return None, output
    outcomes = runner.parse_junit(report.read_bytes(), [module.tests], {module.tests: folder}, root)
    return outcomes, output


# A fresh pytest process per variant, without paying for its imports every time: the variants are
# forked from a server (tinytorch/course/forkserver.py) that imported numpy, hypothesis, pytest and the
# foundation once. Each child is still a new process that imports its kata module from the
# variant's folder (the server forgets every tinytorch.perf module the foundation imported); only
# libraries that do not read TINYTORCH_IMPL are shared.
_PRELOAD = (
    *runner.PRELOAD,  # the libraries the runner's children share; the foundation too, here
    "tinytorch",
    "tinytorch.attention",
    "tinytorch.conv",
    "tinytorch.layers",
    "tinytorch.tensor",
    "tinytorch.transformer",
    "tinytorch.zoo",
)
_server = forkserver.ForkServer(
    _PRELOAD, env={**os.environ, **_QUIET_BLAS}, forget=("tinytorch.perf.",)
)
_forked_cpu = 0.0  # CPU seconds of the forked children (the server's children, not ours)
_forked_cpu_lock = threading.Lock()  # variants run in parallel threads


def _pytest_run(args: list[str], env: dict[str, str], root: Path, timeout: float, log: Path) -> str:
    """``pytest args`` in a process forked from the server (a subprocess where it cannot be);
    its output (stdout and stderr), written to ``log``."""
    global _forked_cpu
    with open(log, "wb") as out:
        proc = _server.start([sys.executable, "-m", "pytest", *args], env=env, cwd=root, output=out.fileno())
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired as expired:
        proc.kill()
        proc.wait(10)
        raise TimeoutError(f"the tests ran past {timeout:g} s and were stopped") from expired
    finally:
        if isinstance(proc, forkserver.Child):  # a subprocess's CPU shows in RUSAGE_CHILDREN
            with _forked_cpu_lock:
                _forked_cpu += proc.cpu
    return log.read_text(encoding="utf-8", errors="replace")


def cpu_seconds() -> float:
    """CPU seconds spent so far by the pytest processes this process ran (forked or not)."""
    if resource is None:  # pragma: no cover - Windows: no getrusage
        return _forked_cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime + _forked_cpu


def _timeout_args(seconds: float) -> list[str]:
    """pytest-timeout's per-test limit, if the plugin is installed (the process timeout holds anyway).

    The thread method ends the whole run (no report), also inside Hypothesis, which would catch
    the signal method's exception and replay the hanging example; a variant that hangs is then a
    problem of the gallery, not a catch.
    """
    if find_spec("pytest_timeout") is None:
        return []
    return [f"--timeout={seconds:g}", "-o", "timeout_method=thread"]


def _first_failure(outcomes: list[runner.TestOutcome]) -> runner.TestOutcome | None:
    return next((o for o in outcomes if o.outcome in ("failed", "error")), None)


def run_variant(mistake: Mistake, root: Path | None = None, timeout: float = RUN_TIMEOUT) -> Verdict:
    """Run the module's tests on one variant: its ``caught_by`` first, the whole file if needed."""
    root = root or registry.repo_root()
    module = registry.get(mistake.module)
    verdict = Verdict(mistake)
    started = time.perf_counter()
    stale = ""
    with tempfile.TemporaryDirectory(prefix=f"tinytorch-mistake-{mistake.name}-") as tmp:
        try:
            folder = build_variant(mistake, Path(tmp), root)
            for keyword in ([mistake.caught_by] if mistake.caught_by else []) + [None]:
                verdict.runs.append("caught_by" if keyword else "file")
                outcomes, output = _pytest(module, folder, root, keyword, timeout)
                if outcomes is None and "+ Timeout +" in output:  # pytest-timeout's banner
                    verdict.problem = (
                        f"a test ran past {min(TEST_TIMEOUT, timeout):g} s and pytest-timeout ended the "
                        "run: the variant hangs; a classic mistake must fail a test, not hang it"
                    )
                    break
                if outcomes is None:
                    tail = "\n".join(output.strip().splitlines()[-5:])
                    verdict.problem = f"pytest wrote no report; its output ends:\n{tail}"
                    break
                failure = _first_failure(outcomes)
                if failure is not None and failure.collection:
                    verdict.problem = (
                        f"the variant cannot be collected ({failure.message}): a classic mistake is "
                        "code that runs; fix the patch"
                    )
                    break
                if failure is not None:
                    verdict.caught_by = failure
                    break
                if keyword:
                    selected = "selects no test" if not outcomes else "selects tests that all pass"
                    stale = f"caught_by = {keyword!r} {selected} on this variant"
        except (GalleryError, TimeoutError) as error:
            verdict.problem = str(error)
    verdict.seconds = time.perf_counter() - started
    if not verdict.problem:
        if verdict.caught_by is None:
            verdict.problem = f"no test of {module.tests} fails on this variant. The mistake: {mistake.why}"
        elif stale:
            verdict.problem = (
                f"{stale}; {verdict.caught_by.nodeid} catches it: set caught_by to "
                f"{_test_name(verdict.caught_by)!r} (tinytorch hint names the mistake to a student "
                "who fails the caught_by test)"
            )
    return verdict


def _test_name(outcome: runner.TestOutcome) -> str:
    """The function name of a test id: ``TestX::test_y[case]`` -> ``test_y``."""
    return outcome.name.rsplit("::", 1)[-1].split("[", 1)[0]


def run_reference(
    name: str, keywords: list[str], root: Path | None = None, timeout: float = RUN_TIMEOUT
) -> str:
    """Run the ``caught_by`` tests of module ``name`` on an unpatched copy of its solution.

    They must all pass: a test that fails on the reference proves nothing about a mistake (a
    broken solution, or a flaky test, would make every variant look caught). Returns the problem,
    or "" when they pass.
    """
    root = root or registry.repo_root()
    module = registry.get(name)
    with tempfile.TemporaryDirectory(prefix=f"tinytorch-reference-{name}-") as tmp:
        folder = Path(tmp) / module.name
        shutil.copytree(root / module.solution, folder, ignore=shutil.ignore_patterns("__pycache__"))
        try:
            outcomes, output = _pytest(module, folder, root, " or ".join(keywords), timeout)
        except TimeoutError as error:
            return f"on the unpatched solution, {error}"
    if outcomes is None:
        tail = "\n".join(output.strip().splitlines()[-5:])
        return f"pytest wrote no report on the unpatched solution; its output ends:\n{tail}"
    failure = _first_failure(outcomes)
    if failure is not None:
        return (
            f"{failure.nodeid} fails on the unpatched solution ({failure.message.splitlines()[0][:120]}): "
            "a test that fails on the reference proves nothing about a mistake"
        )
    return ""


def check(
    root: Path | None = None,
    names: list[str] | None = None,
    jobs: int | None = None,
    timeout: float = RUN_TIMEOUT,
    out=None,
    reference: bool = False,
) -> tuple[list[Verdict], list[str]]:
    """Load the gallery and run every variant; print one line per variant as it is known.

    With ``reference``, first, per module, its ``caught_by`` tests run on the unpatched solution
    (they must pass; ``tox -m check`` proves it for every test in its ``solutions`` env).
    Returns the verdicts and the problems (loading problems first, then every failed run).
    """
    out = out or sys.stdout
    root = root or registry.repo_root()
    mistakes, problems = load(root, names)
    for problem in problems:
        print(f"  - {problem}", file=out)
    keywords: dict[str, list[str]] = {}
    for mistake in mistakes:
        if mistake.caught_by and mistake.caught_by not in keywords.setdefault(mistake.module, []):
            keywords[mistake.module].append(mistake.caught_by)
    work: list[tuple[str, str] | Mistake] = [(name, "reference") for name in keywords if reference]
    work += mistakes

    def run(item: tuple[str, str] | Mistake) -> tuple[str, float] | Verdict:
        if isinstance(item, Mistake):
            return run_variant(item, root, timeout)
        started = time.perf_counter()
        return run_reference(item[0], keywords[item[0]], root, timeout), time.perf_counter() - started

    jobs = max(1, min(jobs or os.cpu_count() or 1, len(work) or 1))
    labels = [m.label for m in mistakes] + [
        f"{item[0]}/(reference)" for item in work if isinstance(item, tuple)
    ]
    width = max(map(len, labels), default=0)
    verdicts = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for item, result in zip(work, pool.map(run, work), strict=True):
            if not isinstance(result, Verdict):
                problem, seconds = result
                label = f"{item[0] + '/(reference)':<{width}}"
                if problem:
                    print(f"  BROKEN  {label}  {problem}", file=out, flush=True)
                    problems.append(f"{item[0]} (reference): {problem}")
                else:
                    count = len(keywords[item[0]])
                    print(
                        f"  passes  {label}  its {count} caught_by selections pass on the unpatched "
                        f"solution  ({seconds:.1f} s)",
                        file=out,
                        flush=True,
                    )
                continue
            verdict = result
            verdicts.append(verdict)
            label = f"{verdict.mistake.label:<{width}}"
            if verdict.ok:
                where = verdict.caught_by.nodeid if verdict.caught_by else "?"
                print(f"  caught  {label}  by {where}  ({verdict.seconds:.1f} s)", file=out, flush=True)
            else:
                print(f"  MISSED  {label}  {verdict.problem}", file=out, flush=True)
                problems.append(f"{verdict.mistake.label}: {verdict.problem}")
    return verdicts, problems


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grading mistakes",
        description="Run every classic mistake of grading/mistakes/<module>.toml through its module's "
        "tests; fail unless a test catches each one.",
    )
    parser.add_argument("modules", nargs="*", help="module names or numbers (default: every ready module)")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="variants run at once (default: CPUs)")
    parser.add_argument(
        "--timeout", type=float, default=RUN_TIMEOUT, help=f"seconds per pytest run (default {RUN_TIMEOUT})"
    )
    parser.add_argument("--list", action="store_true", help="list the mistakes without running them")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="first run the caught_by tests on the unpatched solutions: they must pass (tox's solutions "
        "env proves it for every test)",
    )
    args = parser.parse_args(argv)
    names = None
    if args.modules:
        names = []
        for key in args.modules:
            try:
                module = registry.get(key)
            except KeyError as error:
                parser.error(str(error.args[0]))
            if not module.ready:
                parser.error(f"module {module.number} ({module.name}) is not ready")
            names.append(module.name)
    if args.list:
        mistakes, problems = load(names=names)
        for m in mistakes:
            test = f" [{m.caught_by}]" if m.caught_by else ""
            print(f"{m.label}{test}: {m.why}")
        for problem in problems:
            print(f"  - {problem}")
        return 1 if problems else 0
    started, cpu = time.perf_counter(), cpu_seconds()
    verdicts, problems = check(names=names, jobs=args.jobs, timeout=args.timeout, reference=args.reference)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    modules = ", ".join(dict.fromkeys(v.mistake.module for v in verdicts)) or "no module"
    where = f"({modules}; {seconds:.1f} s, {cpu:.1f} s CPU in pytest)"
    if problems:
        print(f"mistakes: {len(problems)} problem(s) in {len(verdicts)} variants {where}")
        return 1
    print(f"mistakes: every one of {len(verdicts)} variants is caught by a test {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
