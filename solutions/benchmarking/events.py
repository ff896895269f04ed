"""The three TinyMLPerf events on the model zoo (module 20, benchmarking).

An event fixes everything that makes two measurements comparable: the model it starts from, the
inputs, the work of one timed call, the quality target and how latency is sampled (``warmup``
untimed calls, then ``runs`` timed ones, the median taken).

=========================  ==============  ==========================================  ===================
event                      zoo model       one timed call                              quality target
=========================  ==============  ==========================================  ===================
``MLP_SPRINT``             ``mlp_digits``  classify the 359 test digits (one batch)    accuracy >= the
                                                                                       zoo's - 0.02
``CNN_MARATHON``           ``cnn_digits``  classify the 359 test digits (one batch)    accuracy >= the
                                                                                       zoo's - 0.02
``TRANSFORMER_DECATHLON``  the zoo's GPT   greedily generate for a batch of prompts    tokens identical to
                                                                                       the baseline's
=========================  ==============  ==========================================  ===================

A *model* for a classification event is anything callable on a ``Tensor`` of images (N, 1, 8, 8)
returning logits (N, 10) (a Tensor or an ndarray). For the generation event it is anything with
``generate(prompts, max_new_tokens)`` returning the prompts followed by the new tokens, int
(B, T_prompt + max_new_tokens). The baseline of each event is the unoptimized zoo model; for
generation that is the GPT recomputing the whole prefix at every step
(:class:`FullRecomputeGenerator`), the way module 19 starts.

The generation event uses the zoo's long-context GPT when the zoo has one (module 19 adds it),
else the sorting GPT.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from tinytorch import zoo
from tinytorch.tensor import Tensor, no_grad

from .scoring import QualityCheck

__all__ = [
    "CNN_MARATHON",
    "DECATHLON_MODELS",
    "EVENTS",
    "MLP_SPRINT",
    "TRANSFORMER_DECATHLON",
    "Event",
    "FullRecomputeGenerator",
    "as_array",
    "decathlon_model_name",
]

# The generation event's zoo model, best first, with its workload: the long-context character
# GPT (256 positions) continues 32 characters of held-out text by 64; the sorting GPT sorts.
# Workload sizes, warmups and runs are choices of the competition (the guide's table), not
# results a test could derive: those lines are exempt from mutation testing.
DECATHLON_MODELS: dict[str, dict[str, int]] = {
    "transformer_pydoc": {"batch_size": 4, "prompt_length": 32, "max_new_tokens": 64},  # pragma: no mutate
    "transformer_sort": {"batch_size": 32, "prompt_length": 0, "max_new_tokens": 6},  # pragma: no mutate
}


def decathlon_model_name() -> str:
    """The zoo model the generation event uses: the first of ``DECATHLON_MODELS`` whose weights
    the zoo ships."""
    available = zoo.list_models()
    return next(name for name in DECATHLON_MODELS if name in available and zoo.weights_path(name).is_file())


def as_array(output: object) -> np.ndarray:
    """A model's output as an ndarray (a Tensor's ``.data``, or the array itself)."""
    return np.asarray(getattr(output, "data", output))


class FullRecomputeGenerator:
    """The generation baseline: greedy decoding that reruns the GPT on the whole prefix at every
    step (``GPT.generate(..., use_cache=False)``): O(T^2) positions processed for T tokens."""

    def __init__(self, model) -> None:
        self.model = model

    def generate(self, prompts: np.ndarray, max_new_tokens: int) -> np.ndarray:
        return self.model.generate(prompts, max_new_tokens, use_cache=False)


@dataclass(frozen=True)
class Event:
    """One TinyMLPerf event (see the module docstring). Frozen: change a copy with
    ``dataclasses.replace(event, runs=5)``."""

    name: str
    model: str
    task: str  # "classify" or "generate"
    description: str
    batch_size: int
    warmup: int  # untimed calls before the samples
    runs: int  # timed calls: the samples
    max_new_tokens: int = 0  # generation: tokens generated per prompt (a classify event: 0)
    prompt_length: int = 0  # generation: the first prompt_length tokens of each input (0: all)
    max_accuracy_drop: float = 0.02

    def __post_init__(self) -> None:
        if self.task not in ("classify", "generate"):
            raise ValueError(f"task must be 'classify' or 'generate', got {self.task!r}")
        for name, low in (
            ("batch_size", 1),
            ("warmup", 0),
            ("runs", 1),
            ("max_new_tokens", 0),
            ("prompt_length", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if self.task == "classify":
            for name in ("max_new_tokens", "prompt_length"):
                if getattr(self, name):
                    raise ValueError(
                        f"{name} is for generation events: a classify event has 0, got {getattr(self, name)}"
                    )

    @property
    def items_per_call(self) -> int:
        """Images classified, or tokens generated, by one timed call (for throughput)."""
        return self.batch_size * (self.max_new_tokens if self.task == "generate" else 1)

    def inputs(self) -> np.ndarray:
        """The event's fixed inputs: images (N, 1, 8, 8) float32, or prompts (B, T) int64."""
        inputs = _inputs(self.model, self.task, self.batch_size)
        return inputs[:, : self.prompt_length] if self.prompt_length else inputs

    def labels(self) -> np.ndarray:
        """What the inputs should give: digit labels (N,), or the sorted digits for prompts."""
        return _labels(self.model, self.task, self.batch_size)

    def baseline_model(self):
        """The unoptimized model the event measures against (the zoo's, freshly loaded)."""
        model = zoo.load_model(self.model)
        return FullRecomputeGenerator(model) if self.task == "generate" else model

    def run(self, model) -> np.ndarray:
        """One call of the event's work on ``model``: logits (N, 10) or tokens (B, T + new)."""
        with no_grad():
            if self.task == "generate":
                return as_array(model.generate(self.inputs(), self.max_new_tokens))
            return as_array(model(Tensor(self.inputs())))

    def target(self) -> float:
        """The quality target: accuracy the zoo recorded minus ``max_accuracy_drop``, or 1.0
        (every generated token identical to the baseline's) for generation."""
        if self.task == "generate":
            return 1.0
        return zoo.load_metrics()["models"][self.model]["test_accuracy"] - self.max_accuracy_drop

    def check_quality(self, outputs: np.ndarray) -> QualityCheck:
        """The quality gate on the outputs of :meth:`run`. Outputs of the wrong shape score 0:
        logits that are not (N, classes) for the N images, or tokens that are not one sequence
        per prompt (whose last ``max_new_tokens`` are compared with the baseline's)."""
        outputs = as_array(outputs)
        if self.task == "generate":
            expected = _reference_tokens(self.model, self.batch_size, self.max_new_tokens, self.prompt_length)
            new = outputs[:, -self.max_new_tokens :] if outputs.ndim == 2 else outputs
            value = float(np.mean(new == expected)) if new.shape == expected.shape else 0.0
            metric = "fraction of tokens identical to the baseline's greedy output"
        else:
            labels = self.labels()
            ok = outputs.ndim == 2 and outputs.shape[0] == labels.shape[0]
            value = float(np.mean(outputs.argmax(axis=1) == labels)) if ok else 0.0
            metric = "accuracy"
        return QualityCheck(metric=metric, value=value, target=self.target())


