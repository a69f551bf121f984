"""ONNX export against ONNX Runtime: a model, its file, the CLI, and a scikit-learn pipeline."""

import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import reference
from fastmlp.__main__ import main
from fastmlp.data import load_digits_split, load_idx
from _helpers import mnist_dir

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")

# One thread per fit: the thread count does not matter here, and one is fastest for small
# networks on a busy machine.
ONE = {"n_threads": 1}
# Largest |ONNX Runtime - reference| of the probabilities (measured: 1.2e-7 float32 and
# 2.2e-16 float64 on digits, 1.1-1.8e-6 float32 on MNIST; 7.9e-7 for a float32 pipeline).
ATOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}


def run(onnx_model, X):
    """``(label, probabilities)`` from ONNX Runtime for a model (a ModelProto or a file path)."""
    source = onnx_model if isinstance(onnx_model, str) else onnx_model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["X"]
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    return session.run(None, {"X": X})


def reference_probabilities(X, weights):
    """softmax(relu(X @ W1 + b1) @ W2 + b2) by fastmlp.reference, in the dtype of X."""
    return reference.softmax(reference.forward(X, weights)[2])


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(seed=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_model_matches_reference(digits, dtype):
    X_train, y_train, X_test, _ = digits
    model = fastmlp.fit(X_train.astype(dtype), y_train, hidden=32, epochs=10, seed=0, **ONE)
    X = X_test.astype(dtype)
    label, proba = run(model.to_onnx(), X)
    expected = reference_probabilities(X, (model.W1, model.b1, model.W2, model.b2))
    assert proba.dtype == dtype and proba.shape == expected.shape
    diff = np.abs(proba - expected).max()
    print(f"digits {np.dtype(dtype).name}: max |ONNX Runtime - reference| = {diff:.2e}")
    assert diff <= ATOL[np.dtype(dtype)]
    assert label.dtype == np.int64
    np.testing.assert_array_equal(label, np.argmax(expected, axis=1))
    np.testing.assert_array_equal(label, model.predict(X))


@pytest.mark.parametrize("classes", [
    np.array(["cat", "dog", "emu"]),
    np.array([-3, 7, 11]),
    np.array([1.0, 2.0, 4.0]),
], ids=["str", "int", "float"])
def test_labels_are_the_classes(rng, classes):
    X = rng.standard_normal((200, 5))
    y = classes[rng.integers(0, 3, size=200)]
    clf = fastmlp.MLPClassifier(hidden=16, epochs=5, lr=1e-3, random_state=0, **ONE).fit(X, y)
    label, proba = run(clf.to_model().to_onnx(), X)
    np.testing.assert_array_equal(label, clf.predict(X))
    assert set(label.tolist()) <= set(classes.tolist()) and len(set(label.tolist())) > 1
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=0, atol=1e-12)


def test_boolean_labels(rng):
    X = rng.standard_normal((100, 4))
    y = X[:, 0] > 0
    clf = fastmlp.MLPClassifier(hidden=8, epochs=20, lr=1e-2, random_state=0, **ONE).fit(X, y)
    label, _ = run(clf.to_model().to_onnx(), X)
    assert label.dtype == bool
    np.testing.assert_array_equal(label, clf.predict(X))


def test_file_and_dtype_conversion(tmp_path, digits):
    X_train, y_train, X_test, _ = digits
    model = fastmlp.fit(X_train, y_train, hidden=16, epochs=3, seed=1, **ONE)  # float64
    path = tmp_path / "model.onnx"
    returned = model.to_onnx(path, dtype="float32")
    assert onnx.load(str(path)) == returned
    onnx.checker.check_model(str(path), full_check=True)
    graph = returned.graph
    assert [n.op_type for n in graph.node] == ["MatMul", "Add", "Relu", "MatMul", "Add", "Softmax", "ArgMax"]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    label, proba = run(str(path), X_test.astype(np.float32))
    # float32 graph against the float64 model: float32 rounding of inputs and weights
    np.testing.assert_allclose(proba, model.predict_proba(X_test), rtol=0, atol=1e-5)
    assert np.mean(label == model.predict(X_test)) > 0.99
    # the model itself is unchanged
    assert model.W1.dtype == np.float64


