"""Train the model zoo from fixed seeds and write its weights and metrics.

    python -m tinytorch.zoo.train                          # every model of the zoo
    python -m tinytorch.zoo.train --model cnn_digits       # one (repeat --model for several)
    python -m tinytorch.zoo.train --out /tmp/zoo           # somewhere else than the package

Each model trains with Adam and a cosine learning-rate decay (:class:`CosineDecay`) through
``tinytorch.training.fit``, for the epochs, batch size and learning rate of its
:class:`~tinytorch.zoo.TrainConfig`. Its ``seed`` drives everything random: the weight
initialisation (``default_rng(seed)``) and the minibatch shuffling (``default_rng([seed, 1])``),
so the same seed gives the same weights, bit for bit, on the same machine, numpy build and
number of BLAS threads. (A different thread count may round a product's sums differently and
the differences grow over a thousand Adam steps: trained with two threads, the GPT's weights
differed from the shipped ones by up to 0.02, with the same test accuracy.)

Writes ``<out>/<name>.npz`` (``save_weights``) and merges the model's entry into
``<out>/metrics.json``: test accuracy, parameter count, training seconds, seed, epochs, the
weights' size and :func:`~tinytorch.zoo.state_sha256`.

Speed: the matrices are tiny, so a multi-threaded BLAS spends more time synchronising than
computing (on 2 cores about 35 s with one thread against 90 s with two). The shipped weights
were trained, and are timed in metrics.json, with one BLAS thread::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m tinytorch.zoo.train
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch import zoo
from tinytorch.data import load_digits, make_sequence_task, text_windows
from tinytorch.layers import Module
from tinytorch.losses import cross_entropy
from tinytorch.optim import Adam
from tinytorch.serialization import save_weights
from tinytorch.tensor import Tensor
from tinytorch.training import fit, minibatches

__all__ = [
    "IGNORE",
    "CosineDecay",
    "TrainResult",
    "gpt_sequence_loss",
    "main",
    "masked_sequence_loss",
    "save_result",
    "train_model",
    "training_data",
]

IGNORE = -1  # target id of a position that the loss skips (the prompt of a sorting example)


class CosineDecay:
    """Wrap an optimiser and decay its learning rate along half a cosine, per step:

        lr_t = lr_0 * (1 + cos(pi * t / total_steps)) / 2,    t = 0, 1, ..., total_steps - 1

    It starts at lr_0 and ends near 0, which lets the last epochs settle instead of bouncing
    around the minimum. Pass it to ``fit`` in place of the optimiser (it has ``zero_grad`` and
    ``step``).
    """

    def __init__(self, optimizer: Adam, total_steps: int) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.total_steps = total_steps
        self.t = 0

    def lr_at(self, t: int) -> float:
        return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * min(t, self.total_steps) / self.total_steps))

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def step(self) -> None:
        self.optimizer.lr = self.lr_at(self.t)
        self.optimizer.step()
        self.t += 1


def masked_sequence_loss(logits: Tensor, targets: np.ndarray) -> Tensor:
    """Cross-entropy over the positions whose target is not ``IGNORE``.

    logits (B, T, V), targets int (B, T). Only the answer positions of the sorting task carry
    a target; the prompt digits are random, so predicting them would only add noise.
    """
    targets = np.asarray(targets)
    keep = np.flatnonzero(targets.reshape(-1) != IGNORE)
    if keep.size == 0:
        raise ValueError("masked_sequence_loss: every target is IGNORE, nothing to learn")
    flat = logits.reshape(-1, logits.shape[-1])
    return cross_entropy(flat[keep], targets.reshape(-1)[keep])


def gpt_sequence_loss(output: tuple[Tensor, Any], targets: np.ndarray) -> Tensor:
    """:func:`masked_sequence_loss` of a GPT's output, which is the pair (logits, present kv)."""
    logits, _ = output
    return masked_sequence_loss(logits, targets)


