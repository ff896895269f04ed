"""The student release: ``python -m grading release <dest>``.

Builds the repository a class receives from the instructor's checkout:

* the files git knows (tracked, or new and not ignored), read from the working tree, so caches,
  virtualenvs, ``.tox``, ``.hypothesis`` and built wheels never come along;
* without ``solutions/``, without ``grading/`` (the autograder, the integrity checks and the
  gallery of classic mistakes are instructor tools; the gallery holds patches of reference code),
  without ``.ci/`` and ``.github/`` of the instructor, without every test file that imports
  ``grading`` or ``solutions``, and without the test files the registry marks ``hidden``;
* with the student's versions of the files that differ (``grading/classroom/``): ``tox.ini``
  (the check a student's clone can pass: foundation and tool tests, lint; the kata tests run
  with ``tinytorch status``/``test``), ``.ci/run``, and the GitHub Actions workflow for forks,
  ``.github/workflows/katas.yml``;
* every Markdown file (``README.md``, the guides ``katas/<module>/README.md``, ``docs/``) with its
  instructor-only blocks (between ``<!-- instructor-only -->`` and ``<!-- end instructor-only -->``)
  removed, its student-only blocks (an HTML comment that starts ``<!-- student-only`` and a line
  break) shown, and its with-reference blocks (``<!-- with-reference <module>`` and a line break,
  up to ``-->``) shown when the release hands out that module's reference and removed otherwise,
  so what a student reads speaks of what the release holds. None of these markers may stand
  inside a block of another kind (the first ``-->`` or end marker closes it);
* the hints the instructor chose (``--hints``): ``all`` (the default), ``nudges`` (the registry
  without its recipe levels, :attr:`tinytorch.course.registry.Hint.recipe`) or ``none`` (no hint, and no
  notes of the gallery either); the release's registry says which (its top-level ``hints``);
* the gallery's notes without its patches (unless ``--hints none``): ``grading/mistakes/<module>.toml``
  keeps each mistake's ``name``, ``why`` and ``caught_by`` only, so ``tinytorch hint`` can still name
  the likely mistake behind a failing test;
* the reference of the earlier modules the instructor hands out (``--reference 16 ...``, typically
  after their deadline), under ``solutions/<module>/`` with a ``solutions/README.md`` that says how
  to use it: ``TINYTORCH_IMPL=katas,<module>=solutions`` serves it, as in the instructor's checkout,
  so a student who has not solved module 16 can still do 17;
* a fresh git repository with a single commit (no history, so no earlier reference code), unless
  ``--no-git``.

Before it finishes, the release is searched for the reference bodies (:func:`find_leaks`): every
run of three consecutive statements of a solution body that the stub does not give (the handed-out
references aside) is looked for in every text file, whitespace folded; and its Markdown for a use
of a reference it does not hold (:func:`missing_references`: ``TINYTORCH_IMPL=solutions``, a
``solutions/`` path). Either is an error and the release is not written. Both searches live in
``grading/release_checks.py``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from collections.abc import Iterable
from pathlib import Path

from grading import parse_source
from grading.release_checks import find_leaks, missing_references
from tinytorch.course import registry

CLASSROOM = Path(__file__).resolve().parent / "classroom"

# release path -> file in grading/classroom that replaces (or adds) it
STUDENT_FILES = {
    "tox.ini": "tox.ini",
    ".ci/run": "ci-run",
    ".github/workflows/katas.yml": "katas.yml",
}
EXCLUDED_DIRS = ("solutions/", "grading/", ".ci/", ".github/")
INSTRUCTOR_BLOCK = re.compile(r"<!-- instructor-only -->.*?<!-- end instructor-only -->\n?", re.DOTALL)
STUDENT_BLOCK = re.compile(r"<!-- student-only\n(.*?)-->\n?", re.DOTALL)
# shown in a release that holds the reference of the module named (--reference), else dropped
REFERENCE_BLOCK = re.compile(r"<!-- with-reference (\w+)\n(.*?)-->\n?", re.DOTALL)
HINT_CHOICES = registry.HINTS_HELD  # --hints: all, nudges (no recipe levels), none
REFERENCE_README = """\
# Handed-out references

{which}

```bash
TINYTORCH_IMPL=katas,{overrides} tinytorch test {later}   # your code on the reference of {numbers}
```

