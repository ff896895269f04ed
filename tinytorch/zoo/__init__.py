"""The model zoo: four small trained models, their tasks and their shipped weights.

* ``mlp_digits``: Flatten, Linear(64, 128), ReLU, Linear(128, 64), ReLU, Linear(64, 10);
  classifies the 8x8 UCI digits (metric: test accuracy).
* ``cnn_digits``: Conv2d(1, 16, 3, padding=1), ReLU, MaxPool2d(2), Conv2d(16, 32, 3,
  padding=1), ReLU, MaxPool2d(2), Flatten, Linear(128, 64), ReLU, Linear(64, 10); the same
  task (metric: test accuracy).
* ``transformer_sort``: GPT(vocab 11, 13 positions, embed 48, 4 heads, 2 blocks); sorts 6
  digits (metric: exact match of the generated answer, see :mod:`tinytorch.data.sequences`).
* ``transformer_pydoc``: GPT(vocab 96, 256 positions, embed 64, 4 heads, 2 blocks), position
  embeddings initialised to sinusoids; a character-level language model of Python's own help
  texts (:mod:`tinytorch.data.text`), the zoo's long-context model (metrics: held-out
  cross-entropy ``test_loss`` in nats per character, and next-character ``test_accuracy``).

Usage::

    from tinytorch import zoo
    zoo.list_models()                       # ['cnn_digits', 'mlp_digits', 'transformer_pydoc', ...]
    model = zoo.load_model("cnn_digits")    # built, shipped weights loaded, eval mode
    zoo.evaluate("cnn_digits", model)       # test accuracy, equal to zoo.load_metrics()[...]
    inputs, expected = zoo.eval_data("transformer_sort")

The digits models read images (N, 1, 8, 8) and return logits (N, 10). The sorting GPT reads a
prompt of 6 digits and the separator and generates the 6 sorted digits greedily; its
``max_seq_len`` is 13 = 2 * 6 + 1 because ``GPT.generate`` appends the last token as well.
The text GPT reads token ids of :data:`tinytorch.data.CHARS` (``encode_text``) and is scored by
one forward pass over the held-out windows: no sampling.

Weights live in ``weights/<name>.npz`` (loaded with ``allow_pickle=False``) and the training
record in ``weights/metrics.json``; ``python -m tinytorch.zoo.train`` rebuilds both from fixed
seeds. :func:`load_model` checks the loaded weights against the sha256 recorded in
metrics.json, so a tampered or mismatched file is refused with a ``ValueError``.

Evaluation is deterministic: float32 forward passes on a fixed test set, no sampling
(argmax / greedy decoding), so the shipped weights reproduce the recorded accuracy exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.conv import Conv2d, MaxPool2d
from tinytorch.data import (
    SEP,
    TEXT_VOCAB_SIZE,
    VOCAB_SIZE,
    load_digits,
    make_sequence_task,
    sequence_accuracy,
    text_windows,
    token_accuracy,
)
from tinytorch.layers import Flatten, Linear, Module, ReLU, Sequential
from tinytorch.serialization import load_weights
from tinytorch.training import accuracy, inference
from tinytorch.transformer import GPT

__all__ = [
    "METRICS_FILE",
    "METRICS_FILE_NAME",
    "MODELS",
    "SORT_LENGTH",
    "SORT_TEST_SEED",
    "SORT_TEST_SIZE",
    "SORT_TRAIN_SEED",
    "SORT_TRAIN_SIZE",
    "TEXT_CONTEXT",
    "TEXT_TEST_WINDOWS",
    "TEXT_TRAIN_STRIDE",
    "WEIGHTS_DIR",
    "TrainConfig",
    "ZooModel",
    "build_model",
    "eval_data",
    "evaluate",
    "get",
    "list_models",
    "load_metrics",
    "load_model",
    "scores",
    "sinusoids",
    "sort_predictions",
    "text_scores",
    "state_sha256",
    "weights_path",
]

WEIGHTS_DIR = Path(__file__).with_name("weights")
METRICS_FILE_NAME = "metrics.json"
METRICS_FILE = WEIGHTS_DIR / METRICS_FILE_NAME

# The sorting task: SORT_LENGTH digits; the held-out test set comes from its own seed and is
# disjoint from the training set (train.py drops every training example whose digits appear in it).
SORT_LENGTH = 6
SORT_TRAIN_SIZE = 16_000
SORT_TRAIN_SEED = 0
SORT_TEST_SIZE = 1_000
SORT_TEST_SEED = 2

# The character-level language model on Python's documentation (tinytorch.data.text): its
# context (max_seq_len) and the held-out windows it is scored on (all the test split's windows).
TEXT_CONTEXT = 256
TEXT_TRAIN_STRIDE = 128  # overlapping training windows: every position sees many alignments
TEXT_TEST_WINDOWS = 64


@dataclass(frozen=True)
class TrainConfig:
    """How a zoo model is trained (read by ``tinytorch.zoo.train``).

    Adam with a cosine learning-rate decay from ``lr`` to 0 over ``epochs`` passes of
    shuffled minibatches; ``seed`` seeds both the weight initialisation and the shuffling.
    """

    seed: int
    epochs: int
    batch_size: int
    lr: float


@dataclass(frozen=True)
class ZooModel:
    """One entry of the zoo: how to build it, how to train it, how to score it."""

    name: str
    task: str  # "digits", "sort" or "text"
    description: str
    build: Callable[[np.random.Generator], Module]
    train: TrainConfig
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)


def _build_mlp(rng: np.random.Generator) -> Module:
    return Sequential(
        Flatten(),
        Linear(64, 128, rng=rng),
        ReLU(),
        Linear(128, 64, rng=rng),
        ReLU(),
        Linear(64, 10, rng=rng),
    )


def _build_cnn(rng: np.random.Generator) -> Module:
    return Sequential(
        Conv2d(1, 16, 3, padding=1, rng=rng),  # (N, 16, 8, 8)
        ReLU(),
        MaxPool2d(2),  # (N, 16, 4, 4)
        Conv2d(16, 32, 3, padding=1, rng=rng),  # (N, 32, 4, 4)
        ReLU(),
        MaxPool2d(2),  # (N, 32, 2, 2)
        Flatten(),  # (N, 128)
        Linear(128, 64, rng=rng),
        ReLU(),
        Linear(64, 10, rng=rng),
    )


_GPT_SHAPE = {
    "vocab_size": VOCAB_SIZE,
    "max_seq_len": 2 * SORT_LENGTH + 1,
    "embed_dim": 48,
    "n_heads": 4,
    "n_layers": 2,
}


def _build_gpt(rng: np.random.Generator) -> Module:
    return GPT(**_GPT_SHAPE, rng=rng)


_TEXT_GPT_SHAPE = {
    "vocab_size": TEXT_VOCAB_SIZE,
    "max_seq_len": TEXT_CONTEXT,
    "embed_dim": 64,
    "n_heads": 4,
    "n_layers": 2,
}


def sinusoids(n_positions: int, dim: int) -> np.ndarray:
    """float32 (n_positions, dim): sin(p / 10000^(2i/dim)) in column 2i, cos in column 2i + 1.

    The fixed position encoding of "Attention is all you need", used here only as the
    *initial* value of the text GPT's learned position embeddings: with a random N(0, 1) start
    the model must learn each of its 256 positions separately and sits for hundreds of steps
    at the bigram loss (2.46 nats); sinusoids give it relative positions from the start.
    """
    angles = np.arange(n_positions)[:, None] / 10000.0 ** (2 * np.arange(dim // 2)[None, :] / dim)
    table = np.zeros((n_positions, dim))
    table[:, 0::2], table[:, 1::2] = np.sin(angles), np.cos(angles)
    return table.astype(np.float32)


def _build_text_gpt(rng: np.random.Generator) -> Module:
    model = GPT(**_TEXT_GPT_SHAPE, rng=rng)
    model.pos_emb.weight.data[...] = sinusoids(TEXT_CONTEXT, _TEXT_GPT_SHAPE["embed_dim"])
    return model


MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel(
            name="mlp_digits",
            task="digits",
            description="3-layer MLP on the 8x8 UCI digits",
            build=_build_mlp,
            train=TrainConfig(seed=0, epochs=30, batch_size=32, lr=2e-3),
            hyperparameters={"hidden": [128, 64], "activation": "relu"},
        ),
        ZooModel(
            name="cnn_digits",
            task="digits",
            description="2-conv CNN on the 8x8 UCI digits",
            build=_build_cnn,
            train=TrainConfig(seed=0, epochs=20, batch_size=32, lr=3e-3),
            hyperparameters={"channels": [16, 32], "kernel_size": 3, "padding": 1, "pool": 2, "hidden": 64},
        ),
        ZooModel(
            name="transformer_sort",
            task="sort",
            description=f"2-block GPT that sorts {SORT_LENGTH} digits",
            build=_build_gpt,
            train=TrainConfig(seed=0, epochs=4, batch_size=64, lr=3e-3),
            hyperparameters={
                **_GPT_SHAPE,
                "mlp_ratio": 4,
                "sort_length": SORT_LENGTH,
                "train_size": SORT_TRAIN_SIZE,
            },
        ),
        ZooModel(
            name="transformer_pydoc",
            task="text",
            description=f"2-block character GPT ({TEXT_CONTEXT} positions) on Python's pydoc topics",
            build=_build_text_gpt,
            train=TrainConfig(seed=0, epochs=4, batch_size=8, lr=3e-3),
            hyperparameters={
                **_TEXT_GPT_SHAPE,
                "mlp_ratio": 4,
                "train_stride": TEXT_TRAIN_STRIDE,
                "position_init": "sinusoids",
            },
        ),
    )
}


def list_models() -> list[str]:
    """The zoo's model names, sorted."""
    return sorted(MODELS)


