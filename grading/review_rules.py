"""The rules of the static review of a submission (``grading/review.py``) and the findings it reports.

Every rule is a line of :data:`RULES`: what it matches (an import, an attribute, a builtin used by
name, a call whose attribute name is computed, a write into an imported module, a file that cannot
be reviewed) and the reason it is listed. This table is what an instructor reads to know what a
finding means and why it is there; the reviewer in ``grading/review.py`` reads a file and applies
it. A :class:`Finding` is one line of the report; :func:`allowed` says whether an entry of a
module's ``review_allow`` silences it by name or subject (rules 1 and 2 of ``grading/review.py``'s
docstring; rule 3 needs the file); :func:`summarize` and :func:`summarize_modules` put findings in
a gradebook cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple


class Rule(NamedTuple):
    kind: str  # "import" | "attribute" | "builtin" | "dynamic" | "patch" | "file"
    key: str
    reason: str
    self_ok: bool = False  # an attribute that is ordinary Python on `self` (self.__dict__)


# The rules, in one place. What each kind matches, and the finding's name:
#   import     `import K`, `import K.x`, `from K(.x) import ...`, `__import__("K")`,
#              `importlib.import_module("K")`                             -> "import K"
#   attribute  `x.K` (read, written or deleted), `getattr(x, "K")` and the like, a string
#              constant naming it ("K" or "a.K", as attrgetter takes), a bare name `K`   -> "K"
#   builtin    the builtin `K` by name: called, or passed around (f = eval)          -> "K"
#   dynamic    `K(obj, name)` whose name is not a literal (nor a loop variable over a literal
#              tuple of strings); also `K` passed around as a value     -> "K(non-literal)"
#   patch      `M.x = ...`, `del M.x`, `setattr(M, ...)` where M is a name the file imports
#              from outside its own package (a module, a class, a function)  -> "patch <top module>"
#   file       a file that cannot be reviewed                                   -> the key
RULES: tuple[Rule, ...] = (
    # -- imports: nothing in a kata needs these modules --
    Rule("import", "gc", "reaches every live object, the grader's in-memory checks included"),
    Rule("import", "ctypes", "reads and writes raw memory, beneath every Python-level check"),
    Rule("import", "_ctypes", "ctypes under its C name"),
    Rule("import", "os", "processes, signals, the environment and files"),
    Rule("import", "posix", "os under its C name"),
    Rule("import", "nt", "os under its C name (Windows)"),
    Rule("import", "sys", "the loaded modules (the tests' among them), frames, exit"),
    Rule("import", "inspect", "the caller's frames, source and closures: the tests'"),
    Rule("import", "importlib", "imports by computed names, reloads and replaces modules"),
    Rule("import", "_imp", "the import machinery's C core"),
    Rule("import", "signal", "signals and alarms: the grader's timeouts"),
    Rule("import", "_signal", "signal under its C name"),
    Rule("import", "subprocess", "starts processes"),
    Rule("import", "_posixsubprocess", "subprocess's C core: starts processes"),
    Rule("import", "pty", "starts processes on a terminal"),
    Rule("import", "pytest", "the test runner itself: a kata never drives it"),
    Rule("import", "_pytest", "pytest's internals: its reports and outcomes"),
    Rule("import", "pluggy", "pytest's hook machinery: rewrites reports"),
    Rule("import", "hypothesis", "the tests' example generator: its settings and its database"),
    Rule("import", "unittest", "unittest.mock.patch rewires any module's names, the tests' included"),
    Rule("import", "builtins", "rebinds the builtins that every module, the tests included, sees"),
    Rule("import", "threading", "code that runs on after the call returns, beside the tests"),
    Rule("import", "_thread", "threading's C core"),
    Rule("import", "multiprocessing", "starts processes"),
    Rule("import", "concurrent", "thread and process pools"),
    Rule("import", "asyncio", "subprocesses and sockets"),
    Rule("import", "socket", "the network: data leaves the grader (exfiltration)"),
    Rule("import", "urllib", "the network: data leaves the grader (exfiltration)"),
    Rule("import", "http", "the network: data leaves the grader (exfiltration)"),
    Rule("import", "marshal", "turns bytes into code objects"),
    Rule("import", "pickle", "runs code while loading; the course stores .npz and JSON only"),
    Rule("import", "shelve", "pickle in a file"),
    Rule("import", "zlib", "packs data to smuggle it out through the output (exfiltration)"),
    Rule("import", "base64", "encodes data to smuggle it out through the output (exfiltration)"),
    Rule("import", "resource", "changes the process's limits: the grader's memory limit"),
    Rule("import", "atexit", "runs code after the tests, when the grader reads the results"),
    Rule("import", "faulthandler", "dumps stacks and hooks the grader's signals"),
    Rule("import", "mmap", "maps memory and files"),
    Rule("import", "fcntl", "file descriptors beneath Python: the grader's pipe"),
    Rule("import", "sysconfig", "locates the interpreter's installation and site-packages"),
    Rule("import", "shutil", "copies and deletes whole trees"),
    Rule("import", "dis", "disassembles loaded bytecode: the checks' constants"),
    Rule("import", "code", "an interactive interpreter: runs strings as code"),
    Rule("import", "codeop", "compiles strings as code"),
    Rule("import", "tests", "the grader's tests: a kata never reads them"),
    Rule("import", "conftest", "the grader's pytest configuration"),
    Rule("import", "grading", "the grader itself"),
    Rule("import", "solutions", "the reference bodies: never a student's"),
    # -- attributes: introspection a kata never needs --
    Rule("attribute", "__code__", "a function's bytecode and constants: rewrites or reads a check"),
    Rule("attribute", "__globals__", "a function's module namespace: rebinds the tests' names"),
    Rule("attribute", "__closure__", "a function's captured variables: a check's expected values"),
    Rule("attribute", "__defaults__", "a function's default arguments: changes a check's parameters"),
    Rule("attribute", "__kwdefaults__", "a function's default arguments: changes a check's parameters"),
    Rule("attribute", "__builtins__", "the builtins every module sees, the tests' included"),
    Rule("attribute", "__subclasses__", "every class in the process: the classic escape to os and sys"),
    Rule("attribute", "__bases__", "climbs the class tree towards object.__subclasses__"),
    Rule("attribute", "__base__", "climbs the class tree towards object.__subclasses__"),
    Rule("attribute", "__mro__", "climbs the class tree towards object.__subclasses__"),
    Rule("attribute", "__class__", "the first step of the climb to object (on self it is type(self))", True),
    Rule("attribute", "__dict__", "writes another object's or module's namespace (self's own is fine)", True),
    Rule("attribute", "__self__", "a builtin's module (builtins) or a bound method's object"),
    Rule("attribute", "__getattribute__", "getattr under another name"),
    Rule("attribute", "__traceback__", "an exception's traceback: the way to the frames"),
    Rule("attribute", "__file__", "where a module lives on disk: the way to the grader's files"),
    Rule("attribute", "__loader__", "a module's loader: the source of loaded modules, the tests'"),
    Rule("attribute", "__spec__", "a module's import spec: where the tests and the reference live"),
    Rule("attribute", "f_back", "the caller's frame: the test that called the kata (frame walking)"),
    Rule("attribute", "f_globals", "a frame's module namespace (frame walking)"),
    Rule("attribute", "f_locals", "a frame's local variables: the test's expected values (frame walking)"),
    Rule("attribute", "f_builtins", "a frame's builtins (frame walking)"),
    Rule("attribute", "f_code", "a frame's code object (frame walking)"),
    Rule("attribute", "gi_frame", "a generator's frame (frame walking)"),
    Rule("attribute", "cr_frame", "a coroutine's frame (frame walking)"),
    Rule("attribute", "ag_frame", "an async generator's frame (frame walking)"),
    Rule("attribute", "tb_frame", "a traceback's frame (frame walking)"),
    Rule("attribute", "tb_next", "walks a traceback to the frames (frame walking)"),
    # -- builtins used by name --
    Rule("builtin", "exec", "runs code built from strings: nothing left to review"),
    Rule("builtin", "eval", "runs code built from strings: nothing left to review"),
    Rule("builtin", "compile", "turns strings into code objects"),
    Rule("builtin", "__import__", "imports by a computed name"),
    Rule("builtin", "globals", "the module namespace as a dict: rebinds names by string"),
    Rule("builtin", "locals", "a namespace as a dict: reads names by string"),
    Rule("builtin", "vars", "an object's or module's namespace as a dict"),
    Rule("builtin", "breakpoint", "stops in a debugger: hangs the grader"),
    Rule("builtin", "open", "a kata reads and writes no files"),
    Rule("builtin", "exit", "ends the interpreter: a kata returns"),
    Rule("builtin", "quit", "ends the interpreter: a kata returns"),
    Rule("builtin", "SystemExit", "raised, ends the test run rather than failing a test"),
    Rule("builtin", "KeyboardInterrupt", "raised, stops the whole test run"),
    # -- calls whose attribute name is computed at run time --
    Rule("dynamic", "getattr", "the attribute's name is decided at run time: it may be any listed here"),
    Rule("dynamic", "setattr", "the attribute's name is decided at run time: it may be any listed here"),
    Rule("dynamic", "delattr", "the attribute's name is decided at run time: it may be any listed here"),
    Rule("dynamic", "attrgetter", "getattr by a name decided at run time (operator.attrgetter)"),
    Rule("dynamic", "methodcaller", "calls a method by a name decided at run time (operator.methodcaller)"),
    # -- writing into what the file imports --
    Rule("patch", "patch", "changes an imported module, class or function for every caller, the tests too"),
    # -- files that cannot be reviewed --
    Rule("file", "syntax error", "does not parse: nothing in it was reviewed"),
    Rule("file", "file too large", "over the size limit: not reviewed"),
    Rule("file", "unreadable file", "could not be read: not reviewed"),
    Rule("file", "too many files", "over the file limit: the rest were not reviewed"),
    Rule("file", "too many findings", "over the findings limit: the rest are not listed"),
)


IMPORTS = {r.key: r for r in RULES if r.kind == "import"}
ATTRIBUTES = {r.key: r for r in RULES if r.kind == "attribute"}
BUILTINS = {r.key: r for r in RULES if r.kind == "builtin"}
DYNAMIC = {r.key: r for r in RULES if r.kind == "dynamic"}
PATCH = next(r for r in RULES if r.kind == "patch")
FILE_RULES = {r.key: r for r in RULES if r.kind == "file"}

NON_LITERAL = "(non-literal)"


@dataclass(frozen=True, order=True)
class Finding:
    """One thing the review lists: ``file`` (posix, relative to the reviewed folder), ``line``
    (1-based; 0 for the file as a whole), ``name`` (a short stable key: ``import gc``,
    ``__globals__``, ``getattr(non-literal)``, ``exec``, ``patch numpy``, ``syntax error``) and
    ``text`` (one line saying what was found and why it is listed)."""

    file: str
    line: int
    name: str
    text: str

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.name}: {self.text}"


def subject(name: str) -> str:
    """What an allow entry may name instead of the whole finding: the module of ``import os``
    (``os``), the function of ``getattr(non-literal)`` (``getattr``); else the name itself."""
    if name.startswith("import "):
        return name[len("import ") :]
    if name.endswith(NON_LITERAL):
        return name[: -len(NON_LITERAL)]
    return name


def allowed(name: str, allow: Iterable[str]) -> bool:
    """True when an entry of ``allow`` is the finding's ``name`` or its :func:`subject` (rules 1
    and 2 of ``grading/review.py``'s docstring; rule 3, per use of a module, needs the file: see
    :func:`grading.review.review_source`)."""
    allow = set(allow)
    return name in allow or subject(name) in allow


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one printable line of at most ``limit`` characters (cut with an ellipsis)."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(findings: Sequence[Finding], max_chars: int = 200) -> str:
    """One line for a gradebook cell: ``import gc (core.py:3); __globals__ (core.py:10); +2 more``.

    The findings in order, as many as fit in ``max_chars`` (at least 40) together with the count
    of the rest; the text is never longer, whatever the file names. "" when there are none.
    """
    max_chars = max(max_chars, 40)
    items = [one_line(f"{f.name} ({f.file}:{f.line})", max_chars) for f in findings]
    shown: list[str] = []
    for item in items:
        rest = len(items) - len(shown) - 1
        candidate = "; ".join([*shown, item]) + (f"; +{rest} more" if rest else "")
        if len(candidate) > max_chars:
            break
        shown.append(item)
    if len(shown) == len(items):
        return "; ".join(shown)
    if shown:  # fitted, tail included, when the last one shown was added
        return "; ".join(shown) + f"; +{len(items) - len(shown)} more"
    tail = f"; +{len(items) - 1} more" if len(items) > 1 else ""  # even the first is too long: cut it
    return items[0][: max_chars - len(tail) - 1] + "…" + tail


def summarize_modules(by_module: Mapping[str, Sequence[Finding]], max_chars: int = 200) -> str:
    """One line per module with findings, ``<module>: <summarize(...)>``, for a per-student cell;
    each line at most ``max_chars``; "" when no module has any."""
    lines = []
    for module, findings in by_module.items():
        if findings:
            label = one_line(str(module), 40)
            lines.append(f"{label}: {summarize(findings, max(max_chars - len(label) - 2, 20))}")
    return "\n".join(lines)
