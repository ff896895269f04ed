"""The model zoo (tinytorch.zoo) and its training command (tinytorch.zoo.train).

Evaluation is deterministic: a float32 forward pass over a fixed test set with argmax (or greedy
decoding), no sampling, so a shipped model must reproduce its recorded accuracy *exactly*.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tinytorch import zoo
from tinytorch.data import SEP, load_digits, make_sequence_task
from tinytorch.losses import cross_entropy
from tinytorch.optim import Adam
from tinytorch.serialization import save_weights
from tinytorch.tensor import Tensor
from tinytorch.transformer import GPT
from tinytorch.zoo import train as zoo_train

NAMES = ["cnn_digits", "mlp_digits", "transformer_pydoc", "transformer_sort"]
# The bars the zoo promises on its test sets (the course's benchmarks rely on them); for the text
# model, next-character accuracy (its held-out loss is checked in test_text.py).
MINIMUM_ACCURACY = {
    "cnn_digits": 0.97,
    "mlp_digits": 0.95,
    "transformer_pydoc": 0.5,
    "transformer_sort": 0.99,
}
ENTRY_KEYS = {
    "test_accuracy",
    "num_parameters",
    "train_seconds",
    "seed",
    "epochs",
    "batch_size",
    "lr",
    "weights_sha256",
    "weights_bytes",
    "weights_file",
}


@pytest.fixture(scope="module")
def metrics():
    return zoo.load_metrics()["models"]


@pytest.fixture
def weights_copy(tmp_path):
    """A private copy of the shipped weights folder, safe to tamper with."""
    shutil.copytree(zoo.WEIGHTS_DIR, tmp_path / "weights")
    return tmp_path / "weights"


# ---------------------------------------------------------------------------- registry


def test_list_models_and_metrics_cover_the_same_models(metrics):
    assert zoo.list_models() == NAMES
    assert sorted(metrics) == NAMES
    for name in NAMES:
        entry = metrics[name]
        assert ENTRY_KEYS <= set(entry), f"{name}: missing {ENTRY_KEYS - set(entry)}"
        path = zoo.weights_path(name)
        assert path.name == entry["weights_file"] == f"{name}.npz"
        assert path.stat().st_size == entry["weights_bytes"]
        assert entry["seed"] == zoo.get(name).train.seed and entry["epochs"] == zoo.get(name).train.epochs


@pytest.mark.parametrize("name", NAMES)
def test_shipped_model_reproduces_its_recorded_accuracy_exactly(name, metrics):
    model = zoo.load_model(name)
    assert not model.training
    assert model.num_parameters() == metrics[name]["num_parameters"]
    score = zoo.evaluate(name, model)
    assert score == metrics[name]["test_accuracy"]  # exact: deterministic float32 evaluation
    assert score >= MINIMUM_ACCURACY[name]


def test_sorting_model_really_sorts_and_its_token_accuracy_matches(metrics):
    model = zoo.load_model("transformer_sort")
    prompts, answers = zoo.eval_data("transformer_sort")
    assert prompts.shape == (zoo.SORT_TEST_SIZE, zoo.SORT_LENGTH + 1) and np.all(prompts[:, -1] == SEP)
    np.testing.assert_array_equal(answers, np.sort(prompts[:, :-1], axis=1))
    recorded = metrics["transformer_sort"]
    assert zoo.scores("transformer_sort", model) == {
        "test_accuracy": recorded["test_accuracy"],
        "token_accuracy": recorded["token_accuracy"],
    }
    assert recorded["test_accuracy"] <= recorded["token_accuracy"]  # a right answer has every digit right
    assert set(zoo.scores("cnn_digits", zoo.load_model("cnn_digits"))) == {"test_accuracy"}
    one = zoo.sort_predictions(model, np.array([[9, 0, 5, 5, 1, 3, SEP]]))
    assert one.tolist() == [[0, 1, 3, 5, 5, 9]]


def test_eval_data_of_the_digits_models_is_the_test_split():
    x, y = zoo.eval_data("cnn_digits")
    x_test, y_test = load_digits("test")
    np.testing.assert_array_equal(x, x_test)
    np.testing.assert_array_equal(y, y_test)


def test_build_model_is_deterministic_and_untrained():
    a, b = zoo.build_model("cnn_digits"), zoo.build_model("cnn_digits")
    assert zoo.state_sha256(a) == zoo.state_sha256(b)
    assert zoo.state_sha256(zoo.build_model("cnn_digits", seed=1)) != zoo.state_sha256(a)
    assert zoo.evaluate("cnn_digits", a) < 0.5  # random weights: about chance (0.1), nowhere near 0.97


@pytest.mark.parametrize("call", [zoo.get, zoo.load_model, zoo.build_model, zoo.weights_path, zoo.eval_data])
def test_unknown_model_name_lists_the_valid_names(call):
    with pytest.raises(KeyError, match="unknown zoo model 'resnet50'") as info:
        call("resnet50")
    for name in NAMES:
        assert name in str(info.value)


# ---------------------------------------------------------------------------- integrity


def test_weights_with_changed_values_are_refused(weights_copy):
    model = zoo.load_model("mlp_digits", weights_dir=weights_copy)
    model.parameters()[0].data[0, 0] += 1e-3  # a valid .npz of the right shapes, other values
    save_weights(model, weights_copy / "mlp_digits.npz")
    with pytest.raises(ValueError, match="sha256"):
        zoo.load_model("mlp_digits", weights_dir=weights_copy)
    tampered = zoo.load_model("mlp_digits", weights_dir=weights_copy, verify=False)  # the check is the hash
    assert (
        zoo.state_sha256(tampered) != zoo.load_metrics(weights_copy)["models"]["mlp_digits"]["weights_sha256"]
    )


def test_flipped_bytes_are_refused(weights_copy):
    path = weights_copy / "cnn_digits.npz"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="cnn_digits.npz"):
        zoo.load_model("cnn_digits", weights_dir=weights_copy)


@pytest.mark.parametrize("damage", ["truncated", "missing", "not_npz", "wrong_shapes"])
def test_broken_weights_files_are_clear_value_errors(weights_copy, damage):
    path = weights_copy / "cnn_digits.npz"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    elif damage == "missing":
        path.unlink()
    elif damage == "not_npz":
        path.write_text("not weights")
    else:  # the MLP's weights under the CNN's name
        shutil.copy(weights_copy / "mlp_digits.npz", path)
    with pytest.raises(ValueError, match="cnn_digits.npz"):
        zoo.load_model("cnn_digits", weights_dir=weights_copy, verify=False)


@pytest.mark.parametrize("content", [None, "{not json", '{"models": []}'])
def test_missing_or_broken_metrics_file(weights_copy, content):
    path = weights_copy / zoo.METRICS_FILE_NAME
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match="metrics.json"):
        zoo.load_model("mlp_digits", weights_dir=weights_copy)


def test_shipped_files_load_without_pickle():
    for name in NAMES:
        with np.load(zoo.weights_path(name), allow_pickle=False) as archive:
            assert all(archive[key].dtype == np.float32 for key in archive.files)


# ---------------------------------------------------------------------------- training code


def test_cosine_decay_schedule():
    p = Tensor(np.ones(3), requires_grad=True)
    schedule = zoo_train.CosineDecay(Adam([p], lr=0.1), total_steps=4)
    # lr_t = 0.1 * (1 + cos(pi t / 4)) / 2
    expected = [0.1, 0.1 * (1 + np.sqrt(0.5)) / 2, 0.05, 0.1 * (1 - np.sqrt(0.5)) / 2]
    for lr in expected:
        p.grad = np.ones(3, np.float32)
        schedule.step()
        assert schedule.optimizer.lr == pytest.approx(lr, rel=1e-12)
    schedule.zero_grad()
    assert p.grad is None
    assert schedule.lr_at(4) == 0.0
    with pytest.raises(ValueError, match="total_steps"):
        zoo_train.CosineDecay(Adam([p]), total_steps=0)


def test_masked_sequence_loss_counts_only_answer_positions():
    rng = np.random.default_rng(0)
    logits = Tensor(rng.standard_normal((2, 3, 5)), requires_grad=True)
    targets = np.array([[zoo_train.IGNORE, 1, 2], [zoo_train.IGNORE, zoo_train.IGNORE, 4]])
    loss = zoo_train.masked_sequence_loss(logits, targets)
    rows = logits.data.reshape(-1, 5)[[1, 2, 5]]
    assert loss.item() == pytest.approx(cross_entropy(Tensor(rows), np.array([1, 2, 4])).item(), rel=1e-6)
    loss.backward()
    np.testing.assert_array_equal(logits.grad[:, 0], 0.0)  # ignored positions get no gradient
    np.testing.assert_array_equal(logits.grad[1, 1], 0.0)
    with pytest.raises(ValueError, match="IGNORE"):
        zoo_train.masked_sequence_loss(logits, np.full((2, 3), zoo_train.IGNORE))


def test_sorting_training_data_is_disjoint_from_the_test_set():
    inputs, targets, loss_fn = zoo_train.training_data("transformer_sort")
    length = zoo.SORT_LENGTH
    assert loss_fn is zoo_train.gpt_sequence_loss
    assert inputs.shape[1] == 2 * length and 0 < len(inputs) <= zoo.SORT_TRAIN_SIZE
    np.testing.assert_array_equal(targets[:, :length], zoo_train.IGNORE)
    np.testing.assert_array_equal(targets[:, length:], np.sort(inputs[:, :length], axis=1))
    prompts, _ = zoo.eval_data("transformer_sort")
    train_rows = {tuple(row) for row in inputs[:, :length].tolist()}
    assert not train_rows & {tuple(row) for row in prompts[:, :-1].tolist()}
    full = make_sequence_task(zoo.SORT_TRAIN_SIZE, seed=zoo.SORT_TRAIN_SEED, length=length)
    assert len(inputs) < len(full.inputs)  # the overlap with the test set was really dropped


@pytest.mark.parametrize(
    ("name", "limit"), [("cnn_digits", 64), ("mlp_digits", 64), ("transformer_sort", 128)]
)
def test_a_few_training_epochs_reduce_the_loss_deterministically(name, limit):
    first = zoo_train.train_model(name, epochs=3, limit=limit)
    assert len(first.history) == 3
    assert first.history[-1] < first.history[0]
    assert first.metrics["train_examples"] == limit and first.metrics["epochs"] == 3
    assert first.metrics["num_parameters"] == first.model.num_parameters()
    assert 0.0 <= first.metrics["test_accuracy"] <= 1.0
    again = zoo_train.train_model(name, epochs=3, limit=limit, score=False)
    assert "test_accuracy" not in again.metrics
    assert again.history == first.history  # same seed: same batches, same float32 arithmetic
    assert again.metrics["weights_sha256"] == first.metrics["weights_sha256"]


def test_train_model_bad_limit():
    with pytest.raises(ValueError, match="limit"):
        zoo_train.train_model("mlp_digits", limit=0)


def test_save_result_merges_entries_and_the_model_loads_back(tmp_path):
    results = [zoo_train.train_model(name, epochs=1, limit=32) for name in ("mlp_digits", "cnn_digits")]
    for result in results:
        record = zoo_train.save_result(result, tmp_path / "out")
    assert sorted(record["models"]) == ["cnn_digits", "mlp_digits"]
    assert record["total_train_seconds"] == pytest.approx(
        sum(r.metrics["train_seconds"] for r in results), abs=0.011
    )
    on_disk = json.loads((tmp_path / "out" / zoo.METRICS_FILE_NAME).read_text())
    assert on_disk == record
    loaded = zoo.load_model("cnn_digits", weights_dir=tmp_path / "out")
    assert zoo.evaluate("cnn_digits", loaded) == record["models"]["cnn_digits"]["test_accuracy"]


def test_main_trains_one_model_with_its_full_config(tmp_path, capsys):
    assert zoo_train.main(["--model", "mlp_digits", "--out", str(tmp_path)]) == 0
    assert "mlp_digits: test accuracy" in capsys.readouterr().out
    record = zoo.load_metrics(tmp_path)
    entry = record["models"]["mlp_digits"]
    assert list(record["models"]) == ["mlp_digits"]
    assert entry["epochs"] == zoo.get("mlp_digits").train.epochs and entry["train_examples"] == 1438
    assert entry["test_accuracy"] >= MINIMUM_ACCURACY["mlp_digits"]
    model = zoo.load_model("mlp_digits", weights_dir=tmp_path)
    assert zoo.evaluate("mlp_digits", model) == entry["test_accuracy"]


def test_main_rejects_an_unknown_model(capsys):
    with pytest.raises(SystemExit):
        zoo_train.main(["--model", "resnet50"])
    assert "invalid choice" in capsys.readouterr().err


def test_sort_predictions_bad_prompts():
    model = GPT(11, 13, 8, 2, 1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="prompts"):
        zoo.sort_predictions(model, np.array([[1, 2, 3]]))  # no separator at the end
    with pytest.raises(ValueError, match="prompts"):
        zoo.sort_predictions(model, np.array([1, 2, SEP]))  # not a batch
    model.train()
    zoo.sort_predictions(model, np.array([[1, 2, SEP]]))
    assert model.training  # the caller's mode is restored
