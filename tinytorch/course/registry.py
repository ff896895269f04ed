"""The module registry: one data file (``tinytorch/course/modules.toml``) read by every tool.

Nothing else in the repository lists module numbers, names, paths, markers, points or hints;
import them from here.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REGISTRY_FILE = Path(__file__).with_name("modules.toml")
STATUSES = ("ready", "planned")


HINT_LEVELS = ("nudge", "recipe")  # a hint's `level`; "recipe": near-code, the last rung of a ladder
# what a copy of the registry holds (its top-level `hints`): a student release may leave out the
# recipe levels ("nudges") or every hint ("none")
HINTS_HELD = ("all", "nudges", "none")
# a hint without a `level` is a recipe when its lead-in says so ("summarize, the recipe: ...")
RECIPE_LEAD = re.compile(r"(?:(?!: |\. ).)*?\bthe recipe\b")


@dataclass(frozen=True)
class Hint:
    tests: str  # substring of a test id this hint is for; "": the module's general advice
    text: str
    level: str = "nudge"  # "recipe" for the near-code recipe, else a nudge
    see: tuple[str, ...] = ()  # names of tests whose hints this one points to: they follow it

    @property
    def general(self) -> bool:
        """The module's general advice (``tests = ""``), not a rung of any test's ladder."""
        return not self.tests

    @property
    def recipe(self) -> bool:
        return self.level == "recipe"


@dataclass(frozen=True)
class Module:
    number: int
    name: str
    title: str
    kata: str
    solution: str
    tests: str
    points: int
    status: str
    hints: tuple[Hint, ...] = field(default=())
    # instructor-only test files of the module (relative to the root): graded, never released
    hidden: tuple[str, ...] = field(default=())
    # the module's answer key (relative to the root): held-out checks whose values the grader
    # compares with the reference's (grading/answerkey.py); instructor-only, never released
    key: str = ""
    # names a submission of this module may use that the grader's static review would otherwise
    # list (grading/review.py): imports such as "os" and constructs such as "getattr"
    review_allow: tuple[str, ...] = field(default=())
    # the functions of other modules this module's tests and reference call, each a function the
    # student writes there: "<module>.<qualified name>", e.g. "acceleration.OptimizedBackend.dispatch"
    needs: tuple[str, ...] = field(default=())
    # (kata function, test name): a test that fails because the function is not written yet (its
    # NotImplementedError) gets the hints of that test first
    ladders: tuple[tuple[str, str], ...] = field(default=())

    @property
    def marker(self) -> str:
        """The pytest marker of the module's tests: its name."""
        return self.name

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def tree(self, impl: str) -> str:
        """The folder (relative to the root) that serves this module for ``impl``."""
        if impl == "katas":
            return self.kata
        if impl == "solutions":
            return self.solution
        raise ValueError(f"impl must be 'katas' or 'solutions', got {impl!r}")

    def hints_for(self, test_id: str) -> list[Hint]:
        """The ladder of one test id: its own hints (``tests`` a substring of the id), in registry
        order, each followed by the ladders of the tests it names in ``see``; every hint once. The
        module's general hints are not on it (:attr:`general_hints`)."""
        ladder: list[Hint] = []

        def climb(name: str, seen: frozenset[str]) -> None:
            for hint in self.hints:
                if hint.general or hint.tests not in name or hint in ladder:
                    continue
                ladder.append(hint)
                for other in hint.see:
                    if not any(other in name for name in seen):  # a test on the way: its hints come anyway
                        climb(other, seen | {other})

        climb(test_id, frozenset({test_id}))
        return ladder

    @property
    def general_hints(self) -> list[Hint]:
        """The module's general advice (``tests = ""``): shown once, before the first hint a
        student takes in the module, and where a failing test has no hint of its own."""
        return [h for h in self.hints if h.general]

    def ladder_test(self, function: str) -> str | None:
        """The test whose hints teach kata function ``function`` (its qualified name, as its
        ``NotImplementedError`` gives it), from the module's ``ladders``; None if none is named."""
        return dict(self.ladders).get(function)

    def needs_by_module(self) -> dict[str, list[str]]:
        """The needed functions grouped by the module that defines them, in registry order:
        ``{"acceleration": ["operand_kind", "OptimizedBackend.dispatch"]}``."""
        grouped: dict[str, list[str]] = {}
        for need in self.needs:
            name, _, function = need.partition(".")
            grouped.setdefault(name, []).append(function)
        return grouped

    def mistakes_for(self, test_id: str) -> list[MistakeNote]:
        """The classic mistakes of this module whose ``caught_by`` is a substring of ``test_id``."""
        return [m for m in mistakes(self.name) if m.caught_by in test_id]


