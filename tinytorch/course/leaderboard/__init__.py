"""The TinyMLPerf leaderboard: competition results kept in SQLite (standard library only).

Finished infrastructure for module 20 (benchmarking): a student's ``CompetitionSubmission``
turns its measured results into an :class:`Entry` and hands it to :meth:`Leaderboard.add`.

Where it lives. ``Leaderboard()`` opens ``$TINYTORCH_LEADERBOARD`` if set, else a per-user data
folder outside any checkout (:func:`default_path`): ``$XDG_DATA_HOME/tinytorch/leaderboard.sqlite3``
(``~/.local/share/...`` by default), ``~/Library/Application Support/tinytorch/...`` on macOS,
``%APPDATA%\\tinytorch\\...`` on Windows. Pass a path to keep a class's board anywhere.

Guarantees.

* An entry is checked in full before anything is written (:meth:`Entry.problems`): missing
  fields, NaN, infinite, zero or negative times, an unknown optimization, an event listed twice,
  a quality flag that contradicts its value and target, or a score that is not the geometric
  mean of the counted speedups. A rejected entry raises :class:`InvalidEntry` (a ``ValueError``)
  listing every reason, each naming its field, and the database is not touched.
* Figures are plausible measurements (:data:`FIGURE_RANGES`): a time between a nanosecond and
  a million seconds, a speedup between 1e-6 and 1e6; a 400-digit integer, a bool or a string in a
  figure is a reason like any other, never an ``OverflowError``.
* Texts are one line of visible text (:data:`TEXT_LIMITS`): a name and an author of at most 64
  characters; no control characters (``\\r`` or ``\\n`` would end a Markdown table row), no
  invisible format characters (zero-width, bidirectional overrides), no line or paragraph
  separators, no lone surrogates. Rendering escapes every text anyway (:func:`markdown_text`,
  ``html.escape``): a board written before these checks renders one row per entry too.
* One submission is one transaction (``BEGIN IMMEDIATE``: the write lock is taken before the
  first row): its submission row and its event rows land together or not at all. A process
  that crashes mid-submission leaves no partial rows (SQLite's journal rolls it back).
* Concurrent writers wait for each other (WAL journal, a busy timeout): two processes that
  submit at once both land.
* The schema carries a version (``PRAGMA user_version``, :data:`SCHEMA_VERSION`); a database
  written by a newer version is refused rather than misread, an older one is migrated in place
  (its entries keep every field and show "what ran" as not recorded).

Verified and unverified. An entry is ``verified`` only when the leaderboard's own process
measured it: ``tinytorch submit`` without ``--json`` runs the competition in a fresh interpreter
(``benchmarks/submit.py``) and records the score it measured. Every other way onto the board is
self-reported and recorded ``unverified``, whatever the entry says: ``tinytorch submit --json``
(figures from a file) and :meth:`Leaderboard.add`, the path of module 20's
``CompetitionSubmission.submit_to_leaderboard`` (figures from the caller's process).
``tinytorch leaderboard verify`` re-runs recorded entries from the code they name (``impl``, the
``TINYTORCH_IMPL`` of the run with every tree made an absolute folder) and records the score it
measures, with its 95 % interval, beside the claimed one, or why it could not (the folder is
gone, the run failed). What
verified means and what it does not: who measured, not whether the code is honest. The
submission's own code runs in the measuring process and the database is a file its owner can
edit; the status tells a measurement from a figure someone typed or passed in, and a re-run
shows whether the code still gives the claimed score.

What ran. The optimizations a submission names are its own claim. ``tinytorch submit`` also
records what the code shows (:class:`CodeWatch`, :func:`observe`): which tree served each kata
module (``student``: katas/, ``reference``: solutions/, ``folder``: a folder ``TINYTORCH_IMPL``
names) and, per optimization, the code that ran while the submission was built and while each
event's model ran once more after the timed runs: module 19's cache or the foundation's own
(``GPT.forward`` with ``past_kv``), module 18's pruning, events that ran without a single forward
of the foundation's layers (fused inference), and so on (:data:`EVIDENCE`). The board shows
both next to the names, with the date (UTC) and the machine (CPU model, cores, OS, numpy's BLAS
and the kernels it runs; no host or user name).

Rendering: :meth:`Leaderboard.to_markdown` (a table for a README or a terminal) and
:meth:`Leaderboard.to_html` (one self-contained static page, no scripts, no external files,
every value escaped). The CLI shows it with ``tinytorch leaderboard`` and submits with
``tinytorch submit``.

The parts, one file each: ``entry.py`` (what a submission is and every check it passes),
``store.py`` (the SQLite board: schema, migrations, transactions), ``render.py`` (the Markdown
and HTML boards, shared ranks), ``watch.py`` (what ran), ``machine.py`` (where it was measured)
and ``commands.py`` (``tinytorch leaderboard [verify]`` and ``tinytorch submit``). Every name is
importable from ``tinytorch.course.leaderboard`` itself, the one path katas, solutions, tests,
benchmarks and the grader use.
"""

