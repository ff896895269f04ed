"""The fork server (tinytorch/course/forkserver.py): a forked child behaves like ``python <args>`` started
with the request's environment, folder, descriptors, session and limits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinytorch.course import forkserver

pytestmark = pytest.mark.skipif(not forkserver.available(), reason="the fork server runs on Linux only")


@pytest.fixture(scope="module")
def server():
    return forkserver.ForkServer(("json",))


def run(server: forkserver.ForkServer, tmp_path: Path, script: str, *args: str, **spawn) -> tuple[int, str]:
    """Run ``script`` as a forked ``python script args``: (exit code, what it printed)."""
    path = tmp_path / "child.py"
    path.write_text(script, encoding="utf-8")
    out = os.open(tmp_path / "out.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        fds = {1: out, 2: out, **spawn.pop("fds", {})}
        child = server.spawn([str(path), *args], env=spawn.pop("env", {}), cwd=tmp_path, fds=fds, **spawn)
    finally:
        os.close(out)
    return child.wait(30), (tmp_path / "out.txt").read_text(encoding="utf-8")


REPORT = """\
import json, os, random, resource, sys
print(json.dumps({
    "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ), "path": sys.path[:2],
    "name": __name__, "pid": os.getpid(), "pgid": os.getpgrp(), "sid": os.getsid(0),
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    "core": resource.getrlimit(resource.RLIMIT_CORE), "random": random.random(),
}))
"""


def test_a_child_gets_the_command_line_environment_and_folder_of_its_request(server, tmp_path: Path):
    code, out = run(server, tmp_path, REPORT, "a", "b", env={"ONLY": "this", "PYTHONPATH": "/nowhere"})
    seen = json.loads(out)
    assert code == 0 and seen["name"] == "__main__"
    assert seen["argv"] == [str(tmp_path / "child.py"), "a", "b"]
    assert seen["cwd"] == str(tmp_path) and seen["env"] == {"ONLY": "this", "PYTHONPATH": "/nowhere"}
    assert seen["path"] == [str(tmp_path), "/nowhere"]  # the script's folder, then PYTHONPATH, as Python does
    assert seen["pid"] != os.getpid() and seen["sid"] != seen["pid"]  # no session of its own unless asked


def test_a_child_can_lead_its_own_session_under_limits_with_only_its_descriptors(server, tmp_path: Path):
    read_end, write_end = os.pipe()
    try:
        script = REPORT + "os.write(9, b'on nine')\n"
        code, out = run(
            server, tmp_path, script, fds={9: write_end}, new_session=True, limits={"RLIMIT_CORE": (0, 0)}
        )
        assert os.read(read_end, 100) == b"on nine"
    finally:
        os.close(read_end)
        os.close(write_end)
    seen = json.loads(out)
    assert code == 0 and seen["pgid"] == seen["sid"] == seen["pid"]
    assert seen["core"] == [0, 0]
    assert [fd for fd in seen["fds"] if fd > 2] in ([9], [3, 9])  # 3: listdir's own, if still open


def test_each_child_draws_its_own_random_numbers(server, tmp_path: Path):
    draws = {json.loads(run(server, tmp_path, REPORT)[1])["random"] for _ in range(3)}
    assert len(draws) == 3  # Python reseeds `random` after a fork


LATE_THREAD = (  # a thread that is not a daemon: Python waits for it before it ends
    "import threading, time\nthreading.Thread(target=lambda: (time.sleep(0.3), print('late'))).start()\n"
)


@pytest.mark.parametrize(
    "script, code, printed",
    [
        ("import sys\nsys.exit(7)\n", 7, ""),
        ("import sys\nsys.exit('no luck')\n", 1, "no luck"),
        ("import os\nos._exit(5)\n", 5, ""),
        ("raise ValueError('broken')\n", 1, "ValueError: broken"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", -signal.SIGKILL, ""),
        ("import atexit\natexit.register(print, 'at exit')\n", 0, "at exit"),
        ("raise KeyboardInterrupt\n", -signal.SIGINT, "KeyboardInterrupt"),
        (LATE_THREAD, 0, "late"),
    ],
    ids=["sys.exit(7)", "sys.exit(text)", "os._exit", "exception", "killed", "atexit", "Ctrl-C", "thread"],
)
def test_exit_codes_are_those_of_a_new_python(server, tmp_path: Path, script: str, code: int, printed: str):
    got, out = run(server, tmp_path, script)
    assert got == code and printed in out
    if script.startswith("raise"):
        assert "Traceback" in out


def test_hypothesis_preloaded_by_the_server_keeps_its_data_in_the_childs_folder(tmp_path: Path):
    # Hypothesis picks ./.hypothesis when it is imported: in the server, whose folder is "/"
    server = forkserver.ForkServer(("hypothesis",))
    script = (
        "from hypothesis.configuration import storage_directory\n"
        "print(storage_directory('examples').path)\n"
    )
    code, out = run(server, tmp_path, script)
    assert code == 0 and out.strip() == str(tmp_path / ".hypothesis" / "examples")


def test_dash_m_runs_a_module_with_the_folder_first_on_the_path(server, tmp_path: Path):
    (tmp_path / "here_only.py").write_text("import sys\nprint('ran', sys.argv[1:], sys.path[0])\n")
    out = os.open(tmp_path / "out.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    child = server.spawn(["-m", "here_only", "x"], env={}, cwd=tmp_path, fds={1: out})
    os.close(out)
    assert child.wait(30) == 0
    assert (tmp_path / "out.txt").read_text() == f"ran ['x'] {tmp_path}\n"


def test_wait_poll_and_kill_work_like_popen(server, tmp_path: Path):
    (tmp_path / "hang.py").write_text("import time\nwhile True:\n    time.sleep(0.05)\n")
    child = server.spawn([str(tmp_path / "hang.py")], env={}, cwd=tmp_path)
    assert child.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.2)
    child.kill()
    assert child.wait(10) == -signal.SIGKILL and child.poll() == -signal.SIGKILL
    child.kill()  # a finished child: nothing happens


def test_a_dead_server_takes_its_children_down_and_the_next_spawn_starts_a_new_one(tmp_path: Path):
    server = forkserver.ForkServer(())
    (tmp_path / "hang.py").write_text("import time\nwhile True:\n    time.sleep(0.05)\n")
    child = server.spawn([str(tmp_path / "hang.py")], env={}, cwd=tmp_path, new_session=True)
    first = server._process
    first.kill()  # the server dies (out of memory, say)
    assert child.wait(10) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child.pid}").exists()  # killed, not left running without a parent
    code, _ = run(server, tmp_path, "pass\n")
    assert code == 0 and server._process is not first


def test_a_server_that_cannot_start_is_an_error_the_caller_can_fall_back_on(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(forkserver.ForkServerError, match="could not start"):
        forkserver.ForkServer(()).spawn(["-c", "pass"], env={}, cwd=tmp_path)


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "server-failed"])
def test_start_forks_or_falls_back_to_a_subprocess_with_the_same_effect(tmp_path: Path, monkeypatch, forked):
    server = forkserver.ForkServer((), isolated=True)
    if not forked:

        def refuse(*args, **kwargs):
            raise forkserver.ForkServerError("the fork server could not start: test")

        monkeypatch.setattr(server, "spawn", refuse)
    read_end, write_end = os.pipe()
    (tmp_path / "s.py").write_text(
        "import os, resource, sys\n"
        f"os.write({write_end}, b'channel')\n"
        "print(sys.flags.isolated, resource.getrlimit(resource.RLIMIT_CORE), os.getsid(0) == os.getpid())\n"
    )
    out = os.open(tmp_path / "out.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        proc = server.start(
            [sys.executable, "-I", "-B", str(tmp_path / "s.py")],
            env={},
            cwd=tmp_path,
            output=out,
            pass_fds=(write_end,),
            new_session=True,
            limits={"RLIMIT_CORE": (0, 0)},
        )
        assert isinstance(proc, forkserver.Child) == forked
        assert proc.wait(30) == 0
        assert os.read(read_end, 100) == b"channel"
    finally:
        for fd in (out, read_end, write_end):
            os.close(fd)
    assert (tmp_path / "out.txt").read_text() == "1 (0, 0) True\n"


def test_a_child_forked_after_the_caller_gave_up_waiting_is_killed(tmp_path: Path, monkeypatch):
    server = forkserver.ForkServer(())
    (tmp_path / "warm_up.py").write_text("pass\n")
    assert server.spawn([str(tmp_path / "warm_up.py")], env={}, cwd=tmp_path).wait(30) == 0  # it runs
    monkeypatch.setattr(forkserver, "_ANSWER_WITHIN", 0.0)  # the caller waits for no answer
    (tmp_path / "late.py").write_text(f"import time\ntime.sleep(0.5)\nopen({str(tmp_path / 'ran')!r}, 'w')\n")
    with pytest.raises(forkserver.ForkServerError, match="did not answer"):
        server.spawn([str(tmp_path / "late.py")], env={}, cwd=tmp_path)
    time.sleep(1.5)
    assert not (tmp_path / "ran").exists()  # the caller started its own process instead


def test_the_server_ends_when_its_parent_does(tmp_path: Path):
    script = (
        "import sys\nfrom tinytorch.course import forkserver\n"
        "s = forkserver.ForkServer(())\n"
        f"s.spawn([{str(tmp_path / 'nothing.py')!r}], env={{}}, cwd='/').wait(30)\n"
        "print(s._process.pid)\n"
    )
    (tmp_path / "nothing.py").write_text("pass\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    pid = int(proc.stdout)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    gone = not Path(f"/proc/{pid}").exists()
    assert gone or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]  # or a zombie


def test_the_exit_status_of_sys_exit_is_pythons():
    assert [forkserver._exit_code(v) for v in (None, 0, 3, 256 + 4)] == [0, 0, 3, 4]
    assert forkserver._exit_code("a message") == 1


def test_it_can_be_turned_off(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(forkserver.ENV, "0")
    assert not forkserver.available()
    monkeypatch.setenv(forkserver.ENV, "1")
    assert forkserver.available()
