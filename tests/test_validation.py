"""Robustness of fastmlp's public API against user mistakes.

The standard (from the project's issue): a user's mistake must never turn into a
crash, a silent NaN model, or damaged data. Bad input gets a ValueError (or a
TypeError for a wrong type) whose message names the argument and says the fix;
nothing the caller passed in is modified, whether the call succeeds or fails;
every array layout is accepted and gives exactly the same model.
"""

import json
import os
import pickle
import threading

import numpy as np
import pytest

import fastmlp
from _helpers import NAMES, assert_same_model, labelled_data

BACKENDS = ["cython", "numpy"]
SMALL = dict(hidden=8, epochs=2, batch_size=7, lr=1e-2, reg=1e-2, seed=0)

backends = pytest.mark.parametrize("backend", BACKENDS)


# ----------------------------------------------------------------------------- helpers

def _snapshot(obj):
    """A deep copy of arrays (and tuples/lists of arrays) to compare with afterwards."""
    if isinstance(obj, np.ndarray):
        return obj.copy(), obj.flags.writeable
    if isinstance(obj, (tuple, list)):
        return type(obj)(_snapshot(o) for o in obj)
    return obj


def _assert_unchanged(obj, snap):
    if isinstance(obj, np.ndarray):
        copy, writeable = snap
        assert obj.dtype == copy.dtype and obj.shape == copy.shape
        assert np.array_equal(obj, copy, equal_nan=obj.dtype.kind in "fc"), "argument was modified"
        assert obj.flags.writeable == writeable, "argument's writeable flag was changed"
    elif isinstance(obj, (tuple, list)):
        assert len(obj) == len(snap)
        for o, s in zip(obj, snap):
            _assert_unchanged(o, s)
    else:
        assert obj == snap or obj is snap


def _fit_raises(exc, patterns, X, y, **kwargs):
    """fit(X, y, **kwargs) raises `exc` whose message matches every regex in `patterns`,
    and leaves every array argument as it was."""
    if isinstance(patterns, str):
        patterns = [patterns]
    args = {"X": X, "y": y, **kwargs}
    snaps = {k: _snapshot(v) for k, v in args.items() if isinstance(v, (np.ndarray, tuple, list))}
    with pytest.raises(exc) as info:
        fastmlp.fit(**args)
    for pattern in patterns:
        info.match(pattern)
    for k, s in snaps.items():
        _assert_unchanged(args[k], s)
    return info


def _weights(model):
    return tuple(getattr(model, n) for n in NAMES)


@pytest.fixture
def data():
    return labelled_data()


@pytest.fixture(scope="module")
def model():
    X, y = labelled_data()
    return fastmlp.fit(X, y, backend="numpy", **SMALL)


# ============================================================================ X

def _x_nan(X):
    X = X.copy()
    X[3, 2] = np.nan
    return X


def _x_posinf(X):
    X = X.copy()
    X[0, 0] = np.inf
    return X


def _x_neginf(X):
    X = X.copy()
    X[-1, -1] = -np.inf
    return X