Everything else still runs your code in `katas/`. The reference of any other module is not here.
"""
NOTE_KEYS = ("name", "why", "caught_by")  # what a student release keeps of the gallery


class ReleaseError(RuntimeError):
    """The release cannot be built (a leak, a missing template, a destination in the way)."""


# --------------------------------------------------------------------------- what goes in


def source_files(root: Path) -> list[str]:
    """The files of the checkout, relative and sorted: what git tracks or would add."""
    if (root / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return sorted(p for p in listed.split("\0") if p and (root / p).is_file())
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in p.parts)
    )


def absolute_imports(text: str) -> set[str]:
    """The modules Python source imports absolutely (``import a.b``, ``from a.b import c``: ``a.b``).

    ``SyntaxError`` when ``text`` is not Python.
    """
    names = set()
    for node in ast.walk(parse_source(text)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def imports_instructor_code(text: str) -> bool:
    """True when Python source imports ``grading`` or ``solutions`` (instructor-only code)."""
    try:
        names = absolute_imports(text)
    except SyntaxError:
        return False
    return any(name.split(".")[0] in ("grading", "solutions") for name in names)


def hidden_tests(modules: Iterable[registry.Module]) -> set[str]:
    """Test files the registry marks instructor-only (``hidden = [...]`` of a module)."""
    return {path for m in modules for path in getattr(m, "hidden", ())}


def released(path: str, root: Path, hidden: set[str], references: Iterable[registry.Module] = ()) -> bool:
    """Whether the instructor's file ``path`` goes into the student release (``references``: the
    modules whose reference is handed out)."""
    if any(path.startswith(m.solution.rstrip("/") + "/") for m in references):
        return "__pycache__" not in path
    if path.startswith(EXCLUDED_DIRS) or path in STUDENT_FILES or path in hidden:
        return False
    if path.startswith("tests/") and path.endswith(".py"):
        return not imports_instructor_code((root / path).read_text(encoding="utf-8"))
    return True


def mistake_notes(toml_text: str) -> str:
    """A gallery file without its patches: each mistake's name, why and caught_by, as TOML."""
    notes = ["# Classic mistakes of this module: what tinytorch hint names when a test catches one."]
    for entry in tomllib.loads(toml_text).get("mistake", []):
        notes.append("\n[[mistake]]")
        notes += [f"{key} = {json.dumps(entry[key])}" for key in NOTE_KEYS if isinstance(entry.get(key), str)]
    return "\n".join(notes) + "\n"


def student_text(text: str, references: Iterable[str] = ()) -> str:
    """Markdown without its instructor-only blocks, with its student-only blocks shown, and its
    with-reference blocks shown for the modules in ``references`` (names) and dropped for the rest."""
    held = set(references)
    text = REFERENCE_BLOCK.sub(lambda m: m.group(2) if m.group(1) in held else "", text)
    return STUDENT_BLOCK.sub(r"\1", INSTRUCTOR_BLOCK.sub("", text))


def _hint_blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) of every ``[[module.hint]]`` table in the registry's text: from its header to the
    next table header or the end (multi-line strings skipped)."""
    headers = [m.start() for m in re.finditer(r"(?m)^\[", text) if text.count('"""', 0, m.start()) % 2 == 0]
    ends = headers[1:] + [len(text)]
    blocks = zip(headers, ends, strict=True)
    return [(start, end) for start, end in blocks if text.startswith("[[module.hint]]", start)]


def registry_with_hints(text: str, hints: str) -> str:
    """The registry's text holding ``hints`` (``all``, ``nudges``: no recipe level, ``none``: no hint)
    and saying so in its top-level ``hints``; comments and every other line as they are.

    ``ValueError`` for another choice; ``ReleaseError`` when the result does not read back as the
    source's modules with exactly those hints.
    """
    if hints not in HINT_CHOICES:
        raise ValueError(f"hints must be one of {', '.join(HINT_CHOICES)}, got {hints!r}")
    source = tomllib.loads(text)
    out, last = [], 0
    for start, end in _hint_blocks(text):
        hint = tomllib.loads(text[start:end])["module"]["hint"][0]
        kept = hints == "all" or (hints == "nudges" and not _is_recipe(hint))
        out.append(text[last:start] + (text[start:end] if kept else ""))
        last = end
    result = "".join(out) + text[last:]
    setting = f'hints = "{hints}"  # the hints this copy holds: {hints} (python -m grading release --hints)\n'
    if re.search(r"(?m)^hints = ", result):
        result = re.sub(r"(?m)^hints = .*\n", setting, result, count=1)
    else:
        first_table = re.search(r"(?m)^\[", result)
        at = first_table.start() if first_table else len(result)
        result = result[:at] + setting + "\n" + result[at:]
    expected = [
        [h for h in m.get("hint", []) if hints == "all" or (hints == "nudges" and not _is_recipe(h))]
        for m in source.get("module", [])
    ]
    written = tomllib.loads(result)
    if [m.get("hint", []) for m in written.get("module", [])] != expected or written.get("hints") != hints:
        raise ReleaseError("the release's registry does not hold the chosen hints; is a hint table unusual?")
    return result


