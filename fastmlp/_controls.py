"""Training controls around the SGD step: their checks, the learning-rate schedule, the
stopping rule with its validation split, and the sample weights.

The step itself (``fastmlp.reference`` and the compiled ``fastmlp._sgd``) only sees a
learning rate per epoch, the rows to visit, a weight per row and, with momentum, the
velocities. Everything that decides those lives here, shared by both backends:

- :class:`Controls`: the checked settings of one fit.
- :class:`TrainingState`: what carries over from epoch to epoch *and* across
  continued fits (``fit(init=model)``, ``MLPClassifier.partial_fit`` and
  ``warm_start``): the velocities, the samples seen ``t``, the adaptive rate and the
  no-improvement counter.
- :func:`sample_weights`: ``sample_weight`` times ``class_weight``.
- :func:`validation_split`: the stratified hold-out of early stopping.
"""

import dataclasses
import math
import numbers

import numpy as np

from ._threads import aligned_empty
from ._validation import check_float

SCHEDULES = ("constant", "invscaling", "adaptive")
#: ``n_iter_no_change`` used when it is None but a rule needs one (scikit-learn's default).
DEFAULT_PATIENCE = 10
#: The adaptive schedule stops training when the rate has fallen to this and it would fall again.
MIN_ADAPTIVE_LR = 1e-6
#: The adaptive schedule divides the rate by this each time the score stalls.
ADAPTIVE_DIVISOR = 5.0


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


@dataclasses.dataclass(frozen=True)
class Controls:
    """The checked training controls of one fit (see :func:`fastmlp.fit`)."""

    momentum: float = 0.0
    nesterov: bool = False
    lr_schedule: str = "constant"
    power_t: float = 0.5
    early_stopping: bool = False
    validation_fraction: float = 0.1
    n_iter_no_change: int | None = None
    tol: float = 1e-4

    @classmethod
    def checked(cls, momentum=0.0, nesterov=False, lr_schedule="constant", power_t=0.5,
                early_stopping=False, validation_fraction=0.1, n_iter_no_change=None, tol=1e-4):
        """The controls after checking each; a bad one raises ValueError/TypeError naming it."""
        momentum = check_float(momentum, "momentum", positive=False)
        if not momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}; 0.9 is a common choice")
        nesterov = _check_bool(nesterov, "nesterov")
        if not isinstance(lr_schedule, str) or lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {lr_schedule!r}")
        power_t = check_float(power_t, "power_t", positive=False)
        early_stopping = _check_bool(early_stopping, "early_stopping")
        validation_fraction = check_float(validation_fraction, "validation_fraction", positive=True)
        if not validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
        if n_iter_no_change is not None:
            if isinstance(n_iter_no_change, bool) or not isinstance(n_iter_no_change, numbers.Integral):
                raise TypeError(f"n_iter_no_change must be an integer >= 1 or None, got {n_iter_no_change!r}")
            if n_iter_no_change < 1:
                raise ValueError(f"n_iter_no_change must be an integer >= 1 or None, got {n_iter_no_change}")
            n_iter_no_change = int(n_iter_no_change)
        tol = check_float(tol, "tol", positive=False)
        return cls(momentum, nesterov, lr_schedule, power_t, early_stopping, validation_fraction,
                   n_iter_no_change, tol)

    @property
    def patience(self):
        """``n_iter_no_change``, or 10 when it is None."""
        return DEFAULT_PATIENCE if self.n_iter_no_change is None else self.n_iter_no_change

    @property
    def watches_score(self):
        """Whether a no-improvement counter runs: with early stopping, the adaptive
        schedule, or an ``n_iter_no_change`` given for the training loss."""
        return self.early_stopping or self.lr_schedule == "adaptive" or self.n_iter_no_change is not None


