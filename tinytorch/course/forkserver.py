"""Start Python children without paying for their imports each time: fork them from a warm server.

A fresh ``python -m pytest`` spends a third of a second or more (measured below) importing
pytest, numpy and hypothesis before it runs a single test, and the runner (``tinytorch test``,
``watch``) and the autograder start one such process per module, every run. A
:class:`ForkServer` is a helper process that
imports those libraries once and then, on request, forks a child that behaves like a new
interpreter started with the request's command line: its own arguments (``-m module`` or a
script), environment, working folder, file descriptors, session and resource limits. The child
is as isolated from the parent as a subprocess is: it is a new process that runs nothing of the
parent and shares nothing with other children; only libraries that read nothing from the request
(the ``preload`` list; never a kata module or anything that reads ``TINYTORCH_*``) are shared,
already imported.

The parent drives a child through :class:`Child`, the part of ``subprocess.Popen`` the runner and
the autograder use (``pid``, ``poll``, ``wait``, ``send_signal``, ``kill``, ``returncode``). The
child is the server's child, not the parent's, so the server reaps it and sends its exit status.

What a child does not get from its request, because Python reads it when it starts: the
interpreter flags (the server's ``-I``/``-B`` are fixed when it starts) and the variables read at
startup (``PYTHONHASHSEED``, ``PYTHONWARNINGS``, ``OPENBLAS_NUM_THREADS`` for the preloaded
numpy); ``PYTHONPATH`` is applied to ``sys.path`` as Python would. ``random`` is reseeded in
every child (Python does that after a fork), and Hypothesis's storage folder (chosen from the
working folder when it is imported) is chosen again from the child's. A child ends as Python
does: it waits for its non-daemon threads, runs ``atexit``, and an uncaught Ctrl-C ends it by
SIGINT.

The server reaps a child as soon as it exits, so a ``killpg`` of a child's group after that
reaches its leftover processes while any remain (Linux keeps a group's id from being reused while
the group has members) and, once none remain, a group id the kernel would only hand out again
after its process ids wrapped around.

Linux only (fork and fd passing over a ``SOCK_SEQPACKET`` socket): elsewhere, or with
``TINYTORCH_FORKSERVER=0``, :func:`available` is false, and the callers start ordinary
subprocesses, as they do when :meth:`ForkServer.spawn` raises :class:`ForkServerError` (the
server could not start, fork or answer).

Why a server of its own. ``multiprocessing.get_context("forkserver")`` with
``set_forkserver_preload`` was tried in its place, its target doing in the child what
:func:`_child` does (``setsid``, ``setrlimit``, descriptors sent as ``reduction.DupFd`` and
``dup2``-ed to their numbers, ``os.environ``, ``chdir``, ``runpy``). It forks the runner's pytest
children as fast (their first test after 0.105 s, against 0.099 s from this server and 0.32 s as
a subprocess), but it cannot give the callers:

* a server per caller, started its own way: ``set_forkserver_preload`` sets the preload list of
  the process's one server, which starts with the parent's interpreter flags and environment.
  The grader's sandbox server is ``python -I -B`` with ``_SANDBOX_ENV`` only, beside the runner's
  and the gallery's (other preloads, ``forget``, quiet BLAS) in one process. A child of
  ``python -m grading`` would have ``sys.flags.isolated == 0`` and, in ``/proc/self/environ``
  (the first environment, which a fork copies and ``os.environ.clear()`` leaves in place), the
  grader's whole environment, any token in it, for the student's code to read;
* a child that runs nothing of its parent: each child first runs ``spawn.prepare`` (the parent's
  ``sys.path``, ``argv`` and folder, and the parent's main script imported again as
  ``__mp_main__``: for the ``tinytorch`` console script the whole machinery, under the parent's
  environment; a script without the ``__main__`` guard fails in every child), and unpickling the
  target imports its package (the foundation) in the sandbox before the child is confined;
* only the descriptors asked for: the child also holds five of multiprocessing's (pipes to the
  server, the parent and the resource tracker; ``/dev/null`` twice);
* Python's ending and the CPU time: the target runs in ``Process._bootstrap``, which ends with
  ``os._exit`` (no ``atexit``; an uncaught Ctrl-C exits 1, not by SIGINT), and the server reaps
  with ``waitpid`` and sends the status only, so a child's CPU seconds (the gallery's
  ``cpu_seconds``; the server's children never count in the parent's ``RUSAGE_CHILDREN``) are lost;
* children that end with their server: there they run on, and the parent reads exit code 255;
* a channel no one else holds: multiprocessing's server listens on a named Unix socket that any
  process of the same user may connect to and have it unpickle, that is run, a request outside
  the sandbox; under a grader that is not root (Landlock only, whose rights the grader applies do
  not cover ``connect()`` by path) a student's child finds its name in ``/proc/net/unix``. This
  server's one channel is a socket pair that only the parent holds.

pytest-xdist fits less: its workers are new interpreters (execnet's ``python -c``) that import
pytest, numpy and hypothesis themselves, so nothing is saved; a worker runs tests of many files
in the session's one environment and folder (``--tx popen//env:NAME=VALUE//chdir=DIR`` is set per
worker, not per module); it is not a process group of its own to kill on a timeout or Ctrl-C; and
the runner gives each module's tests a new process of their own (and the tests a crash left
another), which a worker reused across modules would not.

The saving: collecting ``tests/test_caching.py`` takes 0.49 s as a subprocess and 0.20 s forked
from this server, a three-test file runs to its end in 0.47 s against 0.12 s (multiprocessing's
forkserver: 0.19 s); medians of 20 interleaved runs after one that starts the server (which costs
as much as a subprocess), ``OPENBLAS_NUM_THREADS=1``, 2 cores under a load of about 3. Measured,
from the repository's root, by::

    OPENBLAS_NUM_THREADS=1 python - <<'END'
    import os, statistics, subprocess, sys, time
    from tinytorch.course import forkserver, runner
    server, env = forkserver.ForkServer(runner.PRELOAD), runner.pytest_env("solutions")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
               "tests/test_caching.py"]
    null, seconds = os.open(os.devnull, os.O_WRONLY), {"subprocess": [], "forked": []}
    for _ in range(21):
        for way, times in seconds.items():
            began = time.perf_counter()
            if way == "forked":
                server.start(command, env=env, cwd=os.getcwd(), output=null, new_session=True).wait()
            else:
                subprocess.run(command, env=env, stdout=null, stderr=null, start_new_session=True)
            times.append(time.perf_counter() - began)
    print({way: f"{statistics.median(t[1:]):.3f} s" for way, t in seconds.items()})
    END

Run as a script (``python forkserver.py --serve FD FORGET_JSON MODULE...``) this file is the
server; it imports only the standard library before the preload list, so it can run in isolated
mode. It is one file, longer than most, because its halves are the two ends of one protocol (the
request the parent sends, the fork the server makes of it) and change together.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from pathlib import Path

ENV = "TINYTORCH_FORKSERVER"
_MESSAGE = 1 << 20  # the largest request (its command line and environment), in bytes
_MAX_FDS = 16
_ANSWER_WITHIN = 60.0  # seconds for the server to start (its imports) and fork a child


def available() -> bool:
    """Whether children can be forked from a server here (Linux, not turned off by ``ENV=0``)."""
    return (
        sys.platform.startswith("linux")
        and hasattr(socket, "send_fds")
        and os.environ.get(ENV, "1").strip() not in ("0", "no", "false", "off")
    )


class ForkServerError(RuntimeError):
    """The server is not running (it could not start, or it died): start a subprocess instead."""


class Child:
    """A process forked by the server: the part of ``subprocess.Popen`` the callers use."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.pid = 0
        self.returncode: int | None = None
        self.cpu = 0.0  # user + system CPU seconds, known once it has exited
        self._started = threading.Event()
        self._done = threading.Event()
        self._abandoned = False
        self.error = ""  # why the server could not fork it

    def poll(self) -> int | None:
        return self.returncode if self._done.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, sig: int) -> None:
        if self.pid and not self._done.is_set():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _finish(self, returncode: int, cpu: float = 0.0) -> None:
        self.returncode, self.cpu = returncode, cpu
        self._started.set()
        self._done.set()


