"""Regression tests for issue 9: no crash, no silently wrong answer, no lost model.

One section per item of the issue (item 2, interpreter exit during a threaded
fit, belongs to the thread tests). Each test failed on fastmlp 0.1.
"""

import gzip
import json
import os
import stat
import struct
import threading
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import fastmlp
from fastmlp import _fit, kernels
from fastmlp.__main__ import main
from fastmlp._validation import check_labels
from fastmlp.data import load_csv, load_digits_split, load_idx, load_npz, scale_pixels

SMALL = dict(hidden=8, epochs=2, batch_size=7, lr=1e-2, reg=1e-2, seed=0)
NAMES = ("W1", "b1", "W2", "b2")


def _data(n=40, d=5, c=3, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.integers(0, c, size=n)
    y[:c] = np.arange(c)
    return X, y


@pytest.fixture(scope="module")
def model():
    X, y = _data()
    return fastmlp.fit(X, y, backend="numpy", **SMALL)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(seed=0)


@pytest.fixture
def no_training(monkeypatch):
    """Make any epoch fail loudly: for checks that must come before the first one."""
    def epoch(*args, **kwargs):
        raise AssertionError("an epoch ran before the arguments were checked")
    monkeypatch.setattr(_fit.Trainer, "epoch", epoch)


def _message(exc_info, *fragments):
    text = str(exc_info.value)
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    return text


# ======================================================= 1. labels private to fastmlp

def test_check_labels_always_copies():
    y = np.arange(5, dtype=np.int64)  # already C-contiguous int64: used to be returned as is
    labels, _ = check_labels(y, "y", 5)
    assert not np.shares_memory(labels, y)
    assert labels.flags.c_contiguous and labels.dtype == np.int64


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_fit_trains_on_its_own_copy_of_y(monkeypatch, backend):
    X, y = _data()
    y = np.ascontiguousarray(y, dtype=np.int64)
    seen = []
    original = _fit.Trainer.epoch

    def epoch(self, X_, y_, *args):
        seen.append(y_)
        return original(self, X_, y_, *args)
    monkeypatch.setattr(_fit.Trainer, "epoch", epoch)
    fastmlp.fit(X, y, backend=backend, **SMALL)
    assert seen and not any(np.shares_memory(s, y) for s in seen)


def test_kernel_labels_are_copied():
    y = np.array([0, 2, 1], dtype=np.int64)
    assert not np.shares_memory(kernels._labels(y, 3, 3), y)
    # the kernels check the copy they index with: wrapped uint64 values are refused
    with pytest.raises(ValueError, match="labels in"):
        kernels.count_correct(np.zeros((1, 3)), np.array([2**64 - 1], dtype=np.uint64))


def test_labels_changed_by_another_thread_cannot_reach_the_step():
    # A thread overwrites y with huge labels while fits run; the fits use their own
    # checked copy, so they either see the old labels or refuse the new ones.
    X, y = _data(n=400)
    y = np.ascontiguousarray(y, dtype=np.int64)
    stop = threading.Event()

    def vandal():
        while not stop.is_set():
            y.fill(10**8)
            y[:] = np.arange(len(y)) % 3
    thread = threading.Thread(target=vandal)
    thread.start()
    try:
        for _ in range(5):
            try:
                fastmlp.fit(X, y, n_classes=3, **{**SMALL, "epochs": 3})
            except ValueError as exc:
                assert "n_classes=3" in str(exc)
    finally:
        stop.set()
        thread.join()


# ======================================================= 3. classes round-trip exactly

def test_uint64_classes_round_trip(model, tmp_path):
    classes = np.array([1, 2**63 + 5, 2**64 - 1], dtype=np.uint64)
    m = fastmlp.MLPModel(*(getattr(model, n) for n in NAMES), classes=classes)
    m.save(tmp_path / "m.npz")
    back = fastmlp.load(tmp_path / "m.npz")
    assert back.classes.dtype == np.uint64 and back.classes.tolist() == classes.tolist()
    X, _ = _data()
    assert np.array_equal(back.predict(X), m.predict(X))


@pytest.mark.parametrize("classes, error", [
    (np.array(["a", "a\x00", "b"], dtype=object), ValueError),   # would merge into "a"
    (np.array([1, 2.5, 3], dtype=object), ValueError),           # ints and floats mixed
    (np.array([1, 2**70, 3], dtype=object), ValueError),         # beyond 64 bits
    (np.array([0.0, np.nan, 1.0]), ValueError),                  # NaN never equals itself
    (np.array([b"a", b"b", b"c"]), TypeError),
    (np.array([1j, 2j, 3j]), TypeError),
    (np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="datetime64[D]"), TypeError),
])
def test_classes_that_would_change_are_refused(model, tmp_path, classes, error):
    m = fastmlp.MLPModel(*(getattr(model, n) for n in NAMES), classes=classes)
    with pytest.raises(error, match="classes"):
        m.save(tmp_path / "m.npz")
    assert not os.listdir(tmp_path)


