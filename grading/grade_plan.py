"""The plan of what to run, and the reference's side of the answer keys.

The list of tests is the grader's: collected once by running every test and answer key on the
reference, traced (so the plan also records the kata functions each test calls), in a process that
runs no student code. It is cached by content in memory, in a batch's plan file and in the
checkout's ``.grading-cache/``. The answer keys' values on the reference, at the grading seed (an
instructor secret kept there too), are cached the same way. The reference is copied for these runs
into a folder only the grader can enter, and removed afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from grading import answerkey
from grading.grade_child import run_child
from grading.grade_results import write_atomically
from grading.grade_settings import is_key
from grading.grade_stage import Context
from tinytorch.course import registry


def test_files(module: registry.Module) -> list[str]:
    """The test files the grader runs for a module: its suite, its instructor-only files, its answer
    key (staged under ``keys/``; see :func:`key_files`)."""
    key = [f"keys/{Path(module.key).name}"] if module.key else []
    return [module.tests, *module.hidden, *key]


_PLANS: dict[str, dict] = {}
CACHE_DIR = Path(".grading-cache")  # under the checkout, its owner's only: `python -m grading prepare`
PLAN_CACHE = CACHE_DIR / "plan.json"
KEY_TRACE_SEEDS = (1, 2, 3)  # the answer keys' calls are traced at these seeds too (and the plan's own)
# changes whenever what the plan records changes
PLAN_VERSION = b"plan 4: function units; keys traced at several seeds\n"


def _plan_stamp(ctx: Context) -> str:
    """A digest of everything the plan depends on: the registry, the staged tests and keys, the
    reference of every module (content, not times, so a fresh clone of the same commit matches)."""
    digest = hashlib.sha256(PLAN_VERSION + (ctx.stage / "modules.toml").read_bytes())
    files = [p for folder in ("tests", "keys") for p in sorted((ctx.stage / folder).rglob("*.py"))]
    files += [p for m in ctx.modules for p in sorted((ctx.root / m.solution).rglob("*.py"))]
    for path in files:
        digest.update(
            str(path.relative_to(ctx.stage if path.is_relative_to(ctx.stage) else ctx.root)).encode()
        )
        digest.update(path.read_bytes())
    return digest.hexdigest()


def collect_plan(ctx: Context) -> dict[str, list[str]]:
    """The grader's list of tests per module and, for each test, the kata functions it calls on the
    reference (``ctx.units``): one run of every test and answer key on the reference, traced, in a
    process of the grader's own. It must pass whole. Cached by content: in memory, in a batch's
    plan file, and in the checkout's ``.grading-cache/`` (``python -m grading prepare`` fills it
    ahead, as Gradescope's ``setup.sh`` does), so a submission seldom pays for it."""
    stamp = ctx.plan_stamp = _plan_stamp(ctx)
    caches = [c for c in (ctx.plan_file, ctx.root / PLAN_CACHE) if c]
    saved = _PLANS.get(stamp)
    for cache in caches if saved is None else []:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(cache.read_text(encoding="utf-8"))
            if data.get("key") == stamp:
                saved = data
                break
    if saved is None:
        saved = {"key": stamp, **_run_plan(ctx)}
        for cache in caches:  # shared by the graders of a batch and later gradings: written atomically
            with contextlib.suppress(OSError):
                if cache.parent.name == CACHE_DIR.name:
                    _private_dir(cache.parent)
                cache.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(cache, json.dumps(saved))
    _PLANS[stamp] = saved
    ctx.units = {n: frozenset(u) for n, u in saved["units"].items()}
    return saved["plan"]


def _run_plan(ctx: Context) -> dict:
    files = [f for m in ctx.modules for f in test_files(m) if (ctx.stage / f).is_file()]
    # the grader's own code: a generous bound, whatever the students' limits are
    budget = max(ctx.settings.total_timeout, 900.0)
    with _reference_copy(ctx, "plan") as (run_dir, ref):
        out = run_child(
            ctx,
            "",
            run_dir,
            str(ref),
            files,
            {},
            [],
            [],
            budget,
            collect_timeout=budget,
            trusted=True,
            key_out=run_dir / "scratch" / "values",
            trace=str(ref) + "/",
        )
    if out.collected is None or out.collect_errors:
        raise RuntimeError(
            "the grader's tests do not collect on the reference solutions:\n"
            + "\n".join(out.collect_errors + [out.fatal, out.stderr])
        )
    failing = [f"{n}: {o}\n{t}" for n, (o, t) in out.results.items() if o != "passed"]
    missing = [n for n in out.collected if n not in out.results]
    if failing or missing:
        raise RuntimeError(
            "the grader's tests do not pass on the reference solutions:\n"
            + "\n".join(failing[:5] + [f"{n}: did not run ({out.ended})" for n in missing[:5]])
        )
    plan = {m.name: [i for i in out.collected if i.split("::", 1)[0] in test_files(m)] for m in ctx.modules}
    units = {n: set(out.units.get(n, [])) for n in out.collected}
    # A check draws its inputs from the grading seed, so what it calls may vary with it: its units
    # are the union over a few seeds (more units decide fewer tests: the safe side).
    keys = [f for m in ctx.modules for f in key_files(ctx, m)]
    seed = ctx.seed
    try:
        for ctx.seed in KEY_TRACE_SEEDS if keys else ():
            with _reference_copy(ctx, "keys") as (run_dir, ref):
                again = run_child(
                    ctx,
                    "",
                    run_dir,
                    str(ref),
                    keys,
                    {},
                    [],
                    [],
                    budget,
                    trusted=True,
                    key_out=run_dir / "scratch" / "values",
                    trace=str(ref) + "/",
                )
            for nodeid, called in again.units.items():
                units.setdefault(nodeid, set()).update(called)
    finally:
        ctx.seed = seed
    return {"plan": plan, "units": {n: sorted(u) for n, u in units.items()}}


