"""The trained network: prediction, scoring, and a safe ``.npz`` file format."""

import json
import os
import zipfile

import numpy as np

from . import reference
from ._files import write_atomically
from ._validation import FLOAT_DTYPES, check_features, check_labels
from ._version import __version__

FORMAT_VERSION = 1
_WEIGHTS = ("W1", "b1", "W2", "b2")
_PREDICT_BLOCK = 4096  # rows per block in predict: large GEMMs, bounded memory


def logits_in_blocks(X, weights):
    """The network's logits for the rows of ``X``, computed a block of rows at a time
    (large products, bounded memory) with :func:`fastmlp.reference.forward`."""
    out = np.empty((X.shape[0], weights[2].shape[1]), dtype=X.dtype)
    for start in range(0, X.shape[0], _PREDICT_BLOCK):
        out[start:start + _PREDICT_BLOCK] = reference.forward(X[start:start + _PREDICT_BLOCK], weights)[2]
    return out


class MLPModel:
    """A trained two-layer network ``softmax(relu(X @ W1 + b1) @ W2 + b2)``.

    Returned by :func:`fastmlp.fit` and :func:`fastmlp.load`.

    Attributes
    ----------
    W1 : ndarray of shape (n_features, hidden)
    b1 : ndarray of shape (hidden,)
    W2 : ndarray of shape (hidden, n_classes)
    b2 : ndarray of shape (n_classes,)
    history : dict of lists
        One entry per epoch: ``loss`` (mean cross-entropy per training sample,
        accumulated during the epoch's own forward passes, without the L2 penalty),
        ``train_acc`` (accuracy counted in the same passes); ``test_acc``, the
        accuracy on ``X_test`` after the epochs listed in ``test_epoch`` (every
        epoch unless ``fit(eval_every=...)`` said otherwise; empty without ``X_test``).
    params : dict
        The hyperparameters the model was trained with.
    classes : ndarray of shape (n_classes,) or None
        The label of each output; None means the labels are ``0..n_classes-1``.
    """

    def __init__(self, W1, b1, W2, b2, history=None, params=None, classes=None):
        self.W1, self.b1, self.W2, self.b2 = W1, b1, W2, b2
        if history is None:
            history = {"loss": [], "train_acc": [], "test_acc": [], "test_epoch": []}
        self.history = history
        self.params = dict(params or {})
        if classes is not None:
            classes = np.asarray(classes)
            if classes.shape != (W2.shape[1],):
                raise ValueError(f"classes must hold one label per output ({W2.shape[1]}), "
                                 f"got shape {classes.shape}")
        self.classes = classes

    @property
    def n_features(self):
        return self.W1.shape[0]

    @property
    def n_classes(self):
        return self.W2.shape[1]

    @property
    def dtype(self):
        return self.W1.dtype

    def __repr__(self):
        return (f"MLPModel(n_features={self.n_features}, hidden={self.W1.shape[1]}, "
                f"n_classes={self.n_classes}, dtype={self.dtype}, epochs={len(self.history['loss'])})")

    def decision_function(self, X):
        """Logits ``relu(X @ W1 + b1) @ W2 + b2``, shape (n_samples, n_classes).

        Computed in blocks of rows, so memory stays bounded for large ``X``.
        """
        X = check_features(X, "X", self.dtype, n_features=self.n_features)
        return logits_in_blocks(X, (self.W1, self.b1, self.W2, self.b2))

    def predict_proba(self, X):
        """Class probabilities ``softmax(logits)``, shape (n_samples, n_classes); rows sum to 1."""
        return reference.softmax(self.decision_function(X))

    def predict(self, X):
        """The most probable class of each row: int64 labels 0..n_classes-1, or the
        entries of ``classes`` when the model has them."""
        index = np.argmax(self.decision_function(X), axis=1)
        return index if self.classes is None else self.classes[index]

    def score(self, X, y):
        """Accuracy: the fraction of rows of ``X`` whose predicted class is ``y``."""
        pred = self.predict(X)
        if self.classes is None:
            labels, _ = check_labels(y, "y", pred.shape[0])  # a label >= n_classes counts as wrong
        else:
            labels = np.asarray(y)
            if labels.shape != pred.shape:
                raise ValueError(f"y must hold one label per row of X ({pred.shape[0]}), got shape {labels.shape}")
        return float(np.mean(pred == labels))

    def to_onnx(self, path=None, *, dtype=None):
        """The network as an ONNX model, for ONNX Runtime or any other ONNX engine.

        Input ``X`` of shape (N, n_features); outputs ``label`` (N,) — the entries of
        ``classes`` (int64, float64, bool or string tensors), or int64 ``0..C-1``
        without them — and ``probabilities`` (N, n_classes). The graph is MatMul,
        Add, Relu, MatMul, Add, Softmax, and ArgMax over the logits (then Gather from
        the classes), ONNX opset 17. Needs the ONNX extra: ``pip install "fastmlp[onnx]"``.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Also write the model to this file (written to a temporary name first and
            moved into place).
        dtype : {None, "float32", "float64"}, default None
            Element type of ``X``, the weights and ``probabilities``; None: the
            model's dtype.

        Returns
        -------
        onnx.ModelProto
        """
        from ._onnx import model_to_onnx
        return model_to_onnx(self, path, dtype)

    def save(self, path):
        """Write the model to ``path`` as an ``.npz`` file (no pickle inside).

        The file holds the four weight arrays and a JSON document ``metadata``
        (format version, fastmlp version, dtype, shapes, hyperparameters, history).
        It is written to a temporary file first and moved into place, so an
        existing file is never left half-written.
        """
        path = os.fspath(path)
        metadata = {
            "format": "fastmlp-model",
            "format_version": FORMAT_VERSION,
            "fastmlp_version": __version__,
            "dtype": self.dtype.name,
            "n_features": self.n_features,
            "hidden": self.W1.shape[1],
            "n_classes": self.n_classes,
            "classes": None if self.classes is None else _json_labels(self.classes),
            "params": self.params,
            "history": self.history,
        }
        arrays = {name: np.ascontiguousarray(getattr(self, name)) for name in _WEIGHTS}
        document = np.array(json.dumps(metadata))
        write_atomically(path, lambda f: np.savez(f, metadata=document, **arrays), binary=True)