@backends
@pytest.mark.parametrize("make", [_x_nan, _x_posinf, _x_neginf], ids=["nan", "+inf", "-inf"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_X_not_finite(data, make, dtype, backend):
    X, y = data
    Xbad = make(X).astype(dtype)
    _fit_raises(ValueError, [r"\bX\b", r"NaN or infinity", r"impute|remove"], Xbad, y, backend=backend, **SMALL)


@backends
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_X_finite_but_beyond_float32(data, backend):
    # X holds no NaN or infinity: its values only overflow the requested float32. The
    # message must say so (use float64 or rescale X), not tell the user to impute NaNs.
    X, y = data
    Xbig = X.copy()
    Xbig[0, 0] = 1e39
    _fit_raises(ValueError, [r"\bX\b", r"float32"], Xbig, y, dtype=np.float32, backend=backend, **SMALL)


@backends
def test_X_1d(backend):
    X = np.arange(10.0)
    y = np.arange(10) % 2
    _fit_raises(ValueError, [r"\bX\b", r"2-D", r"reshape\(-1, 1\)"], X, y, backend=backend, **SMALL)


@backends
def test_X_3d(data, backend):
    X, y = data
    X3 = X.reshape(40, 5, 1)
    _fit_raises(ValueError, [r"\bX\b", r"2-D", r"reshape"], X3, y, backend=backend, **SMALL)


@backends
@pytest.mark.parametrize("shape", [(0, 5), (40, 0)], ids=["no-rows", "no-features"])
def test_X_empty(shape, backend):
    X = np.zeros(shape)
    y = np.zeros(shape[0], dtype=np.int64)
    _fit_raises(ValueError, [r"\bX\b", r"at least one sample and one feature"], X, y, backend=backend, **SMALL)


@backends
@pytest.mark.parametrize("as_list", [False, True], ids=["ndarray", "list"])
def test_X_strings(data, backend, as_list):
    X, y = data
    Xs = X.astype(str)
    if as_list:
        Xs = Xs.tolist()
    _fit_raises(TypeError, [r"\bX\b", r"real numbers", r"asarray\(X, dtype=float\)"], Xs, y, backend=backend, **SMALL)


@backends
def test_X_object_dtype(data, backend):
    X, y = data
    _fit_raises(TypeError, [r"\bX\b", r"dtype object"], X.astype(object), y, backend=backend, **SMALL)


@backends
def test_X_complex(data, backend):
    X, y = data
    _fit_raises(TypeError, [r"\bX\b", r"complex"], X + 1j, y, backend=backend, **SMALL)


@backends
def test_X_ragged_list(backend):
    X = [[1.0, 2.0], [3.0], [4.0, 5.0]]
    y = [0, 1, 0]
    _fit_raises(ValueError, [r"\bX\b", r"2-D array of numbers"], X, y, backend=backend, **SMALL)


# ============================================================================ y

@backends
def test_y_length_mismatch(data, backend):
    X, y = data
    _fit_raises(ValueError, [r"\by\b", r"one label per row"], X, y[:-1], backend=backend, **SMALL)


@backends
def test_y_nan(data, backend):
    X, y = data
    yf = y.astype(float)
    yf[5] = np.nan
    _fit_raises(ValueError, [r"\by\b", r"NaN"], X, yf, backend=backend, **SMALL)


@backends
def test_y_fractional(data, backend):
    X, y = data
    yf = y.astype(float)
    yf[5] = 1.5
    _fit_raises(ValueError, [r"\by\b", r"fractional", r"integers"], X, yf, backend=backend, **SMALL)


@backends
def test_y_negative(data, backend):
    X, y = data
    yn = y.copy()
    yn[7] = -1
    _fit_raises(ValueError, [r"\by\b", r"negative", r"LabelEncoder"], X, yn, backend=backend, **SMALL)


@backends
def test_y_label_not_below_n_classes(data, backend):
    X, y = data  # labels 0..2
    _fit_raises(ValueError, [r"\by\b", r"n_classes=2", r"raise n_classes"], X, y, n_classes=2,
                backend=backend, **SMALL)


@backends
def test_y_bool(data, backend):
    X, y = data
    _fit_raises(TypeError, [r"\by\b", r"bool"], X, y.astype(bool), backend=backend, **SMALL)


@backends
@pytest.mark.parametrize("as_list", [False, True], ids=["ndarray", "list"])
def test_y_strings(data, backend, as_list):
    X, y = data
    ys = np.array(["cat", "dog", "eel"])[y]
    if as_list:
        ys = ys.tolist()
    _fit_raises(TypeError, [r"\by\b", r"LabelEncoder"], X, ys, backend=backend, **SMALL)


@backends
@pytest.mark.parametrize("shape", ["column", "onehot"])
def test_y_2d(data, backend, shape):
    X, y = data
    y2 = y.reshape(-1, 1) if shape == "column" else np.eye(3, dtype=np.int64)[y]
    _fit_raises(ValueError, [r"\by\b", r"1-D"], X, y2, backend=backend, **SMALL)


# ================================================================ hyperparameters

def _kw(**over):
    kw = dict(SMALL)
    kw.update(over)
    return kw


HYPER_CASES = [
    # (kwargs, exception, regex that names the argument)
    (dict(batch_size=0), ValueError, r"\bbatch_size\b"),
    (dict(batch_size=-1), ValueError, r"\bbatch_size\b"),
    (dict(batch_size=2.5), TypeError, r"\bbatch_size\b"),
    (dict(batch_size=True), TypeError, r"\bbatch_size\b"),
    (dict(epochs=-1), ValueError, r"\bepochs\b"),
    (dict(hidden=0), ValueError, r"\bhidden\b"),
    (dict(lr=0), ValueError, r"\blr\b"),
    (dict(lr=-1), ValueError, r"\blr\b"),
    (dict(lr=float("nan")), ValueError, r"\blr\b"),
    (dict(lr=float("inf")), ValueError, r"\blr\b"),
    (dict(lr="0.1"), TypeError, r"\blr\b"),
    (dict(reg=-1), ValueError, r"\breg\b"),
    (dict(reg=float("nan")), ValueError, r"\breg\b"),
    (dict(backend="torch"), ValueError, r"\bbackend\b"),
    (dict(dtype=np.int32), ValueError, r"\bdtype\b.*float32 or float64"),
    (dict(dtype="float16"), ValueError, r"\bdtype\b.*float32 or float64"),
    (dict(dtype=np.complex128), ValueError, r"\bdtype\b.*float32 or float64"),
    (dict(lr=0.5, reg=1.0), ValueError, r"\blr\b.*\breg\b.*lower lr or reg"),
    (dict(lr=0.25, reg=4.0), ValueError, r"\blr\b.*\breg\b.*lower lr or reg"),
    (dict(n_classes=0), ValueError, r"\bn_classes\b"),
]


def _case_id(case):
    kwargs, exc, _ = case
    return "-".join(f"{k}={v!r}" for k, v in kwargs.items())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", HYPER_CASES, ids=[_case_id(c) for c in HYPER_CASES])
def test_bad_hyperparameter(data, case, backend):
    X, y = data
    kwargs, exc, pattern = case
    kw = _kw(backend=backend)
    kw.update(kwargs)
    _fit_raises(exc, pattern, X, y, **kw)


@backends
def test_n_threads_zero(data, backend):
    # n_threads=0 is invalid whichever backend is chosen; it must not be silently ignored.
    X, y = data
    _fit_raises(ValueError, r"\bn_threads\b", X, y, n_threads=0, backend=backend, **SMALL)


@backends
@pytest.mark.parametrize("seed", [-1, 1.5, "abc"], ids=["negative", "float", "str"])
def test_bad_seed(data, backend, seed):
    X, y = data
    kw = _kw(backend=backend, seed=seed)
    _fit_raises((ValueError, TypeError), r"\bseed\b", X, y, **kw)


# ===================================================================== test set

@backends
def test_X_test_without_y_test(data, backend):
    X, y = data
    _fit_raises(ValueError, [r"\bX_test\b", r"\by_test\b", "together"], X, y, X_test=X[:5],
                backend=backend, **SMALL)


@backends
def test_y_test_without_X_test(data, backend):
    X, y = data
    _fit_raises(ValueError, [r"\bX_test\b", r"\by_test\b", "together"], X, y, y_test=y[:5],
                backend=backend, **SMALL)


@backends
def test_X_test_other_width(data, backend):
    X, y = data
    _fit_raises(ValueError, [r"\bX_test\b", r"4 features", r"expects 5"], X, y, X_test=X[:10, :4],
                y_test=y[:10], backend=backend, **SMALL)


@backends
def test_X_test_nan(data, backend):
    X, y = data
    Xt = X[:10].copy()
    Xt[2, 2] = np.nan
    _fit_raises(ValueError, [r"\bX_test\b", r"NaN"], X, y, X_test=Xt, y_test=y[:10], backend=backend, **SMALL)


@backends
def test_y_test_length_mismatch(data, backend):
    X, y = data
    _fit_raises(ValueError, [r"\by_test\b", r"9 labels"], X, y, X_test=X[:10], y_test=y[:9],
                backend=backend, **SMALL)


@backends
def test_y_test_label_out_of_range(data, backend):
    X, y = data
    yt = y[:10].copy()
    yt[0] = 3
    _fit_raises(ValueError, [r"\by_test\b", r"n_classes=3"], X, y, X_test=X[:10], y_test=yt,
                backend=backend, **SMALL)


# ========================================================================== init

def _init(d=5, h=8, c=3, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((d, h)), rng.standard_normal(h) * 0.1,
            rng.standard_normal((h, c)), rng.standard_normal(c) * 0.1)


@backends
@pytest.mark.parametrize("which", range(4), ids=NAMES)
@pytest.mark.parametrize("how", ["transposed", "extra-dim", "short"])
def test_init_wrong_shape(data, backend, which, how):
    X, y = data
    init = list(_init())
    a = init[which]
    if how == "transposed":
        a = a.T if a.ndim == 2 else a.reshape(1, -1)
    elif how == "extra-dim":
        a = a[..., None]
    else:
        a = a[:-1]
    init[which] = a
    init = tuple(init)
    _fit_raises(ValueError, [rf"\binit\b.*\b{NAMES[which]}\b", r"need"], X, y, init=init, backend=backend, **SMALL)


@backends
@pytest.mark.parametrize("init", [
    _init()[:3],
    _init() + (np.zeros(3),),
    (),
    np.zeros(4),
    {"W1": 0, "b1": 0, "W2": 0, "b2": 0},
    "W1 b1 W2 b2",
    7,
], ids=["three", "five", "empty", "ndarray", "dict", "str", "int"])
def test_init_wrong_length_or_type(data, backend, init):
    X, y = data
    _fit_raises(TypeError, [r"\binit\b", r"tuple \(W1, b1, W2, b2\)"], X, y, init=init, backend=backend, **SMALL)


@backends
@pytest.mark.parametrize("which", range(4), ids=NAMES)
def test_init_not_finite(data, backend, which):
    X, y = data
    init = list(_init())
    init[which] = init[which].copy()
    init[which].flat[0] = np.nan
    _fit_raises(ValueError, [rf"\binit\b.*\b{NAMES[which]}\b", r"NaN"], X, y, init=tuple(init),
                backend=backend, **SMALL)


@backends
@pytest.mark.parametrize("bad", ["string", "ragged", "complex"])
def test_init_entry_of_wrong_type(data, backend, bad):
    # An entry of init that is not an array of real numbers: the error must name init
    # (and the entry), not be a bare NumPy conversion error; complex weights must not
    # silently lose their imaginary part.
    X, y = data
    init = list(_init())
    if bad == "string":
        init[1] = "zeros"
    elif bad == "ragged":
        init[0] = [list(r) for r in init[0]]
        init[0][2] = init[0][2][:-1]
    else:
        init[2] = init[2] + 1j
    _fit_raises((TypeError, ValueError), [r"\binit\b"], X, y, init=tuple(init), backend=backend, **SMALL)


# ============================================================ predict / score

@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function", "score"])
def test_predict_other_width(model, data, method):
    X, y = data
    Xw = X[:, :4]
    snap = Xw.copy()
    args = (Xw, y) if method == "score" else (Xw,)
    with pytest.raises(ValueError, match=r"\bX\b has 4 features but the model expects 5"):
        getattr(model, method)(*args)
    assert np.array_equal(Xw, snap)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function", "score"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "+inf", "-inf"])
def test_predict_not_finite(model, data, method, value):
    X, y = data
    Xn = X.copy()
    Xn[4, 1] = value
    snap = Xn.copy()
    args = (Xn, y) if method == "score" else (Xn,)
    with pytest.raises(ValueError, match=r"\bX\b contains NaN or infinity"):
        getattr(model, method)(*args)
    assert np.array_equal(Xn, snap, equal_nan=True)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_predict_bad_shapes(model, data, method):
    X, y = data
    args = (X[0], y) if method == "score" else (X[0],)
    with pytest.raises(ValueError, match=r"\bX\b must be 2-D"):
        getattr(model, method)(*args)


def test_score_bad_y(model, data):
    X, y = data
    with pytest.raises(ValueError, match=r"\by\b has 39 labels"):
        model.score(X, y[:-1])
    with pytest.raises(TypeError, match=r"\by\b.*LabelEncoder"):
        model.score(X, np.array(["a"] * len(y)))
    yn = y.copy()
    yn[0] = -1
    with pytest.raises(ValueError, match=r"\by\b contains negative labels"):
        model.score(X, yn)
    # a label the model never saw (>= n_classes) is simply a wrong prediction
    yb = y.copy()
    yb[0] = 3
    assert model.score(X, yb) == pytest.approx(model.score(X, y) - float(model.predict(X[:1])[0] == y[0]) / len(y))


# =================================================================== model files

def _arrays(model):
    return {n: np.ascontiguousarray(getattr(model, n)) for n in NAMES}


def _metadata(model, tmp_path):
    p = tmp_path / "ref.npz"
    model.save(p)
    with np.load(p) as npz:
        return json.loads(str(npz["metadata"]))


def _write(path, metadata, arrays, **extra):
    md = metadata if isinstance(metadata, np.ndarray) else np.array(json.dumps(metadata))
    np.savez(path, metadata=md, **arrays, **extra)
    return path


def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        fastmlp.load(path)


@pytest.mark.parametrize("fraction", [0.0, 0.0005, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999])
def test_load_truncated(model, tmp_path, fraction):
    good = tmp_path / "good.npz"
    model.save(good)
    blob = good.read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(blob[:int(len(blob) * fraction)])
    with pytest.raises(ValueError, match=r"cut\.npz.*not a readable fastmlp model"):
        fastmlp.load(bad)


class _Marker:
    """Unpickling this writes a marker file: a visible side effect."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (_touch, (self.path,))


def _touch(path):
    with open(path, "w") as f:
        f.write("unpickled!")
    return np.zeros(1)


@pytest.mark.parametrize("slot", ["metadata", "W1", "b2"])
def test_load_never_unpickles(model, tmp_path, slot):
    marker = tmp_path / "marker.txt"
    arrays = _arrays(model)
    md = np.array(json.dumps(_metadata(model, tmp_path)))
    payload = np.empty(1, dtype=object)
    payload[0] = _Marker(marker)
    contents = {"metadata": md, **arrays}
    contents[slot] = payload
    path = tmp_path / "evil.npz"
    np.savez(path, allow_pickle=True, **contents)
    # the file really is a pickle bomb: loading it with pickle allowed runs the code
    probe = tmp_path / "probe.npz"
    np.savez(probe, allow_pickle=True, x=np.array([_Marker(tmp_path / "probe.txt")], dtype=object))
    with np.load(probe, allow_pickle=True) as npz:
        npz["x"]
    assert (tmp_path / "probe.txt").exists()

    with pytest.raises(ValueError, match=r"evil\.npz"):
        fastmlp.load(path)
    assert not marker.exists(), "fastmlp.load unpickled an object array"


def test_load_refuses_plain_pickle(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "model.npz"
    with open(path, "wb") as f:
        pickle.dump(_Marker(marker), f)
    with pytest.raises(ValueError, match=r"model\.npz"):
        fastmlp.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("name,shape", [("W1", (4, 8)), ("W1", (5, 9)), ("b1", (7,)), ("W2", (8, 2)),
                                        ("b2", (4,)), ("W1", (40,))])
def test_load_inconsistent_shapes(model, tmp_path, name, shape):
    arrays = _arrays(model)
    arrays[name] = np.zeros(shape)
    path = _write(tmp_path / "m.npz", _metadata(model, tmp_path), arrays)
    with pytest.raises(ValueError, match=rf"m\.npz.*\b{name}\b has shape"):
        fastmlp.load(path)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float16, np.complex128])
def test_load_wrong_dtype(model, tmp_path, dtype):
    arrays = _arrays(model)
    arrays["W2"] = arrays["W2"].astype(dtype)
    path = _write(tmp_path / "m.npz", _metadata(model, tmp_path), arrays)
    with pytest.raises(ValueError, match=r"m\.npz.*\bW2\b.*dtype"):
        fastmlp.load(path)


@pytest.mark.parametrize("dtype", ["int32", "float16", "complex128", "no-such-type", 3, ["float64"]])
def test_load_wrong_metadata_dtype(model, tmp_path, dtype):
    md = _metadata(model, tmp_path)
    md["dtype"] = dtype
    path = _write(tmp_path / "m.npz", md, _arrays(model))
    with pytest.raises(ValueError, match=r"m\.npz.*dtype"):
        fastmlp.load(path)


@pytest.mark.parametrize("name", NAMES)
def test_load_not_finite_weights(model, tmp_path, name):
    arrays = _arrays(model)
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] = np.nan
    path = _write(tmp_path / "m.npz", _metadata(model, tmp_path), arrays)
    with pytest.raises(ValueError, match=rf"m\.npz.*\b{name}\b contains NaN"):
        fastmlp.load(path)


@pytest.mark.parametrize("missing", ["metadata", *NAMES])
def test_load_missing_array(model, tmp_path, missing):
    contents = {"metadata": np.array(json.dumps(_metadata(model, tmp_path))), **_arrays(model)}
    del contents[missing]
    path = tmp_path / "m.npz"
    np.savez(path, **contents)
    with pytest.raises(ValueError, match=rf"m\.npz.*expected .*'{missing}'"):
        fastmlp.load(path)


def test_load_extra_array(model, tmp_path):
    path = _write(tmp_path / "m.npz", _metadata(model, tmp_path), _arrays(model), W3=np.zeros(3))
    with pytest.raises(ValueError, match=r"m\.npz.*'W3'"):
        fastmlp.load(path)


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2", "\x00\x01"])
def test_load_metadata_not_json(model, tmp_path, text):
    path = _write(tmp_path / "m.npz", np.array(text), _arrays(model))
    with pytest.raises(ValueError, match=r"m\.npz.*metadata"):
        fastmlp.load(path)


@pytest.mark.parametrize("doc", [[1, 2], "fastmlp-model", 3, None, {"format": "other"}])
def test_load_metadata_not_a_model(model, tmp_path, doc):
    path = _write(tmp_path / "m.npz", doc, _arrays(model))
    with pytest.raises(ValueError, match=r"m\.npz.*metadata does not describe a fastmlp model"):
        fastmlp.load(path)


@pytest.mark.parametrize("version", [0, 2, "1", None, 1.5])
def test_load_wrong_format_version(model, tmp_path, version):
    md = _metadata(model, tmp_path)
    md["format_version"] = version
    path = _write(tmp_path / "m.npz", md, _arrays(model))
    with pytest.raises(ValueError, match=r"m\.npz.*format version"):
        fastmlp.load(path)


@pytest.mark.parametrize("field,value", [
    ("n_features", None),
    ("n_features", "five"),
    ("n_features", float("inf")),
    ("hidden", float("nan")),
    ("n_classes", [3]),
    ("history", [1, 2]),
    ("history", {"loss": 5}),
    ("history", "abc"),
    ("params", 5),
    ("params", "abc"),
    ("params", [1, 2]),
    ("classes", "abc"),
    ("classes", [0, 1]),
    ("classes", [[0, 1], [2, 3], [4, 5]]),
    ("classes", [[0], [1, 2], 3]),
    ("classes", [{"a": 1}, 2, 3]),
], ids=lambda v: repr(v))
def test_load_metadata_fields_of_wrong_type(model, tmp_path, field, value):
    # A damaged (or hand-edited) metadata document must give ValueError naming the file,
    # never OverflowError/AttributeError/TypeError from deep inside load.
    md = _metadata(model, tmp_path)
    md[field] = value
    path = _write(tmp_path / "m.npz", md, _arrays(model))
    with pytest.raises(ValueError, match=r"m\.npz"):
        fastmlp.load(path)


def test_load_roundtrip_sanity(model, tmp_path):
    # the helpers above write files that load when nothing is wrong
    path = _write(tmp_path / "m.npz", _metadata(model, tmp_path), _arrays(model))
    loaded = fastmlp.load(path)
    for name in NAMES:
        assert np.array_equal(getattr(loaded, name), getattr(model, name))


def _no_temp_files(folder):
    return [p for p in os.listdir(folder) if p.startswith(".fastmlp-")] == []


def test_failed_save_keeps_old_file_unserializable_param(model, tmp_path):
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()
    broken = fastmlp.MLPModel(*_weights(model), history=model.history,
                              params={**model.params, "callback": object()})
    with pytest.raises(TypeError):
        broken.save(path)
    assert path.read_bytes() == before
    loaded = fastmlp.load(path)
    for name in NAMES:
        assert np.array_equal(getattr(loaded, name), getattr(model, name))
    assert _no_temp_files(tmp_path)


def test_failed_save_keeps_old_file_unserializable_history(model, tmp_path):
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()
    broken = fastmlp.MLPModel(*_weights(model), history={"loss": [object()], "train_acc": [], "test_acc": []},
                              params=model.params)
    with pytest.raises(TypeError):
        broken.save(path)
    assert path.read_bytes() == before
    fastmlp.load(path)
    assert _no_temp_files(tmp_path)


def test_failed_save_keeps_old_file_unserializable_classes(model, tmp_path):
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()
    classes = np.array([object(), object(), object()], dtype=object)
    broken = fastmlp.MLPModel(*_weights(model), history=model.history, params=model.params, classes=classes)
    with pytest.raises(TypeError, match=r"\bclasses\b"):
        broken.save(path)
    assert path.read_bytes() == before
    fastmlp.load(path)
    assert _no_temp_files(tmp_path)


def test_failed_save_into_missing_directory(model, tmp_path):
    with pytest.raises(FileNotFoundError):
        model.save(tmp_path / "no" / "such" / "dir" / "model.npz")
    assert not (tmp_path / "no").exists()


def test_failed_save_onto_a_directory(model, tmp_path):
    target = tmp_path / "model.npz"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    with pytest.raises(OSError):
        model.save(target)
    assert (target / "keep.txt").read_text() == "keep"
    assert _no_temp_files(tmp_path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_failed_save_unwritable_directory(model, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "model.npz"
    model.save(path)
    before = path.read_bytes()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            model.save(path)
    finally:
        folder.chmod(0o700)
    assert path.read_bytes() == before
    fastmlp.load(path)


def test_save_does_not_mutate_model(model, tmp_path):
    snaps = [getattr(model, n).copy() for n in NAMES]
    history = json.loads(json.dumps(model.history))
    model.save(tmp_path / "m.npz")
    for name, s in zip(NAMES, snaps):
        assert np.array_equal(getattr(model, name), s)
    assert model.history == history


# =========================================== nothing mutated, any layout accepted

LAYOUT_DATA = dict(n=50, d=12, c=4, seed=11)
LAYOUT_FIT = dict(hidden=8, epochs=2, batch_size=9, lr=1e-3, reg=1e-2, seed=5)


def _imagelabelled_data():
    rng = np.random.default_rng(21)
    X = rng.integers(0, 256, size=(50, 12)).astype(np.uint8)
    y = rng.integers(0, 4, size=50)
    y[:4] = np.arange(4)
    return X, y


def _layouts(X, tmp_path):
    """(name, X-like) pairs holding the same numbers as X (float64 C-contiguous)."""
    big = np.zeros((2 * X.shape[0], X.shape[1]), dtype=X.dtype)
    big[::2] = X
    ro = X.copy()
    ro.setflags(write=False)
    mm_path = tmp_path / "X.dat"
    X.tofile(mm_path)
    mm = np.memmap(mm_path, dtype=X.dtype, mode="r", shape=X.shape)
    return [
        ("strided", big[::2]),
        ("fortran", np.asfortranarray(X)),
        ("readonly", ro),
        ("memmap", mm),
        ("list", X.tolist()),
        ("column-slice", np.hstack([X, X])[:, :X.shape[1]]),
    ]


def _readonly_fortran_init():
    init = []
    for a in _init(d=12, h=8, c=4, seed=9):
        a = np.asfortranarray(a)
        a.setflags(write=False)
        init.append(a)
    return tuple(init)


@backends
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["strided", "fortran", "readonly", "memmap", "list", "column-slice"])
def test_any_layout_same_model(tmp_path, backend, dtype, layout):
    X, y = labelled_data(**LAYOUT_DATA)
    Xt, yt = labelled_data(n=20, d=12, c=4, seed=12)
    init = _readonly_fortran_init()
    clean_init = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in init)
    kw = dict(LAYOUT_FIT, backend=backend, dtype=dtype, n_threads=1)
    ref = fastmlp.fit(X.copy(), y.copy(), X_test=Xt.copy(), y_test=yt.copy(), init=clean_init, **kw)

    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    X_in = dict(_layouts(X, tmp_path / "train"))[layout]
    Xt_in = dict(_layouts(Xt, tmp_path / "test"))[layout]
    # y in an unusual layout too: strided int32 / read-only / list
    y_in = {"strided": np.repeat(y.astype(np.int32), 2)[::2], "list": y.tolist()}.get(layout, y.copy())
    if layout == "readonly":
        y_in.setflags(write=False)
    args = dict(X=X_in, y=y_in, X_test=Xt_in, y_test=yt.copy(), init=init)
    snaps = {k: _snapshot(v) for k, v in args.items()}
    got = fastmlp.fit(**args, **kw)
    assert_same_model(got, ref)
    for k, s in snaps.items():
        _assert_unchanged(args[k], s)
    if layout == "readonly":
        assert not X_in.flags.writeable and not Xt_in.flags.writeable and not y_in.flags.writeable
    if layout == "memmap":
        assert np.array_equal(np.fromfile(tmp_path / "train" / "X.dat").reshape(X.shape), X)
    for a in init:
        assert not a.flags.writeable


@backends
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("int_dtype", [np.uint8, np.int32])
def test_integer_images_same_model(backend, dtype, int_dtype):
    X8, y = _imagelabelled_data()
    X = X8.astype(int_dtype)
    snap = X.copy()
    kw = dict(LAYOUT_FIT, lr=1e-6, backend=backend, dtype=dtype, n_threads=1)
    ref = fastmlp.fit(X.astype(dtype), y, X_test=X[:10].astype(dtype), y_test=y[:10], **kw)
    got = fastmlp.fit(X, y, X_test=X[:10], y_test=y[:10], **kw)
    assert_same_model(got, ref)
    assert got.W1.dtype == dtype
    assert np.array_equal(X, snap) and X.dtype == int_dtype


@backends
def test_integer_images_default_dtype_is_float64(backend):
    X, y = _imagelabelled_data()
    m = fastmlp.fit(X, y, **dict(LAYOUT_FIT, lr=1e-6, backend=backend))
    assert m.W1.dtype == np.float64


@backends
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_size_larger_thanlabelled_data(backend, dtype):
    X, y = labelled_data(n=13, dtype=dtype)
    kw = dict(hidden=8, epochs=3, lr=1e-2, reg=1e-2, seed=2, backend=backend, n_threads=1)
    Xs, ys = X.copy(), y.copy()
    big = fastmlp.fit(X, y, batch_size=1000, **kw)
    exact = fastmlp.fit(X, y, batch_size=13, **kw)
    assert_same_model(big, exact)
    assert np.array_equal(X, Xs) and np.array_equal(y, ys)
    assert len(big.history["loss"]) == 3


@backends
def test_fit_does_not_mutate_c_contiguous_float_input(backend):
    # The no-copy fast path: X already float64 C-contiguous; it must still not be written.
    X, y = labelled_data()
    init = _init()
    snaps = _snapshot((X, y, init))
    model = fastmlp.fit(X, y, init=init, X_test=X, y_test=y, backend=backend, **SMALL)
    _assert_unchanged((X, y, init), snaps)
    for name, a in zip(NAMES, init):
        assert not np.shares_memory(getattr(model, name), a)


# ===================================================================== divergence

@backends
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_raises(backend, dtype):
    X, y = labelled_data(n=60, d=10, c=4, seed=4, dtype=dtype)
    X = X * dtype(1e3)
    kw = dict(hidden=16, epochs=50, batch_size=10, lr=1.0, reg=1e-2, seed=0, backend=backend)
    returned = []
    with pytest.raises(FloatingPointError, match=r"epoch \d+") as info:
        returned.append(fastmlp.fit(X, y, **kw))
    assert returned == []
    info.match(r"smaller learning rate")
    info.match(r"lr=1\.0")


@backends
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_no_nan_model_from_huge_finite_X(backend):
    X, y = labelled_data()
    X = X * 1e300  # finite, but every product overflows
    returned = []
    with pytest.raises((FloatingPointError, ValueError), match=r"epoch|\bX\b"):
        returned.append(fastmlp.fit(X, y, backend=backend, **SMALL))
    assert returned == []


# ===================================================================== determinism

@backends
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_same_inputs_same_model(backend, dtype, n_threads):
    X, y = labelled_data(n=200, d=20, c=5, seed=7, dtype=dtype)
    kw = dict(hidden=16, epochs=3, batch_size=16, lr=1e-2, reg=1e-2, seed=3, backend=backend,
              n_threads=n_threads, X_test=X[:30], y_test=y[:30])
    a = fastmlp.fit(X, y, **kw)
    b = fastmlp.fit(X, y, **kw)
    assert_same_model(a, b)
    assert len(a.history["test_acc"]) == 3


def _thread_jobs(n_threads):
    """Two fits that each run long enough (tens of ms) to overlap when started together."""
    jobs = []
    for k in range(2):
        X, y = labelled_data(n=3000, d=32, c=5, seed=100 + k)
        jobs.append(dict(X=X, y=y, X_test=X[:200], y_test=y[:200], hidden=32, epochs=20, batch_size=20,
                         lr=1e-3, reg=1e-2, seed=40 + k, backend="cython", n_threads=n_threads))
    return jobs


@pytest.mark.parametrize("n_threads", [1, 2])
def test_concurrent_fits_match_sequential(n_threads):
    jobs = _thread_jobs(n_threads)
    sequential = [fastmlp.fit(**job) for job in jobs]

    results = [None, None]
    errors = []
    start = threading.Barrier(2)

    def work(i):
        try:
            start.wait()
            results[i] = fastmlp.fit(**jobs[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for _ in range(2):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for got, want in zip(results, sequential):
            assert_same_model(got, want)