def training_data(name: str) -> tuple[np.ndarray, np.ndarray, Callable[[Any, Any], Tensor]]:
    """(inputs, targets, loss_fn) of the training set of zoo model ``name``.

    digits: the 1,438 training images and labels with cross-entropy. ``transformer_sort``:
    ``SORT_TRAIN_SIZE`` sorting examples without any whose digits appear in the held-out test
    set, targets ``IGNORE`` outside the answer, with :func:`gpt_sequence_loss`.
    ``transformer_pydoc``: windows of ``TEXT_CONTEXT`` characters of the training topics,
    starting every ``TEXT_TRAIN_STRIDE`` characters, every next character a target.
    """
    if zoo.get(name).task == "digits":
        x, y = load_digits("train")
        return x, y, cross_entropy
    if zoo.get(name).task == "text":
        x, y = text_windows("train", zoo.TEXT_CONTEXT, stride=zoo.TEXT_TRAIN_STRIDE)
        return x, y, gpt_sequence_loss
    task = make_sequence_task(zoo.SORT_TRAIN_SIZE, seed=zoo.SORT_TRAIN_SEED, length=zoo.SORT_LENGTH)
    test_prompts, _ = zoo.eval_data(name)
    place = 10 ** np.arange(zoo.SORT_LENGTH, dtype=np.int64)  # digits -> one integer key per example
    seen_in_test = np.isin(task.inputs[:, : zoo.SORT_LENGTH] @ place, test_prompts[:, :-1] @ place)
    keep = ~seen_in_test
    targets = np.where(task.mask, task.targets, IGNORE)
    return task.inputs[keep], targets[keep], gpt_sequence_loss


@dataclass
class TrainResult:
    """A trained model, its per-epoch mean training loss and its metrics entry."""

    name: str
    model: Module
    history: list[float]
    metrics: dict[str, Any]


def train_model(
    name: str, *, epochs: int | None = None, limit: int | None = None, score: bool = True
) -> TrainResult:
    """Train zoo model ``name`` from its seed and score it on its test set.

    ``epochs`` overrides the configured number, ``limit`` keeps only the first ``limit``
    training examples and ``score=False`` skips the test-set scores (all three for quick
    checks; the shipped weights use none of them).
    """
    entry = zoo.get(name)
    cfg = entry.train
    epochs = cfg.epochs if epochs is None else epochs
    x, y, loss_fn = training_data(name)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        x, y = x[:limit], y[:limit]
    model = zoo.build_model(name)  # weights from default_rng(cfg.seed)
    shuffle = np.random.default_rng([cfg.seed, 1])
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    schedule = CosineDecay(Adam(model.parameters(), lr=cfg.lr), total_steps=epochs * steps_per_epoch)
    start = time.perf_counter()
    history = fit(model, loss_fn, schedule, lambda: minibatches(x, y, cfg.batch_size, rng=shuffle), epochs)
    seconds = time.perf_counter() - start
    model.eval()
    metrics: dict[str, Any] = {
        "task": entry.task,
        **(zoo.scores(name, model) if score else {}),
        "num_parameters": model.num_parameters(),
        "train_seconds": round(seconds, 2),
        "seed": cfg.seed,
        "epochs": epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "train_examples": len(x),
        "final_train_loss": history[-1],
        "weights_sha256": zoo.state_sha256(model),
    }
    return TrainResult(name, model, history, metrics)


def save_result(result: TrainResult, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write ``<out_dir>/<name>.npz`` and merge the metrics entry into ``<out_dir>/metrics.json``.

    Returns the whole metrics record as written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = save_weights(result.model, zoo.weights_path(result.name, out))
    entry = {**result.metrics, "weights_file": path.name, "weights_bytes": path.stat().st_size}
    metrics_path = out / zoo.METRICS_FILE_NAME
    record = zoo.load_metrics(out) if metrics_path.exists() else {"models": {}}
    record["models"][result.name] = entry
    record["models"] = dict(sorted(record["models"].items()))
    record["total_train_seconds"] = round(sum(m["train_seconds"] for m in record["models"].values()), 2)
    record["retrain_command"] = "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m tinytorch.zoo.train"
    record["environment"] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    metrics_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tinytorch.zoo.train", description="Train the model zoo from fixed seeds."
    )
    parser.add_argument(
        "--model",
        action="append",
        choices=zoo.list_models(),
        help="train only this model (repeatable; default: all)",
    )
    parser.add_argument("--out", default=str(zoo.WEIGHTS_DIR), help="output folder (default: the package's)")
    args = parser.parse_args(argv)
    names = args.model or zoo.list_models()
    start = time.perf_counter()
    for name in names:
        print(f"training {name} ...", flush=True)
        result = train_model(name)
        record = save_result(result, args.out)
        m = record["models"][name]
        print(
            f"  {name}: test accuracy {m['test_accuracy']:.4f}, {m['num_parameters']} parameters, "
            f"{m['train_seconds']:.1f} s, {m['weights_bytes']} bytes",
            flush=True,
        )
    print(f"done in {time.perf_counter() - start:.1f} s; weights and metrics.json in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
