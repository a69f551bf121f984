"""``fastmlp.fit``: argument checks, initialisation, the epoch loop and its history."""

import contextlib
import dataclasses
import numbers
import os
import threading
import warnings

import numpy as np


from . import reference
from ._divergence import DivergenceCheck
from ._controls import Controls, TrainingState, sample_weights, validation_split, weighted_accuracy
from ._model import MLPModel, logits_in_blocks
from ._blas import BlasThreads, rows_in_place_bytes, step_products
from ._plot import check_plot_path
from ._threads import aligned_copy, aligned_empty, n_slices
from ._validation import (
    check_bool,
    check_features,
    check_float,
    check_int,
    check_labels,
    issparse,
    resolve_dtype,
)

BACKENDS = ("cython", "numpy")
#: Rows of a sparse X made dense at a time for the compiled step (a whole number of batches).
SPARSE_BLOCK_ROWS = 4096


# Trainers of the compiled backend kept after their fit, by their arguments: the next
# fit of the same shape, slice count and dtype takes one instead of making a new one,
# and so finds its scratch memory allocated, its thread team started and its thread
# choice's measurements made (a fresh choice tries both thread counts first, which in
# an epoch of a few segments is a good part of it). Measured, MLPClassifier.partial_fit
# with one epoch of 2580 MNIST rows per call (seed shape): 12% less time per call;
# 5-epoch fits 4-7% less.
# At most POOLED_TRAINERS are kept, the most recently used, each holding at most
# POOLED_TRAINER_BYTES (a full-batch fit's buffers are not kept).
POOLED_TRAINERS = 4
POOLED_TRAINER_BYTES = 16 * 2**20
_pool_lock = threading.Lock()
_pooled = {}   # arguments -> Trainer, least recently returned first


def _take_trainer(backend, batch_size, n_features, hidden, n_classes, dtype, n_threads):
    """A trainer for a fit: a pooled one made with the same arguments (the slice count,
    not ``n_threads``, which may resolve differently from one fit to the next), or a new
    one. Each is used by one fit at a time: it leaves the pool while it trains."""
    if backend != "cython":
        return Trainer(backend, batch_size, n_features, hidden, n_classes, dtype, n_threads)
    slices = n_slices(n_threads, hidden)
    key = (batch_size, n_features, hidden, n_classes, np.dtype(dtype).name, slices)
    with _pool_lock:
        trainer = _pooled.pop(key, None)
    if trainer is None:   # n_threads=slices: the count resolved once, the key's
        trainer = Trainer(backend, batch_size, n_features, hidden, n_classes, dtype, slices)
        trainer.pool_key = key
    return trainer


def _return_trainer(trainer):
    """Keep a trainer whose fit is over for the next fit of its shape (see POOLED_TRAINERS)."""
    key = getattr(trainer, "pool_key", None)
    if key is None or trainer.workspace.nbytes > POOLED_TRAINER_BYTES:
        return
    with _pool_lock:
        _pooled.pop(key, None)   # an idle one of the same key (two fits ran at once) goes
        _pooled[key] = trainer   # last: the most recently used
        while len(_pooled) > POOLED_TRAINERS:
            del _pooled[next(iter(_pooled))]


def release_trainers():
    """Drop the pooled trainers (their memory and threads go with the last reference)."""
    with _pool_lock:
        _pooled.clear()


def _pool_after_fork_in_child():
    # Another thread may have held the lock at the fork; the trainers' teams have no
    # threads here (a workspace starts a new team when it next runs, see _sgd).
    global _pool_lock
    _pool_lock = threading.Lock()
    _pooled.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool_after_fork_in_child)


