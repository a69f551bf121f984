"""The compiled training step: minibatch SGD on the two-layer network, GIL released.

One call of ``sgd_epoch`` runs every minibatch of an epoch inside a single
``with nogil, parallel():`` block: gather the batch rows, forward, softmax
cross-entropy, backward and the four parameter updates, with the matrix products
going through BLAS (``src_c/_blas.pxd``) and nothing allocated. The hidden units
are split in slices between OpenMP threads (see ``Workspace``); ``forward_logits``
is the forward half alone, for evaluation. The math is the seed's, written out in
``fastmlp.reference``; this module must agree with it.
"""
from cython cimport floating
from cython.parallel cimport parallel, threadid
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
    momentum_apply,
    momentum_update,
    relu_backward,
    softmax_xent_grad,
    sum_shares,
)

__all__ = ["OPENMP", "Workspace", "forward_logits", "gemm_columns", "max_threads", "sgd_epoch"]


cdef extern from "_omp_team.h" nogil:
    void team_barrier()      # `#pragma omp barrier` for the enclosing team
    int team_size()          # threads in the enclosing team (1 outside one)
    int openmp_enabled()     # whether this module was compiled with OpenMP
    int team_limit()         # omp_get_max_threads(): OMP_NUM_THREADS or a threadpoolctl limit

#: Whether this build runs the slices of a step on several threads.
OPENMP = bool(openmp_enabled())


def max_threads():
    """Threads OpenMP would give a new team here: ``OMP_NUM_THREADS``, a limit set
    with threadpoolctl or by joblib's workers, else the CPUs (1 without OpenMP)."""
    return team_limit()

# OpenBLAS (0.3.16+, on AVX-512 cores) multiplies matrices with m*n*k <= 100**3
# without packing them first; for the (batch, features) @ (features, columns)
# products of a step that path is about 1.4x faster than the packed one
# (benchmarks/gemm_shapes.py measures it). Where the BLAS has it, the two big
# products of a step are cut into column blocks that fit it.
SMALL_GEMM_VOLUME = 100 ** 3


def gemm_columns(batch_size, n_features, n_columns):
    """Widest column block (a multiple of 16) of a (batch, features) @ (features, n_columns)
    product whose volume fits ``SMALL_GEMM_VOLUME``; all ``n_columns`` when none does."""
    width = SMALL_GEMM_VOLUME // (batch_size * n_features) // 16 * 16
    return min(width, n_columns) if width >= 16 else n_columns


