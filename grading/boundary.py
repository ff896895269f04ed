"""The kernel boundary around a student's code: a user of its own, Landlock, limits, and a clean-up.

What the kernel enforces is what a student who has read this code cannot get around, so the
grader leans on it wherever the machine allows, and says in ``results.json`` which boundary held:

* **A user of its own** (the grader runs as root, as Gradescope and CI containers do): every
  process that runs student code switches, before any student code runs, to a dedicated
  unprivileged uid and gid (numeric: no account is needed; ``[grading] sandbox_user`` names one,
  default ``auto``, the first free uid from :data:`FIRST_UID` that no account uses and no other
  grading holds). That user owns only its scratch folder; the staged submission and tests are
  readable to it and owned by root; other submissions' stages, the results path and the checkout
  are not writable by it; it cannot signal, trace or read the memory of the grader; a
  process-count limit (``RLIMIT_NPROC``, ``[grading] max_processes``) bounds a fork bomb. After
  every child the grader kills **every process of that uid** (a helper that becomes the user and
  calls ``kill(-1, SIGKILL)`` until none is left, so ``setsid`` + ``fork`` escapes nothing) and
  removes what the user left in the shared temporary folders; only then are its files read and
  results written.
* **Landlock** (Linux 5.13+, no privilege needed, so it holds for a grader that is not root too):
  the child may read only the interpreter, its libraries, the system folders, the foundation
  package and the submission's stage, and write only its scratch folder (plus ``/dev/null`` and
  ``/dev/shm``); no TCP (ABI 4+); no signals to, and no abstract sockets of, processes outside it
  (ABI 6+). This is what keeps the reference, the checkout's history, other students' work and
  the results path out of reach by *any* route (``openat`` relative to a directory descriptor
  included), without changing a file's mode.
* **Where Landlock is missing**, as root, the grader makes the checkout's instructor-only folders
  (``solutions/``, ``grading/``, ``.git/``) and the folders it was told to deny (a batch's class
  folder and gradebook) unreadable to other users (``chmod go-rwx``) and says so.

The interpreter must be readable by the sandbox user. Where Python lives under a folder it cannot
enter (a root-only home folder, as pyenv installs do), the grader adds search permission
(``o+x``, never read or list) to the folders on the way and says so; under Landlock that exposes
nothing else. If the user still cannot start Python, the user boundary is reported unavailable,
never silently skipped.

Not enforced here, and why (see the README's threat model): CPU time and memory are per-process
limits (``RLIMIT_CPU``, ``RLIMIT_AS``) plus the grader's wall-clock budget, not a cgroup; a
grader that is not root has no user to switch to, so a process that escapes its session outlives
the module (a container per submission closes that).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FIRST_UID = 61000  # "auto": uids from here (no account uses them on a usual system), one per grading
POOL = 256
SHARED_TEMP = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue")
SYSTEM_READ = (
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/bin",
    "/sbin",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
)
SYSTEM_WRITE = ("/dev/null", "/dev/shm")
# of the checkout: the reference, the grader, history, the plan with the seed and reference values
SECRET_DIRS = ("solutions", "grading", ".git", ".grading-cache")


@dataclass
class Boundary:
    """What separates one submission's processes from everything else."""

    uid: int | None = None  # the sandbox user (None: the grader's own user)
    gid: int | None = None
    landlock: int = 0  # the Landlock ABI the children apply (0: none)
    max_processes: int = 256
    cgroups: list[str] = field(default_factory=list)  # control groups the children join (memory, pids)
    notes: list[str] = field(default_factory=list)  # what was changed on the machine, and why
    missing: list[str] = field(default_factory=list)  # what is not enforced, and why
    _lock: int | None = None

    @property
    def kind(self) -> str:
        parts = (["user"] if self.uid is not None else []) + (["landlock"] if self.landlock else [])
        parts += ["cgroup"] if self.cgroups else []
        return "+".join(parts) or "none"

    def describe(self) -> str:
        what = []
        if self.uid is not None:
            what.append(f"a user of its own (uid {self.uid}, at most {self.max_processes} processes)")
        if self.landlock:
            what.append(
                f"Landlock ABI {self.landlock} (reads limited to the interpreter and the stage, writes "
                "to its scratch folder)"
            )
        text = "kernel boundary: " + (" and ".join(what) if what else "none")
        return text + "".join(f"; not enforced: {m}" for m in self.missing)

    def child_config(self, read: list[str], write: list[str]) -> dict:
        """The part of a sandbox child's configuration that confines it (grading/sandbox.py)."""
        return {
            "uid": self.uid,
            "gid": self.gid,
            "nproc": self.max_processes if self.uid is not None else None,
            "landlock": self.landlock,
            "read": sorted(set(read)),
            "write": sorted(set(write)),
            "cgroups": [os.path.join(group, "cgroup.procs") for group in self.cgroups],
        }

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "uid": self.uid,
            "landlock_abi": self.landlock,
            "cgroups": list(self.cgroups),
            "notes": list(self.notes),
            "missing": list(self.missing),
        }

    # ------------------------------------------------------------------ after a child

    def sweep(self) -> int:
        """Kill every process of the sandbox user and remove what it left in shared temporary
        folders; the number of processes that were still alive. No-op without a user."""
        if self.uid is None:
            return 0
        for group in self.cgroups:  # cgroup v2 kills a whole group at once; v1 has no such file
            with contextlib.suppress(OSError):
                Path(group, "cgroup.kill").write_text("1")
        found = kill_user(self.uid)
        remove_owned(self.uid)
        return found

    def release(self) -> None:
        self.sweep()
        for group in self.cgroups:
            for _ in range(100):  # a killed process leaves its group when it has been reaped
                try:
                    os.rmdir(group)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
        self.cgroups = []
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def own(self, path: Path, private: bool = True) -> None:
        """``path`` (a folder) owned by the sandbox user: its scratch folder."""
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)
        os.chmod(path, 0o700 if private else 0o755)

    def share(self, path: Path) -> None:
        """``path`` (a stage) readable by the sandbox user's group, by no other user; root's to write."""
        if self.uid is not None:
            os.chown(path, 0, self.gid)
            os.chmod(path, 0o750)


