"""The gallery's files, ``grading/mistakes/<module>.toml``: their format, and reading them.

Every ready module keeps a few realistic wrong variants of its reference in
``grading/mistakes/<module>.toml`` (found by convention from the registry's module names: no list
to maintain). Each mistake is a small find/replace patch on one or more files of
``solutions/<module>/``::

    [[mistake]]
    name = "range-without-zero"          # kebab-case, unique in the file
    file = "quant.py"                     # relative to solutions/<module>/
    why = "One line: what is wrong and why a student makes it."
    caught_by = "test_zero_is_exact"      # optional: a test name substring (pytest -k) tried first
    old = \"\"\"exact text in the solution file; must occur EXACTLY once\"\"\"
    new = \"\"\"its replacement\"\"\"

A mistake that needs several edits gives repeated ``[[mistake.edit]]`` tables (each with ``old``,
``new`` and an optional ``file``, default the mistake's ``file``) instead of ``old``/``new``.

:func:`load` reads every file into :class:`Mistake` objects and names each problem instead: a
file that is not TOML or has a malformed entry, a file for a module the registry does not know, a
ready module without one, or a patch that no longer applies (every ``old`` must occur exactly once
in the current solution file). :func:`patched_files` applies a mistake's edits in memory. Running
the variants through the tests is ``grading/gallery.py``'s part.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tinytorch.course import registry

MISTAKES_DIR = registry.MISTAKES_DIR  # grading/mistakes
NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
CAUGHT_BY = re.compile(r"^\w+$")
MISTAKE_KEYS = {"name", "file", "why", "caught_by", "old", "new", "edit"}
EDIT_KEYS = {"file", "old", "new"}


class GalleryError(ValueError):
    """A gallery file that cannot be used as it stands; the message names the file and the entry."""


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` (which occurs exactly once) by ``new`` in ``solutions/<module>/<file>``."""

    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Mistake:
    """One wrong variant of a module's reference solution."""

    module: str
    name: str
    why: str
    edits: tuple[Edit, ...]
    caught_by: str | None = None

    @property
    def label(self) -> str:
        return f"{self.module}/{self.name}"


def gallery_file(name: str, root: Path | None = None) -> Path:
    """Where the mistakes of module ``name`` live: ``grading/mistakes/<name>.toml``."""
    return (root or registry.repo_root()) / MISTAKES_DIR / f"{name}.toml"


def _text(entry: dict, key: str, where: str, required: bool = True) -> str | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise GalleryError(f"{where}: `{key}` must be a non-empty string")
    return value


def _parse_mistake(module: registry.Module, entry: object, index: int, source: str) -> Mistake:
    if not isinstance(entry, dict):
        raise GalleryError(f"{source}: [[mistake]] number {index} is not a table")
    name = entry.get("name")
    where = f"{source}: mistake {name!r}" if isinstance(name, str) else f"{source}: mistake number {index}"
    unknown = sorted(set(entry) - MISTAKE_KEYS)
    if unknown:
        raise GalleryError(f"{where}: unknown key(s) {unknown}; valid: {sorted(MISTAKE_KEYS)}")
    if not isinstance(name, str) or not NAME.match(name):
        raise GalleryError(f"{where}: `name` must be kebab-case (lower-case words joined by -)")
    why = _text(entry, "why", where)
    if "\n" in why.strip():
        raise GalleryError(f"{where}: `why` must be one line")
    file = _text(entry, "file", where, required="edit" not in entry)
    caught_by = _text(entry, "caught_by", where, required=False)
    if caught_by is not None and not CAUGHT_BY.match(caught_by):
        raise GalleryError(f"{where}: `caught_by` must be a test name or part of one (letters, digits, _)")
    if "edit" in entry:
        if "old" in entry or "new" in entry:
            raise GalleryError(f"{where}: give either `old`/`new` or [[mistake.edit]] tables, not both")
        raw = entry["edit"]
        if not isinstance(raw, list) or not raw:
            raise GalleryError(f"{where}: `edit` must be one or more [[mistake.edit]] tables")
    else:
        raw = [{"old": entry.get("old"), "new": entry.get("new")}]
    edits = []
    for number, item in enumerate(raw, 1):
        at = f"{where}, edit {number}" if "edit" in entry else where
        if not isinstance(item, dict):
            raise GalleryError(f"{at}: not a table")
        unknown = sorted(set(item) - EDIT_KEYS)
        if unknown:
            raise GalleryError(f"{at}: unknown key(s) {unknown}; valid: {sorted(EDIT_KEYS)}")
        old = _text(item, "old", at)
        new = item.get("new")
        if not isinstance(new, str):
            raise GalleryError(f"{at}: `new` must be a string (it may be empty)")
        if old == new:
            raise GalleryError(f"{at}: `new` equals `old`: the edit changes nothing")
        edit_file = item.get("file", file)
        if edit_file is None:
            raise GalleryError(f"{at}: no `file` (give it on the mistake or on the edit)")
        edits.append(Edit(_text({"file": edit_file}, "file", at), old, new))
    return Mistake(module.name, name, why.strip(), tuple(edits), caught_by)