def init_params(rng, n_features, hidden, n_classes, dtype):
    """He-normal weights, zero biases: ``W1 ~ N(0, 2/D)``, ``W2 ~ N(0, 2/H)``.

    Drawn in float64 from ``rng`` and then cast, so both dtypes and both backends
    start from the same numbers for the same seed. Each array starts on a cache
    line, as the compiled step wants its weights (see ``fit``).
    """
    W1 = rng.standard_normal((n_features, hidden)) * np.sqrt(2.0 / n_features)
    W2 = rng.standard_normal((hidden, n_classes)) * np.sqrt(2.0 / hidden)
    return tuple(aligned_copy(p) for p in (W1.astype(dtype), np.zeros(hidden, dtype),
                                             W2.astype(dtype), np.zeros(n_classes, dtype)))


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
    """Fresh C-contiguous, cache-line-aligned copies of a user's ``init=(W1, b1, W2, b2)``
    (never mutated)."""
    if isinstance(init, MLPModel):
        init = (init.W1, init.b1, init.W2, init.b2)
    if not isinstance(init, (tuple, list)) or len(init) != 4:
        raise TypeError("init must be a tuple (W1, b1, W2, b2) of arrays or an MLPModel")
    shapes = {"W1": (n_features, hidden), "b1": (hidden,), "W2": (hidden, n_classes), "b2": (n_classes,)}
    out = []
    for (name, shape), arr in zip(shapes.items(), init):
        try:
            given = np.asarray(arr)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"init {name} is not an array of numbers ({exc})") from None
        if given.dtype.kind not in "biuf":
            raise TypeError(f"init {name} must hold real numbers, got dtype {given.dtype}")
        a = aligned_empty(given.shape, dtype)   # a cache-line-aligned copy, as init_params makes
        with np.errstate(over="ignore"):
            np.copyto(a, given, casting="unsafe")
        if a.shape != shape:
            raise ValueError(f"init {name} has shape {a.shape} but the data and hidden={hidden} "
                             f"need {shape} (n_features={n_features}, n_classes={n_classes})")
        if not np.isfinite(a).all():
            if given.dtype.kind == "f" and np.isfinite(given).all():
                raise ValueError(f"init {name} holds values too large for {np.dtype(dtype).name} "
                                 f"(|x| > {np.finfo(dtype).max:.3g}); use dtype=float64 or smaller weights")
            raise ValueError(f"init {name} contains NaN or infinity")
        out.append(a)
    return tuple(out)