# ======================================================= 4. labels compared as values

def test_score_compares_values_and_refuses_other_kinds(model):
    X, y = _data()
    as_floats = fastmlp.MLPModel(*(getattr(model, n) for n in NAMES), classes=[0.0, 1.0, 2.0])
    assert as_floats.score(X, y) == model.score(X, y) > 0
    assert model.score(X, y.astype(float)) == model.score(X, y)
    as_strings = fastmlp.MLPModel(*(getattr(model, n) for n in NAMES), classes=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"\by\b holds numbers.*classes are strings"):
        as_strings.score(X, y)


@pytest.mark.parametrize("model_classes, data_labels", [
    ([0.0, 1.0, 2.0], "ints"), ([0, 1, 2], "floats")])
def test_cli_predict_accuracy_compares_values(model, tmp_path, capsys, model_classes, data_labels):
    X, y = _data()
    m = fastmlp.MLPModel(*(getattr(model, n) for n in NAMES), classes=model_classes)
    m.save(tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=X, y=y if data_labels == "ints" else y.astype(float))
    assert main(["predict", "--model", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz")]) == 0
    err = capsys.readouterr().err
    expected = float(np.mean(model.predict(X) == y))
    assert expected > 0 and f"accuracy {expected}" in err


def test_cli_predict_refuses_labels_of_another_kind(model, tmp_path, capsys):
    X, y = _data()
    m = fastmlp.MLPModel(*(getattr(model, n) for n in NAMES), classes=["a", "b", "c"])
    m.save(tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert main(["predict", "--model", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz")]) == 1
    err = capsys.readouterr().err
    assert "cannot be compared" in err and len(err.strip().splitlines()) == 1


# ======================================================= 5. kernels: sizes, overlap, scalars

def test_gemm_refuses_dimensions_beyond_c_int(tmp_path):
    # sparse memory maps: 8 GiB of address space, no memory or disk used
    rows = 2**31
    A = np.memmap(tmp_path / "A", dtype=np.float32, mode="w+", shape=(rows, 1))
    C = np.memmap(tmp_path / "C", dtype=np.float32, mode="w+", shape=(rows, 1))
    B = np.ones((1, 1), dtype=np.float32)
    with pytest.raises(ValueError, match=r"2\*\*31"):
        kernels.gemm(1.0, np.asarray(A), B, 0.0, np.asarray(C))


def test_kernels_refuse_overlapping_output():
    A = np.arange(9.0).reshape(3, 3)
    with pytest.raises(ValueError, match="overlap"):
        kernels.gemm(1.0, A, A, 0.0, A)
    with pytest.raises(ValueError, match="overlap"):
        kernels.gemm(1.0, A.copy(), A, 0.0, A, trans_b=True)
    Z = np.arange(6.0).reshape(2, 3)
    with pytest.raises(ValueError, match="overlap"):
        kernels.bias_relu(Z, Z[0])
    with pytest.raises(ValueError, match="overlap"):
        kernels.column_sums(Z, Z[1])
    W = np.ones(6)
    with pytest.raises(ValueError, match="overlap"):
        kernels.l2_sgd_update(W[:3], W[1:4], 0.1, 0.0)
    # the same array as mask and gradient is fine entry by entry and still allowed
    dR = np.array([[1.0, -2.0, 3.0]])
    np.testing.assert_array_equal(kernels.relu_backward(dR, dR), [[1.0, 0.0, 3.0]])


def test_kernel_scalars_are_checked():
    W, G = np.ones(3), np.ones(3)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match=r"\blr\b"):
            kernels.l2_sgd_update(W, G, bad, 0.0)
    with pytest.raises(TypeError, match=r"\breg\b"):
        kernels.l2_sgd_update(W, G, 0.1, "0.1")
    A = np.ones((2, 2))
    with pytest.raises(TypeError, match="trans_a"):
        kernels.gemm(1.0, A, A.copy(), 0.0, np.zeros((2, 2)), trans_a="no")
    A32 = np.ones((2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="alpha.*float32"):
        kernels.gemm(1e300, A32, A32.copy(), 0.0, np.zeros((2, 2), dtype=np.float32))
    assert np.all(W == 1) and np.all(G == 1)


# ======================================================= 6. no finished run lost

@pytest.mark.parametrize("plot, error, fragment", [
    ("no_such_dir/p.png", ValueError, "does not exist"),
    (".", ValueError, "folder"),
    (3, TypeError, "file path"),
])
def test_bad_plot_path_refused_before_training(no_training, tmp_path, monkeypatch, plot, error, fragment):
    monkeypatch.chdir(tmp_path)
    X, y = _data()
    with pytest.raises(error, match=fragment) as info:
        fastmlp.fit(X, y, plot=plot, **SMALL)
    assert "plot" in str(info.value)


def test_failing_plot_warns_and_returns_the_model(monkeypatch, tmp_path):
    import fastmlp._plot

    def broken(history, path, title=None):
        raise OSError("disk full")
    monkeypatch.setattr(fastmlp._plot, "plot_history", broken)
    X, y = _data()
    with pytest.warns(RuntimeWarning, match="disk full"):
        model = fastmlp.fit(X, y, plot=tmp_path / "p.png", **SMALL)
    assert len(model.history["loss"]) == SMALL["epochs"]


def test_cli_checks_outputs_before_training(no_training, tmp_path, capsys):
    X, y = _data()
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "run"
    (out / "epoch_plots.png").mkdir(parents=True)
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--out", str(out), "--quiet"]) == 1
    assert "epoch_plots.png" in capsys.readouterr().err


@pytest.mark.parametrize("labels", [np.array([b"a", b"b", b"c"] * 4), np.arange(12) * 1j,
                                    np.arange(12).astype("datetime64[D]")], ids=["bytes", "complex", "dates"])
def test_cli_refuses_unsavable_labels_before_training(no_training, tmp_path, capsys, labels):
    np.savez(tmp_path / "d.npz", X=np.random.default_rng(0).standard_normal((12, 3)), y=labels)
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path), "--quiet"]) == 1
    assert "labels cannot be stored" in capsys.readouterr().err


def test_cli_writes_the_model_even_when_the_plot_fails(monkeypatch, tmp_path, capsys):
    import fastmlp.__main__ as cli

    def broken(history, path, title=None):
        raise RuntimeError("no backend")
    monkeypatch.setattr(cli, "plot_history", broken)
    X, y = _data()
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path), "--epochs", "2",
                 "--hidden", "8", "--quiet"]) == 1
    assert "model and history were written" in capsys.readouterr().err
    assert fastmlp.load(tmp_path / "model.npz").n_features == X.shape[1]
    assert (tmp_path / "history.csv").exists()


