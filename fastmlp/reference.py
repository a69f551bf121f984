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

Training is plain minibatch SGD, ``W -= lr * dW`` for each of W1, b1, W2, b2, with
all four gradients taken at the weights from before the step.

Everything in this module is written for clarity, not speed; ``fastmlp._sgd`` is
the compiled implementation and must agree with it (float64 to ~1e-12, float32 to
~1e-5 relative).
"""

import numpy as np

__all__ = [
    "softmax",
    "forward",
    "cost_and_grads",
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


def cost_and_grads(X, y, params, reg):
    """The seed's cost on one batch and its gradients with respect to each parameter.

    Parameters
    ----------
    X : ndarray of shape (B, D)
    y : ndarray of int, shape (B,)
    params : tuple ``(W1, b1, W2, b2)``
    reg : float
        L2 strength; the penalty is ``reg * (||W1||^2 + ||W2||^2)``.

    Returns
    -------
    cost : float
        Summed cross-entropy plus the L2 penalty.
    data_loss : float
        The summed cross-entropy alone.
    n_correct : int
        How many rows have ``argmax(logits) == y``.
    grads : tuple ``(dW1, db1, dW2, db2)``
    """
    W1, b1, W2, b2 = params
    A1, R, A2 = forward(X, params)
    labels = onehot(y, W2.shape[1], dtype=A2.dtype)

    data_loss = -np.sum(log_softmax(A2) * labels)
    decay = reg * (np.sum(np.square(W1)) + np.sum(np.square(W2)))
    n_correct = int(np.count_nonzero(np.argmax(A2, axis=1) == y))

    grad = softmax(A2) - labels
    d_b2 = grad.sum(axis=0)
    d_W2 = 2 * reg * W2 + R.T @ grad
    d_R = grad @ W2.T
    d_A1 = d_R * (A1 > 0)
    d_b1 = d_A1.sum(axis=0)
    d_W1 = X.T @ d_A1 + 2 * reg * W1
    return float(data_loss + decay), float(data_loss), n_correct, (d_W1, d_b1, d_W2, d_b2)


def sgd_step(X, y, params, lr, reg):
    """One plain SGD step, in place on ``params``: ``W -= lr * dW`` for all four.

    Returns the batch's ``(data_loss, n_correct)`` measured before the update.
    """
    _, data_loss, n_correct, grads = cost_and_grads(X, y, params, reg)
    dtype = params[0].dtype
    for p, g in zip(params, grads):
        p -= dtype.type(lr) * g.astype(dtype, copy=False)
    return data_loss, n_correct


def sgd_epoch(X, y, order, params, lr, reg, batch_size):
    """One epoch of minibatch SGD over the rows ``order`` of ``(X, y)``, in place on ``params``.

    Batches are ``order[0:batch_size]``, ``order[batch_size:2*batch_size]``, ...;
    the last one may be partial.

    Returns
    -------
    data_loss : float
        The summed cross-entropy of every batch, each measured at the weights that
        batch saw (so no extra pass over the data is needed).
    n_correct : int
        Correct predictions counted during those same forward passes.
    """
    total_loss = 0.0
    total_correct = 0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        loss, correct = sgd_step(X[rows], y[rows], params, lr, reg)
        total_loss += loss
        total_correct += correct
    return total_loss, total_correct
