"""Running one sandboxed child: a pytest process over the grader's tests, around a student's code.

``run_child`` starts ``grading/sandbox.py`` (``python -I -B``, forked from a server that has
already imported the libraries every run needs) with resource limits, a configuration only the
grader can read and a pipe on which the child reports its events, each line carrying a secret of
the run; a line without it is tampering. This process keeps the clock (collection, each test, the
module's budget), kills the child's whole process group when it is done or out of time, and says
how it ended (``ChildOutcome``). ``served`` decides which tree serves each module in a child.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from grading import answerkey
from grading import boundary as boundary_
from grading.grade_stage import Context, test_imports
from tinytorch.course import forkserver, registry, runner

SANDBOX = Path(__file__).with_name("sandbox.py")
# modules whose classes and functions the student's code must not patch (the audit hook's list)
TRUSTED_MODULES = ("_pytest", "pytest", "pluggy", "numpy", "hypothesis", "builtins", "tinytorch", "grading")


def _tinytorch_parent() -> str:
    import tinytorch

    return str(Path(tinytorch.__file__).resolve().parent.parent)


# The sandboxed children are forked from a server started like them (``python -I -B``, the fixed
# part of their environment) that imported the libraries every grading run imports before any
# student code (tinytorch/course/forkserver.py): about 0.3 s less per module, as measured there.
# The server never runs student code; each child still reads its own configuration, installs its
# own audit hook and loads the reference and the student's code itself (grading/sandbox.py).
SANDBOX_PRELOAD = ("ctypes", "numpy", "numpy.testing", "hypothesis", "pytest")
_SANDBOX_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "LANG": "C.UTF-8",
    "HYPOTHESIS_PROFILE": "ci",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    **runner.NO_AUTOLOAD,
}
_sandbox_server = forkserver.ForkServer(SANDBOX_PRELOAD, isolated=True, env=_SANDBOX_ENV)


def _rlimits(memory_mb: int, cpu_seconds: float) -> dict[str, tuple[int, int]]:
    memory = memory_mb * 1024 * 1024
    cpu = int(cpu_seconds) + 5
    return {
        "RLIMIT_AS": (memory, memory),
        "RLIMIT_CORE": (0, 0),
        "RLIMIT_FSIZE": (256 * 1024 * 1024, 256 * 1024 * 1024),
        "RLIMIT_CPU": (cpu, cpu + 5),
    }


@dataclass
class ChildOutcome:
    results: dict[str, tuple[str, str]]  # nodeid -> (outcome, text)
    collected: list[str] | None = None
    collect_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    tamper: str = ""
    fatal: str = ""
    ended: str = ""  # exit, crash, test-timeout, collect-timeout, budget
    running: str | None = None  # the test that was running when the child stopped
    returncode: int | None = None
    stderr: str = ""
    boundary_error: str = ""
    survivors: int = 0  # processes of the sandbox user still alive when the child was done
    units: dict[str, list[str]] = field(default_factory=dict)  # traced runs: test id -> functions called


def run_child(
    ctx: Context,
    name: str,
    run_dir: Path,
    impl: str,
    test_files: list[str],
    preload: dict[str, str],
    student: list[str],
    deselect: list[str],
    budget: float,
    collect_only: bool = False,
    collect_timeout: float | None = None,
    trusted: bool = False,
    key_out: Path | None = None,
    trace: str = "",
    env_extra: dict[str, str] | None = None,
) -> ChildOutcome:
    """One sandboxed pytest process; its events read from a pipe, its time watched from here.

    ``trusted``: the process runs only the grader's code (collecting the plan, the reference's
    answer keys), so it stays outside the kernel boundary; every other child is confined by
    ``ctx.boundary`` and, once it is gone, every process of the sandbox user is killed."""
    scratch = run_dir / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "tmp").mkdir(parents=True)
    if not trusted:
        ctx.boundary.own(scratch)
        ctx.boundary.own(scratch / "tmp")
    nonce = secrets.token_hex(16)
    read_fd, write_fd = os.pipe()
    args = [str(ctx.stage / f) for f in test_files]
    args += ["-p", "no:cacheprovider", *runner.child_plugins()]
    args += ["-q", "--tb=native", "--rootdir", str(ctx.stage)]
    args += ["--basetemp", str(scratch / "basetemp"), "-W", "ignore::pytest.PytestUnraisableExceptionWarning"]
    if collect_only:
        args.append("--collect-only")
    for nodeid in deselect:
        args += ["--deselect", nodeid]
    trusted_modules = list(TRUSTED_MODULES) + [Path(f).stem for f in (ctx.stage / "tests").glob("*.py")]
    readable = [str(ctx.stage), *boundary_.python_paths(), *boundary_.SYSTEM_READ, str(SANDBOX.resolve())]
    config = {
        "fd": write_fd,
        "nonce": nonce,
        "module": name,
        "scratch": str(scratch),
        "syspath": [_tinytorch_parent()],
        "preload": preload,
        "args": args,
        "deny": [str(Path(p).resolve()) for p in ctx.deny] + [str(ctx.stage.parent)],
        "allow": [
            str(ctx.stage.resolve()),
            str(run_dir.resolve()),
            *{str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)},
            str(Path(_tinytorch_parent()) / "tinytorch"),
            str(SANDBOX.resolve()),
        ],
        "writable": [str(scratch.resolve()), "/dev/null", "/dev/shm"],  # /dev/shm: multiprocessing
        "student": [str(Path(s).resolve()) for s in student],
        "trusted": trusted_modules,
        "preimport": test_imports(ctx.stage, test_files),
        "boundary": None
        if trusted
        else ctx.boundary.child_config(readable, [str(scratch), *boundary_.SYSTEM_WRITE]),
        "grader": os.getpid(),  # never to be signalled (the child's parent may be the fork server)
        "trace": trace if trusted else "",
    }
    config_path = run_dir / "sandbox.json"
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the secret: root's only
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(config))
    env = {
        **_SANDBOX_ENV,  # PATH, LANG, the ci profile, one BLAS thread: the sandbox server's too
        "HOME": str(scratch),
        "TMPDIR": str(scratch / "tmp"),
        "TINYTORCH_IMPL": impl,
        "TINYTORCH_ROOT": str(ctx.stage),
        "TINYTORCH_REGISTRY": str(ctx.stage / "modules.toml"),
    }
    if key_out is not None:
        env[answerkey.SEED_ENV] = str(ctx.seed)
        env[answerkey.OUT_ENV] = str(key_out)
    env.update(env_extra or {})
    out = ChildOutcome(results={})
    stderr_path = run_dir / "stderr.txt"
    started = time.monotonic()
    with open(stderr_path, "wb") as stderr:
        proc = _sandbox_server.start(
            [ctx.python, "-I", "-B", str(SANDBOX), str(config_path)],
            env=env,
            cwd=scratch,
            output=stderr.fileno(),
            pass_fds=(write_fd,),
            new_session=True,
            limits=_rlimits(ctx.settings.memory_mb, budget),
        )
    os.close(write_fd)
    buffer = b""
    test_started = started
    selector = selectors.DefaultSelector()
    selector.register(read_fd, selectors.EVENT_READ)
    try:
        while True:
            now = time.monotonic()
            if out.collected is None:
                deadline = started + (collect_timeout or ctx.settings.collect_timeout)
                why = "collect-timeout"
            elif out.running is not None:
                deadline = test_started + ctx.settings.timeout
                why = "test-timeout"
            else:
                deadline = started + budget
                why = "budget"
            if started + budget < deadline:
                deadline, why = started + budget, "budget"
            if now >= deadline:
                out.ended = why
                break
            if not selector.select(timeout=min(deadline - now, 1.0)):
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                out.ended = "exit" if out.ended == "exit" else "crash"
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                event = _parse_event(line, nonce, out)
                if event is None:
                    continue
                kind = event.get("ev")
                if kind == "start":
                    out.running = str(event.get("nodeid"))
                    test_started = time.monotonic()
                elif kind == "result":
                    out.results[str(event.get("nodeid"))] = (
                        str(event.get("outcome")),
                        str(event.get("text", "")),
                    )
                    out.running = None
                elif kind == "collected":
                    out.collected = [str(i) for i in event.get("ids", [])]
                elif kind == "collect_error":
                    out.collect_errors.append(str(event.get("text", "")))
                elif kind == "tamper":
                    out.tamper = out.tamper or str(event.get("text", ""))
                elif kind == "refused":
                    out.refused.append(str(event.get("text", "")))
                elif kind == "note":
                    out.notes.append(str(event.get("text", "")))
                elif kind == "fatal":
                    out.fatal = str(event.get("text", ""))
                elif kind == "boundary":
                    out.boundary_error = str(event.get("text", ""))
                elif kind == "units" and trace:
                    out.units[str(event.get("nodeid"))] = [str(u) for u in event.get("units", [])]
                elif kind == "exit":
                    out.ended = "exit"
            if out.ended == "exit":  # done; a leftover process holding the pipe is killed below
                break
    finally:
        selector.close()
        os.close(read_fd)
        _kill_group(proc)
        if not trusted:
            out.survivors = ctx.boundary.sweep()  # every process of the sandbox user, escaped or not
        out.returncode = proc.returncode
        out.stderr = _tail(stderr_path)
    if out.boundary_error:
        raise RuntimeError(
            f"the kernel boundary could not be set up ({out.boundary_error}); no student "
            'code was run. Run the grader with [grading] sandbox_user = "none" to grade '
            "without it."
        )
    return out


def _parse_event(line: bytes, nonce: str, out: ChildOutcome) -> dict | None:
    try:
        event = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        event = None
    if not isinstance(event, dict) or event.get("n") != nonce:
        out.tamper = (
            out.tamper or "a line on the grader's result channel did not come from the grader's plugin"
        )
        return None
    return event


def _kill_group(proc: subprocess.Popen | forkserver.Child) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
        pass


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


def describe_exit(out: ChildOutcome) -> str:
    code = out.returncode
    if out.fatal:
        return f"the test process stopped: {out.fatal}"
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        if name == "SIGXCPU":
            return "the test process used up its CPU time limit"
        return f"the test process was killed by {name} (a crash, or the memory limit)"
    return f"the test process exited with code {code} (sys.exit, os._exit or a crash)"


def served(ctx: Context, module: registry.Module, run_dir: Path, strict: bool) -> tuple[str, dict[str, str]]:
    """The ``TINYTORCH_IMPL`` of a child of ``module`` and the references it preloads.

    Isolation: the other modules whose reference the instructor has released are served from it
    (staged under ``run_dir/ref``); every other module, the graded one first, from the student's
    own code. Strict: all from the student's. The graded module's reference is never staged
    where a child can read."""
    impl, preload = str(ctx.stage / "katas"), {}
    if not strict:
        ref = run_dir / "ref"
        for other in ctx.modules:
            if other.name != module.name and other.name in ctx.settings.released:
                shutil.copytree(
                    ctx.root / other.solution,
                    ref / other.name,
                    ignore=shutil.ignore_patterns("__pycache__"),
                )
                preload[other.name] = str(ref / other.name)
                impl += f",{other.name}={ref / other.name}"
    return impl, preload