def load(path):
    """Read a model written by :meth:`MLPModel.save`.

    The file is opened with ``allow_pickle=False``, so loading can never run code.
    Missing or extra arrays, wrong shapes or dtypes, and damaged files raise
    ``ValueError`` saying what is wrong.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MLPModel
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            contents = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path!r} is not a readable fastmlp model file ({exc})") from None

    expected = {"metadata", *_WEIGHTS}
    if set(contents) != expected:
        raise ValueError(f"{path!r} is not a fastmlp model file: it holds arrays {sorted(contents)}, "
                         f"expected {sorted(expected)}")
    try:
        metadata = json.loads(str(contents["metadata"]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path!r}: its metadata is not valid JSON ({exc})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != "fastmlp-model":
        raise ValueError(f"{path!r}: its metadata does not describe a fastmlp model")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} has model format version {metadata.get('format_version')!r}; "
                         f"this fastmlp ({__version__}) reads version {FORMAT_VERSION}")

    try:
        dtype = np.dtype(metadata["dtype"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path!r}: its metadata lacks a valid dtype ({exc})") from None
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"{path!r}: dtype {dtype} is not float32 or float64")
    sizes = [metadata.get(k) for k in ("n_features", "hidden", "n_classes")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise ValueError(f"{path!r}: its metadata gives sizes (n_features, hidden, n_classes) = "
                         f"{tuple(sizes)!r}; expected positive integers")
    D, H, C = sizes
    shapes = {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}
    for name, shape in shapes.items():
        arr = contents[name]
        if arr.shape != shape or arr.dtype != dtype:
            raise ValueError(f"{path!r}: {name} has shape {arr.shape} and dtype {arr.dtype}, "
                             f"expected {shape} and {dtype}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{path!r}: {name} contains NaN or infinity")

    classes = metadata.get("classes")
    if classes is not None:
        if (not isinstance(classes, list) or len(classes) != C
                or not all(isinstance(c, (int, float, str, bool)) for c in classes)):
            raise ValueError(f"{path!r}: its metadata lists {classes!r} as classes; "
                             f"expected {C} labels (numbers or strings)")
        classes = np.asarray(classes)
    history = metadata.get("history", {})
    if not isinstance(history, dict) or not all(
            isinstance(history.get(k, []), list)
            and all(isinstance(v, (int, float)) for v in history.get(k, []))
            for k in ("loss", "train_acc", "test_acc")):
        raise ValueError(f"{path!r}: its metadata's history is not lists of numbers per epoch")
    params = metadata.get("params", {})
    if not isinstance(params, dict):
        raise ValueError(f"{path!r}: its metadata's params is {params!r}, not a mapping")
    return MLPModel(*(np.ascontiguousarray(contents[n]) for n in _WEIGHTS),
                    history={k: list(history.get(k, [])) for k in ("loss", "train_acc", "test_acc",
                                                                    "test_epoch")},
                    params=params, classes=classes)


def _json_labels(classes):
    """Class labels as a JSON list: ints, floats, strings or bools, nothing else."""
    labels = classes.tolist()
    if not all(isinstance(c, (int, float, str, bool)) for c in labels):
        raise TypeError(f"classes must be numbers or strings to be saved, got {classes.dtype}")
    return labels
