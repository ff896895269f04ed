"""What ran: which code served each kata module, and which optimizations' code ran.

The optimizations a submission names are its own claim; the board also records what the code
shows. :class:`CodeWatch` notes every Python function that runs inside a ``with`` block (one
untimed run, never a timed one); :func:`served_modules` says which tree served each kata module
(``student``: katas/, ``reference``: solutions/, ``folder``: a folder ``TINYTORCH_IMPL`` names);
:func:`observe` turns the watches of a submission's build and of each event's model into one
short text per optimization, from the functions of :data:`EVIDENCE`, the foundation's own cache
(``GPT.forward`` with ``past_kv``) and the events that ran without a forward of the foundation's
layers (fused inference).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tinytorch.course.leaderboard.entry import OPTIMIZATIONS

# What shows that an optimization ran: optimization -> (the kata module, the functions of it whose
# running shows it). The names are the stubs', the same in every student's tree. fused-inference
# has no function of its own: it shows as events whose model ran without one forward of the
# foundation's layers (FOUNDATION_LAYERS). kv-cache may also be served by the foundation's own
# cache (GPT.forward with past_kv), which is recorded as such, not as module 19.
EVIDENCE: dict[str, tuple[str, tuple[str, ...]]] = {
    "optimized-backend": ("acceleration", ("OptimizedBackend.dispatch",)),
    "blocked-matmul": ("acceleration", ("matmul_blocked",)),
    "int8-quantization": (
        "quantization",
        ("QuantizedLinear.forward", "QuantizedConv2d.forward", "int8_matmul"),
    ),
    "magnitude-pruning": ("compression", ("prune_model", "magnitude_prune", "global_magnitude_masks")),
    "structured-pruning": (
        "compression",
        ("prune_structured", "prune_filters", "prune_neurons", "prune_conv_filters", "prune_linear_units"),
    ),
    "sparse-csr": ("compression", ("SparseLinear.forward", "csr_matmul")),
    "kv-cache": ("caching", ("KVCache.__init__", "cached_attention", "cached_forward", "generate")),
}
FOUNDATION_LAYERS = ("module.py", "layers.py", "conv.py", "attention.py", "transformer.py")
FOUNDATION_CACHE = "the foundation's cache, not module 19"
NOT_SEEN = "not seen"
NOT_RECORDED = "not recorded"
# Which tree served a kata module: katas/ (the student's), solutions/ (the reference), a folder.
SOURCES = ("student", "reference", "folder")


class CodeWatch:
    """The Python functions that run inside a ``with`` block, as code objects.

    ``sys.settrace`` with a global function that only notes each new frame and returns None (no
    line events): a few times slower for Python calls, so it watches one untimed run, never a
    timed one. ``foundation_cache`` is True once ``GPT.forward`` ran with a ``past_kv``.
    """

    def __init__(self) -> None:
        self.codes: set[Any] = set()
        self.foundation_cache = False
        self._previous: Any = None

    def __enter__(self) -> CodeWatch:
        from tinytorch.transformer import GPT

        gpt_forward, codes = GPT.forward.__code__, self.codes

        def call(frame: Any, event: str, arg: Any) -> None:
            code = frame.f_code
            codes.add(code)
            if code is gpt_forward and frame.f_locals.get("past_kv") is not None:
                self.foundation_cache = True

        self._previous = sys.gettrace()
        sys.settrace(call)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self._previous)

    def kata_functions(self) -> set[tuple[str, str]]:
        """(kata module, qualified name) of every function of a loaded kata module that ran."""
        folders = _kata_folders()
        found = set()
        for code in self.codes:
            module = _kata_module_of(code.co_filename, folders)
            if module is not None:
                found.add((module, code.co_qualname))
        return found

    def used_foundation_layers(self) -> bool:
        """True when a forward or call of the foundation's layers (FOUNDATION_LAYERS, tinytorch/) ran."""
        package = Path(__file__).resolve().parents[2]  # tinytorch/
        layer_files = {str(package / name) for name in FOUNDATION_LAYERS}
        return any(
            code.co_name in ("forward", "__call__") and str(Path(code.co_filename).resolve()) in layer_files
            for code in self.codes
        )