def get(name: str) -> ZooModel:
    """The zoo entry called ``name``; ``KeyError`` listing the valid names otherwise."""
    if not isinstance(name, str) or name not in MODELS:
        raise KeyError(f"unknown zoo model {name!r}; valid names: {', '.join(list_models())}")
    return MODELS[name]


def build_model(name: str, seed: int | None = None) -> Module:
    """A freshly initialised (untrained) model, its weights drawn from ``default_rng(seed)``
    (default: the entry's training seed)."""
    entry = get(name)
    return entry.build(np.random.default_rng(entry.train.seed if seed is None else seed))


def weights_path(name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Where the weights of ``name`` live: ``<weights_dir>/<name>.npz``."""
    get(name)
    return Path(weights_dir if weights_dir is not None else WEIGHTS_DIR) / f"{name}.npz"


def state_sha256(model: Module) -> str:
    """sha256 over the parameters: each name, dtype, shape and raw bytes, in name order.

    Unlike the hash of the .npz file (a zip archive records when it was written), this depends
    only on the weights, so retraining with the same seed reproduces it.
    """
    digest = hashlib.sha256()
    for name, array in sorted(model.state_dict().items()):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def load_metrics(weights_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The training record (``metrics.json``): ``{"models": {name: {...}}, ...}``."""
    path = Path(weights_dir if weights_dir is not None else WEIGHTS_DIR) / METRICS_FILE_NAME
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ValueError(f"{path}: no metrics file (run `python -m tinytorch.zoo.train`)") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(record, dict) or not isinstance(record.get("models"), dict):
        raise ValueError(f"{path}: expected an object with a 'models' mapping")
    return record


def load_model(name: str, weights_dir: str | os.PathLike | None = None, verify: bool = True) -> Module:
    """Build ``name``, load its weights from ``<weights_dir>/<name>.npz`` and set eval mode.

    With ``verify`` (the default) the loaded weights must hash (:func:`state_sha256`) to the
    ``weights_sha256`` recorded for the model in ``<weights_dir>/metrics.json``.

    Raises:
        KeyError: unknown ``name`` (the message lists the valid names).
        ValueError: missing, corrupt or mismatched weights file (from ``load_weights``), or
            weights that differ from the recorded ones (tampered, or retrained without
            updating metrics.json).
    """
    model = build_model(name)
    path = weights_path(name, weights_dir)
    load_weights(model, path)
    if verify:
        recorded = load_metrics(weights_dir)["models"].get(name, {}).get("weights_sha256")
        actual = state_sha256(model)
        if recorded != actual:
            raise ValueError(
                f"{path}: the weights do not match the sha256 recorded in {METRICS_FILE_NAME} "
                f"(recorded {recorded}, file gives {actual}); the file was modified or retrained "
                "without its metrics: rerun `python -m tinytorch.zoo.train`"
            )
    return model.eval()


def _sort_test_task():
    return make_sequence_task(SORT_TEST_SIZE, seed=SORT_TEST_SEED, length=SORT_LENGTH)


def eval_data(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The held-out data a model is scored on, as (inputs, expected).

    digits models: images float32 (359, 1, 8, 8) and labels int64 (359,);
    ``transformer_sort``: prompts int64 (1000, 7) (6 digits and the separator) and the
    sorted digits int64 (1000, 6); ``transformer_pydoc``: consecutive windows of the test
    text, inputs and next characters int64 (n, 256) with n <= ``TEXT_TEST_WINDOWS``.
    """
    task = get(name).task
    if task == "digits":
        return load_digits("test")
    if task == "text":
        return text_windows("test", TEXT_CONTEXT, limit=TEXT_TEST_WINDOWS)
    sort_task = _sort_test_task()
    return sort_task.prompts, sort_task.answers


def sort_predictions(model: GPT, prompts: np.ndarray) -> np.ndarray:
    """Greedy answers of a sorting GPT: int64 (n, L) for prompts (n, L + 1) ending in the separator."""
    prompts = np.asarray(prompts)
    if prompts.ndim != 2 or prompts.shape[1] < 2 or not np.all(prompts[:, -1] == SEP):
        raise ValueError(
            f"prompts must be (n, L + 1) token ids ending with the separator, got shape {prompts.shape}"
        )
    length = prompts.shape[1] - 1
    with inference(model):
        return model.generate(prompts, max_new_tokens=length)[:, length + 1 :]


def text_scores(model: GPT, inputs: np.ndarray, targets: np.ndarray, batch_size: int = 8) -> dict[str, float]:
    """Next-character scores of a language model over windows ``inputs``/``targets`` int (n, T).

    ``test_loss``: the mean cross-entropy -log p(target) in nats per character (log-softmax in
    float64 of the float32 logits); ``test_accuracy``: the fraction of positions whose argmax
    is the target. Forward passes of ``batch_size`` windows under ``inference``.
    """
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    if inputs.ndim != 2 or inputs.shape != targets.shape:
        raise ValueError(
            f"inputs and targets must be two (n, T) arrays, got shapes {inputs.shape} and {targets.shape}"
        )
    nll, hits = 0.0, 0
    with inference(model):
        for start in range(0, len(inputs), batch_size):
            logits, _ = model(inputs[start : start + batch_size])
            z = logits.data.astype(np.float64)
            z -= z.max(axis=-1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
            y = targets[start : start + batch_size]
            nll -= float(np.take_along_axis(log_p, y[..., None], axis=-1).sum())
            hits += int((logits.data.argmax(axis=-1) == y).sum())
    return {"test_loss": nll / targets.size, "test_accuracy": hits / targets.size}


def scores(name: str, model: Module) -> dict[str, float]:
    """The model's scores on its held-out test set, from one pass of predictions.

    ``test_accuracy``: classification accuracy for the digits models, exact-match accuracy
    (every generated digit right) for ``transformer_sort``, which also reports
    ``token_accuracy`` (the fraction of generated digits that are right).
    """
    inputs, expected = eval_data(name)
    if get(name).task == "digits":
        return {"test_accuracy": accuracy(model, inputs, expected)}
    if get(name).task == "text":
        return text_scores(model, inputs, expected)
    predicted = sort_predictions(model, inputs)
    return {
        "test_accuracy": sequence_accuracy(predicted, expected),
        "token_accuracy": token_accuracy(predicted, expected),
    }


def evaluate(name: str, model: Module) -> float:
    """The model's test accuracy (see :func:`scores`): the number the zoo records and promises."""
    return scores(name, model)["test_accuracy"]