class Trainer:
    """One fit's backend: epochs of SGD and the logits of held-out data.

    For ``"cython"`` the scratch memory and the thread team are made here, once
    per fit, and the hidden units are split into slices for the threads. Run the
    epochs inside :meth:`running`, which holds BLAS to one thread meanwhile.
    ``max_threads`` and ``small_gemm`` pin what fit leaves to the workspace and to
    ``step_products`` (see ``_sgd.Workspace``), for benchmarks.
    """

    def __init__(self, backend, batch_size, n_features, hidden, n_classes, dtype, n_threads,
                 adaptive_threads=True, max_threads=None, small_gemm=None):
        self.backend = backend
        self.batch_size = batch_size
        self.n_threads = 1  # the fit's thread count: its hidden slices, each on at most one thread
        if backend == "cython":
            from . import _sgd
            self._sgd = _sgd
            slices = n_slices(n_threads, hidden)
            self.n_threads = slices
            columns, fits_kernels = step_products(batch_size, n_features, hidden // slices,
                                                  np.dtype(dtype).itemsize)
            self.workspace = _sgd.Workspace(batch_size, n_features, hidden, n_classes, dtype, slices,
                                            columns, max_threads=max_threads, adaptive=adaptive_threads,
                                            small_gemm=fits_kernels if small_gemm is None else small_gemm,
                                            rows_in_place_bytes=rows_in_place_bytes())

    def running(self):
        """Context for the epochs: the compiled step runs on fastmlp's own threads and
        calls BLAS from each, so BLAS stays single-threaded meanwhile (held for the
        whole loop, test-set evaluation included, since an idle BLAS pool spins for
        a while after each call and takes the cores)."""
        if self.backend == "cython":
            return BlasThreads.shared().single()
        return contextlib.nullcontext()

    def epoch(self, X, y, order, params, lr, reg, sample_weight=None, velocities=None,
              momentum=0.0, nesterov=False):
        """One epoch over the rows ``order``, in place on ``params`` (and ``velocities``):
        ``(data_loss, n_correct)``, both weighted by ``sample_weight`` when given.

        Ctrl-C in the main thread stops the compiled step after a complete step
        (KeyboardInterrupt), leaving ``params`` consistent.
        """
        if self.backend == "numpy":
            return reference.sgd_epoch(X, y, order, params, lr, reg, self.batch_size,
                                       velocities=velocities, momentum=momentum, nesterov=nesterov,
                                       sample_weight=sample_weight)
        controls = {"main_thread": threading.current_thread() is threading.main_thread()}
        if sample_weight is not None:
            controls["sample_weight"] = sample_weight
        if momentum > 0:
            controls.update(velocities=velocities, momentum=momentum, nesterov=nesterov)
        if not issparse(X):
            return self._sgd.sgd_epoch(X, y, order, *params, self.workspace, lr, reg, **controls)
        # A sparse X goes through in blocks of whole batches, each made dense on its own.
        block = self.batch_size * max(1, SPARSE_BLOCK_ROWS // self.batch_size)
        dense = np.empty((min(block, len(order)), X.shape[1]), dtype=X.dtype)
        data_loss, n_correct = 0.0, 0
        for start in range(0, len(order), block):
            rows = order[start:start + block]
            X_rows = X[rows].toarray(out=dense[:len(rows)])
            if sample_weight is not None:
                controls["sample_weight"] = sample_weight[rows]
            loss, correct = self._sgd.sgd_epoch(X_rows, y[rows], np.arange(len(rows), dtype=np.int64),
                                                *params, self.workspace, lr, reg, **controls)
            data_loss += loss
            n_correct += correct
        return data_loss, n_correct

    def logits(self, X, params):
        """``relu(X @ W1 + b1) @ W2 + b2`` for validated ``X`` of the training dtype."""
        if self.backend == "numpy" or issparse(X):
            return logits_in_blocks(X, params)
        out = np.empty((X.shape[0], params[2].shape[1]), dtype=X.dtype)
        return self._sgd.forward_logits(X, *params, self.workspace, out)


def fit(X, y, *, hidden=128, epochs=200, batch_size=30, lr=1e-4, reg=1e-2,
        X_test=None, y_test=None, n_classes=None, seed=0, shuffle=True, init=None,
        dtype=None, backend="cython", n_threads=None, plot=None, progress=False, eval_every=1,
        momentum=0.0, nesterov=False, lr_schedule="constant", power_t=0.5,
        early_stopping=False, validation_fraction=0.1, n_iter_no_change=None, tol=1e-4,
        sample_weight=None, class_weight=None):
    """Train a two-layer network with minibatch SGD on the seed's cost.

    The network is ``softmax(relu(X @ W1 + b1) @ W2 + b2)``; each minibatch step
    minimises ``-sum log softmax(logits)[y] + reg * (||W1||^2 + ||W2||^2)``
    (summed over the batch, biases not regularized) with ``W -= lr * dW``, or with
    momentum. See :mod:`fastmlp.reference` for the equations. The defaults train
    the seed's plain SGD for a fixed number of epochs.

    Parameters
    ----------
    X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
        Training data. Not modified; not copied when it already is a C-contiguous
        array of the training dtype. A sparse ``X`` (CSR or CSC) is never made dense
        as a whole: each batch's rows are.
    y : array-like of int, shape (n_samples,)
        Class labels ``0..C-1``.
    hidden : int, default 128
        Number of hidden units H.
    epochs : int, default 200
        The most epochs to train (fewer when a stopping rule ends training).
    batch_size : int, default 30
        Rows per SGD step; the last batch of an epoch may be smaller.
    lr : float, default 1e-4
        Learning rate (of the first epoch, with a schedule).
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
        each epoch's shuffle; the same for both backends. The early-stopping split
        comes from a generator spawned from it, so the training stream is the same
        with and without it.
    shuffle : bool, default True
        Visit the rows in a new random order each epoch; if False, in order.
        (Only True or False: a string such as ``"no"`` is refused, not taken as true.)
    init : tuple (W1, b1, W2, b2) or MLPModel, optional
        Starting weights instead of the random ones (copied, never modified). An
        :class:`MLPModel` from an earlier fit also hands over its training state
        (momentum velocities, samples seen, the adaptive rate and no-improvement
        counter), so ``fit(..., epochs=1, init=model)`` continues that fit exactly.
    dtype : float32 or float64, optional
        Training dtype; default float32 when X is float32, else float64.
    backend : {"cython", "numpy"}, default "cython"
        The compiled path, or the pure-NumPy reference (:mod:`fastmlp.reference`).
    n_threads : int, optional
        Threads for the compiled path, at most (default: the CPUs this process may
        use, or fewer where limited by ``FASTMLP_NUM_THREADS``, ``OMP_NUM_THREADS`` or
        ``threadpoolctl.threadpool_limits``). The hidden units are split into that many
        equal slices, so the count used is the largest one <= ``n_threads`` that
        divides ``hidden`` (with >= 8 units each). The slice count fixes the result
        (bitwise reproducible; another count changes the order of one sum and so the
        last bits); how many threads run the slices is measured as the fit goes (one
        on a busy machine) and never changes a bit.
    plot : str or os.PathLike, optional
        Write the epoch plots (loss; training and test accuracy) to this PNG file.
        The path is checked before the first epoch (its folder must exist); if
        writing the plot still fails, a ``RuntimeWarning`` says why and the trained
        model is returned all the same.
    progress : bool, default False
        Show a tqdm progress bar over epochs with the loss and accuracies.
    eval_every : int, default 1
        Score ``X_test`` after every ``eval_every``-th epoch (and after the last);
        ``history["test_epoch"]`` lists the epochs scored. The seed's per-epoch test
        curve is the default; on small data an evaluation can cost as much as a
        large part of an epoch, so sweeps may score less often.
    momentum : float in [0, 1), default 0
        Momentum of scikit-learn's SGD rule on every parameter (``dW`` the full
        gradient, L2 included): ``V := momentum * V - lr * dW``, ``W := W + V``. The
        velocities start at zero and carry over into a fit continued with
        ``init=model``.
    nesterov : bool, default False
        Nesterov's momentum: ``W := W + momentum * V - lr * dW`` with the new ``V``.
    lr_schedule : {"constant", "invscaling", "adaptive"}, default "constant"
        ``"invscaling"``: an epoch's rate is ``lr / (t + 1) ** power_t``, ``t`` the
        training samples seen before it (counted across continued fits).
        ``"adaptive"``: ``lr`` while the monitored score improves; divided by 5 each
        time it has not improved by ``tol`` for more than ``n_iter_no_change`` epochs
        in a row (10 when None); once the rate is <= 1e-6 the next such stall stops
        training. The score is the validation accuracy with early stopping, else
        ``history["loss"]``. ``history["lr"]`` has each epoch's rate.
    power_t : float >= 0, default 0.5
        Exponent of ``"invscaling"``.
    early_stopping : bool, default False
        Hold out a stratified ``validation_fraction`` of the training data, score
        its (weighted) accuracy after each epoch into ``history["val_acc"]``, stop
        when it has not improved by ``tol`` for more than ``n_iter_no_change``
        epochs in a row (10 when None), and return the weights of the best epoch
        (``model.best_epoch``, 1-based).
    validation_fraction : float in (0, 1), default 0.1
        ``ceil(validation_fraction * n_samples)`` rows are held out (at least 2).
    n_iter_no_change : int >= 1 or None, default None
        Patience of the stopping rules. Without early stopping, a number here also
        stops training when the training loss has not improved by ``tol`` for more
        than that many epochs; None trains all ``epochs``.
    tol : float >= 0, default 1e-4
        Smallest improvement of the monitored score that counts.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weight per row: row i's loss and gradient are multiplied by
        it (the cost stays a sum; see :mod:`fastmlp.reference`). All ones give
        the unweighted fit bitwise.
    class_weight : None, "balanced" or dict, default None
        Multiplies into ``sample_weight``: ``"balanced"`` weighs class c by
        ``n_samples / (n_classes_present * count(c))`` over ``y``; a dict maps a
        label to its weight (others keep 1).

    Returns
    -------
    MLPModel
        The trained weights, their ``history`` (one entry per epoch: ``loss`` and
        ``train_acc`` weighted by the sample weights when given, ``test_acc``,
        ``val_acc`` and ``lr``), ``best_epoch``, and ``predict``/``score``/``save``.

    Raises
    ------
    FloatingPointError
        When training diverges (lr too large, or X unscaled), checked after every
        epoch: the loss or the weights stop being finite, the loss grows 1000-fold
        beyond its start, or the hidden layer dies (every ReLU output 0 for every
        training sample). See :class:`fastmlp._divergence.DivergenceCheck`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    dtype = resolve_dtype(dtype, X)
    X = check_features(X, "X", dtype, accept_sparse=True)
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
    controls = Controls.checked(momentum, nesterov, lr_schedule, power_t, early_stopping,
                                validation_fraction, n_iter_no_change, tol)
    weights = sample_weights(sample_weight, class_weight, y, n_classes)
    if n_threads is not None:
        check_int(n_threads, "n_threads", minimum=1)
    eval_every = check_int(eval_every, "eval_every", minimum=1)
    shuffle = check_bool(shuffle, "shuffle")
    progress = check_bool(progress, "progress")
    if plot is not None:
        check_plot_path(plot, "plot")
    if 2 * lr * reg >= 1:
        raise ValueError(f"lr * reg must be < 0.5 (got lr={lr}, reg={reg}): each step scales the "
                         f"weights by 1 - 2*lr*reg, which must stay positive; lower lr or reg")
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together (or neither)")
    if X_test is not None:
        X_test = check_features(X_test, "X_test", dtype, n_features=n_features, accept_sparse=True)
        y_test, _ = check_labels(y_test, "y_test", X_test.shape[0], n_classes)

    rng = _generator(seed)
    # The hold-out is drawn from a child of the seed's generator: spawning leaves
    # the parent's stream (initial weights, shuffles) as it is.
    validation = _Validation(X, y, weights, controls, rng, n_classes) if controls.early_stopping else None
    train_rows = np.arange(n_samples, dtype=np.int64) if validation is None else validation.train_rows
    n_train = len(train_rows)
    total_weight = n_train if weights is None else float(np.sum(weights[train_rows]))
    if not total_weight > 0:
        raise ValueError("the training rows left after the validation split all have weight 0")
    batch_size = min(batch_size, n_train)

    # Each weight array starts on a cache line: threads updating neighbouring slices
    # of W1 then never write the same line, and one thread's speed does not depend
    # on where the allocator put W1 (up to 1.25x apart at the seed's shape).
    if init is None:
        params = init_params(rng, n_features, hidden, n_classes, dtype)
    else:
        params = _copy_init(init, n_features, hidden, n_classes, dtype)
    state = init.state.copy() if isinstance(init, MLPModel) and init.state is not None else TrainingState()
    state.prepare(params, controls, lr)
    trainer = _take_trainer(backend, batch_size, n_features, hidden, n_classes, dtype, n_threads)

    history = {"loss": [], "train_acc": [], "test_acc": [], "test_epoch": [], "val_acc": [], "lr": []}
    model = MLPModel(*params, history=history, params=dict(
        hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr, reg=reg, n_classes=n_classes,
        seed=int(seed) if isinstance(seed, numbers.Integral) else None if seed is None else repr(seed),
        shuffle=bool(shuffle), dtype=dtype.name, backend=backend, n_threads=trainer.n_threads,
        **{k: v for k, v in dataclasses.asdict(controls).items() if v != getattr(Controls, k)},
        **({} if weights is None else {"weighted": True}),
        **({} if class_weight is None else {"class_weight": class_weight if isinstance(class_weight, str)
                                            else {str(k): float(v) for k, v in class_weight.items()}})))
    model.state = state

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, unit="epoch", desc="fastmlp")
    try:
        with trainer.running():
            # Inside: its set-up multiplies a sample of X by W1, and BLAS on several
            # threads then would leave its idle workers spinning on the cores for the
            # first tenth of a second or so of the epochs.
            divergence = DivergenceCheck(X, y, params, lr)
            for epoch in range(1, epochs + 1):
                order = train_rows[rng.permutation(n_train)] if shuffle else train_rows
                epoch_lr = state.epoch_lr(controls, lr)
                data_loss, n_correct = trainer.epoch(X, y, order, params, epoch_lr, reg, weights,
                                                     state.velocities, controls.momentum, controls.nesterov)
                divergence.after_epoch(epoch, data_loss / total_weight, params, epoch_lr)
                history["loss"].append(data_loss / total_weight)
                history["train_acc"].append(n_correct / total_weight)
                history["lr"].append(epoch_lr)
                postfix = {"loss": f"{history['loss'][-1]:.4f}", "train_acc": f"{history['train_acc'][-1]:.4f}"}
                val_acc = None
                if validation is not None:
                    val_acc = validation.score(trainer, params)
                    history["val_acc"].append(val_acc)
                    postfix["val_acc"] = f"{val_acc:.4f}"
                stop = state.end_epoch(controls, n_train, epoch_lr, history["loss"][-1], val_acc,
                                       validation.best_score if validation is not None else None)
                if validation is not None:
                    validation.keep_if_best(val_acc, epoch, params)
                if X_test is not None and (epoch % eval_every == 0 or epoch == epochs or stop):
                    predicted = np.argmax(trainer.logits(X_test, params), axis=1)
                    history["test_acc"].append(float(np.mean(predicted == y_test)))
                    history["test_epoch"].append(epoch)
                    postfix["test_acc"] = f"{history['test_acc'][-1]:.4f}"
                if bar is not None:
                    bar.set_postfix(postfix, refresh=False)
                    bar.update()
                if stop:
                    break
    finally:
        if bar is not None:
            bar.close()
        _return_trainer(trainer)

    if validation is not None and validation.best_epoch is not None:
        for p, best in zip(params, validation.best_params):
            p[...] = best
        model.best_epoch = validation.best_epoch
    if plot is not None:
        from ._plot import plot_title
        _plot_or_warn(history, plot, plot_title(n_samples, n_features, n_classes,
                                                None if X_test is None else len(X_test), model.params))
    return model


def _plot_or_warn(history, path, title=None):
    """Write the epoch plots; on failure warn (RuntimeWarning) instead of losing the model."""
    from ._plot import plot_history
    try:
        plot_history(history, path, title=title)
    except Exception as exc:  # an accessory: the trained model matters more
        warnings.warn(f"the epoch plots could not be written to {path!r} ({type(exc).__name__}: "
                      f"{exc}); the trained model is returned without them", RuntimeWarning,
                      stacklevel=3)


class _Validation:
    """Early stopping's hold-out: its rows, its (weighted) accuracy, the best epoch's weights."""

    def __init__(self, X, y, weights, controls, rng, n_classes):
        self.train_rows, rows = validation_split(y, controls.validation_fraction, rng.spawn(1)[0], n_classes)
        self.X, self.y = X[rows], y[rows]
        self.weights = None if weights is None else weights[rows]
        if self.weights is not None and not self.weights.sum() > 0:
            raise ValueError("the validation rows all have sample weight 0; early stopping cannot "
                             "score them (change validation_fraction or the weights)")
        self.best_score = -np.inf
        self.best_epoch = None
        self.best_params = None

    def score(self, trainer, params):
        """The (weighted) accuracy of ``params`` on the held-out rows."""
        predicted = np.argmax(trainer.logits(self.X, params), axis=1)
        return weighted_accuracy(predicted, self.y, self.weights)

    def keep_if_best(self, score, epoch, params):
        """Remember a copy of ``params`` when ``score`` beats every earlier epoch's."""
        if score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self.best_params = tuple(p.copy() for p in params)