# --------------------------------------------------------------------------- choosing


def landlock_abi() -> int:
    """The Landlock ABI this kernel offers (0: none, or turned off by ``TINYTORCH_LANDLOCK=0``)."""
    if not sys.platform.startswith("linux") or os.environ.get("TINYTORCH_LANDLOCK", "1") in (
        "0",
        "off",
        "no",
    ):
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))  # landlock_create_ruleset
    except (OSError, AttributeError):
        return 0
    return max(int(abi), 0)


def choose(
    user: str = "auto",
    landlock: bool = True,
    max_processes: int = 256,
    secrets: list[Path] = (),
    memory_mb: int = 0,
) -> Boundary:
    """The strongest boundary this machine allows for one grading (release it when done).

    ``user``: ``auto`` (a free uid from :data:`FIRST_UID`), a user name or number, or ``none``.
    ``secrets``: folders the sandbox user must not read, made unreadable (as root) when Landlock
    is not there to hide them.
    """
    boundary = Boundary(max_processes=max_processes)
    abi = landlock_abi() if landlock else 0
    boundary.landlock = abi
    if not landlock:
        boundary.missing.append("Landlock (turned off by the grading settings)")
    elif not abi:
        boundary.missing.append(
            "Landlock (this kernel does not offer it): file access is limited by permissions alone"
        )
    if user == "none":
        boundary.missing.append("a user of its own (turned off by the grading settings)")
    elif os.geteuid() != 0:
        boundary.missing.append(
            "a user of its own (the grader is not root): a process that leaves its "
            "session outlives the module; run the grader as root or in a container"
        )
    else:
        _take_user(boundary, user)
        if boundary.uid is not None:
            reachable = _make_python_reachable(boundary)
            if not reachable:
                boundary.uid = boundary.gid = None
        if boundary.uid is not None and not abi:
            for path in secrets:
                _lock_away(Path(path), boundary)
        if boundary.uid is not None:
            _make_cgroups(boundary, memory_mb)
    return boundary