class TrainingState:
    """What an SGD run carries from one epoch to the next and into a continued fit.

    Attributes
    ----------
    velocities : tuple of 4 ndarrays or None
        The momentum velocities of ``(W1, b1, W2, b2)`` (None until momentum is used).
    t : int
        Training samples seen so far (the ``t`` of the ``invscaling`` schedule).
    adaptive_lr : float or None
        The ``adaptive`` schedule's current rate (None: the fit's ``lr``).
    base_lr : float or None
        The ``lr`` the adaptive rate started from; another ``lr`` restarts it.
    no_improvement_count : int
        Consecutive epochs whose monitored score did not improve by ``tol``.
    best_loss : float
        The lowest training loss seen (the monitored score without early stopping).
    """

    def __init__(self):
        self.velocities = None
        self.t = 0
        self.adaptive_lr = None
        self.base_lr = None
        self.no_improvement_count = 0
        self.best_loss = math.inf

    def copy(self):
        """A deep copy (velocities included), so a continued fit never changes its source."""
        new = TrainingState()
        new.__dict__.update(self.__dict__)
        if self.velocities is not None:
            new.velocities = tuple(v.copy() for v in self.velocities)
        return new

    def prepare(self, params, controls, lr):
        """Ready the state for a fit: velocities of the params' shapes and dtype when
        momentum is on (kept from a previous fit when they fit), the adaptive rate.
        The velocities are fresh arrays starting on a cache line, like the weights: each
        hidden slice's part is updated by the thread that owns the slice."""
        if controls.momentum > 0:
            fits = (self.velocities is not None
                    and all(v.shape == p.shape for v, p in zip(self.velocities, params)))
            old = self.velocities if fits else (None,) * len(params)
            self.velocities = tuple(aligned_empty(p.shape, p.dtype) for p in params)
            for v, o in zip(self.velocities, old):
                if o is None:
                    v[...] = 0
                else:
                    np.copyto(v, o, casting="unsafe")
        if self.base_lr != lr:
            self.base_lr, self.adaptive_lr = lr, None

    def epoch_lr(self, controls, lr):
        """The learning rate of the next epoch.

        ``constant``: ``lr``. ``invscaling``: ``lr / (t + 1) ** power_t``, ``t`` the
        samples seen before the epoch. ``adaptive``: ``lr``, divided by 5 each time
        the score stalled (see :meth:`end_epoch`).
        """
        if controls.lr_schedule == "invscaling":
            return lr / (self.t + 1) ** controls.power_t
        if controls.lr_schedule == "adaptive" and self.adaptive_lr is not None:
            return self.adaptive_lr
        return lr

    def end_epoch(self, controls, n_samples, lr_used, loss, val_score=None, best_val=-math.inf):
        """Count the epoch's samples and update the no-improvement counter; return
        whether training stops here.

        The monitored score is ``val_score`` with early stopping, else the training
        ``loss``: an epoch counts as no improvement when the score is not better than
        the best so far by ``tol`` (scikit-learn's rule). When the count exceeds
        ``patience``: the adaptive schedule divides the rate by 5, or stops once it is
        <= 1e-6; otherwise training stops (early stopping or ``n_iter_no_change``).
        """
        self.t += n_samples
        if not controls.watches_score:
            return False
        if controls.early_stopping:
            stalled = val_score < best_val + controls.tol
        else:
            stalled = loss > self.best_loss - controls.tol
            self.best_loss = min(self.best_loss, loss)
        self.no_improvement_count = self.no_improvement_count + 1 if stalled else 0
        if self.no_improvement_count <= controls.patience:
            return False
        if controls.lr_schedule == "adaptive":
            if lr_used <= MIN_ADAPTIVE_LR:
                return True
            self.adaptive_lr = lr_used / ADAPTIVE_DIVISOR
            self.no_improvement_count = 0
            return False
        return True


