"""The shipped digits and the synthetic sorting task (tinytorch.data)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.data import (
    DIGITS_FILE,
    SEP,
    VOCAB,
    VOCAB_SIZE,
    decode,
    encode,
    load_digits,
    make_sequence_task,
    sequence_accuracy,
    stratified_split,
    token_accuracy,
)

DIGITS_MD = DIGITS_FILE.with_name("DIGITS.md")
CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # UCI optdigits.tes, as in DIGITS.md
# sha256(images.tobytes() + labels.tobytes()) of the shipped arrays, recorded in DIGITS.md
CONTENT_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"


# ---------------------------------------------------------------------------- the shipped file


def test_shipped_file_has_the_documented_arrays():
    with np.load(DIGITS_FILE, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["images", "labels"]
        images, labels = archive["images"], archive["labels"]
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    assert labels.dtype == np.uint8 and labels.shape == (1797,)
    assert images.min() == 0 and images.max() == 16
    assert np.bincount(labels, minlength=10).tolist() == CLASS_COUNTS
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    assert digest == CONTENT_SHA256
    assert CONTENT_SHA256 in DIGITS_MD.read_text()


def test_digits_md_records_the_sha256_of_the_shipped_file():
    digest = hashlib.sha256(DIGITS_FILE.read_bytes()).hexdigest()
    text = DIGITS_MD.read_text()
    assert digest in text, "digits.npz changed: update its sha256 in tinytorch/data/DIGITS.md"
    for needle in ("Alpaydin", "Kaynak", "CC BY 4.0", "scikit-learn", "allow_pickle=False"):
        assert needle in text


# ---------------------------------------------------------------------------- load_digits


@pytest.mark.parametrize(("split", "n"), [("train", 1438), ("test", 359), ("all", 1797)])
def test_load_digits_shapes_and_dtypes(split, n):
    x, y = load_digits(split)
    assert x.shape == (n, 1, 8, 8) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert set(np.unique(y).tolist()) == set(range(10))


def test_normalize_scales_pixels_to_unit_interval():
    x, y = load_digits("all")
    raw, y_raw = load_digits("all", normalize=False)
    assert x.min() == 0.0 and x.max() == 1.0
    assert raw.dtype == np.float32 and raw.max() == 16.0
    np.testing.assert_array_equal(raw, np.round(raw))  # pixel counts are whole numbers
    np.testing.assert_array_equal(x * 16, raw)  # k / 16 is exact in float32, so is (k / 16) * 16
    np.testing.assert_array_equal(y, y_raw)


def test_split_is_disjoint_complete_stratified_and_matches_all():
    x_all, y_all = load_digits("all")
    train, test = stratified_split(y_all)
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    for c, n_c in enumerate(CLASS_COUNTS):
        assert np.sum(y_all[test] == c) == round(0.2 * n_c)
    for split, index in (("train", train), ("test", test)):
        x, y = load_digits(split)
        np.testing.assert_array_equal(x, x_all[index])
        np.testing.assert_array_equal(y, y_all[index])


def test_load_digits_is_deterministic_and_returns_fresh_arrays():
    x1, y1 = load_digits("test")
    x1[:] = -1.0
    y1[:] = -1
    x2, y2 = load_digits("test")
    x3, y3 = load_digits("test")
    assert x2.min() == 0.0 and y2.min() == 0  # the caller's edit did not leak into the cache
    np.testing.assert_array_equal(x2, x3)
    np.testing.assert_array_equal(y2, y3)


@pytest.mark.parametrize("split", ["val", "TRAIN", "", None])
def test_unknown_split_is_a_value_error_naming_the_argument(split):
    with pytest.raises(ValueError, match="split"):
        load_digits(split)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        load_digits("all", path=tmp_path / "nope.npz")


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez_compressed(path, **arrays)
    return path


def _good_arrays() -> dict[str, np.ndarray]:
    with np.load(DIGITS_FILE, allow_pickle=False) as archive:
        return {"images": archive["images"].copy(), "labels": archive["labels"].copy()}


def test_corrupt_files_are_value_errors_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive at all")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(DIGITS_FILE.read_bytes()[:1000])
    good = _good_arrays()
    no_labels = _write(tmp_path / "no_labels.npz", images=good["images"])
    wrong_dtype = _write(
        tmp_path / "dtype.npz", images=good["images"].astype(np.int16), labels=good["labels"]
    )
    short = _write(tmp_path / "short.npz", images=good["images"], labels=good["labels"][:-1])
    bad_pixel = good["images"].copy()
    bad_pixel[0, 0, 0] = 17
    out_of_range = _write(tmp_path / "range.npz", images=bad_pixel, labels=good["labels"])
    bad_label = good["labels"].copy()
    bad_label[5] = 10
    out_of_range_label = _write(tmp_path / "label.npz", images=good["images"], labels=bad_label)
    for path in (garbage, truncated, no_labels, wrong_dtype, short, out_of_range, out_of_range_label):
        with pytest.raises(ValueError, match="corrupt") as info:
            load_digits("all", path=path)
        assert str(path) in str(info.value)


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, images=np.array([{"a": 1}], dtype=object), labels=np.zeros(1, np.uint8))
    with pytest.raises(ValueError):
        load_digits("all", path=path)
    assert zipfile.is_zipfile(path)


# ---------------------------------------------------------------------------- stratified_split


@given(
    labels=hnp.arrays(np.int64, st.integers(0, 60), elements=st.integers(0, 4)),
    test_fraction=st.sampled_from([0.0, 0.2, 0.5, 1.0, 1 / 3]),
    seed=st.integers(0, 2**32 - 1),
)
@example(labels=np.zeros(0, np.int64), test_fraction=0.2, seed=0)  # no samples at all
@example(labels=np.zeros(7, np.int64), test_fraction=0.2, seed=0)  # a single class
@example(labels=np.array([3]), test_fraction=0.5, seed=0)  # round(0.5) == 0: banker's rounding
def test_stratified_split_properties(labels, test_fraction, seed):
    train, test = stratified_split(labels, test_fraction, seed)
    assert train.dtype == np.int64 and test.dtype == np.int64
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    for c in np.unique(labels):
        assert np.sum(labels[test] == c) == round(test_fraction * np.sum(labels == c))
    again = stratified_split(labels, test_fraction, seed)
    np.testing.assert_array_equal(again[1], test)


def test_stratified_split_depends_on_the_seed():
    labels = np.repeat(np.arange(10), 50)
    assert not np.array_equal(stratified_split(labels, seed=0)[1], stratified_split(labels, seed=1)[1])


def test_stratified_split_bad_arguments():
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(np.zeros(4), test_fraction=1.5)
    with pytest.raises(ValueError, match="labels"):
        stratified_split(np.zeros((2, 2)))


# ---------------------------------------------------------------------------- the sorting task


@given(n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), length=st.integers(1, 12))
@example(n=1, seed=0, length=1)  # one digit: its sort is itself
def test_sequence_task_is_the_sorted_digits(n, seed, length):
    task = make_sequence_task(n, seed, length=length)
    for array in (task.inputs, task.targets, task.mask):
        assert array.shape == (n, 2 * length)
    assert task.inputs.dtype == np.int64 and task.targets.dtype == np.int64 and task.mask.dtype == bool
    assert task.length == length
    digits = task.inputs[:, :length]
    assert digits.min() >= 0 and digits.max() <= 9
    assert np.all(task.inputs[:, length] == SEP)
    np.testing.assert_array_equal(task.answers, np.sort(digits, axis=1))  # really sorted
    np.testing.assert_array_equal(task.prompts, task.inputs[:, : length + 1])
    np.testing.assert_array_equal(task.inputs[:, 1:], task.targets[:, :-1])  # next-token shift
    np.testing.assert_array_equal(
        task.mask, np.broadcast_to(np.arange(2 * length) >= length, (n, 2 * length))
    )
    np.testing.assert_array_equal(task.targets[task.mask].reshape(n, length), task.answers)


def test_sequence_task_is_deterministic_for_a_seed_and_extends_with_n():
    a = make_sequence_task(50, seed=7)
    b = make_sequence_task(50, seed=7)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    bigger = make_sequence_task(80, seed=7)
    np.testing.assert_array_equal(bigger.inputs[:50], a.inputs)
    assert not np.array_equal(make_sequence_task(50, seed=8).inputs, a.inputs)


def test_sequence_task_uses_every_digit_and_a_known_example():
    task = make_sequence_task(2000, seed=0, length=6)
    assert set(np.unique(task.inputs[:, :6]).tolist()) == set(range(10))
    row = np.concatenate([task.inputs[0], task.targets[0, -1:]])
    text = decode(row)
    left, right = text.split("|")
    assert "".join(sorted(left)) == right


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"n": 0, "seed": 0}, ValueError, "n"),
        ({"n": 2.0, "seed": 0}, TypeError, "n"),
        ({"n": True, "seed": 0}, TypeError, "n"),
        ({"n": 2, "seed": -1}, ValueError, "seed"),
        ({"n": 2, "seed": "0"}, TypeError, "seed"),
        ({"n": 2, "seed": 0, "length": 0}, ValueError, "length"),
    ],
)
def test_sequence_task_bad_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        make_sequence_task(**kwargs)


def test_sequence_and_token_accuracy():
    expected = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [0, 0, 0]])
    predicted = expected.copy()
    assert sequence_accuracy(predicted, expected) == 1.0 and token_accuracy(predicted, expected) == 1.0
    predicted[0, 2] = 0  # one wrong token spoils its whole row
    predicted[1, :] = 0
    assert sequence_accuracy(predicted, expected) == 0.5
    assert token_accuracy(predicted, expected) == 8 / 12


@given(
    data=st.data(),
    n=st.integers(1, 20),
    length=st.integers(1, 8),
)
def test_exact_match_never_exceeds_token_accuracy(data, n, length):
    shape = (n, length)
    expected = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 2)))
    predicted = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 2)))
    exact, per_token = sequence_accuracy(predicted, expected), token_accuracy(predicted, expected)
    assert 0.0 <= exact <= per_token <= 1.0  # a fully right row has every token right
    assert exact == np.mean([np.array_equal(p, e) for p, e in zip(predicted, expected, strict=True)])


def test_accuracy_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        sequence_accuracy(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="predicted"):
        token_accuracy(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="predicted"):
        sequence_accuracy(np.zeros((0, 3)), np.zeros((0, 3)))


def test_vocabulary_encode_decode():
    assert VOCAB_SIZE == 11 and VOCAB[SEP] == "|"
    assert encode("31|13").tolist() == [3, 1, SEP, 1, 3]
    assert decode(encode("0123456789|")) == "0123456789|"
    assert decode(np.zeros(0, np.int64)) == ""
    with pytest.raises(ValueError, match="vocabulary"):
        encode("12a")
    with pytest.raises(ValueError, match="tokens"):
        decode(np.array([11]))
    with pytest.raises(ValueError, match="tokens"):
        decode(np.zeros((2, 2), np.int64))
