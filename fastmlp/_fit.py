"""``fastmlp.fit``: argument checks, initialisation, the epoch loop and its history."""

import contextlib
import numbers
import threading
import warnings

import numpy as np

from . import reference
from ._model import MLPModel, logits_in_blocks
from ._blas import BlasThreads, step_products
from ._threads import aligned_copy, n_slices
from ._validation import (
    all_finite,
    check_features,
    check_float,
    check_int,
    check_labels,
    resolve_dtype,
)

BACKENDS = ("cython", "numpy")


def init_params(rng, n_features, hidden, n_classes, dtype):
    """He-normal weights, zero biases: ``W1 ~ N(0, 2/D)``, ``W2 ~ N(0, 2/H)``.

    Drawn in float64 from ``rng`` and then cast, so both dtypes and both backends
    start from the same numbers for the same seed.
    """
    W1 = rng.standard_normal((n_features, hidden)) * np.sqrt(2.0 / n_features)
    W2 = rng.standard_normal((hidden, n_classes)) * np.sqrt(2.0 / hidden)
    return (W1.astype(dtype), np.zeros(hidden, dtype), W2.astype(dtype), np.zeros(n_classes, dtype))


def _generator(seed):
    """``numpy.random.default_rng(seed)``, with an error that names ``seed``."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return np.random.default_rng(seed)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer, a numpy.random.Generator or None, "
                        f"got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng(int(seed))


def _warn_unused_classes(y, n_classes):
    """Warn when labels inferred as ``0..max(y)`` leave classes without a sample.

    Labels 1..10 give 11 outputs, ``(y % 2) * 1000`` gives 1,001: most likely the
    labels are not ``0..C-1`` codes, and every unused class still costs an output unit.
    """
    counts = np.bincount(y, minlength=n_classes)
    unused = np.flatnonzero(counts == 0)
    if unused.size:
        shown = ", ".join(map(str, unused[:5].tolist())) + (", ..." if unused.size > 5 else "")
        warnings.warn(
            f"y's labels imply {n_classes} classes 0..{n_classes - 1} (max(y) + 1), but {unused.size} of "
            f"them have no sample ({shown}), and each still gets an output unit. Labels must be codes "
            f"0..C-1: for arbitrary labels use fastmlp.MLPClassifier (or "
            f"numpy.unique(y, return_inverse=True)); if the classes are meant, pass n_classes={n_classes}",
            UserWarning, stacklevel=3)


def _copy_init(init, n_features, hidden, n_classes, dtype):
    """Fresh C-contiguous copies of a user's ``init=(W1, b1, W2, b2)`` (never mutated)."""
    if not isinstance(init, (tuple, list)) or len(init) != 4:
        raise TypeError("init must be a tuple (W1, b1, W2, b2) of arrays")
    shapes = {"W1": (n_features, hidden), "b1": (hidden,), "W2": (hidden, n_classes), "b2": (n_classes,)}
    out = []
    for (name, shape), arr in zip(shapes.items(), init):
        try:
            given = np.asarray(arr)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"init {name} is not an array of numbers ({exc})") from None
        if given.dtype.kind not in "biuf":
            raise TypeError(f"init {name} must hold real numbers, got dtype {given.dtype}")
        a = np.array(given, dtype=dtype, order="C", copy=True)
        if a.shape != shape:
            raise ValueError(f"init {name} has shape {a.shape} but the data and hidden={hidden} "
                             f"need {shape} (n_features={n_features}, n_classes={n_classes})")
        if not np.isfinite(a).all():
            raise ValueError(f"init {name} contains NaN or infinity")
        out.append(a)
    return tuple(out)


