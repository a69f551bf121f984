"""fastmlp.fit end to end: digits accuracy, the model API, save/load, plot, argument checks."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastmlp
from _helpers import NAMES, assert_same_model

EPOCHS = 200
SEED_HYPER = dict(epochs=EPOCHS, batch_size=30, lr=1e-4, reg=1e-2, hidden=128)


@pytest.fixture(scope="module")
def digits():
    from fastmlp.data import load_digits_split
    return load_digits_split(seed=0)


@pytest.fixture(scope="module")
def digits_model(digits):
    """The seed's settings on digits, as ``fastmlp demo`` runs them: the one 200-epoch fit."""
    X, y, X_test, y_test = digits
    return fastmlp.fit(X, y, X_test=X_test, y_test=y_test, seed=0, **SEED_HYPER)


@pytest.fixture(scope="module")
def small_data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 5))
    y = rng.integers(0, 3, size=40)
    return X, y


# ------------------------------------------------------------------------ digits accuracy

def test_digits_accuracy(digits, digits_model):
    _, _, X_test, y_test = digits
    assert digits_model.score(X_test, y_test) > 0.95
    assert digits_model.history["test_acc"][-1] > 0.95
    assert digits_model.history["test_acc"][-1] == digits_model.score(X_test, y_test)


def test_history_one_entry_per_epoch(digits_model):
    h = digits_model.history
    assert set(h) == {"loss", "train_acc", "test_acc", "test_epoch", "val_acc", "lr"}
    assert h["test_epoch"] == list(range(1, EPOCHS + 1))
    assert h["val_acc"] == [] and h["lr"] == [SEED_HYPER["lr"]] * EPOCHS
    for key in ("loss", "train_acc", "test_acc"):
        assert len(h[key]) == EPOCHS, key
        assert all(np.isfinite(h[key]))
    assert all(0.0 <= a <= 1.0 for a in h["train_acc"] + h["test_acc"])
    # training actually trains: the loss falls and the training accuracy rises
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["train_acc"][-1] > h["train_acc"][0]


def test_predict_proba_and_predict(digits, digits_model):
    _, _, X_test, _ = digits
    P = digits_model.predict_proba(X_test)
    assert P.shape == (len(X_test), 10)
    assert np.all(P >= 0)
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    pred = digits_model.predict(X_test)
    assert np.array_equal(np.argmax(P, axis=1), pred)
    # predictions follow from the weights as the documented network
    m = digits_model
    logits = np.maximum(X_test @ m.W1 + m.b1, 0) @ m.W2 + m.b2
    assert np.array_equal(pred, np.argmax(logits, axis=1))


# ----------------------------------------------------------------------------- save/load

def test_save_load_roundtrip(digits_model, tmp_path, digits):
    path = tmp_path / "model.npz"
    digits_model.save(path)
    loaded = fastmlp.load(path)
    assert_same_model(digits_model, loaded)
    assert loaded.dtype == np.float64
    assert loaded.params == digits_model.params
    _, _, X_test, _ = digits
    assert np.array_equal(loaded.predict(X_test), digits_model.predict(X_test))
    loaded2 = fastmlp.load(str(path))  # str paths too
    assert_same_model(digits_model, loaded2)


def test_save_load_roundtrip_float32(small_data, tmp_path):
    X, y = small_data
    X_test = X[:10].astype(np.float32)
    model = fastmlp.fit(X.astype(np.float32), y, hidden=7, epochs=3, batch_size=8, lr=0.01,
                        X_test=X_test, y_test=y[:10])
    assert model.W1.dtype == np.float32
    path = tmp_path / "m32.npz"
    model.save(path)
    loaded = fastmlp.load(path)
    assert loaded.W1.dtype == np.float32 and loaded.dtype == np.float32
    assert_same_model(model, loaded)


def test_save_overwrites_existing_file(small_data, tmp_path):
    X, y = small_data
    path = tmp_path / "m.npz"
    path.write_bytes(b"old contents")
    model = fastmlp.fit(X, y, hidden=3, epochs=1, batch_size=8)
    model.save(path)
    assert_same_model(model, fastmlp.load(path))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left behind


def test_load_refuses_object_array(tmp_path, small_data):
    X, y = small_data
    model = fastmlp.fit(X, y, hidden=3, epochs=1, batch_size=8)
    path = tmp_path / "evil.npz"
    np.savez(path, metadata=np.array([{"format": "fastmlp-model"}, "x"], dtype=object),
             W1=model.W1, b1=model.b1, W2=model.W2, b2=model.b2)
    with pytest.raises(ValueError):
        fastmlp.load(path)
    only_object = tmp_path / "obj.npz"
    np.savez(only_object, a=np.array([1, "two", None], dtype=object))
    with pytest.raises(ValueError):
        fastmlp.load(only_object)


