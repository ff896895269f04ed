"""The child side of the autograder: one pytest run over the grader's tests, around a student's code.

``grading.grade_child`` (the autograder's child runner) starts this file as a script, never imports it::

    python -I -B grading/sandbox.py <config.json>

(on Linux, as a child forked from a server started the same way, ``python -I -B``, that imported
ctypes, numpy, hypothesis and pytest and nothing else; see ``tinytorch/course/forkserver.py``). ``-I``
(isolated mode) ignores ``PYTHONPATH`` and every other ``PYTHON*`` variable, the user's
site-packages (``usercustomize``) and the current folder, so nothing in a submission is imported
before this file runs; ``-B`` writes no bytecode.

It is one file, longer than most, because the child can import nothing that stands beside it: the
checkout is not on its ``sys.path`` when it starts, and of ``grading/`` the kernel boundary and
the audit hook let it read this file alone, so the channel, the boundary, the hook, the snapshot
and the plugin live here together. This file imports only the standard library and pytest, and
does, in order:

1. reads its configuration (written by the grader into the staging folder, readable by root
   only) and deletes it, so the run's secret is only in this process's memory;
2. puts itself behind the kernel boundary the grader chose (:func:`confine`; see
   ``grading/boundary.py``): no new privileges, Landlock (reads only of the interpreter, the
   system folders, the foundation and the stage; writes only to its scratch folder; no TCP; no
   signals to or abstract sockets of processes outside), a process-count limit, and a user of its
   own when the grader is root. If any step fails it runs nothing and says so;
3. runs under the switch (``TINYTORCH_IMPL``, set by the grader in this process's environment):
   the student's folder for the graded module and, in isolation mode, a staged copy of the
   *released* reference of the other modules (the registry's ``[grading] released``), which it
   imports before any student code runs; every other module comes from the student's own code,
   so no unreleased reference is ever in this process;
4. imports what the tests import (numpy, hypothesis, the foundation), with every kata module
   kept out, then arms an audit hook (``sys.addaudithook``; it cannot be removed) that refuses:
   opening files of the grader's checkout (reference solutions, grading files) and of other
   submissions; writing, renaming or deleting anything outside the scratch folder (``/dev/shm``
   and ``/dev/null`` aside); signalling the grader; and, from the student's code (one of its
   frames on the stack), starting processes, loading native code through ``ctypes``, signalling
   other processes and setting the code, defaults or special attributes of functions and classes
   of pytest, numpy, hypothesis, the foundation or the tests. A refused action raises
   ``PermissionError`` where it was tried; what the student's code tried is reported to the
   grader (a patch as tampering, at once);
5. runs pytest with a reporting plugin that streams one JSON line per event (tests collected, a
   test started, a test's outcome, collection errors, tampering) to a pipe the grader reads. Each
   line carries a per-run secret, so a line written by anything else is detected. After the
   collection and after every test the plugin checks that no module-level function or class, and
   no method or property of a class, of the modules loaded before the student's code (pytest,
   numpy, hypothesis, the standard library, the tests) was replaced, added or removed: ordinary
   attribute assignment is invisible to audit hooks, so this comparison is what catches it.

The grader, not this process, decides what a test is worth: it holds the list of tests (collected
from the reference), enforces the per-test timeout and the memory limit, and treats a missing
outcome (the process exited, was killed or hung) as a failure of the test that was running.

Limits, honestly: code that runs inside this process can, with deliberate effort (reaching the
hook's private state or the channel through the garbage collector, compiling code under a
filename the hook trusts), get around every in-process check, including the verdicts this
process reports. That is why they are not what the grade rests on: the kernel boundary (applied
in step 2, before any student code) decides what the process can read, write and signal, and the
answer keys (``grading/answerkey.py``) are judged by the grader from values, so a forged
"passed" earns nothing for a test whose answer-key check fails. The in-process checks remain to
name casual and accidental tampering loudly.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys

# --------------------------------------------------------------------------- the channel


class Channel:
    """JSON lines to the grader on an inherited file descriptor, each carrying the run's secret."""

    def __init__(self, fd: int, nonce: str) -> None:
        self.fd = fd
        self.nonce = nonce

    def send(self, event: str, **data) -> None:
        data.update(ev=event, n=self.nonce)
        line = (json.dumps(data) + "\n").encode("utf-8", "replace")
        view = memoryview(line)
        while view:
            try:
                written = os.write(self.fd, view)
            except InterruptedError:  # pragma: no cover - retried by Python itself since 3.5
                continue
            view = view[written:]


