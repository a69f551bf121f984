"""``fastmlp.MLPClassifier``: the network as a scikit-learn estimator.

It trains exactly what :func:`fastmlp.fit` trains (the seed's cost; plain SGD by
default, or momentum, schedules, early stopping and weights), with scikit-learn's
conventions around it: any label type through ``classes_``, input checking
(sparse input too) through ``validate_data``, ``sample_weight``, ``partial_fit``,
``warm_start``, cloning, pickling, pipelines and grid searches. Hyperparameter sweeps scale out
with ``GridSearchCV(n_jobs=...)`` or any joblib backend: each fit runs in its own
worker, and the compiled step releases the GIL so thread-based backends overlap too
(set ``n_threads=1`` when several fits share the cores).
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import reference
from ._fit import fit as _fit
from ._model import MLPModel, checked_logits
from ._validation import check_bool, resolve_dtype

_SPARSE = ("csr", "csc")
# What sklearn's validate_data does with X here: feature names and counts, numbers only
# (objects made float64; strings and complex refused), C order, the sparse formats
# fastmlp reads. Not the float dtype nor finiteness: fastmlp's own check
# (check_features, in fit and in checked_logits) converts X once, names an overflow
# of float32 as such, refuses NaN and infinity with the fix; a second pass over X by
# sklearn would only cost time (7-13% of a partial_fit call of 2580 MNIST rows).
_VALIDATE = dict(dtype="numeric", order="C", accept_sparse=_SPARSE, ensure_all_finite=False)


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Two-layer network ``softmax(relu(X W1 + b1) W2 + b2)`` trained by minibatch SGD.

    Each step minimises ``-sum log softmax(logits)[y] + reg * (||W1||^2 + ||W2||^2)``
    over the batch (summed, biases not regularized) with ``W -= lr * dW`` (or with
    momentum); see :mod:`fastmlp.reference`. To match scikit-learn's own
    ``MLPClassifier(solver="sgd")``, use its ``learning_rate_init = lr * batch_size``
    and ``alpha = 2 * reg`` (``momentum``, ``nesterovs_momentum``, ``learning_rate``,
    ``power_t`` carry over by name).

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
        Threads of the compiled path, at most, as in :func:`fastmlp.fit` (None: the
        available cores, within ``OMP_NUM_THREADS`` and threadpoolctl limits).
    progress : bool, default False
        A tqdm progress bar over epochs.
    warm_start : bool, default False
        When fitted already, :meth:`fit` continues from the current weights (the
        classes must be the same) instead of starting afresh. Unlike scikit-learn,
        the momentum velocities and the schedule's state continue too.
    momentum, nesterov, lr_schedule, power_t, early_stopping, validation_fraction, \
n_iter_no_change, tol, class_weight
        As in :func:`fastmlp.fit` (same defaults). The velocities, the samples seen
        (``invscaling``'s ``t``) and the adaptive rate carry over from one
        :meth:`partial_fit` call to the next and into ``warm_start`` fits.
        ``class_weight`` dict keys are labels of ``y``.

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
        ``loss``, ``train_acc``, ``val_acc`` (early stopping) and ``lr`` (and
        ``test_acc``, empty here) per epoch, over every :meth:`fit` (with
        ``warm_start``) or :meth:`partial_fit` call since the weights were last
        initialised.
    best_epoch_ : int or None
        With early stopping, the epoch (1-based, counted in ``history_``) whose
        weights were kept.
    """

    def __init__(self, hidden=128, epochs=200, batch_size=30, lr=1e-4, reg=1e-2, shuffle=True,
                 random_state=None, dtype=None, backend="cython", n_threads=None, progress=False,
                 warm_start=False, momentum=0.0, nesterov=False, lr_schedule="constant", power_t=0.5,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=None, tol=1e-4,
                 class_weight=None):
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
        self.momentum = momentum
        self.nesterov = nesterov
        self.lr_schedule = lr_schedule
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ------------------------------------------------------------------ helpers
    def _rng(self):
        """A Generator from ``random_state``; an int seeds it as fastmlp.fit's ``seed`` does."""
        rs = self.random_state
        if rs is None or isinstance(rs, (numbers.Integral, np.random.Generator)):
            return np.random.default_rng(rs)
        return np.random.default_rng(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _weights(self):
        return (self.W1_, self.b1_, self.W2_, self.b2_)

    def _class_weight(self):
        """``class_weight`` with its dict keys turned from labels into indices of ``classes_``."""
        if not isinstance(self.class_weight, dict):
            return self.class_weight
        keys = np.asarray(list(self.class_weight), dtype=self.classes_.dtype) if self.class_weight else []
        unknown = [k for k in keys if k not in self.classes_]
        if unknown:
            raise ValueError(f"class_weight has labels {unknown[:5]} that are not classes; "
                             f"the classes are {self.classes_.tolist()}")
        return {int(np.searchsorted(self.classes_, k)): w for k, w in zip(keys, self.class_weight.values())}

    def _train(self, X, y_encoded, dtype, epochs, continuing, rng, sample_weight):
        """Train ``epochs`` epochs in ``dtype``, from the current weights and training state
        when ``continuing``."""
        init = None
        if continuing:
            if self.hidden != self.W1_.shape[1]:
                raise ValueError(f"hidden={self.hidden!r} but the fitted network has {self.W1_.shape[1]} "
                                 f"hidden units, so training cannot continue from it; set hidden back, "
                                 f"or refit from scratch (warm_start=False, or a fresh estimator)")
            init = MLPModel(*(w.astype(dtype, copy=False) for w in self._weights()))  # fit copies init
            init.state = self._state
        model = _fit(X, y_encoded, hidden=self.hidden, epochs=epochs, batch_size=self.batch_size,
                     lr=self.lr, reg=self.reg, n_classes=len(self.classes_), seed=rng,
                     shuffle=self.shuffle, init=init, dtype=dtype, backend=self.backend,
                     n_threads=self.n_threads, progress=self.progress, momentum=self.momentum,
                     nesterov=self.nesterov, lr_schedule=self.lr_schedule, power_t=self.power_t,
                     early_stopping=self.early_stopping, validation_fraction=self.validation_fraction,
                     n_iter_no_change=self.n_iter_no_change, tol=self.tol,
                     sample_weight=sample_weight, class_weight=self._class_weight())
        self.W1_, self.b1_, self.W2_, self.b2_ = model.W1, model.b1, model.W2, model.b2
        self._state = model.state
        self.n_threads_ = model.params["n_threads"]
        done = len(self.history_["loss"]) if continuing else 0
        if not continuing:
            self.history_ = model.history
        else:
            for key, values in model.history.items():
                self.history_.setdefault(key, []).extend(values)
        self.best_epoch_ = None if model.best_epoch is None else done + model.best_epoch

    def _sample_weight(self, sample_weight, X):
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)

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
    def fit(self, X, y, sample_weight=None):
        """Train for ``epochs`` epochs on ``(X, y)`` (fewer when a stopping rule ends it).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels of any type (ints, strings, ...).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of each row: its loss and gradient are multiplied by it.

        Returns
        -------
        self
        """
        continuing = check_bool(self.warm_start, "warm_start") and hasattr(self, "W1_")
        X, y = validate_data(self, X, y, reset=not continuing, **_VALIDATE)
        dtype = resolve_dtype(self.dtype, X)   # float32 X stays float32 with dtype=None
        check_classification_targets(y)
        sample_weight = self._sample_weight(sample_weight, X)
        classes = np.unique(y)
        if continuing:
            if not np.all(np.isin(classes, self.classes_)):
                raise ValueError(f"warm_start: y has classes {classes.tolist()}, the model was fitted "
                                 f"on {self.classes_.tolist()}; refit with warm_start=False")
        else:
            self.classes_ = classes
        self._train(X, self._encode(y), dtype, self.epochs, continuing, self._rng(), sample_weight)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of SGD on ``(X, y)``, starting from the current weights and training state.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like, required on the first call
            Every label that will ever be seen (``y`` of one call may hold a subset).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of each row.

        Returns
        -------
        self
        """
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True (it trains one epoch "
                             "on the data given); use fit, or set early_stopping=False")
        first = not hasattr(self, "W1_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        X, y = validate_data(self, X, y, reset=first, **_VALIDATE)
        dtype = resolve_dtype(self.dtype, X)
        check_classification_targets(y)
        if classes is not None and np.ndim(classes) != 1:
            raise ValueError(f"classes must be a 1-D list of every label, got shape {np.shape(classes)}")
        sample_weight = self._sample_weight(sample_weight, X)
        if first:
            classes = np.asarray(classes)
            check_classification_targets(classes)
            self.classes_ = np.unique(classes)
            self._partial_rng = self._rng()
        else:
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes {np.unique(classes).tolist()} differ from the first call's "
                                 f"{self.classes_.tolist()}")
            if not hasattr(self, "_partial_rng"):  # fitted by fit(): continue its stream afresh
                self._partial_rng = self._rng()
        self._train(X, self._encode(y), dtype, 1, not first, self._partial_rng, sample_weight)
        return self

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        return reference.softmax(self._logits(X))

    def predict(self, X):
        """The most probable class of each row (a label from ``classes_``)."""
        index = np.argmax(self._logits(X), axis=1)   # checks that the model is fitted
        return self.classes_[index]

    def _logits(self, X):
        """The network's logits for ``X``, as :meth:`MLPModel.decision_function` gives them,
        from the fitted weights directly: no model is made per call (that validated the
        weights and read ``get_params`` every time, about half of a one-row predict's time)."""
        check_is_fitted(self)
        return checked_logits(validate_data(self, X, reset=False, **_VALIDATE), self._weights())

    def to_model(self):
        """The fitted network as an :class:`fastmlp.MLPModel` (shares the weight arrays).

        Its ``save`` writes a model file with ``classes_`` in it, readable by
        :func:`fastmlp.load` and ``fastmlp predict``.
        """
        check_is_fitted(self)
        return MLPModel(*self._weights(), history=self.history_, classes=self.classes_,
                        best_epoch=getattr(self, "best_epoch_", None),
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