def test_load_refuses_truncated_file(digits_model, tmp_path):
    path = tmp_path / "model.npz"
    digits_model.save(path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        broken = tmp_path / f"cut{cut}.npz"
        broken.write_bytes(data[:cut])
        with pytest.raises(ValueError):
            fastmlp.load(broken)


def test_load_refuses_other_files(tmp_path):
    cases = {"empty.npz": b"", "garbage.npz": b"this is not a model file at all" * 10}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError):
            fastmlp.load(tmp_path / name)
    plain = tmp_path / "plain.npz"
    np.savez(plain, W1=np.zeros((2, 2)))  # a valid npz, but not a model
    with pytest.raises(ValueError, match="fastmlp"):
        fastmlp.load(plain)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastmlp.load(tmp_path / "does-not-exist.npz")


# ---------------------------------------------------------------------------------- plot

def test_plot_writes_png_and_keeps_backend(small_data, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt  # noqa: F401  (pyplot loaded, as in a user's session)

    X, y = small_data
    before = matplotlib.get_backend()
    path = tmp_path / "history.png"
    fastmlp.fit(X, y, hidden=4, epochs=3, batch_size=8, X_test=X[:5], y_test=y[:5], plot=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == before


def test_plot_title_integer_epochs_and_plain_log_ticks():
    from fastmlp._plot import history_figure

    history = {"loss": list(np.geomspace(2.3, 0.04, 7)), "train_acc": list(np.linspace(0.2, 0.99, 7)),
               "test_acc": list(np.linspace(0.2, 0.95, 7))}
    fig = history_figure(history, title="40 samples × 5 features\nhidden=4, lr=0.1")
    fig.canvas.draw()
    assert fig._suptitle.get_text() == "40 samples × 5 features\nhidden=4, lr=0.1"
    ax_loss, ax_acc = fig.axes
    for ax in (ax_loss, ax_acc):
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 7]
        assert ticks and all(float(t).is_integer() for t in ticks)
    labels = [t.get_text() for t in ax_loss.get_yticklabels() if t.get_text()]
    assert {"0.05", "0.1", "0.2", "0.5", "1", "2"} <= set(labels)
    assert not any("10^" in label or "$" in label for label in labels)


def test_fit_titles_the_plot_with_data_and_hyperparameters(small_data, tmp_path, monkeypatch):
    from fastmlp import _plot

    titles = []
    monkeypatch.setattr(_plot, "plot_history", lambda history, path, title=None: titles.append(title))
    X, y = small_data
    fastmlp.fit(X, y, hidden=4, epochs=2, batch_size=8, lr=0.01, reg=0.001, X_test=X[:5], y_test=y[:5],
                plot=tmp_path / "p.png")
    assert titles == ["40 samples × 5 features, 3 classes, 5 test samples\n"
                      "hidden=4, epochs=2, batch_size=8, lr=0.01, reg=0.001, float64, cython"]


# ----------------------------------------------------------------------- dtype and epochs=0

def test_dtype_follows_x(small_data):
    X, y = small_data
    m32 = fastmlp.fit(X.astype(np.float32), y, hidden=4, epochs=1, batch_size=8)
    assert m32.W1.dtype == np.float32
    assert all(getattr(m32, n).dtype == np.float32 for n in NAMES)
    m64 = fastmlp.fit(X, y, hidden=4, epochs=1, batch_size=8)
    assert all(getattr(m64, n).dtype == np.float64 for n in NAMES)
    m = fastmlp.fit(X, y, hidden=4, epochs=1, batch_size=8, dtype=np.float32)
    assert m.W1.dtype == np.float32
    # integer X trains in float64
    mi = fastmlp.fit(np.round(X * 3).astype(np.int64), y, hidden=4, epochs=1, batch_size=8)
    assert mi.W1.dtype == np.float64


def test_epochs_zero_returns_initial_weights(small_data):
    X, y = small_data
    D, H, C, seed = X.shape[1], 6, 3, 9
    m = fastmlp.fit(X, y, hidden=H, epochs=0, seed=seed)
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((D, H)) * np.sqrt(2.0 / D)
    W2 = rng.standard_normal((H, C)) * np.sqrt(2.0 / H)
    assert_allclose(m.W1, W1, rtol=1e-15)
    assert_allclose(m.W2, W2, rtol=1e-15)
    assert np.array_equal(m.b1, np.zeros(H)) and np.array_equal(m.b2, np.zeros(C))
    assert m.history == {"loss": [], "train_acc": [], "test_acc": [], "test_epoch": [], "val_acc": [], "lr": []}

    init = (np.ones((D, H)), np.full(H, 0.5), -np.ones((H, C)), np.arange(C, dtype=float))
    m = fastmlp.fit(X, y, hidden=H, epochs=0, init=init)
    for name, p in zip(NAMES, init):
        assert np.array_equal(getattr(m, name), p)
        assert getattr(m, name) is not p


# ------------------------------------------------------------------------------ divergence

@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_divergence_raises(small_data, backend):
    X, y = small_data
    with np.errstate(all="ignore"):
        with pytest.raises(FloatingPointError, match="epoch"):
            fastmlp.fit(X * 100, y, hidden=16, epochs=20, batch_size=8, lr=10.0, backend=backend)


# ------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(hidden=0), ValueError, "hidden"),
    (dict(lr=-1), ValueError, "lr"),
    (dict(lr=0), ValueError, "lr"),
    (dict(reg=-0.1), ValueError, "reg"),
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(backend="torch"), ValueError, "backend"),
    (dict(dtype=np.int32), (ValueError, TypeError), "dtype"),
    (dict(hidden=2.5), TypeError, "hidden"),
    (dict(batch_size=True), TypeError, "batch_size"),
    (dict(X_test=np.zeros((2, 5))), ValueError, "X_test"),
    (dict(X_test=np.zeros((2, 4)), y_test=np.zeros(2, dtype=int)), ValueError, "X_test"),
    (dict(n_classes=2), ValueError, "n_classes"),
])
def test_bad_arguments(small_data, kwargs, exc, word):
    X, y = small_data
    with pytest.raises(exc, match=word):
        fastmlp.fit(X, y, **{"epochs": 1, **kwargs})


