"""The seed's equations in plain NumPy: the reference the compiled path is checked against.

Network and cost
----------------
For a batch ``X`` (B, D) with integer labels ``y`` (B,) in ``0..C-1``::

    A1 = X @ W1 + b1                 (B, H)
    R  = relu(A1)                    (B, H)
    A2 = R @ W2 + b2                 (B, C)   the logits
    P  = softmax(A2)                 (B, C)   row-wise

    cost = -sum_i log P[i, y_i]  +  reg * (||W1||^2 + ||W2||^2)

The cross-entropy is **summed over the batch** (not averaged), the L2 penalty is
``reg * ||W||^2`` on the two weight matrices, so its gradient is ``2 * reg * W``,
and **the biases are not regularized**. Its derivative with respect to the logits
is the seed's result ``dcost/dA2 = P - onehot(y)``, and back-propagation gives::

    dA2 = P - onehot(y)
    dW2 = R.T @ dA2 + 2 * reg * W2          db2 = dA2.sum(axis=0)
    dA1 = (dA2 @ W2.T) * [A1 > 0]
    dW1 = X.T @ dA1 + 2 * reg * W1          db1 = dA1.sum(axis=0)

Training is minibatch SGD on each of W1, b1, W2, b2, with all four gradients taken
at the weights from before the step. The update is :func:`sgd_update`, the one
place where parameters change. By default it is plain SGD, ``W -= lr * dW``. With
``momentum`` m > 0 each parameter has a velocity ``V`` (zero at the start of a fit)
and the update is scikit-learn's::

    V := m * V - lr * dW
    W := W + V                         (classical momentum)
    W := W + m * V - lr * dW           (nesterov=True; V the new velocity)

Sample weights
--------------
With a weight ``w_i >= 0`` per row, row i's cross-entropy and its gradient are
multiplied by ``w_i``::

    cost = -sum_i w_i log P[i, y_i]  +  reg * (||W1||^2 + ||W2||^2)
    dA2  = w[:, None] * (P - onehot(y))

and everything downstream of ``dA2`` follows unchanged. The cost stays a sum:
a batch's gradient is not divided by its weight sum (scikit-learn divides by it,
so the two agree when every batch's weights sum to its size). Weights of all ones
give bitwise the unweighted step; the correct count becomes the weight of the
correctly classified rows.

Learning-rate schedules, early stopping and class weights live in
``fastmlp._controls``; they only choose ``lr`` per epoch, the rows, and ``w``.

Everything in this module is written for clarity, not speed; ``fastmlp._sgd`` is
the compiled implementation and must agree with it (float64 to ~1e-12, float32 to
~1e-5 relative).
"""

import numpy as np

from ._validation import issparse

__all__ = [
    "softmax",
    "forward",
    "cost_and_grads",
    "sgd_update",
    "sgd_step",
    "sgd_epoch",
]


def softmax(Z):
    """Row-wise softmax, stable for large logits: ``exp(Z - max) / sum(exp(Z - max))``."""
    shifted = Z - Z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(Z):
    """Row-wise ``log(softmax(Z))`` computed as ``Z - max - log(sum(exp(Z - max)))``."""
    shifted = Z - Z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def forward(X, params):
    """Forward pass. Returns ``(A1, R, A2)``: pre-activation, hidden ReLU output, logits."""
    W1, b1, W2, b2 = params
    A1 = X @ W1 + b1
    R = np.maximum(A1, 0)
    A2 = R @ W2 + b2
    return A1, R, A2


def onehot(y, n_classes, dtype=np.float64):
    """``(len(y), n_classes)`` matrix with a single 1 per row at column ``y[i]``."""
    Y = np.zeros((len(y), n_classes), dtype=dtype)
    Y[np.arange(len(y)), y] = 1
    return Y