# ======================================================= 7. numpy scalars save

def test_numpy_scalar_arguments_save(tmp_path):
    X, y = _data()
    for seed in np.arange(2):
        model = fastmlp.fit(X, y, hidden=np.int64(8), epochs=np.int32(1), lr=np.float32(0.01),
                            reg=np.float64(0.01), seed=seed)
        model.params["note"] = np.float32(0.5)
        model.save(tmp_path / f"m{seed}.npz")
        back = fastmlp.load(tmp_path / f"m{seed}.npz")
        assert back.params["seed"] == seed and back.params["note"] == 0.5 and back.params["hidden"] == 8


# ======================================================= 8. divergence that stays finite

def test_exploding_loss_raises(digits):
    X, y, _, _ = digits
    with pytest.raises(FloatingPointError, match=r"epoch 1: the loss exploded.*smaller learning rate"):
        fastmlp.fit(X, y, epochs=5, lr=1.0)


def test_dead_hidden_layer_raises(digits):
    X, y, _, _ = digits
    with pytest.raises(FloatingPointError, match=r"hidden layer died.*smaller learning rate than lr=0.1"):
        fastmlp.fit(X, y, epochs=10, lr=0.1, backend="numpy")


def test_hidden_layer_dead_scans_every_row():
    from fastmlp._divergence import hidden_layer_dead
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    W1 = rng.standard_normal((4, 6))
    b1 = np.full(6, -100.0)  # dead for every row ...
    assert hidden_layer_dead(X, W1, b1)
    X[-1] = 1000 * np.sign(W1[:, 2])  # ... but the very last one
    assert not hidden_layer_dead(X, W1, b1)
    assert (X @ W1 + b1 > 0).sum() >= 1