cdef class Workspace:
    """Scratch arrays for one fit, allocated once and reused by every minibatch.

    The hidden units are split into ``n_slices`` equal slices. Slice ``s`` is
    columns ``s*Hs:(s+1)*Hs`` of W1 (and those entries of b1) and the same rows of
    W2, with its own part of the activations; the OpenMP thread that owns it keeps
    it in its core's cache. The threads copy the rows of the next batch together,
    each a part, while the current one is computed (three batch buffers rotate, so
    no thread writes one another may still read); the only other data they
    exchange is each slice's share of the logits, once per step. The result
    depends on ``n_slices`` (the order in which the shares are added), not on how
    many threads OpenMP actually provides.

    Parameters
    ----------
    batch_size, n_features, n_hidden, n_classes : int
    dtype : float32 or float64
    n_slices : int, default 1
        Must divide ``n_hidden``; the number of threads to run.
    gemm_columns : int, optional
        Column block of the two big products of a step (default: all the columns
        of a slice, i.e. no blocking). See :func:`gemm_columns`.
    """
    cdef readonly object X_batch, y_batch, w_batch, hidden, d_hidden, logits, grad, d_b1, d_b2, totals
    cdef readonly object grad_W1, grad_W2
    cdef readonly Py_ssize_t n_slices, gemm_columns

    def __init__(self, Py_ssize_t batch_size, Py_ssize_t n_features, Py_ssize_t n_hidden,
                 Py_ssize_t n_classes, dtype, Py_ssize_t n_slices=1, gemm_columns=None):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        for name, value in (("batch_size", batch_size), ("n_features", n_features),
                            ("n_hidden", n_hidden), ("n_classes", n_classes), ("n_slices", n_slices)):
            if not 1 <= value < 2**31:
                raise ValueError(f"{name} must be in [1, 2**31), got {value}")
        if n_hidden % n_slices:
            raise ValueError(f"n_slices ({n_slices}) must divide n_hidden ({n_hidden})")
        S, B, Hs = n_slices, batch_size, n_hidden // n_slices
        self.n_slices = S
        self.gemm_columns = Hs if gemm_columns is None else min(max(int(gemm_columns), 1), Hs)
        self.X_batch = np.empty((3, B, n_features), dtype=dtype)   # batch rows: current, next, previous
        self.y_batch = np.empty((3, B), dtype=np.int64)            # and their labels
        self.w_batch = np.empty((3, B), dtype=dtype)               # and sample weights
        self.hidden = np.empty((S, B, Hs), dtype=dtype)            # R = relu(X W1 + b1), by slice
        self.d_hidden = np.empty((S, B, Hs), dtype=dtype)          # dR, then dA1, by slice
        self.logits = np.empty((2, S, B, n_classes), dtype=dtype)  # each slice's share of A2, for
                                                                   # two steps, alternating
        self.grad = np.empty((S, B, n_classes), dtype=dtype)       # G = softmax(A2) - Y, per thread
        self.d_b1 = np.empty(n_hidden, dtype=dtype)
        self.d_b2 = np.empty(n_classes, dtype=dtype)
        self.totals = np.zeros(2, dtype=np.float64)                 # data loss, correct count
        self.grad_W1 = self.grad_W2 = None   # data gradients of W1, W2, for momentum (see momentum_buffers)

    def momentum_buffers(self):
        """Allocate (once) the data-gradient buffers of W1 (D, H) and W2 (H, C) that the
        Nesterov update reads; each hidden slice writes only its own columns / rows."""
        if self.grad_W1 is None:
            D, H, C = self.X_batch.shape[2], self.d_b1.shape[0], self.d_b2.shape[0]
            self.grad_W1 = np.empty((D, H), dtype=self.X_batch.dtype)
            self.grad_W2 = np.empty((H, C), dtype=self.X_batch.dtype)

    @property
    def batch_size(self):
        return self.X_batch.shape[1]

    def check(self, n_features, n_hidden, n_classes, dtype):
        """Raise ValueError unless this workspace fits these sizes and dtype, in this build."""
        if (self.X_batch.shape[2] != n_features or self.d_b1.shape[0] != n_hidden
                or self.d_b2.shape[0] != n_classes or self.X_batch.dtype != dtype):
            raise ValueError("workspace was made for other sizes or another dtype")
        if self.n_slices > 1 and not OPENMP:
            raise ValueError("this build has no OpenMP: use a Workspace with n_slices=1")


cdef inline void scale_columns(floating[:, ::1] W, Py_ssize_t c0, Py_ssize_t c1,
                               double s) noexcept nogil:
    """W[:, c0:c1] *= s."""
    cdef Py_ssize_t i, j
    cdef floating f = <floating> s
    if s == 1:
        return
    for i in range(W.shape[0]):
        for j in range(c0, c1):
            W[i, j] *= f