class RegistryError(ValueError):
    """The registry file is missing, is not TOML, or does not describe the modules; the message
    names the file and, where it can, the entry and the field."""


# The fields of a [[module]] entry and their types; `hint` (a list of tables) is optional.
FIELDS = {
    "number": int,
    "name": str,
    "title": str,
    "kata": str,
    "solution": str,
    "tests": str,
    "points": int,
    "status": str,
}
HINT_FIELDS = {"tests": str, "text": str, "level": str, "see": list}
# one entry of a module's `needs`: a module name, then a function's qualified name
NEED = re.compile(r"[a-z_][a-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def _kind(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _check_table(
    table: object, fields: dict[str, type], required: set[str], where: str, empty_ok: frozenset = frozenset()
) -> dict:
    """``table`` as a dict of ``fields`` (``required`` among them), each of its type, strings not blank
    (except those in ``empty_ok``)."""
    if not isinstance(table, dict):
        raise RegistryError(f"{where}: expected a table, got {_kind(table)}")
    missing = sorted(required - set(table))
    unknown = sorted(set(table) - set(fields))
    if missing or unknown:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unknown field(s) {', '.join(unknown)}; valid: {', '.join(fields)}"] if unknown else []
        raise RegistryError(f"{where}: {'; '.join(problems)}")
    for key, value in table.items():
        wanted = fields[key]
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise RegistryError(f"{where}: {key} must be {_kind(wanted())}, got {value!r}")
        if wanted is str and key not in empty_ok and not value.strip():
            raise RegistryError(f"{where}: {key} is empty")
    return table


def _parse(data: dict, path: str = "the registry") -> tuple[Module, ...]:
    """The modules of a parsed registry file, checked field by field; errors name ``path``."""
    entries = data.get("module")
    if not entries:
        raise RegistryError(f"{path}: no modules; the registry lists each kata module as a [[module]] table")
    if not isinstance(entries, list):
        raise RegistryError(f"{path}: 'module' must be a list of [[module]] tables, got {_kind(entries)}")
    modules = []
    for i, entry in enumerate(entries, 1):
        label = entry.get("name") if isinstance(entry, dict) else None
        where = f"{path}: [[module]] number {i}" + (f" ({label!r})" if isinstance(label, str) else "")
        optional = {"hint": list, "hidden": list, "key": str, "review_allow": list, "needs": list}
        optional["ladders"] = dict
        entry = dict(_check_table(entry, FIELDS | optional, set(FIELDS), where))
        hidden = entry.pop("hidden", [])
        if not all(isinstance(test_file, str) and test_file.strip() for test_file in hidden):
            raise RegistryError(f"{where}: hidden must be a list of test file paths, got {hidden!r}")
        allow = entry.pop("review_allow", [])
        if not all(isinstance(name, str) and name.strip() for name in allow):
            raise RegistryError(f"{where}: review_allow must be a list of names, got {allow!r}")
        needs = entry.pop("needs", [])
        if not all(isinstance(need, str) and NEED.fullmatch(need) for need in needs):
            raise RegistryError(
                f'{where}: needs must be a list of "<module>.<function>" names '
                f'(e.g. "acceleration.OptimizedBackend.dispatch"), got {needs!r}'
            )
        hints = []
        for j, hint in enumerate(entry.pop("hint", []), 1):
            at = f"{where}, hint {j}"
            hint = _check_table(hint, HINT_FIELDS, {"text"}, at, frozenset({"tests"}))
            default = "recipe" if RECIPE_LEAD.match(hint["text"]) else "nudge"
            level, see = hint.get("level", default), hint.get("see", [])
            if level not in HINT_LEVELS:
                raise RegistryError(f"{at}: level must be one of {HINT_LEVELS}, got {level!r}")
            if not all(isinstance(name, str) and name.strip() for name in see):
                raise RegistryError(f"{at}: see must be a list of test names, got {see!r}")
            hints.append(Hint(tests=hint.get("tests", ""), text=hint["text"], level=level, see=tuple(see)))
        ladders = entry.pop("ladders", {})
        if not all(isinstance(test, str) and test.strip() and name.strip() for name, test in ladders.items()):
            raise RegistryError(f"{where}: ladders must map kata functions to test names, got {ladders!r}")
        module = Module(
            hints=tuple(hints),
            hidden=tuple(hidden),
            review_allow=tuple(allow),
            needs=tuple(needs),
            ladders=tuple(ladders.items()),
            **entry,
        )
        if module.status not in STATUSES:
            raise RegistryError(f"{where}: status must be one of {STATUSES}, got {module.status!r}")
        modules.append(module)
    for key in ("number", "name"):
        values = [getattr(m, key) for m in modules]
        repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
        if repeated:
            raise RegistryError(
                f"{path}: module numbers and names in the registry must be unique; "
                f"{key} {', '.join(map(repr, repeated))} is given twice"
            )
    names = {m.name for m in modules}
    for m in modules:
        for need in m.needs:
            other = need.partition(".")[0]
            if other not in names or other == m.name or m.needs.count(need) > 1:
                why = "is named twice" if m.needs.count(need) > 1 else "names no other module of the registry"
                raise RegistryError(f"{path}: module {m.name!r}: needs {need!r} {why}")
    return tuple(sorted(modules, key=lambda m: m.number))