class ForkServer:
    """One server process, started on first use and shared by this process's threads.

    ``preload``: modules the server imports once: nothing that depends on what a request sets
    (``TINYTORCH_IMPL``, the working folder), i.e. libraries and the foundation. ``forget``:
    prefixes of modules the preload imported that each child must import itself (the kata
    modules, ``tinytorch.perf.``). ``isolated``: start the server (so every child) with
    ``python -I -B``. ``env``: the server's own environment (default: this process's, without
    ``PYTHONPATH``; each child gets its own).
    """

    def __init__(
        self,
        preload: tuple[str, ...],
        isolated: bool = False,
        env: dict[str, str] | None = None,
        forget: tuple[str, ...] = (),
    ):
        self.preload = preload
        self.forget = forget
        self.isolated = isolated
        self.env = env
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen | None = None
        self._children: dict[int, Child] = {}
        self._next = 0

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ if self.env is None else self.env)
        env.pop("PYTHONPATH", None)  # each child puts its own PYTHONPATH on sys.path
        flags = ["-I", "-B"] if self.isolated else []
        try:
            self._process = subprocess.Popen(
                [sys.executable, *flags, __file__, "--serve", str(theirs.fileno()), json.dumps(self.forget)]
                + list(self.preload),
                env=env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # Ctrl-C in a terminal reaches the parent, not the server
            )
        except OSError as error:
            ours.close()
            raise ForkServerError(f"the fork server could not start: {error}") from error
        finally:
            theirs.close()
        reader = threading.Thread(
            target=self._read, args=(ours, self._process), daemon=True, name="tinytorch-forkserver"
        )
        reader.start()
        return ours

    def _read(self, sock: socket.socket, process: subprocess.Popen) -> None:
        while True:
            try:
                data = sock.recv(_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            with self._lock:
                child = self._children.get(message["id"])
            if child is None:
                continue
            if "error" in message:  # the server could not fork it
                with self._lock:
                    self._children.pop(message["id"], None)
                child.error = message["error"]
                child._started.set()
                continue
            if "pid" in message:
                with self._lock:
                    child.pid = message["pid"]
                    abandoned = child._abandoned
                child._started.set()
                if abandoned:  # the caller gave up waiting and started a subprocess
                    child.kill()
            if "exit" in message:
                with self._lock:
                    self._children.pop(message["id"], None)
                child._finish(message["exit"], message.get("cpu", 0.0))
        # The server is gone: nobody will reap the children it forked; kill them and their groups.
        with self._lock:
            if self._sock is sock:
                self._sock = None
            orphans, self._children = list(self._children.values()), {}
        for child in orphans:
            if child.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.kill()
            child._finish(-signal.SIGKILL)
        with contextlib.suppress(OSError):
            sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)  # reap it

    def spawn(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: str | os.PathLike,
        fds: dict[int, int] | None = None,
        new_session: bool = False,
        limits: dict[str, tuple[int, int]] | None = None,
    ) -> Child:
        """Fork a child that runs ``python <args>`` (``["-m", module, ...]`` or ``[script, ...]``).

        ``fds`` maps each file descriptor the child gets (0, 1, 2 and any other number) to this
        process's descriptor it is a copy of; every other descriptor is closed in the child.
        ``new_session``: the child leads a new session and process group (else it is in the
        server's, not this process's). ``limits`` maps ``resource.RLIMIT_*`` names to (soft, hard). Raises
        :class:`ForkServerError` if the server is not running (the caller starts a subprocess).
        """
        fds = dict(fds or {})
        child = Child(list(args))
        request = {
            "args": list(args),
            "env": dict(env),
            "cwd": os.fspath(cwd),
            "targets": list(fds),
            "session": new_session,
            "limits": limits or {},
        }
        with self._lock:
            if self._sock is None:
                self._sock = self._start()
            self._next += 1
            request["id"] = self._next
            self._children[self._next] = child
            try:
                socket.send_fds(self._sock, [json.dumps(request).encode()], list(fds.values()))
            except OSError as error:
                self._children.pop(self._next, None)
                raise ForkServerError(f"the fork server is not answering: {error}") from error
        if not child._started.wait(_ANSWER_WITHIN):
            with self._lock:
                child._abandoned = True  # should its pid come later, the reader kills it
                process = self._process if self._sock is not None else None
            child.kill()  # its pid came just now
            if process is not None:  # a server that does not answer is retired; the next starts anew
                process.kill()
            raise ForkServerError(f"the fork server did not answer within {_ANSWER_WITHIN:g} s")
        if not child.pid:  # the server could not fork, or died first
            raise ForkServerError(child.error or "the fork server stopped before it started the process")
        return child

    def start(
        self,
        command: list[str],
        *,
        env: dict[str, str],
        cwd: str | os.PathLike,
        output: int,
        pass_fds: tuple[int, ...] = (),
        new_session: bool = False,
        limits: dict[str, tuple[int, int]] | None = None,
    ) -> subprocess.Popen | Child:
        """``command`` (``[python, *flags, *args]``) with stdin from /dev/null and stdout and stderr
        to the descriptor ``output``: forked from this server when ``command`` is this interpreter
        with the server's flags and the server runs, else started as a subprocess (off Linux, with
        ``TINYTORCH_FORKSERVER=0``, or when :meth:`spawn` fails). Either way ``pass_fds`` keep
        their numbers, ``new_session`` and ``limits`` are as in :meth:`spawn`.
        """
        flags = ["-I", "-B"] if self.isolated else []
        args = command[1 + len(flags) :]
        if command[0] == sys.executable and command[1 : 1 + len(flags)] == flags and available():
            null = os.open(os.devnull, os.O_RDONLY)
            try:
                fds = {0: null, 1: output, 2: output, **{fd: fd for fd in pass_fds}}
                return self.spawn(args, env=env, cwd=cwd, fds=fds, new_session=new_session, limits=limits)
            except ForkServerError:
                pass
            finally:
                os.close(null)

        def apply_limits() -> None:  # in the child, between fork and exec
            import resource

            for name, pair in (limits or {}).items():
                resource.setrlimit(getattr(resource, name), pair)

        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            start_new_session=new_session,
            preexec_fn=apply_limits if limits else None,
        )