cdef inline void slice_forward(const floating[:, ::1] Xb, const floating[:, ::1] W1,
                               const floating[::1] b1, const floating[:, ::1] W2,
                               const floating[::1] b2, Py_ssize_t h0, Py_ssize_t Wc,
                               double s1, double s2,
                               floating[:, ::1] R, floating[:, ::1] Z) noexcept nogil:
    """The forward pass of one hidden slice, units h0 .. h0 + Hs (Hs = R.shape[1]):

        R := relu(s1 * Xb @ W1[:, h0:h0+Hs] + b1[h0:h0+Hs])
        Z := s2 * R @ W2[h0:h0+Hs]  (+ b2 for the slice at h0 = 0)

    so the logits are the sum of every slice's Z. The product with W1 goes in
    column blocks of Wc (see gemm_columns).
    """
    cdef Py_ssize_t nb = Xb.shape[0], D = Xb.shape[1], H = W1.shape[1]
    cdef Py_ssize_t Hs = R.shape[1], C = Z.shape[1], c, i, k
    for k in range((Hs + Wc - 1) // Wc):
        c = k * Wc
        gemm(False, False, <int> nb, <int> min(Wc, Hs - c), <int> D, <floating> s1,
             &Xb[0, 0], <int> D, &W1[0, h0 + c], <int> H, <floating> 0, &R[0, c], <int> Hs)
    bias_relu(R, b1[h0:h0 + Hs])
    if h0 == 0:
        for i in range(nb):
            memcpy(&Z[i, 0], &b2[0], C * sizeof(floating))
    gemm(False, False, <int> nb, <int> C, <int> Hs, <floating> s2, &R[0, 0], <int> Hs,
         &W2[h0, 0], <int> C, <floating> (1 if h0 == 0 else 0), &Z[0, 0], <int> C)


cdef inline void gather_part(const floating[:, ::1] X, const int64_t[::1] y, const floating* w,
                             const int64_t[::1] order, Py_ssize_t batch, Py_ssize_t B,
                             floating[:, ::1] X_out, int64_t[::1] y_out, floating* w_out,
                             int t, int team) noexcept nogil:
    """Thread t of `team` copies its share of the rows of minibatch `batch` into X_out, y_out
    (and their sample weights into w_out, unless w is NULL)."""
    cdef Py_ssize_t start = batch * B
    cdef Py_ssize_t nb = min(B, order.shape[0] - start)
    cdef Py_ssize_t r0 = nb * t // team, r1 = nb * (t + 1) // team, k
    gather_rows(X, y, order[start + r0:start + r1], X_out[r0:r1], y_out[r0:r1])
    if w != NULL:
        for k in range(r0, r1):
            w_out[k] = w[order[start + k]]


cdef struct Update:
    # The optimizer of one epoch (see update_matrix / update_vector).
    double lr          # learning rate
    double reg         # L2 strength (the gradient of reg ||W||^2 is 2 reg W)
    double decay       # 1 - 2 lr reg: plain SGD's factor on W per step, kept in the scale s
    double momentum    # 0: plain SGD
    bint nesterov


cdef inline void update_matrix(const Update* u, int rows, int cols, int k, const floating* A, int lda,
                               const floating* Bm, int ldb, floating* W, floating* V, floating* G,
                               int ldw, double s) noexcept nogil:
    """The optimizer's step on a (rows, cols) block of a weight matrix W (row stride ldw),
    whose data gradient is A.T @ Bm (A: k x rows, Bm: k x cols). One of:

    plain SGD (momentum 0), with the decay lazily in the scale s (W = s * stored, see
    sgd_epoch; the caller multiplies s by `decay` after the step):
        stored := stored - (lr / (s * decay)) A.T @ Bm       (one BLAS accumulate)
    momentum (V and G blocks like W's), classical: BLAS adds the data gradient to V,
    one pass adds the decay and moves W (no gradient buffer):
        V := m V - lr A.T @ Bm;  V := V - 2 lr reg W;  W := W + V
    Nesterov, which needs the gradient twice:
        G := A.T @ Bm;  V := m V - lr (G + 2 reg W);  W := W + m V - lr (G + 2 reg W)

    With update_vector, the one place where the compiled step changes the weights: a
    new rule is a new branch here (its state next to V), as in reference.sgd_update.
    """
    if u.momentum == 0:
        gemm(True, False, rows, cols, k, <floating> (-u.lr / (s * u.decay)),
             A, lda, Bm, ldb, <floating> 1, W, ldw)
    elif not u.nesterov:
        gemm(True, False, rows, cols, k, <floating> -u.lr, A, lda, Bm, ldb, <floating> u.momentum, V, ldw)
        momentum_apply(W, V, rows, cols, ldw, <floating> (2 * u.lr * u.reg))
    else:
        gemm(True, False, rows, cols, k, <floating> 1, A, lda, Bm, ldb, <floating> 0, G, ldw)
        momentum_update(W, V, G, rows, cols, ldw, <floating> u.lr, <floating> u.reg,
                        <floating> u.momentum, True)


cdef inline void update_vector(const Update* u, floating[::1] b, floating* V,
                               const floating[::1] g) noexcept nogil:
    """The optimizer's step on a bias vector b with gradient g (no decay): b := b - lr g,
    or with momentum V := m V - lr g; b := b + V (or b + m V - lr g)."""
    if u.momentum == 0:
        l2_sgd_update(b, g, <floating> u.lr, <floating> 0)
    else:
        momentum_update(&b[0], V, &g[0], 1, b.shape[0], b.shape[0], <floating> u.lr, <floating> 0,
                        <floating> u.momentum, u.nesterov)


def sgd_epoch(const floating[:, ::1] X, const int64_t[::1] y, const int64_t[::1] order,
              floating[:, ::1] W1, floating[::1] b1, floating[:, ::1] W2, floating[::1] b2,
              Workspace workspace, double lr, double reg, sample_weight=None, velocities=None,
              double momentum=0, bint nesterov=False):
    """One epoch of minibatch SGD over the rows ``order`` of ``(X, y)``, in place on the weights.

    Batches are consecutive runs of ``workspace.batch_size`` entries of ``order``;
    the last one may be partial. Each plain step is, with ``G = softmax(A2) - onehot(y)``::

        W2 := (1 - 2 lr reg) W2 - lr R.T @ G           b2 := b2 - lr G.sum(0)
        W1 := (1 - 2 lr reg) W1 - lr X.T @ dA1         b1 := b1 - lr dA1.sum(0)

    which is ``W -= lr * (grad + 2 reg W)``. The decay is applied lazily: during the
    epoch each weight matrix is held as ``W = s * V`` with a scalar ``s``, so a step
    multiplies ``s`` by ``1 - 2 lr reg`` and adds ``-(lr / s) * grad`` to ``V`` (a plain
    BLAS accumulate, ``beta = 1``), and the forward products take ``alpha = s``.
    ``W`` is written back as ``s * V`` at the end of the epoch, or sooner when ``s``
    falls below 1/2. So the weights are swept once per product, never to decay them.

    With ``momentum`` > 0 each parameter has a velocity (``velocities``, updated in
    place) and the step is scikit-learn's rule (see ``fastmlp.reference.sgd_update``);
    the weights are then held as they are (``s = 1``). With ``sample_weight`` row i's
    loss and gradient are multiplied by its weight (rows of G scaled). All parameter
    changes go through ``update_matrix`` and ``update_vector``.

    With ``workspace.n_slices`` > 1 the hidden units are split between OpenMP
    threads (see :class:`Workspace`); each owns the velocities of its slice as it owns
    the weights. The caller should keep BLAS single-threaded meanwhile
    (``threadpoolctl``), or the two thread pools fight over the cores.

    Parameters
    ----------
    X : ndarray (N, D), C-contiguous; y : int64 (N,) in [0, C); order : int64 (M,) in [0, N)
    W1 (D, H), b1 (H,), W2 (H, C), b2 (C,) : ndarrays of X's dtype, updated in place
    workspace : Workspace
        Scratch of the same dtype and sizes.
    lr, reg : float
        ``2 * lr * reg`` must be < 1.
    sample_weight : ndarray (N,), optional
        Non-negative weight of each row of X.
    velocities : tuple of 4 ndarrays like (W1, b1, W2, b2), required when momentum > 0
        C-contiguous, of X's dtype; updated in place.
    momentum : float in [0, 1), default 0
    nesterov : bool, default False

    Returns
    -------
    data_loss : float
        (Weighted) summed cross-entropy of every batch at the weights that batch saw.
    n_correct : int (float with sample_weight)
        Correct argmax predictions counted in the same forward passes (their weight).
    """
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1], H = W1.shape[1], C = W2.shape[1]
    cdef Py_ssize_t B = workspace.batch_size
    cdef int S = <int> workspace.n_slices
    cdef Py_ssize_t Hs = H // S
    cdef Py_ssize_t Wc = workspace.gemm_columns
    cdef Py_ssize_t n_blocks = (Hs + Wc - 1) // Wc
    if W1.shape[0] != D or b1.shape[0] != H or W2.shape[0] != H or b2.shape[0] != C:
        raise ValueError("weights do not fit X: need W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)")
    if y.shape[0] != N:
        raise ValueError(f"y must have one label per row of X ({N}), got {y.shape[0]}")
    dtype = np.asarray(W1).dtype
    workspace.check(D, H, C, dtype)
    # Indices are trusted inside the nogil block (bounds checks are off), so check them here.
    if order.shape[0] and (np.min(order) < 0 or np.max(order) >= N):
        raise IndexError(f"order must index rows of X in [0, {N})")
    if N and (np.min(y) < 0 or np.max(y) >= C):
        raise ValueError(f"y must hold labels in [0, {C})")
    cdef double decay = 1.0 - 2.0 * lr * reg
    if not decay > 0:
        raise ValueError(f"2 * lr * reg must be < 1 (got {2 * lr * reg}): the L2 decay factor "
                         f"1 - 2 lr reg must stay positive")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    cdef Update update = Update(lr=lr, reg=reg, decay=decay, momentum=momentum, nesterov=nesterov)

    # Sample weights and velocities: fastmlp's own arrays, checked here, read as pointers.
    cdef const floating[::1] w_all
    cdef const floating* w = NULL
    if sample_weight is not None:
        w_all = np.ascontiguousarray(sample_weight, dtype=dtype)
        if w_all.shape[0] != N:
            raise ValueError(f"sample_weight must have one weight per row of X ({N}), got {w_all.shape[0]}")
        if N:
            w = &w_all[0]
    cdef floating[:, ::1] V1, V2, gW1, gW2
    cdef floating[::1] Vb1, Vb2
    cdef floating* v1 = NULL     # velocities of W1, b1, W2, b2 (momentum only)
    cdef floating* vb1 = NULL
    cdef floating* v2 = NULL
    cdef floating* vb2 = NULL
    cdef floating* g1 = NULL     # data gradients of W1 and W2 (momentum only)
    cdef floating* g2 = NULL
    if momentum > 0:
        if velocities is None or len(velocities) != 4:
            raise ValueError("momentum > 0 needs velocities=(V1, Vb1, V2, Vb2) shaped like the weights")
        for v, param in zip(velocities, (W1, b1, W2, b2)):
            if not (isinstance(v, np.ndarray) and v.shape == np.shape(param) and v.dtype == dtype
                    and v.flags.c_contiguous and v.flags.writeable):
                raise ValueError("velocities must be writeable C-contiguous arrays shaped like "
                                 "(W1, b1, W2, b2), of their dtype")
        V1, Vb1, V2, Vb2 = velocities
        v1, vb1, v2, vb2 = &V1[0, 0], &Vb1[0], &V2[0, 0], &Vb2[0]
        if nesterov:
            workspace.momentum_buffers()
            gW1, gW2 = workspace.grad_W1, workspace.grad_W2
            g1, g2 = &gW1[0, 0], &gW2[0, 0]

    cdef floating[:, :, ::1] Xb = workspace.X_batch
    cdef int64_t[:, ::1] yb = workspace.y_batch
    cdef floating[:, ::1] wb = workspace.w_batch
    cdef floating[:, :, ::1] R = workspace.hidden
    cdef floating[:, :, ::1] dR = workspace.d_hidden
    cdef floating[:, :, :, ::1] Zpart = workspace.logits
    cdef floating[:, :, ::1] G = workspace.grad
    cdef floating[::1] db1 = workspace.d_b1
    cdef floating[::1] db2 = workspace.d_b2
    cdef double[::1] totals = workspace.totals

    cdef Py_ssize_t M = order.shape[0]
    cdef Py_ssize_t n_batches = (M + B - 1) // B
    # Private to each thread (assigned inside the parallel block):
    cdef int t, team, sl, p, q
    cdef Py_ssize_t batch, nb, h0, k, c
    cdef double loss, s1, s2   # W1 = s1 * V1 and W2 = s2 * V2 (see the docstring)
    cdef const floating* wq    # the current batch's sample weights, or NULL

    totals[0] = 0
    totals[1] = 0
    with nogil, parallel(num_threads=S):
        # OpenMP may give fewer threads than asked (nested in another team, say):
        # thread t then owns slices t, t + team, ..., and the result is the same.
        t = threadid()
        team = team_size()
        s1 = 1
        s2 = 1
        gather_part(X, y, w, order, 0, B, Xb[0], yb[0], &wb[0, 0], t, team)
        team_barrier()
        for batch in range(n_batches):
            nb = min(B, M - batch * B)
            p = batch % 2
            q = batch % 3
            wq = NULL if w == NULL else &wb[q, 0]

            # Forward, slice by slice: R_s = relu(Xb @ W1[:, h0:h0+Hs] + b1[h0:h0+Hs]) and
            # the slice's share of the logits, Zpart_s = R_s @ W2[h0:h0+Hs] (+ b2 in share 0).
            sl = t
            while sl < S:
                slice_forward(Xb[q, :nb], W1, b1, W2, b2, sl * Hs, Wc, s1, s2, R[sl, :nb], Zpart[p, sl, :nb])
                sl = sl + team

            # This thread's part of the next batch's rows, into the buffer read two steps ago.
            if batch + 1 < n_batches:
                gather_part(X, y, w, order, batch + 1, B, Xb[(batch + 1) % 3], yb[(batch + 1) % 3],
                            &wb[(batch + 1) % 3, 0], t, team)

            # The one exchange per step. The shares are double-buffered by step parity:
            # one is overwritten two steps later, after the next barrier, by which time
            # every thread has finished reading it.
            team_barrier()

            # Every thread sums the shares in slice order, so all hold the same logits;
            # then G = w * (softmax(A2) - onehot(y)) (thread 0 also keeps the score).
            sum_shares(Zpart[p, :, :nb], G[t, :nb])
            if t == 0:
                totals[1] += count_correct(G[t, :nb], yb[q, :nb], wq)
            loss = softmax_xent_grad(G[t, :nb], yb[q, :nb], wq)
            if t == 0:
                totals[0] += loss
                column_sums(G[t, :nb], db2)
                update_vector(&update, b2, vb2, db2)

            # Backward, slice by slice, with the old W2 rows: dR_s = G @ W2[h0:h0+Hs].T;
            # update those rows; dA1_s = dR_s * [R_s > 0]; update W1[:, h0:h0+Hs], b1.
            sl = t
            while sl < S:
                h0 = sl * Hs
                gemm(False, True, <int> nb, <int> Hs, <int> C, <floating> s2,
                     &G[t, 0, 0], <int> C, &W2[h0, 0], <int> C, <floating> 0, &dR[sl, 0, 0], <int> Hs)
                update_matrix(&update, <int> Hs, <int> C, <int> nb, &R[sl, 0, 0], <int> Hs,
                              &G[t, 0, 0], <int> C, &W2[h0, 0], v2 + h0 * C, g2 + h0 * C, <int> C, s2)
                relu_backward(dR[sl, :nb], R[sl, :nb])
                for k in range(n_blocks):
                    c = k * Wc
                    update_matrix(&update, <int> D, <int> min(Wc, Hs - c), <int> nb, &Xb[q, 0, 0], <int> D,
                                  &dR[sl, 0, c], <int> Hs, &W1[0, h0 + c], v1 + h0 + c, g1 + h0 + c,
                                  <int> H, s1)
                column_sums(dR[sl, :nb], db1[h0:h0 + Hs])
                update_vector(&update, b1[h0:h0 + Hs], vb1 + h0, db1[h0:h0 + Hs])
                sl = sl + team
            if momentum == 0:   # plain SGD: the decay of this step goes into the scales
                s1 *= decay
                s2 *= decay

            # Each thread owns its slices, so it writes its scales back without waiting.
            if s1 < 0.5 or s2 < 0.5 or batch + 1 == n_batches:
                sl = t
                while sl < S:
                    h0 = sl * Hs
                    scale_columns(W1, h0, h0 + Hs, s1)
                    scale_columns(W2[h0:h0 + Hs], 0, C, s2)
                    sl = sl + team
                s1 = 1
                s2 = 1

    if sample_weight is None:
        return totals[0], int(totals[1])
    return totals[0], totals[1]