def _own_cgroup(controller: str) -> str:
    """This process's group in a cgroup v1 hierarchy (``/`` when not listed)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                return path
    return "/"


def _make_cgroups(boundary: Boundary, memory_mb: int) -> None:
    """A control group of the submission's own, under this process's, bounding the memory and the
    processes of all its processes together (cgroup v2, else the v1 ``memory`` and ``pids``
    controllers); said missing where the machine offers neither (most containers)."""
    name = f"tinytorch-grading-{boundary.uid}"
    limits = {"memory": memory_mb * 2**20 if memory_mb else 0, "pids": boundary.max_processes}
    unified = Path("/sys/fs/cgroup")
    if (unified / "cgroup.controllers").is_file():
        groups = [
            (
                unified / _own_cgroup("").lstrip("/") / name,
                {"memory.max": limits["memory"], "pids.max": limits["pids"]},
            )
        ]
    else:
        groups = [
            (
                Path("/sys/fs/cgroup/memory") / _own_cgroup("memory").lstrip("/") / name,
                {"memory.limit_in_bytes": limits["memory"]},
            ),
            (
                Path("/sys/fs/cgroup/pids") / _own_cgroup("pids").lstrip("/") / name,
                {"pids.max": limits["pids"]},
            ),
        ]
    made = []
    try:
        for group, files in groups:
            group.mkdir(exist_ok=True)
            made.append(str(group))
            for file, value in files.items():
                if value:
                    (group / file).write_text(str(value))
    except OSError as error:
        for group in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(group)
        boundary.missing.append(
            f"a control group (cannot create one here: {error.strerror or error}): memory is bounded "
            "per process, not for the submission's processes together"
        )
        return
    boundary.cgroups = made


def _take_user(boundary: Boundary, user: str) -> None:
    locks = Path(tempfile.gettempdir()) / "tinytorch-grading-users"
    locks.mkdir(mode=0o700, exist_ok=True)
    os.chown(locks, 0, 0)
    os.chmod(locks, 0o700)
    if user == "auto":
        candidates = [uid for uid in range(FIRST_UID, FIRST_UID + POOL) if not _has_account(uid)]
    else:
        try:
            entry = pwd.getpwnam(user) if not user.isdigit() else None
        except KeyError:
            boundary.missing.append(f"a user of its own (no user named {user!r})")
            return
        candidates = [entry.pw_uid if entry else int(user)]
    for uid in candidates:
        fd = os.open(locks / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if user == "auto" else 0))
        except BlockingIOError:
            os.close(fd)
            continue
        boundary._lock = fd
        boundary.uid = uid
        boundary.gid = pwd.getpwuid(uid).pw_gid if _has_account(uid) else uid
        boundary.sweep()  # whatever a grading that died left behind
        return
    boundary.missing.append(f"a user of its own (all {len(candidates)} sandbox uids are in use)")


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


@functools.cache
def python_paths() -> list[str]:
    """What a sandbox child must read to run: the interpreter, its libraries, the foundation."""
    import tinytorch

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.add(sysconfig.get_paths()[key])
    paths.update(p for p in sys.path if p and os.path.isdir(p) and not p.startswith(tuple(_checkout_roots())))
    paths.add(str(Path(tinytorch.__file__).resolve().parent))
    return sorted(os.path.realpath(p) for p in paths if p and os.path.exists(p))


def _checkout_roots() -> list[str]:
    import tinytorch

    return [str(Path(tinytorch.__file__).resolve().parent.parent)]


_PROBE = "import numpy, pytest, hypothesis, tinytorch, tinytorch.perf"


def _probe(boundary: Boundary) -> str:
    """ "" when the sandbox user can start this interpreter and import what the tests need."""
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-B", "-c", _PROBE],
            user=boundary.uid,
            group=boundary.gid,
            extra_groups=[],
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    if done.returncode == 0:
        return ""
    return (done.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit {done.returncode}"])[-1]


# Interpreters a sandbox user was seen to start in this process. A user of its own owns nothing and
# belongs to no other group, so it reads the interpreter through the permission bits for others,
# as the next such user will: one probe per interpreter and grader process (a batch grades each
# submission in a process of its own, so each still probes once).
_REACHABLE: set[str] = set()


def _make_python_reachable(boundary: Boundary) -> bool:
    if sys.executable in _REACHABLE:
        return True
    problem = _probe(boundary)
    if not problem:
        _REACHABLE.add(sys.executable)
        return True
    opened = []
    for path in python_paths():
        for folder in [*reversed(Path(path).parents), Path(path)]:
            mode = folder.stat().st_mode
            if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
                os.chmod(folder, mode | stat.S_IXOTH)
                opened.append(str(folder))
    if opened:
        boundary.notes.append(
            "added search permission (o+x, not read) to "
            + ", ".join(sorted(set(opened)))
            + " so that the sandbox user can start Python"
        )
    problem = _probe(boundary)
    if problem:
        boundary.missing.append(
            f"a user of its own (uid {boundary.uid} cannot start {sys.executable}: "
            f"{problem}; make the interpreter and its packages readable to other users)"
        )
        return False
    _REACHABLE.add(sys.executable)
    return True


def _lock_away(path: Path, boundary: Boundary) -> None:
    with contextlib.suppress(FileNotFoundError):
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode) and mode & 0o077:
            os.chmod(path, mode & ~0o077)
            boundary.notes.append(f"made {path} unreadable to other users (chmod go-rwx): no Landlock here")


# --------------------------------------------------------------------------- cleaning up


def user_processes(uid: int) -> list[int]:
    """Process ids whose real or effective uid is ``uid``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        real, effective = line.split()[1:3]
                        if int(real) == uid or int(effective) == uid:
                            found.append(int(entry.name))
                        break
        except OSError:
            continue
    return found


def kill_user(uid: int, rounds: int = 200) -> int:
    """SIGKILL every process of ``uid`` (escaped sessions included): a helper becomes the user and
    calls ``kill(-1, SIGKILL)``, which the kernel sends to every process that user may signal, until
    none is left. Returns how many there were at first."""
    first = len(user_processes(uid))
    for _ in range(rounds):
        if not user_processes(uid):
            break
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the helper child
            try:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.005)
    return first


def remove_owned(uid: int, places: tuple[str, ...] = SHARED_TEMP) -> None:
    """Remove what ``uid`` left directly in the shared temporary folders."""
    for place in places:
        try:
            entries = list(os.scandir(place))
        except OSError:
            continue
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