def test_divergence_check_watches_a_layer_alive_beyond_its_sample():
    # The check's sample (its first rows) settles "alive" when a unit is positive there;
    # otherwise every row is scanned, so a layer alive only in the last row is watched,
    # and one dead on every row is not (dead from the start is no divergence).
    from fastmlp._divergence import _SAMPLE_ROWS, DivergenceCheck
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = rng.integers(0, 3, size=300)
    W1, W2, b2 = rng.standard_normal((4, 6)), rng.standard_normal((6, 3)), np.zeros(3)
    dead_b1 = np.full(6, -100.0)
    assert not DivergenceCheck(X, y, (W1, dead_b1, W2, b2), lr=0.1).watch_dead_layer
    X[-1] = 1000 * np.sign(W1[:, 2])   # alive in the last row only, far past the sample
    assert len(X) > 4 * _SAMPLE_ROWS
    assert DivergenceCheck(X, y, (W1, dead_b1, W2, b2), lr=0.1).watch_dead_layer
    assert DivergenceCheck(X, y, (W1, np.zeros(6), W2, b2), lr=0.1).watch_dead_layer


def test_dead_at_the_start_is_no_divergence():
    X = np.zeros((20, 4))  # every pre-activation is 0: the layer is dead from the start
    y = np.arange(20) % 2
    model = fastmlp.fit(X, y, hidden=8, epochs=3, lr=1e-2)
    assert len(model.history["loss"]) == 3


def test_cli_demo_diverging_fails(tmp_path, capsys):
    assert main(["demo", "--lr", "1", "--epochs", "3", "--out", str(tmp_path), "--quiet"]) == 1
    assert "diverged" in capsys.readouterr().err


# ======================================================= 9, 10. damaged and oversized model files