def forward_logits(const floating[:, ::1] X, const floating[:, ::1] W1, const floating[::1] b1,
                   const floating[:, ::1] W2, const floating[::1] b2, Workspace workspace,
                   floating[:, ::1] out):
    """out := relu(X @ W1 + b1) @ W2 + b2, on the workspace's threads and hidden slices.

    The forward half of the training step, over consecutive blocks of
    ``workspace.batch_size`` rows of X (no gather: the rows are contiguous). It
    evaluates the test set during a fit without waking BLAS's own threads.

    Parameters
    ----------
    X : ndarray (N, D); W1 (D, H), b1 (H,), W2 (H, C), b2 (C,) : ndarrays of one dtype
    workspace : Workspace
        Of these sizes and dtype.
    out : ndarray (N, C), written.

    Returns
    -------
    out
    """
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1], H = W1.shape[1], C = W2.shape[1]
    cdef Py_ssize_t B = workspace.batch_size
    cdef int S = <int> workspace.n_slices
    cdef Py_ssize_t Hs = H // S
    cdef Py_ssize_t Wc = workspace.gemm_columns
    if (W1.shape[0] != D or b1.shape[0] != H or W2.shape[0] != H or b2.shape[0] != C
            or out.shape[0] != N or out.shape[1] != C):
        raise ValueError("shapes do not fit: need X (N, D), W1 (D, H), b1 (H,), W2 (H, C), b2 (C,), out (N, C)")
    workspace.check(D, H, C, np.asarray(W1).dtype)

    cdef floating[:, :, ::1] R = workspace.hidden
    cdef floating[:, :, :, ::1] Zpart = workspace.logits
    cdef Py_ssize_t n_batches = (N + B - 1) // B
    cdef int t, team, sl, p
    cdef Py_ssize_t batch, start, nb

    with nogil, parallel(num_threads=S):
        t = threadid()
        team = team_size()
        for batch in range(n_batches):
            start = batch * B
            nb = min(B, N - start)
            p = batch % 2
            sl = t
            while sl < S:
                slice_forward(X[start:start + nb], W1, b1, W2, b2, sl * Hs, Wc, 1, 1,
                              R[sl, :nb], Zpart[p, sl, :nb])
                sl = sl + team
            # As in sgd_epoch: shares double-buffered by parity, one barrier per block.
            team_barrier()
            if t == 0:
                sum_shares(Zpart[p, :, :nb], out[start:start + nb])
    return np.asarray(out)
