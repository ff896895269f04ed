"""The course's headline claims, measured on this machine in one run: modules 16-20 side by side.

    tinytorch bench --quick                    # every claim, about 1-2 minutes on 2 cores
    tinytorch bench                            # the full run (several minutes)
    python -m tinytorch bench --quick          # the same
    python benchmarks/overview.py --quick --out DIR --no-plots

Each module's own benchmark (``benchmarks/<module>.py``, ``tinytorch bench <module>``) declares
its headline claims beside what measures them: its ``OVERVIEW`` (a
:class:`benchmarks.claims.Benchmark`) names the function that returns its figures, the
module's promise, and its claims (:class:`benchmarks.claims.Claim`: what is measured, the
course's promise, the rule that gives the verdict and its reason). Nothing is measured here and
no claim is judged here: the overview runs each module's figure function once, judges every
claim it declares, and sets each against the course's promise in one table, with a numbered
reason under it when a claim does not hold (INT8 latency never holds in numpy: it has no INT8
GEMM), holds only beyond its range, or could not be measured.

It writes ``reports/bench/overview-<mode>.json`` (every module's figures with their spread, each
claim, the machine: CPU, cores, Python, numpy and BLAS, thread settings, load average) and, with
the ``plots`` extra (``pip install -e .[plots]``, matplotlib), PNG plots next to it
(``benchmarks/plots.py``): speedup vs matrix size, accuracy vs sparsity, generation time vs length.

The code measured is the reference (``TINYTORCH_IMPL=solutions``) in a checkout that holds
``solutions/``, and yours (``katas``) in a student release, which does not; ``TINYTORCH_IMPL``
chooses otherwise (``TINYTORCH_IMPL=katas tinytorch bench`` measures yours in a checkout).
BLAS is pinned to one thread before numpy loads (``benchmarks.pin_blas_threads``: unless
``OPENBLAS_NUM_THREADS`` and the like are set, as for every benchmark and ``tinytorch
submit``). Every ratio comes from one module benchmark's run with interleaved repeats (medians,
with the spread each benchmark reports).
Exit code: 0 when every module was measured (whether or not its claims hold), 1 when one could
not be (not implemented, a wrong result).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/overview.py` from a clone
    sys.path.insert(0, str(ROOT))

from benchmarks import BLAS_THREAD_VARS, pin_blas_threads  # noqa: E402


def default_impl(root: Path = ROOT) -> str:
    """The tree measured when ``TINYTORCH_IMPL`` is not set: the reference where the checkout
    holds it, else the student's own code (a student release has no ``solutions/``)."""
    return "solutions" if (root / "solutions").is_dir() else "katas"


if __name__ == "__main__":  # before numpy loads its BLAS, and before tinytorch.perf reads the switch
    pin_blas_threads()
    os.environ.setdefault("TINYTORCH_IMPL", default_impl())

import argparse  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import asdict  # noqa: E402
from typing import Any, TextIO  # noqa: E402

from benchmarks.claims import FAILS, HOLDS, MISSING, Benchmark, Finding  # noqa: E402
from benchmarks.plots import plots  # noqa: E402

DEFAULT_OUT = ROOT / "reports" / "bench"
SCHEMA = 1
NO_MATPLOTLIB = "matplotlib is not installed (pip install -e .[plots]): the table and the JSON only, no plots"

# the modules whose benchmarks declare headline claims, in the course's order
NAMES = ("acceleration", "quantization", "compression", "caching", "benchmarking")


def benchmarks(names: tuple[str, ...] = NAMES) -> tuple[Benchmark, ...]:
    """Each module's declaration: the ``OVERVIEW`` of ``benchmarks/<name>.py``, in order.

    :func:`run` imports them once the run has started and numpy is loaded, so a benchmark that
    pins BLAS in a subprocess of its own unless numpy loads after it (acceleration) does so here.
    A benchmark file that does not load stands as a module whose run raises its error, so its row
    says why and the other modules are still measured.
    """
    declared = []
    for name in names:
        try:
            declared.append(importlib.import_module(f"benchmarks.{name}").OVERVIEW)
        except Exception as error:  # one broken file must not lose the others' figures
            declared.append(_unloaded(name, error))
    return tuple(declared)


def _unloaded(name: str, error: Exception) -> Benchmark:
    """The stand-in of a benchmark file that did not load: no claims, and a run that re-raises."""
    from tinytorch.course import registry

    def run(quick: bool) -> dict[str, Any]:
        raise error

    return Benchmark(registry.get(name).number, name, run, (), f"its claims (benchmarks/{name}.py)")


README_BEGIN = (
    "<!-- claims table: generated by `tinytorch bench --claims` from each benchmarks/<module>.py -->"
)
README_END = "<!-- end of claims table -->"


def claims_markdown(declared: tuple[Benchmark, ...] | None = None) -> str:
    """Every declared claim as a Markdown table, one row per :class:`Claim` in the course's order:
    the README's table of claims (between ``README_BEGIN`` and ``README_END``); it measures nothing."""

    def cell(text: object) -> str:
        return str(text).replace("|", "\\|")

    rows = ["| module | claim | what is measured | the course's promise |", "|---|---|---|---|"]
    for bench in benchmarks() if declared is None else declared:
        rows += [
            f"| {c.module} | {cell(c.name)} | {cell(c.measures)} | {cell(c.promise)} |" for c in bench.claims
        ]
    return "\n".join(rows)