def test_bad_data(small_data):
    X, y = small_data
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="X"):
        fastmlp.fit(Xn, y, epochs=1)
    with pytest.raises(ValueError, match="y"):
        fastmlp.fit(X, y[:-1], epochs=1)
    with pytest.raises(ValueError, match="y"):
        fastmlp.fit(X, np.where(y == 0, -1, y), epochs=1)
    with pytest.raises(ValueError, match="X"):
        fastmlp.fit(X[:, 0], y, epochs=1)
    with pytest.raises(TypeError, match="X"):
        fastmlp.fit(X.astype(str), y, epochs=1)
    with pytest.raises(ValueError, match="init"):
        fastmlp.fit(X, y, hidden=4, epochs=1, init=(np.ones((5, 3)), np.ones(4), np.ones((4, 3)), np.ones(3)))


def test_batch_size_larger_than_n_is_clamped(small_data):
    X, y = small_data
    m = fastmlp.fit(X, y, hidden=4, epochs=2, batch_size=1000)
    assert m.params["batch_size"] == len(X)
    ref = fastmlp.fit(X, y, hidden=4, epochs=2, batch_size=len(X))
    assert np.array_equal(m.W1, ref.W1) and m.history == ref.history


def test_eval_every_scores_fewer_epochs_without_changing_training():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((90, 6))
    y = rng.integers(0, 3, 90)
    kw = dict(hidden=16, epochs=7, batch_size=10, lr=1e-2, X_test=X[:40], y_test=y[:40])
    every = fastmlp.fit(X, y, **kw)
    sparse = fastmlp.fit(X, y, eval_every=3, **kw)
    assert every.history["test_epoch"] == list(range(1, 8))
    assert sparse.history["test_epoch"] == [3, 6, 7]   # and always the last epoch
    assert sparse.history["test_acc"] == [every.history["test_acc"][e - 1] for e in (3, 6, 7)]
    assert sparse.history["loss"] == every.history["loss"]
    np.testing.assert_array_equal(sparse.W1, every.W1)


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (1.5, TypeError)])
def test_eval_every_checked(bad, exc):
    X = np.ones((10, 2))
    with pytest.raises(exc, match="eval_every"):
        fastmlp.fit(X, np.arange(10) % 2, hidden=4, epochs=1, eval_every=bad)


def test_eval_every_history_round_trips_and_plots(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 4))
    y = rng.integers(0, 2, 60)
    model = fastmlp.fit(X, y, hidden=8, epochs=5, lr=1e-2, X_test=X, y_test=y, eval_every=2,
                        plot=tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
    model.save(tmp_path / "m.npz")
    assert fastmlp.load(tmp_path / "m.npz").history == model.history


# ------------------------------------------------------------------- labels that are not codes

@pytest.mark.parametrize("labels, n_classes, unused", [
    (lambda y: (y % 2) * 1000, 1001, "999 of them have no sample (1, 2, 3, 4, 5, ...)"),
    (lambda y: y + 1, 4, "1 of them have no sample (0)"),
])
def test_labels_that_leave_classes_empty_warn(small_data, labels, n_classes, unused):
    X, y = small_data
    with pytest.warns(UserWarning, match="no sample") as record:
        model = fastmlp.fit(X, labels(y), hidden=4, epochs=1)
    message = str(record[0].message)
    assert f"imply {n_classes} classes" in message and unused in message
    assert "fastmlp.MLPClassifier" in message and f"n_classes={n_classes}" in message
    assert record[0].filename == __file__  # points at the caller's line
    assert model.n_classes == n_classes


def test_complete_labels_or_explicit_n_classes_do_not_warn(small_data):
    import warnings

    X, y = small_data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastmlp.fit(X, y, hidden=4, epochs=1)
        fastmlp.fit(X, y + 1, n_classes=4, hidden=4, epochs=1)
