"""The trained network: prediction, scoring, and a safe ``.npz`` file format."""

import json
import os

import numpy as np

from . import reference
from ._files import write_atomically
from ._npz import NpzArchive
from ._validation import FLOAT_DTYPES, all_finite, check_features, issparse, label_values, matching_labels
from ._version import __version__

FORMAT_VERSION = 1
_WEIGHTS = ("W1", "b1", "W2", "b2")
#: The lists of a history; files written before some of them existed lack those.
HISTORY_KEYS = ("loss", "train_acc", "test_acc", "test_epoch", "val_acc", "lr")
_PREDICT_BLOCK = 4096  # rows per block in predict: large GEMMs, bounded memory


def checked_logits(X, weights):
    """The network's logits for ``X`` (array-like or scipy.sparse), checked first: made
    ``W1``'s dtype (an overflow named as such), finite, with ``W1``'s features."""
    W1 = weights[0]
    X = check_features(X, "X", W1.dtype, n_features=W1.shape[0], accept_sparse=True)
    return logits_in_blocks(X, weights)


def logits_in_blocks(X, weights):
    """The network's logits for the rows of ``X`` (an array or a sparse CSR matrix),
    computed a block of rows at a time (large products, bounded memory) with
    :func:`fastmlp.reference.forward`."""
    out = np.empty((X.shape[0], weights[2].shape[1]), dtype=X.dtype)
    for start in range(0, X.shape[0], _PREDICT_BLOCK):
        block = X[start:start + _PREDICT_BLOCK]
        if issparse(block):
            block = block.toarray()
        out[start:start + _PREDICT_BLOCK] = reference.forward(block, weights)[2]
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
        ``train_acc`` (accuracy counted in the same passes; both weighted by the
        sample weights when the fit had them); ``test_acc``, the accuracy on ``X_test``
        after the epochs listed in ``test_epoch`` (every epoch unless
        ``fit(eval_every=...)`` said otherwise; empty without ``X_test``); ``val_acc``
        (early stopping's validation accuracy; empty without it) and ``lr`` (the
        epoch's learning rate).
    params : dict
        The hyperparameters the model was trained with.
    classes : ndarray of shape (n_classes,) or None
        The label of each output; None means the labels are ``0..n_classes-1``.
    best_epoch : int or None
        With early stopping, the (1-based) epoch whose weights these are.
    state : fastmlp._controls.TrainingState or None
        What ``fit(..., init=model)`` continues from: momentum velocities, samples
        seen, the adaptive rate and counter. Not saved to model files: a loaded model
        continues with fresh velocities and ``t = 0``.
    """

    def __init__(self, W1, b1, W2, b2, history=None, params=None, classes=None, best_epoch=None):
        self.W1, self.b1, self.W2, self.b2 = check_weights(W1, b1, W2, b2)
        self.history = history if history is not None else {key: [] for key in HISTORY_KEYS}
        self.params = dict(params or {})
        self.best_epoch = best_epoch
        self.state = None
        if classes is not None:
            classes = np.asarray(classes)
            if classes.shape != (self.W2.shape[1],):
                raise ValueError(f"classes must hold one label per output ({self.W2.shape[1]}), "
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

        Computed in blocks of rows, so memory stays bounded for large ``X``; a
        scipy.sparse ``X`` is made dense a block at a time.
        """
        return checked_logits(X, (self.W1, self.b1, self.W2, self.b2))

    def predict_proba(self, X):
        """Class probabilities ``softmax(logits)``, shape (n_samples, n_classes); rows sum to 1."""
        return reference.softmax(self.decision_function(X))

    def predict(self, X):
        """The most probable class of each row: int64 labels 0..n_classes-1, or the
        entries of ``classes`` when the model has them."""
        index = np.argmax(self.decision_function(X), axis=1)
        return index if self.classes is None else self.classes[index]

    def score(self, X, y):
        """Accuracy: the fraction of rows of ``X`` whose predicted class is ``y``.

        Labels are compared as values (``1 == 1.0``); a label the model does not
        know counts as wrong. ``y`` of another kind than the model's classes
        (strings against numbers) raises ValueError.
        """
        pred = self.predict(X)
        if self.classes is None:
            y = label_values(y, "y", pred.shape[0])  # a label >= n_classes counts as wrong
        return float(np.mean(matching_labels(pred, y, "y")))

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
        It is written to a temporary file first, flushed to disk and moved into
        place, so an existing file is never left half-written (it keeps its mode; a
        symbolic link is written through). Classes that would not read back exactly
        raise ValueError, classes or parameters of types JSON cannot hold raise
        TypeError (NumPy scalars are converted), before anything is written; see
        :func:`json_classes`.
        """
        path = os.fspath(path)
        check_weights(self.W1, self.b1, self.W2, self.b2)
        metadata = {
            "format": "fastmlp-model",
            "format_version": FORMAT_VERSION,
            "fastmlp_version": __version__,
            "dtype": self.dtype.name,
            "n_features": self.n_features,
            "hidden": self.W1.shape[1],
            "n_classes": self.n_classes,
            "classes": None if self.classes is None else json_classes(self.classes),
            "params": self.params,
            "history": self.history,
            "best_epoch": self.best_epoch,
        }
        arrays = {name: np.ascontiguousarray(getattr(self, name)) for name in _WEIGHTS}
        document = np.array(_json_document(metadata))
        write_atomically(path, lambda f: np.savez(f, metadata=document, **arrays), binary=True)


def load(path):
    """Read a model written by :meth:`MLPModel.save`.

    No pickle is ever read, so loading can never run code. The archive's member
    names and every array's shape and dtype (from its header, against the
    metadata) are checked before any array is read, so a small damaged file
    cannot demand a large allocation. Missing or extra arrays, wrong shapes or
    dtypes, non-finite weights and damaged files raise ``ValueError`` saying
    what is wrong.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MLPModel

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not a fastmlp model file, is damaged, or is not a
        regular file (a folder or a FIFO, say).
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}") from None
    fix = "save the model again with MLPModel.save"
    with NpzArchive(path, "model file", "a readable fastmlp model file", fix) as archive:
        expected = {"metadata", *_WEIGHTS}
        if set(archive.names) != expected:
            raise ValueError(f"{path!r} is not a fastmlp model file: it holds arrays {sorted(archive.names)}, "
                             f"expected {sorted(expected)}")
        document = archive.read("metadata", lambda shape, dtype: None if shape == () and dtype.kind == "U"
                                else f"its metadata is a {dtype} array of shape {shape}, not a JSON text")
        metadata = _parse_metadata(str(document), path)
        dtype, (D, H, C) = _metadata_layout(metadata, path)
        shapes = {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}
        weights = []
        for name, shape in shapes.items():
            def check(found_shape, found_dtype, name=name, shape=shape):
                if found_shape != shape or found_dtype != dtype:
                    return (f"{name} has shape {found_shape} and dtype {found_dtype}, "
                            f"expected {shape} and {dtype}")
                return None
            arr = np.ascontiguousarray(archive.read(name, check))
            if not all_finite(arr):
                raise ValueError(f"{path!r}: {name} contains NaN or infinity")
            weights.append(arr)

    classes = metadata.get("classes")
    if classes is not None:
        if (not isinstance(classes, list) or len(classes) != C
                or not all(isinstance(c, (int, float, str, bool)) for c in classes)):
            raise ValueError(f"{path!r}: its metadata lists {_short(classes)} as classes; "
                             f"expected {C} labels (numbers or strings)")
        try:
            classes = _classes_from_json(classes)
        except ValueError as exc:
            raise ValueError(f"{path!r}: its metadata's classes {_short(classes)} are not valid: {exc}") from None
    history = metadata.get("history", {})
    if not isinstance(history, dict) or not all(
            isinstance(history.get(k, []), list)
            and all(isinstance(v, (int, float)) for v in history.get(k, []))
            for k in HISTORY_KEYS):
        raise ValueError(f"{path!r}: its metadata's history is not lists of numbers per epoch")
    params = metadata.get("params", {})
    if not isinstance(params, dict):
        raise ValueError(f"{path!r}: its metadata's params is {_short(params)}, not a mapping")
    return MLPModel(*weights,
                    history={k: list(history.get(k, [])) for k in HISTORY_KEYS},
                    params=params, classes=classes, best_epoch=_best_epoch(metadata.get("best_epoch"), path))


