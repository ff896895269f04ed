"""The child's pytest plugin and its log, in process: exits become failures, each test is logged.

The plugin (``tinytorch/course/pytest_plugin.py``) is driven hook by hook here, and the log it
writes is read back as the runner reads it (:func:`tinytorch.course.reports.read_log`).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from tinytorch.course import reports


def test_the_run_log_survives_a_line_cut_by_a_dying_process(tmp_path: Path):
    log = tmp_path / "log.jsonl"

    def report(when: str, outcome: str, message: str, details: str) -> str:
        fields = {"nodeid": "t::a", "when": when, "outcome": outcome, "message": message, "details": details}
        return json.dumps({"event": "report", **fields}) + "\n"

    log.write_text(
        '{"event": "session"}\n{"event": "collected", "nodeids": ["t::a", "t::b", "t::c"]}\n'
        '{"event": "start", "nodeid": "t::a"}\n'
        + report("setup", "passed", "", "")
        + report("call", "failed", "E: x", "d")
        + report("teardown", "failed", "T", "")
        + '{"event": "finish", "nodeid": "t::a"}\n{"event": "start", "nodeid": "t::b"}\n{"event": "rep'
    )
    progress = reports.read_log(log)
    assert progress.started and progress.collected == ["t::a", "t::b", "t::c"]
    assert progress.running == "t::b" and progress.finished == ["t::a"]
    assert reports.merge_reports(progress.reports["t::a"]) == ("failed", "E: x", "d")  # call beats teardown
    setup_error = [{"when": "setup", "outcome": "failed", "message": "S", "details": "s"}]
    skipped = [{"when": "setup", "outcome": "skipped", "message": "Skipped: no", "details": ""}]
    assert reports.merge_reports(setup_error) == ("error", "S", "s")
    assert reports.merge_reports(skipped) == ("skipped", "Skipped: no", "")
    assert reports.read_log(tmp_path / "missing.jsonl") == reports.Progress()


def test_the_plugin_turns_exits_into_failures_and_logs_each_test(tmp_path: Path, monkeypatch):
    from types import SimpleNamespace

    from tinytorch.course import pytest_plugin as plugin

    def drive(wrapper, exc: BaseException):
        """Run a hook wrapper around an inner hook that raised ``exc``; what it returns or raises."""
        next(wrapper)
        try:
            wrapper.throw(exc)
        except StopIteration as stop:
            return stop.value
        raise AssertionError("the wrapper yielded twice")

    for exc, how in [
        (SystemExit(3), "called sys.exit(3) during the test"),
        (KeyboardInterrupt(), "raised KeyboardInterrupt during the test"),
        (plugin._OsExit(0), "called os._exit(0) during the test"),
    ]:
        with pytest.raises(plugin.KataExit, match=re.escape(how)):
            drive(plugin.pytest_runtest_call(None), exc)
    with pytest.raises(plugin.KataExit, match="in the test's setup"):
        drive(plugin.pytest_runtest_setup(None), SystemExit(None))
    with pytest.raises(plugin.KataExit, match="in the test's teardown"):
        drive(plugin.pytest_runtest_teardown(None, None), SystemExit(0))
    with pytest.raises(ValueError):  # anything else passes through untouched
        drive(plugin.pytest_runtest_call(None), ValueError("x"))
    gen = plugin.pytest_runtest_call(None)
    next(gen)
    with pytest.raises(StopIteration) as stop:
        gen.send("result")
    assert stop.value.value == "result"

    collect = plugin.pytest_make_collect_report(SimpleNamespace(nodeid="tests/test_alpha.py"))
    report = drive(collect, SystemExit(3))
    assert report.failed and report.nodeid == "tests/test_alpha.py"
    assert "KataExit: the code under test called sys.exit(3) while the tests imported it" in str(
        report.longrepr
    )

    # the log: configure, events, os._exit in the main thread raises, elsewhere it exits
    log = tmp_path / "log.jsonl"
    exits = []
    config = SimpleNamespace(
        getoption=lambda name, default=None: {"tinytorch_log": str(log), "timeout": 5}[name]
    )
    monkeypatch.setattr(plugin.os, "_exit", exits.append)
    plugin.pytest_configure(config)
    try:
        assert plugin._log is not None and plugin.os._exit == plugin._log.os_exit
        plugin.pytest_sessionstart(None)
        session = SimpleNamespace(config=config, items=[SimpleNamespace(nodeid="t::a")])
        collection = plugin.pytest_collection(session)
        next(collection)
        with pytest.raises(StopIteration):
            collection.send(None)
        plugin.pytest_collection_finish(session)
        plugin.pytest_runtest_logstart("t::a", ())
        crash = SimpleNamespace(message="AssertionError: no")
        failed = SimpleNamespace(
            nodeid="t::a",
            when="call",
            outcome="failed",
            longrepr=SimpleNamespace(reprcrash=crash),
            longreprtext="Traceback\nAssertionError: no",
            skipped=False,
        )
        skipped = SimpleNamespace(
            nodeid="t::a",
            when="teardown",
            outcome="skipped",
            longrepr=("f.py", 1, "Skipped: later"),
            longreprtext="",
            skipped=True,
        )
        for report in (failed, skipped):
            plugin.pytest_runtest_logreport(report)
        plugin.pytest_runtest_logfinish("t::a", ())
        with pytest.raises(SystemExit) as raised:
            plugin.os._exit(4)
        assert isinstance(raised.value, plugin._OsExit) and raised.value.code == 4
        thread = threading.Thread(target=plugin.os._exit, args=(5,))
        thread.start()
        thread.join()
        assert exits == [5]  # pytest-timeout's timer thread still ends the process
        plugin._log.watch_parent(-1)  # its parent is gone: the child ends itself
        assert exits == [5, 1]
    finally:
        plugin.pytest_unconfigure(config)
    assert plugin._log is None and plugin.os._exit == exits.append
    progress = reports.read_log(log)
    assert progress.started and progress.collected == ["t::a"] and progress.running is None
    assert [r["message"] for r in progress.reports["t::a"]] == ["AssertionError: no", "Skipped: later"]


def test_an_array_is_summarised_by_its_shape_dtype_range_and_first_values():
    import numpy as np

    from tinytorch.course.pytest_plugin import array_summary

    assert array_summary(np.arange(3, dtype=np.int8)) == "array([0, 1, 2], dtype=int8)"  # short: as is
    x = np.full((6, 40), 1.5, np.float32)
    x[0, 1], x[2, 3], x[5, 39] = np.nan, -np.inf, -2.25
    assert array_summary(x) == (
        "<array shape=(6, 40) dtype=float32 min=-2.25 max=1.5 nan=1 inf=1 "
        "first=[1.5, nan, 1.5, 1.5, 1.5, 1.5, ...]>"
    )
    empty = np.zeros((0,) + (1,) * 30)  # a repr longer than the width, and no values
    assert array_summary(empty) == f"<array shape={empty.shape} dtype=float64 empty>"
    assert array_summary(np.arange(100) > 50).startswith("<array shape=(100,) dtype=bool min=False max=True")