# --------------------------------------------------------------------------- the server side
# Everything below runs in the server and in its children, which coverage does not follow (no
# pytest-cov in a forked child); tests/machinery/test_forkserver.py tests it through what the
# children do.


def _serve(fd: int, preload: list[str], forget: list[str]) -> None:  # pragma: no cover - server
    """The server's loop: fork a child per request; report each child's pid, then its exit."""
    if not sys.flags.isolated and sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(__file__):
        del sys.path[0]  # the script's own folder (tinytorch/) is not a place to import from
    base_path = list(sys.path)
    for name in preload:
        with contextlib.suppress(Exception):
            __import__(name)
    for name in [n for n in sys.modules if n.startswith(tuple(forget))]:
        del sys.modules[name]  # e.g. a kata module a preloaded module imported: not to be shared
    # What is loaded now is shared by every child: out of the garbage collector's sight, a child's
    # collections neither walk it nor copy its pages (the gc module's advice for fork servers)
    import gc

    gc.collect()
    gc.freeze()
    sock = socket.socket(fileno=fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a child's exit wakes select() below
    children: dict[int, int] = {}  # pid -> request id
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        while children:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                break
            key = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            _send(sock, {"id": key, "exit": code, "cpu": usage.ru_utime + usage.ru_stime})
        if sock in ready:
            data, received, _, _ = socket.recv_fds(sock, _MESSAGE, _MAX_FDS)
            if not data:  # the parent is gone; its children are on their own, like subprocesses
                return
            request = json.loads(data)
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                pid = os.fork()
            except OSError as error:  # a process limit, no memory: this request fails, not the server
                for received_fd in received:
                    os.close(received_fd)
                _send(sock, {"id": request["id"], "error": f"fork failed: {error}"})
                continue
            if pid == 0:
                for own in (sock.fileno(), wake_r, wake_w):
                    os.close(own)
                _child(request, received, base_path)  # never returns
            for received_fd in received:
                os.close(received_fd)
            children[pid] = request["id"]
            _send(sock, {"id": request["id"], "pid": pid})


def _send(sock: socket.socket, message: dict) -> None:  # pragma: no cover - server
    with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
        sock.send(json.dumps(message).encode())


def _child(request: dict, received: list[int], base_path: list[str]) -> None:  # pragma: no cover - server
    """In the forked child: become ``python <args>`` as the request describes it; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if request["session"]:
            os.setsid()
        if request["limits"]:
            import resource

            for name, (soft, hard) in request["limits"].items():
                resource.setrlimit(getattr(resource, name), (soft, hard))
        _arrange_fds(request["targets"], received)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        _follow_the_working_folder()
        args = request["args"]
        if args[0] == "-m":
            first, run = os.getcwd(), ("module", args[1])
            sys.argv = [args[1], *args[2:]]  # runpy puts the module's file in sys.argv[0]
        else:
            first, run = os.path.dirname(os.path.abspath(args[0])), ("path", args[0])
            sys.argv = list(args)
        if sys.flags.isolated:  # -I: neither the script's folder nor PYTHONPATH
            sys.path[:] = base_path
        else:
            extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
            sys.path[:] = [first, *extra, *base_path]
        import runpy

        if run[0] == "module":
            runpy.run_module(run[1], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(run[1], run_name="__main__")
        code = 0
    except SystemExit as done:
        code = _exit_code(done.code)
    except KeyboardInterrupt:  # Python prints it, then ends by SIGINT (exit code -2)
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:  # noqa: BLE001 - an uncaught exception ends Python with 1, after its traceback
        traceback.print_exc()
        code = 1
    finally:
        import atexit

        with contextlib.suppress(BaseException):
            threading._shutdown()  # as Python ends: wait for the non-daemon threads, then atexit
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        if code < 0:
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code & 0xFF)


def _follow_the_working_folder() -> None:  # pragma: no cover - server
    """What a library preloaded in the server computed from the server's working folder ("/") at
    import, computed again from the child's: Hypothesis's storage folder (``./.hypothesis``)."""
    configuration = sys.modules.get("hypothesis.configuration")
    if configuration is not None:
        configuration.__dict__["__hypothesis_home_directory_default"] = Path.cwd() / ".hypothesis"
        configuration.__dict__["__hypothesis_home_directory"] = None


def _exit_code(value: object) -> int:
    """The exit status Python gives ``sys.exit(value)``."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _arrange_fds(targets: list[int], received: list[int]) -> None:  # pragma: no cover - server
    """Put each received descriptor at its target number; close every other one but 0, 1 and 2."""
    import fcntl

    top = max([*targets, *received, 2]) + 1  # park the received ones above every target first
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, top) for fd in received]
    for target, fd in zip(targets, parked, strict=True):
        os.dup2(fd, target, inheritable=True)
    keep = {0, 1, 2, *targets}
    for fd in _open_fds():
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _open_fds() -> list[int]:  # pragma: no cover - server
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # Linux always has /proc
        return list(range(3, 1024))


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:  # pragma: no cover - the server
    _serve(int(sys.argv[2]), sys.argv[4:], json.loads(sys.argv[3]))
