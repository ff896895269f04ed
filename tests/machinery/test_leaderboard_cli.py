"""The board's commands (tinytorch/course/leaderboard/commands.py): ``tinytorch leaderboard``,
``tinytorch submit`` (measured and verified, ``--json`` unverified, ``--dry-run``) and
``tinytorch leaderboard verify``, which re-runs recorded entries from their code.
"""

from __future__ import annotations

import html
import io
import json
import subprocess
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
from leaderboard_support import (
    ROOT,
    WatchedCompetition,
    WatchedSubmission,
    entry,
    record,
    table_of,
    with_interval,
)

from tinytorch.course import cli, leaderboard
from tinytorch.course.leaderboard import Entry, InvalidEntry, Leaderboard


@pytest.fixture
def board(tmp_path: Path) -> Leaderboard:
    return Leaderboard(tmp_path / "lb.sqlite3")


def test_cli_leaderboard_and_submit_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "cli.sqlite3"
    monkeypatch.setenv(leaderboard.ENV_VAR, str(db))
    good = tmp_path / "entry.json"
    good.write_text(json.dumps(entry().to_dict()))
    out = io.StringIO()
    assert (
        cli.main(
            ["submit", "--json", str(good), "--name", "renamed", "--save-json", str(tmp_path / "c.json")], out
        )
        == 0
    )
    assert "rank 1 of 1" in out.getvalue() and (tmp_path / "c.json").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**entry().to_dict(), "optimizations": ["teleport"]}))
    out = io.StringIO()
    assert cli.main(["submit", "--json", str(bad)], out) == 1
    assert "unknown optimization 'teleport'" in out.getvalue() and "unchanged" in out.getvalue()
    out = io.StringIO()
    assert cli.main(["leaderboard"], out) == 0 and "| 1 | renamed | ada |" in out.getvalue()
    html = tmp_path / "board.html"
    assert (
        cli.main(["leaderboard", "--format", "html", "--output", str(html), "--limit", "5"], io.StringIO())
        == 0
    )
    assert "renamed" in html.read_text()
    assert cli.main(["leaderboard", "--limit", "0"], io.StringIO()) == 2


def test_cli_submit_reports_an_unfinished_kata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unfinished(args, out):
        raise NotImplementedError("build_submission (module 20, benchmarking): implement it")

    monkeypatch.setattr(leaderboard.commands, "_run_submission", unfinished)
    out = io.StringIO()
    args = Namespace(
        json=None, name=None, author=None, save_json=None, db=str(tmp_path / "x.sqlite3"), quick=True
    )
    assert leaderboard.cli_submit(args, out) == 1 and "cannot run yet" in out.getvalue()
    rejected = InvalidEntry(["MLP_SPRINT: quality gate failed"])

    def invalid(args, out):
        raise rejected

    monkeypatch.setattr(leaderboard.commands, "_run_submission", invalid)
    out = io.StringIO()
    assert leaderboard.cli_submit(args, out) == 1 and "quality gate failed" in out.getvalue()
    monkeypatch.setattr(leaderboard.commands, "_run_submission", lambda args, out: entry(score=42.0))
    out = io.StringIO()
    assert leaderboard.cli_submit(args, out) == 1 and "geometric mean" in out.getvalue()


FAKE_BENCHMARKING = """
import os


class InvalidSubmission(ValueError):
    pass


class TinyMLPerf:
    pass


def build_submission():
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    threads = ",".join(f"{v}={os.environ.get(v)}" for v in names)
    raise NotImplementedError(f"measured with {threads}")
"""