def _kata_folders() -> dict[Path, tuple[str, str]]:
    """The folder of every kata module loaded in this process -> (module name, source)."""
    from tinytorch.course import registry

    try:
        root = registry.repo_root()
    except FileNotFoundError:  # no checkout (the grader's stage): every module comes from a folder
        root = None
    found = {}
    for module in registry.modules():
        paths = getattr(sys.modules.get(f"tinytorch.perf.{module.name}"), "__path__", None)
        if not paths:
            continue
        folder = Path(paths[0]).resolve()
        if root is None:
            source = "folder"
        elif folder == (root / module.kata).resolve():
            source = "student"
        elif folder == (root / module.solution).resolve():
            source = "reference"
        else:
            source = "folder"
        found[folder] = (module.name, source)
    return found


def _kata_module_of(filename: str, folders: Mapping[Path, tuple[str, str]]) -> str | None:
    path = Path(filename).resolve()
    return next((name for folder, (name, _) in folders.items() if folder in path.parents), None)


def kata_module_of(filename: str) -> str | None:
    """The kata module whose loaded folder holds ``filename``, None for any other file."""
    return _kata_module_of(filename, _kata_folders())


def served_modules() -> dict[str, str]:
    """Kata module -> the tree that served it (student, reference, folder), for every kata
    module loaded in this process."""
    return {name: source for name, source in sorted(_kata_folders().values())}


def watch_events(benchmark: Any, models: Mapping[str, Any]) -> dict[str, CodeWatch]:
    """Run each event's model once (``benchmark.event(name).run(model)``, untimed) under a
    :class:`CodeWatch`; event name -> its watch. An exception of a model propagates."""
    watches = {}
    for name in benchmark.events:
        if name in models:
            with CodeWatch() as watch:
                benchmark.event(name).run(models[name])
            watches[name] = watch
    return watches


def observe(
    named: Sequence[str], runs: Mapping[str, CodeWatch], build: CodeWatch | None = None
) -> dict[str, str]:
    """What ran, per optimization: every optimization ``named`` by the submission and every other
    one whose code ran, in :data:`OPTIMIZATIONS`' order, each -> a short text.

    ``runs``: a watch per event (:func:`watch_events`); ``build``: the watch around building the
    submission (pruning runs then), if there was one. The texts: ``student module 19`` (the tree
    that served the code that ran, and its module), the foundation's cache (``GPT.forward`` with
    ``past_kv``), the events that ran without the foundation's layers (fused inference), or
    ``not seen``.
    """
    watches = [*runs.values(), *([build] if build is not None else [])]
    ran: set[tuple[str, str]] = set().union(*(w.kata_functions() for w in watches)) if watches else set()
    sources = served_modules()
    numbers = _module_numbers()
    seen: dict[str, str] = {}
    for optimization, (module, functions) in EVIDENCE.items():
        if any((module, function) in ran for function in functions):
            seen[optimization] = f"{sources.get(module, 'unknown')} module {numbers.get(module, module)}"
    if "kv-cache" not in seen and any(w.foundation_cache for w in runs.values()):
        seen["kv-cache"] = FOUNDATION_CACHE
    fused = [name for name, watch in runs.items() if not watch.used_foundation_layers()]
    if fused:
        seen["fused-inference"] = f"{', '.join(fused)} without the foundation's layers"
    return {name: seen.get(name, NOT_SEEN) for name in OPTIMIZATIONS if name in seen or name in named}


def _module_numbers() -> dict[str, int]:
    """Kata module name -> number, from the registry (none when it cannot be read)."""
    try:
        from tinytorch.course import registry

        return {m.name: m.number for m in registry.modules()}
    except Exception:  # a board is shown from its database alone, even outside a checkout
        return {}