def patched_files(mistake: Mistake, root: Path | None = None) -> dict[str, str]:
    """The texts of the files a mistake edits, with its edits applied (in memory).

    ``GalleryError`` when a file is missing or escapes the module folder, or an ``old`` does not
    occur exactly once (in the file as the earlier edits of the same mistake left it).
    """
    root = root or registry.repo_root()
    module = registry.get(mistake.module)
    folder = (root / module.solution).resolve()
    texts: dict[str, str] = {}
    for number, edit in enumerate(mistake.edits, 1):
        path = (folder / edit.file).resolve()
        shown = f"{module.solution}/{edit.file}"
        where = f"mistake {mistake.label}" + (f", edit {number}" if len(mistake.edits) > 1 else "")
        if not path.is_relative_to(folder) or not path.is_file():
            raise GalleryError(f"{where}: no file {shown}")
        if edit.file not in texts:
            texts[edit.file] = path.read_text(encoding="utf-8")
        count = texts[edit.file].count(edit.old)
        if count != 1:
            first = edit.old.strip().splitlines()[0][:70]
            raise GalleryError(
                f"{where}: its `old` text occurs {count} times in {shown} (must be exactly once): the "
                f"solution changed under the patch; re-anchor it. `old` begins: {first!r}"
            )
        texts[edit.file] = texts[edit.file].replace(edit.old, edit.new)
    return texts


def load(root: Path | None = None, names: list[str] | None = None) -> tuple[list[Mistake], list[str]]:
    """The mistakes of every ready module (or of ``names``), and the problems found loading them.

    Every mistake returned applies cleanly to the current solutions.
    """
    root = root or registry.repo_root()
    modules = registry.modules()
    known = {m.name for m in modules}
    problems = []
    folder = root / MISTAKES_DIR
    if names is None:
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            if path.stem not in known:
                problems.append(
                    f"{MISTAKES_DIR / path.name}: no module {path.stem!r} in the registry; "
                    f"the modules are: {', '.join(sorted(known))}"
                )
    selected = [m for m in modules if m.ready and (names is None or m.name in names)]
    mistakes: list[Mistake] = []
    for module in selected:
        path = gallery_file(module.name, root)
        source = (MISTAKES_DIR / path.name).as_posix()
        if not path.is_file():
            problems.append(
                f"module {module.number} {module.name} is ready but has no {source}: "
                "every ready module keeps a few classic mistakes"
            )
            continue
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as error:
            problems.append(f"{source}: not valid TOML: {error}")
            continue
        entries = data.get("mistake")
        extra = sorted(set(data) - {"mistake"})
        if extra:
            problems.append(f"{source}: unknown top-level key(s) {extra}; only [[mistake]] tables")
        if not isinstance(entries, list) or not entries:
            problems.append(f"{source}: no [[mistake]] tables")
            continue
        seen: set[str] = set()
        for index, entry in enumerate(entries, 1):
            try:
                mistake = _parse_mistake(module, entry, index, source)
                if mistake.name in seen:
                    raise GalleryError(f"{source}: mistake {mistake.name!r} is named twice")
                seen.add(mistake.name)
                patched_files(mistake, root)
            except GalleryError as error:
                problems.append(str(error))
                continue
            mistakes.append(mistake)
    return mistakes, problems