def sample_weights(sample_weight, class_weight, y, n_classes):
    """The weight of each row: ``sample_weight`` times ``class_weight[y]``, float64, or None.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
        Non-negative, finite. Never modified.
    class_weight : None, "balanced" or dict
        ``"balanced"`` gives class c the weight ``n_samples / (n_present * count(c))``,
        counted over ``y`` (the classes present in it); a dict maps a label
        ``0..n_classes-1`` to its weight (labels not in it keep 1).
    y : ndarray of int64, labels ``0..n_classes-1``
    n_classes : int

    Returns
    -------
    ndarray of float64, shape (n_samples,), or None when neither is given.
    """
    n_samples = y.shape[0]
    weights = None
    if sample_weight is not None:
        arr = np.asarray(sample_weight)
        if arr.dtype.kind not in "biuf" or arr.dtype.kind == "b":
            raise TypeError(f"sample_weight must hold real numbers, got dtype {arr.dtype}")
        if arr.ndim == 0:
            arr = np.full(n_samples, arr)
        if arr.shape != (n_samples,):
            raise ValueError(f"sample_weight must have shape ({n_samples},): one weight per row of X, "
                             f"got shape {arr.shape}")
        weights = np.array(arr, dtype=np.float64)
        if not np.isfinite(weights).all():
            raise ValueError("sample_weight contains NaN or infinity")
        if (weights < 0).any():
            raise ValueError(f"sample_weight must be >= 0, got {weights.min()}")
    if class_weight is not None:
        per_class = class_weights(class_weight, y, n_classes)
        weights = per_class[y] if weights is None else weights * per_class[y]
    if weights is not None and not weights.sum() > 0:
        raise ValueError("the sample weights (sample_weight times class_weight) sum to 0: "
                         "at least one row needs a positive weight")
    return weights


def class_weights(class_weight, y, n_classes):
    """One weight per class ``0..n_classes-1`` from ``"balanced"`` or a dict (see :func:`sample_weights`)."""
    counts = np.bincount(y, minlength=n_classes)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}, "
                             f"got {class_weight!r}")
        present = counts > 0
        per_class = np.ones(n_classes)
        per_class[present] = y.shape[0] / (np.count_nonzero(present) * counts[present])
        return per_class
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}, "
                        f"got {type(class_weight).__name__}")
    per_class = np.ones(n_classes)
    for label, weight in class_weight.items():
        if (isinstance(label, (bool, np.bool_)) or not isinstance(label, numbers.Integral)
                or not 0 <= label < n_classes):
            raise ValueError(f"class_weight has the key {label!r}, which is not a class label "
                             f"0..{n_classes - 1}")
        per_class[int(label)] = check_float(weight, f"class_weight[{label!r}]", positive=False)
    return per_class


def validation_split(y, fraction, rng, n_classes):
    """Row indices ``(train, validation)`` of a stratified hold-out, each sorted.

    ``ceil(fraction * n)`` rows are held out (at least 2, and at least one row is
    left to train on); each class gives its share of them, rounded by largest
    remainder, drawn at random with ``rng``.
    """
    n = y.shape[0]
    n_val = math.ceil(fraction * n)
    if n_val < 2 or n_val >= n:
        raise ValueError(f"validation_fraction={fraction} of {n} samples gives a validation set of "
                         f"{n_val}; early stopping needs at least 2 validation samples and one to "
                         f"train on: change validation_fraction or use more data")
    counts = np.bincount(y, minlength=n_classes)
    exact = n_val * counts / n
    share = np.floor(exact).astype(np.int64)
    remainder_order = np.argsort(-(exact - share), kind="stable")
    share[remainder_order[:n_val - share.sum()]] += 1
    val = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:share[c]] for c in range(n_classes)])
    val = np.sort(val)
    train = np.setdiff1d(np.arange(n), val, assume_unique=True)
    return train, val


def weighted_accuracy(predicted, y, weights=None):
    """The fraction of rows predicted right; with ``weights``, their share of the weight."""
    right = predicted == y
    if weights is None:
        return float(np.mean(right))
    return float(np.sum(weights[right]) / np.sum(weights))