def cost_and_grads(X, y, params, reg, sample_weight=None):
    """The seed's cost on one batch and its gradients with respect to each parameter.

    Parameters
    ----------
    X : ndarray of shape (B, D)
    y : ndarray of int, shape (B,)
    params : tuple ``(W1, b1, W2, b2)``
    reg : float
        L2 strength; the penalty is ``reg * (||W1||^2 + ||W2||^2)``.
    sample_weight : ndarray of shape (B,), optional
        Row i's cross-entropy and gradient are multiplied by ``sample_weight[i]``.

    Returns
    -------
    cost : float
        (Weighted) summed cross-entropy plus the L2 penalty.
    data_loss : float
        The (weighted) summed cross-entropy alone.
    n_correct : int or float
        How many rows have ``argmax(logits) == y`` (their total weight when
        ``sample_weight`` is given).
    grads : tuple ``(dW1, db1, dW2, db2)``
    """
    W1, b1, W2, b2 = params
    A1, R, A2 = forward(X, params)
    labels = onehot(y, W2.shape[1], dtype=A2.dtype)

    log_p = log_softmax(A2) * labels
    correct = np.argmax(A2, axis=1) == y
    grad = softmax(A2) - labels
    if sample_weight is None:
        data_loss = -np.sum(log_p)
        n_correct = int(np.count_nonzero(correct))
    else:
        w = np.asarray(sample_weight).astype(A2.dtype, copy=False)
        data_loss = -np.sum(w[:, None] * log_p)
        n_correct = float(np.sum(w[correct], dtype=np.float64))
        grad *= w[:, None]
    decay = reg * (np.sum(np.square(W1)) + np.sum(np.square(W2)))

    d_b2 = grad.sum(axis=0)
    d_W2 = 2 * reg * W2 + R.T @ grad
    d_R = grad @ W2.T
    d_A1 = d_R * (A1 > 0)
    d_b1 = d_A1.sum(axis=0)
    d_W1 = X.T @ d_A1 + 2 * reg * W1
    return float(data_loss + decay), float(data_loss), n_correct, (d_W1, d_b1, d_W2, d_b2)


def sgd_update(params, grads, lr, velocities=None, momentum=0.0, nesterov=False):
    """The optimizer: one update of every parameter, in place. The only place where
    training changes the weights (the compiled step has its own one place).

    Plain SGD (``momentum == 0``)::

        W := W - lr * dW

    With momentum ``m`` (``0 < m < 1``), scikit-learn's SGD rule on every parameter,
    ``V`` its velocity (updated in place)::

        V := m * V - lr * dW
        W := W + V                     (nesterov=False)
        W := W + m * V - lr * dW       (nesterov=True, with the new V)

    A new rule (Adam, say) is a new branch here, with its state next to
    ``velocities``, and the same in the compiled step's update.

    Parameters
    ----------
    params, grads : tuples of ndarrays ``(W1, b1, W2, b2)`` and their gradients
    lr : float
    velocities : tuple of ndarrays like ``params``, required when ``momentum > 0``
    momentum : float, default 0
    nesterov : bool, default False
    """
    dtype = params[0].dtype
    step = dtype.type(lr)
    if momentum == 0:
        for p, g in zip(params, grads):
            p -= step * g.astype(dtype, copy=False)
        return
    m = dtype.type(momentum)
    for p, v, g in zip(params, velocities, grads):
        g = g.astype(dtype, copy=False)
        v *= m
        v -= step * g
        if nesterov:
            p += m * v - step * g
        else:
            p += v


def sgd_step(X, y, params, lr, reg, *, velocities=None, momentum=0.0, nesterov=False,
             sample_weight=None):
    """One SGD step on a batch, in place on ``params`` (and ``velocities``): the
    gradients of :func:`cost_and_grads`, then :func:`sgd_update`.

    Returns the batch's ``(data_loss, n_correct)`` measured before the update.
    """
    _, data_loss, n_correct, grads = cost_and_grads(X, y, params, reg, sample_weight)
    sgd_update(params, grads, lr, velocities, momentum, nesterov)
    return data_loss, n_correct


def sgd_epoch(X, y, order, params, lr, reg, batch_size, *, velocities=None, momentum=0.0,
              nesterov=False, sample_weight=None):
    """One epoch of minibatch SGD over the rows ``order`` of ``(X, y)``, in place on ``params``.

    Batches are ``order[0:batch_size]``, ``order[batch_size:2*batch_size]``, ...;
    the last one may be partial. ``X`` may be a scipy.sparse CSR matrix: each
    batch's rows are made dense on their own. ``velocities``, ``momentum``,
    ``nesterov`` go to :func:`sgd_update`; ``sample_weight`` (one per row of ``X``)
    to :func:`cost_and_grads`.

    Returns
    -------
    data_loss : float
        The (weighted) summed cross-entropy of every batch, each measured at the
        weights that batch saw (so no extra pass over the data is needed).
    n_correct : int or float
        Correct predictions counted during those same forward passes (their
        total weight with ``sample_weight``).
    """
    total_loss = 0.0
    total_correct = 0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        X_batch = X[rows]
        if issparse(X_batch):
            X_batch = X_batch.toarray()
        loss, correct = sgd_step(X_batch, y[rows], params, lr, reg, velocities=velocities,
                                 momentum=momentum, nesterov=nesterov,
                                 sample_weight=None if sample_weight is None else sample_weight[rows])
        total_loss += loss
        total_correct += correct
    return total_loss, total_correct
