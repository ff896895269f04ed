"""Module 20, benchmarking: the TinyMLPerf competition, scored by hardware-independent speedups.

Files: ``scoring.py`` (``compute_speedup``, ``geometric_mean``, the quality gate and
``score_events``), ``events.py`` (the three events on the model zoo), ``measure.py``
(``measure_interleaved``, ``benchmark_model`` with module 15's profiler), ``competition.py``
(``TinyMLPerf``), ``submission.py`` (``CompetitionSubmission``, ``check_weights_file``) and
``optimize.py`` (your submission: modules 16-19 applied to the zoo). Import everything from
``tinytorch.perf.benchmarking``; this file is not edited. The leaderboard itself is finished
infrastructure: ``tinytorch.leaderboard``.
"""

from .competition import EventResult, TinyMLPerf
from .events import (
    CNN_MARATHON,
    DECATHLON_MODELS,
    EVENTS,
    MLP_SPRINT,
    TRANSFORMER_DECATHLON,
    Event,
    FullRecomputeGenerator,
    as_array,
    decathlon_model_name,
)
from .measure import (
    BenchmarkResult,
    Profiler,
    benchmark_model,
    check_repeats,
    measure_interleaved,
    train_step_time,
    underlying_module,
    workload_flops,
)
from .optimize import (
    CNN_EPOCHS,
    CNN_FILTER_AMOUNT,
    MLP_EPOCHS,
    MLP_UNIT_AMOUNT,
    CachedGenerator,
    FusedInference,
    build_submission,
    optimize_cnn,
    optimize_mlp,
)
from .scoring import (
    EventScore,
    QualityCheck,
    ScoreCard,
    check_seconds,
    compute_speedup,
    geometric_mean,
    median_seconds,
    score_events,
)
from .submission import (
    CompetitionSubmission,
    InvalidSubmission,
    check_weights_file,
    machine_description,
    save_weights_files,
)

__all__ = [
    "CNN_FILTER_AMOUNT",
    "CNN_MARATHON",
    "DECATHLON_MODELS",
    "EVENTS",
    "CNN_EPOCHS",
    "MLP_EPOCHS",
    "MLP_SPRINT",
    "MLP_UNIT_AMOUNT",
    "TRANSFORMER_DECATHLON",
    "BenchmarkResult",
    "CachedGenerator",
    "CompetitionSubmission",
    "Event",
    "EventResult",
    "EventScore",
    "FullRecomputeGenerator",
    "FusedInference",
    "InvalidSubmission",
    "Profiler",
    "QualityCheck",
    "ScoreCard",
    "TinyMLPerf",
    "as_array",
    "benchmark_model",
    "build_submission",
    "check_repeats",
    "check_seconds",
    "check_weights_file",
    "compute_speedup",
    "decathlon_model_name",
    "geometric_mean",
    "machine_description",
    "measure_interleaved",
    "median_seconds",
    "optimize_cnn",
    "optimize_mlp",
    "save_weights_files",
    "score_events",
    "train_step_time",
    "underlying_module",
    "workload_flops",
]
