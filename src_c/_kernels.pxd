# The element-wise kernels of one SGD step, for row-major float32/float64 arrays.
#
# Each is `cdef inline ... noexcept nogil` over fused `floating` pointers and
# sizes, so the training step (_sgd.pyx) inlines them on its threads without
# touching a memoryview (every memoryview slice is an atomic update of a counter
# the threads share); kernels.pyx gives each a Python-callable twin for the
# tests. A matrix argument is `rows` x `cols`, C-contiguous (row stride = cols).
# Shapes are the caller's responsibility here: the `def` entry points check them.
from cython cimport floating
from libc.math cimport exp, expf, log
from libc.stdint cimport int64_t
from libc.string cimport memcpy


cdef inline void bias_relu(floating* Z, const floating* b, Py_ssize_t rows,
                           Py_ssize_t cols) noexcept nogil:
    """Z := max(Z + b, 0), with b (cols,) added to every row of Z (rows, cols)."""
    cdef Py_ssize_t i, j
    cdef floating v
    for i in range(rows):
        for j in range(cols):
            v = Z[i * cols + j] + b[j]
            # `0 if v < 0` rather than `v if v > 0`: a NaN stays NaN, as in np.maximum.
            Z[i * cols + j] = 0 if v < 0 else v


cdef inline void relu_backward(floating* dR, const floating* R, Py_ssize_t n) noexcept nogil:
    """dR := dR * [R > 0] over n entries: the gradient flows only through active units."""
    cdef Py_ssize_t i
    for i in range(n):
        # A select rather than a branch: about half the units are active, so a
        # branch would be mispredicted often; this form vectorizes.
        dR[i] = dR[i] if R[i] > 0 else 0


cdef inline double softmax_xent_grad(floating* Z, const int64_t* y, Py_ssize_t rows,
                                     Py_ssize_t cols, const floating* w) noexcept nogil:
    """Z := softmax(Z) - onehot(y); returns sum_i -log softmax(Z)[i, y_i].

    With m_i = max_j Z[i, j] and s_i = sum_j exp(Z[i, j] - m_i) every exponent is
    <= 0, so nothing overflows, and the loss of row i is
    -log softmax(Z)[i, y_i] = log(s_i) - (Z[i, y_i] - m_i).
    The result is the seed's dcost/dlogits, P - onehot(y).

    With sample weights ``w`` (one per row; NULL for none) row i's loss and
    gradient are multiplied by w_i: Z[i] := w_i * (softmax(Z[i]) - onehot(y_i)).
    """
    cdef Py_ssize_t i, j
    cdef floating row_max, e
    cdef floating* z
    cdef double total = 0, s, inv_s
    for i in range(rows):
        z = Z + i * cols
        row_max = z[0]
        for j in range(1, cols):
            if z[j] > row_max:
                row_max = z[j]
        if w == NULL:
            total -= z[y[i]] - row_max
        else:
            total -= w[i] * (z[y[i]] - row_max)
        s = 0
        for j in range(cols):
            if floating is float:
                e = expf(z[j] - row_max)
            else:
                e = exp(z[j] - row_max)
            z[j] = e
            s += e
        total += log(s) if w == NULL else w[i] * log(s)
        inv_s = 1 / s
        for j in range(cols):
            z[j] = <floating> (z[j] * inv_s)
        z[y[i]] -= 1
        if w != NULL:
            for j in range(cols):
                z[j] *= w[i]
    return total


cdef inline double count_correct(const floating* Z, const int64_t* y, Py_ssize_t rows,
                                 Py_ssize_t cols, const floating* w) noexcept nogil:
    """Number of rows i with argmax_j Z[i, j] == y_i (the first maximum wins, as np.argmax);
    with sample weights ``w`` (NULL for none), the sum of those rows' w_i."""
    cdef Py_ssize_t i, j, best
    cdef double n = 0
    cdef const floating* z
    for i in range(rows):
        z = Z + i * cols
        best = 0
        for j in range(1, cols):
            if z[j] > z[best]:
                best = j
        if best == y[i]:
            n += 1 if w == NULL else w[i]
    return n


cdef inline void column_sums(const floating* G, Py_ssize_t rows, Py_ssize_t cols,
                             floating* out) noexcept nogil:
    """out := G.sum(axis=0), rows added in order (as NumPy does along axis 0)."""
    cdef Py_ssize_t i, j
    for j in range(cols):
        out[j] = G[j]
    for i in range(1, rows):
        for j in range(cols):
            out[j] += G[i * cols + j]


cdef inline void l2_sgd_update(floating* W, const floating* G, Py_ssize_t n,
                               floating lr, floating reg) noexcept nogil:
    """W := W - lr * (G + 2 * reg * W) over n entries: one SGD step on the seed's cost."""
    cdef Py_ssize_t i
    for i in range(n):
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


cdef inline void momentum_apply(floating* W, floating* P, Py_ssize_t rows, Py_ssize_t cols,
                                Py_ssize_t ld, floating momentum, floating lr_decay,
                                bint move, bint prepare) noexcept nogil:
    """A pass of the classical momentum step over a (rows, cols) block (row stride ld),
    P a velocity buffer (lr_decay = 2 lr reg, the L2 term's share of a step):

        move:     W := W + P                        (P holds the new velocity)
        prepare:  P := momentum P - lr_decay W      (with the moved W: the next step's
                                                     velocity before its data gradient)
    """
    cdef Py_ssize_t i, j, k
    for i in range(rows):
        for j in range(cols):
            k = i * ld + j
            if move:
                W[k] += P[k]
            if prepare:
                P[k] = momentum * P[k] - lr_decay * W[k]


cdef inline void gather_rows(const floating* X, const int64_t* y, Py_ssize_t n_features,
                             const int64_t* rows, Py_ssize_t n,
                             floating* X_out, int64_t* y_out) noexcept nogil:
    """X_out[k] := X[rows[k]] (unless X_out is NULL) and y_out[k] := y[rows[k]] for k < n
    (X is (N, n_features))."""
    cdef Py_ssize_t k
    cdef size_t row_bytes = n_features * sizeof(floating)
    for k in range(n):
        if X_out != NULL:
            memcpy(X_out + k * n_features, X + rows[k] * n_features, row_bytes)
        y_out[k] = y[rows[k]]


cdef inline void sum_shares(const floating* shares, Py_ssize_t n_shares, Py_ssize_t stride,
                            Py_ssize_t n, floating* out) noexcept nogil:
    """out := shares[0] + shares[1] + ... (in that order), each share n entries,
    share s starting at shares + s * stride."""
    cdef Py_ssize_t s, i
    cdef const floating* share
    for i in range(n):
        out[i] = shares[i]
    for s in range(1, n_shares):
        share = shares + s * stride
        for i in range(n):
            out[i] += share[i]


cdef inline void scale(floating* W, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld,
                       floating factor) noexcept nogil:
    """W[:rows, :cols] *= factor, for a block of a row-major matrix with row stride ld."""
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            W[i * ld + j] *= factor


cdef inline void copy_scaled(const floating* src, Py_ssize_t ld_src, floating* dst, Py_ssize_t ld_dst,
                             Py_ssize_t rows, Py_ssize_t cols, floating factor) noexcept nogil:
    """dst[:rows, :cols] := factor * src[:rows, :cols], blocks of row-major matrices with row
    strides ld_src and ld_dst (factor 1 copies exactly)."""
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            dst[i * ld_dst + j] = factor * src[i * ld_src + j]
