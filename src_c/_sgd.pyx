"""The compiled training step: minibatch SGD on the two-layer network, GIL released.

One call of ``sgd_epoch`` runs every minibatch of an epoch inside a single
``with nogil:`` block: gather the batch rows, forward, softmax cross-entropy,
backward and the four parameter updates, with the three matrix products of the
forward/backward pass and the two weight updates going through BLAS
(``src_c/_blas.pxd``) and nothing allocated. The math is the seed's, written out
in ``fastmlp.reference``; this module must agree with it.
"""
from cython cimport floating
from libc.stdint cimport int64_t
from libc.string cimport memcpy

import numpy as np

from _blas cimport gemm
from _kernels cimport (
    bias_relu,
    column_sums,
    count_correct,
    gather_rows,
    l2_sgd_update,
    relu_backward,
    softmax_xent_grad,
)

__all__ = ["Workspace", "sgd_epoch"]


cdef class Workspace:
    """Scratch arrays for one fit, allocated once and reused by every minibatch.

    Parameters
    ----------
    batch_size, n_features, n_hidden, n_classes : int
    dtype : float32 or float64
    """
    cdef readonly object X_batch, y_batch, hidden, logits, d_hidden, d_b1, d_b2

    def __init__(self, Py_ssize_t batch_size, Py_ssize_t n_features,
                 Py_ssize_t n_hidden, Py_ssize_t n_classes, dtype):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        for name, value in (("batch_size", batch_size), ("n_features", n_features),
                            ("n_hidden", n_hidden), ("n_classes", n_classes)):
            if not 1 <= value < 2**31:
                raise ValueError(f"{name} must be in [1, 2**31), got {value}")
        self.X_batch = np.empty((batch_size, n_features), dtype=dtype)   # gathered rows of X
        self.y_batch = np.empty(batch_size, dtype=np.int64)              # their labels
        self.hidden = np.empty((batch_size, n_hidden), dtype=dtype)      # R = relu(X W1 + b1)
        self.logits = np.empty((batch_size, n_classes), dtype=dtype)     # A2, then dA2 = P - Y
        self.d_hidden = np.empty((batch_size, n_hidden), dtype=dtype)    # dR, then dA1
        self.d_b1 = np.empty(n_hidden, dtype=dtype)
        self.d_b2 = np.empty(n_classes, dtype=dtype)

    @property
    def batch_size(self):
        return self.X_batch.shape[0]