def _is_recipe(hint: dict) -> bool:
    """A hint table's level, as the registry reads it (an explicit level, else its lead-in)."""
    default = "recipe" if registry.RECIPE_LEAD.match(hint.get("text", "")) else "nudge"
    return hint.get("level", default) == "recipe"


# --------------------------------------------------------------------------- building


def handed_out(keys: Iterable[str | int], root: Path) -> list[registry.Module]:
    """The modules named by ``keys`` (names or numbers) whose reference a release hands out, in
    registry order; ``ReleaseError`` for an unknown or planned module, or one without a reference."""
    modules = []
    for key in keys:
        try:
            module = registry.get(key)
        except KeyError as error:
            raise ReleaseError(f"--reference: {error.args[0]}") from None
        if not module.ready or not (root / module.solution / "__init__.py").is_file():
            raise ReleaseError(f"--reference: module {module.number} {module.name} has no reference here")
        modules.append(module)
    return sorted(set(modules), key=lambda m: m.number)


def _reference_readme(modules: list[registry.Module]) -> str:
    """``solutions/README.md`` of a release that hands out the reference of ``modules``."""
    each = ", ".join(f"{m.number} ({m.name}, `solutions/{m.name}/`)" for m in modules)
    which = (
        f"The reference of module{'s' if len(modules) > 1 else ''} {each}, handed out by your instructor "
        f"(typically after the deadline), so that the later modules that build on "
        f"{'them' if len(modules) > 1 else 'it'} work while your own version is unfinished:"
    )
    later = next((m for m in registry.modules() if m.ready and m.number > modules[-1].number), modules[-1])
    return REFERENCE_README.format(
        which=textwrap.fill(which, width=100),
        overrides=",".join(f"{m.name}=solutions" for m in modules),
        later=later.name,
        numbers=" and ".join(str(m.number) for m in modules),
    )


def build(
    dest: Path,
    root: Path | None = None,
    git: bool = True,
    hints: str = "all",
    references: Iterable[str | int] = (),
) -> list[str]:
    """Write the student release into ``dest`` (which must not exist or be empty); its file list.

    ``hints``: ``all``, ``nudges`` (no recipe level) or ``none``; ``references``: the modules (names
    or numbers) whose reference the release hands out under ``solutions/<module>/``.
    """
    root = (root or registry.repo_root()).resolve()
    dest = Path(dest).resolve()
    if hints not in HINT_CHOICES:
        raise ReleaseError(f"--hints must be one of {', '.join(HINT_CHOICES)}, got {hints!r}")
    if dest.exists() and any(dest.iterdir()):
        raise ReleaseError(f"release destination {dest} exists and is not empty")
    if dest.is_relative_to(root):
        raise ReleaseError(f"release destination {dest} is inside the instructor's checkout {root}")
    hidden = hidden_tests(registry.modules())
    public = handed_out(references, root)
    registry_path = registry.REGISTRY_FILE.relative_to(registry.REGISTRY_FILE.parents[2]).as_posix()
    with tempfile.TemporaryDirectory(prefix="tinytorch-release-") as scratch:
        staged = Path(scratch) / "release"
        written = []
        for path in source_files(root):
            if not released(path, root, hidden, public):
                continue
            target = staged / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.endswith(".md"):
                text = student_text((root / path).read_text(encoding="utf-8"), [m.name for m in public])
                target.write_text(text, encoding="utf-8")
            elif path == registry_path:
                text = registry_with_hints((root / path).read_text(encoding="utf-8"), hints)
                target.write_text(text, encoding="utf-8")
            else:
                shutil.copy2(root / path, target)
            written.append(path)
        if public:
            (staged / "solutions" / "README.md").write_text(_reference_readme(public), encoding="utf-8")
            written.append("solutions/README.md")
        for gallery in sorted((root / registry.MISTAKES_DIR).glob("*.toml")) if hints != "none" else ():
            path = (registry.MISTAKES_DIR / gallery.name).as_posix()
            target = staged / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(mistake_notes(gallery.read_text(encoding="utf-8")), encoding="utf-8")
            written.append(path)
        for path, template in STUDENT_FILES.items():
            source = CLASSROOM / template
            if not source.is_file():
                raise ReleaseError(f"missing template {source} for the release's {path}")
            target = staged / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            written.append(path)
        leaks = find_leaks(staged, root, public)
        if leaks:
            raise ReleaseError("reference code would leak into the release:\n" + "\n".join(map(str, leaks)))
        missing = missing_references(staged)
        if missing:
            raise ReleaseError(
                "the release's docs use a reference it does not hold (mark the text instructor-only, "
                "or hand the reference out with --reference):\n" + "\n".join(missing)
            )
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, dest, dirs_exist_ok=True)
    if git:
        _git_init(dest)
    return sorted(written)


