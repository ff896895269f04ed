"""The shipped text (Python's help topics) and the zoo's long-context model trained on it."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from tinytorch import zoo
from tinytorch.data import (
    CHARS,
    TEXT_FILE,
    TEXT_VOCAB_SIZE,
    decode_text,
    encode_text,
    load_text,
    load_topics,
    text_windows,
)
from tinytorch.data import text as text_module
from tinytorch.zoo import train as zoo_train

# PYDOC_TOPICS.md records these: the content, not the gzip container, is what must not change.
CONTENT_SHA256 = "c96f555f9ce808beb4aae33f41884f4499933a7f8082d490f4a3e3cd3664c6ff"


def test_the_shipped_text_is_the_recorded_one():
    assert hashlib.sha256(gzip.decompress(TEXT_FILE.read_bytes())).hexdigest() == CONTENT_SHA256
    topics = load_topics()
    assert len(topics) == 79 and list(topics) == sorted(topics)
    assert sum(map(len, topics.values())) == 464_942
    assert topics["assert"].startswith('The "assert" statement\n')
    assert set("".join(topics.values())) <= set(CHARS)


def test_splits_are_disjoint_topics_and_cover_everything():
    train, test, everything = load_text("train"), load_text("test"), load_text("all")
    assert (len(train), len(test), len(everything)) == (454_198, 10_898, 465_098)
    held_out = list(load_topics())[9::10]
    assert held_out == [
        "binary",
        "class",
        "dynamic-features",
        "id-classes",
        "nonlocal",
        "shifting",
        "typesfunctions",
    ]
    for name in held_out:
        assert load_topics()[name] in test and load_topics()[name] not in train
    with pytest.raises(ValueError, match="split"):
        load_text("validation")


def test_encode_decode_round_trip_and_errors():
    assert len(CHARS) == TEXT_VOCAB_SIZE == 96 and CHARS[0] == "\n" and CHARS[1] == " "
    text = 'def f(x):\n    return x ** 2  # "~"'
    ids = encode_text(text)
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 96
    assert decode_text(ids) == text and decode_text(ids[None, :]) == text
    assert encode_text("").shape == (0,) and decode_text(np.zeros(0, np.int64)) == ""
    with pytest.raises(ValueError, match="'é' at index 3"):
        encode_text("caf\u00e9")
    with pytest.raises(ValueError, match="alphabet"):
        encode_text("tab\there")
    with pytest.raises(TypeError, match="str"):
        encode_text(b"bytes")
    with pytest.raises(ValueError, match="0..95"):
        decode_text(np.array([96]))
    with pytest.raises(TypeError, match="integers"):
        decode_text(np.array([1.0]))


def test_windows_are_next_character_pairs():
    x, y = text_windows("test", 256)
    ids = encode_text(load_text("test"))
    assert x.shape == y.shape == ((ids.size - 257) // 256 + 1, 256)
    np.testing.assert_array_equal(x[1], ids[256:512])
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    x2, y2 = text_windows("test", 16, stride=8, limit=5)
    assert x2.shape == (5, 16)
    np.testing.assert_array_equal(x2[1, :8], x2[0, 8:])
    with pytest.raises(ValueError, match="stride"):
        text_windows("test", 16, stride=0)


def test_a_missing_or_broken_text_file(tmp_path, monkeypatch):
    monkeypatch.setattr(text_module, "TEXT_FILE", tmp_path / "missing.json.gz")
    load_topics.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="PYDOC_TOPICS.md"):
            load_topics()
        broken = tmp_path / "list.json.gz"
        broken.write_bytes(gzip.compress(b"[1, 2]"))
        monkeypatch.setattr(text_module, "TEXT_FILE", broken)
        with pytest.raises(ValueError, match="topic name"):
            load_topics()
    finally:
        load_topics.cache_clear()


def test_the_long_context_model_reproduces_its_recorded_held_out_loss():
    model = zoo.load_model("transformer_pydoc")
    assert model.max_seq_len == zoo.TEXT_CONTEXT >= 256
    recorded = zoo.load_metrics()["models"]["transformer_pydoc"]
    inputs, targets = zoo.eval_data("transformer_pydoc")
    assert inputs.shape == targets.shape == (min(42, zoo.TEXT_TEST_WINDOWS), 256)
    got = zoo.scores("transformer_pydoc", model)
    assert got["test_loss"] == pytest.approx(recorded["test_loss"], rel=1e-6)
    assert got["test_accuracy"] == recorded["test_accuracy"]
    assert got["test_loss"] < 0.8 * np.log(TEXT_VOCAB_SIZE)  # far better than uniform guessing
    untrained = zoo.text_scores(zoo.build_model("transformer_pydoc"), inputs[:2], targets[:2])
    assert untrained["test_loss"] > got["test_loss"] + 1.0
    with pytest.raises(ValueError, match="inputs and targets"):
        zoo.text_scores(model, inputs[:1], targets[:1, :5])


def test_the_text_model_starts_from_sinusoidal_positions_and_trains():
    model = zoo.build_model("transformer_pydoc")
    np.testing.assert_array_equal(model.pos_emb.weight.data, zoo.sinusoids(256, 64))
    assert zoo.sinusoids(3, 4)[1].tolist() == pytest.approx(
        [np.sin(1), np.cos(1), np.sin(0.01), np.cos(0.01)]
    )
    x, y, loss_fn = zoo_train.training_data("transformer_pydoc")
    assert loss_fn is zoo_train.gpt_sequence_loss and x.shape[1] == 256
    np.testing.assert_array_equal(x[1, :128], x[0, 128:])  # windows overlap by half
    result = zoo_train.train_model("transformer_pydoc", epochs=1, limit=4, score=False)
    assert result.metrics["train_examples"] == 4 and len(result.history) == 1