# --------------------------------------------------------------------------- the kernel boundary

# Landlock (linux/landlock.h): syscall numbers (the same on every architecture Linux gives them) and
# the access rights this file handles, by the ABI that introduced them
_LANDLOCK_CREATE, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT = 444, 445, 446
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ABI1 = (1 << 13) - 1  # execute ... make_sym
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_PR_SET_NO_NEW_PRIVS = 38


def confine(boundary: dict) -> None:
    """Put this process behind the kernel boundary the grader chose (grading/boundary.py), before
    any student code runs: its control groups, no new privileges, Landlock (reads limited to
    ``read``, writes to ``write``, no TCP, no signals or abstract sockets outside), the
    process-count limit, then the sandbox user. Raises ``OSError`` if any step fails: the grader
    then runs no student code."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def check(result, what):
        if result < 0:
            error = ctypes.get_errno()
            raise OSError(error, f"{what}: {os.strerror(error)}")
        return result

    for procs in boundary.get("cgroups") or []:  # joined as root, before Landlock; the user cannot leave
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    abi = int(boundary.get("landlock") or 0)
    if abi:
        fs = _FS_ABI1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
        net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
        scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
        attr = (ctypes.c_uint64 * 3)(fs, net, scoped)
        size = 24 if abi >= 6 else 16 if abi >= 4 else 8
        ruleset = check(
            libc.syscall(_LANDLOCK_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)),
            "landlock_create_ruleset",
        )

        class PathBeneath(ctypes.Structure):
            _pack_ = 1
            _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

        file_rights = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
        for rights, paths in (
            (_FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR, boundary["read"]),
            (fs, boundary["write"]),
        ):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # a folder this machine does not have
                try:
                    allowed = rights if os.path.isdir(path) else rights & file_rights
                    rule = PathBeneath(allowed, fd)
                    check(
                        libc.syscall(_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), ctypes.c_uint32(0)),
                        f"landlock_add_rule({path})",
                    )
                finally:
                    os.close(fd)
        check(libc.syscall(_LANDLOCK_RESTRICT, ruleset, ctypes.c_uint32(0)), "landlock_restrict_self")
        os.close(ruleset)
    if boundary.get("uid") is not None:
        import resource

        nproc = int(boundary["nproc"])
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        uid, gid = int(boundary["uid"]), int(boundary["gid"])
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid or os.getgroups():
            raise OSError(f"could not become uid {uid}")


# --------------------------------------------------------------------------- the audit hook

# The hook is compiled from this source with the paths as literal constants and a private copy
# of the builtins, so rebinding a global or a builtin elsewhere does not change what it allows.
_HOOK_SOURCE = r"""
def make(os_write, realpath, fspath, getpid, getpgrp, getframe, O_WRITE):
    DENY = __DENY__
    ALLOW = __ALLOW__
    WRITABLE = __WRITABLE__
    STUDENT = __STUDENT__
    TRUSTED = __TRUSTED__
    PREFIX = __PREFIX__
    PARENTS = __PARENTS__  # the process that started this one, and the grader
    SUFFIX = b'"}\n'
    PROCESS = frozenset(("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                         "subprocess.Popen", "os.startfile", "ctypes.dlopen", "ctypes.dlsym",
                         "ctypes.dlsym/handle", "ctypes.cdata", "ctypes.call_function"))
    PATHS = frozenset(("os.remove", "os.rename", "os.rmdir", "os.truncate", "os.chmod", "os.chown",
                       "os.link", "os.symlink", "os.mkdir", "os.utime", "os.chflags", "os.lchflags",
                       "os.setxattr", "os.removexattr", "os.lchmod", "os.lchown"))
    state = [False]  # armed: set once the reference is loaded and pytest starts

    def under(path, prefixes):
        best = -1
        for prefix in prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                best = max(best, len(prefix))
        return best

    def resolve(path):
        if isinstance(path, int) or path is None:
            return None
        try:
            path = fspath(path)
            if isinstance(path, bytes):
                path = path.decode("utf-8", "surrogateescape")
            return realpath(path)
        except Exception:
            return None

    def student_on_stack():
        # The student's code is to blame when one of its frames is on the stack, unless an import
        # (a library initialising itself, numpy.ma setting __module__ say) sits in between.
        frame = getframe(2)
        depth = 0
        while frame is not None and depth < 200:
            name = frame.f_code.co_filename
            for prefix in STUDENT:
                if name.startswith(prefix):
                    return True
            if name.startswith("<frozen importlib"):
                return False
            frame = frame.f_back
            depth += 1
        return False

    def report(kind, text):
        text = "".join(c if " " <= c <= "~" or c > "\x9f" else " " for c in text)
        text = text.replace("\\", "/").replace('"', "'")[:300]
        os_write(__FD__, PREFIX + kind.encode() + b'", "text": "' + text.encode("utf-8", "replace") + SUFFIX)

    def refuse(kind, text):
        # what the student's code tried is reported; the same refusal met by a library on its
        # own (importlib.metadata scanning every folder, say) is only raised
        if kind != "refused" or student_on_stack():
            report(kind, text)
        raise PermissionError("grading sandbox: " + text)

    def hook(event, args):
        if not state[0]:
            return
        if event == "open":
            path = resolve(args[0])
            if path is None:
                return
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(flags & O_WRITE)
            if writing and under(path, WRITABLE) < 0:
                refuse("refused", "writing " + path + " (only the scratch folder is writable)")
            if under(path, DENY) > under(path, ALLOW):
                refuse("refused", "reading " + path + " (the grader's files are not readable)")
            return
        if event in PATHS:
            for arg in args[:2]:
                path = resolve(arg) if isinstance(arg, (str, bytes)) or hasattr(arg, "__fspath__") else None
                if path is not None and under(path, WRITABLE) < 0:
                    refuse("refused", event + " " + path + " (only the scratch folder may change)")
            return
        if event in PROCESS:
            # a test may start processes (multiprocessing with fork keeps this hook); the
            # student's code may not
            if student_on_stack():
                refuse("refused", event + " (starting processes or loading native code is not allowed)")
            return
        if event == "os.kill":
            # the grader never; a process a test started (multiprocessing's terminate) may be
            if args[0] in PARENTS or (args[0] != getpid() and student_on_stack()):
                refuse("refused", "os.kill of another process")
            return
        if event == "os.killpg":
            if args[0] != getpgrp():
                refuse("refused", "os.killpg of another process group")
            return
        if event == "object.__setattr__" or event == "object.__delattr__":
            target = args[0]
            owner = getattr(target, "__module__", None) or ""
            if not isinstance(owner, str) or owner.startswith("tinytorch.perf"):
                return
            trusted = False
            for prefix in TRUSTED:
                if owner == prefix or owner.startswith(prefix + "."):
                    trusted = True
            if trusted and student_on_stack():
                name = getattr(target, "__qualname__", None) or getattr(target, "__name__", "?")
                refuse("tamper", "the submission patched " + owner + "." + str(name) + "." + str(args[1]))

    return hook, state