def _git_init(dest: Path) -> None:
    """One commit, no history: ``git init`` + add + commit with a neutral author."""
    env = {
        "GIT_AUTHOR_NAME": "TinyTorch course",
        "GIT_AUTHOR_EMAIL": "course@example.invalid",
        "GIT_COMMITTER_NAME": "TinyTorch course",
        "GIT_COMMITTER_EMAIL": "course@example.invalid",
    }
    env = {**os.environ, **env}
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "TinyTorch optimization katas: student release"],
    ):
        subprocess.run(command, cwd=dest, env=env, check=True, capture_output=True)


def tree(paths: Iterable[str]) -> str:
    """A compact file tree of ``paths`` (folders with their file counts, top files by name)."""
    folders: dict[str, int] = {}
    top = []
    for path in paths:
        parts = path.split("/")
        if len(parts) == 1:
            top.append(path)
        else:
            nested = parts[0] in ("katas", "tests", "tinytorch") and len(parts) > 2
            key = "/".join(parts[:2]) if nested else parts[0]
            folders[key] = folders.get(key, 0) + 1
    lines = [f"{name}/  ({count} files)" for name, count in sorted(folders.items())]
    return "\n".join(lines + sorted(top))


def run_release_tests(dest: Path) -> int:
    """Run the release's own tests (its ``tools`` check: foundation and tools) in ``dest``; pytest's code.

    The release's ``tinytorch`` is imported (the release folder is the working directory and comes
    first on ``sys.path``), with ``TINYTORCH_ROOT`` pointing at it.
    """
    env = {**os.environ, "TINYTORCH_ROOT": str(dest), "HYPOTHESIS_PROFILE": "ci", "TINYTORCH_IMPL": "katas"}
    env.pop("TINYTORCH_REGISTRY", None)
    markers = "foundation or machinery"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", markers]
    return subprocess.run(command, cwd=dest, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grading release", description="Build the student release of this repository."
    )
    parser.add_argument("dest", type=Path, help="an empty or new folder outside this checkout")
    parser.add_argument("--no-git", action="store_true", help="do not make the release a git repository")
    parser.add_argument(
        "--check", action="store_true", help="then run the release's own tests in it (foundation and tools)"
    )
    parser.add_argument(
        "--hints",
        choices=HINT_CHOICES,
        default="all",
        help="the hints the release holds: all (default), nudges (no recipe levels) or none (no hints, "
        "no notes of classic mistakes)",
    )
    parser.add_argument(
        "--reference",
        nargs="+",
        action="extend",
        default=[],
        metavar="MODULE",
        help="hand out the reference of these modules (names or numbers, e.g. 16), typically after "
        "their deadline: solutions/<module>/, served by TINYTORCH_IMPL=katas,<module>=solutions",
    )
    args = parser.parse_args(argv)
    try:
        written = build(args.dest, git=not args.no_git, hints=args.hints, references=args.reference)
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    print(tree(written))
    handed = sorted({path.split("/")[1] for path in written if re.match(r"solutions/[^/]+/", path)})
    extra = f" but the handed-out reference of {', '.join(handed)}" if handed else ""
    print(
        f"release: {len(written)} files written to {args.dest.resolve()}; hints: {args.hints}; "
        f"no reference code found in them{extra}"
    )
    if args.check:
        return run_release_tests(args.dest.resolve())
    print(
        f"next: cd {args.dest} && python3 -m venv .venv && .venv/bin/python -m pip install -q tox "
        "&& .venv/bin/tox run -m check"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
