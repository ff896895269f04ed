"""A failure's text cut to a few lines for a terminal, the values and Hypothesis's example kept.

pytest's JUnit message is cut after ten lines and a traceback runs to hundreds: the CLI shows a
failure in at most a dozen lines (the board, in one). The exception's first line always comes
first, the lines that carry the values (numpy's ACTUAL/DESIRED, pytest's "where") before the
others, a SyntaxError's source line and caret under it, and the example Hypothesis reports whole,
one argument a line. Advice the student cannot act on (Hypothesis's ``Verbosity``, ``@seed``) is
dropped.
"""

from __future__ import annotations

import re
import textwrap

# Hypothesis's "(note: 5 other explicit examples also failed with this error; use Verbosity.verbose
# to view)" names an API the student does not use; the CLI keeps only the count.
_HYPOTHESIS_NOTE = re.compile(r"\(note: (\d+ other explicit examples?) also failed with this error;[^)]*\)")
# The example Hypothesis reports with a failure, and what follows it.
_EXAMPLE = re.compile(r"^(Falsifying example|Failing explicit example|Falsifying explicit example)", re.M)
# pytest cuts a JUnit message after ten lines: "[+7 more lines; full report in element text]".
_JUNIT_CUT = re.compile(r"\n?\[\+\d+ more lines?; full report in element text\]$")
# Lines of an assertion message that carry the values, most telling first: numpy's ACTUAL/DESIRED
# arrays and its summary, pytest's "where" lines; then numpy's first mismatches.
_VALUE_LINES = (
    re.compile(
        r"^\s*(ACTUAL|DESIRED|[xy]): |^\s*Max absolute difference|^\s*Mismatched elements|"
        r"^\s*\+\s+where |^\s*(Left|Right) contains|^\s*At index"
    ),
    re.compile(r"\((ACTUAL|DESIRED)\)|^\s*Max relative difference"),
)


def summary_lines(message: str, details: str, max_lines: int = 12) -> list[str]:
    """At most ``max_lines`` lines that say what went wrong, from a test's message and traceback.

    The exception's first line always comes first (never a bare "..."); when the message is
    longer, the lines that carry the values (numpy's ACTUAL/DESIRED, pytest's "where") are kept
    before the others. The example Hypothesis reports follows whole, every argument on a line
    of its own (a long value cut in its middle), outside the bound: it is what decided the
    failure, and a bound of 1 (the board's one line) leaves it out.
    """
    lines = [
        _HYPOTHESIS_NOTE.sub(r"(\1 also failed with this error)", line.rstrip())
        for line in _full_message(message, details).splitlines()
        if line.strip()
    ]
    if not lines and details:
        lines = [line.rstrip() for line in details.strip().splitlines() if line.strip()][-3:]
    if len(lines) > 1 and re.fullmatch(r"[\w.]+:", lines[0].strip()):
        # "AssertionError:" alone on its line, as numpy writes it: join it with what follows
        lines[:2] = [f"{lines[0].strip()} {lines[1].strip()}"]
    if lines and _SYNTAX_ERROR.match(lines[0]):
        lines[1:1] = _syntax_error_source(details)
    example = _example_lines(details)
    if example and max_lines >= 4:
        return _excerpt(lines, max(2, max_lines - len(example))) + example
    return _excerpt(lines, max_lines)


_SYNTAX_ERROR = re.compile(r"(SyntaxError|IndentationError|TabError)\b")
# the offending line and its caret, as Python prints them after the error's `File "...", line N`
# (pytest prefixes them with "E" in a collection error)
_SYNTAX_SOURCE = re.compile(
    r'^E?[ \t]*File "[^"]+", line \d+\n((?:E?[ \t]+.*\n){1,3}?)'
    r"E?[ \t]*(SyntaxError|IndentationError|TabError)\b",
    re.MULTILINE,
)


def _syntax_error_source(details: str) -> list[str]:
    """The source line of a SyntaxError and the caret under it, from the traceback."""
    matches = list(_SYNTAX_SOURCE.finditer(details))
    if not matches:
        return []
    lines = [line[1:] if line.startswith("E") else line for line in matches[-1].group(1).splitlines()]
    return textwrap.indent(textwrap.dedent("\n".join(lines)), "    ").splitlines()


def _full_message(message: str, details: str) -> str:
    """The whole exception text: JUnit cuts long messages, the traceback in ``details`` has it all."""
    message = _JUNIT_CUT.sub("", message)
    first = message.splitlines()[0].rstrip() if message.strip() else ""
    start = details.rfind("\n" + first) if first else -1
    text = details[start + 1 :] if start >= 0 else message
    cut = _EXAMPLE.search(text)
    text = text[: cut.start()] if cut else text
    # what follows the exception: "(note: ...)" lines are kept, pytest's and Hypothesis's advice not
    kept = []
    for line in text.splitlines():
        if line.startswith(("You can reproduce", "You can add @seed", "Explanation:")):
            break
        kept.append(line)
    return "\n".join(kept)


# A value of Hypothesis's example longer than this (in characters, on one line) keeps its start
# and its end. The runner's child prints numpy arrays short already (pytest_plugin.array_summary).
EXAMPLE_VALUE_WIDTH = 160


def _example_lines(details: str) -> list[str]:
    """Hypothesis's ``Falsifying example: test(x=...)`` block, if the traceback has one: the call
    line, one line per argument (and per ``Draw`` of ``st.data()``), however many there are.

    Hypothesis spreads a long value over several lines (a list one item per line, an array one
    row per line); each value is joined into one line, and one still longer than
    ``EXAMPLE_VALUE_WIDTH`` is cut in its middle, saying how long it was.
    """
    match = _EXAMPLE.search(details)
    if not match:
        return []
    entries: list[list[str]] = []
    inside = False  # between "test(" and its ")": arguments are indented 4, their values deeper
    for line in details[match.start() :].split("\n\n")[0].splitlines():
        if not line.strip():
            continue
        if line.startswith(("You can reproduce", "You can add @seed", "Explanation:")):
            break
        indent = len(line) - len(line.lstrip())
        if not entries or indent <= (4 if inside else 0):
            entries.append([line.rstrip()])
            if len(entries) == 1:
                inside = line.rstrip().endswith("(")
            elif inside and line.strip() == ")" and indent == 0:
                inside = False
        else:
            entries[-1].append(line.strip())
    return [_one_line(entry) for entry in entries]


def _one_line(lines: list[str]) -> str:
    """One argument of an example on one line, cut in its middle when longer than the width."""
    text = " ".join(lines)
    indent = len(text) - len(text.lstrip())
    body = text[indent:]
    if len(body) <= EXAMPLE_VALUE_WIDTH:
        return text
    keep = EXAMPLE_VALUE_WIDTH // 2
    return f"{text[:indent]}{body[:keep]} ... {body[-keep // 2 :]}  [cut: {len(body)} characters]"


def _excerpt(lines: list[str], max_lines: int) -> list[str]:
    """``lines`` cut to ``max_lines``: the first line, then value-carrying lines, then the rest."""
    if len(lines) <= max_lines:
        return lines
    if max_lines <= 1:
        return lines[:1]

    def rank(i: int) -> tuple[int, int]:
        if i == 0:
            return (0, i)
        tier = next((t for t, pattern in enumerate(_VALUE_LINES, 1) if pattern.search(lines[i])), 3)
        return (tier, i)

    ranked = sorted(range(len(lines)), key=rank)
    keep = sorted(ranked[: max_lines - 1])
    return [lines[i] for i in keep] + ["..."]