# --------------------------------------------------------------------------- the machine


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_model() -> str:
    """The CPU's model name: the leaderboard's description of a machine (one rule for both)."""
    from tinytorch.course.leaderboard import cpu_model as model

    return model()


def machine() -> dict[str, Any]:
    """Where the figures were measured: CPU, cores, Python, numpy and BLAS, threads, load."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas_info = {k: blas.get(k) for k in ("name", "version")}
    except Exception:  # older numpy or an unusual build: informative only
        blas_info = {"name": "unknown", "version": None}
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    threadpools = None
    try:
        from threadpoolctl import threadpool_info

        threadpools = [
            {k: info.get(k) for k in ("internal_api", "version", "num_threads")} for info in threadpool_info()
        ]
    except ImportError:
        pass
    from tinytorch.course.leaderboard import blas_kernel

    return {
        "cpu": cpu_model(),
        "architecture": platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info,
        # the kernels BLAS runs (OpenBLAS's core name, e.g. Haswell on an AVX-512 CPU): one rule
        # with the leaderboard's machine line
        "blas_kernel": blas_kernel(),
        "threads": {v: os.environ.get(v) for v in (*BLAS_THREAD_VARS, "OPENBLAS_CORETYPE")},
        "threadpools": threadpools,
        "load_average": _load(),
    }


# --------------------------------------------------------------------------- progress and the run


class Progress:
    """One status line on stderr: ``[2/5] module 17 quantization ... 12 s``, ticking on a terminal."""

    def __init__(self, stream: TextIO, total: int):
        self.stream, self.total = stream, total
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, index: int, label: str) -> None:
        self.label = f"[{index}/{self.total}] {label}"
        self.started = time.perf_counter()
        if self.tty:
            self._stop.clear()
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        else:
            print(f"{self.label} ...", file=self.stream, flush=True)

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self.stream.write(f"\r{self.label} ... {time.perf_counter() - self.started:.0f} s")
            self.stream.flush()

    def done(self, text: str) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        prefix = "\r" if self.tty else ""
        seconds = time.perf_counter() - self.started
        print(f"{prefix}{self.label}: {text} in {seconds:.0f} s", file=self.stream, flush=True)


def collect(
    quick: bool, modules: tuple[Benchmark, ...] | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Run each module's figure function once; {name: {figures | error, seconds, load_before/after}}."""
    modules = benchmarks() if modules is None else modules
    results: dict[str, Any] = {}
    for i, module in enumerate(modules, 1):
        if progress:
            progress.start(i, f"module {module.number} {module.name}")
        load_before, start = _load(), time.perf_counter()
        entry: dict[str, Any] = {"number": module.number, "figures": None, "error": None}
        try:
            entry["figures"] = module.run(quick)
            status = "measured"
        except NotImplementedError as error:
            entry["error"] = f"not implemented yet: {error}"
            status = "not implemented"
        except AssertionError as error:
            entry["error"] = f"a wrong result, not timed: {error}"
            status = "wrong result"
        except RuntimeError as error:  # acceleration's pinned subprocess failed; its stderr says why
            message = str(error)
            if "not implemented yet: " in message:
                status = "not implemented"
                entry["error"] = "not implemented yet: " + message.split("not implemented yet: ", 1)[1]
            elif "wrong result: " in message:
                status = "wrong result"
                entry["error"] = "a wrong result, not timed: " + message.split("wrong result: ", 1)[1]
            else:
                status, entry["error"] = "crashed", f"RuntimeError: {message}"
                entry["traceback"] = traceback.format_exc()
        except (ImportError, AttributeError) as error:  # a module not built, a figure function missing
            entry["error"] = f"its benchmark could not run: {type(error).__name__}: {error}"
            status = "could not run"
        except Exception as error:  # one module's crash must not lose the others' figures
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["traceback"] = traceback.format_exc()
            status = "crashed"
        entry["seconds"] = round(time.perf_counter() - start, 2)
        entry["load_before"], entry["load_after"] = load_before, _load()
        results[module.name] = entry
        if progress:
            progress.done(status)
    return results


def evaluate(
    results: dict[str, Any], quick: bool, modules: tuple[Benchmark, ...] | None = None
) -> list[Finding]:
    """Every declared claim judged, in module order, from the collected results."""
    modules = benchmarks() if modules is None else modules
    return [
        row
        for module in modules
        if module.name in results
        for row in module.judge(results[module.name], quick)
    ]


# --------------------------------------------------------------------------- output


def table(claims: list[Finding]) -> str:
    """The claims as a Markdown table, the reasons as numbered notes below it."""
    headers = ["module", "claim", "measured", "spread", "the course's promise", "verdict"]
    rows, notes = [], []
    for c in claims:
        verdict = c.verdict
        if c.reason:
            if c.reason not in notes:
                notes.append(c.reason)
            verdict += f" [{notes.index(c.reason) + 1}]"
        rows.append([str(c.module), c.claim, c.measured, c.spread or "-", c.promise, verdict])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    out = [line(headers), rule, *(line(r) for r in rows)]
    if notes:
        out.append("")
        out += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(out)