def _zip_with(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _npy_header(shape, dtype="<f8"):
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _model_members(model, tmp_path):
    model.save(tmp_path / "good.npz")
    with zipfile.ZipFile(tmp_path / "good.npz") as z:
        return {name: z.read(name) for name in z.namelist()}


def test_npy_file_as_model(model, tmp_path, capsys):
    for name in ("w.npy", "w.npz"):
        with open(tmp_path / name, "wb") as f:
            np.save(f, model.W1)
        with pytest.raises(ValueError, match=rf"{name}.*\.npy file"):
            fastmlp.load(tmp_path / name)
    np.savez(tmp_path / "d.npz", X=np.zeros((2, 5)), y=np.zeros(2))
    assert main(["predict", "--model", str(tmp_path / "w.npz"), "--data", str(tmp_path / "d.npz")]) == 1
    err = capsys.readouterr().err
    assert "w.npz" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_member_without_npy_header(model, tmp_path):
    members = _model_members(model, tmp_path)
    members["W1.npy"] = b"not an npy header at all"
    with pytest.raises(ValueError, match=r"bad\.npz.*'W1'"):
        fastmlp.load(_zip_with(tmp_path / "bad.npz", members))


def test_deeply_nested_metadata(model, tmp_path):
    members = _model_members(model, tmp_path)
    text = "[" * 100_000
    buf = _npy_header((), f"<U{len(text)}") + np.array(text).tobytes()
    members["metadata.npy"] = buf
    with pytest.raises(ValueError, match=r"bad\.npz.*metadata.*JSON"):
        fastmlp.load(_zip_with(tmp_path / "bad.npz", members))


@pytest.mark.parametrize("flag_offset, value", [(6, 0x01), (8, 0x63)], ids=["encrypted", "method"])
def test_flipped_zip_header_bits(model, tmp_path, flag_offset, value):
    model.save(tmp_path / "good.npz")
    blob = bytearray((tmp_path / "good.npz").read_bytes())
    # set the bit in every local and central header: "encrypted" or an unknown method
    for sig, base in ((b"PK\x03\x04", 0), (b"PK\x01\x02", 2)):
        start = 0
        while (at := blob.find(sig, start)) >= 0:
            blob[at + base + flag_offset] |= value
            start = at + 4
    (tmp_path / "bad.npz").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=r"bad\.npz"):
        fastmlp.load(tmp_path / "bad.npz")


def _peak_bytes(call):
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_small_model_file_declaring_a_huge_member(model, tmp_path):
    members = _model_members(model, tmp_path)
    meta = json.loads(str(np.load(tmp_path / "good.npz")["metadata"]))
    meta.update(n_features=100_000, hidden=100_000)  # W1 of 74.5 GiB
    members["metadata.npy"] = _npy_header((), f"<U{len(json.dumps(meta))}") + np.array(json.dumps(meta)).tobytes()
    members["W1.npy"] = _npy_header((100_000, 100_000)) + b"\0" * 64
    path = _zip_with(tmp_path / "bad.npz", members, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 10_000
    peak = _peak_bytes(lambda: _expect_value_error(fastmlp.load, path, r"bad\.npz"))
    assert peak < 10 * 2**20


def test_extra_member_is_refused_unread(model, tmp_path):
    members = _model_members(model, tmp_path)
    members["junk.npy"] = b"\0" * (64 * 2**20)  # deflates to ~64 KB
    path = _zip_with(tmp_path / "bad.npz", members, zipfile.ZIP_DEFLATED)
    peak = _peak_bytes(lambda: _expect_value_error(fastmlp.load, path, "junk"))
    assert peak < 10 * 2**20


def _expect_value_error(func, path, fragment):
    with pytest.raises(ValueError, match=fragment):
        func(path)


def test_load_npz_declaring_a_huge_X(tmp_path):
    members = {"X.npy": _npy_header((10**7, 10**4)) + b"\0" * 64, "y.npy": _npy_header((10**7,))}
    path = _zip_with(tmp_path / "bad.npz", members, zipfile.ZIP_DEFLATED)
    peak = _peak_bytes(lambda: _expect_value_error(load_npz, path, "bad.npz"))
    assert peak < 10 * 2**20


def test_gzip_idx_keeps_only_the_announced_bytes(tmp_path):
    # one 2 x 2 image announced, then 64 MiB of trailing zeros (64 KiB compressed)
    path = tmp_path / "img.gz"
    path.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 1, 2, 2) + b"\0" * (4 + 64 * 2**20)))
    peak = _peak_bytes(lambda: _expect_value_error(load_idx, path, "trailing"))
    assert peak < 10 * 2**20


# ======================================================= 11. dtype

@pytest.mark.parametrize("dtype", ["garbage", 5, "", "f9", "int64", object, [1]])
def test_bad_dtype(dtype):
    X, y = _data()
    with pytest.raises(ValueError, match=r"dtype must be float32 or float64"):
        fastmlp.fit(X, y, dtype=dtype, **SMALL)


