# The element-wise kernels of one SGD step, for row-major float32/float64 arrays.
#
# Each is `cdef inline ... noexcept nogil` over fused `floating` memoryviews, so
# the training step (_sgd.pyx) inlines them with the GIL released; kernels.pyx
# gives each a Python-callable twin for the tests. Shapes are the caller's
# responsibility here: the `def` entry points check them once.
from cython cimport floating
from libc.math cimport exp, expf, log
from libc.stdint cimport int64_t
from libc.string cimport memcpy


cdef inline void bias_relu(floating[:, ::1] Z, const floating[::1] b) noexcept nogil:
    """Z := max(Z + b, 0), with b (H,) added to every row of Z (B, H)."""
    cdef Py_ssize_t i, j
    cdef floating v
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            v = Z[i, j] + b[j]
            # `0 if v < 0` rather than `v if v > 0`: a NaN stays NaN, as in np.maximum.
            Z[i, j] = 0 if v < 0 else v


cdef inline void relu_backward(floating[:, ::1] dR, const floating[:, ::1] R) noexcept nogil:
    """dR := dR * [R > 0]: the gradient flows only through units that were active."""
    cdef Py_ssize_t i, j
    for i in range(dR.shape[0]):
        for j in range(dR.shape[1]):
            # A select rather than a branch: about half the units are active, so a
            # branch would be mispredicted often; this form vectorizes.
            dR[i, j] = dR[i, j] if R[i, j] > 0 else 0


cdef inline double softmax_xent_grad(floating[:, ::1] Z, const int64_t[::1] y,
                                     const floating* w) noexcept nogil:
    """Z := softmax(Z) - onehot(y); returns sum_i -log softmax(Z)[i, y_i].

    With m_i = max_j Z[i, j] and s_i = sum_j exp(Z[i, j] - m_i) every exponent is
    <= 0, so nothing overflows, and the loss of row i is
    -log softmax(Z)[i, y_i] = log(s_i) - (Z[i, y_i] - m_i).
    The result is the seed's dcost/dlogits, P - onehot(y).

    With sample weights ``w`` (one per row; NULL for none) row i's loss and
    gradient are multiplied by w_i: Z[i] := w_i * (softmax(Z[i]) - onehot(y_i)).
    """
    cdef Py_ssize_t i, j
    cdef Py_ssize_t n_classes = Z.shape[1]
    cdef floating row_max, e
    cdef double total = 0, s, inv_s
    for i in range(Z.shape[0]):
        row_max = Z[i, 0]
        for j in range(1, n_classes):
            if Z[i, j] > row_max:
                row_max = Z[i, j]
        if w == NULL:
            total -= Z[i, y[i]] - row_max
        else:
            total -= w[i] * (Z[i, y[i]] - row_max)
        s = 0
        for j in range(n_classes):
            if floating is float:
                e = expf(Z[i, j] - row_max)
            else:
                e = exp(Z[i, j] - row_max)
            Z[i, j] = e
            s += e
        total += log(s) if w == NULL else w[i] * log(s)
        inv_s = 1 / s
        for j in range(n_classes):
            Z[i, j] = <floating> (Z[i, j] * inv_s)
        Z[i, y[i]] -= 1
        if w != NULL:
            for j in range(n_classes):
                Z[i, j] *= w[i]
    return total


cdef inline double count_correct(const floating[:, ::1] Z, const int64_t[::1] y,
                                 const floating* w) noexcept nogil:
    """Number of rows i with argmax_j Z[i, j] == y_i (the first maximum wins, as np.argmax);
    with sample weights ``w`` (NULL for none), the sum of those rows' w_i."""
    cdef Py_ssize_t i, j, best
    cdef double n = 0
    for i in range(Z.shape[0]):
        best = 0
        for j in range(1, Z.shape[1]):
            if Z[i, j] > Z[i, best]:
                best = j
        if best == y[i]:
            n += 1 if w == NULL else w[i]
    return n


cdef inline void column_sums(const floating[:, ::1] G, floating[::1] out) noexcept nogil:
    """out := G.sum(axis=0), rows added in order (as NumPy does along axis 0)."""
    cdef Py_ssize_t i, j
    for j in range(G.shape[1]):
        out[j] = G[0, j]
    for i in range(1, G.shape[0]):
        for j in range(G.shape[1]):
            out[j] += G[i, j]


cdef inline void l2_sgd_update(floating[::1] W, const floating[::1] G,
                               floating lr, floating reg) noexcept nogil:
    """W := W - lr * (G + 2 * reg * W): one SGD step on the seed's cost, L2 included."""
    cdef Py_ssize_t i
    for i in range(W.shape[0]):
        W[i] -= lr * (G[i] + 2 * reg * W[i])


cdef inline void momentum_update(floating* W, floating* V, const floating* G, Py_ssize_t rows,
                                 Py_ssize_t cols, Py_ssize_t ld, floating lr, floating reg,
                                 floating momentum, bint nesterov) noexcept nogil:
    """One SGD step with momentum on a (rows, cols) block of W (row stride ld; V and G
    alike), G the data gradient. With g = G + 2 reg W (scikit-learn's rule):

        V := momentum V - lr g;   W := W + V                  (classical)
                                  W := W + momentum V - lr g  (nesterov, with the new V)
    """
    cdef Py_ssize_t i, j, k
    cdef floating g, decay = 2 * reg
    for i in range(rows):
        for j in range(cols):
            k = i * ld + j
            g = G[k] + decay * W[k]
            V[k] = momentum * V[k] - lr * g
            if nesterov:
                W[k] += momentum * V[k] - lr * g
            else:
                W[k] += V[k]


cdef inline void momentum_apply(floating* W, floating* V, Py_ssize_t rows, Py_ssize_t cols,
                                Py_ssize_t ld, floating lr_decay) noexcept nogil:
    """The rest of a classical momentum step on a (rows, cols) block (row stride ld) whose
    velocity already holds V = m V - lr G (G the data gradient, added by BLAS):

        V := V - lr_decay W;   W := W + V        (lr_decay = 2 lr reg, the L2 term's share)
    """
    cdef Py_ssize_t i, j, k
    for i in range(rows):
        for j in range(cols):
            k = i * ld + j
            V[k] -= lr_decay * W[k]
            W[k] += V[k]


cdef inline void gather_rows(const floating[:, ::1] X, const int64_t[::1] y,
                             const int64_t[::1] rows,
                             floating[:, ::1] X_out, int64_t[::1] y_out) noexcept nogil:
    """X_out[k] := X[rows[k]] and y_out[k] := y[rows[k]] for k < len(rows)."""
    cdef Py_ssize_t k
    cdef size_t row_bytes = X.shape[1] * sizeof(floating)
    for k in range(rows.shape[0]):
        memcpy(&X_out[k, 0], &X[rows[k], 0], row_bytes)
        y_out[k] = y[rows[k]]


cdef inline void sum_shares(const floating[:, :, ::1] shares, floating[:, ::1] out) noexcept nogil:
    """out := shares[0] + shares[1] + ... (in that order), shares of shape (T, B, C)."""
    cdef Py_ssize_t s, i, j
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = shares[0, i, j]
    for s in range(1, shares.shape[0]):
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] += shares[s, i, j]