def sgd_epoch(const floating[:, ::1] X, const int64_t[::1] y, const int64_t[::1] order,
              floating[:, ::1] W1, floating[::1] b1, floating[:, ::1] W2, floating[::1] b2,
              Workspace workspace, double lr, double reg):
    """One epoch of minibatch SGD over the rows ``order`` of ``(X, y)``, in place on the weights.

    Batches are consecutive runs of ``workspace.batch_size`` entries of ``order``;
    the last one may be partial. Each step is, with ``G = softmax(A2) - onehot(y)``::

        W2 := (1 - 2 lr reg) W2 - lr R.T @ G           b2 := b2 - lr G.sum(0)
        W1 := (1 - 2 lr reg) W1 - lr X.T @ dA1         b1 := b1 - lr dA1.sum(0)

    which is ``W -= lr * (grad + 2 reg W)`` with the decay folded into the BLAS
    update (``beta = 1 - 2 lr reg``), so each weight matrix is read and written once.

    Parameters
    ----------
    X : ndarray (N, D), C-contiguous; y : int64 (N,) in [0, C); order : int64 (M,) in [0, N)
    W1 (D, H), b1 (H,), W2 (H, C), b2 (C,) : ndarrays of X's dtype, updated in place
    workspace : Workspace
        Scratch of the same dtype and sizes.
    lr, reg : float

    Returns
    -------
    data_loss : float
        Summed cross-entropy of every batch at the weights that batch saw.
    n_correct : int
        Correct argmax predictions counted in the same forward passes.
    """
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1], H = W1.shape[1], C = W2.shape[1]
    cdef Py_ssize_t B = workspace.batch_size
    if W1.shape[0] != D or b1.shape[0] != H or W2.shape[0] != H or b2.shape[0] != C:
        raise ValueError("weights do not fit X: need W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)")
    if y.shape[0] != N:
        raise ValueError(f"y must have one label per row of X ({N}), got {y.shape[0]}")
    if (workspace.X_batch.shape[1] != D or workspace.hidden.shape[1] != H
            or workspace.logits.shape[1] != C or workspace.X_batch.dtype != np.asarray(W1).dtype):
        raise ValueError("workspace was made for other sizes or another dtype")
    # Indices are trusted inside the nogil block (bounds checks are off), so check them here.
    if order.shape[0] and (np.min(order) < 0 or np.max(order) >= N):
        raise IndexError(f"order must index rows of X in [0, {N})")
    if N and (np.min(y) < 0 or np.max(y) >= C):
        raise ValueError(f"y must hold labels in [0, {C})")

    cdef floating[:, ::1] Xb = workspace.X_batch
    cdef int64_t[::1] yb = workspace.y_batch
    cdef floating[:, ::1] R = workspace.hidden
    cdef floating[:, ::1] Z = workspace.logits
    cdef floating[:, ::1] dR = workspace.d_hidden
    cdef floating[::1] db1 = workspace.d_b1
    cdef floating[::1] db2 = workspace.d_b2

    cdef floating step = <floating> lr
    cdef floating decay = <floating> (1.0 - 2.0 * lr * reg)
    cdef double data_loss = 0
    cdef Py_ssize_t n_correct = 0
    cdef Py_ssize_t M = order.shape[0]
    cdef Py_ssize_t batch, start, nb, i

    with nogil:
        for batch in range((M + B - 1) // B):
            start = batch * B
            nb = min(B, M - start)
            gather_rows(X, y, order[start:start + nb], Xb[:nb], yb[:nb])

            # Forward. R = relu(Xb @ W1 + b1); Z = R @ W2 + b2.
            gemm(False, False, <int> nb, <int> H, <int> D, <floating> 1, &Xb[0, 0], <int> D,
                 &W1[0, 0], <int> H, <floating> 0, &R[0, 0], <int> H)
            bias_relu(R[:nb], b1)
            for i in range(nb):
                memcpy(&Z[i, 0], &b2[0], C * sizeof(floating))
            gemm(False, False, <int> nb, <int> C, <int> H, <floating> 1, &R[0, 0], <int> H,
                 &W2[0, 0], <int> C, <floating> 1, &Z[0, 0], <int> C)

            # Loss, accuracy, and G = dcost/dZ = softmax(Z) - onehot(y), in place in Z.
            n_correct += count_correct(Z[:nb], yb[:nb])
            data_loss += softmax_xent_grad(Z[:nb], yb[:nb])

            # Backward through layer 2 with the old W2: dR = G @ W2.T, then update W2, b2.
            gemm(False, True, <int> nb, <int> H, <int> C, <floating> 1, &Z[0, 0], <int> C,
                 &W2[0, 0], <int> C, <floating> 0, &dR[0, 0], <int> H)
            gemm(True, False, <int> H, <int> C, <int> nb, -step, &R[0, 0], <int> H,
                 &Z[0, 0], <int> C, decay, &W2[0, 0], <int> C)
            column_sums(Z[:nb], db2)
            l2_sgd_update(b2, db2, step, <floating> 0)

            # Backward through the ReLU and layer 1: dA1 = dR * [R > 0]; update W1, b1.
            relu_backward(dR[:nb], R[:nb])
            gemm(True, False, <int> D, <int> H, <int> nb, -step, &Xb[0, 0], <int> D,
                 &dR[0, 0], <int> H, decay, &W1[0, 0], <int> H)
            column_sums(dR[:nb], db1)
            l2_sgd_update(b1, db1, step, <floating> 0)

    return data_loss, n_correct
