"""The board on disk: SQLite (standard library only), one transaction per submission.

:class:`Leaderboard` opens ``$TINYTORCH_LEADERBOARD`` if set, else a per-user data folder
outside any checkout (:func:`default_path`), and creates or migrates its schema on first use.
It checks each entry in full before writing (``Entry.check``), writes a submission's row and its
event rows in one ``BEGIN IMMEDIATE`` transaction (all or nothing, even when the process dies
mid-way), lets concurrent writers wait for each other (WAL journal, a busy timeout), refuses a
database of a newer schema (:data:`SCHEMA_VERSION`, ``PRAGMA user_version``) and migrates an
older one in place (:data:`_MIGRATIONS`). It reads back only complete submissions, best first,
and hands them to :mod:`~tinytorch.course.leaderboard.render` for the Markdown and HTML boards.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tinytorch.course.leaderboard import render
from tinytorch.course.leaderboard.entry import (
    Entry,
    EventRecord,
    InvalidEntry,
    remeasurement_problems,
    text_problem,
)

SCHEMA_VERSION = 5
ENV_VAR = "TINYTORCH_LEADERBOARD"
FILE_NAME = "leaderboard.sqlite3"


def default_path() -> Path:
    """``$TINYTORCH_LEADERBOARD``, else the per-user data folder's ``tinytorch/leaderboard.sqlite3``."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":  # pragma: no cover - platform specific
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":  # pragma: no cover - platform specific
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "tinytorch" / FILE_NAME


_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL CHECK (length(name) > 0),
    author        TEXT NOT NULL CHECK (length(author) > 0),
    score         REAL NOT NULL CHECK (score > 0),
    optimizations TEXT NOT NULL,
    impl          TEXT NOT NULL DEFAULT '',
    machine       TEXT NOT NULL DEFAULT '',
    notes         TEXT NOT NULL DEFAULT '',
    created_at    REAL NOT NULL,
    n_events      INTEGER NOT NULL CHECK (n_events > 0)
);
CREATE TABLE IF NOT EXISTS events (
    submission_id     INTEGER NOT NULL REFERENCES submissions(id) ON DELETE CASCADE,
    event             TEXT NOT NULL,
    baseline_seconds  REAL NOT NULL CHECK (baseline_seconds > 0),
    candidate_seconds REAL NOT NULL CHECK (candidate_seconds > 0),
    speedup           REAL NOT NULL CHECK (speedup > 0),
    quality_metric    TEXT NOT NULL,
    quality_value     REAL NOT NULL,
    quality_target    REAL NOT NULL,
    passed            INTEGER NOT NULL CHECK (passed IN (0, 1)),
    reason            TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (submission_id, event)
);
CREATE INDEX IF NOT EXISTS submissions_by_score ON submissions(score DESC);
"""

# version -> the statements that bring a database of the version before it up to it. _SCHEMA
# is version 1 and stays as it was, so a new database and a migrated one end up alike.
_MIGRATIONS = {
    2: """
ALTER TABLE submissions ADD COLUMN observed TEXT NOT NULL DEFAULT '{}';
ALTER TABLE submissions ADD COLUMN served TEXT NOT NULL DEFAULT '{}'
""",
    # who measured (1: the board's own `tinytorch submit`; entries of older boards are
    # unverified) and the last re-measurement of `tinytorch leaderboard verify`
    3: """
ALTER TABLE submissions ADD COLUMN verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1));
ALTER TABLE submissions ADD COLUMN remeasured_score REAL
    CHECK (remeasured_score IS NULL OR remeasured_score > 0);
ALTER TABLE submissions ADD COLUMN remeasured_at REAL;
ALTER TABLE submissions ADD COLUMN remeasure_note TEXT NOT NULL DEFAULT ''
""",
    # 95 % intervals of the score and of each event's speedup (NULL: recorded before them)
    4: """
ALTER TABLE submissions ADD COLUMN score_low REAL CHECK (score_low IS NULL OR score_low > 0);
ALTER TABLE submissions ADD COLUMN score_high REAL CHECK (score_high IS NULL OR score_high > 0);
ALTER TABLE events ADD COLUMN speedup_low REAL CHECK (speedup_low IS NULL OR speedup_low > 0);
ALTER TABLE events ADD COLUMN speedup_high REAL CHECK (speedup_high IS NULL OR speedup_high > 0)
""",
    # the 95 % interval of the score `tinytorch leaderboard verify` re-measured (NULL: none)
    5: """