@contextlib.contextmanager
def _reference_copy(ctx: Context, name: str):
    """A copy of every module's reference in a folder only root can enter, removed afterwards: the
    grader's own runs (the plan, the answer keys) never leave the reference in a student's reach."""
    private = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=ctx.private))
    try:
        for m in ctx.modules:
            shutil.copytree(
                ctx.root / m.solution, private / "ref" / m.name, ignore=shutil.ignore_patterns("__pycache__")
            )
        yield private, private / "ref"
    finally:
        shutil.rmtree(private, ignore_errors=True)


def key_files(ctx: Context, module: registry.Module) -> list[str]:
    """The module's answer key as staged (``keys/<file>``), if the registry names one."""
    if not module.key or ctx.settings.key_share <= 0:
        return []
    staged = f"keys/{Path(module.key).name}"
    return [staged] if (ctx.stage / staged).is_file() else []


def reference_keys(ctx: Context, plan: dict[str, list[str]]) -> dict[str, answerkey.Reference]:
    """Run every module's answer key on the reference, in a process that runs no student code; the
    values of each check (by its test id), with its tolerance and the tests it covers."""
    files = [f for m in ctx.modules for f in key_files(ctx, m)]
    if not files:
        return {}
    budget = max(ctx.settings.module_timeout, 300.0)
    key_ids = [n for m in ctx.modules for n in plan[m.name] if is_key(n)]
    # The reference's values depend only on the plan and the seed: kept in the private cache, so
    # only the first grading with a seed (or `prepare`) pays for them.
    stamp = hashlib.sha256(f"{ctx.plan_stamp} {ctx.seed}".encode()).hexdigest()[:24]
    cached = ctx.root / CACHE_DIR / f"reference-{stamp}"
    if not all(answerkey.values_file(cached, n).is_file() for n in key_ids):
        with _reference_copy(ctx, "keys") as (run_dir, ref):
            out_dir = run_dir / "scratch" / "values"  # the only folder a sandbox child may write
            out = run_child(
                ctx, "", run_dir, str(ref), files, {}, [], [], budget, trusted=True, key_out=out_dir
            )
            for nodeid in key_ids:
                outcome, text = out.results.get(nodeid, ("not run", out.fatal or out.stderr))
                if outcome != "passed":
                    raise RuntimeError(f"the answer key {nodeid} fails on the reference: {outcome}\n{text}")
            with contextlib.suppress(OSError):  # a checkout that is not writable: values kept in memory
                _private_dir(ctx.root / CACHE_DIR)
                tmp = Path(tempfile.mkdtemp(prefix=".reference-", dir=ctx.root / CACHE_DIR))
                for nodeid in key_ids:
                    shutil.copyfile(
                        answerkey.values_file(out_dir, nodeid), answerkey.values_file(tmp, nodeid)
                    )
                os.replace(tmp, cached)
            if not cached.is_dir():
                cached = out_dir
            references = _load_references(ctx, key_ids, cached)
        return references
    return _load_references(ctx, key_ids, cached)


def _load_references(ctx: Context, key_ids: list[str], folder: Path) -> dict[str, answerkey.Reference]:
    references = {}
    for nodeid in key_ids:
        reference = answerkey.load_reference(answerkey.values_file(folder, nodeid))
        reference.units = ctx.units.get(nodeid, frozenset())  # traced when the plan was made
        references[nodeid] = reference
    return references


def _private_dir(path: Path) -> Path:
    """``path`` made (if needed) and kept for its owner alone: the plan, the seed, the reference's values."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def grading_seed(root: Path) -> int:
    """The seed the answer keys draw their inputs from: an instructor secret, never in a release.
    ``TINYTORCH_GRADING_SEED``, else ``.grading-cache/seed`` of the checkout (drawn at random the
    first time, by ``prepare`` on Gradescope: one seed per autograder image)."""
    if os.environ.get("TINYTORCH_GRADING_SEED"):
        return int(os.environ["TINYTORCH_GRADING_SEED"])
    path = root / CACHE_DIR / "seed"
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    seed = secrets.randbits(63)
    with contextlib.suppress(OSError):
        _private_dir(root / CACHE_DIR)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{seed}\n")
    with contextlib.suppress(OSError, ValueError):  # another grading drew first: its seed holds
        return int(path.read_text().strip())
    return seed