# ======================================================= 12. absurd class counts

@pytest.mark.parametrize("stray", [10**9, 10**7, 5000])
def test_stray_label_refused(no_training, stray):
    X, y = _data()
    y = y.copy()
    y[7] = stray
    with pytest.raises(ValueError, match=r"\by\b holds 4 distinct labels.*n_classes=.*MLPClassifier"):
        fastmlp.fit(X, y, **SMALL)


def test_many_real_classes_still_accepted():
    X = np.random.default_rng(0).standard_normal((2100, 3))
    y = np.arange(2100)  # 2100 classes, every one present
    assert fastmlp.fit(X, y, hidden=4, epochs=1, lr=1e-3).n_classes == 2100


# ======================================================= 13. empty IDX files

@pytest.mark.parametrize("dims", [(0, 28, 28), (3, 0, 0), (2, 5, 0)])
def test_idx_without_pixels(tmp_path, dims):
    path = tmp_path / "img.idx"
    path.write_bytes(struct.pack(">IIII", 0x803, *dims) + b"\0" * int(np.prod(dims)))
    with pytest.raises(ValueError, match=r"img\.idx.*at least one image"):
        load_idx(path)


# ======================================================= 14. booleans, not truthiness

@pytest.mark.parametrize("name", ["shuffle", "progress"])
@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, [], np.array([True])])
def test_fit_flags_must_be_bools(no_training, name, value):
    X, y = _data()
    with pytest.raises(TypeError, match=rf"\b{name}\b must be True or False"):
        fastmlp.fit(X, y, **{**SMALL, name: value})


def test_estimator_flags_and_classes():
    X, y = _data()
    with pytest.raises(TypeError, match="warm_start"):
        fastmlp.MLPClassifier(epochs=1, warm_start="no").fit(X, y)
    with pytest.raises(TypeError, match="shuffle"):
        fastmlp.MLPClassifier(epochs=1, shuffle="no").fit(X, y)
    with pytest.raises(ValueError, match=r"classes must be a 1-D"):
        fastmlp.MLPClassifier().partial_fit(X, y, classes=[[0, 1, 2]])


# ======================================================= 15. messages that say the right thing

@pytest.mark.parametrize("y_bad, fragment", [
    (np.array([1e20]), r"label 1e\+20, too large"),
    (np.array([2**64 - 1], dtype=np.uint64), "label 18446744073709551615, too large"),
])
def test_huge_labels_not_called_negative(no_training, y_bad, fragment):
    X, y = _data()
    y = y.astype(y_bad.dtype)
    y[5] = y_bad[0]
    with pytest.raises(ValueError, match=fragment) as info:
        fastmlp.fit(X, y, **SMALL)
    assert "negative" not in str(info.value)