"""


def install_hook(config: dict, channel: Channel):
    """Compile and install the audit hook; returns its ``state`` list (``state[0] = True`` arms it)."""
    prefix = '{"ev": "'
    source = (
        _HOOK_SOURCE.replace("__DENY__", repr(tuple(config["deny"])))
        .replace("__ALLOW__", repr(tuple(config["allow"])))
        .replace("__WRITABLE__", repr(tuple(config["writable"])))
        .replace("__STUDENT__", repr(tuple(config["student"])))
        .replace("__TRUSTED__", repr(tuple(config["trusted"])))
        .replace("__FD__", repr(channel.fd))
        .replace("__PARENTS__", repr((os.getppid(), config.get("grader", os.getppid()))))
        .replace("__PREFIX__", repr((f'{{"n": "{channel.nonce}", ' + prefix[1:]).encode()))
    )
    import builtins

    namespace = {"__builtins__": dict(vars(builtins))}
    exec(compile(source, "<grading sandbox hook>", "exec"), namespace)
    o_write = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    hook, state = namespace["make"](
        os.write, os.path.realpath, os.fspath, os.getpid, os.getpgrp, sys._getframe, o_write
    )
    sys.addaudithook(hook)
    return state


# --------------------------------------------------------------------------- snapshot of trusted modules


def _trusted_module(name: str, module, student: tuple[str, ...]) -> bool:
    if name in ("__main__", "sys", "warnings", "builtins") or name.startswith("tinytorch.perf."):
        return False
    path = getattr(module, "__file__", None) or ""
    return not any(path.startswith(p) for p in student)


def snapshot(student: tuple[str, ...]) -> tuple[list, list]:
    """Every module-level function and class of the trusted modules loaded now, and the methods
    and properties of their (Python) classes; plus each such class's number of attributes, so an
    attribute added to a class (a ``failed`` property on pytest's ``TestReport``) shows too."""
    entries, sizes = [], []
    heap = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python (built-in types are read-only)
    for name, module in list(sys.modules.items()):
        if module is None or not _trusted_module(name, module, student):
            continue
        try:
            namespace = vars(module)
            items = list(namespace.items())
        except TypeError:
            continue
        for key, value in items:
            if key.startswith("__") or not callable(value):
                continue
            entries.append((name, namespace, key, value))
            own = getattr(value, "__module__", None) == name
            if isinstance(value, type) and value.__flags__ & heap and own:
                members = value.__dict__
                sizes.append((f"{name}.{key}", members, _public(members), frozenset(members)))
                for attr, member in list(members.items()):
                    if not attr.startswith("__") and (callable(member) or hasattr(member, "__get__")):
                        entries.append((f"{name}.{key}", members, attr, member))
    return entries, sizes


def _public(members) -> int:
    return sum(not key.startswith("_") for key in members)


def changed(snap) -> str:
    entries, sizes = snap
    for name, namespace, key, value in entries:
        if namespace.get(key) is not value:
            return f"{name}.{key} was replaced"
    for name, members, size, keys in sizes:
        # the same keys (compared in C): nothing added or removed; else count the public ones (a
        # private cache a library fills in is not a change)
        if members.keys() != keys and _public(members) != size:
            return f"{name} gained or lost an attribute"
    return ""


# --------------------------------------------------------------------------- the pytest plugin


_CO_NEWLOCALS = 0x2  # the code of a function (not of a module or a class body)


class Tracer:
    """Which functions of the kata code (files under ``prefix``) a test calls: a global trace
    function that sees only calls (it returns ``None``, so no line events). Used in the grader's
    own runs on the reference, never around student code."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.units: set[str] = set()

    def __call__(self, frame, event, arg):
        code = frame.f_code
        # functions only (a module's or a class's body runs once, at import, in whichever test
        # imports it first), named by their outermost function (a comprehension or closure inside
        # runs or not depending on the data)
        # (a comprehension or lambda at a module's top level runs at import, like the module)
        name = code.co_qualname.split(".<locals>")[0]
        function = code.co_flags & _CO_NEWLOCALS and not name.startswith("<")
        if function and code.co_filename.startswith(self.prefix):
            self.units.add(code.co_filename[len(self.prefix) :] + ":" + name)


class Reporter:
    """Streams collection and test outcomes to the grader (a pytest plugin object)."""

    def __init__(self, channel: Channel, config: dict, tracer: Tracer | None = None) -> None:
        self.channel = channel
        self.config = config
        self.reports: dict[str, list] = {}
        self.entries: tuple = ([], [])
        self.tampered = False
        self.tracer = tracer

    def pytest_sessionstart(self, session):
        self.entries = snapshot(tuple(self.config["student"]))

    def pytest_collectreport(self, report):
        if report.failed:
            self.channel.send("collect_error", nodeid=report.nodeid, text=_text(report.longrepr))

    def pytest_collection_finish(self, session):
        self.channel.send("collected", ids=[item.nodeid for item in session.items])
        self._check("while the tests were being collected")
        # the test modules (imported during the collection) are watched from now on too
        known = {entry[0].split(".")[0] for entry in self.entries[0]}
        entries, sizes = snapshot(tuple(self.config["student"]))
        self.entries[0].extend(e for e in entries if e[0].split(".")[0] not in known)
        self.entries[1].extend(e for e in sizes if e[0].split(".")[0] not in known)

    def pytest_runtest_logstart(self, nodeid, location):
        self.reports[nodeid] = []
        if self.tracer:
            self.tracer.units = set()
        self.channel.send("start", nodeid=nodeid)

    def pytest_runtest_logreport(self, report):
        self.reports.setdefault(report.nodeid, []).append(report)

    def pytest_runtest_logfinish(self, nodeid, location):
        outcome, text = "passed", ""
        for report in self.reports.pop(nodeid, []):
            if report.failed:
                if outcome != "failed":
                    outcome, text = "failed", _text(report.longrepr)
            elif report.skipped and outcome == "passed":
                outcome, text = "skipped", _text(report.longrepr)
        if self.tracer:
            self.channel.send("units", nodeid=nodeid, units=sorted(self.tracer.units))
        self.channel.send("result", nodeid=nodeid, outcome=outcome, text=text)
        self._check(f"during {nodeid}")

    def pytest_internalerror(self, excrepr, excinfo):
        # e.g. sys.exit() while a test module imports the student's code
        self.channel.send("fatal", text=f"{excinfo.typename}: {excinfo.value}")

    def pytest_sessionfinish(self, session, exitstatus):
        self._check("at the end of the run")
        self.channel.send("done", status=int(exitstatus))

    def _check(self, when: str) -> None:
        if self.tampered:
            return
        name = changed(self.entries)
        if name:
            self.tampered = True
            self.channel.send("tamper", text=f"{name} {when}")


def _text(longrepr, limit: int = 6000) -> str:
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return str(longrepr[2])
    text = str(longrepr)
    return text if len(text) <= limit else text[: limit // 2] + "\n...\n" + text[-limit // 2 :]


# --------------------------------------------------------------------------- preloading the reference


class _Refuse:
    """A meta path finder that keeps the graded module out while the reference is preloaded."""

    def __init__(self, fullname: str, itself: bool = True) -> None:
        self.fullname = fullname
        self.itself = itself  # refuse the package itself too, not only what is inside it

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(self.fullname + ".") or (self.itself and fullname == self.fullname):
            raise ImportError(f"{fullname} is the graded module")
        return None


def preload(config: dict, channel: Channel) -> None:
    """Import every other module's staged (released) reference before any student code runs."""
    guard = _Refuse("tinytorch.perf." + config["module"]) if config.get("module") else None
    if guard:
        sys.meta_path.insert(0, guard)
    try:
        for name, folder in config["preload"].items():
            try:
                importlib.import_module("tinytorch.perf." + name)
                for root, _dirs, files in os.walk(folder):
                    for file in sorted(files):
                        if file.endswith(".py") and file != "__init__.py":
                            relative = os.path.relpath(os.path.join(root, file), folder)
                            dotted = relative[:-3].replace(os.sep, ".").removesuffix(".__init__")
                            importlib.import_module(f"tinytorch.perf.{name}.{dotted}")
            except Exception as error:  # noqa: BLE001 - a reference that needs the graded module
                # cannot be loaded without running the student's code first: it is left out
                # (deleted below, never readable), and importing it later fails.
                for key in [
                    k
                    for k in sys.modules
                    if k == f"tinytorch.perf.{name}" or k.startswith(f"tinytorch.perf.{name}.")
                ]:
                    del sys.modules[key]
                if not isinstance(error, ImportError) or "is the graded module" not in str(error):
                    channel.send("note", text=f"reference {name} not loaded: {type(error).__name__}: {error}")
    finally:
        if guard:
            sys.meta_path.remove(guard)


# --------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as f:
        config = json.load(f)
    os.remove(argv[0])
    channel = Channel(config["fd"], config.pop("nonce"))
    if config.get("boundary"):
        try:
            confine(config["boundary"])
        except Exception as error:  # noqa: BLE001 - no student code runs outside the boundary
            channel.send("boundary", text=f"{type(error).__name__}: {error}")
            os._exit(4)
    os.chdir(config["scratch"])
    if importlib.util.find_spec("tinytorch") is None:  # the grader's tinytorch is not installed
        sys.path.extend(p for p in config.get("syspath", []) if p not in sys.path)
    state = install_hook(config, channel)
    if config.get("preload"):
        preload(config, channel)
    import pytest

    # What the tests import (numpy, hypothesis, the foundation, ...) is loaded before the hook is
    # armed: numpy loads native code through ctypes, which the armed hook refuses.
    # No kata module may load now (its code would run before the hook is armed): a foundation
    # module that imports one is left for pytest to import later.
    guard = _Refuse("tinytorch.perf", itself=False)
    sys.meta_path.insert(0, guard)
    for name in ["ctypes", "numpy", "numpy.testing", "hypothesis", *config.get("preimport", [])]:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a helper the tests import may be missing; pytest says so
            pass
    sys.meta_path.remove(guard)
    state[0] = True
    tracer = None
    if config.get("trace"):  # the grader's own run on the reference: which functions each test calls
        import threading

        tracer = Tracer(config["trace"])
        sys.settrace(tracer)
        threading.settrace(tracer)
    reporter = Reporter(channel, config, tracer)
    try:
        status = pytest.main(config["args"], plugins=[reporter])
    except BaseException as error:  # noqa: BLE001 - SystemExit or worse from the code under test
        channel.send("fatal", text=f"{type(error).__name__}: {error}")
        os._exit(3)
    channel.send("exit", status=int(status))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # nothing the submission registered (atexit, finalizers) runs after the report


if __name__ == "__main__":
    main(sys.argv[1:])
