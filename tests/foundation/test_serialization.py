"""save_weights / load_weights (tinytorch.serialization): .npz round trip and clear errors."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
import pytest

from tinytorch import GPT, Conv2d, Flatten, Linear, ReLU, Sequential, load_weights, save_weights


def make_model(seed: int, hidden: int = 4) -> Sequential:
    rng = np.random.default_rng(seed)
    return Sequential(
        Conv2d(1, 2, 3, padding=1, rng=rng), ReLU(), Flatten(), Linear(2 * 4 * 4, hidden, rng=rng)
    )


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def test_round_trip_restores_weights_and_outputs(tmp_path):
    src, dst = make_model(0), make_model(1)
    path = save_weights(src, tmp_path / "model.npz")
    assert path == tmp_path / "model.npz" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no leftover temporary file
    load_weights(dst, path)
    assert_same_weights(src, dst)
    x = np.random.default_rng(2).standard_normal((3, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(src(x).data, dst(x).data)
    with np.load(path, allow_pickle=False) as npz:  # a plain npz: readable without tinytorch
        assert sorted(npz.files) == sorted(n for n, _ in src.named_parameters())


def test_path_is_used_exactly_and_gpt_round_trips(tmp_path):
    src, dst = (
        GPT(5, 6, 4, 2, 1, rng=np.random.default_rng(0)),
        GPT(5, 6, 4, 2, 1, rng=np.random.default_rng(1)),
    )
    path = tmp_path / "weights"  # no suffix: np.savez would append .npz, we must not
    save_weights(src, str(path))
    assert path.is_file()
    load_weights(dst, str(path))
    assert_same_weights(src, dst)


def saved(tmp_path, model=None):
    return save_weights(model or make_model(0), tmp_path / "w.npz")


def check_error(model, path, *needles):
    before = model.state_dict()
    with pytest.raises(ValueError) as info:
        load_weights(model, path)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message, message
    after = model.state_dict()  # a failed load changes nothing
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_missing_file(tmp_path):
    check_error(make_model(0), tmp_path / "nope.npz", "no such")


def test_not_an_npz(tmp_path):
    path = tmp_path / "w.npz"
    path.write_text("these are not weights")
    check_error(make_model(0), path, "not an .npz")
    np.save(tmp_path / "w.npy", np.zeros(3))  # a .npy is not an archive of named arrays
    check_error(make_model(0), tmp_path / "w.npy", "not an .npz")


def test_truncated_file(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    check_error(make_model(1), path, "corrupt or truncated")


def test_tampered_file(tmp_path):
    path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    # flip bytes inside the first array's payload (after its zip and .npy headers): CRC mismatch
    start = data.index(b"\x93NUMPY") + 128 + 4
    data[start : start + 8] = bytes(b ^ 0xFF for b in data[start : start + 8])
    path.write_bytes(bytes(data))
    check_error(make_model(1), path, "corrupt or truncated")


def test_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "w.npz"
    state = make_model(0).state_dict()
    state["layers.0.weight"] = np.array([{"evil": 1}], dtype=object)
    np.savez(path, **state)
    check_error(make_model(1), path, "layers.0.weight", "pickle")


def test_missing_parameter(tmp_path):
    state = make_model(0).state_dict()
    del state["layers.3.bias"]
    path = tmp_path / "w.npz"
    np.savez(path, **state)
    check_error(make_model(1), path, "missing", "layers.3.bias")
    with pytest.raises(ValueError) as info:
        load_weights(make_model(1), path)
    assert "unexpected" not in str(info.value)  # only the real problem is named


def test_unexpected_parameter(tmp_path):
    state = make_model(0).state_dict()
    state["layers.9.weight"] = np.zeros(2)
    path = tmp_path / "w.npz"
    np.savez(path, **state)
    check_error(make_model(1), path, "unexpected", "layers.9.weight")


def test_shape_mismatch(tmp_path):
    path = saved(tmp_path, make_model(0, hidden=4))
    check_error(make_model(1, hidden=5), path, "shape mismatch", "layers.3.weight", "(32, 4)", "(32, 5)")


@pytest.mark.parametrize("shape", [(1,), (1, 4), ()], ids=["(1,)", "(1, 4)", "0-d"])
def test_shape_mismatch_that_numpy_would_broadcast(tmp_path, shape):
    # p.data[...] = value would silently broadcast these into the (4,) bias: the check must refuse
    state = make_model(0).state_dict()
    state["layers.3.bias"] = np.ones(shape, dtype=np.float32)
    path = tmp_path / "w.npz"
    np.savez(path, **state)
    check_error(make_model(1), path, "shape mismatch", "layers.3.bias", str(shape), "(4,)")


def test_non_numeric_array(tmp_path):
    state = make_model(0).state_dict()
    state["layers.3.bias"] = np.array(["a", "b", "c", "d"])
    path = tmp_path / "w.npz"
    np.savez(path, **state)
    check_error(make_model(1), path, "layers.3.bias", "non-numeric")


# --- the archive is checked from its headers before anything is decompressed ------------------

BIG = 4_000_000  # float32 zeros: 16 MB decompressed, a few KB compressed


def write_npz(path, entries: dict[str, bytes]) -> None:
    """A hand-made .npz: each entry's raw .npy bytes, deflated."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def peak_bytes_of_refused_load(path) -> int:
    tracemalloc.start()
    try:
        check_error(make_model(1), path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def small_state_with(name: str, array: np.ndarray) -> dict[str, bytes]:
    entries = {f"{n}.npy": npy_bytes(v) for n, v in make_model(0).state_dict().items()}
    entries[f"{name}.npy"] = npy_bytes(array)
    return entries


@pytest.mark.parametrize("name", ["layers.3.bias", "layers.9.extra"], ids=["wrong-shape", "unexpected"])
def test_an_oversized_entry_is_refused_before_it_is_decompressed(tmp_path, name):
    path = tmp_path / "w.npz"
    write_npz(path, small_state_with(name, np.zeros(BIG, np.float32)))
    assert path.stat().st_size < 100_000, "a small file..."
    # ...that decompresses to 16 MB: refused having allocated far less than that (the model's own
    # arrays and the zip machinery take well under 1 MB)
    assert peak_bytes_of_refused_load(path) < 2**20


def test_an_entry_padded_beyond_its_header_is_refused_before_it_is_decompressed(tmp_path):
    # the header says (4,) float32, the zip entry holds 16 MB more: a size no parameter needs
    entries = small_state_with("layers.3.bias", np.ones(4, np.float32))
    entries["layers.3.bias.npy"] += bytes(4 * BIG)
    path = tmp_path / "w.npz"
    write_npz(path, entries)
    assert peak_bytes_of_refused_load(path) < 2**20
    check_error(make_model(1), path, "layers.3.bias", "bytes")


def test_an_entry_that_is_not_an_npy_array_is_refused(tmp_path):
    entries = small_state_with("layers.3.bias", np.ones(4, np.float32))
    entries["README.txt"] = b"hello"
    path = tmp_path / "w.npz"
    write_npz(path, entries)
    check_error(make_model(1), path, "README.txt")


def test_save_weights_to_a_directory_is_refused_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        save_weights(make_model(0), tmp_path)
    assert list(tmp_path.iterdir()) == [], "no .tmp file left behind"


def test_a_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    def broken_savez(f, **arrays):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_weights(make_model(0), tmp_path / "w.npz")
    assert list(tmp_path.iterdir()) == []


def test_npy_format_version_2_loads_and_unknown_versions_are_refused(tmp_path):
    state = make_model(0).state_dict()
    entries = {}
    for name, value in state.items():
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, value, version=(2, 0))  # 4-byte header length
        entries[f"{name}.npy"] = buffer.getvalue()
    path = tmp_path / "v2.npz"
    write_npz(path, entries)
    model = make_model(1)
    load_weights(model, path)
    assert_same_weights(model, make_model(0))
    first = next(iter(entries))
    entries[first] = entries[first][:6] + bytes([9, 0]) + entries[first][8:]  # format version 9.0
    write_npz(path, entries)
    check_error(make_model(1), path, "version")
