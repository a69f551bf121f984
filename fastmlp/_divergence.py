"""Telling a fit that has diverged from one that is learning, after every epoch.

A too-large learning rate does not always overflow: the loss may jump by orders
of magnitude and stay finite, or one wild step may push every hidden unit's
pre-activation below zero for every sample. Then ReLU passes no gradient back,
the hidden layer never recovers, and the network predicts one class forever.
:class:`DivergenceCheck` catches the three signs cheaply and raises
``FloatingPointError`` with the fix.
"""

import math

import numpy as np

from . import reference
from ._validation import all_finite, issparse

# The loss per sample may not exceed this many times its starting value (or log C,
# chance level, if larger). Normal runs stay within a small factor of it.
EXPLOSION_FACTOR = 1000.0
# Rows that estimate the starting loss. The estimate only sets a limit 1000 times
# above it, so 64 rows do; 256 made the estimate cost as much as a partial_fit
# epoch of 256 rows.
_SAMPLE_ROWS = 64
_FIRST_BLOCK = 16   # rows of the first block of the dead-layer scan; each next one doubles


class DivergenceCheck:
    """Raise ``FloatingPointError`` when a fit has diverged, checked after each epoch.

    Checked, in this order:

    1. the epoch's loss and the weights are finite;
    2. the epoch's mean loss per sample is at most ``EXPLOSION_FACTOR`` (1000) times
       ``max(initial loss, log C)``, the initial loss being that of the starting
       weights on the first 64 training rows;
    3. the hidden layer is not dead: some hidden unit has a positive pre-activation
       ``X @ W1 + b1`` for some training row. A dead layer passes no gradient, so
       ``b1`` (not regularized) stays bitwise the same through an epoch; only then
       are the rows scanned, in doubling blocks (16, 32, ...) that stop at the
       first positive entry. So a living layer costs a copy of ``b1`` per epoch,
       and a layer that died is reported one epoch later at the latest (with
       momentum, once its velocity has died down). Skipped
       when the layer is dead already at the start (e.g. all-zero features),
       which is no divergence.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The training data, validated.
    y : ndarray of int64
        Its labels.
    params : tuple (W1, b1, W2, b2)
        The starting weights.
    lr : float
        The learning rate, for the messages.
    """

    def __init__(self, X, y, params, lr):
        self.X, self.lr = X, lr
        n_classes = params[2].shape[1]
        with np.errstate(all="ignore"):
            pre, _, logits = reference.forward(_dense_rows(X, 0, _SAMPLE_ROWS), params)
            start = float(-np.mean(np.log(reference.softmax(logits))[np.arange(len(logits)),
                                                                      y[:_SAMPLE_ROWS]]))
            alive = bool((pre > 0).any())   # a unit positive on the sample: no scan needed
        self.loss_limit = EXPLOSION_FACTOR * max(start if math.isfinite(start) else 0.0,
                                                 math.log(max(n_classes, 2)))
        self.watch_dead_layer = alive or not hidden_layer_dead(X, params[0], params[1])
        self._b1 = params[1].copy()

    def after_epoch(self, epoch, mean_loss, params, lr=None):
        """Raise FloatingPointError naming ``epoch`` if training has diverged in it
        (``lr``: the epoch's learning rate, for the message; default the fit's)."""
        lr = self.lr if lr is None else lr
        if not math.isfinite(mean_loss) or not all(all_finite(p) for p in params):
            self._raise(epoch, lr, "the loss or the weights are no longer finite")
        if mean_loss > self.loss_limit:
            self._raise(epoch, lr, f"the loss exploded to {mean_loss:.3g} per sample (more than "
                               f"{EXPLOSION_FACTOR:g} times its starting value)")
        b1_moved = not np.array_equal(params[1], self._b1)
        self._b1[...] = params[1]
        if self.watch_dead_layer and not b1_moved and hidden_layer_dead(self.X, params[0], params[1]):
            self._raise(epoch, lr, "every hidden unit's ReLU output is 0 for every training sample (the "
                               "hidden layer died, so no gradient reaches it again and the network "
                               "predicts one class)")

    def _raise(self, epoch, lr, what):
        scale = max(float(self.X.max()), -float(self.X.min()))
        fix = f"use a smaller learning rate than lr={lr}"
        if scale > 1e3:
            fix = (f"X holds values up to {scale:.3g}: scale the features first (e.g. "
                   f"sklearn.preprocessing.StandardScaler, or fastmlp.data.scale_pixels), or {fix}")
        raise FloatingPointError(f"training diverged in epoch {epoch}: {what}; {fix}")


def hidden_layer_dead(X, W1, b1):
    """Whether ``relu(X @ W1 + b1)`` is 0 everywhere: no unit positive for any row of ``X``.

    Rows are scanned in doubling blocks, stopping at the first positive entry.
    """
    start, block = 0, _FIRST_BLOCK
    with np.errstate(all="ignore"):
        while start < X.shape[0]:
            if (_dense_rows(X, start, start + block) @ W1 + b1 > 0).any():
                return False
            start, block = start + block, 2 * block
    return True


def _dense_rows(X, start, stop):
    """Rows ``start:stop`` of ``X`` as a dense array (``X`` may be scipy.sparse CSR)."""
    rows = X[start:stop]
    return rows.toarray() if issparse(rows) else rows