def _short(value, limit=200):
    """``repr(value)``, cut to ``limit`` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _parse_metadata(text, path):
    """The metadata JSON document of the model file ``path`` (a dict), checked for format."""
    try:
        metadata = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValueError(f"{path!r}: its metadata is not valid JSON ({reason})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != "fastmlp-model":
        raise ValueError(f"{path!r}: its metadata does not describe a fastmlp model")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} has model format version {_short(metadata.get('format_version'))}; "
                         f"this fastmlp ({__version__}) reads version {FORMAT_VERSION}")
    return metadata


def _metadata_layout(metadata, path):
    """``(dtype, (n_features, hidden, n_classes))`` from a model file's metadata."""
    try:
        dtype = np.dtype(metadata["dtype"])
    except (KeyError, TypeError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{path!r}: its metadata lacks a valid dtype ({exc})") from None
    if not any(dtype == d for d in FLOAT_DTYPES):
        raise ValueError(f"{path!r}: dtype {dtype} is not float32 or float64")
    sizes = [metadata.get(k) for k in ("n_features", "hidden", "n_classes")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise ValueError(f"{path!r}: its metadata gives sizes (n_features, hidden, n_classes) = "
                         f"{_short(tuple(sizes))}; expected positive integers")
    return dtype, tuple(sizes)


def check_weights(W1, b1, W2, b2):
    """The four weight arrays, checked: one float dtype, consistent shapes, finite.

    Arrays are not copied (``numpy.asarray``): the fit's model shares them with
    the training step.
    """
    arrays = {"W1": np.asarray(W1), "b1": np.asarray(b1), "W2": np.asarray(W2), "b2": np.asarray(b2)}
    dtype = arrays["W1"].dtype
    if not any(dtype == d for d in FLOAT_DTYPES):
        raise TypeError(f"W1 must be a float32 or float64 array, got dtype {dtype}; "
                        f"convert the weights with .astype(numpy.float64)")
    for name, arr in arrays.items():
        if arr.dtype != dtype:
            raise TypeError(f"{name} has dtype {arr.dtype} but W1 has {dtype}; give all four "
                            f"weight arrays one dtype (float32 or float64)")
    W1, b1, W2, b2 = arrays.values()
    if W1.ndim != 2 or W2.ndim != 2 or b1.ndim != 1 or b2.ndim != 1 or 0 in W1.shape or 0 in W2.shape:
        raise ValueError(f"W1, b1, W2, b2 must be non-empty arrays of shapes (D, H), (H,), (H, C), "
                         f"(C,); got {W1.shape}, {b1.shape}, {W2.shape}, {b2.shape}")
    H, C = W1.shape[1], W2.shape[1]
    for name, shape in (("b1", (H,)), ("W2", (H, C)), ("b2", (C,))):
        if arrays[name].shape != shape:
            raise ValueError(f"{name} has shape {arrays[name].shape} but W1 {W1.shape} and W2 "
                             f"{W2.shape} need {shape}")
    for name, arr in arrays.items():
        if not all_finite(arr):
            raise ValueError(f"{name} contains NaN or infinity")
    return W1, b1, W2, b2


def json_classes(classes):
    """Class labels as a JSON list that :func:`load` turns back into exactly these labels.

    Numbers (int64 or uint64 range, or floats), strings, or bools, all of one kind.
    Labels that would come back changed or merged (NaN, a string's trailing NUL,
    ints beyond 64 bits, ints and floats mixed) raise ValueError naming them;
    labels of other types (bytes, complex, dates, objects) raise TypeError.
    """
    labels = np.asarray(classes).tolist()
    fix = "encode the labels as strings or ints (e.g. [str(c) for c in classes]) before saving"
    bad = [c for c in labels if not isinstance(c, (int, float, str, bool))]
    if bad:
        raise TypeError(f"classes of type {type(bad[0]).__name__} ({_short(bad[0])}) cannot be "
                        f"saved in a model file; {fix}")
    try:
        restored = _classes_from_json(labels).tolist()
    except ValueError as exc:
        raise ValueError(f"classes cannot be saved: {exc}; {fix}") from None
    same = len(restored) == len(labels) and all(
        type(a) is type(b) and a == b for a, b in zip(restored, labels))
    if not same or len(set(restored)) != len(restored):
        changed = [b for a, b in zip(restored, labels) if not (type(a) is type(b) and a == b)]
        raise ValueError(f"classes cannot be saved exactly (they would read back changed or merged, "
                         f"e.g. {_short(changed[:3] if changed else labels)}); {fix}")
    return labels


def _classes_from_json(labels):
    """The class array for a JSON list of labels (as :func:`json_classes` writes it)."""
    kinds = {bool if isinstance(c, bool) else int if isinstance(c, int) else type(c) for c in labels}
    if len(kinds) > 1 and kinds != {int, float}:
        raise ValueError(f"labels of several kinds ({', '.join(sorted(k.__name__ for k in kinds))})")
    if kinds == {int}:
        if all(-2**63 <= c < 2**63 for c in labels):
            return np.array(labels, dtype=np.int64)
        if all(0 <= c < 2**64 for c in labels):
            return np.array(labels, dtype=np.uint64)
        raise ValueError("integer labels beyond the 64-bit range")
    if kinds == {int, float}:
        raise ValueError("ints and floats mixed")
    return np.array(labels, dtype={bool: bool, float: np.float64, str: str}.get(kinds.pop(), None))


def _json_document(metadata):
    """``json.dumps(metadata)``, with NumPy scalars and arrays (as in ``params``) converted."""
    def convert(value):
        if isinstance(value, (np.generic, np.ndarray)) and value.dtype.kind in "biufU":
            return value.tolist()
        raise TypeError(f"model params and history must be JSON values (numbers, strings, lists, "
                        f"dicts); {_short(value)} of type {type(value).__name__} is not")
    return json.dumps(metadata, default=convert)


def _best_epoch(value, path):
    """A model file's ``best_epoch``: None or a positive int."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError(f"{path!r}: its metadata gives best_epoch {value!r}; expected a positive integer or null")