def test_float32_init_overflow_message(no_training):
    X, y = _data()
    init = [np.zeros((5, 8)), np.zeros(8), np.zeros((8, 3)), np.zeros(3)]
    init[0][0, 0] = 1e300
    with pytest.raises(ValueError, match=r"init W1 holds values too large for float32"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fastmlp.fit(X.astype(np.float32), y, init=tuple(init), **SMALL)


def test_warm_start_after_changing_hidden():
    X, y = _data()
    clf = fastmlp.MLPClassifier(hidden=8, epochs=1, warm_start=True, random_state=0).fit(X, y)
    clf.set_params(hidden=16)
    with pytest.raises(ValueError, match=r"hidden=16.*8 hidden units") as info:
        clf.fit(X, y)
    assert "init" not in str(info.value)
    with pytest.raises(ValueError, match=r"hidden=16.*8 hidden units"):
        clf.partial_fit(X, y)


def test_unterminated_csv_quote(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('1,2\n"3,4\n5,6\n')
    with pytest.raises(ValueError, match=r"q\.csv.*quote") as info:
        load_csv(path)
    assert "no data rows" not in str(info.value)


def test_predict_one_sample_hint(model):
    X, _ = _data()
    with pytest.raises(ValueError, match=r"reshape\(1, -1\) for a single sample"):
        model.predict(X[0])


def test_nan_in_predict_does_not_say_fitting(model):
    X, _ = _data()
    X = X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN") as info:
        model.predict(X)
    assert "fitting" not in str(info.value)


def test_unscaled_input_named_when_training_diverges():
    X, y = _data()
    with pytest.raises(FloatingPointError, match=r"X holds values up to [\d.]+e\+200: scale the features"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fastmlp.fit(X * 1e200, y, **SMALL)


def test_load_of_a_csv_says_not_a_model(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match=r"data\.csv.*not a readable fastmlp model") as info:
        fastmlp.load(path)
    assert "allow_pickle" not in str(info.value)


def test_save_into_missing_folder_names_the_path(model, tmp_path):
    target = tmp_path / "missing" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        model.save(target)
    assert str(target) in str(info.value) and ".fastmlp-" not in str(info.value)


def test_cli_bench_repeat_zero(capsys):
    assert main(["bench", "--repeat", "0"]) == 1
    assert "--repeat must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("split", ["-0.5", "nan", "1", "1.5"])
def test_cli_bad_test_split(no_training, tmp_path, capsys, split):
    X, y = _data()
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--test-split", split, "--out",
                 str(tmp_path), "--quiet"]) == 1
    assert "--test-split must be a fraction" in capsys.readouterr().err


@pytest.mark.parametrize("fraction", [1.5, 0.0, 1.0, -0.1, np.nan])
def test_digits_split_fraction(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(test_fraction=fraction)


@pytest.mark.parametrize("max_value, error", [(0, ValueError), (-1, ValueError), (np.nan, ValueError),
                                              ("255", TypeError)])
def test_scale_pixels_max_value(max_value, error):
    with pytest.raises(error, match="max_value"):
        scale_pixels(np.arange(3), max_value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("reader", [fastmlp.load, load_npz, load_idx, load_csv])
def test_fifo_is_refused_not_waited_on(tmp_path, reader):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"pipe.*FIFO"):
        reader(fifo)


# ======================================================= 16. hand-built models validated

@pytest.mark.parametrize("change, error, fragment", [
    (lambda w: (w[0], w[1].astype(np.float32), w[2], w[3]), TypeError, "b1 has dtype float32"),
    (lambda w: tuple(a.astype(np.int64) for a in w), TypeError, "W1 must be a float32 or float64"),
    (lambda w: (w[0], w[1][:-1], w[2], w[3]), ValueError, "b1 has shape"),
    (lambda w: (w[0], w[1], w[2], np.append(w[3], 0.0)), ValueError, "b2 has shape"),
    (lambda w: (w[0], w[1], np.full_like(w[2], np.nan), w[3]), ValueError, "W2 contains NaN"),
])
def test_hand_built_model_checked(model, change, error, fragment):
    weights = change(tuple(getattr(model, n) for n in NAMES))
    with pytest.raises(error, match=fragment):
        fastmlp.MLPModel(*weights)


def test_model_changed_after_construction_checked_at_save(model, tmp_path):
    m = fastmlp.MLPModel(*(getattr(model, n).copy() for n in NAMES))
    m.W2 = m.W2.astype(np.float32)
    with pytest.raises(TypeError, match="W2"):
        m.save(tmp_path / "m.npz")
    assert not os.listdir(tmp_path)


# ======================================================= 17. saving: mode, links, fsync

def test_resave_keeps_the_file_mode(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)
    os.chmod(path, 0o600)
    model.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_through_a_symlink(model, tmp_path):
    target = tmp_path / "real.npz"
    link = tmp_path / "link.npz"
    target.write_bytes(b"old")
    link.symlink_to(target)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert np.array_equal(fastmlp.load(target).W1, model.W1)


def test_save_syncs_before_the_rename(model, tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    model.save(tmp_path / "m.npz")
    assert events[:2] == ["fsync", "replace"]
    assert "fsync" in events[2:]  # the folder too, where the platform allows it