def summary(claims: list[Finding]) -> str:
    judged = [c for c in claims if c.verdict in (HOLDS, FAILS)]
    held = sum(c.verdict == HOLDS for c in judged)
    missing = sum(c.verdict == MISSING for c in claims)
    text = f"{held} of {len(judged)} claims hold on this machine" if judged else "no claim could be measured"
    if missing:
        text += f"; {missing} not measured"
    return text


def header(report: dict[str, Any]) -> str:
    m = report["machine"]
    load = m["load_average"]
    cores = m["cores"] or 1
    busy = ""
    if load and load[0] > 0.5 * cores:
        busy = " (busy: the timings are noisier; rerun on a quiet machine)"
    threads = ", ".join(f"{k}={v}" for k, v in m["threads"].items() if v is not None) or "(unset)"
    kernels = (m.get("blas_kernel") or {}).get("architecture") or "unknown"
    return "\n".join(
        [
            f"# TinyTorch: the course's claims on this machine ({report['mode']} mode, "
            f"TINYTORCH_IMPL={report['impl']}"
            + (
                ": the reference; TINYTORCH_IMPL=katas measures yours)"
                if report["impl"] == "solutions"
                else ")"
            ),
            f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), Python {m['python']}, "
            f"numpy {m['numpy']}, BLAS {m['blas']['name']} {m['blas']['version'] or ''}".rstrip()
            + f" ({kernels} kernels)",
            f"threads: {threads}; load average (1/5/15 min): "
            + (" / ".join(f"{v:.2f}" for v in load) if load else "unknown")
            + busy,
            "ratios: medians of interleaved repeats inside each module's benchmark; spread: the band the "
            "benchmark reports (IQR or min-max)",
        ]
    )


def _plain(value: Any) -> Any:
    """json.dumps fallback: numpy scalars and arrays, tuples as lists, anything else as text."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _finite(value: Any) -> Any:
    """NaN and infinities as None (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(report: dict[str, Any]) -> str:
    data = dict(report, claims=[asdict(c) for c in report["claims"]])
    return json.dumps(_finite(json.loads(json.dumps(data, default=_plain))), indent=1, allow_nan=False)


# --------------------------------------------------------------------------- main


def run(
    quick: bool,
    out: Path | None,
    want_plots: bool = True,
    stream: TextIO | None = None,
    modules: tuple[Benchmark, ...] | None = None,
) -> tuple[dict[str, Any], int]:
    """Measure, judge, write the JSON (and plots); returns (the report, the exit code)."""
    stream = stream or sys.stdout
    from tinytorch import perf

    modules = benchmarks() if modules is None else modules

    started = time.perf_counter()
    impl = os.environ.get(perf.ENV_VAR, "").strip() or perf.DEFAULT_IMPL
    load_before = _load()
    want_plots = want_plots and out is not None
    if want_plots and importlib.util.find_spec("matplotlib") is None:
        print(f"{NO_MATPLOTLIB}: measuring anyway", file=sys.stderr, flush=True)
    results = collect(quick, modules, Progress(sys.stderr, len(modules)))
    claims = evaluate(results, quick, modules)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "mode": "quick" if quick else "full",
        "impl": impl,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "claims": claims,
        "modules": results,
    }
    report["machine"]["load_before"] = load_before
    report["measuring_seconds"] = round(time.perf_counter() - started, 1)
    print(header(report), file=stream)
    print("", file=stream)
    print(table(claims), file=stream)
    print("", file=stream)
    print(summary(claims), file=stream)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        note = "plots: not drawn (--no-plots)"
        if want_plots:
            try:
                written = plots(results, out)
                note = "plots: " + (", ".join(str(p) for p in written) or "no figures to draw")
            except ImportError:
                note = f"plots: none, {NO_MATPLOTLIB}"
        report["plots"] = [str(p) for p in written]
        report["seconds"] = round(time.perf_counter() - started, 1)
        path = out / f"overview-{report['mode']}.json"
        path.write_text(to_json(report) + "\n")
        print(f"figures: {path}", file=stream)
        print(note, file=stream)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{report['seconds']:.0f} s in all ({report['measuring_seconds']:.0f} s measuring)", file=stream)
    code = 0 if all(r["figures"] is not None for r in results.values()) else 1
    return report, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinytorch bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="every claim in about 1-2 minutes (default: full)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder for the JSON and the plots (default {DEFAULT_OUT.relative_to(ROOT)})",
    )
    parser.add_argument("--no-plots", action="store_true", help="the table and the JSON only")
    parser.add_argument(
        "--claims",
        action="store_true",
        help="print the declared claims as Markdown (the README's table) and stop",
    )
    args = parser.parse_args(argv)
    if args.claims:
        print(claims_markdown())
        return 0
    _, code = run(args.quick, args.out, want_plots=not args.no_plots)
    return code


if __name__ == "__main__":
    sys.exit(main())
