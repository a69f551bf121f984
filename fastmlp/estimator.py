"""``fastmlp.MLPClassifier``: the network as a scikit-learn estimator.

It trains exactly what :func:`fastmlp.fit` trains (the seed's cost, plain SGD),
with scikit-learn's conventions around it: any label type through ``classes_``,
input checking through ``validate_data``, ``partial_fit``, ``warm_start``,
cloning, pickling, pipelines and grid searches. Hyperparameter sweeps scale out
with ``GridSearchCV(n_jobs=...)`` or any joblib backend: each fit runs in its own
worker, and the compiled step releases the GIL so thread-based backends overlap too
(set ``n_threads=1`` when several fits share the cores).
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._fit import fit as _fit
from ._model import MLPModel


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Two-layer network ``softmax(relu(X W1 + b1) W2 + b2)`` trained by minibatch SGD.

    Each step minimises ``-sum log softmax(logits)[y] + reg * (||W1||^2 + ||W2||^2)``
    over the batch (summed, biases not regularized) with ``W -= lr * dW``; see
    :mod:`fastmlp.reference`. To match scikit-learn's own ``MLPClassifier(solver="sgd",
    momentum=0)``, use its ``learning_rate_init = lr * batch_size`` and ``alpha = 2 * reg``.

    Parameters
    ----------
    hidden : int, default 128
        Hidden units.
    epochs : int, default 200
        Passes over the data in :meth:`fit`.
    batch_size : int, default 30
    lr : float, default 1e-4
        Learning rate (on the summed batch loss).
    reg : float, default 1e-2
        L2 strength on the two weight matrices.
    shuffle : bool, default True
        Shuffle the rows every epoch.
    random_state : int, RandomState, Generator or None, default None
        Seeds the initial weights (He-normal) and the shuffling. An int gives the
        same model as ``fastmlp.fit(..., seed=random_state)``.
    dtype : {None, "float32", "float64"}, default None
        Training dtype; None follows X (float32 stays float32, anything else float64).
    backend : {"cython", "numpy"}, default "cython"
        Compiled path or NumPy reference.
    n_threads : int or None, default None
        Threads of the compiled path (None: the available cores).
    progress : bool, default False
        A tqdm progress bar over epochs.
    warm_start : bool, default False
        When fitted already, :meth:`fit` continues from the current weights (the
        classes must be the same) instead of starting afresh.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str (when X had string column names)
    W1_, b1_, W2_, b2_ : ndarrays
        The fitted weights, as in :class:`fastmlp.MLPModel`.
    n_threads_ : int
        The thread count of the last :meth:`fit` or :meth:`partial_fit`: the slices
        its hidden units were split into, each run by one thread at most (with
        ``n_threads=None``: the available cores, or fewer under ``FASTMLP_NUM_THREADS``,
        ``OMP_NUM_THREADS`` or ``threadpool_limits``); 1 for the NumPy backend.
    history_ : dict of lists
        ``loss``, ``train_acc`` (and ``test_acc``, empty here) per epoch, over every
        :meth:`fit` (with ``warm_start``) or :meth:`partial_fit` call since the weights
        were last initialised.
    """

    def __init__(self, hidden=128, epochs=200, batch_size=30, lr=1e-4, reg=1e-2, shuffle=True,
                 random_state=None, dtype=None, backend="cython", n_threads=None, progress=False,
                 warm_start=False):
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.reg = reg
        self.shuffle = shuffle
        self.random_state = random_state
        self.dtype = dtype
        self.backend = backend
        self.n_threads = n_threads
        self.progress = progress
        self.warm_start = warm_start

    # ------------------------------------------------------------------ helpers
    def _dtype(self):
        return [np.float64, np.float32] if self.dtype is None else np.dtype(self.dtype)

    def _rng(self):
        """A Generator from ``random_state``; an int seeds it as fastmlp.fit's ``seed`` does."""
        rs = self.random_state
        if rs is None or isinstance(rs, (numbers.Integral, np.random.Generator)):
            return np.random.default_rng(rs)
        return np.random.default_rng(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _weights(self):
        return (self.W1_, self.b1_, self.W2_, self.b2_)

    def _train(self, X, y_encoded, epochs, init, rng):
        model = _fit(X, y_encoded, hidden=self.hidden, epochs=epochs, batch_size=self.batch_size,
                     lr=self.lr, reg=self.reg, n_classes=len(self.classes_), seed=rng,
                     shuffle=self.shuffle, init=init, dtype=X.dtype, backend=self.backend,
                     n_threads=self.n_threads, progress=self.progress)
        self.W1_, self.b1_, self.W2_, self.b2_ = model.W1, model.b1, model.W2, model.b2
        self.n_threads_ = model.params["n_threads"]
        if init is None:
            self.history_ = model.history
        else:
            for key, values in model.history.items():
                self.history_[key].extend(values)

    def _encode(self, y):
        """Labels as indices into ``classes_``; unknown labels are an error."""
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            raise ValueError(f"y contains labels not seen before: {np.unique(y[unknown])[:5].tolist()}; "
                             f"the classes are {self.classes_.tolist()}")
        return idx.astype(np.int64)

    # -------------------------------------------------------------- estimator API
    def fit(self, X, y):
        """Train for ``epochs`` epochs on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels of any type (ints, strings, ...).

        Returns
        -------
        self
        """
        continuing = self.warm_start and hasattr(self, "W1_")
        X, y = validate_data(self, X, y, reset=not continuing, dtype=self._dtype(), order="C")
        check_classification_targets(y)
        classes = np.unique(y)
        if continuing:
            if not np.all(np.isin(classes, self.classes_)):
                raise ValueError(f"warm_start: y has classes {classes.tolist()}, the model was fitted "
                                 f"on {self.classes_.tolist()}; refit with warm_start=False")
            init = tuple(w.astype(X.dtype) for w in self._weights())
        else:
            self.classes_ = classes
            init = None
        self._train(X, self._encode(y), self.epochs, init, self._rng())
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch of SGD on ``(X, y)``, starting from the current weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like, required on the first call
            Every label that will ever be seen (``y`` of one call may hold a subset).

        Returns
        -------
        self
        """
        first = not hasattr(self, "W1_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        X, y = validate_data(self, X, y, reset=first, dtype=self._dtype(), order="C")
        check_classification_targets(y)
        if first:
            classes = np.asarray(classes)
            check_classification_targets(classes)
            self.classes_ = np.unique(classes)
            self._partial_rng = self._rng()
            init = None
        else:
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes {np.unique(classes).tolist()} differ from the first call's "
                                 f"{self.classes_.tolist()}")
            if not hasattr(self, "_partial_rng"):  # fitted by fit(): continue its stream afresh
                self._partial_rng = self._rng()
            init = tuple(w.astype(X.dtype) for w in self._weights())
        self._train(X, self._encode(y), 1, init, self._partial_rng)
        return self

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        X = self._checked(X)
        return self.to_model().predict_proba(X)

    def predict(self, X):
        """The most probable class of each row (a label from ``classes_``)."""
        X = self._checked(X)
        return self.to_model().predict(X)

    def _checked(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=self.W1_.dtype, order="C")

    def to_model(self):
        """The fitted network as an :class:`fastmlp.MLPModel` (shares the weight arrays).

        Its ``save`` writes a model file with ``classes_`` in it, readable by
        :func:`fastmlp.load` and ``fastmlp predict``.
        """
        check_is_fitted(self)
        return MLPModel(*self._weights(), history=self.history_, classes=self.classes_,
                        params={k: v for k, v in self.get_params().items()
                                if isinstance(v, (int, float, str, bool, type(None)))})

    # ---------------------------------------------------------------- ONNX export
    # skl2onnx looks for these two methods on every estimator it converts, so
    # skl2onnx.to_onnx(pipeline, X[:1]) converts a pipeline that ends in (or holds)
    # an MLPClassifier with no registration step; fastmlp._onnx is imported only then.
    def onnx_shape_calculator(self):
        """skl2onnx's shape calculator: outputs ``label`` (N,) and ``probabilities`` (N, n_classes)."""
        from ._onnx import skl2onnx_shape_calculator
        return skl2onnx_shape_calculator

    def onnx_converter(self):
        """skl2onnx's converter: the network's ONNX nodes, in the dtype of their input."""
        from ._onnx import skl2onnx_converter
        return skl2onnx_converter
