"""Gradescope's leaderboard (grading/grade_leaderboard.py, grading/competition.py): a finished
module 20's competition runs in one more sandboxed child; its figures are posted when valid,
refused whole with a reason otherwise, and never change the grade.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from autograde_support import FAST, graded_repo, grading_env  # noqa: F401 - the fixtures
from conftest import BENCH_SOLUTION, add_bench_module, make_repo

from grading import autograde

# what a hostile submission does once its tests pass: only the competition's quick run (runs=3)
HOSTILE = {
    "huge": "return ScoreCard(score=10**400, counted=dict(SPEEDUPS))",
    "unknown": 'return ScoreCard(score=4.0, counted={**SPEEDUPS, "EVIL": 2.0})',
    "nan": 'return ScoreCard(score=float("nan"), counted=dict(SPEEDUPS))',
    "hang": "import time; time.sleep(10**6)",
    "raise": 'raise RuntimeError("no competition today")',
    "symlink": (
        "import os; os.symlink(os.path.join(os.getcwd(), 'elsewhere.json'), "
        "os.environ['TINYTORCH_LEADERBOARD_OUT']); return ScoreCard(score=4.0, counted=dict(SPEEDUPS))"
    ),
}


@pytest.fixture(scope="module")
def bench_repo(tmp_path_factory):
    return add_bench_module(make_repo(tmp_path_factory.mktemp("bench") / "repo"))


@pytest.fixture
def bench_env(bench_repo, monkeypatch):
    monkeypatch.setenv("TINYTORCH_ROOT", str(bench_repo))
    monkeypatch.setenv("TINYTORCH_REGISTRY", str(bench_repo / "modules.toml"))
    return bench_repo


def bench_submission(tmp_path: Path, hostile: str = "") -> Path:
    """The fake module 20 solved; ``hostile``: what its compute_score does in the quick run."""
    body = BENCH_SOLUTION
    if hostile:
        body = body.replace(
            "    def compute_score(self, bench):\n",
            "    def compute_score(self, bench):\n"
            f"        if bench.runs == 3:\n            {HOSTILE[hostile]}\n",
        )
    root = tmp_path / "student"
    (root / "katas" / "benchmarking").mkdir(parents=True)
    (root / "katas" / "benchmarking" / "__init__.py").write_text(body, encoding="utf-8")
    return root


BENCH = replace(FAST, leaderboard_timeout=10)


def test_a_finished_module_20_posts_gradescopes_leaderboard(bench_env, tmp_path):
    """The leaderboard field as Gradescope's specification has it: a top-level array of objects
    with a name, a numeric value and an order ("desc": higher ranks higher, as for a speedup)."""
    grade = autograde.grade(bench_submission(tmp_path), settings=BENCH, only=["benchmarking"])
    results = grade.to_gradescope()
    assert results["score"] == 40, "score of the solved fake module 20 (its 40 points)"
    board = results["leaderboard"]
    assert board == [
        {"name": "Score", "value": 4.0, "order": "desc"},
        {"name": "MLP_SPRINT", "value": 2.0, "order": "desc"},
        {"name": "CNN_MARATHON", "value": 4.0, "order": "desc"},
        {"name": "TRANSFORMER_DECATHLON", "value": 8.0, "order": "desc"},
    ], "leaderboard entries: the score, then each event's speedup in the events' order"
    for entry in board:  # the specification's types, as results.json holds them
        assert set(entry) == {"name", "value", "order"}, f"keys of leaderboard entry {entry}"
        assert isinstance(entry["name"], str) and entry["order"] in ("asc", "desc"), f"entry {entry}"
        value = entry["value"]
        assert isinstance(value, float) and math.isfinite(value), f"value of leaderboard entry {entry}"
    assert json.loads(json.dumps(results, allow_nan=False))["leaderboard"] == board, "leaderboard JSON"
    extra = results["extra_data"]["leaderboard"]
    assert (extra["posted"], extra["note"]) == (True, ""), "extra_data.leaderboard"
    assert 0 < extra["seconds"] < BENCH.leaderboard_timeout, "extra_data.leaderboard.seconds of the run"
    assert "leaderboard (display only, not part of the grade): Score 4x" in results["output"], "output"


def test_an_unfinished_module_20_or_a_switched_off_leaderboard_posts_none(bench_env, tmp_path):
    grade = autograde.grade(bench_env / "katas", settings=BENCH, only=["benchmarking"])
    results = grade.to_gradescope()
    assert "leaderboard" not in results, "leaderboard of the untouched stub"
    note = results["extra_data"]["leaderboard"]
    assert note["posted"] is False and "not finished (0 of 2 tests" in note["note"], "the note of a stub"
    off = autograde.grade(bench_submission(tmp_path), settings=replace(BENCH, leaderboard=False))
    results = off.to_gradescope()
    assert "leaderboard" not in results and "leaderboard" not in results["extra_data"], "switched off"
    assert off.score == 40, "score with the leaderboard off (no alpha, no beta, module 20 solved)"


@pytest.mark.parametrize(
    "hostile, words, timeout",
    [
        ("huge", "figures were refused: score is an integer of 401 digits", 3),
        ("unknown", "figures were refused: events names unknown event(s) ['EVIL']", 3),
        ("nan", "figures were refused: the figures file holds NaN", 3),
        # a competition that never ends is stopped at its bound, however short
        ("hang", "took longer than its 1 s", 1),
        ("raise", "the competition failed: RuntimeError: no competition today", 3),
        ("symlink", "no figures were written", 3),
    ],
)
def test_a_hostile_or_failing_competition_posts_no_leaderboard_and_keeps_the_grade(
    bench_env, tmp_path, hostile, words, timeout
):
    settings = replace(BENCH, leaderboard_timeout=timeout)
    grade = autograde.grade(bench_submission(tmp_path, hostile), settings=settings, only=["benchmarking"])
    results = grade.to_gradescope()
    assert results["score"] == 40, f"score of a module 20 whose competition misbehaves ({hostile})"
    assert "leaderboard" not in results, f"leaderboard of a competition that misbehaves ({hostile})"
    note = results["extra_data"]["leaderboard"]["note"]
    assert note.startswith("not posted: ") and words in note, f"the note of {hostile}: {note!r}"


def test_the_leaderboard_settings_are_checked(bench_env, tmp_path, monkeypatch):
    text = (bench_env / "modules.toml").read_text(encoding="utf-8")
    for bad in ('leaderboard = "yes"', "leaderboard_timeout = 0", "leaderboard_timeout = true"):
        registry_file = tmp_path / "modules.toml"
        registry_file.write_text(f"[grading]\n{bad}\n\n" + text, encoding="utf-8")
        monkeypatch.setenv("TINYTORCH_REGISTRY", str(registry_file))
        with pytest.raises(ValueError, match=bad.split(" ")[0]):
            autograde.load_settings()
    registry_file.write_text("[grading]\nleaderboard = false\nleaderboard_timeout = 30\n\n" + text)
    settings = autograde.load_settings()
    assert (settings.leaderboard, settings.leaderboard_timeout) == (False, 30), "leaderboard settings read"


def figures_file(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "leaderboard.json"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


GOOD = {"score": 4, "events": {"MLP_SPRINT": 2.0, "CNN_MARATHON": 4.0, "TRANSFORMER_DECATHLON": 8.0}}


def hostile(**change) -> str:
    figures = json.loads(json.dumps(GOOD))
    for key, value in change.items():
        if key == "score":
            figures["score"] = value
        else:
            figures["events"][key] = value
    return json.dumps(figures)


@pytest.mark.parametrize(
    "text, words",
    [
        (hostile(score=float("nan")), "holds NaN, not a number"),
        (hostile(MLP_SPRINT=float("inf")), "holds Infinity, not a number"),
        ('{"score": -Infinity, "events": {}}', "holds -Infinity, not a number"),
        (hostile(score=1e300), "score is 1e+300, outside the plausible range"),
        (hostile(score=10**400), "score is an integer of 401 digits, outside the plausible range"),
        (hostile(CNN_MARATHON=-(10**400)), "events.CNN_MARATHON is an integer of 401 digits"),
        ('{"score": 1' + "0" * 5000 + ', "events": {}}', "not readable JSON"),  # past int's digit limit
        (hostile(score=0), "score is 0, outside the plausible range"),
        (hostile(score=True), "score must be a number, got bool"),
        (hostile(MLP_SPRINT="2.0"), "events.MLP_SPRINT must be a number, got str"),
        (hostile(MLP_SPRINT=[2.0]), "events.MLP_SPRINT must be a number, got list"),
        (hostile(EVIL=2.0), "unknown event(s) ['EVIL']"),
        (hostile(**{"<script>" * 100: 2.0}), "unknown event(s)"),
        (
            json.dumps({"score": 4, "events": {"MLP_SPRINT": 2.0}}),
            "lacks ['CNN_MARATHON', 'TRANSFORMER_DECATHLON']",
        ),
        (json.dumps({**GOOD, "rank": 1}), "exactly"),
        (json.dumps([4, 2, 4, 8]), "exactly"),
        (json.dumps({"score": 4, "events": [2, 4, 8]}), "events must map"),
        ("[" * 100_000 + "]" * 100_000, "larger than 64 KiB"),
        ("[" * 30_000 + "]" * 30_000, "not readable JSON"),  # nesting past the recursion limit
        (" " * (65 * 1024) + json.dumps(GOOD), "larger than 64 KiB"),
        (b"\xff\xfe", "not readable JSON"),
        ("", "not readable JSON"),
    ],
)
def test_hostile_figures_are_refused_whole_with_a_reason(tmp_path, text, words):
    from grading import competition

    with pytest.raises(competition.FiguresError) as caught:
        competition.read_figures(figures_file(tmp_path, text))
    assert words in str(caught.value), f"reason for refusing {str(text)[:60]!r}: {caught.value}"


def test_figures_that_are_not_a_regular_file_are_not_followed(tmp_path):
    from grading import competition

    target = figures_file(tmp_path, json.dumps(GOOD))
    link = tmp_path / "link.json"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # a reader that waited for a writer would hang the grader
    for path, words in (
        (link, "no figures were written"),
        (fifo, "not a regular file"),
        (tmp_path / "none", "no figures"),
    ):
        with pytest.raises(competition.FiguresError, match=words):
            competition.read_figures(path)
    assert competition.read_figures(target) == {
        "Score": 4.0,
        "MLP_SPRINT": 2.0,
        "CNN_MARATHON": 4.0,
        "TRANSFORMER_DECATHLON": 8.0,
    }, "figures of a valid file, in the leaderboard's order"


def test_values_are_rounded_to_four_significant_digits_and_kept_positive():
    from grading import competition

    board = competition.entries({"Score": 3.14159265, "MLP_SPRINT": 1.5e-6, "CNN_MARATHON": 123456.7})
    assert [e["value"] for e in board] == [3.142, 1.5e-06, 123500.0], "rounded leaderboard values"
    assert all(e["value"] > 0 for e in board), "a rounded value stays positive"


def test_the_grader_knows_module_20s_events():
    """grading/competition.py's EVENTS, which the grader checks the child's names against, are
    the reference's events, in order."""
    import subprocess as sp

    code = "from tinytorch.perf.benchmarking import EVENTS; print(','.join(e.name for e in EVENTS))"
    env = {**os.environ, "TINYTORCH_IMPL": "solutions"}
    for name in ("TINYTORCH_ROOT", "TINYTORCH_REGISTRY"):
        env.pop(name, None)
    done = sp.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    from grading import competition

    assert done.stdout.strip().split(",") == list(competition.EVENTS), f"module 20's events: {done.stderr}"


def test_no_leaderboard_on_the_command_line_switches_it_off(bench_env, tmp_path):
    out = tmp_path / "results.json"
    student = bench_submission(tmp_path)
    argv = [str(student), "--out", str(out), "--quiet", "--module", "benchmarking", "--timeout", "4"]
    assert autograde.main([*argv, "--no-leaderboard"]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["score"] == 40, "score of the solved fake module 20 without the leaderboard"
    assert "leaderboard" not in results and "leaderboard" not in results["extra_data"], "--no-leaderboard"
    assert autograde.main(argv) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert [e["name"] for e in results["leaderboard"]][0] == "Score", "the leaderboard without the flag"