def test_tinytorch_submit_measures_with_blas_pinned_like_bench(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`tinytorch submit` runs the submission where every benchmark runs: a fresh interpreter
    whose BLAS threads were pinned before numpy loaded (benchmarks/submit.py), one thread unless
    the caller chose. A fake module 20 reports the threads its build_submission saw."""
    fake = tmp_path / "benchmarking"
    fake.mkdir()
    (fake / "__init__.py").write_text(FAKE_BENCHMARKING)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the caller's own choice is kept
    out = io.StringIO()
    code = cli.main(
        ["submit", "--quick", "--impl", f"katas,benchmarking={fake}", "--db", str(tmp_path / "b.db")], out
    )
    said = out.getvalue() + capfd.readouterr().out
    assert code == 1 and "cannot run yet" in said, f"the fake's unfinished build: {said}"
    assert "measured with OPENBLAS_NUM_THREADS=1,OMP_NUM_THREADS=3,MKL_NUM_THREADS=1" in said, (
        f"the BLAS threads the submission was measured with: {said}"
    )


def test_only_the_boards_own_measurement_is_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaderboard.add (module 20's path) and `submit --json` record unverified whatever the entry
    says; `tinytorch submit`'s measured path records verified; both boards show the status in a
    column and say what it means."""
    db = tmp_path / "v.sqlite3"
    Leaderboard(db).add(entry("claims", verified=True, remeasured_score=9.0, remeasure_note="fine"))
    claim = tmp_path / "claim.json"
    claim.write_text(json.dumps({**entry("from json").to_dict(), "verified": True}))
    out = io.StringIO()
    assert cli.main(["submit", "--json", str(claim), "--db", str(db)], out) == 0, out.getvalue()
    assert "cannot make an entry verified" in out.getvalue(), (
        f"--json says it is unverified: {out.getvalue()}"
    )
    monkeypatch.setattr(leaderboard.commands, "_run_submission", lambda args, out: entry("measured"))
    args = Namespace(json=None, name=None, author=None, save_json=None, db=str(db), quick=True)
    out = io.StringIO()
    assert leaderboard.cli_submit(args, out) == 0 and "verified: measured here" in out.getvalue(), (
        out.getvalue()
    )
    board = Leaderboard(db)
    status = {e.name: (e.verified, e.remeasured_score, e.remeasure_note) for e in board.entries()}
    assert status == {
        "claims": (False, None, ""),
        "from json": (False, None, ""),
        "measured": (True, None, ""),
    }, f"(verified, re-measured score, note) as recorded: {status}"
    table = table_of(board.to_markdown())
    columns = [cell.strip() for cell in table[0]]
    assert columns[3:6] == ["score", "status", "re-measured"], f"the columns: {columns}"
    shown = {row[1].strip(): (row[4].strip(), row[5].strip()) for row in table[2:]}
    assert shown == {
        "claims": ("unverified", "-"),
        "from json": ("unverified", "-"),
        "measured": ("verified", "-"),
    }, f"status and re-measured cells: {shown}"
    legend = board.to_markdown()
    for said in ("`verified`: measured by the leaderboard's own process", "`unverified`: self-reported"):
        assert said in legend, f"the legend says {said!r}"
    page = board.to_html()
    for status in ("verified", "unverified"):
        assert f'<span class="{status}">{status}</span>' in page, f"the HTML page's status cell {status}"
    assert html.escape("`unverified`: self-reported") in page, "the HTML page's legend"


def test_module_20s_submit_to_leaderboard_records_unverified(board: Leaderboard) -> None:
    from tinytorch.perf.benchmarking import CompetitionSubmission

    class Scored(CompetitionSubmission):
        """Already scored (not measured again), its entry claiming to be verified."""

        def validate(self, benchmark: Any = None) -> list[str]:
            return []

        def to_entry(self) -> Entry:
            return entry(self.name, verified=True)

    submission = Scored(name="api", author="ada", optimizations=["kv-cache"], models={})
    submission.results, submission.scorecard = {}, "scored"
    submission.submit_to_leaderboard(board)
    (got,) = board.entries()
    assert (got.name, got.verified) == ("api", False), f"module 20's entry as recorded: {got}"


FAKE_SUBMISSION = """
from tinytorch.course.leaderboard import Entry, EventRecord


class InvalidSubmission(ValueError):
    pass


class TinyMLPerf:
    events = {{}}

    def __init__(self, warmup=None, runs=None, budget=None):
        pass


class Submission:
    name, author, optimizations, models = "fake", "ada", ("kv-cache",), {{}}

    def validate(self, benchmark):
        return []

    def compute_score(self, benchmark):
        return "score 2.000x"

    def to_entry(self):
        event = EventRecord("MLP_SPRINT", 0.4, 0.2, 2.0, "accuracy", 0.97, 0.95, True)
        return Entry("fake", "ada", 2.0, ("kv-cache",), (event,))


def build_submission():
    {build}
"""


def fake_module_20(folder: Path, build: str) -> Path:
    """A module 20 folder whose submission scores 2.0 (``build``: build_submission's body)."""
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(FAKE_SUBMISSION.format(build=build))
    return folder


def test_verify_re_runs_recorded_entries_and_records_the_score_beside_the_claim(tmp_path: Path) -> None:
    """`tinytorch leaderboard verify [--top N]` re-runs each entry from its recorded code, in a
    fresh interpreter: the re-measured score lands beside the claimed one; an entry whose folder
    is gone, whose run fails, or that names no code says so, and keeps its claim."""
    honest = fake_module_20(tmp_path / "honest" / "benchmarking", "return Submission()")
    crash = fake_module_20(tmp_path / "crash" / "benchmarking", "raise RuntimeError('the model crashed')")
    gone = fake_module_20(tmp_path / "gone" / "benchmarking", "return Submission()")
    db = tmp_path / "verify.sqlite3"
    board = Leaderboard(db)
    for name, cand, impl in (
        ("gone", 0.0003, f"katas,benchmarking={gone}"),
        ("no code", 0.003, ""),
        ("claims 1000x", 0.03, f"katas,benchmarking={honest}"),
        ("crashes", 0.1, f"solutions,benchmarking={crash}"),
    ):
        board.add(entry(name, events=(record(base=30.0, cand=cand),), impl=impl))
    for path in sorted(gone.rglob("*"), reverse=True) + [gone]:
        path.unlink() if path.is_file() else path.rmdir()
    out = io.StringIO()
    status = cli.main(["leaderboard", "verify", "--top", "2", "--db", str(db)], out)
    assert status == 1, f"an entry could not be re-measured: exit 1, got {status}: {out.getvalue()}"
    notes = {e.name: (e.remeasured_score, e.remeasure_note) for e in board.entries()}
    assert notes == {
        "gone": (None, f"folder gone: {gone}".replace(str(Path.home()), "~", 1)),
        "no code": (None, "no folder recorded"),
        "claims 1000x": (None, ""),
        "crashes": (None, ""),
    }, f"--top 2 re-runs the best two only: {notes}"
    out = io.StringIO()
    status = cli.main(["leaderboard", "verify", "--quick", "--db", str(db)], out)
    said = out.getvalue()
    got = {e.name: e for e in board.entries()}
    assert got["claims 1000x"].remeasured_score == pytest.approx(2.0, rel=1e-12), (
        f"the fake submission scores 2.0 when re-run: {got['claims 1000x']}; said {said}"
    )
    assert got["claims 1000x"].score == pytest.approx(1000.0) and not got["claims 1000x"].verified, (
        "the claim and the status stay as they were"
    )
    assert got["crashes"].remeasured_score is None, f"a failed run has no score: {got['crashes']}"
    assert got["crashes"].remeasure_note == "failed: RuntimeError: the model crashed", got["crashes"]
    assert status == 1 and "re-measured 2.000\u00d7 (claimed 1000.000\u00d7)" in said, said
    rows = {row[1].strip(): row[5].strip() for row in table_of(board.to_markdown())[2:]}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert rows["claims 1000x"] == f"2.00\u00d7 on {today}", f"re-measured cells: {rows}"
    assert rows["crashes"].startswith("failed: RuntimeError"), f"re-measured cells: {rows}"
    assert rows["gone"].startswith("folder gone") and rows["no code"] == "no folder recorded", rows
    for bad in (["--top", "0"], ["--timeout", "0"]):
        status = cli.main(["leaderboard", "verify", *bad, "--db", str(db)], io.StringIO())
        assert status == 2, f"leaderboard verify {' '.join(bad)}: a usage error, exit 2, got {status}"


def test_verify_says_why_it_could_not_re_measure(tmp_path: Path, monkeypatch) -> None:
    """Code the switch cannot serve, a run past its timeout and a run whose result is not a
    valid entry are each recorded as failed, with why; an empty board has nothing to verify."""
    board = Leaderboard(tmp_path / "why.sqlite3")
    out = io.StringIO()
    args = Namespace(action="verify", db=str(board.path), top=None, quick=True, timeout=0.5)
    assert leaderboard.cli_leaderboard(args, out) == 0 and "no entries to verify" in out.getvalue(), (
        f"verify on an empty board: {out.getvalue()!r}"
    )

    def run(command, **kwargs):
        """benchmarks/submit.py as the entry named by its impl behaves: too slow, lying, or honest
        (a score of 2.37 with its interval)."""
        impl = kwargs["env"]["TINYTORCH_IMPL"]
        if impl == "solutions":
            raise subprocess.TimeoutExpired(command, kwargs["timeout"])
        saved = Path(command[command.index("--save-json") + 1])
        if impl == "katas,profiling=solutions":
            saved.write_text(json.dumps(with_interval("measured", 2.37, 2.30, 2.45).to_dict()))
        else:
            saved.write_text(json.dumps({**entry().to_dict(), "score": 10**400}))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(leaderboard.commands.subprocess, "run", run)
    for name, impl in (
        ("slow", "solutions"),
        ("lies", "katas"),
        ("unserved", "katas,teleport=solutions"),
        ("honest", "katas,profiling=solutions"),
    ):
        board.add(entry(name, impl=impl))
    out = io.StringIO()
    assert leaderboard.cli_leaderboard(args, out) == 1, f"entries could not be re-measured: {out.getvalue()}"
    notes = {e.name: (e.remeasured_score, e.remeasure_note) for e in board.entries()}
    assert notes["slow"] == (None, "failed: no result within 0.5 s"), f"a run past its timeout: {notes}"
    assert notes["lies"][0] is None and notes["lies"][1].startswith(
        "failed: the run gave an invalid entry ("
    ), f"a run whose result is not a valid entry: {notes}"
    assert "score must be a number a float can hold" in notes["lies"][1], f"the reason is kept: {notes}"
    assert notes["unserved"][0] is None and "cannot be served" in notes["unserved"][1], (
        f"code the switch cannot serve (unknown module teleport): {notes}"
    )
    honest = next(e for e in board.entries() if e.name == "honest")
    assert (honest.remeasured_score, honest.remeasured_score_low, honest.remeasured_score_high) == (
        2.37,
        2.30,
        2.45,
    ), f"the re-measured score is recorded with its interval: {honest}"
    assert "re-measured 2.370\u00d7 (2.300\u20132.450)" in out.getvalue(), out.getvalue()
    assert "2.37\u00d7 (2.30\u20132.45) on " in board.to_markdown(), "the board shows the interval"


def test_submit_records_the_code_it_ran_as_absolute_folders(tmp_path: Path, monkeypatch) -> None:
    """The measured path records impl with every tree an absolute folder (what verify re-runs);
    --dry-run measures and adds nothing."""
    monkeypatch.setenv("TINYTORCH_IMPL", "solutions,caching=katas")
    assert leaderboard.resolved_impl() == f"{ROOT / 'solutions'},caching={ROOT / 'katas' / 'caching'}", (
        f"the recorded code: {leaderboard.resolved_impl()}"
    )
    from tinytorch.course import registry

    with monkeypatch.context() as patch:  # a checkout path TINYTORCH_IMPL cannot hold: kept as given
        patch.setattr(registry, "repo_root", lambda: Path("/tmp/a,b"))
        assert leaderboard.resolved_impl() == "solutions,caching=katas", "a root with a comma"

    def no_checkout() -> Path:
        raise FileNotFoundError("no katas/ folder")

    with monkeypatch.context() as patch:  # the grader's stage: no checkout, the value kept as given
        patch.setattr(registry, "repo_root", no_checkout)
        patch.setenv("TINYTORCH_IMPL", str(tmp_path))
        assert leaderboard.resolved_impl() == str(tmp_path), "a run without a checkout records its value"
    import tinytorch.perf.benchmarking as perf_benchmarking

    monkeypatch.setattr(perf_benchmarking, "build_submission", WatchedSubmission)
    monkeypatch.setattr(perf_benchmarking, "TinyMLPerf", WatchedCompetition)
    saved = tmp_path / "dry.json"
    args = Namespace(
        json=None, name=None, author=None, save_json=str(saved), db=str(tmp_path / "d.sqlite3"), quick=True,
        dry_run=True,
    )  # fmt: skip
    out = io.StringIO()
    assert leaderboard.cli_submit(args, out) == 0 and "dry run" in out.getvalue(), out.getvalue()
    assert len(Leaderboard(args.db)) == 0, "a dry run adds nothing"
    assert leaderboard.load_entry_json(saved).impl == leaderboard.resolved_impl(), "the entry names its code"