class Trainer:
    """One fit's backend: epochs of SGD and the logits of held-out data.

    For ``"cython"`` the scratch memory and the thread team are made here, once
    per fit, and the hidden units are split into slices for the threads. Run the
    epochs inside :meth:`running`, which holds BLAS to one thread meanwhile.
    """

    def __init__(self, backend, batch_size, n_features, hidden, n_classes, dtype, n_threads,
                 adaptive_threads=True):
        self.backend = backend
        self.batch_size = batch_size
        self.n_threads = 1  # the fit's thread count: its hidden slices, each on at most one thread
        if backend == "cython":
            from . import _sgd
            self._sgd = _sgd
            slices = n_slices(n_threads, hidden)
            self.n_threads = slices
            columns, small_gemm = step_products(batch_size, n_features, hidden // slices)
            self.workspace = _sgd.Workspace(batch_size, n_features, hidden, n_classes, dtype, slices,
                                            columns, adaptive=adaptive_threads, small_gemm=small_gemm)

    def running(self):
        """Context for the epochs: the compiled step runs on fastmlp's own threads and
        calls BLAS from each, so BLAS stays single-threaded meanwhile (held for the
        whole loop, test-set evaluation included, since an idle BLAS pool spins for
        a while after each call and takes the cores)."""
        if self.backend == "cython":
            return BlasThreads.shared().single()
        return contextlib.nullcontext()

    def epoch(self, X, y, order, params, lr, reg):
        """One epoch over the rows ``order``, in place on ``params``: ``(data_loss, n_correct)``.

        Ctrl-C in the main thread stops the compiled step after a complete step
        (KeyboardInterrupt), leaving ``params`` consistent.
        """
        if self.backend == "numpy":
            return reference.sgd_epoch(X, y, order, params, lr, reg, self.batch_size)
        return self._sgd.sgd_epoch(X, y, order, *params, self.workspace, lr, reg,
                                   main_thread=threading.current_thread() is threading.main_thread())

    def logits(self, X, params):
        """``relu(X @ W1 + b1) @ W2 + b2`` for validated ``X`` of the training dtype."""
        if self.backend == "numpy":
            return logits_in_blocks(X, params)
        out = np.empty((X.shape[0], params[2].shape[1]), dtype=X.dtype)
        return self._sgd.forward_logits(X, *params, self.workspace, out)


def fit(X, y, *, hidden=128, epochs=200, batch_size=30, lr=1e-4, reg=1e-2,
        X_test=None, y_test=None, n_classes=None, seed=0, shuffle=True, init=None,
        dtype=None, backend="cython", n_threads=None, plot=None, progress=False, eval_every=1):
    """Train a two-layer network with minibatch SGD on the seed's cost.

    The network is ``softmax(relu(X @ W1 + b1) @ W2 + b2)``; each minibatch step
    minimises ``-sum log softmax(logits)[y] + reg * (||W1||^2 + ||W2||^2)``
    (summed over the batch, biases not regularized) with ``W -= lr * dW``. See
    :mod:`fastmlp.reference` for the equations.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Training data. Not modified; not copied when it already is a C-contiguous
        array of the training dtype.
    y : array-like of int, shape (n_samples,)
        Class labels ``0..C-1``.
    hidden : int, default 128
        Number of hidden units H.
    epochs : int, default 200
    batch_size : int, default 30
        Rows per SGD step; the last batch of an epoch may be smaller.
    lr : float, default 1e-4
        Learning rate.
    reg : float, default 1e-2
        L2 strength on W1 and W2.
    X_test, y_test : array-like, optional
        Held-out data; its accuracy after every epoch (see ``eval_every``) goes into
        ``history["test_acc"]``.
    n_classes : int, optional
        C; default ``max(y) + 1``.
    seed : int, numpy.random.Generator or None, default 0
        Seeds one ``numpy.random.Generator`` (or is that Generator) that draws the initial weights
        (He-normal ``W1 ~ N(0, 2/D)``, ``W2 ~ N(0, 2/H)``, zero biases) and then
        each epoch's shuffle; the same for both backends.
    shuffle : bool, default True
        Visit the rows in a new random order each epoch; if False, in order.
    init : tuple (W1, b1, W2, b2), optional
        Starting weights instead of the random ones (copied, never modified).
    dtype : float32 or float64, optional
        Training dtype; default float32 when X is float32, else float64.
    backend : {"cython", "numpy"}, default "cython"
        The compiled path, or the pure-NumPy reference (:mod:`fastmlp.reference`).
    n_threads : int, optional
        Threads for the compiled path (default: the CPUs this process may use, or
        fewer when OpenMP is limited: ``OMP_NUM_THREADS``, threadpoolctl, joblib). The
        hidden units are split evenly between them, so the count used is the largest
        one <= ``n_threads`` that divides ``hidden`` (with >= 8 units each). Results
        are bitwise reproducible for a given count; another count changes the order
        of one sum and so the last bits.
    plot : str or os.PathLike, optional
        Write the epoch plots (loss; training and test accuracy) to this PNG file.
    progress : bool, default False
        Show a tqdm progress bar over epochs with the loss and accuracies.
    eval_every : int, default 1
        Score ``X_test`` after every ``eval_every``-th epoch (and after the last);
        ``history["test_epoch"]`` lists the epochs scored. The seed's per-epoch test
        curve is the default; on small data an evaluation can cost as much as a
        large part of an epoch, so sweeps may score less often.

    Returns
    -------
    MLPModel
        The trained weights, their ``history``, and ``predict``/``score``/``save``.

    Raises
    ------
    FloatingPointError
        When the loss or the weights stop being finite (lr too large).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    dtype = resolve_dtype(dtype, X)
    X = check_features(X, "X", dtype)
    n_samples, n_features = X.shape
    inferred = n_classes is None
    y, n_classes = check_labels(y, "y", n_samples, n_classes)
    if inferred:
        _warn_unused_classes(y, n_classes)
    hidden = check_int(hidden, "hidden", minimum=1)
    epochs = check_int(epochs, "epochs", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_float(lr, "lr", positive=True)
    reg = check_float(reg, "reg", positive=False)
    if n_threads is not None:
        check_int(n_threads, "n_threads", minimum=1)
    eval_every = check_int(eval_every, "eval_every", minimum=1)
    if 2 * lr * reg >= 1:
        raise ValueError(f"lr * reg must be < 0.5 (got lr={lr}, reg={reg}): each step scales the "
                         f"weights by 1 - 2*lr*reg, which must stay positive; lower lr or reg")
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together (or neither)")
    if X_test is not None:
        X_test = check_features(X_test, "X_test", dtype, n_features=n_features)
        y_test, _ = check_labels(y_test, "y_test", X_test.shape[0], n_classes)
    batch_size = min(batch_size, n_samples)

    rng = _generator(seed)
    if init is None:
        params = init_params(rng, n_features, hidden, n_classes, dtype)
    else:
        params = _copy_init(init, n_features, hidden, n_classes, dtype)
    # Each weight array starts on a cache line: threads updating neighbouring
    # slices of W1 then never write the same line.
    params = tuple(aligned_copy(p) for p in params)
    trainer = Trainer(backend, batch_size, n_features, hidden, n_classes, dtype, n_threads)

    history = {"loss": [], "train_acc": [], "test_acc": [], "test_epoch": []}
    model = MLPModel(*params, history=history, params=dict(
        hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr, reg=reg, n_classes=n_classes,
        seed=seed if seed is None or isinstance(seed, numbers.Integral) else repr(seed),
        shuffle=bool(shuffle), dtype=dtype.name, backend=backend, n_threads=trainer.n_threads))

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, unit="epoch", desc="fastmlp")
    in_order = np.arange(n_samples, dtype=np.int64)
    try:
        with trainer.running():
            for epoch in range(1, epochs + 1):
                order = rng.permutation(n_samples) if shuffle else in_order
                data_loss, n_correct = trainer.epoch(X, y, order, params, lr, reg)
                if not np.isfinite(data_loss) or not all(all_finite(p) for p in params):
                    raise FloatingPointError(
                        f"training diverged in epoch {epoch}: the loss or the weights are no longer "
                        f"finite; use a smaller learning rate than lr={lr}")
                history["loss"].append(data_loss / n_samples)
                history["train_acc"].append(n_correct / n_samples)
                postfix = {"loss": f"{history['loss'][-1]:.4f}", "train_acc": f"{history['train_acc'][-1]:.4f}"}
                if X_test is not None and (epoch % eval_every == 0 or epoch == epochs):
                    predicted = np.argmax(trainer.logits(X_test, params), axis=1)
                    history["test_acc"].append(float(np.mean(predicted == y_test)))
                    history["test_epoch"].append(epoch)
                    postfix["test_acc"] = f"{history['test_acc'][-1]:.4f}"
                if bar is not None:
                    bar.set_postfix(postfix, refresh=False)
                    bar.update()
    finally:
        if bar is not None:
            bar.close()

    if plot is not None:
        from ._plot import plot_history
        data = f"{n_samples} samples × {n_features} features, {n_classes} classes"
        if X_test is not None:
            data += f", {len(X_test)} test samples"
        plot_history(history, plot, title=f"{data}\nhidden={hidden}, epochs={epochs}, "
                                          f"batch_size={batch_size}, lr={lr:g}, reg={reg:g}, {dtype.name}, "
                                          f"{backend}")
    return model