from tinytorch.course.leaderboard.commands import (
    QUICK_BUDGET,
    VERIFY_TIMEOUT,
    Remeasured,
    add_leaderboard_arguments,
    add_submit_arguments,
    cli_leaderboard,
    cli_submit,
    cli_verify,
    load_entry_json,
    remeasure,
    resolved_impl,
)

# ``tinytorch submit``'s measured path with a given submission and benchmark: module 20's tests
# and the grader's reference key call it to compare the CLI's entry with the API's.
from tinytorch.course.leaderboard.commands import _run_submission as _run_submission
from tinytorch.course.leaderboard.entry import (
    FIGURE_RANGES,
    FORBIDDEN_CATEGORIES,
    OPTIMIZATIONS,
    TEXT_LIMITS,
    Entry,
    EventRecord,
    InvalidEntry,
    figure_problem,
    format_interval,
    geometric_mean,
    text_problem,
)
from tinytorch.course.leaderboard.machine import blas_kernel, blas_summary, cpu_model, machine_description
from tinytorch.course.leaderboard.render import (
    RANK_NOTE,
    STATUS_NOTE,
    UNVERIFIED,
    VERIFIED,
    WHAT_RAN_NOTE,
    code_text,
    markdown_text,
    optimizations_text,
    tie_ranks,
)
from tinytorch.course.leaderboard.store import ENV_VAR, SCHEMA_VERSION, Leaderboard, default_path
from tinytorch.course.leaderboard.watch import (
    EVIDENCE,
    FOUNDATION_CACHE,
    NOT_RECORDED,
    NOT_SEEN,
    SOURCES,
    CodeWatch,
    kata_module_of,
    observe,
    served_modules,
    watch_events,
)

__all__ = [
    "ENV_VAR",
    "EVIDENCE",
    "FIGURE_RANGES",
    "FORBIDDEN_CATEGORIES",
    "FOUNDATION_CACHE",
    "NOT_RECORDED",
    "NOT_SEEN",
    "OPTIMIZATIONS",
    "QUICK_BUDGET",
    "RANK_NOTE",
    "SCHEMA_VERSION",
    "SOURCES",
    "STATUS_NOTE",
    "TEXT_LIMITS",
    "UNVERIFIED",
    "VERIFIED",
    "VERIFY_TIMEOUT",
    "WHAT_RAN_NOTE",
    "CodeWatch",
    "Entry",
    "EventRecord",
    "InvalidEntry",
    "Leaderboard",
    "add_leaderboard_arguments",
    "add_submit_arguments",
    "blas_kernel",
    "blas_summary",
    "cli_leaderboard",
    "cli_submit",
    "cli_verify",
    "code_text",
    "cpu_model",
    "default_path",
    "figure_problem",
    "format_interval",
    "geometric_mean",
    "kata_module_of",
    "load_entry_json",
    "machine_description",
    "markdown_text",
    "observe",
    "optimizations_text",
    "Remeasured",
    "remeasure",
    "resolved_impl",
    "served_modules",
    "text_problem",
    "tie_ranks",
    "watch_events",
]