@functools.cache
def _data(model: str, task: str, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``batch_size`` held-out inputs of ``model`` and what they should give."""
    inputs, expected = zoo.eval_data(model)
    return inputs[:batch_size], expected[:batch_size]


def _inputs(model: str, task: str, batch_size: int) -> np.ndarray:
    return _data(model, task, batch_size)[0]


def _labels(model: str, task: str, batch_size: int) -> np.ndarray:
    return _data(model, task, batch_size)[1]


@functools.cache
def _reference_tokens(model: str, batch_size: int, max_new_tokens: int, prompt_length: int) -> np.ndarray:
    """The baseline's greedy tokens on the event's prompts (computed once per process; the
    foundation's ``GPT.generate`` gives the same tokens as recomputing, faster)."""
    prompts = _inputs(model, "generate", batch_size)
    prompts = prompts[:, :prompt_length] if prompt_length else prompts
    with no_grad():
        tokens = zoo.load_model(model).generate(prompts, max_new_tokens)
    return np.asarray(tokens)[:, -max_new_tokens:]


MLP_SPRINT = Event(
    name="MLP_SPRINT",
    model="mlp_digits",
    task="classify",
    description="classify the 359 held-out digits with the MLP, one batch",
    batch_size=359,
    warmup=5,  # pragma: no mutate
    runs=41,  # pragma: no mutate
)
CNN_MARATHON = Event(
    name="CNN_MARATHON",
    model="cnn_digits",
    task="classify",
    description="classify the 359 held-out digits with the CNN, one batch",
    batch_size=359,
    warmup=2,  # pragma: no mutate
    runs=15,  # pragma: no mutate
)
TRANSFORMER_DECATHLON = Event(
    name="TRANSFORMER_DECATHLON",
    model=decathlon_model_name(),
    task="generate",
    description="greedy generation for a batch of held-out prompts",
    warmup=1,  # pragma: no mutate
    runs=5,  # pragma: no mutate
    **DECATHLON_MODELS[decathlon_model_name()],
)
EVENTS: tuple[Event, ...] = (MLP_SPRINT, CNN_MARATHON, TRANSFORMER_DECATHLON)