@cache
def _load(path: str) -> tuple[Module, ...]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as error:
        raise RegistryError(f"cannot read the registry {path}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RegistryError(f"{path}: not valid TOML: {error}") from None
    held = data.get("hints", "all")
    if held not in HINTS_HELD:
        raise RegistryError(f"{path}: hints must be one of {HINTS_HELD}, got {held!r}")
    _HELD[path] = held
    return _parse(data, path)


_HELD: dict[str, str] = {}  # registry file -> its top-level `hints`, filled by _load


def _path(path: str | os.PathLike | None) -> str:
    return str(path or os.environ.get("TINYTORCH_REGISTRY") or REGISTRY_FILE)


def modules(path: str | os.PathLike | None = None) -> tuple[Module, ...]:
    """Every module in the registry, ordered by number.

    The file is ``path``, else ``$TINYTORCH_REGISTRY``, else ``tinytorch/course/modules.toml``. A file
    that is missing, empty, not TOML or not a valid list of modules is a ``RegistryError`` (a
    ``ValueError``) that names it.
    """
    return _load(_path(path))


def hints_held(path: str | os.PathLike | None = None) -> str:
    """Which hints the registry holds: ``"all"`` (the default), ``"nudges"`` (a student release
    without the recipe levels) or ``"none"``, from its top-level ``hints``."""
    _load(_path(path))
    return _HELD.get(_path(path), "all")


def get(key: str | int, path: str | os.PathLike | None = None) -> Module:
    """A module by name (``"profiling"``) or number (``15`` or ``"15"``)."""
    for module in modules(path):
        if str(key) in (module.name, str(module.number)):
            return module
    valid = ", ".join(f"{m.number} {m.name}" for m in modules(path))
    raise KeyError(f"unknown module {key!r}; the modules are: {valid}")


def names(path: str | os.PathLike | None = None) -> list[str]:
    return [m.name for m in modules(path)]


def repo_root() -> Path:
    """The repository checkout that holds katas/, solutions/ and tests/.

    ``TINYTORCH_ROOT`` wins; otherwise the folder above the ``tinytorch`` package (an editable
    install or a run from the checkout).
    """
    env = os.environ.get("TINYTORCH_ROOT")
    root = Path(env) if env else Path(__file__).resolve().parents[2]
    if not (root / "katas").is_dir():
        raise FileNotFoundError(
            f"no katas/ folder under {root}: run from a clone of the repository, installed with "
            "`pip install -e .`, or set TINYTORCH_ROOT to the clone"
        )
    return root


# The gallery of classic mistakes, one file per module (grading/gallery.py checks it). It is an
# instructor file: it holds patches of reference code and is not in a student release.
MISTAKES_DIR = Path("grading") / "mistakes"


@dataclass(frozen=True)
class MistakeNote:
    """A classic mistake as ``tinytorch hint`` shows it: what is wrong, never its patch."""

    name: str
    why: str
    caught_by: str  # substring of the id of the test that catches it


def mistakes(name: str) -> tuple[MistakeNote, ...]:
    """The classic mistakes of module ``name`` that say which test catches them (``caught_by``),
    read from ``grading/mistakes/<name>.toml``; none if there is no such file."""
    try:
        with open(repo_root() / MISTAKES_DIR / f"{name}.toml", "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return ()
    entries = data.get("mistake", [])
    keys = ("name", "why", "caught_by")
    return tuple(
        MistakeNote(e["name"], " ".join(e["why"].split()), e["caught_by"])
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, dict) and all(isinstance(e.get(k), str) and e[k] for k in keys)
    )


README_BEGIN = (
    "<!-- modules table: generated by `tinytorch list --markdown` from tinytorch/course/modules.toml -->"
)
README_END = "<!-- end of modules table -->"


def markdown_table(path: str | os.PathLike | None = None) -> str:
    """The README's table of modules, made from the registry so the docs never repeat it."""
    lines = [
        "| # | module | import | status | points | guide |",
        "|---|---|---|---|---|---|",
    ]
    for m in modules(path):
        guide = f"[{m.kata}/README.md]({m.kata}/README.md)" if m.ready else "not released yet"
        cells = [str(m.number), m.title, f"`tinytorch.perf.{m.name}`", m.status, str(m.points), guide]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