def test_bad_dtype_and_missing_extra(monkeypatch, digits):
    model = fastmlp.fit(digits[0], digits[1], hidden=8, epochs=1, **ONE)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        model.to_onnx(dtype="int32")
    with pytest.raises(TypeError, match="dtype must be"):
        model.to_onnx(dtype="no such type")
    with pytest.raises(TypeError, match="cannot be ONNX labels"):
        fastmlp.MLPModel(model.W1, model.b1, model.W2, model.b2,
                         classes=np.array([object()] * 10)).to_onnx()
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if onnx were not installed
    with pytest.raises(ImportError, match=r'pip install "fastmlp\[onnx\]"'):
        model.to_onnx()


def test_cli_export(tmp_path, capsys, monkeypatch, digits):
    X_train, y_train, X_test, _ = digits
    names = np.array([f"digit {d}" for d in range(10)])
    model = fastmlp.fit(X_train, y_train, hidden=16, epochs=3, **ONE)
    model.classes = names
    model.save(tmp_path / "model.npz")
    out = tmp_path / "model.onnx"
    assert main(["export", "--model", str(tmp_path / "model.npz"), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    label, proba = run(str(out), X_test)
    np.testing.assert_array_equal(label, model.predict(X_test))
    np.testing.assert_allclose(proba, model.predict_proba(X_test), rtol=0, atol=1e-12)

    assert main(["export", "--model", str(tmp_path / "missing.npz"), "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if onnx were not installed
    assert main(["export", "--model", str(tmp_path / "model.npz"), "--out", str(tmp_path / "b.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastmlp export: error:") and 'pip install "fastmlp[onnx]"' in err
    assert not (tmp_path / "b.onnx").exists()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pipeline_with_scaler(digits, dtype):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, y_train, X_test, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", fastmlp.MLPClassifier(hidden=32, epochs=10, random_state=0, **ONE))])
    pipe.fit(X_train, names[y_train])
    onnx_model = skl2onnx.to_onnx(pipe, X_train[:1].astype(dtype))
    label, proba = run(onnx_model, X_test.astype(dtype))
    expected = pipe.predict_proba(X_test)  # float64 scaler and network
    diff = np.abs(proba - expected).max()
    print(f"pipeline {np.dtype(dtype).name}: max |ONNX Runtime - scikit-learn| = {diff:.2e}")
    assert diff <= (1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(label, pipe.predict(X_test))


def test_pipeline_errors(digits):
    from sklearn.exceptions import NotFittedError

    X = digits[0]
    with pytest.raises(NotFittedError):
        skl2onnx.to_onnx(fastmlp.MLPClassifier(), X[:1])
    clf = fastmlp.MLPClassifier(hidden=8, epochs=1, **ONE).fit(X, digits[1])
    with pytest.raises(TypeError, match="float32 or float64 data"):
        skl2onnx.to_onnx(clf, X[:1].astype(np.int64))


def test_mnist_float32():
    folder = mnist_dir()
    X, y = load_idx(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    X = X.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(X))
    train, held_out = order[:2580], order[2580:5160]
    model = fastmlp.fit(X[train], y[train], hidden=128, epochs=5, seed=0, **ONE)
    label, proba = run(model.to_onnx(), X[held_out])
    expected = reference_probabilities(X[held_out], (model.W1, model.b1, model.W2, model.b2))
    diff = np.abs(proba - expected).max()
    print(f"MNIST float32: max |ONNX Runtime - reference| = {diff:.2e}")
    assert diff <= 1e-5
    np.testing.assert_array_equal(label, model.predict(X[held_out]))