ALTER TABLE submissions ADD COLUMN remeasured_score_low REAL
    CHECK (remeasured_score_low IS NULL OR remeasured_score_low > 0);
ALTER TABLE submissions ADD COLUMN remeasured_score_high REAL
    CHECK (remeasured_score_high IS NULL OR remeasured_score_high > 0)
""",
}


class Leaderboard:
    """The leaderboard database at ``path`` (default :func:`default_path`), created on first use.

    >>> board = Leaderboard("/tmp/class.sqlite3")
    >>> board.add(entry)          # the new entry's id; InvalidEntry leaves the board unchanged
    >>> print(board.to_markdown())
    """

    def __init__(self, path: str | os.PathLike | None = None, timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.timeout = float(timeout)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            self._migrate(db)

    def _connect(self) -> _Connection:
        return _Connection(self.path, self.timeout)

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: leaderboard schema version {version} is newer than this tinytorch "
                    f"understands ({SCHEMA_VERSION}); upgrade tinytorch or use another file"
                )
            if version < 1:
                db.executescript_in_transaction(_SCHEMA)
            for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                db.executescript_in_transaction(_MIGRATIONS[step])
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        with self._connect() as db:
            return db.execute("PRAGMA user_version").fetchone()[0]

    def add(self, entry: Entry, _fault: Callable[[], None] | None = None) -> int:
        """Record ``entry`` in one transaction and return its id.

        The entry is self-reported: recorded unverified and not re-measured, whatever its
        ``verified`` and ``remeasured_*`` fields say (only ``tinytorch submit``'s own measurement
        is recorded verified, and only ``tinytorch leaderboard verify`` re-measures). Raises
        :class:`InvalidEntry` (nothing written) when :meth:`Entry.problems` finds any.
        ``_fault`` is for tests: called between the submission row and its event rows, it
        simulates a crash in the middle of a submission.
        """
        return self._add(entry, verified=False, _fault=_fault)

    def _add(self, entry: Entry, verified: bool, _fault: Callable[[], None] | None = None) -> int:
        """:meth:`add`, recording ``verified`` as given (``cli_submit``'s measured path)."""
        if not isinstance(entry, Entry):
            raise TypeError(f"entry must be a leaderboard Entry, got {type(entry).__name__}")
        entry.check()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                cursor = db.execute(
                    "INSERT INTO submissions (name, author, score, optimizations, impl, machine, notes, "
                    "observed, served, created_at, n_events, verified, score_low, score_high) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        entry.name.strip(),
                        entry.author.strip(),
                        float(entry.score),
                        json.dumps(list(entry.optimizations)),
                        entry.impl,
                        entry.machine,
                        entry.notes,
                        json.dumps(dict(entry.observed)),
                        json.dumps(dict(entry.served)),
                        time.time() if entry.created_at is None else float(entry.created_at),
                        len(entry.events),
                        int(bool(verified)),
                        *(entry.bounds or (None, None)),
                    ),
                )
                submission_id = int(cursor.lastrowid)
                if _fault is not None:
                    _fault()
                db.executemany(
                    "INSERT INTO events (submission_id, event, baseline_seconds, candidate_seconds, speedup, "
                    "quality_metric, quality_value, quality_target, passed, reason, speedup_low, "
                    "speedup_high) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            submission_id,
                            e.event,
                            float(e.baseline_seconds),
                            float(e.candidate_seconds),
                            float(e.speedup),
                            e.quality_metric,
                            float(e.quality_value),
                            float(e.quality_target),
                            int(e.passed),
                            e.reason,
                            *(e.bounds or (None, None)),
                        )
                        for e in entry.events
                    ],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return submission_id

    def entries(self, limit: int | None = None) -> list[Entry]:
        """Every complete entry, best score first (ties: earlier first)."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        with self._connect() as db:
            db.execute("BEGIN")  # one consistent snapshot for both queries
            rows = db.execute(
                "SELECT s.* FROM submissions s WHERE s.n_events = "
                "(SELECT count(*) FROM events e WHERE e.submission_id = s.id) "
                "ORDER BY s.score DESC, s.created_at, s.id" + (f" LIMIT {int(limit)}" if limit else "")
            ).fetchall()
            events: dict[int, list[EventRecord]] = {}
            for row in db.execute("SELECT * FROM events ORDER BY submission_id, rowid"):
                record = {k: row[k] for k in row.keys() if k != "submission_id"}
                record["passed"] = bool(record["passed"])
                events.setdefault(row["submission_id"], []).append(EventRecord(**record))
            db.execute("COMMIT")
        return [
            Entry(
                name=r["name"],
                author=r["author"],
                score=r["score"],
                optimizations=tuple(json.loads(r["optimizations"])),
                events=tuple(events.get(r["id"], ())),
                impl=r["impl"],
                machine=r["machine"],
                notes=r["notes"],
                observed=_json_map(r["observed"]),
                served=_json_map(r["served"]),
                id=r["id"],
                created_at=r["created_at"],
                verified=bool(r["verified"]),
                remeasured_score=r["remeasured_score"],
                remeasured_at=r["remeasured_at"],
                remeasure_note=r["remeasure_note"],
                remeasured_score_low=r["remeasured_score_low"],
                remeasured_score_high=r["remeasured_score_high"],
                score_low=r["score_low"],
                score_high=r["score_high"],
            )
            for r in rows
        ]

    def _record_remeasurement(
        self,
        entry_id: int,
        score: float | None,
        note: str = "",
        at: float | None = None,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        """Record what ``tinytorch leaderboard verify`` measured for entry ``entry_id``: the score
        (None when it could not measure one) with its 95 % interval ``bounds`` (None: the run gave
        none) and ``note`` (why not; "" when it did), at ``at`` (default: now). The claimed score
        and the status stay as they were."""
        low, high = bounds if bounds is not None else (None, None)
        found = remeasurement_problems(score, low, high)
        why = text_problem("remeasure_note", note)
        if found or why:
            raise InvalidEntry(found + ([why] if why else []))
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                cursor = db.execute(
                    "UPDATE submissions SET remeasured_score = ?, remeasured_score_low = ?, "
                    "remeasured_score_high = ?, remeasured_at = ?, remeasure_note = ? WHERE id = ?",
                    (
                        None if score is None else float(score),
                        None if low is None else float(low),
                        None if high is None else float(high),
                        time.time() if at is None else at,
                        note,
                        entry_id,
                    ),
                )
                if cursor.rowcount != 1:
                    raise KeyError(f"no submission with id {entry_id}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT count(*) FROM submissions").fetchone()[0]

    def integrity_problems(self) -> list[str]:
        """SQLite's own integrity check plus ours: every submission has exactly its events."""
        with self._connect() as db:
            found = [row[0] for row in db.execute("PRAGMA integrity_check") if row[0] != "ok"]
            for sid, n, have in db.execute(
                "SELECT s.id, s.n_events, (SELECT count(*) FROM events e WHERE e.submission_id = s.id) "
                "FROM submissions s"
            ):
                if n != have:
                    found.append(f"submission {sid}: {have} event rows, expected {n}")
            orphans = db.execute(
                "SELECT count(*) FROM events WHERE submission_id NOT IN (SELECT id FROM submissions)"
            ).fetchone()[0]
            if orphans:
                found.append(f"{orphans} event rows without a submission")
        return found

    def to_markdown(self, limit: int | None = None) -> str:
        """The board (its best ``limit`` entries, or all) as a Markdown table
        (:func:`~tinytorch.course.leaderboard.render.to_markdown`)."""
        return render.to_markdown(self.entries(limit))

    def to_html(self, limit: int | None = None, title: str = "TinyMLPerf leaderboard") -> str:
        """The board (its best ``limit`` entries, or all) as one self-contained static HTML page
        (:func:`~tinytorch.course.leaderboard.render.to_html`)."""
        return render.to_html(self.entries(limit), title)


def _json_map(text: str) -> dict[str, str]:
    """A stored name -> text map; {} (not recorded) for anything else."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class _Connection:
    """A sqlite3 connection opened for one operation and always closed (a context manager).

    Autocommit mode (``isolation_level=None``): transactions are explicit ``BEGIN``/``COMMIT``.
    WAL lets readers run while a writer commits; ``busy_timeout`` makes a second writer wait.
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA synchronous = FULL")

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self.db.executemany(sql, rows)

    def executescript_in_transaction(self, script: str) -> None:
        """Run ``;``-separated statements one by one (``executescript`` would COMMIT first)."""
        for statement in script.split(";"):
            if statement.strip():
                self.db.execute(statement)
